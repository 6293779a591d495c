//! Rates over time: decisions per second (from how far the nodes have applied the log)
//! and operations per second by kind (from the servers' request counters), kept for the
//! last few minutes for the page's chart.

use super::reading::NodeReading;
use serde::Serialize;
use std::collections::VecDeque;

/// How much history the chart keeps.
pub const KEEP_MS: u64 = 5 * 60 * 1000;

/// Cluster-wide counters at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    pub at_ms: u64,
    /// The furthest any node has applied the log: one decided instance per step.
    pub applied: u64,
    /// Requests taken by all servers, by kind: read, write, write-hash.
    pub ops: [u64; 3],
}

impl Sample {
    pub fn of(readings: &[NodeReading], at_ms: u64) -> Sample {
        let mut s = Sample {
            at_ms,
            ..Sample::default()
        };
        for st in readings.iter().filter_map(NodeReading::status) {
            s.applied = s.applied.max(st.kv.applied);
            s.ops[0] += st.kv.ops.read;
            s.ops[1] += st.kv.ops.write;
            s.ops[2] += st.kv.ops.write_hash;
        }
        s
    }
}

/// Per-second rates between two samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Rates {
    /// Milliseconds since the observer started (the end of the interval).
    pub at_ms: u64,
    pub decisions: f64,
    pub read: f64,
    pub write: f64,
    pub write_hash: f64,
}

impl Rates {
    /// From `a` to `b`; counters that went back (a node restarted, or stopped answering)
    /// count as no change.
    pub fn between(a: &Sample, b: &Sample) -> Rates {
        let secs = b.at_ms.saturating_sub(a.at_ms) as f64 / 1000.0;
        if secs <= 0.0 {
            return Rates {
                at_ms: b.at_ms,
                ..Rates::default()
            };
        }
        let per_s = |x: u64, y: u64| y.saturating_sub(x) as f64 / secs;
        Rates {
            at_ms: b.at_ms,
            decisions: per_s(a.applied, b.applied),
            read: per_s(a.ops[0], b.ops[0]),
            write: per_s(a.ops[1], b.ops[1]),
            write_hash: per_s(a.ops[2], b.ops[2]),
        }
    }
}

/// Samples of the last [`KEEP_MS`].
#[derive(Default)]
pub struct History {
    samples: VecDeque<Sample>,
}

impl History {
    pub fn push(&mut self, s: Sample) {
        self.samples.push_back(s);
        while let Some(first) = self.samples.front()
            && s.at_ms.saturating_sub(first.at_ms) > KEEP_MS
        {
            self.samples.pop_front();
        }
    }

    /// The rates over about the last `window_ms`.
    pub fn current(&self, window_ms: u64) -> Rates {
        let Some(last) = self.samples.back() else {
            return Rates::default();
        };
        let first = self
            .samples
            .iter()
            .find(|s| last.at_ms.saturating_sub(s.at_ms) <= window_ms)
            .unwrap_or(last);
        Rates::between(first, last)
    }

    /// One point per `step_ms` or so over the kept history, for the chart.
    pub fn chart(&self, step_ms: u64) -> Vec<Rates> {
        let mut out = Vec::new();
        let mut from: Option<&Sample> = None;
        for s in &self.samples {
            match from {
                None => from = Some(s),
                Some(f) if s.at_ms.saturating_sub(f.at_ms) >= step_ms => {
                    out.push(Rates::between(f, s));
                    from = Some(s);
                }
                Some(_) => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, applied: u64, ops: [u64; 3]) -> Sample {
        Sample {
            at_ms,
            applied,
            ops,
        }
    }

    #[test]
    fn rates_are_per_second_and_ignore_counters_that_went_back() {
        let r = Rates::between(&sample(0, 10, [0, 0, 0]), &sample(2000, 30, [8, 4, 2]));
        assert_eq!(
            (r.decisions, r.read, r.write, r.write_hash),
            (10.0, 4.0, 2.0, 1.0)
        );
        let r = Rates::between(&sample(0, 10, [5, 0, 0]), &sample(1000, 12, [1, 0, 0]));
        assert_eq!((r.decisions, r.read), (2.0, 0.0));
    }

    #[test]
    fn history_keeps_five_minutes_and_charts_per_step() {
        let mut h = History::default();
        for i in 0..=700u64 {
            h.push(sample(i * 500, i, [i, 0, 0]));
        }
        assert_eq!(h.samples.len(), 601, "5 minutes of half-seconds, both ends");
        let chart = h.chart(1000);
        assert_eq!(chart.len(), 300);
        assert!(chart.iter().all(|r| r.decisions == 2.0 && r.read == 2.0));
        assert_eq!(h.current(2000).decisions, 2.0);
    }
}
