//! Latency samples of one kind of operation and their percentiles (nearest rank).

use serde::Serialize;
use std::time::Duration;

/// Every latency of one kind of operation, in microseconds.
#[derive(Clone, Debug, Default)]
pub struct Samples(Vec<u64>);

/// Count, throughput and percentiles of one kind of operation, as `bench --json` prints
/// them (percentiles are 0 when there is no sample).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub throughput: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
}

impl Samples {
    pub fn record(&mut self, latency: Duration) {
        self.0
            .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn merge(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The samples in microseconds, in the order recorded (merged runs one after another).
    pub fn micros(&self) -> &[u64] {
        &self.0
    }

    /// Summarises the samples taken over `elapsed`.
    pub fn summary(mut self, elapsed: Duration) -> Summary {
        self.0.sort_unstable();
        let secs = elapsed.as_secs_f64();
        let count = self.0.len() as u64;
        Summary {
            count,
            throughput: if secs > 0.0 { count as f64 / secs } else { 0.0 },
            p50_us: self.percentile(0.50),
            p90_us: self.percentile(0.90),
            p99_us: self.percentile(0.99),
            p999_us: self.percentile(0.999),
        }
    }

    /// Nearest rank on sorted samples: the smallest sample with at least `q` of the
    /// samples at or below it.
    fn percentile(&self, q: f64) -> u64 {
        if self.0.is_empty() {
            return 0;
        }
        let rank = (q * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut s = Samples::default();
        for us in (1..=1000).rev() {
            s.record(Duration::from_micros(us));
        }
        let sum = s.summary(Duration::from_secs(2));
        assert_eq!(sum.count, 1000);
        assert_eq!(sum.throughput, 500.0);
        assert_eq!(
            (sum.p50_us, sum.p90_us, sum.p99_us, sum.p999_us),
            (500, 900, 990, 999)
        );
    }

    #[test]
    fn no_samples_give_zeros_and_one_sample_is_every_percentile() {
        let sum = Samples::default().summary(Duration::from_secs(1));
        assert_eq!((sum.count, sum.p50_us, sum.p999_us), (0, 0, 0));
        let mut s = Samples::default();
        s.record(Duration::from_micros(42));
        let sum = s.summary(Duration::from_secs(1));
        assert_eq!((sum.p50_us, sum.p999_us), (42, 42));
    }
}
