//! The final checks of a nemesis run, and the report a failed run prints: the history is
//! linearizable (with Erlang's phash2 for write-hash), no two acknowledged write-hashes
//! of a key returned the same previous value, and the surviving replicas agree.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Instant;

use kv_app::phash2::write_hash_value;
use paxoskv::checker::{CheckResult, OpKind, Operation, check_history};

use super::config::NemesisConfig;
use super::history::{history_path, write_history};
use super::schedule::Schedule;

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The checker found no linearization; the text is its verdict with the excerpt.
    NotLinearizable(String),
    /// The checker's budget ran out: too big a history to prove anything.
    Unknown(String),
    /// The history could not be checked at all.
    Invalid(String),
    /// Two acknowledged write-hashes saw the same previous value.
    DuplicateWriteHashResults(Vec<String>),
    /// Replicas that should agree do not.
    ReplicasDiffer(String),
    /// Something the run needs did not happen in time (a client, the final reads...).
    Stuck(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotLinearizable(verdict) => write!(f, "the history is {verdict}"),
            Problem::Unknown(verdict) => write!(
                f,
                "the checker could not decide ({verdict}); make the run shorter or with fewer \
                 clients, or re-check the file with `paxoskv check --budget N FILE`"
            ),
            Problem::Invalid(error) => write!(f, "the history cannot be checked: {error}"),
            Problem::DuplicateWriteHashResults(lines) => write!(
                f,
                "acknowledged write-hashes returned the same previous value (one of them was \
                 applied twice or not at all):\n{}",
                lines.join("\n")
            ),
            Problem::ReplicasDiffer(what) => write!(f, "the replicas differ: {what}"),
            Problem::Stuck(what) => write!(f, "stuck: {what}"),
        }
    }
}

/// Linearizability of the whole history, with phash2 as the write-hash; `Unknown` is a
/// failure too.
pub fn check_linearizable(history: &[Operation], step_budget: u64) -> Result<(), Problem> {
    let started = Instant::now();
    let verdict = check_history(history, write_hash_value, step_budget)
        .map_err(|error| Problem::Invalid(error.to_string()))?;
    log::info!(
        "checked {} operations in {:?}: {}",
        history.len(),
        started.elapsed(),
        verdict
    );
    match verdict {
        CheckResult::Linearizable => Ok(()),
        unknown @ CheckResult::Unknown { .. } => Err(Problem::Unknown(unknown.to_string())),
        failing => Err(Problem::NotLinearizable(failing.to_string())),
    }
}

/// With unique values, every acknowledged write-hash of a key moved the key from a
/// distinct state, so no two of them may report the same previous value: if they did,
/// one of them was applied twice or its effect was lost. The one exception is a hash:
/// phash2 has only 2^27 values, so in a long history two write-hashes of a key may store
/// the same one (a collision). A hash may therefore be reported as often as write-hashes
/// of the key may have stored it: those acknowledged to have stored it, plus every one
/// that timed out.
pub fn check_write_hash_results_distinct(history: &[Operation]) -> Result<(), Problem> {
    let write_hashes = || history.iter().filter(|op| op.kind == OpKind::WriteHash);
    let mut stored: HashMap<(&str, String), usize> = HashMap::new();
    let mut timed_out: HashMap<&str, usize> = HashMap::new();
    let mut reported: BTreeMap<(&str, &str), Vec<&Operation>> = BTreeMap::new();
    for op in write_hashes() {
        match op.result() {
            Some(previous) => {
                let hash = write_hash_value(previous, &op.value);
                *stored.entry((op.key.as_str(), hash)).or_default() += 1;
                reported.entry((&op.key, previous)).or_default().push(op);
            }
            None => *timed_out.entry(&op.key).or_default() += 1,
        }
    }
    let mut clashes = Vec::new();
    for ((key, previous), ops) in reported {
        let is_hash = !previous.is_empty() && previous.bytes().all(|b| b.is_ascii_digit());
        let allowed = if is_hash {
            let acknowledged = stored
                .get(&(key, previous.to_string()))
                .copied()
                .unwrap_or(0);
            acknowledged + timed_out.get(key).copied().unwrap_or(0)
        } else {
            1
        };
        if ops.len() > allowed.max(1) {
            let lines: Vec<String> = ops
                .iter()
                .map(|op| format!("  {}", op.to_json_line()))
                .collect();
            clashes.push(lines.join("\n"));
        }
    }
    if clashes.is_empty() {
        Ok(())
    } else {
        Err(Problem::DuplicateWriteHashResults(clashes))
    }
}

/// Every check on the recorded history (final reads included).
pub fn check_history_of_run(history: &[Operation], step_budget: u64) -> Result<(), Problem> {
    check_write_hash_results_distinct(history)?;
    check_linearizable(history, step_budget)
}

/// What one replica holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaState {
    pub name: String,
    /// The highest Paxos instance applied to its data.
    pub applied: u64,
    pub data: BTreeMap<String, String>,
}

