//! A whole paxoskv cluster in a deterministic simulation: every server (Paxos, DB
//! manager, batcher, kv server) and every client on one tokio current-thread runtime with
//! paused time, joined by the runtime's simulated network
//! (`runtime::transport::sim`), under the nemesis's seeded fault schedule. One `u64` seed
//! decides everything — the network's delays, losses and duplicates, the faults, the
//! nodes' own random choices and the clients' operations — so a failing seed replays bit
//! for bit, and a run's trace hash proves it.
//!
//! `params` turns a seed into a run's shape, `cluster` runs it, `soak` runs many seeds on
//! every core.

// Each test file uses its own part of the support.
#![allow(dead_code, unused_imports)]

pub mod cluster;
pub mod params;
pub mod soak;

pub use cluster::{SimOutcome, run_seed};
pub use params::SimParams;
pub use soak::{Report, SeedFailure, SoakReport, progress_bar, run_seeds, threads};
