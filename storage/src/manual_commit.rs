//! Group commit without a thread, for the deterministic simulation: commands queue up as
//! with [`crate::GroupCommitLog`], and are carried out — one write and one fdatasync per
//! run of appends, callbacks in order — only when the simulation calls
//! [`ManualCommitLog::commit_pending`] (say, when a simulated fsync latency has passed).
//! A simulated crash before that drops the queue: those callbacks never run, as the
//! node's replies never leave.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::format::Identity;
use crate::fs::FileSystem;
use crate::group_commit::{Command, CommitLog, Notify, Then, check_sizes, process};
use crate::log::{Log, Options, SnapshotOutcome};
use crate::recovery::Recovered;
use crate::stats::StorageStats;

/// A [`CommitLog`] whose batches are committed when its owner says so.
pub struct ManualCommitLog<F: FileSystem> {
    queue: Mutex<Vec<Command>>,
    log: Mutex<Log<F>>,
    stats: Arc<Mutex<StorageStats>>,
    max_record_bytes: u32,
}

impl<F: FileSystem> ManualCommitLog<F> {
    /// Opens (recovering) the log in `dir`.
    pub fn open(
        fs: F,
        dir: impl Into<PathBuf>,
        identity: Identity,
        options: Options,
    ) -> Result<(ManualCommitLog<F>, Recovered)> {
        let (log, recovered) = Log::open(fs, dir, identity, options)?;
        Ok((ManualCommitLog::new(log), recovered))
    }

    /// Wraps an open log.
    pub fn new(log: Log<F>) -> ManualCommitLog<F> {
        ManualCommitLog {
            max_record_bytes: log.max_record_bytes(),
            stats: log.stats_handle(),
            queue: Mutex::new(Vec::new()),
            log: Mutex::new(log),
        }
    }

    /// Commands queued and not yet committed.
    pub fn pending(&self) -> usize {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Commits everything queued now (callbacks run here, on the caller's thread) and
    /// returns how many commands that was. Commands queued by the callbacks wait for the
    /// next call. Not to be called from inside a callback.
    pub fn commit_pending(&self) -> usize {
        let commands = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
        let count = commands.len();
        if count > 0 {
            let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            process(&mut log, commands);
        }
        count
    }

    fn submit(&self, command: Command) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(command);
    }
}

impl<F: FileSystem> CommitLog for ManualCommitLog<F> {
    fn append_then(&self, payloads: Vec<Vec<u8>>, then: Then<Range<u64>>) {
        let notify = Notify::Callback(then);
        if let Some(command) = check_sizes(payloads, notify, self.max_record_bytes) {
            self.submit(command);
        }
    }

    fn snapshot_then(&self, position: u64, payload: Vec<u8>, then: Then<SnapshotOutcome>) {
        self.submit(Command::Snapshot {
            position,
            payload,
            notify: Notify::Callback(then),
        });
    }

    fn stats(&self) -> StorageStats {
        // Not through the log's lock: a callback may ask while a commit runs.
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
