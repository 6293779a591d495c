//! One Paxos peer: the acceptor, proposer and learner of one node, and every rule that
//! ties them together, behind one input surface and one output batch (the style of
//! tikv/raft-rs `RawNode` and `Ready`).
//!
//! Inputs: [`Peer::step`] (a message from another peer, with the machine it was
//! addressed to), [`Peer::tick`] (time passes: `now_ms` and a [`Jitter`] source from the
//! driver), [`Peer::propose`] (the application starts an instance) and [`Peer::done`].
//! Output: [`Peer::take_ready`] returns a [`Ready`], in order
//! 1. `persist`: the [`Record`]s that must be durable,
//! 2. `messages`: what to send, already stamped with `from`, `done`, `max` and `min`,
//! 3. `decided`: the instances decided here since the last batch, for the application.
//!
//! **The contract: persist (1) before sending (2).** A `Promise` or `Accepted` that leaves
//! before its record is durable can be counted by a proposer and then forgotten by a
//! crash. A driver that takes several batches before the first is durable must send each
//! batch's messages only once it and every earlier batch are durable.
//!
//! Rules that live here, and nowhere else:
//! - the node's own acceptor and learner are handled in place: a message the proposer
//!   sends to every peer is delivered to this peer's machines at once, and their answers go
//!   straight back in, until nothing is left for this peer (no self-message on the wire);
//! - every message that reaches the peer is observed by the learner first (the sender's
//!   `done`, `min` and `max`; a `Decided`), then handled by the machine it is for;
//! - every message sent carries this peer's `done`, `max` and `min`;
//! - forgetting: when `min` rises, the learner, acceptor and proposer forget below it;
//! - catch-up: every `catch_up_ms` the learner looks for holes (instances it knows exist
//!   but has not learned) and asks the other acceptors (`Query`) about those that were
//!   already missing at the previous look, at most [`QUERY_BATCH`] at a time;
//! - the proposer's retry backoff (doubling from `backoff_base_ms`, plus jitter the
//!   driver draws) and its lease;
//! - an instance that is forgotten, or already decided here, is not started;
//! - the request counters.

use std::collections::VecDeque;

use log::debug;

use super::bugs::{self, Bug};
use super::durable::Record;
use super::{
    AcceptorState, Body, LearnerState, Message, Outgoing, PeerId, Proposer, ProposerConfig, Role,
    Seq, Status, Target, Value,
};

/// How many holes one catch-up look asks about at most.
pub const QUERY_BATCH: usize = 256;

/// How many ballot rounds one [`Record::RoundsReserved`] covers: a new record is needed
/// only when the proposer goes past the block.
pub const ROUND_BLOCK: u64 = 1 << 16;

/// A peer's place in the cluster and its timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// This peer's index in the peer list.
    pub me: PeerId,
    /// How many peers the cluster has.
    pub peers: usize,
    /// The proposer's timeouts and lease.
    pub proposer: ProposerConfig,
    /// How often the learner looks for holes.
    pub catch_up_ms: u64,
    /// The first retry backoff; it doubles per failure up to 64 times this, and a random
    /// jitter of up to as much again is added so that duelling proposers fall out of step.
    pub backoff_base_ms: u64,
}

impl PeerConfig {
    /// Peer `me` of `peers`, with default timing.
    pub fn new(me: PeerId, peers: usize) -> Self {
        PeerConfig {
            me,
            peers,
            proposer: ProposerConfig::default(),
            catch_up_ms: 30,
            backoff_base_ms: 10,
        }
    }
}

/// The driver's source of randomness for backoff jitter (the core draws no random number).
pub trait Jitter {
    /// A number in `0..=most`.
    fn up_to(&mut self, most: u64) -> u64;
}

impl<F: FnMut(u64) -> u64> Jitter for F {
    fn up_to(&mut self, most: u64) -> u64 {
        self(most)
    }
}

/// Protocol requests this peer received (its own proposer's, handled in place, included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// `Prepare` and `PrepareFrom`.
    pub prepare: u64,
    /// `Accept`.
    pub accept: u64,
    /// `Decided` reaching the acceptor or learner.
    pub decided: u64,
}

/// A message to send: to peer `to`'s machine `role`.
#[derive(Clone, Debug, PartialEq)]
pub struct Outbound<V> {
    /// The receiving peer (never this one).
    pub to: PeerId,
    /// The machine on it.
    pub role: Role,
    /// The stamped message.
    pub msg: Message<V>,
}

/// What a peer produced since the last batch: persist `persist`, THEN send `messages`,
/// and hand `decided` to the application.
///
/// ```text
///   step / tick / propose / done
///               │
///            ┌──▼──┐   take_ready()   ┌─────────────────────────────┐
///            │Peer │ ───────────────▶ │ 1. persist  (records)       │ ─▶ storage, synced
///            └─────┘                  │ 2. messages (stamped)       │ ─▶ network, after 1
///                                     │ 3. decided  (seq, value)    │ ─▶ application
///                                     └─────────────────────────────┘
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Ready<V> {
    /// Records to make durable before any of `messages` is sent.
    pub persist: Vec<Record<V>>,
    /// Messages to send once `persist` is durable.
    pub messages: Vec<Outbound<V>>,
    /// Instances decided here, in the order learned.
    pub decided: Vec<(Seq, V)>,
}

