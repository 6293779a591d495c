//! The Paxos core under a hostile simulated network.
//!
//! Whole clusters (proposer + acceptor + learner per peer) are wired through a network
//! that loses, duplicates, delays and reorders messages, driven by a seeded random
//! scheduler with a simulated clock. Checked: no two learners ever decide different values
//! for an instance, every decided value was proposed for it, and once loss stops every
//! started instance is decided everywhere. Also: the uncontended message count, and
//! forgetting driven by `done` watermarks.
//!
//! A failing run prints its seed; `PAXOS_SEED=<seed>` reruns just that one.

use std::collections::{BTreeSet, HashMap, HashSet};

use paxos_app::core::{
    AcceptorState, LearnerState, Message, Outgoing, PeerId, Proposer, ProposerConfig, Role, Seq,
    Status, Target,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type Value = u64;

const ANSWER_TIMEOUT_MS: u64 = 200;

/// Prints the seed of a run that panics, whatever the panic came from.
struct SeedGuard(u64);

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "failing seed: {} (rerun with PAXOS_SEED={})",
                self.0, self.0
            );
        }
    }
}

/// One peer's three machines, as the process layer will hold them.
struct PeerCore {
    proposer: Proposer<Value>,
    acceptor: AcceptorState<Value>,
    learner: LearnerState<Value>,
}

/// A message on the simulated wire.
#[derive(Clone, Debug)]
struct InFlight {
    due_ms: u64,
    to: PeerId,
    role: Role,
    msg: Message<Value>,
}

/// Per receiving peer, how many messages of each kind arrived.
type Counts = Vec<HashMap<&'static str, usize>>;

struct Sim {
    seed: u64,
    rng: ChaCha8Rng,
    now_ms: u64,
    peers: Vec<PeerCore>,
    net: Vec<InFlight>,
    loss: f64,
    duplication: f64,
    /// Chance that a message is held back well past the proposers' answer timeout.
    long_delay: f64,
    /// The value any learner decided first, per instance.
    chosen: HashMap<Seq, Value>,
    /// Every value some proposer was started with, per instance.
    proposed: HashMap<Seq, HashSet<Value>>,
    /// Every instance some peer started.
    started: BTreeSet<Seq>,
    /// Per peer, every instance its learner ever decided.
    decided_by: Vec<BTreeSet<Seq>>,
    delivered: Counts,
    next_value: Value,
}

impl Sim {
    fn new(seed: u64, peers: usize) -> Self {
        Self::with_leases(seed, peers, &[])
    }

    /// A cluster whose peers in `leasing` run Multi-Paxos leases (`PrepareFrom`).
    fn with_leases(seed: u64, peers: usize, leasing: &[PeerId]) -> Self {
        let config = |me: PeerId| ProposerConfig {
            answer_timeout_ms: ANSWER_TIMEOUT_MS,
            resend_ms: ANSWER_TIMEOUT_MS / 2,
            lease: leasing.contains(&me),
        };
        Sim {
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            now_ms: 0,
            peers: (0..peers)
                .map(|me| PeerCore {
                    proposer: Proposer::new(me, peers, config(me)),
                    acceptor: AcceptorState::new(),
                    learner: LearnerState::new(me, peers),
                })
                .collect(),
            net: Vec::new(),
            loss: 0.0,
            duplication: 0.0,
            long_delay: 0.0,
            chosen: HashMap::new(),
            proposed: HashMap::new(),
            started: BTreeSet::new(),
            decided_by: vec![BTreeSet::new(); peers],
            delivered: vec![HashMap::new(); peers],
            next_value: 1,
        }
    }

    /// How long the wire holds a message: mostly a few milliseconds, sometimes far longer
    /// than the answer timeout.
    fn delay_ms(&mut self) -> u64 {
        if self.rng.random_bool(self.long_delay) {
            self.rng
                .random_range(ANSWER_TIMEOUT_MS / 2..=ANSWER_TIMEOUT_MS * 3)
        } else {
            self.rng.random_range(1..=20)
        }
    }

    /// Puts one message on the wire.
    fn post(&mut self, to: PeerId, role: Role, msg: Message<Value>) {
        let due_ms = self.now_ms + self.delay_ms();
        self.net.push(InFlight {
            due_ms,
            to,
            role,
            msg,
        });
    }

