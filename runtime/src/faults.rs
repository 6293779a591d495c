//! Faults a node can be given at run time, as the design brief defines them: `deaf` drops
//! every message arriving from another node; `unreliable` drops messages by one of three
//! loss models ([`LossModel`]); `allow(list)` keeps server-to-server traffic only with the
//! listed server nodes (clients are never cut). Control traffic is never dropped. Every
//! drop is counted, by its cause ([`FaultCounts`]), so a test can tell that a fault acted.
//!
//! The loss models, each drawn once per message from the node's seeded generator:
//! - [`LossModel::Boundary`]: each message crossing the node's boundary, in or out, is
//!   dropped with probability p. Between two unreliable nodes a message is drawn twice
//!   (out at the sender, in at the receiver) and lost with probability 1 - (1 - p)²
//!   (36 % at p = 0.2).
//! - [`LossModel::Original`]: the Erlang original's `No_fiable`: each message the node
//!   *receives* is dropped with probability p; what it sends is not touched. Between two
//!   unreliable nodes a message is lost with probability p.
//! - [`LossModel::Mit`]: MIT 6.824's unreliable server: a request the node receives is
//!   dropped with probability [`MIT_REQUEST_LOSS`] (it never runs); a reply the node sends
//!   — after its request ran — is dropped with probability [`MIT_REPLY_LOSS`]. Replies the
//!   node receives and requests it sends are not touched (they are the unreliability of
//!   the other end). A message is a reply when its type was marked with
//!   [`Faults::mark_reply_tag`] (the kv service marks its answers to clients); every
//!   other message is a request.

use crate::pid::NodeName;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

/// MIT 6.824's rate of requests an unreliable server drops before running them.
pub const MIT_REQUEST_LOSS: f64 = 0.1;
/// MIT 6.824's rate of replies an unreliable server drops after running the request.
pub const MIT_REPLY_LOSS: f64 = 0.2;

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

/// How `unreliable` decides which messages to drop (see the module doc).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LossModel {
    /// Each message in or out dropped with probability p.
    #[default]
    Boundary,
    /// Each message received dropped with probability p (the Erlang original).
    Original,
    /// Requests received dropped at 10 %, replies sent dropped at 20 % (MIT 6.824).
    Mit,
}

impl LossModel {
    fn code(self) -> u8 {
        match self {
            LossModel::Boundary => 0,
            LossModel::Original => 1,
            LossModel::Mit => 2,
        }
    }

    fn from_code(code: u8) -> LossModel {
        match code {
            1 => LossModel::Original,
            2 => LossModel::Mit,
            _ => LossModel::Boundary,
        }
    }

    /// The name used by the command line and `status`.
    pub fn name(self) -> &'static str {
        match self {
            LossModel::Boundary => "boundary",
            LossModel::Original => "original",
            LossModel::Mit => "mit",
        }
    }

    /// The probability that this model, set with probability `p`, drops a message going
    /// in direction `dir` (`reply`: the message is a reply). The single statement of
    /// what each model drops; `admit` draws against it and the tests measure it.
    pub fn drop_chance(self, p: f64, dir: Direction, reply: bool) -> f64 {
        match (self, dir) {
            (LossModel::Boundary, _) => p,
            (LossModel::Original, Direction::In) => p,
            (LossModel::Original, Direction::Out) => 0.0,
            (LossModel::Mit, Direction::In) if !reply => MIT_REQUEST_LOSS,
            (LossModel::Mit, Direction::Out) if reply => MIT_REPLY_LOSS,
            (LossModel::Mit, _) => 0.0,
        }
    }
}

impl std::str::FromStr for LossModel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "boundary" => Ok(LossModel::Boundary),
            "original" => Ok(LossModel::Original),
            "mit" => Ok(LossModel::Mit),
            other => Err(format!(
                "unknown loss model '{other}' (boundary, original or mit)"
            )),
        }
    }
}

impl std::fmt::Display for LossModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Messages dropped by a node's faults since it started, by cause.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct FaultCounts {
    /// Arriving messages dropped because the node was deaf.
    pub deaf: u64,
    /// Messages dropped by `allow` (a partition), in or out.
    pub cut: u64,
    /// Arriving messages dropped by `unreliable` (MIT: requests).
    pub lost_in: u64,
    /// Leaving messages dropped by `unreliable` (MIT: replies).
    pub lost_out: u64,
}

/// A snapshot of a node's faults, for `status`.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct FaultState {
    pub deaf: bool,
    /// Drop probability; 0 when reliable. Under the MIT model, the request loss.
    pub drop: f64,
    /// Which loss model `drop` applies.
    #[serde(default)]
    pub model: LossModel,
    /// The allowed server nodes, `None` when every node is allowed.
    pub allow: Option<Vec<String>>,
    /// What the faults dropped so far.
    #[serde(default)]
    pub dropped: FaultCounts,
}