impl<V> Default for Ready<V> {
    fn default() -> Self {
        Ready {
            persist: Vec::new(),
            messages: Vec::new(),
            decided: Vec::new(),
        }
    }
}

impl<V> Ready<V> {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.persist.is_empty() && self.messages.is_empty() && self.decided.is_empty()
    }

    /// The new forgetting floor, if this batch raised it.
    pub fn forgotten_below(&self) -> Option<Seq> {
        self.persist.iter().rev().find_map(|record| match record {
            Record::Forgotten { below } => Some(*below),
            _ => None,
        })
    }
}

/// When the learner looks for holes, and what was missing at the last look.
#[derive(Clone, Debug, Default, PartialEq)]
struct CatchUp {
    next_look_ms: Option<u64>,
    missing_before: Vec<Seq>,
    /// The highest instance seen when adverts were last planned, how many adverts are
    /// still to go for it, and how many looks until the next one.
    advertised: Seq,
    adverts_left: u32,
    looks_to_advert: u32,
}

/// Adverts sent after the highest instance seen rises (each lost with the link's loss
/// rate, so a few), and the looks between two of them (10 x 30 ms by default).
const ADVERTS: u32 = 3;
const LOOKS_BETWEEN_ADVERTS: u32 = 10;

/// One Paxos peer. See the module doc.
#[derive(Clone, Debug)]
pub struct Peer<V> {
    config: PeerConfig,
    acceptor: AcceptorState<V>,
    proposer: Proposer<V>,
    learner: LearnerState<V>,
    catch_up: CatchUp,
    counts: RequestCounts,
    /// Every ballot round this proposer sends is at most this (recorded before it is sent).
    rounds_reserved: u64,
    ready: Ready<V>,
    /// Only with [`Bug::SendBeforePersist`]: records held back one batch.
    held_back: Vec<Record<V>>,
}

impl<V: Value> Peer<V> {
    /// A fresh peer that promised, accepted and learned nothing.
    ///
    /// # Panics
    /// If `config.me` is not below `config.peers`.
    pub fn new(config: PeerConfig) -> Self {
        Peer {
            config,
            acceptor: AcceptorState::new(),
            proposer: Proposer::new(config.me, config.peers, config.proposer),
            learner: LearnerState::new(config.me, config.peers),
            catch_up: CatchUp::default(),
            counts: RequestCounts::default(),
            rounds_reserved: 0,
            ready: Ready::default(),
            held_back: Vec::new(),
        }
    }

    /// A peer restarted from the records a [`crate::Storage`] kept, replayed in order: it
    /// honours every promise and acceptance it made, proposes only above every ballot
    /// round it reserved, and ignores what it forgot. Its learner knows only what
    /// [`Record::Decided`] records say; it learns the rest by catch-up.
    pub fn restore(config: PeerConfig, records: impl IntoIterator<Item = Record<V>>) -> Self {
        let mut peer = Peer::new(config);
        let amnesia = bugs::active(Bug::AcceptorAmnesia);
        for record in records {
            match record {
                Record::Promised { seq, ballot } if !amnesia => {
                    peer.acceptor.restore_promise(seq, ballot)
                }
                Record::Accepted { seq, ballot, value } if !amnesia => {
                    peer.acceptor.restore_accepted(seq, ballot, value)
                }
                Record::StandingPromise { from, ballot } if !amnesia => {
                    peer.acceptor.restore_standing(from, ballot)
                }
                Record::RoundsReserved { up_to } => {
                    peer.rounds_reserved = peer.rounds_reserved.max(up_to)
                }
                Record::Forgotten { below } => {
                    peer.learner.note_min(below);
                    peer.forget_below(below);
                }
                Record::Decided { seq, value } => {
                    peer.learner.learn(seq, value);
                }
                _ => {}
            }
        }
        peer.proposer.restore_rounds(peer.rounds_reserved);
        peer
    }

    /// A message from another peer, addressed to this peer's `role` machine.
    pub fn step(&mut self, role: Role, msg: Message<V>, now_ms: u64) {
        if msg.from >= self.config.peers || msg.from == self.config.me {
            debug!(
                "peer {}: dropped {} claiming to come from peer {}",
                self.config.me,
                msg.body.kind(),
                msg.from
            );
            return;
        }
        let out = self.deliver(role, &msg, now_ms);
        self.route(out, now_ms);
    }

    /// Time passes: the proposer resends, times out and retries (its backoff's jitter
    /// drawn from `jitter`), and every `catch_up_ms` the learner looks for holes.
    pub fn tick(&mut self, now_ms: u64, jitter: &mut impl Jitter) {
        let base = self.config.backoff_base_ms;
        let out = self.proposer.tick(now_ms, |_, failures| {
            let backoff = base << failures.saturating_sub(1).min(6);
            backoff.saturating_add(jitter.up_to(backoff))
        });
        self.route(out, now_ms);
        self.look_for_holes(now_ms);
    }

