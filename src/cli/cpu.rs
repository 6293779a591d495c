//! CPU time this process has used, user and system, for `bench`'s report.

use std::time::Duration;

/// User and system CPU time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    /// CPU time used by this process so far (zero if the system will not say).
    pub fn now() -> CpuTime {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage writes a `rusage` into the pointer it is given, which points
        // to memory of that type and size; on failure it writes nothing and we read the
        // zeroed value.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
        if rc != 0 {
            return CpuTime::default();
        }
        // SAFETY: zero-initialised and, on success, filled in by getrusage.
        let usage = unsafe { usage.assume_init() };
        CpuTime {
            user: timeval(usage.ru_utime),
            system: timeval(usage.ru_stime),
        }
    }

    /// The time used since `earlier`.
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

fn timeval(t: libc::timeval) -> Duration {
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let micros = u32::try_from(t.tv_usec).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(u64::from(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spinning makes the process's user time grow. The spin lasts until 20 ms of CPU
    /// time are counted (on a loaded host 50 ms of wall-clock time may hold only a few ms
    /// of CPU), with a generous wall-clock deadline in case the counter never moves.
    #[test]
    fn spinning_uses_user_time() {
        let before = CpuTime::now();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut x = 0u64;
        let mut used = CpuTime::default();
        while used.user < Duration::from_millis(20) && std::time::Instant::now() < deadline {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
            }
            used = CpuTime::now().since(before);
        }
        assert!(used.user >= Duration::from_millis(20), "{used:?}");
    }
}
