//! A reusable nemesis for end-to-end linearizability tests under faults: the run's
//! parameters (`config`), a seeded schedule of overlapping fault windows turned into
//! node-level actions (`schedule`), players that take those actions through whatever
//! applies them to a cluster (`player`), a recorder that turns client calls into checker
//! operations (`history`), and the final checks with the report a failure prints
//! (`verdict`). The in-process and the real-process variants share all of it; only the
//! `FaultApplier` and the clients differ.

// Each test file uses its own part of the support, re-exports included.
#![allow(dead_code, unused_imports)]

pub mod config;
pub mod history;
pub mod player;
pub mod schedule;
pub mod verdict;

#[cfg(test)]
mod fake_store;

pub use config::{ConfigError, Defaults, FaultKind, NemesisConfig};
pub use history::{HistoryRecorder, PendingCall, PlannedOp, key_name, plan_operation};
pub use player::{FaultApplier, heal, play, play_blocking};
pub use schedule::{Action, Fault, FaultWindow, KV_PROCESSES, Schedule, Step};
pub use verdict::{
    Problem, ReplicaState, check_history_of_run, check_linearizable,
    check_write_hash_results_distinct, failure_report, replicas_agree, summary,
};
