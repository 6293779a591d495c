//! A durable node's data dir: the Paxos peer's log (`DIR/paxos`, see
//! [`paxos_app::durable`]) and the key-value store's snapshots (`DIR/kv`).
//!
//! The store (data, exactly-once table per client, applied position) is written whole as
//! the snapshot of the `kv` log. The order that makes this safe: the DB manager calls
//! Paxos `done(S)` only after the snapshot holding everything through instance S is
//! durable ([`StoreSnapshots`]), so Paxos forgets (and compacts away) only instances that
//! every node's snapshot already holds; every instance above a node's snapshot is still
//! in the Paxos state of a majority, and is decided again (the same value: Paxos) and
//! re-applied after a restart, exactly once thanks to the restored exactly-once table.

use crate::Batch;
use crate::messages::DB_MANAGER;
use crate::store::Store;
use paxos_app::core::Record;
use paxos_app::{Durable, OnFatal, PaxosLog};
use runtime::Node;
use runtime::clock::{self, Duration, Instant};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use storage::{CommitLog, GroupCommitLog, Identity, Options, RecoverySummary, StorageStats};

/// Where a server node keeps its state.
#[derive(Clone, Default)]
pub enum StorageMode {
    /// Nothing survives the node (the original's mode).
    #[default]
    Memory,
    /// Everything a restart needs is in this data dir.
    Durable(DataDir),
}

impl StorageMode {
    /// `"memory"` or `"durable"`, as `ctl status` shows it.
    pub fn name(&self) -> &'static str {
        match self {
            StorageMode::Memory => "memory",
            StorageMode::Durable(_) => "durable",
        }
    }
}

/// A durable node's data dir and what to do when its storage fails a sync.
#[derive(Clone)]
pub struct DataDir {
    pub path: PathBuf,
    /// The cluster this dir belongs to (checked in every file at start).
    pub cluster: String,
    /// Called once when the storage can no longer be trusted: the node must stop.
    pub on_fatal: OnFatal,
}

/// Applied instances between two store snapshots (at most), and the longest a change
/// waits for its snapshot.
const SNAPSHOT_EVERY_INSTANCES: u64 = 1_000;
const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

/// What opening a data dir found.
pub(crate) struct Opened {
    pub paxos: Durable<Batch>,
    pub store: Option<Store>,
    /// The highest instance this node's acceptor accepted a value for: after a restart
    /// the DB manager proposes every instance up to it, to learn what was chosen.
    pub accepted_max: u64,
    pub snapshots: StoreSnapshots,
    pub report: OpenReport,
}

/// What recovery did, for the startup output.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenReport {
    pub dir: PathBuf,
    pub paxos: RecoverySummary,
    pub kv: RecoverySummary,
    /// The instance the restored store had applied through.
    pub applied: u64,
}

/// The storage figures of `ctl status`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StorageStatus {
    pub dir: String,
    /// The Paxos log (promises, acceptances): the fsyncs on the reply path.
    pub paxos: StorageStats,
    /// The store's snapshots.
    pub kv: StorageStats,
    /// What recovery found when the node started.
    pub recovered: Option<OpenReport>,
}

/// Opens the data dir (creating it if missing) for node `node` of `cluster`. Blocking
/// (it reads and syncs the logs): run it off the runtime's workers.
pub(crate) fn open(node: &str, dir: &DataDir) -> Result<Opened, storage::Error> {
    let identity = Identity::new(node, dir.cluster.as_str());
    let opened = PaxosLog::<Batch>::open(&dir.path.join("paxos"), identity.clone())?;
    let options = Options {
        create_dir: true,
        ..Options::default()
    };
    let (kv_log, kv) =
        GroupCommitLog::open(storage::RealFs, dir.path.join("kv"), identity, options)?;
    let store: Option<Store> = kv
        .snapshot
        .as_ref()
        .map(|s| storage::payload::decode(&s.payload))
        .transpose()?;
    let applied = store.as_ref().map_or(0, Store::applied_through);
    let accepted_max = opened
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Accepted { seq, .. } => Some(*seq),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    Ok(Opened {
        paxos: Durable {
            log: opened.log,
            records: opened.records,
            on_fatal: dir.on_fatal.clone(),
        },
        store,
        accepted_max,
        snapshots: StoreSnapshots::new(Arc::new(kv_log), applied),
        report: OpenReport {
            dir: dir.path.clone(),
            paxos: opened.summary,
            kv: kv.summary,
            applied,
        },
    })
}

/// Sent to the DB manager (by name: it may have been restarted meanwhile) once a store
/// snapshot is durable.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SnapshotWritten {
    /// The snapshot holds every instance through this one; `None` if it failed.
    pub through: Option<u64>,
}

/// The store's snapshots: when to write one, and how far the last durable one reaches.
pub(crate) struct StoreSnapshots {
    wal: Arc<GroupCommitLog>,
    /// The applied position of the newest durable snapshot.
    durable_through: u64,
    in_flight: bool,
    last_started: Option<Instant>,
    runtime: Option<tokio::runtime::Handle>,
}

impl StoreSnapshots {
    fn new(wal: Arc<GroupCommitLog>, durable_through: u64) -> Self {
        StoreSnapshots {
            wal,
            durable_through,
            in_flight: false,
            last_started: None,
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    pub(crate) fn stats(&self) -> StorageStats {
        self.wal.stats()
    }

    pub(crate) fn dir(&self) -> &Path {
        self.wal.dir()
    }

    /// Writes a snapshot of `store` if it applied enough since the last one (or enough
    /// time passed), one at a time; the DB manager hears of it by [`SnapshotWritten`].
    pub(crate) fn maybe_write(&mut self, node: &Node, store: &Store) {
        let applied = store.applied_through();
        if self.in_flight || applied <= self.durable_through {
            return;
        }
        let due = applied - self.durable_through >= SNAPSHOT_EVERY_INSTANCES
            || self
                .last_started
                .is_none_or(|at| clock::now().duration_since(at) >= SNAPSHOT_EVERY);
        if !due {
            return;
        }
        let payload = match storage::payload::encode(store) {
            Ok(payload) => payload,
            Err(e) => {
                log::error!("db_manager: cannot encode the store: {e}");
                return;
            }
        };
        self.in_flight = true;
        self.last_started = Some(clock::now());
        let node = node.clone();
        let runtime = self.runtime.clone();
        // Every snapshot is at position 1 of a log without records: each replaces the
        // previous one atomically (temp file, fsync, rename, directory fsync).
        self.wal.snapshot_then(
            1,
            payload,
            Box::new(move |result| {
                let through = match result {
                    Ok(_) => Some(applied),
                    Err(e) => {
                        log::error!("db_manager: store snapshot failed: {e}");
                        None
                    }
                };
                let _entered = runtime.as_ref().map(|h| h.enter());
                node.send(None, DB_MANAGER, SnapshotWritten { through });
            }),
        );
    }

    /// A snapshot finished; returns the instance Paxos may now be told is done.
    pub(crate) fn written(&mut self, through: Option<u64>) -> Option<u64> {
        self.in_flight = false;
        let through = through?;
        self.durable_through = self.durable_through.max(through);
        Some(self.durable_through)
    }
}
