//! Warnings about bad connections, rate-limited: at most one line per cause per
//! interval, and the next line of a cause says how many were held back since the last.
//! A flood of strangers, wrong cookies or idle connections costs a few log lines, not
//! one each.

use crate::clock::{self, Duration, Instant};
use crate::pid::NodeName;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// The default interval between two lines of one cause.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// One cause's window.
struct Window {
    started: Instant,
    held_back: u64,
}

/// The rate-limited warnings of one transport. Causes are static strings, so the table
/// stays as small as the code's list of causes.
pub(crate) struct Complaints {
    interval: Duration,
    causes: Mutex<HashMap<&'static str, Window>>,
    logged: AtomicU64,
    held_back: AtomicU64,
}

impl Complaints {
    pub(crate) fn new(interval: Duration) -> Self {
        Complaints {
            interval,
            causes: Mutex::new(HashMap::new()),
            logged: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// Logs `detail()` as a warning for `cause`, unless a line of the same cause was
    /// logged less than an interval ago (then it is only counted).
    pub(crate) fn warn(&self, me: &NodeName, cause: &'static str, detail: impl FnOnce() -> String) {
        self.report(log::Level::Warn, clock::now(), me, cause, detail)
    }

    /// As [`warn`](Self::warn), at the error level: the operator must act.
    pub(crate) fn error(
        &self,
        me: &NodeName,
        cause: &'static str,
        detail: impl FnOnce() -> String,
    ) {
        self.report(log::Level::Error, clock::now(), me, cause, detail)
    }

    #[cfg(test)]
    fn warn_at(
        &self,
        now: Instant,
        me: &NodeName,
        cause: &'static str,
        detail: impl FnOnce() -> String,
    ) {
        self.report(log::Level::Warn, now, me, cause, detail)
    }

    fn report(
        &self,
        level: log::Level,
        now: Instant,
        me: &NodeName,
        cause: &'static str,
        detail: impl FnOnce() -> String,
    ) {
        let held = {
            let mut causes = self.causes.lock();
            match causes.get_mut(cause) {
                Some(w) if now < w.started + self.interval => {
                    w.held_back += 1;
                    self.held_back.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Some(w) => {
                    let held = w.held_back;
                    w.started = now;
                    w.held_back = 0;
                    held
                }
                None => {
                    causes.insert(
                        cause,
                        Window {
                            started: now,
                            held_back: 0,
                        },
                    );
                    0
                }
            }
        };
        self.logged.fetch_add(1, Ordering::Relaxed);
        if held == 0 {
            log::log!(level, "{me}: {}", detail());
        } else {
            log::log!(
                level,
                "{me}: {} (and {held} more {cause} since the last such line)",
                detail()
            );
        }
    }

    /// Lines logged so far.
    pub(crate) fn logged(&self) -> u64 {
        self.logged.load(Ordering::Relaxed)
    }

    /// Warnings counted but not logged so far.
    pub(crate) fn held_back(&self) -> u64 {
        self.held_back.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_cause_per_interval() {
        let c = Complaints::new(Duration::from_secs(10));
        let me = NodeName::new("me@h");
        let t0 = Instant::now();
        for i in 0..500 {
            let t = t0 + Duration::from_millis(i);
            c.warn_at(t, &me, "idle connections", || "idle".into());
            c.warn_at(t, &me, "wrong cookies", || "cookie".into());
        }
        assert_eq!((c.logged(), c.held_back()), (2, 998));
        let later = t0 + Duration::from_secs(11);
        c.warn_at(later, &me, "idle connections", || "idle".into());
        assert_eq!((c.logged(), c.held_back()), (3, 998));
    }
}
