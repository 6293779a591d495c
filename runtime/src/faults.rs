//! Faults a node can be given at run time, as the design brief defines them:
//! `deaf` drops every message arriving from another node; `unreliable(p)` drops each
//! message crossing the node's boundary, in or out, with probability p; `allow(list)`
//! keeps server-to-server traffic only with the listed server nodes (clients are never
//! cut). Control traffic is never dropped. Every drop is counted.

use crate::pid::NodeName;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Whether a node is a server (subject to `allow`) or a client (never cut by it).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, Default)]
pub enum NodeRole {
    #[default]
    Server,
    Client,
}

/// The direction of a message relative to the node holding the faults.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Direction {
    In,
    Out,
}

/// A snapshot of a node's faults, for `status`.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct FaultState {
    pub deaf: bool,
    /// Drop probability; 0 when reliable.
    pub drop: f64,
    /// The allowed server nodes, `None` when every node is allowed.
    pub allow: Option<Vec<String>>,
}

/// Messages dropped so far, by the fault that dropped them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultDrops {
    pub deaf: u64,
    pub allow: u64,
    pub unreliable: u64,
}

/// The fault settings of one node and the seeded randomness that applies them.
pub struct Faults {
    dropped_deaf: AtomicU64,
    dropped_allow: AtomicU64,
    dropped_unreliable: AtomicU64,
    deaf: AtomicBool,
    /// Drop probability as f64 bits.
    drop_bits: AtomicU64,
    allow: Mutex<Option<BTreeSet<NodeName>>>,
    rng: Mutex<ChaCha8Rng>,
}

impl Faults {
    /// No faults; drops drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        Faults {
            dropped_deaf: AtomicU64::new(0),
            dropped_allow: AtomicU64::new(0),
            dropped_unreliable: AtomicU64::new(0),
            deaf: AtomicBool::new(false),
            drop_bits: AtomicU64::new(0f64.to_bits()),
            allow: Mutex::new(None),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    /// Reseeds the drop decisions (tests use this to make a run repeatable).
    pub fn reseed(&self, seed: u64) {
        *self.rng.lock() = ChaCha8Rng::seed_from_u64(seed);
    }

    pub fn set_deaf(&self, deaf: bool) {
        self.deaf.store(deaf, Ordering::SeqCst);
    }

    /// Sets the drop probability (clamped to 0..=1); 0 means reliable.
    pub fn set_drop(&self, p: f64) {
        let p = if p.is_finite() {
            p.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.drop_bits.store(p.to_bits(), Ordering::SeqCst);
    }

    /// Keeps server-to-server traffic only with these nodes; `None` allows all.
    pub fn set_allow(&self, allow: Option<BTreeSet<NodeName>>) {
        *self.allow.lock() = allow;
    }

    pub fn is_deaf(&self) -> bool {
        self.deaf.load(Ordering::SeqCst)
    }

    pub fn drop_probability(&self) -> f64 {
        f64::from_bits(self.drop_bits.load(Ordering::SeqCst))
    }

    /// How many messages each fault dropped.
    pub fn drops(&self) -> FaultDrops {
        FaultDrops {
            deaf: self.dropped_deaf.load(Ordering::Relaxed),
            allow: self.dropped_allow.load(Ordering::Relaxed),
            unreliable: self.dropped_unreliable.load(Ordering::Relaxed),
        }
    }

    pub fn snapshot(&self) -> FaultState {
        FaultState {
            deaf: self.is_deaf(),
            drop: self.drop_probability(),
            allow: self
                .allow
                .lock()
                .as_ref()
                .map(|s| s.iter().map(|n| n.to_string()).collect()),
        }
    }

    /// Decides whether a message between this node and `peer` passes. `self_role` and
    /// `peer_role` say which ends are servers; control messages always pass.
    pub fn admit(
        &self,
        dir: Direction,
        self_role: NodeRole,
        peer: &NodeName,
        peer_role: NodeRole,
        control: bool,
    ) -> bool {
        if control {
            return true;
        }
        if dir == Direction::In && self.is_deaf() {
            self.dropped_deaf.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if self_role == NodeRole::Server
            && peer_role == NodeRole::Server
            && let Some(allowed) = self.allow.lock().as_ref()
            && !allowed.contains(peer)
        {
            self.dropped_allow.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let p = self.drop_probability();
        if p > 0.0 && self.rng.lock().random::<f64>() < p {
            self.dropped_unreliable.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deaf_drops_incoming_only() {
        let f = Faults::new(1);
        f.set_deaf(true);
        let peer = NodeName::new("b@h");
        assert!(!f.admit(
            Direction::In,
            NodeRole::Server,
            &peer,
            NodeRole::Server,
            false
        ));
        assert!(f.admit(
            Direction::Out,
            NodeRole::Server,
            &peer,
            NodeRole::Server,
            false
        ));
        assert!(f.admit(
            Direction::In,
            NodeRole::Server,
            &peer,
            NodeRole::Server,
            true
        ));
        assert_eq!(
            f.drops(),
            FaultDrops {
                deaf: 1,
                ..FaultDrops::default()
            }
        );
    }

    #[test]
    fn allow_cuts_servers_but_not_clients() {
        let f = Faults::new(1);
        let a = NodeName::new("a@h");
        let b = NodeName::new("b@h");
        f.set_allow(Some([a.clone()].into_iter().collect()));
        assert!(f.admit(Direction::In, NodeRole::Server, &a, NodeRole::Server, false));
        assert!(!f.admit(Direction::In, NodeRole::Server, &b, NodeRole::Server, false));
        assert!(!f.admit(
            Direction::Out,
            NodeRole::Server,
            &b,
            NodeRole::Server,
            false
        ));
        assert!(f.admit(
            Direction::Out,
            NodeRole::Server,
            &b,
            NodeRole::Client,
            false
        ));
    }

    #[test]
    fn unreliable_drops_about_p() {
        let f = Faults::new(42);
        f.set_drop(0.2);
        let peer = NodeName::new("b@h");
        let n = 20_000;
        let passed = (0..n)
            .filter(|_| {
                f.admit(
                    Direction::Out,
                    NodeRole::Server,
                    &peer,
                    NodeRole::Server,
                    false,
                )
            })
            .count();
        assert_eq!(f.drops().unreliable, (n - passed) as u64);
        let dropped = (n - passed) as f64 / n as f64;
        assert!((dropped - 0.2).abs() < 0.02, "dropped {dropped}");
    }
}
