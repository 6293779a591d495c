//! Counters and the fsync latency histogram of a log, shown by `ctl status`. Latency is
//! measured with the OS clock: it is a measurement only, never an input to a decision.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Upper bounds, in microseconds, of the latency buckets; the last bucket takes the rest.
pub const LATENCY_BUCKETS_US: [u64; 16] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    1_000_000, 10_000_000,
];

/// A latency histogram with fixed buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// `counts[i]` samples were at most `LATENCY_BUCKETS_US[i]`; the last entry counts
    /// the samples above every bound.
    pub counts: Vec<u64>,
    pub samples: u64,
    pub total_us: u64,
    pub max_us: u64,
}

impl Histogram {
    /// Records one sample.
    pub fn record(&mut self, latency: Duration) {
        if self.counts.is_empty() {
            self.counts = vec![0; LATENCY_BUCKETS_US.len() + 1];
        }
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|&bound| us <= bound)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.counts[bucket] += 1;
        self.samples += 1;
        self.total_us = self.total_us.saturating_add(us);
        self.max_us = self.max_us.max(us);
    }

    /// The upper bound (µs) of the bucket holding the `q`-quantile (0.0..=1.0); `None`
    /// without samples. `u64::MAX` means "above the last bound".
    pub fn quantile_upper_bound_us(&self, q: f64) -> Option<u64> {
        if self.samples == 0 {
            return None;
        }
        let rank = ((self.samples as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(LATENCY_BUCKETS_US.get(bucket).copied().unwrap_or(u64::MAX));
            }
        }
        Some(u64::MAX)
    }

    /// The mean latency in µs.
    pub fn mean_us(&self) -> Option<u64> {
        (self.samples > 0).then(|| self.total_us / self.samples)
    }
}

/// A snapshot of a log's counters (cheap to copy; serialisable for `ctl status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageStats {
    /// Records made durable (appended and synced).
    pub records_durable: u64,
    /// Records appended (written, maybe not yet synced).
    pub records_appended: u64,
    /// Write calls that carried records (one per group-commit batch).
    pub record_writes: u64,
    /// Bytes of record frames written.
    pub bytes_written: u64,
    /// `fdatasync` calls that made records durable: group commit keeps this far below
    /// `records_durable`.
    pub log_fsyncs: u64,
    /// Every other fsync: new segment headers, snapshots, directories.
    pub other_fsyncs: u64,
    /// Latency of the record `fdatasync`s.
    pub log_fsync_latency: Histogram,
    /// Failed writes (full disk, I/O errors); none of their records were acknowledged.
    pub write_errors: u64,
    /// Failed fsyncs. Any of them poisons the log.
    pub fsync_errors: u64,
    /// True once an fsync error (or a failed clean-up) has stopped the log.
    pub poisoned: bool,
    /// Snapshots written.
    pub snapshots: u64,
    /// Position of the newest snapshot (records below it live only in the snapshot).
    pub snapshot_position: u64,
    /// Log segments removed after snapshots.
    pub segments_removed: u64,
    /// Segments in the data dir now.
    pub segments: u64,
    /// The index the next record will get.
    pub next_index: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_quantiles() {
        let mut histogram = Histogram::default();
        assert_eq!(histogram.quantile_upper_bound_us(0.5), None);
        for us in [5, 40, 40, 900, 20_000_000] {
            histogram.record(Duration::from_micros(us));
        }
        assert_eq!(histogram.samples, 5);
        assert_eq!(histogram.counts[0], 1); // <= 10 µs
        assert_eq!(histogram.counts[2], 2); // <= 50 µs
        assert_eq!(histogram.counts[6], 1); // <= 1 ms
        assert_eq!(*histogram.counts.last().unwrap(), 1); // beyond 10 s
        assert_eq!(histogram.quantile_upper_bound_us(0.5), Some(50));
        assert_eq!(histogram.quantile_upper_bound_us(0.8), Some(1_000));
        assert_eq!(histogram.quantile_upper_bound_us(1.0), Some(u64::MAX));
        assert_eq!(histogram.max_us, 20_000_000);
    }

    #[test]
    fn stats_serialise_for_ctl_status() {
        let mut stats = StorageStats {
            log_fsyncs: 3,
            records_durable: 40,
            ..StorageStats::default()
        };
        stats.log_fsync_latency.record(Duration::from_micros(300));
        let bytes = postcard::to_stdvec(&stats).unwrap();
        let back: StorageStats = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, stats);
    }
}
