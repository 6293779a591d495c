//! What opening a data dir found: the snapshot to start from, the records to replay
//! after it, and a summary of what recovery did (torn tail cut, leftovers removed) for
//! the node's startup output.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its position in the log (the first record ever is 1).
    pub index: u64,
    pub payload: Vec<u8>,
}

impl Record {
    /// Deserialises the payload with postcard (see [`crate::payload`]).
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        crate::payload::decode(&self.payload)
    }
}

/// The newest valid snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Records below this index are in the snapshot; replay starts here.
    pub position: u64,
    pub payload: Vec<u8>,
}

/// A torn tail found and cut at open: a crash in the middle of an append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TornTail {
    pub file: PathBuf,
    /// Where the cut was made: the start of the first bad record.
    pub offset: u64,
    /// Bytes removed from there to the old end of the file.
    pub discarded_bytes: u64,
    /// What was wrong with the record at `offset`.
    pub reason: String,
}

/// What recovery did, for the startup output and `ctl status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverySummary {
    /// True if the data dir held no log yet (a first start).
    pub fresh: bool,
    /// The snapshot loaded, if any, and its position.
    pub snapshot_file: Option<PathBuf>,
    pub snapshot_position: u64,
    /// Damaged snapshots passed over for an older one (their one-line reasons).
    pub skipped_snapshots: Vec<String>,
    /// Log segments read.
    pub segments: usize,
    /// Records handed back for replay (those at or after the snapshot position).
    pub records_replayed: u64,
    /// The index the next record will get.
    pub next_index: u64,
    /// The torn tail cut, if there was one.
    pub torn_tail: Option<TornTail>,
    /// Temporary files of an interrupted snapshot or segment creation, removed.
    pub removed_temp_files: Vec<PathBuf>,
}

/// Everything [`crate::Log::open`] recovered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    pub snapshot: Option<Snapshot>,
    /// The records to replay after the snapshot, in index order.
    pub records: Vec<Record>,
    pub summary: RecoverySummary,
}
