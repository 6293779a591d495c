//! Recording a history: each client call becomes a `checker::Operation` whose call and
//! return times are microseconds from one `Instant` of the runtime's clock (simulated
//! time in a simulation) shared by every client of the run;
//! and the random operations the nemesis clients run (each value unique, so a value seen
//! in a read names the one operation that wrote it).

use runtime::clock::Instant;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use paxoskv::checker::{OpKind, Operation, Outcome};
use rand::Rng;

/// Collects the operations of every client of a run. Cloning shares the record.
#[derive(Clone)]
pub struct HistoryRecorder {
    origin: Instant,
    operations: Arc<Mutex<Vec<Operation>>>,
}

impl Default for HistoryRecorder {
    fn default() -> Self {
        HistoryRecorder::new()
    }
}

impl HistoryRecorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Self {
        HistoryRecorder::with_origin(Instant::now())
    }

    /// A recorder whose clock starts at `origin` (share it with the nemesis's schedule).
    pub fn with_origin(origin: Instant) -> Self {
        HistoryRecorder {
            origin,
            operations: Arc::default(),
        }
    }

    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Microseconds since the origin.
    pub fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Notes the call of an operation now; say how it ended on the returned handle.
    pub fn call(&self, client: u64, kind: OpKind, key: &str, value: &str) -> PendingCall {
        PendingCall {
            recorder: self.clone(),
            client,
            kind,
            key: key.to_string(),
            value: if kind == OpKind::Read {
                String::new()
            } else {
                value.to_string()
            },
            call: self.now(),
        }
    }

    /// Adds a finished operation as it is (for histories made by hand).
    pub fn push(&self, operation: Operation) {
        self.lock().push(operation);
    }

    /// Every operation recorded so far, in the order they ended.
    pub fn operations(&self) -> Vec<Operation> {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Operation>> {
        // A client that panicked mid-push leaves a usable list.
        self.operations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// An operation called but not yet ended.
#[must_use = "say how the operation ended, or it is missing from the history"]
pub struct PendingCall {
    recorder: HistoryRecorder,
    client: u64,
    kind: OpKind,
    key: String,
    value: String,
    call: u64,
}

impl PendingCall {
    /// The client got `result` now.
    pub fn returned(self, result: impl Into<String>) {
        let at = self.recorder.now();
        let outcome = Outcome::Returned {
            result: result.into(),
            at,
        };
        self.finish(outcome);
    }

    /// The client stopped waiting now: the operation may take effect later, or never.
    pub fn gave_up(self, error: impl Into<String>) {
        let gave_up_at = Some(self.recorder.now());
        let outcome = Outcome::Unknown {
            error: error.into(),
            gave_up_at,
        };
        self.finish(outcome);
    }

    fn finish(self, outcome: Outcome) {
        let operation = Operation {
            client: self.client,
            kind: self.kind,
            key: self.key,
            value: self.value,
            call: self.call,
            outcome,
        };
        self.recorder.push(operation);
    }
}

/// Writes `operations` in the history format, one line each, to `path`.
pub fn write_history(path: &Path, operations: &[Operation]) -> std::io::Result<()> {
    let mut text = String::new();
    for operation in operations {
        text.push_str(&operation.to_json_line());
        text.push('\n');
    }
    std::fs::write(path, text)
}

/// Where a failed run of `variant` with `seed` keeps its history.
pub fn history_path(variant: &str, seed: u64) -> PathBuf {
    std::env::temp_dir().join(format!("paxoskv-{variant}-{seed}.history"))
}

/// One operation a client is about to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedOp {
    pub kind: OpKind,
    pub key: String,
    /// Unique in the run for writes and write-hashes; empty for reads.
    pub value: String,
}

/// The name of key `index`.
pub fn key_name(index: usize) -> String {
    format!("k{index}")
}

/// Client `client`'s `n`-th operation: a read (40%), a write (30%) or a write-hash (30%)
/// of a random key among `keys`. Values are `c<client>-<n>`: unique, never all digits, so
/// they can never be mistaken for a write-hash result.
pub fn plan_operation(rng: &mut impl Rng, client: u64, n: u64, keys: usize) -> PlannedOp {
    let key = key_name(rng.random_range(0..keys.max(1)));
    let draw = rng.random_range(0..10);
    let kind = match draw {
        0..4 => OpKind::Read,
        4..7 => OpKind::Write,
        _ => OpKind::WriteHash,
    };
    let value = if kind == OpKind::Read {
        String::new()
    } else {
        format!("c{client}-{n}")
    };
    PlannedOp { kind, key, value }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxoskv::checker::parse_history;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn recorded_operations_carry_ordered_times_and_round_trip_through_a_file() {
        let recorder = HistoryRecorder::new();
        let first = recorder.call(1, OpKind::Write, "k", "a");
        first.returned("a");
        let second = recorder.call(2, OpKind::Read, "k", "ignored");
        second.gave_up("timeout");
        let ops = recorder.operations();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].result(), Some("a"));
        assert!(ops[0].return_time().is_some_and(|at| at >= ops[0].call));
        assert!(ops[1].call >= ops[0].return_time().unwrap_or(u64::MAX));
        assert_eq!(ops[1].value, "", "a read's argument is not recorded");
        assert!(matches!(&ops[1].outcome, Outcome::Unknown { error, .. } if error == "timeout"));

        let path = std::env::temp_dir().join(format!(
            "paxoskv-nemesis-roundtrip-{}.history",
            std::process::id()
        ));
        write_history(&path, &ops).expect("history written");
        let text = std::fs::read(&path).expect("history read");
        let _ = std::fs::remove_file(&path);
        assert_eq!(parse_history(&text[..]).expect("parses"), ops);
    }

    #[test]
    fn planned_values_are_unique_and_kinds_mixed() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut values = std::collections::HashSet::new();
        let mut kinds = std::collections::HashSet::new();
        for client in 0..3 {
            for n in 0..100 {
                let op = plan_operation(&mut rng, client, n, 4);
                assert!(["k0", "k1", "k2", "k3"].contains(&op.key.as_str()));
                kinds.insert(op.kind);
                if op.kind == OpKind::Read {
                    assert!(op.value.is_empty());
                } else {
                    assert!(!op.value.bytes().all(|b| b.is_ascii_digit()));
                    assert!(values.insert(op.value.clone()), "{} twice", op.value);
                }
            }
        }
        assert_eq!(kinds.len(), 3);
    }
}
