//! `paxoskv check FILE`: checks a recorded history (JSON lines, see
//! docs/history-format.md) for linearizability against the key-value model, with
//! write_hash computed as the original does (Erlang's phash2).

use crate::cli::args::CheckArgs;
use crate::cli::error::CliError;
use paxoskv::checker::{self, CheckError, CheckResult};

/// What `check` found: printed on stdout; the exit code says it too.
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    Unknown,
}

/// Checks the file and prints the verdict (with the excerpt when it fails).
pub fn run(args: CheckArgs) -> Result<Verdict, CliError> {
    let result = checker::check_file(&args.file, kv_app::phash2::write_hash_value, args.budget)
        .map_err(|e| match e {
            CheckError::Open { .. } => CliError::BadInput(e.to_string()),
            other => CliError::BadInput(format!("{}: {other}", args.file.display())),
        })?;
    println!("{result}");
    Ok(match result {
        CheckResult::Linearizable => Verdict::Linearizable,
        CheckResult::NotLinearizable { .. } => Verdict::NotLinearizable,
        CheckResult::Unknown { .. } => Verdict::Unknown,
    })
}
