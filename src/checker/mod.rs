//! The linearizability checker: reads a recorded history of key-value operations (see
//! `docs/history-format.md`) and decides, key by key, whether some order of the
//! operations, each taking effect at one instant between its call and its return, explains
//! every answer. Operations that timed out may have taken effect or not.
//!
//! ```
//! use paxoskv::checker::{check_history, parse_history, CheckResult, DEFAULT_STEP_BUDGET};
//! let history = r#"
//! {"client":1,"op":"write","key":"k","value":"a","ok":true,"result":"a","call":0,"return":10}
//! {"client":2,"op":"read","key":"k","ok":true,"result":"a","call":11,"return":20}
//! "#;
//! let ops = parse_history(history.as_bytes()).unwrap();
//! let hash = |prev: &str, v: &str| format!("{prev}{v}").len().to_string();
//! let result = check_history(&ops, hash, DEFAULT_STEP_BUDGET).unwrap();
//! assert_eq!(result, CheckResult::Linearizable);
//! ```

mod chains;
mod event_list;
mod history;
mod memo;
mod model;
mod op_set;
mod search;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

pub use history::{OpKind, Operation, Outcome, parse_history, parse_line};
pub use model::apply;

use search::KeyVerdict;

/// The default work budget per key: enough for histories of tens of thousands of
/// operations per key with ordinary concurrency; a unit is roughly 0.1 µs in a release
/// build, so a key that exhausts it has taken a few seconds.
pub const DEFAULT_STEP_BUDGET: u64 = 20_000_000;

/// What went wrong before any checking could happen.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot open history {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("history line {line}: {message}")]
    Parse { line: usize, message: String },
    #[error("operation {index} of the history: {message}")]
    InvalidOperation { index: usize, message: String },
}

/// The verdict on a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    /// Every key has a linearization.
    Linearizable,
    /// `key` has none; `excerpt` shows where the search got stuck.
    NotLinearizable { key: String, excerpt: Box<Excerpt> },
    /// No key is known to fail, but the step budget ran out on `key` before an answer.
    Unknown { key: String },
}

/// The smallest piece of a key's history that shows why it has no linearization: the
/// longest linearizable prefix the search found, and the operations it could not extend
/// it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excerpt {
    /// How many operations that prefix holds.
    pub prefix_len: usize,
    /// The key's value after the prefix.
    pub value_after_prefix: String,
    /// The last few operations of the prefix, in linearization order.
    pub prefix_tail: Vec<Operation>,
    /// The operation that returned before the search could place it after the prefix
    /// (the earliest return among the operations left). Always present in practice.
    pub stuck: Option<Operation>,
    /// The other operations not in the prefix that were called before `stuck` returned,
    /// in call order: the candidates the search also had to try.
    pub pending: Vec<Operation>,
    /// How many more such operations there were beyond those in `pending`.
    pub pending_omitted: usize,
}

/// Checks a history file (JSON lines); `hash` is what `write_hash` stores given the
/// previous value and the argument; `step_budget` bounds the work per key.
pub fn check_file<H>(
    path: impl AsRef<Path>,
    hash: H,
    step_budget: u64,
) -> Result<CheckResult, CheckError>
where
    H: Fn(&str, &str) -> String,
{
    let path = path.as_ref();
    let file = File::open(path).map_err(|source| CheckError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let operations = parse_history(BufReader::new(file))?;
    check_history(&operations, hash, step_budget)
}

/// Checks a history: each key on its own (a history is linearizable exactly when each
/// key's part is). A failing key wins over one that ran out of budget.
pub fn check_history<H>(
    operations: &[Operation],
    hash: H,
    step_budget: u64,
) -> Result<CheckResult, CheckError>
where
    H: Fn(&str, &str) -> String,
{
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for (index, op) in operations.iter().enumerate() {
        op.validate()
            .map_err(|message| CheckError::InvalidOperation { index, message })?;
        by_key.entry(&op.key).or_default().push(op);
    }
    let mut out_of_budget = None;
    for (key, key_operations) in by_key {
        match search::check_key(&key_operations, &hash, step_budget) {
            KeyVerdict::Linearizable => log::debug!("key {key}: linearizable"),
            KeyVerdict::NotLinearizable(excerpt) => {
                log::debug!("key {key}: not linearizable");
                return Ok(CheckResult::NotLinearizable {
                    key: key.to_string(),
                    excerpt,
                });
            }
            KeyVerdict::Unknown => {
                log::debug!("key {key}: step budget of {step_budget} exhausted");
                out_of_budget.get_or_insert_with(|| key.to_string());
            }
        }
    }
    Ok(match out_of_budget {
        Some(key) => CheckResult::Unknown { key },
        None => CheckResult::Linearizable,
    })
}

/// What the checker found for one key, for pictures of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOutcome {
    /// A linearization: indices into the history, in order (operations without an
    /// answer that need not have taken effect are left out).
    Linearizable(Vec<usize>),
    NotLinearizable(Box<Excerpt>),
    /// The step budget ran out.
    Unknown,
}

