//! The per-node Paxos state that outlives the Paxos processes, as Erlang keeps such state
//! in ETS tables owned by a longer-lived process: the acceptor's promises and acceptances
//! (an acceptor with amnesia breaks agreement), the proposer's attempts (its ballots must
//! never be reused), the learner's decided values, and who waits for which decision.
//! A process restarted by the Paxos supervisor finds its state here.

use crate::core::{
    AcceptorState, Body, LearnerState, Message, Outgoing, PeerId, Proposer, ProposerConfig, Role,
    Seq, Target,
};
use crate::{Decided, PaxosValue};
use parking_lot::{Mutex, RwLock};
use runtime::clock::Instant;
use runtime::{Node, NodeName, Pid};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Registered names of the three Paxos processes and their supervisor.
pub const ACCEPTOR: &str = "paxos_acceptor";
pub const PROPOSER: &str = "paxos_proposer";
pub const LEARNER: &str = "paxos_learner";
pub const PAXOS_SUP: &str = "paxos_sup";

/// Counts of protocol requests this peer received (replies ride with their request).
#[derive(Default)]
pub(crate) struct RequestCounts {
    pub(crate) prepare: AtomicU64,
    pub(crate) accept: AtomicU64,
    pub(crate) decided: AtomicU64,
}

pub(crate) struct Tables<V> {
    pub(crate) node: Node,
    pub(crate) peers: Vec<NodeName>,
    pub(crate) me: PeerId,
    pub(crate) acceptor: Mutex<AcceptorState<V>>,
    pub(crate) proposer: Mutex<Proposer<V>>,
    pub(crate) learner: RwLock<LearnerState<V>>,
    /// Processes waiting for one instance's decision.
    subscribers: Mutex<HashMap<Seq, Vec<Pid>>>,
    /// A process told of every decision (the DB manager).
    listener: Mutex<Option<Pid>>,
    pub(crate) counts: RequestCounts,
    pub(crate) stopped: AtomicBool,
    epoch: Instant,
}

impl<V: PaxosValue> Tables<V> {
    pub(crate) fn new(
        node: Node,
        peers: Vec<NodeName>,
        me: PeerId,
        config: ProposerConfig,
    ) -> Self {
        let n = peers.len();
        Tables {
            node,
            peers,
            me,
            acceptor: Mutex::new(AcceptorState::new()),
            proposer: Mutex::new(Proposer::new(me, n, config)),
            learner: RwLock::new(LearnerState::new(me, n)),
            subscribers: Mutex::new(HashMap::new()),
            listener: Mutex::new(None),
            counts: RequestCounts::default(),
            stopped: AtomicBool::new(false),
            epoch: runtime::clock::now(),
        }
    }

    /// Milliseconds since this peer started: the proposer's clock.
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// This peer's `done`, `max` and `min`, which every message it sends carries.
    fn watermarks(&self) -> (Seq, Seq, Seq) {
        let l = self.learner.read();
        (l.local_done(), l.max(), l.min())
    }

    /// Sends the machines' outgoing messages, stamped with this peer's id and watermarks.
    pub(crate) fn send_all(&self, from: &Pid, out: Vec<Outgoing<V>>) {
        if out.is_empty() {
            return;
        }
        let (done, max, min) = self.watermarks();
        for o in out {
            let (target, msg) = o.stamp(self.me, done, max, min);
            match target {
                Target::Peer(peer, role) => self.send_to(Some(from), peer, role, msg),
                Target::AllPeers(role) => {
                    for peer in 0..self.peers.len() {
                        self.send_to(Some(from), peer, role, msg.clone());
                    }
                }
            }
        }
    }

    /// Sends what the proposer's machine returned. Messages for this peer's own acceptor
    /// and learner are handled right here, in the caller, instead of through their
    /// mailboxes, and the acceptor's answer goes straight back into the proposer, until
    /// nothing is left for this peer: four process wake-ups fewer per instance on an
    /// operation's path. Other peers' messages go out first. The acceptor and learner
    /// processes still take everything other peers send.
    pub(crate) fn dispatch_from_proposer(&self, from: Option<&Pid>, out: Vec<Outgoing<V>>) {
        let mut queue: VecDeque<Outgoing<V>> = out.into();
        while let Some(o) = queue.pop_front() {
            let (done, max, min) = self.watermarks();
            let (target, msg) = o.stamp(self.me, done, max, min);
            match target {
                Target::Peer(peer, role) if peer == self.me => {
                    queue.extend(self.handle(role, &msg));
                }
                Target::Peer(peer, role) => self.send_to(from, peer, role, msg),
                Target::AllPeers(role) => {
                    for peer in (0..self.peers.len()).filter(|&peer| peer != self.me) {
                        self.send_to(from, peer, role, msg.clone());
                    }
                    queue.extend(self.handle(role, &msg));
                }
            }
        }
    }