/// Whether every replica has applied the same log prefix and holds the same data.
pub fn replicas_agree(replicas: &[ReplicaState]) -> Result<(), Problem> {
    let Some(first) = replicas.first() else {
        return Ok(());
    };
    for other in &replicas[1..] {
        if other.applied != first.applied || other.data != first.data {
            let summary: Vec<String> = replicas
                .iter()
                .map(|r| format!("{} applied {} data {:?}", r.name, r.applied, r.data))
                .collect();
            return Err(Problem::ReplicasDiffer(summary.join("; ")));
        }
    }
    Ok(())
}

/// Counts of a history, for the log of a run.
pub fn summary(history: &[Operation]) -> String {
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for op in history {
        let entry = counts.entry(op.kind.to_string()).or_default();
        if op.result().is_some() {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(kind, (ok, unknown))| format!("{kind} {ok} ok / {unknown} unknown"))
        .collect();
    format!("{} operations: {}", history.len(), parts.join(", "))
}

/// Everything a failed run must print: the problem, the seed and how to replay it, the
/// schedule, and where the history was written (so `paxoskv check FILE` can re-check it).
pub fn failure_report(
    variant: &str,
    replay: &str,
    config: &NemesisConfig,
    schedule: &Schedule,
    history: &[Operation],
    problem: &Problem,
) -> String {
    let path = history_path(variant, config.seed);
    let saved = match write_history(&path, history) {
        Ok(()) => format!(
            "history ({}) written to {}\nre-check it with: paxoskv check {}",
            summary(history),
            path.display(),
            path.display()
        ),
        Err(error) => format!("could not write the history to {}: {error}", path.display()),
    };
    format!(
        "nemesis {variant} FAILED with seed {seed}: {problem}\n\
         run: {config}\n\
         replay with NEMESIS_SEED={seed} ({replay})\n\
         {saved}\n\
         schedule: {schedule}",
        seed = config.seed
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxoskv::checker::Outcome;

    fn done(client: u64, kind: OpKind, value: &str, result: &str, call: u64, at: u64) -> Operation {
        Operation {
            client,
            kind,
            key: "k".to_string(),
            value: value.to_string(),
            call,
            outcome: Outcome::Returned {
                result: result.to_string(),
                at,
            },
        }
    }

    #[test]
    fn two_write_hashes_reporting_one_previous_value_are_caught() {
        let ok = vec![
            done(1, OpKind::WriteHash, "a", "", 0, 10),
            done(
                2,
                OpKind::WriteHash,
                "b",
                &write_hash_value("", "a"),
                20,
                30,
            ),
        ];
        assert_eq!(check_write_hash_results_distinct(&ok), Ok(()));
        assert_eq!(check_history_of_run(&ok, 1_000_000), Ok(()));
        // Concurrent, both "saw" the empty key: one of them was lost.
        let lost = vec![
            done(1, OpKind::WriteHash, "a", "", 0, 10),
            done(2, OpKind::WriteHash, "b", "", 5, 30),
        ];
        assert!(matches!(
            check_write_hash_results_distinct(&lost),
            Err(Problem::DuplicateWriteHashResults(lines)) if lines.len() == 1
        ));
        // The same previous value on different keys is fine.
        let mut other_key = lost.clone();
        other_key[1].key = "other".to_string();
        assert_eq!(check_write_hash_results_distinct(&other_key), Ok(()));
    }

    #[test]
    fn a_hash_collision_is_not_taken_for_a_duplicate() {
        // Two states that phash2 maps to one value (found in a real soak's history).
        let collision = write_hash_value("c5-5989", "c5-5990");
        assert_eq!(collision, write_hash_value("c3-12554", "c3-12555"));
        let history = vec![
            done(1, OpKind::Write, "c5-5989", "c5-5989", 0, 10),
            done(1, OpKind::WriteHash, "c5-5990", "c5-5989", 20, 30),
            done(2, OpKind::WriteHash, "c5-5991", &collision, 40, 50),
            done(1, OpKind::Write, "c3-12554", "c3-12554", 60, 70),
            done(1, OpKind::WriteHash, "c3-12555", "c3-12554", 80, 90),
            done(2, OpKind::WriteHash, "c2-14264", &collision, 100, 110),
        ];
        assert_eq!(check_history_of_run(&history, 1_000_000), Ok(()));
        // Stored once but reported twice: one of them was applied twice.
        let mut doubled = history[..3].to_vec();
        doubled.push(done(3, OpKind::WriteHash, "c4-1", &collision, 40, 60));
        assert!(matches!(
            check_write_hash_results_distinct(&doubled),
            Err(Problem::DuplicateWriteHashResults(lines)) if lines.len() == 1
        ));
    }

    #[test]
    fn replicas_must_match_in_applied_and_data() {
        let replica = |name: &str, applied, value: &str| ReplicaState {
            name: name.to_string(),
            applied,
            data: [("k".to_string(), value.to_string())].into_iter().collect(),
        };
        assert_eq!(
            replicas_agree(&[replica("a", 5, "x"), replica("b", 5, "x")]),
            Ok(())
        );
        assert!(replicas_agree(&[replica("a", 5, "x"), replica("b", 4, "x")]).is_err());
        assert!(replicas_agree(&[replica("a", 5, "x"), replica("b", 5, "y")]).is_err());
    }
}
