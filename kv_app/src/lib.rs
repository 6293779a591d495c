//! The key-value service of the original design (its Part 2), on `paxos_app` and
//! `runtime`: the client, the server, one operation manager per operation and the DB
//! manager, under the kv application's supervisor.

pub mod app;
pub mod batcher;
pub mod client;
pub mod control;
pub mod db_manager;
pub mod deliberate;
pub mod durable;
pub mod limits;
pub mod messages;
pub mod operation;
pub mod ops;
pub mod phash2;
pub mod server;
pub mod service_counters;
pub mod store;

/// A decided Paxos value: a batch of log entries, shared. A decision is handed to every
/// operation manager waiting on it, the batcher and the DB manager of the node, and kept
/// by the acceptor, the learner and the proposer: sharing makes each of those a reference
/// count instead of a copy of every entry (with 64 clients, a batch of 64 entries went to
/// 64 managers: 4,096 entry copies per instance).
pub type Batch = std::sync::Arc<[ops::LogEntry]>;

/// The Paxos log the kv service runs on.
pub type Log = paxos_app::Paxos<Batch>;

pub use app::{KvServer, NodeStatus, PaxosMode, ServerOptions, start_server, start_server_with};
pub use client::{Client, ClientError, ClientTimeouts};
pub use durable::{DataDir, StorageMode};
pub use limits::{Limits, TooLarge};