    /// Puts `out`, sent by peer `from`, on the wire.
    fn send(&mut self, from: PeerId, out: Vec<Outgoing<Value>>) {
        let learner = &self.peers[from].learner;
        let (done, max, min) = (learner.local_done(), learner.max(), learner.min());
        for outgoing in out {
            let (target, msg) = outgoing.stamp(from, done, max, min);
            match target {
                Target::Peer(to, role) => self.post(to, role, msg),
                Target::AllPeers(role) => {
                    for to in 0..self.peers.len() {
                        self.post(to, role, msg.clone());
                    }
                }
            }
        }
    }

    /// Takes a random message among those due off the wire (reordering them) and loses,
    /// duplicates or delivers it. With none due, moves the clock to the next one.
    fn deliver_random(&mut self) {
        let now_ms = self.now_ms;
        let due: Vec<usize> = (0..self.net.len())
            .filter(|&index| self.net[index].due_ms <= now_ms)
            .collect();
        if due.is_empty() {
            if let Some(next_ms) = self.net.iter().map(|m| m.due_ms).min() {
                self.advance_to(next_ms);
            }
            return;
        }
        let index = due[self.rng.random_range(0..due.len())];
        let message = self.net.swap_remove(index);
        if self.rng.random_bool(self.loss) {
            return;
        }
        if self.rng.random_bool(self.duplication) {
            let mut copy = message.clone();
            copy.due_ms = self.now_ms + self.delay_ms();
            self.net.push(copy);
        }
        self.deliver(message);
    }

    fn deliver(&mut self, InFlight { to, role, msg, .. }: InFlight) {
        *self.delivered[to].entry(msg.body.kind()).or_default() += 1;
        let now_ms = self.now_ms;
        let core = &mut self.peers[to];
        let out = match role {
            Role::Learner => {
                if let Some(seq) = core.learner.observe(&msg) {
                    self.record_decision(to, seq);
                }
                Vec::new()
            }
            Role::Acceptor => {
                core.learner.note_done(msg.from, msg.done);
                core.learner.note_min(msg.min);
                core.learner.note_seq(msg.body.seq().max(msg.max));
                let known = core.learner.decided(msg.body.seq()).cloned();
                core.acceptor
                    .handle(&msg, known.as_ref())
                    .into_iter()
                    .collect()
            }
            Role::Proposer => {
                core.learner.note_done(msg.from, msg.done);
                core.learner.note_min(msg.min);
                core.learner.note_seq(msg.body.seq().max(msg.max));
                core.proposer.handle(&msg, now_ms)
            }
        };
        self.forget(to);
        self.send(to, out);
    }

    /// Checks a value peer `peer` just learned against everything decided so far.
    fn record_decision(&mut self, peer: PeerId, seq: Seq) {
        let seed = self.seed;
        let Some(&value) = self.peers[peer].learner.decided(seq) else {
            panic!("seed {seed}: peer {peer} reported seq {seq} decided but holds no value");
        };
        let first = *self.chosen.entry(seq).or_insert(value);
        assert_eq!(
            first, value,
            "seed {seed}: peer {peer} decided {value} for seq {seq}, another learner decided {first}"
        );
        assert!(
            self.proposed
                .get(&seq)
                .is_some_and(|values| values.contains(&value)),
            "seed {seed}: peer {peer} decided {value} for seq {seq}, which nobody proposed for it"
        );
        self.decided_by[peer].insert(seq);
    }

    /// Applies the forgetting the learner of `peer` allows to its acceptor and proposer.
    fn forget(&mut self, peer: PeerId) {
        let core = &mut self.peers[peer];
        if let Some(min) = core.learner.forget_to_min() {
            core.acceptor.forget_below(min);
            core.proposer.forget_below(min);
        }
    }

    /// Peer `peer`'s application starts `seq` with `value`, unless its learner already
    /// knows the outcome or its proposer is already on it.
    fn start(&mut self, peer: PeerId, seq: Seq, value: Value) {
        let core = &mut self.peers[peer];
        if core.learner.status(seq) != Status::Pending || core.proposer.is_proposing(seq) {
            return;
        }
        core.learner.note_seq(seq);
        self.proposed.entry(seq).or_default().insert(value);
        self.started.insert(seq);
        let out = core.proposer.start(seq, value, self.now_ms);
        self.send(peer, out);
    }

    fn fresh_value(&mut self) -> Value {
        self.next_value += 1;
        self.next_value
    }

    /// Moves the clock on by up to `max_step_ms` and ticks every proposer.
    fn advance(&mut self, max_step_ms: u64) {
        let step_ms = self.rng.random_range(1..=max_step_ms);
        self.advance_to(self.now_ms + step_ms);
    }

