//! Durable storage for a paxoskv node (issue 12): what a node must remember across a
//! crash — its promises, its accepted values, its decided log and key-value state.
//!
//! - [`Log`]: a segmented write-ahead log of checksummed records, with snapshots and
//!   recovery (torn tail cut; damage, strangers and unknown versions refused).
//! - [`GroupCommitLog`]: the log on a dedicated OS thread, one `fdatasync` per batch of
//!   whatever arrived together; callers are told by callback or [`Completion`].
//! - [`ManualCommitLog`]: the same group commit without a thread, committed when the
//!   deterministic simulation says so; both are [`CommitLog`]s, so a driver is written once.
//! - [`FileSystem`]: the file operations underneath, on the real disk ([`RealFs`]) or on
//!   the simulated disk of the deterministic simulation ([`SimFs`]).
//!
//! The crate is runtime-agnostic (no tokio): completions are std futures and condvars.
//! Format on disk, write order and why it is safe: docs/storage.md.

mod completion;
mod error;
mod format;
mod fs;
mod group_commit;
mod log;
mod manual_commit;
pub mod payload;
mod recovery;
mod sim;
mod stats;

pub use completion::Completion;
pub use error::{Error, Result};
pub use format::{FORMAT_VERSION, Identity};
pub use fs::{FileHandle, FileSystem, PathKind, RealFile, RealFs};
pub use group_commit::{CommitLog, GroupCommitLog, Then};
pub use log::{Log, Options, SnapshotOutcome};
pub use manual_commit::ManualCommitLog;
pub use recovery::{Record, Recovered, RecoverySummary, Snapshot, TornTail};
pub use sim::{SimCounters, SimFile, SimFs};
pub use stats::{Histogram, LATENCY_BUCKETS_US, StorageStats};
