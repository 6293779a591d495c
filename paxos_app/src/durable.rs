//! The peer's records on disk: a [`storage::GroupCommitLog`] in the node's data dir
//! (`DIR/paxos`). Every record of a peer batch is appended; the batch's messages are sent
//! by the append's callback, which the storage thread runs after the one `fdatasync` that
//! covers everything queued together (see [`crate::tables`]). No fsync runs on a tokio
//! worker.
//!
//! Forgetting below `min` compacts the log: once enough records were written since the
//! last snapshot, the records a restore still needs (those [`MemoryStorage`] keeps after
//! the floor) are written as a snapshot at the position after the batch that raised the
//! floor, and the log below it is removed by the storage crate once the snapshot is
//! durable. On start, [`PaxosLog::open`] gives back the snapshot's records followed by the
//! log's, in the order they were persisted, for [`crate::core::Peer::restore`].

use crate::core::{MemoryStorage, Record, Storage};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use storage::{CommitLog, GroupCommitLog, Identity, Options, RecoverySummary, StorageStats, Then};

/// Records written between two compactions of the Paxos log (at least).
pub const SNAPSHOT_EVERY_RECORDS: u64 = 20_000;

/// The durable storage of a node's Paxos peer.
pub struct PaxosLog<V> {
    wal: Arc<GroupCommitLog>,
    /// The records a restore needs, compacted at every floor; the next snapshot's content.
    live: MemoryStorage<V>,
    /// The index the next appended record gets (appends are numbered in the order queued).
    next_index: u64,
    since_snapshot: u64,
    snapshot_every: u64,
}

/// What opening the Paxos log found.
pub struct OpenedPaxosLog<V> {
    pub log: PaxosLog<V>,
    /// The records to restore the peer from, in the order persisted.
    pub records: Vec<Record<V>>,
    pub summary: RecoverySummary,
}

impl<V> PaxosLog<V>
where
    V: Clone + serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    /// Opens (recovering, creating if missing) the Paxos log in `dir`, checking that it
    /// belongs to `identity`. A refusal is one line naming the file and byte offset.
    pub fn open(dir: &Path, identity: Identity) -> Result<OpenedPaxosLog<V>, storage::Error> {
        let options = Options {
            create_dir: true,
            ..Options::default()
        };
        let (wal, recovered) = GroupCommitLog::open(storage::RealFs, dir, identity, options)?;
        let mut records: Vec<Record<V>> = match &recovered.snapshot {
            Some(snapshot) => storage::payload::decode(&snapshot.payload)?,
            None => Vec::new(),
        };
        for record in &recovered.records {
            records.push(record.decode()?);
        }
        let mut live = MemoryStorage::new();
        // Memory storage never fails.
        let _ = live.persist(&records);
        Ok(OpenedPaxosLog {
            log: PaxosLog {
                wal: Arc::new(wal),
                live,
                next_index: recovered.summary.next_index,
                since_snapshot: recovered.records.len() as u64,
                snapshot_every: SNAPSHOT_EVERY_RECORDS,
            },
            records,
            summary: recovered.summary,
        })
    }

    /// Compacts after at least `records` records instead of [`SNAPSHOT_EVERY_RECORDS`].
    pub fn snapshot_every(mut self, records: u64) -> Self {
        self.snapshot_every = records.max(1);
        self
    }

    /// Queues `records` (in order after every record queued before); `then` runs on the
    /// storage thread once they are durable, or failed. Compacts the log when the batch
    /// raised the forgetting floor and enough was written since the last snapshot.
    pub fn persist_then(&mut self, records: &[Record<V>], then: Then<Range<u64>>) {
        let payloads = match records
            .iter()
            .map(storage::payload::encode)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(payloads) => payloads,
            Err(e) => return then(Err(e)),
        };
        let _ = self.live.persist(records);
        self.next_index += records.len() as u64;
        self.since_snapshot += records.len() as u64;
        self.wal.append_then(payloads, then);
        let floor_raised = records
            .iter()
            .any(|r| matches!(r, Record::Forgotten { .. }));
        if floor_raised && self.since_snapshot >= self.snapshot_every {
            self.compact();
        }
    }

    /// Snapshots the live records at the position after everything queued so far.
    fn compact(&mut self) {
        let live = self.live.load().unwrap_or_default();
        let payload = match storage::payload::encode(&live) {
            Ok(payload) => payload,
            Err(e) => {
                log::error!("paxos log: cannot encode a snapshot: {e}");
                return;
            }
        };
        self.since_snapshot = 0;
        let kept = live.len();
        self.wal.snapshot_then(
            self.next_index,
            payload,
            Box::new(move |result| match result {
                Ok(outcome) => log::debug!(
                    "paxos log: snapshot of {kept} records; {} segments removed",
                    outcome.segments_removed
                ),
                // A poisoned log fails the next append too, which stops the node.
                Err(e) => log::error!("paxos log: snapshot failed: {e}"),
            }),
        );
    }

    /// The storage counters (fsyncs, their latency histogram, errors).
    pub fn stats(&self) -> StorageStats {
        self.wal.stats()
    }

    /// A handle on the counters that outlives the peer's lock.
    pub fn stats_source(&self) -> Arc<GroupCommitLog> {
        self.wal.clone()
    }
}
