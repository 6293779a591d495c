//! The real Paxos [`Peer`] under a hostile simulated network, simulated disks and crashes.
//!
//! Whole clusters of [`Peer`]s — the very type the node's processes drive, with its own
//! acceptor and learner handled in place, its stamping, its catch-up `Query`s, its
//! forgetting and its lease — are wired through a network that loses, duplicates, delays
//! and reorders messages, driven by a seeded random scheduler with a simulated clock.
//! Each peer's batches ([`Ready`]) are applied as the contract says: records persisted to
//! the peer's simulated disk first, then messages sent, then decisions announced; a batch
//! may wait for its "fsync" while the peer goes on. A crash loses every batch not yet
//! durable and the peer restarts from the records on its disk ([`Peer::restore`]).
//!
//! Checked: no two learners ever decide different values for an instance, every decided
//! value was proposed for it and is held by a majority of acceptors (at the decision and
//! at the end of the run), and once loss stops every started instance is decided
//! everywhere. Also: the uncontended message count, forgetting driven by `done`
//! watermarks, catch-up by `Query`, and that each deliberate bug of `paxos_core`'s
//! `sim-bugs` feature is caught within a stated number of seeds.
//!
//! A failing run prints one replay line; `PAXOS_SEED=<seed>` reruns just that seed.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use paxos_app::core::bugs::{self, Bug};
use paxos_app::core::{
    MemoryStorage, Message, Outbound, Peer, PeerConfig, PeerId, ProposerConfig, Ready, Role, Seq,
    Status, Storage, majority,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type Value = u64;

const ANSWER_TIMEOUT_MS: u64 = 200;

/// Prints the replay line of a run that panics, whatever the panic came from.
struct SeedGuard {
    seed: u64,
    test: &'static str,
}

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", replay_line(self.seed, self.test));
        }
    }
}

fn replay_line(seed: u64, test: &str) -> String {
    format!(
        "failing seed {seed}; replay: PAXOS_SEED={seed} cargo test -p paxos_app --release --test core_safety {test}"
    )
}

/// One simulated node: its peer, its disk (what survived every sync), and the batches
/// it took that are not durable yet, oldest first.
struct Node {
    peer: Peer<Value>,
    disk: MemoryStorage<Value>,
    unsynced: VecDeque<Ready<Value>>,
}

/// A message on the simulated wire.
#[derive(Clone, Debug)]
struct InFlight {
    due_ms: u64,
    to: PeerId,
    role: Role,
    msg: Message<Value>,
}

/// Per receiving peer, how many messages of each kind arrived over the wire.
type Counts = Vec<HashMap<&'static str, usize>>;

/// What a simulated cluster is made of.
#[derive(Clone, Debug)]
struct Setup {
    peers: usize,
    /// The peers whose proposers run Multi-Paxos leases.
    leasing: Vec<PeerId>,
    /// Whether peers crash and restart from their disks during chaos.
    crashes: bool,
}

impl Setup {
    fn basic(peers: usize) -> Self {
        Setup {
            peers,
            leasing: Vec::new(),
            crashes: true,
        }
    }

    fn config(&self, me: PeerId) -> PeerConfig {
        PeerConfig {
            proposer: ProposerConfig {
                answer_timeout_ms: ANSWER_TIMEOUT_MS,
                resend_ms: ANSWER_TIMEOUT_MS / 2,
                lease: self.leasing.contains(&me),
            },
            // Every look asks each other peer about every old hole; more often than this
            // and the queries outnumber what one delivery per step can carry.
            catch_up_ms: 150,
            backoff_base_ms: 20,
            ..PeerConfig::new(me, self.peers)
        }
    }
}

struct Sim {
    seed: u64,
    setup: Setup,
    rng: ChaCha8Rng,
    now_ms: u64,
    nodes: Vec<Node>,
    net: Vec<InFlight>,
    loss: f64,
    duplication: f64,
    /// Chance that a message is held back well past the proposers' answer timeout.
    long_delay: f64,
    /// Chance that a batch is durable as soon as it is taken (else it waits for a sync).
    sync_at_once: f64,
    /// Chance that a node crashes right after one of its batches went out: the moment a
    /// reply is on the wire and nothing after it is durable yet.
    crash_after_send: f64,
    /// The value any learner decided first, per instance.
    chosen: HashMap<Seq, Value>,
    /// Every value some proposer was started with, per instance.
    proposed: HashMap<Seq, HashSet<Value>>,
    /// Every instance some peer started.
    started: BTreeSet<Seq>,
    /// Per peer, every instance its learner ever decided (across crashes).
    decided_by: Vec<BTreeSet<Seq>>,
    delivered: Counts,
    next_value: Value,
    crashes: usize,
    /// Records lost by crashes before they were durable.
    records_lost: usize,
    /// The first safety violation seen.
    violation: Option<String>,
}