    /// Moves the clock to `now_ms` and ticks every proposer, with an exponential backoff
    /// plus random jitter.
    fn advance_to(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        for peer in 0..self.peers.len() {
            let rng = &mut self.rng;
            let out = self.peers[peer].proposer.tick(self.now_ms, |_, failures| {
                20 * (1u64 << failures.min(5)) + rng.random_range(0..60)
            });
            self.send(peer, out);
        }
    }

    /// Peer `peer`'s application calls done on some prefix of what it has decided.
    fn app_done(&mut self, peer: PeerId) {
        let learner = &self.peers[peer].learner;
        let mut prefix = learner.local_done();
        while learner.decided(prefix + 1).is_some() {
            prefix += 1;
        }
        let upto = self.rng.random_range(learner.local_done()..=prefix);
        self.peers[peer].learner.done(upto);
        self.forget(peer);
    }

    /// An acceptor crashes and its supervisor restarts it: its mailbox is lost, its state
    /// (kept outside the process) is not.
    fn restart_acceptor(&mut self, peer: PeerId) {
        let rng = &mut self.rng;
        self.net
            .retain(|m| !(m.to == peer && m.role == Role::Acceptor) || rng.random_bool(0.5));
    }

    /// True when `peer` knows the outcome of every started instance (or forgot it).
    fn knows_everything(&self, peer: PeerId) -> bool {
        let learner = &self.peers[peer].learner;
        self.started
            .iter()
            .all(|&seq| learner.status(seq) != Status::Pending)
    }

    /// Chaos: random starts, deliveries, losses, duplicates, delays, timeouts, restarts
    /// and done calls.
    fn run_chaos(&mut self, steps: usize, max_seq: Seq) {
        self.loss = self.rng.random_range(0.0..0.3);
        self.duplication = self.rng.random_range(0.0..0.2);
        self.long_delay = self.rng.random_range(0.0..0.15);
        let peers = self.peers.len();
        for _ in 0..steps {
            let roll: f64 = self.rng.random();
            if roll < 0.70 {
                self.deliver_random();
            } else if roll < 0.80 {
                self.advance(20);
            } else if roll < 0.86 {
                let peer = self.rng.random_range(0..peers);
                let seq = self.rng.random_range(1..=max_seq);
                let value = self.fresh_value();
                self.start(peer, seq, value);
            } else if roll < 0.88 {
                let peer = self.rng.random_range(0..peers);
                self.restart_acceptor(peer);
            } else if roll < 0.91 {
                let peer = self.rng.random_range(0..peers);
                self.app_done(peer);
            } else {
                self.deliver_random();
            }
        }
    }

    /// Calm: no loss; every peer starts what it has not learned (as an application
    /// catching up does), and the cluster runs until everyone knows everything.
    fn run_until_everyone_knows(&mut self, max_steps: usize) {
        self.loss = 0.0;
        self.duplication = 0.05;
        self.long_delay = 0.0;
        let peers = self.peers.len();
        for step in 0..max_steps {
            if step % 500 == 0 {
                if (0..peers).all(|peer| self.knows_everything(peer)) {
                    return;
                }
                let started: Vec<Seq> = self.started.iter().copied().collect();
                for peer in 0..peers {
                    for &seq in &started {
                        let value = self.fresh_value();
                        self.start(peer, seq, value);
                    }
                }
            }
            if !self.net.is_empty() && self.rng.random_bool(0.9) {
                self.deliver_random();
            } else {
                self.advance(10);
            }
        }
        let seed = self.seed;
        for peer in 0..peers {
            let learner = &self.peers[peer].learner;
            let pending: Vec<Seq> = self
                .started
                .iter()
                .copied()
                .filter(|&seq| learner.status(seq) == Status::Pending)
                .collect();
            assert!(
                pending.is_empty(),
                "seed {seed}: after loss stopped, peer {peer} still has {pending:?} pending"
            );
        }
    }

    /// Every learner's table agrees with the decisions recorded along the way, and every
    /// peer decided every started instance at some point. (A peer forgets an instance only
    /// once every application called done on it, and the simulated applications call done
    /// only on what they decided: an instance forgotten without being decided everywhere
    /// was forgotten too early.)
    fn check_final_agreement(&self) {
        let seed = self.seed;
        for (peer, core) in self.peers.iter().enumerate() {
            for &seq in &self.started {
                if let Status::Decided(value) = core.learner.status(seq) {
                    assert_eq!(
                        Some(&value),
                        self.chosen.get(&seq),
                        "seed {seed}: peer {peer} holds {value} for seq {seq}"
                    );
                }
            }
            let never_decided: Vec<&Seq> =
                self.started.difference(&self.decided_by[peer]).collect();
            assert!(
                never_decided.is_empty(),
                "seed {seed}: peer {peer} never decided {never_decided:?}"
            );
        }
    }

