//! `paxoskv check FILE`: checks a recorded history (JSON lines, see
//! docs/history-format.md) for linearizability against the key-value model, with
//! write_hash computed as the original does (Erlang's phash2); with `--html OUT` it also
//! draws the history (see `paxoskv::observer::report`).

use crate::cli::args::CheckArgs;
use crate::cli::error::CliError;
use paxoskv::checker::{self, CheckError, CheckResult, KeyOutcome};
use paxoskv::observer::report;
use std::fs::File;
use std::io::BufReader;

/// What `check` found: printed on stdout; the exit code says it too.
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    Unknown,
}

/// Checks the file and prints the verdict (with the excerpt when it fails).
pub fn run(args: CheckArgs) -> Result<Verdict, CliError> {
    let bad = |e: CheckError| match e {
        CheckError::Open { .. } => CliError::BadInput(e.to_string()),
        other => CliError::BadInput(format!("{}: {other}", args.file.display())),
    };
    let hash = kv_app::phash2::write_hash_value;
    let result = match &args.html {
        None => checker::check_file(&args.file, hash, args.budget).map_err(bad)?,
        Some(out) => {
            let file = File::open(&args.file).map_err(|source| {
                bad(CheckError::Open {
                    path: args.file.clone(),
                    source,
                })
            })?;
            let operations = checker::parse_history(BufReader::new(file)).map_err(bad)?;
            let per_key = checker::check_per_key(&operations, hash, args.budget).map_err(bad)?;
            let html = report::render(&args.file.display().to_string(), &operations, &per_key);
            std::fs::write(out, html)
                .map_err(CliError::io(format!("writing {}", out.display())))?;
            verdict_of(per_key)
        }
    };
    println!("{result}");
    Ok(match result {
        CheckResult::Linearizable => Verdict::Linearizable,
        CheckResult::NotLinearizable { .. } => Verdict::NotLinearizable,
        CheckResult::Unknown { .. } => Verdict::Unknown,
    })
}

/// The verdict on the whole history, as `check_history` gives it: a failing key wins over
/// one that ran out of budget.
fn verdict_of(per_key: Vec<(String, KeyOutcome)>) -> CheckResult {
    let mut unknown = None;
    for (key, outcome) in per_key {
        match outcome {
            KeyOutcome::Linearizable(_) => {}
            KeyOutcome::NotLinearizable(excerpt) => {
                return CheckResult::NotLinearizable { key, excerpt };
            }
            KeyOutcome::Unknown => {
                unknown.get_or_insert(key);
            }
        }
    }
    match unknown {
        Some(key) => CheckResult::Unknown { key },
        None => CheckResult::Linearizable,
    }
}
