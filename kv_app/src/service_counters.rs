//! What a node's kv server has served since the node started: operations received by
//! kind, and how long each took from its request to its answer (a latency histogram with
//! fixed buckets). Shared atomics, so counting costs the server one increment per
//! operation; `status` reads them for the observer and `/metrics`.

use crate::ops::OpKind;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (the last bucket is +Inf).
pub const LATENCY_BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The live counters of one node; outlive restarts of the server.
#[derive(Debug, Default)]
pub struct ServiceCounters {
    read: AtomicU64,
    write: AtomicU64,
    write_hash: AtomicU64,
    /// One per bound of [`LATENCY_BOUNDS`], then +Inf (not cumulative).
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    latency_sum_micros: AtomicU64,
}

/// A reading of [`ServiceCounters`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCounts {
    /// Operation requests the server took, by kind.
    pub read: u64,
    pub write: u64,
    pub write_hash: u64,
    /// Answered operations per latency bucket ([`LATENCY_BOUNDS`], then +Inf), not
    /// cumulative.
    pub latency_buckets: Vec<u64>,
    /// The sum of the latencies counted, in microseconds.
    pub latency_sum_micros: u64,
}

impl ServiceCounts {
    /// How many latencies were counted.
    pub fn latency_count(&self) -> u64 {
        self.latency_buckets.iter().sum()
    }
}

impl ServiceCounters {
    /// An operation request of this kind arrived.
    pub fn count_request(&self, kind: OpKind) {
        let counter = match kind {
            OpKind::Read => &self.read,
            OpKind::Write => &self.write,
            OpKind::WriteHash => &self.write_hash,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// An operation was answered this long after its request arrived.
    pub fn count_latency(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|&bound| secs <= bound)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn read(&self) -> ServiceCounts {
        ServiceCounts {
            read: self.read.load(Ordering::Relaxed),
            write: self.write.load(Ordering::Relaxed),
            write_hash: self.write_hash.load(Ordering::Relaxed),
            latency_buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            latency_sum_micros: self.latency_sum_micros.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_count_by_kind_and_latencies_land_in_their_bucket() {
        let c = ServiceCounters::default();
        c.count_request(OpKind::Read);
        c.count_request(OpKind::Read);
        c.count_request(OpKind::WriteHash);
        c.count_latency(Duration::from_micros(300));
        c.count_latency(Duration::from_millis(3));
        c.count_latency(Duration::from_secs(60));
        let r = c.read();
        assert_eq!((r.read, r.write, r.write_hash), (2, 0, 1));
        assert_eq!(r.latency_buckets.len(), LATENCY_BOUNDS.len() + 1);
        assert_eq!(r.latency_buckets[0], 1, "0.3 ms is within 0.5 ms");
        assert_eq!(r.latency_buckets[3], 1, "3 ms is within 5 ms");
        assert_eq!(r.latency_buckets[LATENCY_BOUNDS.len()], 1, "60 s is +Inf");
        assert_eq!(r.latency_count(), 3);
        assert_eq!(r.latency_sum_micros, 300 + 3_000 + 60_000_000);
    }
}