    /// Runs this peer's `role` machine on a message that reached it (from its own
    /// proposer, or through that machine's process) and returns what the machine wants
    /// sent. Every message is observed by the learner first; requests are counted.
    pub(crate) fn handle(&self, role: Role, msg: &Message<V>) -> Vec<Outgoing<V>> {
        match role {
            Role::Acceptor => {
                self.count(&msg.body);
                self.observe(msg);
                let known = self.learner.read().decided(msg.body.seq()).cloned();
                let reply = self.acceptor.lock().handle(msg, known.as_ref());
                reply.into_iter().collect()
            }
            Role::Learner => {
                self.count(&msg.body);
                self.observe(msg);
                Vec::new()
            }
            Role::Proposer => {
                // A `Decided` from an acceptor that knew it is learned here too.
                self.observe(msg);
                let now = self.now_ms();
                self.proposer.lock().handle(msg, now)
            }
        }
    }

    fn send_to(&self, from: Option<&Pid>, peer: PeerId, role: Role, msg: Message<V>) {
        let Some(node) = self.peers.get(peer) else {
            log::warn!("paxos: no peer {peer}");
            return;
        };
        let name = match role {
            Role::Acceptor => ACCEPTOR,
            Role::Proposer => PROPOSER,
            Role::Learner => LEARNER,
        };
        self.node.send(from, (name, node), msg);
    }

    /// Takes in any message that reached this peer: records the sender's `done` and the
    /// instance, learns a `Decided`, tells whoever waits for it, and forgets what every
    /// peer is done with.
    pub(crate) fn observe(&self, msg: &Message<V>) {
        let (newly, floor) = {
            let mut learner = self.learner.write();
            let newly = learner.observe(msg);
            (newly, learner.forget_to_min())
        };
        if let Some(seq) = newly {
            self.announce(seq);
        }
        if let Some(floor) = floor {
            self.forget_below(floor);
        }
    }

    /// The application is done with instances `<= seq`: forget what everybody is done with.
    pub(crate) fn done(&self, seq: Seq) {
        let floor = {
            let mut l = self.learner.write();
            l.done(seq);
            l.forget_to_min()
        };
        if let Some(floor) = floor {
            self.forget_below(floor);
        }
    }

    fn forget_below(&self, floor: Seq) {
        let a = self.acceptor.lock().forget_below(floor);
        let p = self.proposer.lock().forget_below(floor);
        self.subscribers.lock().retain(|&seq, _| seq >= floor);
        log::trace!("paxos: forgot below {floor} ({a} acceptor, {p} proposer instances)");
    }

    /// Sends `Decided` to the processes waiting for `seq` and to the listener.
    fn announce(&self, seq: Seq) {
        let Some(value) = self.learner.read().decided(seq).cloned() else {
            return;
        };
        let waiting = self.subscribers.lock().remove(&seq).unwrap_or_default();
        let listener = self.listener.lock().clone();
        for pid in waiting.iter().chain(listener.iter()) {
            self.node.send(
                None,
                pid,
                Decided {
                    seq,
                    value: value.clone(),
                },
            );
        }
    }

    /// `pid` gets a `Decided` for `seq` once it is decided here (at once if it is).
    pub(crate) fn subscribe(&self, seq: Seq, pid: &Pid) {
        let mut subs = self.subscribers.lock();
        // Checked under the subscribers' lock: a decision learned after this check finds
        // the subscription when it announces.
        let known = self.learner.read().decided(seq).cloned();
        match known {
            Some(value) => {
                drop(subs);
                self.node.send(None, pid, Decided { seq, value });
            }
            None => subs.entry(seq).or_default().push(pid.clone()),
        }
    }

    pub(crate) fn set_listener(&self, pid: Option<Pid>) {
        *self.listener.lock() = pid;
    }

    /// Counts a request that reached this peer.
    pub(crate) fn count(&self, body: &Body<V>) {
        let c = match body {
            Body::Prepare { .. } | Body::PrepareFrom { .. } => &self.counts.prepare,
            Body::Accept { .. } => &self.counts.accept,
            Body::Decided { .. } => &self.counts.decided,
            _ => return,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}