impl Sim {
    fn new(seed: u64, setup: Setup) -> Self {
        let peers = setup.peers;
        Sim {
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            now_ms: 0,
            nodes: (0..peers)
                .map(|me| Node {
                    peer: Peer::new(setup.config(me)),
                    disk: MemoryStorage::new(),
                    unsynced: VecDeque::new(),
                })
                .collect(),
            setup,
            net: Vec::new(),
            loss: 0.0,
            duplication: 0.0,
            long_delay: 0.0,
            sync_at_once: 1.0,
            crash_after_send: 0.0,
            chosen: HashMap::new(),
            proposed: HashMap::new(),
            started: BTreeSet::new(),
            decided_by: vec![BTreeSet::new(); peers],
            delivered: vec![HashMap::new(); peers],
            next_value: 1,
            crashes: 0,
            records_lost: 0,
            violation: None,
        }
    }

    fn peer(&self, peer: PeerId) -> &Peer<Value> {
        &self.nodes[peer].peer
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

    /// Takes peer `peer`'s batch, if any; it is durable at once or waits for a sync.
    fn collect(&mut self, peer: PeerId) {
        let node = &mut self.nodes[peer];
        if node.peer.has_ready() {
            let ready = node.peer.take_ready();
            node.unsynced.push_back(ready);
        }
        if self.rng.random_bool(self.sync_at_once) {
            self.sync(peer);
        }
    }

    /// Peer `peer`'s disk syncs: every batch waiting is durable now, and, in order, its
    /// messages go out and its decisions are announced.
    fn sync(&mut self, peer: PeerId) {
        while let Some(ready) = self.nodes[peer].unsynced.pop_front() {
            self.nodes[peer]
                .disk
                .persist(&ready.persist)
                .expect("memory storage");
            let replied = ready
                .messages
                .iter()
                .any(|o| matches!(o.msg.body.kind(), "promise" | "accepted"));
            for Outbound { to, role, msg } in ready.messages {
                let due_ms = self.now_ms + self.delay_ms();
                self.net.push(InFlight {
                    due_ms,
                    to,
                    role,
                    msg,
                });
            }
            for (seq, value) in ready.decided {
                self.record_decision(peer, seq, value);
            }
            if replied && self.rng.random_bool(self.crash_after_send) {
                self.crash(peer);
                return;
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
        self.nodes[to].peer.step(role, msg, self.now_ms);
        self.collect(to);
    }

    /// Checks a value peer `peer` just decided against everything decided so far.
    fn record_decision(&mut self, peer: PeerId, seq: Seq, value: Value) {
        let seed = self.seed;
        let first = *self.chosen.entry(seq).or_insert(value);
        if first != value {
            self.violate(format!(
                "seed {seed}: peer {peer} decided {value} for seq {seq}, another learner decided {first}"
            ));
        }
        if !self
            .proposed
            .get(&seq)
            .is_some_and(|values| values.contains(&value))
        {
            self.violate(format!(
                "seed {seed}: peer {peer} decided {value} for seq {seq}, which nobody proposed for it"
            ));
        }
        self.decided_by[peer].insert(seq);
        self.check_held_by_a_majority(seq, value);
    }

    /// The oracle: a decided value is held by a majority of acceptors, for good. Each one
    /// that voted for it accepted it before replying, had it durable before the reply
    /// left, and can only accept the same value at a higher ballot later; one that forgot
    /// the instance is given the benefit of the doubt.
    fn check_held_by_a_majority(&mut self, seq: Seq, value: Value) {
        let holders = self
            .nodes
            .iter()
            .filter(|node| {
                let acceptor = node.peer.acceptor();
                acceptor.floor() > seq || acceptor.accepted(seq).is_some_and(|(_, v)| *v == value)
            })
            .count();
        if holders < majority(self.nodes.len()) {
            let seed = self.seed;
            self.violate(format!(
                "seed {seed}: seq {seq} decided {value}, but only {holders} acceptors hold it"
            ));
        }
    }

    fn violate(&mut self, what: String) {
        self.violation.get_or_insert(what);
    }

    /// Peer `peer`'s application starts `seq` with `value`; the peer refuses what it
    /// knows is decided or forgotten, and keeps its first value for what it is driving.
    fn start(&mut self, peer: PeerId, seq: Seq, value: Value) {
        if self.peer(peer).proposer().is_proposing(seq) {
            return;
        }
        self.proposed.entry(seq).or_default().insert(value);
        if self.nodes[peer].peer.propose(seq, value, self.now_ms) {
            self.started.insert(seq);
        }
        self.collect(peer);
    }

    fn fresh_value(&mut self) -> Value {
        self.next_value += 1;
        self.next_value
    }

    /// Moves the clock on by up to `max_step_ms` and ticks every peer.
    fn advance(&mut self, max_step_ms: u64) {
        let step_ms = self.rng.random_range(1..=max_step_ms);
        self.advance_to(self.now_ms + step_ms);
    }

    /// Moves the clock to `now_ms` and ticks every peer, its backoff jitter drawn from the
    /// run's generator.
    fn advance_to(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        for peer in 0..self.nodes.len() {
            let rng = &mut self.rng;
            self.nodes[peer]
                .peer
                .tick(self.now_ms, &mut |most: u64| rng.random_range(0..=most));
            self.collect(peer);
        }
    }

    /// Peer `peer`'s application calls done on some prefix of what it has decided.
    fn app_done(&mut self, peer: PeerId) {
        let learner = self.peer(peer).learner();
        let mut prefix = learner.local_done();
        while learner.decided(prefix + 1).is_some() {
            prefix += 1;
        }
        let upto = self.rng.random_range(learner.local_done()..=prefix);
        self.nodes[peer].peer.done(upto);
        self.collect(peer);
    }

    /// An acceptor process crashes and its supervisor restarts it: part of its mailbox is
    /// lost, its state (the peer, outside the process) is not.
    fn restart_acceptor(&mut self, peer: PeerId) {
        let rng = &mut self.rng;
        self.net
            .retain(|m| !(m.to == peer && m.role == Role::Acceptor) || rng.random_bool(0.5));
    }

    /// The whole node crashes: every batch not yet durable is lost (its messages were
    /// never sent), and so is everything on the wire to it; it restarts from its disk.
    fn crash(&mut self, peer: PeerId) {
        self.crashes += 1;
        let node = &mut self.nodes[peer];
        self.records_lost += node.unsynced.iter().map(|r| r.persist.len()).sum::<usize>();
        node.unsynced.clear();
        let records = node.disk.load().expect("memory storage");
        node.peer = Peer::restore(self.setup.config(peer), records);
        self.net.retain(|m| m.to != peer);
    }

    /// True when `peer` knows the outcome of every started instance (or forgot it).
    fn knows_everything(&self, peer: PeerId) -> bool {
        let peer = self.peer(peer);
        self.started
            .iter()
            .all(|&seq| peer.status(seq) != Status::Pending)
    }

    /// Chaos: random starts, deliveries, losses, duplicates, delays, timeouts, slow
    /// syncs, process restarts, node crashes and done calls.
    fn run_chaos(&mut self, steps: usize, max_seq: Seq) {
        self.loss = self.rng.random_range(0.0..0.3);
        self.duplication = self.rng.random_range(0.0..0.2);
        self.long_delay = self.rng.random_range(0.0..0.15);
        self.sync_at_once = self.rng.random_range(0.3..1.0);
        let crash_rate = if self.setup.crashes { 0.002 } else { 0.0 };
        self.crash_after_send = crash_rate * 5.0;
        let peers = self.nodes.len();
        for _ in 0..steps {
            if self.violation.is_some() {
                return;
            }
            let roll: f64 = self.rng.random();
            let peer = self.rng.random_range(0..peers);
            if roll < 0.62 {
                self.deliver_random();
            } else if roll < 0.70 {
                self.sync(peer);
            } else if roll < 0.80 {
                self.advance(20);
            } else if roll < 0.86 {
                let seq = self.rng.random_range(1..=max_seq);
                let value = self.fresh_value();
                self.start(peer, seq, value);
            } else if roll < 0.88 {
                self.restart_acceptor(peer);
            } else if roll < 0.91 {
                self.app_done(peer);
            } else if roll < 0.91 + crash_rate {
                self.crash(peer);
            } else {
                self.deliver_random();
            }
        }
    }

    /// Calm: no loss, syncs at once; every peer starts what it has not learned (as an
    /// application catching up does), and the cluster runs until everyone knows
    /// everything.
    fn run_until_everyone_knows(&mut self, max_steps: usize) {
        self.loss = 0.0;
        self.duplication = 0.05;
        self.long_delay = 0.0;
        self.sync_at_once = 1.0;
        self.crash_after_send = 0.0;
        let peers = self.nodes.len();
        for peer in 0..peers {
            self.sync(peer);
        }
        for step in 0..max_steps {
            if self.violation.is_some() {
                return;
            }
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
            // Everything due is delivered before time moves on (deliver_random moves it
            // to the next message when none is due), so the wire never floods.
            if !self.net.is_empty() && self.rng.random_bool(0.98) {
                self.deliver_random();
            } else {
                self.advance(10);
            }
        }
        let seed = self.seed;
        for peer in 0..peers {
            let pending: Vec<Seq> = self
                .started
                .iter()
                .copied()
                .filter(|&seq| self.peer(peer).status(seq) == Status::Pending)
                .collect();
            if !pending.is_empty() {
                let p = self.peer(peer);
                let proposing: Vec<Seq> = pending
                    .iter()
                    .copied()
                    .filter(|&seq| p.proposer().is_proposing(seq))
                    .collect();
                self.violate(format!(
                    "seed {seed}: after loss stopped, peer {peer} still has {pending:?} pending \
                     (floor {}, min {}, max {}, proposing {proposing:?}, {} crashes)",
                    p.floor(),
                    p.min(),
                    p.max(),
                    self.crashes
                ));
            }
        }
    }

    /// Every learner's table agrees with the decisions recorded along the way, and every
    /// peer decided every started instance at some point. (A peer forgets an instance only
    /// once every application called done on it, and the simulated applications call done
    /// only on what they decided: an instance forgotten without being decided everywhere
    /// was forgotten too early.)
    fn check_final_agreement(&mut self) {
        let seed = self.seed;
        let chosen: Vec<(Seq, Value)> = self.chosen.iter().map(|(&s, &v)| (s, v)).collect();
        for (seq, value) in chosen {
            self.check_held_by_a_majority(seq, value);
        }
        for peer in 0..self.nodes.len() {
            for &seq in &self.started.clone() {
                if let Status::Decided(value) = self.peer(peer).status(seq)
                    && Some(&value) != self.chosen.get(&seq)
                {
                    self.violate(format!(
                        "seed {seed}: peer {peer} holds {value} for seq {seq}"
                    ));
                }
            }
            let never_decided: Vec<Seq> = self
                .started
                .difference(&self.decided_by[peer])
                .copied()
                .collect();
            if !never_decided.is_empty() {
                self.violate(format!(
                    "seed {seed}: peer {peer} never decided {never_decided:?}"
                ));
            }
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

    /// Panics with the first violation, if any.
    fn assert_safe(&self, test: &'static str) {
        if let Some(what) = &self.violation {
            panic!("{what}\n{}", replay_line(self.seed, test));
        }
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

/// One seed: chaos, then calm, then the final checks.
fn run_seed(seed: u64, setup: &Setup, steps: usize, max_seq: Seq) -> Sim {
    let mut sim = Sim::new(seed, setup.clone());
    sim.run_chaos(steps, max_seq);
    sim.run_until_everyone_knows(200_000);
    if sim.violation.is_none() {
        sim.check_final_agreement();
    }
    sim
}

/// Runs every seed through chaos then calm, and checks the runs as a whole exercised what
/// they are meant to: decisions under loss, contention (rejects), forgetting, catch-up
/// queries, crashes that lost records, and leases where some peer leases.
fn chaos_then_calm(test: &'static str, setup: Setup, steps: usize, max_seq: Seq) {
    let (mut decided_under_chaos, mut rejects, mut forgetting_runs) = (0, 0, 0);
    let (mut leases_granted, mut queries, mut crashes, mut records_lost) = (0, 0, 0, 0);
    let kind = |sim: &Sim, kind: &str| {
        sim.delivered
            .iter()
            .map(|kinds| kinds.get(kind).copied().unwrap_or(0))
            .sum::<usize>()
    };
    for seed in seeds() {
        let _guard = SeedGuard { seed, test };
        let mut sim = Sim::new(seed, setup.clone());
        sim.run_chaos(steps, max_seq);
        decided_under_chaos += sim.chosen.len();
        sim.run_until_everyone_knows(200_000);
        sim.check_final_agreement();
        sim.assert_safe(test);
        rejects += kind(&sim, "reject");
        queries += kind(&sim, "query");
        leases_granted += kind(&sim, "promise_from");
        if sim.nodes.iter().any(|node| node.peer.floor() > 1) {
            forgetting_runs += 1;
        }
        crashes += sim.crashes;
        records_lost += sim.records_lost;
    }
    eprintln!(
        "{test}: {} seeds, {decided_under_chaos} decided under chaos, {rejects} rejects, \
         {queries} queries, {forgetting_runs} runs forgot, {crashes} crashes losing \
         {records_lost} records not yet durable",
        seeds().len()
    );
    if !setup.leasing.is_empty() {
        assert!(leases_granted > 0, "no lease was ever promised");
    }
    assert!(decided_under_chaos > 0, "nothing was decided under chaos");
    assert!(rejects > 0, "no proposers ever competed");
    assert!(forgetting_runs > 0, "no run ever forgot anything");
    assert!(queries > 0, "no learner ever asked about a hole");
    if setup.crashes && seeds().len() > 10 {
        assert!(crashes > 0, "no peer ever crashed");
        assert!(
            records_lost > 0,
            "no crash ever lost a record not yet durable"
        );
    }
}

#[test]
fn three_peers_agree_under_loss_duplication_reordering_and_crashes() {
    chaos_then_calm(
        "three_peers_agree_under_loss_duplication_reordering_and_crashes",
        Setup::basic(3),
        2_500,
        10,
    );
}

#[test]
fn five_peers_agree_under_loss_duplication_reordering_and_crashes() {
    chaos_then_calm(
        "five_peers_agree_under_loss_duplication_reordering_and_crashes",
        Setup::basic(5),
        3_500,
        12,
    );
}

/// One distinguished proposer with a lease, the others basic Paxos: the kv service's
/// set-up, here with every peer starting instances as it likes so that the lease is broken
/// and taken again all the time.
#[test]
fn three_peers_with_one_leasing_proposer_agree() {
    let setup = Setup {
        leasing: vec![0],
        ..Setup::basic(3)
    };
    chaos_then_calm(
        "three_peers_with_one_leasing_proposer_agree",
        setup,
        2_500,
        10,
    );
}

/// Every proposer leasing: leases break each other constantly; still safe.
#[test]
fn three_peers_all_leasing_agree() {
    let setup = Setup {
        leasing: vec![0, 1, 2],
        ..Setup::basic(3)
    };
    chaos_then_calm("three_peers_all_leasing_agree", setup, 2_500, 10);
}

#[test]
fn five_peers_with_two_leasing_proposers_agree() {
    let setup = Setup {
        leasing: vec![0, 3],
        ..Setup::basic(5)
    };
    chaos_then_calm(
        "five_peers_with_two_leasing_proposers_agree",
        setup,
        3_500,
        12,
    );
}

#[test]
fn uncontended_agreement_costs_one_prepare_accept_and_decided_per_peer() {
    let mut sim = Sim::new(1, Setup::basic(3));
    for seq in 1..=5 {
        let before = sim.delivered.clone();
        let counts_before: Vec<_> = (0..3).map(|peer| sim.peer(peer).counts()).collect();
        let proposer = (seq as usize) % 3;
        let value = sim.fresh_value();
        sim.start(proposer, seq, value);
        sim.run_fifo_until_quiet();
        for (peer, before) in before.iter().enumerate() {
            assert_eq!(
                sim.peer(peer).status(seq),
                Status::Decided(value),
                "peer {peer} did not learn seq {seq}"
            );
            let arrived = |kind: &str| {
                sim.delivered[peer].get(kind).copied().unwrap_or(0)
                    - before.get(kind).copied().unwrap_or(0)
            };
            // The proposer's own acceptor and learner are served in place: nothing on
            // the wire to itself.
            let requests_expected = if peer == proposer { 0 } else { 1 };
            for kind in ["prepare", "accept", "decided"] {
                assert_eq!(
                    arrived(kind),
                    requests_expected,
                    "seq {seq}: peer {peer} got {} {kind} over the wire",
                    arrived(kind)
                );
            }
            let counts = sim.peer(peer).counts();
            let was = counts_before[peer];
            assert_eq!(
                (
                    counts.prepare - was.prepare,
                    counts.accept - was.accept,
                    counts.decided - was.decided
                ),
                (1, 1, 1),
                "seq {seq}: peer {peer} handled one of each request"
            );
            let replies_expected = if peer == proposer { 2 } else { 0 };
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
    for peer in 0..3 {
        sim.nodes[peer].peer.tick(1_000_000, &mut |_| 0);
        sim.nodes[peer].peer.tick(2_000_000, &mut |_| 0);
        let ready = sim.nodes[peer].peer.take_ready();
        assert!(
            ready.messages.is_empty(),
            "peer {peer} retried or queried a decided instance: {:?}",
            ready.messages
        );
        assert_eq!(sim.peer(peer).proposer_deadline_ms(), None);
    }
}

#[test]
fn done_watermarks_raise_min_and_free_every_machine() {
    let mut sim = Sim::new(2, Setup::basic(3));
    for seq in 1..=10 {
        let value = sim.fresh_value();
        sim.start((seq as usize) % 3, seq, value);
        sim.run_fifo_until_quiet();
    }
    for node in &sim.nodes {
        assert_eq!(node.peer.learner().held(), 10);
        assert_eq!(node.peer.acceptor().held(), 10);
        assert_eq!(node.peer.proposer().held(), 0);
        assert_eq!(node.peer.min(), 1);
    }

    // Peers 0 and 1 are done with everything, peer 2 only up to 4: min can reach only 5.
    for (peer, done) in [(0, 10), (1, 10), (2, 4)] {
        sim.nodes[peer].peer.done(done);
        sim.collect(peer);
    }
    for node in &sim.nodes {
        assert_eq!(node.peer.min(), 1, "watermarks travel only on messages");
    }
    // Traffic from every peer to every peer carries the watermarks.
    for (peer, seq) in [(0, 11), (1, 12), (2, 13)] {
        let value = sim.fresh_value();
        sim.start(peer, seq, value);
        sim.run_fifo_until_quiet();
    }
    for (peer, node) in sim.nodes.iter().enumerate() {
        let p = &node.peer;
        assert_eq!(p.min(), 5, "peer {peer}");
        assert_eq!(p.status(4), Status::Forgotten, "peer {peer}");
        assert!(matches!(p.status(5), Status::Decided(_)), "peer {peer}");
        assert_eq!(p.learner().held(), 9, "peer {peer}: seqs 5..=13");
        assert_eq!(p.acceptor().held(), 9, "peer {peer}: seqs 5..=13");
        assert_eq!(p.max(), 13, "peer {peer}");
        let kept = node.disk.load().unwrap();
        assert!(
            kept.iter().all(|r| r.seq().is_none_or(|seq| seq >= 5)),
            "peer {peer}: the disk kept records below the floor"
        );
    }

    // Everyone done with everything: all but the newest traffic is freed.
    for peer in 0..3 {
        sim.nodes[peer].peer.done(13);
        sim.collect(peer);
    }
    for (peer, seq) in [(0, 14), (1, 15), (2, 16)] {
        let value = sim.fresh_value();
        sim.start(peer, seq, value);
        sim.run_fifo_until_quiet();
    }
    for (peer, node) in sim.nodes.iter().enumerate() {
        let p = &node.peer;
        assert_eq!(p.min(), 14, "peer {peer}");
        assert_eq!(p.learner().held(), 3, "peer {peer}: seqs 14..=16");
        assert_eq!(p.acceptor().held(), 3, "peer {peer}: seqs 14..=16");
        assert_eq!(p.status(13), Status::Forgotten, "peer {peer}");
    }

    // A forgotten instance cannot be started again and creates no state.
    for peer in 0..3 {
        let now = sim.now_ms;
        assert!(!sim.nodes[peer].peer.propose(3, 999, now));
        assert_eq!(sim.peer(peer).proposer().held(), 0);
    }
}

#[test]
fn a_peer_that_missed_a_decision_learns_it_by_starting_the_instance() {
    let mut sim = Sim::new(3, Setup::basic(3));
    sim.start(0, 1, 7);
    // Run the instance but lose every message to peer 2.
    while !sim.net.is_empty() {
        let message = sim.net.remove(0);
        if message.to != 2 {
            sim.deliver(message);
        }
    }
    assert_eq!(sim.peer(2).status(1), Status::Pending);
    assert_eq!(sim.peer(0).status(1), Status::Decided(7));
    let before = sim.delivered.clone();
    sim.start(2, 1, 8);
    sim.run_fifo_until_quiet();
    assert_eq!(sim.peer(2).status(1), Status::Decided(7));
    assert_eq!(
        sim.delivered[0].get("accept"),
        before[0].get("accept"),
        "the catch-up needs no new accept round"
    );
}

#[test]
fn a_peer_that_missed_a_decision_learns_it_by_query_without_a_start() {
    let mut sim = Sim::new(4, Setup::basic(3));
    sim.start(0, 1, 7);
    while !sim.net.is_empty() {
        let message = sim.net.remove(0);
        if message.to != 2 {
            sim.deliver(message);
        }
    }
    // Seq 2 reaches peer 2: its messages say that seq 1 exists.
    sim.start(0, 2, 8);
    sim.run_fifo_until_quiet();
    assert_eq!(sim.peer(2).status(1), Status::Pending);
    assert_eq!(sim.peer(2).max(), 2);
    let queries_before = sim.delivered[0].get("query").copied().unwrap_or(0);
    for _ in 0..4 {
        let now = sim.now_ms + 150;
        sim.advance_to(now);
        sim.run_fifo_until_quiet();
    }
    assert_eq!(sim.peer(2).status(1), Status::Decided(7));
    assert!(sim.delivered[0].get("query").copied().unwrap_or(0) > queries_before);
}

#[test]
fn a_crash_loses_only_what_was_not_durable_and_the_promises_hold() {
    let mut sim = Sim::new(5, Setup::basic(3));
    sim.start(0, 1, 7);
    sim.run_fifo_until_quiet();
    let promised = sim.peer(1).acceptor().promised(1);
    assert!(!promised.is_zero());
    // Peer 1 takes a batch (a promise for seq 2) that never becomes durable.
    sim.sync_at_once = 0.0;
    sim.start(0, 2, 8);
    sim.sync(0);
    while let Some(message) = sim.net.pop() {
        sim.deliver(message);
    }
    assert!(!sim.nodes[1].unsynced.is_empty());
    sim.crash(1);
    assert!(sim.records_lost > 0);
    let restored = sim.peer(1);
    assert_eq!(restored.acceptor().promised(1), promised, "durable: kept");
    assert_eq!(restored.acceptor().accepted(1).map(|(_, v)| *v), Some(7));
    assert!(
        restored.acceptor().promised(2).is_zero(),
        "never durable, never sent: gone"
    );
}

/// Runs seeds `0..limit` with `bug` switched on until one fails; returns it, after
/// checking the same seeds pass without the bug.
fn first_seed_catching(bug: Bug, setup: &Setup, limit: u64) -> u64 {
    let (steps, max_seq) = if setup.peers == 3 {
        (2_500, 10)
    } else {
        (3_500, 12)
    };
    let caught = (0..limit).find(|&seed| {
        let _bug = bugs::inject(bug);
        run_seed(seed, setup, steps, max_seq).violation.is_some()
    });
    let Some(caught) = caught else {
        panic!("{bug:?} was not caught in {limit} seeds");
    };
    for seed in 0..=caught {
        let sim = run_seed(seed, setup, steps, max_seq);
        assert!(
            sim.violation.is_none(),
            "seed {seed} fails without the bug: {:?}",
            sim.violation
        );
    }
    eprintln!("{bug:?} caught at seed {caught}");
    caught
}

#[test]
fn bug_acceptor_amnesia_is_caught() {
    first_seed_catching(Bug::AcceptorAmnesia, &Setup::basic(3), 100);
}

#[test]
fn bug_duplicate_vote_is_caught() {
    first_seed_catching(Bug::DuplicateVote, &Setup::basic(5), 100);
}

#[test]
fn bug_own_value_over_accepted_is_caught() {
    first_seed_catching(Bug::OwnValueOverAccepted, &Setup::basic(3), 100);
}

#[test]
fn bug_forget_above_min_is_caught() {
    first_seed_catching(Bug::ForgetAboveMin, &Setup::basic(3), 100);
}

#[test]
fn bug_send_before_persist_is_caught() {
    first_seed_catching(Bug::SendBeforePersist, &Setup::basic(3), 100);
}