/// The fault settings of one node and the seeded randomness that applies them.
pub struct Faults {
    deaf: AtomicBool,
    /// Drop probability as f64 bits.
    drop_bits: AtomicU64,
    model: AtomicU8,
    allow: Mutex<Option<BTreeSet<NodeName>>>,
    /// Type tags of the messages that are replies (for the MIT model).
    reply_tags: Mutex<HashSet<u64>>,
    rng: Mutex<ChaCha8Rng>,
    dropped_deaf: AtomicU64,
    dropped_cut: AtomicU64,
    lost_in: AtomicU64,
    lost_out: AtomicU64,
}

impl Faults {
    /// No faults; drops drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        Faults {
            deaf: AtomicBool::new(false),
            drop_bits: AtomicU64::new(0f64.to_bits()),
            model: AtomicU8::new(LossModel::Boundary.code()),
            allow: Mutex::new(None),
            reply_tags: Mutex::new(HashSet::new()),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
            dropped_deaf: AtomicU64::new(0),
            dropped_cut: AtomicU64::new(0),
            lost_in: AtomicU64::new(0),
            lost_out: AtomicU64::new(0),
        }
    }

    /// Reseeds the drop decisions (tests use this to make a run repeatable).
    pub fn reseed(&self, seed: u64) {
        *self.rng.lock() = ChaCha8Rng::seed_from_u64(seed);
    }

    pub fn set_deaf(&self, deaf: bool) {
        self.deaf.store(deaf, Ordering::SeqCst);
    }

    /// Sets the drop probability (clamped to 0..=1) of the current loss model; 0 means
    /// reliable.
    pub fn set_drop(&self, p: f64) {
        let p = if p.is_finite() {
            p.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.drop_bits.store(p.to_bits(), Ordering::SeqCst);
    }

    /// Makes the node unreliable under `model`: `p` for the boundary and original models;
    /// the MIT model has its own fixed rates and ignores `p`.
    pub fn set_unreliable(&self, model: LossModel, p: f64) {
        self.model.store(model.code(), Ordering::SeqCst);
        match model {
            LossModel::Mit => self.set_drop(MIT_REQUEST_LOSS),
            _ => self.set_drop(p),
        }
    }

    /// Undoes `unreliable` (the model returns to the default).
    pub fn set_reliable(&self) {
        self.set_unreliable(LossModel::Boundary, 0.0);
    }

    /// Marks messages of type tag `tag` (see `message::type_tag`) as replies.
    pub fn mark_reply_tag(&self, tag: u64) {
        self.reply_tags.lock().insert(tag);
    }

    /// Whether messages with type tag `tag` are replies.
    pub fn is_reply_tag(&self, tag: u64) -> bool {
        self.reply_tags.lock().contains(&tag)
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

    pub fn loss_model(&self) -> LossModel {
        LossModel::from_code(self.model.load(Ordering::SeqCst))
    }

    /// What the faults dropped so far, by cause.
    pub fn counts(&self) -> FaultCounts {
        FaultCounts {
            deaf: self.dropped_deaf.load(Ordering::Relaxed),
            cut: self.dropped_cut.load(Ordering::Relaxed),
            lost_in: self.lost_in.load(Ordering::Relaxed),
            lost_out: self.lost_out.load(Ordering::Relaxed),
        }
    }

    pub fn snapshot(&self) -> FaultState {
        FaultState {
            deaf: self.is_deaf(),
            drop: self.drop_probability(),
            model: self.loss_model(),
            allow: self
                .allow
                .lock()
                .as_ref()
                .map(|s| s.iter().map(|n| n.to_string()).collect()),
            dropped: self.counts(),
        }
    }

    /// Decides whether a message between this node and `peer` passes, and counts a drop.
    /// `self_role` and `peer_role` say which ends are servers; `reply` whether the message
    /// `message_tag` is the message's type tag, by which the MIT model tells a reply
    /// (none for links, exits and monitors); control messages always pass.
    pub fn admit(
        &self,
        dir: Direction,
        self_role: NodeRole,
        peer: &NodeName,
        peer_role: NodeRole,
        control: bool,
        message_tag: Option<u64>,
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
            self.dropped_cut.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let p = self.drop_probability();
        if p <= 0.0 {
            return true;
        }
        let model = self.loss_model();
        let reply = model == LossModel::Mit && message_tag.is_some_and(|t| self.is_reply_tag(t));
        let chance = model.drop_chance(p, dir, reply);
        if chance > 0.0 && self.rng.lock().random::<f64>() < chance {
            let counter = match dir {
                Direction::In => &self.lost_in,
                Direction::Out => &self.lost_out,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: u64 = 1;
    const REPLY: u64 = 2;

    fn admit(f: &Faults, dir: Direction, peer: &NodeName, peer_role: NodeRole) -> bool {
        f.admit(dir, NodeRole::Server, peer, peer_role, false, Some(REQUEST))
    }

    #[test]
    fn deaf_drops_incoming_only() {
        let f = Faults::new(1);
        f.set_deaf(true);
        let peer = NodeName::new("b@h");
        assert!(!admit(&f, Direction::In, &peer, NodeRole::Server));
        assert!(admit(&f, Direction::Out, &peer, NodeRole::Server));
        assert!(f.admit(
            Direction::In,
            NodeRole::Server,
            &peer,
            NodeRole::Server,
            true,
            Some(REQUEST)
        ));
        assert_eq!(
            f.counts(),
            FaultCounts {
                deaf: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn allow_cuts_servers_but_not_clients() {
        let f = Faults::new(1);
        let a = NodeName::new("a@h");
        let b = NodeName::new("b@h");
        f.set_allow(Some([a.clone()].into_iter().collect()));
        assert!(admit(&f, Direction::In, &a, NodeRole::Server));
        assert!(!admit(&f, Direction::In, &b, NodeRole::Server));
        assert!(!admit(&f, Direction::Out, &b, NodeRole::Server));
        assert!(admit(&f, Direction::Out, &b, NodeRole::Client));
        assert_eq!(f.counts().cut, 2);
    }

    #[test]
    fn loss_models_name_round_trip() {
        for m in [LossModel::Boundary, LossModel::Original, LossModel::Mit] {
            assert_eq!(m.name().parse::<LossModel>(), Ok(m));
        }
        assert!("sometimes".parse::<LossModel>().is_err());
    }

    #[test]
    fn reliable_resets_the_model() {
        let f = Faults::new(1);
        f.set_unreliable(LossModel::Mit, 0.5);
        assert_eq!(
            (f.loss_model(), f.drop_probability()),
            (LossModel::Mit, MIT_REQUEST_LOSS)
        );
        f.set_reliable();
        assert_eq!(
            (f.loss_model(), f.drop_probability()),
            (LossModel::Boundary, 0.0)
        );
    }

    /// Draws `n` messages of each kind (in/out, request/reply) through a node with the
    /// given model and checks each measured loss rate against `drop_chance`. The seed is
    /// fixed, so the run is the same every time; the tolerance is six standard deviations
    /// of a binomial, so even another seed would essentially never fail.
    fn measured_loss_matches(model: LossModel, p: f64) {
        let f = Faults::new(20_261_203);
        f.mark_reply_tag(REPLY);
        f.set_unreliable(model, p);
        let peer = NodeName::new("b@h");
        let n = 40_000u32;
        for dir in [Direction::In, Direction::Out] {
            for reply in [false, true] {
                let before = f.counts();
                let passed = (0..n)
                    .filter(|_| {
                        let tag = if reply { REPLY } else { REQUEST };
                        f.admit(
                            dir,
                            NodeRole::Server,
                            &peer,
                            NodeRole::Server,
                            false,
                            Some(tag),
                        )
                    })
                    .count() as u32;
                let dropped = n - passed;
                let after = f.counts();
                let counted = match dir {
                    Direction::In => after.lost_in - before.lost_in,
                    Direction::Out => after.lost_out - before.lost_out,
                };
                assert_eq!(counted, u64::from(dropped), "every drop is counted");
                let want = model.drop_chance(f.drop_probability(), dir, reply);
                let got = f64::from(dropped) / f64::from(n);
                let sigma = (want * (1.0 - want) / f64::from(n)).sqrt();
                assert!(
                    (got - want).abs() <= 6.0 * sigma + 1e-9,
                    "{model:?} {dir:?} reply={reply}: dropped {got}, want {want}"
                );
            }
        }
    }

    #[test]
    fn boundary_drops_p_each_way() {
        assert_eq!(
            LossModel::Boundary.drop_chance(0.2, Direction::In, false),
            0.2
        );
        assert_eq!(
            LossModel::Boundary.drop_chance(0.2, Direction::Out, true),
            0.2
        );
        measured_loss_matches(LossModel::Boundary, 0.2);
    }

    #[test]
    fn original_drops_p_of_what_arrives_only() {
        assert_eq!(
            LossModel::Original.drop_chance(0.2, Direction::In, true),
            0.2
        );
        assert_eq!(
            LossModel::Original.drop_chance(0.2, Direction::Out, false),
            0.0
        );
        measured_loss_matches(LossModel::Original, 0.2);
    }

    #[test]
    fn mit_drops_a_tenth_of_requests_and_a_fifth_of_replies() {
        let m = LossModel::Mit;
        assert_eq!(m.drop_chance(0.5, Direction::In, false), 0.1);
        assert_eq!(m.drop_chance(0.5, Direction::Out, true), 0.2);
        assert_eq!(m.drop_chance(0.5, Direction::In, true), 0.0);
        assert_eq!(m.drop_chance(0.5, Direction::Out, false), 0.0);
        measured_loss_matches(LossModel::Mit, 0.5);
    }
}
