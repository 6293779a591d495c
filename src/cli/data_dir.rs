//! Where a server node keeps its state: `--data-dir` and `--memory`, the default data dir
//! (`./paxoskv-data/NAME`, or `$PAXOSKV_DATA_ROOT/NAME`), the cluster identity checked in
//! every file, what a node does when its storage fails a sync (exit), and the startup
//! line that says which mode a node runs in.

use crate::cli::args::StorageArgs;
use crate::cli::error::CliError;
use kv_app::{DataDir, KvServer, StorageMode};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The default parent of the nodes' data dirs, relative to the working directory.
pub const DEFAULT_ROOT: &str = "paxoskv-data";

/// Overrides [`DEFAULT_ROOT`] (tests give every process a fresh one).
pub const ROOT_ENV: &str = "PAXOSKV_DATA_ROOT";

/// The exit code of a node whose storage failed a sync.
const STORAGE_FAILED_EXIT: i32 = 3;

/// The parent of the nodes' data dirs: the environment's, else `./paxoskv-data`.
fn default_root() -> PathBuf {
    std::env::var_os(ROOT_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT))
}

/// The directory name of node `name` (`s1@127.0.0.1` keeps its state in `s1`).
fn dir_name(name: &str) -> &str {
    name.split('@').next().unwrap_or(name)
}

/// The identity of a cluster: its sorted node names. A data dir of another cluster is
/// refused at start.
pub fn cluster_identity<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut names: Vec<&str> = names.into_iter().collect();
    names.sort_unstable();
    names.dedup();
    format!("paxoskv[{}]", names.join(","))
}

/// The storage of node `name`: `--memory`, else `dir` itself (`paxoskv node --data-dir`)
/// or `root/NAME` (`paxoskv cluster --data-dir`, and both defaults). A data dir given on
/// the command line must exist; the default one is created.
pub fn storage_for(
    args: &StorageArgs,
    name: &str,
    dir_is_the_nodes: bool,
    cluster: &str,
) -> Result<StorageMode, CliError> {
    if args.memory {
        return Ok(StorageMode::Memory);
    }
    let path = match &args.data_dir {
        Some(given) => {
            check_exists(given)?;
            if dir_is_the_nodes {
                given.clone()
            } else {
                given.join(dir_name(name))
            }
        }
        None => default_root().join(dir_name(name)),
    };
    Ok(StorageMode::Durable(DataDir {
        path,
        cluster: cluster.to_string(),
        on_fatal: Arc::new(stop_the_process),
    }))
}

fn check_exists(dir: &Path) -> Result<(), CliError> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(CliError::BadInput(format!(
            "data dir {}: is not a directory",
            dir.display()
        ))),
        Err(e) => Err(CliError::BadInput(format!(
            "data dir {}: {e}; create it first (a mistyped --data-dir must not start an empty node)",
            dir.display()
        ))),
    }
}

/// A storage that failed a sync cannot be trusted with another promise: the process ends
/// (never retry and carry on), and the operator restarts it once the disk is fixed.
fn stop_the_process(why: &str) {
    log::error!("{why}");
    eprintln!("paxoskv: {why}; exiting");
    std::process::exit(STORAGE_FAILED_EXIT);
}

/// The startup line (stderr) saying where a node keeps its state and what recovery did.
pub fn announce(server: &KvServer) {
    let name = server.node().name();
    let Some(report) = server.opened() else {
        eprintln!("storage {name}: memory (nothing survives the node; --data-dir to keep it)");
        return;
    };
    let mut line = format!(
        "storage {name}: durable in {} (paxos: {} records replayed{}; kv: applied through {})",
        report.dir.display(),
        report.paxos.records_replayed,
        if report.paxos.snapshot_position > 0 {
            format!(", snapshot at {}", report.paxos.snapshot_position)
        } else {
            String::new()
        },
        report.applied,
    );
    for torn in [&report.paxos.torn_tail, &report.kv.torn_tail]
        .into_iter()
        .flatten()
    {
        line.push_str(&format!(
            "; torn tail cut: {} at byte {} ({} bytes: {})",
            torn.file.display(),
            torn.offset,
            torn.discarded_bytes,
            torn.reason
        ));
    }
    eprintln!("{line}");
}
