//! The one clock and the seeded randomness every process uses.
//!
//! Time is tokio's clock: `tokio::time::Instant`, which a simulation can pause and
//! advance (`tokio::time::pause`, `start_paused`), so timers, deadlines and timestamps
//! in `runtime`, `paxos_app` and `kv_app` all move with simulated time. Never read
//! `std::time::Instant` or `SystemTime` for protocol decisions.
//!
//! Randomness is per node: [`crate::Node::random_u64`] and friends draw from a ChaCha
//! generator seeded when the node is made ([`crate::Node::new_seeded`]), so a simulation
//! that seeds its nodes replays the same choices.

pub use tokio::time::{Duration, Instant};

/// Now, on the one clock.
pub fn now() -> Instant {
    Instant::now()
}

/// Milliseconds from `epoch` to now, saturating.
pub fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(now().saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
}