    /// Delivers everything in the order sent, without loss or ticks, until the wire is empty.
    fn run_fifo_until_quiet(&mut self) {
        for _ in 0..10_000 {
            if self.net.is_empty() {
                return;
            }
            let message = self.net.remove(0);
            self.deliver(message);
        }
        panic!("seed {}: the network never went quiet", self.seed);
    }
}

/// The seeds to run: `PAXOS_SEED=<seed>` for one, `PAXOS_SEEDS=<n>` for the first n,
/// else the first 300.
fn seeds() -> Vec<u64> {
    let number = |name: &str| {
        std::env::var(name).ok().map(|text| {
            text.parse::<u64>()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
    };
    match (number("PAXOS_SEED"), number("PAXOS_SEEDS")) {
        (Some(seed), _) => vec![seed],
        (None, Some(count)) => (0..count).collect(),
        (None, None) => (0..300).collect(),
    }
}

/// Runs every seed through chaos then calm, and checks the runs as a whole exercised what
/// they are meant to: decisions under loss, contention (rejects), and forgetting.
fn chaos_then_calm(peers: usize, steps: usize, max_seq: Seq) {
    chaos_then_calm_leasing(peers, steps, max_seq, &[]);
}

/// [`chaos_then_calm`] with the peers in `leasing` running Multi-Paxos leases.
fn chaos_then_calm_leasing(peers: usize, steps: usize, max_seq: Seq, leasing: &[PeerId]) {
    let (mut decided_under_chaos, mut rejects, mut forgetting_runs) = (0, 0, 0);
    let mut leases_granted = 0;
    for seed in seeds() {
        let _guard = SeedGuard(seed);
        let mut sim = Sim::with_leases(seed, peers, leasing);
        sim.run_chaos(steps, max_seq);
        decided_under_chaos += sim.chosen.len();
        sim.run_until_everyone_knows(200_000);
        sim.check_final_agreement();
        rejects += sim
            .delivered
            .iter()
            .map(|kinds| kinds.get("reject").copied().unwrap_or(0))
            .sum::<usize>();
        if sim.peers.iter().any(|core| core.learner.floor() > 1) {
            forgetting_runs += 1;
        }
        leases_granted += sim
            .delivered
            .iter()
            .map(|kinds| kinds.get("promise_from").copied().unwrap_or(0))
            .sum::<usize>();
    }
    if !leasing.is_empty() {
        assert!(leases_granted > 0, "no lease was ever promised");
    }
    assert!(decided_under_chaos > 0, "nothing was decided under chaos");
    assert!(rejects > 0, "no proposers ever competed");
    assert!(forgetting_runs > 0, "no run ever forgot anything");
}

#[test]
fn three_peers_agree_under_loss_duplication_reordering_and_restarts() {
    chaos_then_calm(3, 2_500, 10);
}

#[test]
fn five_peers_agree_under_loss_duplication_reordering_and_restarts() {
    chaos_then_calm(5, 3_500, 12);
}

/// One distinguished proposer with a lease, the others basic Paxos: the kv service's
/// set-up, here with every peer starting instances as it likes so that the lease is broken
/// and taken again all the time.
#[test]
fn three_peers_with_one_leasing_proposer_agree() {
    chaos_then_calm_leasing(3, 2_500, 10, &[0]);
}

/// Every proposer leasing: leases break each other constantly; still safe.
#[test]
fn three_peers_all_leasing_agree() {
    chaos_then_calm_leasing(3, 2_500, 10, &[0, 1, 2]);
}

#[test]
fn five_peers_with_two_leasing_proposers_agree() {
    chaos_then_calm_leasing(5, 3_500, 12, &[0, 3]);
}

#[test]
fn uncontended_agreement_costs_one_prepare_accept_and_decided_per_peer() {
    let mut sim = Sim::new(1, 3);
    for seq in 1..=5 {
        let before = sim.delivered.clone();
        let proposer = (seq as usize) % 3;
        let value = sim.fresh_value();
        sim.start(proposer, seq, value);
        sim.run_fifo_until_quiet();
        for (peer, before) in before.iter().enumerate() {
            assert_eq!(
                sim.peers[peer].learner.status(seq),
                Status::Decided(value),
                "peer {peer} did not learn seq {seq}"
            );
            let arrived = |kind: &str| {
                sim.delivered[peer].get(kind).copied().unwrap_or(0)
                    - before.get(kind).copied().unwrap_or(0)
            };
            for kind in ["prepare", "accept", "decided"] {
                assert_eq!(
                    arrived(kind),
                    1,
                    "seq {seq}: peer {peer} got {} {kind}",
                    arrived(kind)
                );
            }
            let replies_expected = if peer == proposer { 3 } else { 0 };
            for kind in ["promise", "accepted"] {
                assert_eq!(
                    arrived(kind),
                    replies_expected,
                    "seq {seq}: peer {peer}, {kind}"
                );
            }
            assert_eq!(arrived("reject"), 0, "seq {seq}: peer {peer} got a reject");
        }
    }
    for (peer, core) in sim.peers.iter_mut().enumerate() {
        let out = core.proposer.tick(1_000_000, |_, _| 0);
        assert!(
            out.is_empty(),
            "peer {peer} retried a decided instance: {out:?}"
        );
        assert_eq!(core.proposer.next_deadline_ms(), None);
    }
}

#[test]
fn done_watermarks_raise_min_and_free_every_machine() {
    let mut sim = Sim::new(2, 3);
    for seq in 1..=10 {
        let value = sim.fresh_value();
        sim.start((seq as usize) % 3, seq, value);
        sim.run_fifo_until_quiet();
    }
    for core in &sim.peers {
        assert_eq!(core.learner.held(), 10);
        assert_eq!(core.acceptor.held(), 10);
        assert_eq!(core.proposer.held(), 0);
        assert_eq!(core.learner.min(), 1);
    }

    // Peers 0 and 1 are done with everything, peer 2 only up to 4: min can reach only 5.
    sim.peers[0].learner.done(10);
    sim.peers[1].learner.done(10);
    sim.peers[2].learner.done(4);
    for core in &sim.peers {
        assert_eq!(core.learner.min(), 1, "watermarks travel only on messages");
    }
    // Traffic from every peer to every peer carries the watermarks.
    for (peer, seq) in [(0, 11), (1, 12), (2, 13)] {
        let value = sim.fresh_value();
        sim.start(peer, seq, value);
        sim.run_fifo_until_quiet();
    }
    for (peer, core) in sim.peers.iter().enumerate() {
        assert_eq!(core.learner.min(), 5, "peer {peer}");
        assert_eq!(core.learner.status(4), Status::Forgotten, "peer {peer}");
        assert!(
            matches!(core.learner.status(5), Status::Decided(_)),
            "peer {peer}"
        );
        assert_eq!(core.learner.held(), 9, "peer {peer}: seqs 5..=13");
        assert_eq!(core.acceptor.held(), 9, "peer {peer}: seqs 5..=13");
        assert_eq!(core.learner.max(), 13, "peer {peer}");
    }

    // Everyone done with everything: all but the newest traffic is freed.
    for core in &mut sim.peers {
        core.learner.done(13);
    }
    for (peer, seq) in [(0, 14), (1, 15), (2, 16)] {
        let value = sim.fresh_value();
        sim.start(peer, seq, value);
        sim.run_fifo_until_quiet();
    }
    for (peer, core) in sim.peers.iter().enumerate() {
        assert_eq!(core.learner.min(), 14, "peer {peer}");
        assert_eq!(core.learner.held(), 3, "peer {peer}: seqs 14..=16");
        assert_eq!(core.acceptor.held(), 3, "peer {peer}: seqs 14..=16");
        assert_eq!(core.learner.status(13), Status::Forgotten, "peer {peer}");
    }

    // A forgotten instance cannot be started again and creates no state.
    for core in &mut sim.peers {
        assert!(core.proposer.start(3, 999, sim.now_ms).is_empty());
        assert_eq!(core.proposer.held(), 0);
    }
}

#[test]
fn a_peer_that_missed_a_decision_learns_it_by_starting_the_instance() {
    let mut sim = Sim::new(3, 3);
    sim.start(0, 1, 7);
    // Run the instance but lose every message to peer 2.
    while !sim.net.is_empty() {
        let message = sim.net.remove(0);
        if message.to != 2 {
            sim.deliver(message);
        }
    }
    assert_eq!(sim.peers[2].learner.status(1), Status::Pending);
    assert_eq!(sim.peers[0].learner.status(1), Status::Decided(7));
    let before = sim.delivered.clone();
    sim.start(2, 1, 8);
    sim.run_fifo_until_quiet();
    assert_eq!(sim.peers[2].learner.status(1), Status::Decided(7));
    assert_eq!(
        sim.delivered[0]["accept"], before[0]["accept"],
        "the catch-up needs no new accept round"
    );
}
