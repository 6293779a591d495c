//! The key-value service of the original design (its Part 2), on `paxos_app` and
//! `runtime`: the client, the server, one operation manager per operation and the DB
//! manager, under the kv application's supervisor.

pub mod app;
pub mod batcher;
pub mod client;
pub mod control;
pub mod db_manager;
pub mod messages;
pub mod operation;
pub mod ops;
pub mod phash2;
pub mod server;
pub mod store;

/// A decided Paxos value: a batch of log entries.
pub type Batch = Vec<ops::LogEntry>;

/// The Paxos log the kv service runs on.
pub type Log = paxos_app::Paxos<Batch>;

pub use app::{KvServer, NodeStatus, ServerOptions, start_server};
pub use client::{Client, ClientError, ClientTimeouts};