/// Checks each key of a history on its own and says, for every key in key order, what
/// was found (the linearization itself when there is one).
pub fn check_per_key<H>(
    operations: &[Operation],
    hash: H,
    step_budget: u64,
) -> Result<Vec<(String, KeyOutcome)>, CheckError>
where
    H: Fn(&str, &str) -> String,
{
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for (index, op) in operations.iter().enumerate() {
        op.validate()
            .map_err(|message| CheckError::InvalidOperation { index, message })?;
        by_key.entry(&op.key).or_default().push(op);
    }
    // Operations are found again by address: the search hands back references into
    // `operations`.
    let positions: std::collections::HashMap<*const Operation, usize> = operations
        .iter()
        .enumerate()
        .map(|(i, op)| (op as *const Operation, i))
        .collect();
    let index_of = |op: &Operation| {
        positions
            .get(&(op as *const Operation))
            .copied()
            .unwrap_or(usize::MAX)
    };
    Ok(by_key
        .into_iter()
        .map(|(key, ops)| {
            let outcome = match search::check_key_ordered(&ops, &hash, step_budget) {
                (KeyVerdict::Linearizable, order) => KeyOutcome::Linearizable(
                    order
                        .unwrap_or_default()
                        .into_iter()
                        .map(index_of)
                        .collect(),
                ),
                (KeyVerdict::NotLinearizable(excerpt), _) => KeyOutcome::NotLinearizable(excerpt),
                (KeyVerdict::Unknown, _) => KeyOutcome::Unknown,
            };
            (key.to_string(), outcome)
        })
        .collect())
}

impl fmt::Display for CheckResult {
    /// `linearizable`, `unknown` (then a line on why), or `not linearizable: key K`
    /// followed by the excerpt, one history line per operation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckResult::Linearizable => write!(f, "linearizable"),
            CheckResult::Unknown { key } => write!(
                f,
                "unknown\n  the step budget ran out while checking key {key}"
            ),
            CheckResult::NotLinearizable { key, excerpt } => {
                write!(f, "not linearizable: key {key}\n{excerpt}")
            }
        }
    }
}

impl fmt::Display for Excerpt {
    /// Indented lines, operations as history lines, no newline after the last one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = serde_json::to_string(&self.value_after_prefix).unwrap_or_default();
        let mut lines = vec![format!(
            "  longest linearizable prefix: {} operation(s), leaving the value {value}",
            self.prefix_len
        )];
        // A heading, then its operations one per line (nothing when there are none).
        let mut section = |heading: &str, ops: &[Operation]| {
            if !ops.is_empty() {
                lines.push(format!("  {heading}"));
                lines.extend(ops.iter().map(|op| format!("    {}", op.to_json_line())));
            }
        };
        section("ending with:", &self.prefix_tail);
        section(
            "cannot be extended by this operation before it returns:",
            self.stuck.as_slice(),
        );
        section("nor by the others called by then:", &self.pending);
        if self.pending_omitted > 0 {
            lines.push(format!("    ... and {} more", self.pending_omitted));
        }
        f.write_str(&lines.join("\n"))
    }
}