    /// The application proposes `value` for `seq`. Returns false, doing nothing, for an
    /// instance that is forgotten (below `min`) or already decided here, or `seq == 0`.
    pub fn propose(&mut self, seq: Seq, value: V, now_ms: u64) -> bool {
        if seq == 0 || self.learner.is_forgotten(seq) {
            return false;
        }
        self.learner.note_seq(seq);
        if self.learner.decided(seq).is_some() {
            return false;
        }
        let out = self.proposer.start(seq, value, now_ms);
        self.route(out, now_ms);
        true
    }

    /// The application no longer needs instances `<= seq`.
    pub fn done(&mut self, seq: Seq) {
        self.learner.done(seq);
        self.forget_to_min();
    }

    /// True when [`Peer::take_ready`] has something.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty() || !self.held_back.is_empty()
    }

    /// Everything produced since the last call. Persist `persist`, then send `messages`.
    pub fn take_ready(&mut self) -> Ready<V> {
        let mut ready = std::mem::take(&mut self.ready);
        if bugs::active(Bug::SendBeforePersist) {
            std::mem::swap(&mut ready.persist, &mut self.held_back);
        }
        ready
    }

    /// When [`Peer::tick`] next has something to do: a proposer deadline or a catch-up
    /// look (`None` before the first tick scheduled one and with nothing in flight).
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let proposer = self.proposer.next_deadline_ms();
        match (proposer, self.catch_up.next_look_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The proposer's next deadline only.
    pub fn proposer_deadline_ms(&self) -> Option<u64> {
        self.proposer.next_deadline_ms()
    }

    /// When the learner next looks for holes (`None` until the first tick).
    pub fn catch_up_due_ms(&self) -> Option<u64> {
        self.catch_up.next_look_ms
    }

    /// What this peer knows of `seq`.
    pub fn status(&self, seq: Seq) -> Status<V> {
        self.learner.status(seq)
    }

    /// The value decided for `seq`, if this peer holds it.
    pub fn decided(&self, seq: Seq) -> Option<&V> {
        self.learner.decided(seq)
    }

    /// The highest instance seen.
    pub fn max(&self) -> Seq {
        self.learner.max()
    }

    /// One more than the lowest `done` over all peers.
    pub fn min(&self) -> Seq {
        self.learner.min()
    }

    /// This peer's own `done` watermark.
    pub fn local_done(&self) -> Seq {
        self.learner.local_done()
    }

    /// The lowest instance not forgotten.
    pub fn floor(&self) -> Seq {
        self.learner.floor()
    }

    /// Instances held in memory: the largest of the three machines' counts.
    pub fn held(&self) -> usize {
        self.learner
            .held()
            .max(self.acceptor.held())
            .max(self.proposer.held())
    }

    /// Requests received so far.
    pub fn counts(&self) -> RequestCounts {
        self.counts
    }

    /// The configuration.
    pub fn config(&self) -> &PeerConfig {
        &self.config
    }

    /// The acceptor, to read.
    pub fn acceptor(&self) -> &AcceptorState<V> {
        &self.acceptor
    }

    /// The proposer, to read.
    pub fn proposer(&self) -> &Proposer<V> {
        &self.proposer
    }

    /// The learner, to read.
    pub fn learner(&self) -> &LearnerState<V> {
        &self.learner
    }

    /// Runs this peer's `role` machine on a message (from another peer, or from itself in
    /// place) and returns what it wants sent. The learner observes first.
    fn deliver(&mut self, role: Role, msg: &Message<V>, now_ms: u64) -> Vec<Outgoing<V>> {
        match role {
            Role::Acceptor => {
                self.count(&msg.body);
                self.observe(msg);
                let seq = msg.body.seq();
                let known = self.learner.decided(seq).cloned();
                let promised = self.acceptor.promised(seq);
                let accepted = self.acceptor.accepted(seq).map(|(ballot, _)| *ballot);
                let standing = self.acceptor.standing();
                let reply = self.acceptor.handle(msg, known.as_ref());
                self.record_acceptor_change(msg, promised, accepted, standing);
                reply.into_iter().collect()
            }
            Role::Learner => {
                self.count(&msg.body);
                self.observe(msg);
                Vec::new()
            }
            Role::Proposer => {
                self.observe(msg);
                self.proposer.handle(msg, now_ms)
            }
        }
    }

    /// Adds the record of what the acceptor just changed, if anything.
    fn record_acceptor_change(
        &mut self,
        msg: &Message<V>,
        promised: super::Ballot,
        accepted: Option<super::Ballot>,
        standing: Option<(Seq, super::Ballot)>,
    ) {
        let record = match &msg.body {
            Body::Prepare { seq, .. } => {
                let now = self.acceptor.promised(*seq);
                (now != promised).then_some(Record::Promised {
                    seq: *seq,
                    ballot: now,
                })
            }
            Body::Accept { seq, .. } => match self.acceptor.accepted(*seq) {
                Some((ballot, value)) if Some(*ballot) != accepted => Some(Record::Accepted {
                    seq: *seq,
                    ballot: *ballot,
                    value: value.clone(),
                }),
                _ => None,
            },
            Body::PrepareFrom { .. } => match self.acceptor.standing() {
                Some((from, ballot)) if Some((from, ballot)) != standing => {
                    Some(Record::StandingPromise { from, ballot })
                }
                _ => None,
            },
            _ => None,
        };
        self.ready.persist.extend(record);
    }

    /// Sends what the machines returned: messages for other peers go into the batch,
    /// stamped; messages for this peer are handled in place, and their answers too, until
    /// nothing is left for this peer. Other peers' copies are queued first.
    fn route(&mut self, out: Vec<Outgoing<V>>, now_ms: u64) {
        let me = self.config.me;
        let mut queue: VecDeque<Outgoing<V>> = out.into();
        while let Some(outgoing) = queue.pop_front() {
            self.reserve_rounds(&outgoing.body);
            let (target, msg) = outgoing.stamp(
                me,
                self.learner.local_done(),
                self.learner.max(),
                self.learner.min(),
            );
            match target {
                Target::Peer(to, role) if to == me => {
                    queue.extend(self.deliver(role, &msg, now_ms));
                }
                Target::Peer(to, role) => self.ready.messages.push(Outbound { to, role, msg }),
                Target::AllPeers(role) => {
                    for to in (0..self.config.peers).filter(|&to| to != me) {
                        self.ready.messages.push(Outbound {
                            to,
                            role,
                            msg: msg.clone(),
                        });
                    }
                    queue.extend(self.deliver(role, &msg, now_ms));
                }
            }
        }
    }

    /// Before a ballot of this proposer goes out, records a reservation above it if it is
    /// past the last one, so a restarted proposer never sends it again.
    fn reserve_rounds(&mut self, body: &Body<V>) {
        let ballot = match body {
            Body::Prepare { ballot, .. }
            | Body::Accept { ballot, .. }
            | Body::PrepareFrom { ballot, .. } => *ballot,
            _ => return,
        };
        if ballot.peer == self.config.me && ballot.round > self.rounds_reserved {
            self.rounds_reserved = ballot.round.saturating_add(ROUND_BLOCK);
            self.ready.persist.push(Record::RoundsReserved {
                up_to: self.rounds_reserved,
            });
        }
    }

    /// The learner takes in a message; a new decision stops the proposer on it and goes
    /// into the batch; then whatever every peer is done with is forgotten.
    fn observe(&mut self, msg: &Message<V>) {
        if let Some(seq) = self.learner.observe(msg)
            && let Some(value) = self.learner.decided(seq).cloned()
        {
            self.proposer.stop(seq);
            self.ready.decided.push((seq, value));
        }
        self.forget_to_min();
    }

    /// Forgets below `min` in every machine, once it rose, and records the new floor.
    fn forget_to_min(&mut self) {
        let mut min = self.learner.min();
        if min > 1 && bugs::active(Bug::ForgetAboveMin) {
            min += 1;
        }
        if min <= self.learner.floor() {
            return;
        }
        self.forget_below(min);
        self.ready.persist.push(Record::Forgotten { below: min });
    }

    fn forget_below(&mut self, floor: Seq) {
        let learner = self.learner.forget_below(floor);
        let acceptor = self.acceptor.forget_below(floor);
        let proposer = self.proposer.forget_below(floor);
        self.catch_up.missing_before.retain(|&seq| seq >= floor);
        debug!(
            "peer {}: forgot below {floor} ({learner} learner, {acceptor} acceptor, {proposer} proposer instances)",
            self.config.me
        );
    }

    /// The catch-up policy: every `catch_up_ms`, ask the other acceptors about the holes
    /// that were already missing at the previous look.
    fn look_for_holes(&mut self, now_ms: u64) {
        let interval = self.config.catch_up_ms;
        match self.catch_up.next_look_ms {
            None => {
                self.catch_up.next_look_ms = Some(now_ms.saturating_add(interval));
                return;
            }
            Some(due) if now_ms < due => return,
            Some(_) => self.catch_up.next_look_ms = Some(now_ms.saturating_add(interval)),
        }
        let missing = self.learner.undecided(QUERY_BATCH);
        let me = self.config.me;
        let peers = self.config.peers;
        let before = &self.catch_up.missing_before;
        let ask: Vec<Outgoing<V>> = missing
            .iter()
            .filter(|seq| before.binary_search(seq).is_ok())
            .flat_map(|&seq| {
                (0..peers).filter(move |&peer| peer != me).map(move |peer| {
                    Outgoing::new(Target::Peer(peer, Role::Acceptor), Body::Query { seq })
                })
            })
            .collect();
        self.catch_up.missing_before = missing;
        self.route(ask, now_ms);
        self.advertise_max(now_ms);
    }

    /// After the highest instance seen rises, a few `Advert`s to the other learners, one
    /// every [`LOOKS_BETWEEN_ADVERTS`] looks: an idle cluster then costs
    /// `ADVERTS * (peers - 1)` messages per peer after its last instance, and nothing after.
    fn advertise_max(&mut self, now_ms: u64) {
        let max = self.learner.max();
        let c = &mut self.catch_up;
        if max > c.advertised {
            c.advertised = max;
            c.adverts_left = ADVERTS;
            c.looks_to_advert = LOOKS_BETWEEN_ADVERTS;
        }
        if c.adverts_left == 0 {
            return;
        }
        c.looks_to_advert = c.looks_to_advert.saturating_sub(1);
        if c.looks_to_advert > 0 {
            return;
        }
        c.adverts_left -= 1;
        c.looks_to_advert = LOOKS_BETWEEN_ADVERTS;
        let me = self.config.me;
        let adverts: Vec<Outgoing<V>> = (0..self.config.peers)
            .filter(|&peer| peer != me)
            .map(|peer| Outgoing::new(Target::Peer(peer, Role::Learner), Body::Advert { seq: max }))
            .collect();
        self.route(adverts, now_ms);
    }

    fn count(&mut self, body: &Body<V>) {
        match body {
            Body::Prepare { .. } | Body::PrepareFrom { .. } => self.counts.prepare += 1,
            Body::Accept { .. } => self.counts.accept += 1,
            Body::Decided { .. } => self.counts.decided += 1,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Ballot, MemoryStorage, Storage};

    fn config(me: PeerId, peers: usize) -> PeerConfig {
        PeerConfig {
            catch_up_ms: 30,
            ..PeerConfig::new(me, peers)
        }
    }

    fn cluster(peers: usize) -> Vec<Peer<u32>> {
        (0..peers).map(|me| Peer::new(config(me, peers))).collect()
    }

    fn no_jitter(_: u64) -> u64 {
        0
    }

    /// Takes every peer's batch and delivers its messages, in order, until none is left;
    /// returns every batch taken, per peer.
    fn run(peers: &mut [Peer<u32>]) -> Vec<Vec<Ready<u32>>> {
        let mut taken = vec![Vec::new(); peers.len()];
        let mut wire = VecDeque::new();
        loop {
            for (me, peer) in peers.iter_mut().enumerate() {
                if peer.has_ready() {
                    let ready = peer.take_ready();
                    wire.extend(ready.messages.clone());
                    taken[me].push(ready);
                }
            }
            let Some(Outbound { to, role, msg }) = wire.pop_front() else {
                return taken;
            };
            peers[to].step(role, msg, 0);
        }
    }

    fn from(from: PeerId, body: Body<u32>) -> Message<u32> {
        Message {
            from,
            done: 0,
            max: 0,
            min: 0,
            body,
        }
    }

    #[test]
    fn a_single_peer_decides_in_place_without_a_message() {
        let mut peer: Peer<u32> = Peer::new(config(0, 1));
        assert!(peer.propose(1, 7, 0));
        let ready = peer.take_ready();
        assert!(ready.messages.is_empty(), "{:?}", ready.messages);
        assert_eq!(ready.decided, vec![(1, 7)]);
        assert_eq!(peer.status(1), Status::Decided(7));
        let counts = peer.counts();
        assert_eq!((counts.prepare, counts.accept, counts.decided), (1, 1, 1));
    }

    #[test]
    fn own_acceptor_and_learner_are_handled_in_place_and_messages_are_stamped() {
        let mut peers = cluster(3);
        peers[0].done(0);
        assert!(peers[0].propose(5, 50, 0));
        let ready = peers[0].take_ready();
        let targets: Vec<(PeerId, Role, &str)> = ready
            .messages
            .iter()
            .map(|o| (o.to, o.role, o.msg.body.kind()))
            .collect();
        assert_eq!(
            targets,
            vec![
                (1, Role::Acceptor, "prepare"),
                (2, Role::Acceptor, "prepare")
            ],
            "nothing for peer 0 itself on the wire"
        );
        for out in &ready.messages {
            assert_eq!((out.msg.from, out.msg.max, out.msg.min), (0, 5, 1));
        }
        assert_eq!(peers[0].acceptor().promised(5), Ballot::new(1, 0));
        assert_eq!(
            ready.persist,
            vec![
                Record::RoundsReserved {
                    up_to: 1 + ROUND_BLOCK
                },
                Record::Promised {
                    seq: 5,
                    ballot: Ballot::new(1, 0)
                },
            ],
            "the own acceptor's promise is recorded in the same batch as the prepare"
        );
        for Outbound { to, role, msg } in ready.messages {
            peers[to].step(role, msg, 0);
        }
        run(&mut peers);
        for peer in &peers {
            assert_eq!(peer.status(5), Status::Decided(50));
            assert_eq!(peer.counts().prepare, 1);
        }
    }

    #[test]
    fn every_reply_comes_with_the_record_it_depends_on() {
        let mut peer: Peer<u32> = Peer::new(config(1, 3));
        let b = Ballot::new(2, 0);
        peer.step(
            Role::Acceptor,
            from(0, Body::Prepare { seq: 3, ballot: b }),
            0,
        );
        let ready = peer.take_ready();
        assert_eq!(ready.persist, vec![Record::Promised { seq: 3, ballot: b }]);
        assert_eq!(ready.messages.len(), 1);
        assert_eq!(ready.messages[0].msg.body.kind(), "promise");
        let accept = Body::Accept {
            seq: 3,
            ballot: b,
            value: 9,
        };
        peer.step(Role::Acceptor, from(0, accept.clone()), 0);
        let ready = peer.take_ready();
        assert_eq!(
            ready.persist,
            vec![Record::Accepted {
                seq: 3,
                ballot: b,
                value: 9
            }]
        );
        assert_eq!(ready.messages[0].msg.body.kind(), "accepted");
        peer.step(Role::Acceptor, from(0, accept), 0);
        let ready = peer.take_ready();
        assert!(ready.persist.is_empty(), "a repeat changes nothing");
        assert_eq!(ready.messages[0].msg.body.kind(), "accepted");
        peer.step(
            Role::Acceptor,
            from(0, Body::PrepareFrom { from: 4, ballot: b }),
            0,
        );
        assert_eq!(
            peer.take_ready().persist,
            vec![Record::StandingPromise { from: 4, ballot: b }]
        );
        peer.step(
            Role::Acceptor,
            from(0, Body::PrepareFrom { from: 4, ballot: b }),
            0,
        );
        assert!(
            peer.take_ready().persist.is_empty(),
            "a repeat changes nothing"
        );
    }

    #[test]
    fn rounds_are_reserved_once_per_block() {
        let mut peer: Peer<u32> = Peer::new(config(0, 3));
        peer.propose(1, 1, 0);
        let first = peer.take_ready().persist;
        assert_eq!(
            first[0],
            Record::RoundsReserved {
                up_to: 1 + ROUND_BLOCK
            }
        );
        peer.propose(2, 2, 0);
        let second = peer.take_ready().persist;
        assert!(
            !second
                .iter()
                .any(|r| matches!(r, Record::RoundsReserved { .. })),
            "round 1 is inside the block: {second:?}"
        );
    }

    #[test]
    fn restore_replays_the_floor_the_standing_promise_and_known_decisions() {
        let b = Ballot::new(3, 1);
        let peer: Peer<u32> = Peer::restore(
            config(0, 3),
            vec![
                Record::StandingPromise { from: 7, ballot: b },
                Record::Decided { seq: 6, value: 60 },
                Record::Forgotten { below: 5 },
            ],
        );
        assert_eq!(peer.floor(), 5);
        assert_eq!(peer.min(), 5);
        assert_eq!(peer.status(4), Status::Forgotten);
        assert_eq!(peer.status(6), Status::Decided(60));
        assert_eq!(peer.decided(6), Some(&60));
        assert_eq!(peer.acceptor().standing(), Some((7, b)));
        assert_eq!(peer.acceptor().promised(8), b);
        assert_eq!((peer.max(), peer.local_done(), peer.held()), (6, 4, 1));
    }

    #[test]
    fn a_restored_peer_keeps_its_promises_and_proposes_above_its_old_rounds() {
        let mut storage = MemoryStorage::new();
        let mut peer: Peer<u32> = Peer::new(config(1, 3));
        let high = Ballot::new(5, 2);
        peer.step(
            Role::Acceptor,
            from(
                2,
                Body::Prepare {
                    seq: 1,
                    ballot: high,
                },
            ),
            0,
        );
        peer.step(
            Role::Acceptor,
            from(
                2,
                Body::Accept {
                    seq: 2,
                    ballot: high,
                    value: 22,
                },
            ),
            0,
        );
        peer.propose(3, 33, 0);
        storage.persist(&peer.take_ready().persist).unwrap();

        let mut restored = Peer::restore(config(1, 3), storage.load().unwrap());
        let low = Ballot::new(4, 0);
        restored.step(
            Role::Acceptor,
            from(
                0,
                Body::Prepare {
                    seq: 1,
                    ballot: low,
                },
            ),
            0,
        );
        restored.step(
            Role::Acceptor,
            from(
                0,
                Body::Prepare {
                    seq: 2,
                    ballot: low,
                },
            ),
            0,
        );
        let replies: Vec<Body<u32>> = restored
            .take_ready()
            .messages
            .into_iter()
            .map(|o| o.msg.body)
            .collect();
        assert_eq!(
            replies,
            vec![
                Body::Reject {
                    seq: 1,
                    ballot: low,
                    promised: high
                },
                Body::Reject {
                    seq: 2,
                    ballot: low,
                    promised: high
                },
            ]
        );
        assert_eq!(restored.acceptor().accepted(2), Some(&(high, 22)));
        restored.propose(3, 34, 0);
        let ballot = restored.proposer().ballot(3).unwrap();
        assert!(
            ballot.round > ROUND_BLOCK,
            "{ballot} reuses a reserved round"
        );
    }

    #[test]
    fn holes_are_queried_at_the_second_look_that_finds_them() {
        let mut peer: Peer<u32> = Peer::new(config(0, 3));
        peer.tick(0, &mut no_jitter);
        let mut hint = from(1, Body::Decided { seq: 2, value: 1 });
        hint.max = 3;
        peer.step(Role::Learner, hint, 0);
        assert!(peer.take_ready().messages.is_empty());
        peer.tick(29, &mut no_jitter);
        assert!(peer.take_ready().messages.is_empty(), "not due yet");
        peer.tick(30, &mut no_jitter);
        assert!(
            peer.take_ready().messages.is_empty(),
            "the first look only notes the holes"
        );
        peer.tick(60, &mut no_jitter);
        let asked: Vec<(PeerId, Role, Seq)> = peer
            .take_ready()
            .messages
            .into_iter()
            .map(|o| {
                assert_eq!(o.msg.body.kind(), "query");
                (o.to, o.role, o.msg.body.seq())
            })
            .collect();
        assert_eq!(
            asked,
            vec![
                (1, Role::Acceptor, 1),
                (2, Role::Acceptor, 1),
                (1, Role::Acceptor, 3),
                (2, Role::Acceptor, 3),
            ]
        );
        peer.step(
            Role::Learner,
            from(1, Body::Decided { seq: 1, value: 10 }),
            60,
        );
        assert_eq!(peer.take_ready().decided, vec![(1, 10)]);
        peer.tick(90, &mut no_jitter);
        let asked: Vec<Seq> = peer
            .take_ready()
            .messages
            .iter()
            .map(|o| o.msg.body.seq())
            .collect();
        assert_eq!(asked, vec![3, 3], "a hole filled is not asked about again");
    }

    #[test]
    fn a_risen_max_is_advertised_a_few_times_then_silence() {
        let mut peer: Peer<u32> = Peer::new(config(0, 3));
        peer.tick(0, &mut no_jitter);
        peer.step(
            Role::Learner,
            from(1, Body::Decided { seq: 1, value: 7 }),
            0,
        );
        peer.take_ready();
        let mut adverts = Vec::new();
        for look in 1..=60u64 {
            peer.tick(look * 30, &mut no_jitter);
            for o in peer.take_ready().messages {
                assert_eq!(o.msg.body.kind(), "advert");
                assert_eq!((o.role, o.msg.body.seq(), o.msg.max), (Role::Learner, 1, 1));
                adverts.push((look, o.to));
            }
        }
        let rounds: Vec<u64> = adverts.iter().map(|(look, _)| *look).collect();
        assert_eq!(rounds, vec![10, 10, 20, 20, 30, 30], "{adverts:?}");
        assert!(adverts.iter().all(|(_, to)| *to != 0), "never to itself");

        // A peer that missed everything learns the instance exists from an advert, and
        // asks about it at its looks.
        let mut behind: Peer<u32> = Peer::new(config(2, 3));
        behind.tick(0, &mut no_jitter);
        let mut advert = from(0, Body::Advert { seq: 1 });
        advert.max = 1;
        behind.step(Role::Learner, advert, 0);
        assert_eq!(behind.max(), 1);
        behind.tick(30, &mut no_jitter);
        behind.take_ready();
        behind.tick(60, &mut no_jitter);
        let asked: Vec<(PeerId, &str)> = behind
            .take_ready()
            .messages
            .iter()
            .map(|o| (o.to, o.msg.body.kind()))
            .collect();
        assert_eq!(asked, vec![(0, "query"), (1, "query")]);
    }

    #[test]
    fn an_acceptor_answers_a_query_only_when_its_peer_knows() {
        let mut peer: Peer<u32> = Peer::new(config(1, 3));
        peer.step(Role::Acceptor, from(0, Body::Query { seq: 1 }), 0);
        assert!(peer.take_ready().messages.is_empty());
        peer.step(
            Role::Learner,
            from(2, Body::Decided { seq: 1, value: 4 }),
            0,
        );
        peer.take_ready();
        peer.step(Role::Acceptor, from(0, Body::Query { seq: 1 }), 0);
        let ready = peer.take_ready();
        assert_eq!(ready.messages.len(), 1);
        assert_eq!(ready.messages[0].to, 0);
        assert_eq!(ready.messages[0].role, Role::Learner);
        assert_eq!(
            ready.messages[0].msg.body,
            Body::Decided { seq: 1, value: 4 }
        );
    }

    #[test]
    fn forgetting_below_min_frees_every_machine_and_is_recorded() {
        let mut peers = cluster(3);
        for seq in 1..=4 {
            peers[0].propose(seq, seq as u32, 0);
            run(&mut peers);
        }
        for peer in &mut peers {
            peer.done(2);
        }
        assert_eq!(peers[0].min(), 1, "watermarks travel on messages");
        peers[1].propose(5, 5, 0);
        peers[2].propose(6, 6, 0);
        peers[0].propose(7, 7, 0);
        let batches = run(&mut peers);
        for (me, peer) in peers.iter().enumerate() {
            assert_eq!(peer.min(), 3, "peer {me}");
            assert_eq!(peer.status(2), Status::Forgotten, "peer {me}");
            assert_eq!(peer.acceptor().floor(), 3, "peer {me}");
            assert_eq!(peer.learner().floor(), 3, "peer {me}");
            assert!(
                batches[me]
                    .iter()
                    .any(|ready| ready.forgotten_below() == Some(3)),
                "peer {me} recorded its floor"
            );
        }
    }

    #[test]
    fn a_peer_restarted_behind_the_floor_is_told_to_forget() {
        let mut peers = cluster(3);
        for seq in 1..=3 {
            peers[0].propose(seq, seq as u32, 0);
            run(&mut peers);
        }
        let fresh: Peer<u32> = Peer::restore(config(2, 3), Vec::new());
        for peer in &mut peers {
            peer.done(3);
        }
        peers[0].propose(4, 4, 0);
        peers[1].propose(5, 5, 0);
        peers[2].propose(6, 6, 0);
        run(&mut peers);
        assert_eq!(peers[0].floor(), 4);
        // Peer 2 restarts with nothing (its records lost): it asks about what everyone
        // forgot, and is told so instead of asking forever.
        peers[2] = fresh;
        peers[2].propose(2, 22, 0);
        run(&mut peers);
        assert_eq!(peers[2].status(2), Status::Forgotten);
        assert_eq!(peers[2].min(), 4);
        assert_eq!(peers[2].proposer().held(), 0);
    }

    #[test]
    fn a_forgotten_or_decided_instance_is_not_started() {
        let mut peers = cluster(1);
        assert!(!peers[0].propose(0, 1, 0));
        assert!(peers[0].propose(1, 1, 0));
        peers[0].take_ready();
        assert!(!peers[0].propose(1, 2, 0), "decided");
        assert!(peers[0].propose(2, 2, 0));
        peers[0].done(2);
        assert_eq!(peers[0].min(), 3);
        assert!(!peers[0].propose(2, 3, 0), "forgotten");
        assert!(peers[0].proposer().held() == 0);
    }

    #[test]
    fn a_decision_learned_from_another_proposer_stops_the_own_attempt() {
        let mut peers = cluster(3);
        peers[0].propose(1, 10, 0);
        peers[0].take_ready();
        assert!(peers[0].proposer().is_proposing(1));
        peers[0].step(
            Role::Learner,
            from(2, Body::Decided { seq: 1, value: 20 }),
            0,
        );
        assert!(!peers[0].proposer().is_proposing(1));
        assert_eq!(peers[0].take_ready().decided, vec![(1, 20)]);
    }

    #[test]
    fn a_message_from_an_unknown_or_the_own_peer_is_dropped() {
        let mut peer: Peer<u32> = Peer::new(config(0, 3));
        for sender in [0, 3] {
            peer.step(
                Role::Acceptor,
                from(
                    sender,
                    Body::Prepare {
                        seq: 1,
                        ballot: Ballot::new(1, 1),
                    },
                ),
                0,
            );
        }
        assert!(!peer.has_ready());
        assert_eq!(peer.counts(), RequestCounts::default());
    }

    #[test]
    fn retries_back_off_with_the_drivers_jitter() {
        let mut peer: Peer<u32> = Peer::new(PeerConfig {
            proposer: ProposerConfig {
                answer_timeout_ms: 100,
                resend_ms: 1_000,
                lease: false,
            },
            backoff_base_ms: 10,
            ..config(0, 3)
        });
        peer.propose(1, 1, 0);
        peer.take_ready();
        let mut asked = Vec::new();
        let mut jitter = |most: u64| {
            asked.push(most);
            most
        };
        peer.tick(100, &mut jitter);
        assert_eq!(
            peer.proposer_deadline_ms(),
            Some(120),
            "10 ms + 10 ms of jitter"
        );
        peer.tick(120, &mut jitter);
        assert_eq!(asked, vec![10]);
        let ready = peer.take_ready();
        assert!(
            ready
                .messages
                .iter()
                .all(|o| o.msg.body.kind() == "prepare")
        );
        assert_eq!(ready.messages.len(), 2);
        let mut asked_again = Vec::new();
        peer.tick(220, &mut |most: u64| {
            asked_again.push(most);
            most
        });
        assert_eq!(asked_again, vec![20], "the second backoff doubles");
        assert_eq!(peer.proposer_deadline_ms(), Some(260));
        assert_eq!(peer.catch_up_due_ms(), Some(250));
        assert_eq!(peer.next_deadline_ms(), Some(250));
    }
}
