//! Multi-instance Paxos: the original's Part 1 API (`start`, `status`, `done`, `max`,
//! `min`, `alive`, `stop`) on the `runtime` crate. Every protocol rule is in the pure
//! [`core::Peer`] (the `paxos_core` crate); the acceptor, proposer and learner are thin
//! processes that drive it ([`processes`]) under the node's Paxos supervisor, and the
//! peer lives in [`tables`], outside the processes, so a restart loses nothing.

mod api;
pub mod durable;
mod processes;
pub mod tables;

/// The pure Paxos core, a crate of its own so the compiler keeps it free of I/O, clocks
/// and randomness; re-exported so `paxos_app::core::...` paths keep working.
pub use paxos_core as core;

pub use api::{
    Decided, Durable, Paxos, PaxosError, PaxosOptions, PaxosValue, RequestCount, prepare,
    prepare_with, start, start_with,
};
pub use core::Status;
pub use durable::{OpenedPaxosLog, PaxosLog};
pub use tables::OnFatal;
