//! The per-node Paxos state that outlives the Paxos processes, as Erlang keeps such state
//! in ETS tables owned by a longer-lived process: the node's one [`Peer`] (every Paxos
//! rule is in it) with its storage, and who waits for which decision. A process restarted
//! by the Paxos supervisor finds its state here.
//!
//! [`Tables::drive`] is the one way anything changes the peer, and it applies the peer's
//! output in the order the core demands: persist the batch's records, then send its
//! messages, then announce its decisions.

use crate::core::{MemoryStorage, Peer, PeerConfig, Ready, Role, Seq, Storage};
use crate::{Decided, PaxosValue};
use parking_lot::Mutex;
use runtime::clock::{self, Instant};
use runtime::{Node, NodeName, Pid};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

/// Registered names of the three Paxos processes and their supervisor.
pub const ACCEPTOR: &str = "paxos_acceptor";
pub const PROPOSER: &str = "paxos_proposer";
pub const LEARNER: &str = "paxos_learner";
pub const PAXOS_SUP: &str = "paxos_sup";

/// The peer and the storage its records go to, under one lock: a batch is persisted
/// before the lock is released, so every later batch finds the earlier ones durable.
struct Held<V> {
    peer: Peer<V>,
    storage: Box<dyn Storage<V> + Send>,
}

pub(crate) struct Tables<V> {
    pub(crate) node: Node,
    pub(crate) peers: Vec<NodeName>,
    pub(crate) me: usize,
    held: Mutex<Held<V>>,
    /// Processes waiting for one instance's decision.
    subscribers: Mutex<HashMap<Seq, Vec<Pid>>>,
    /// A process told of every decision (the DB manager).
    listener: Mutex<Option<Pid>>,
    pub(crate) stopped: AtomicBool,
    epoch: Instant,
}

impl<V: PaxosValue> Tables<V> {
    /// The tables of a fresh peer whose records go to memory (nothing survives the node).
    pub(crate) fn new(node: Node, peers: Vec<NodeName>, config: PeerConfig) -> Self {
        Self::with_storage(
            node,
            peers,
            Peer::new(config),
            Box::new(MemoryStorage::new()),
        )
    }

    /// The tables of `peer` (fresh, or restored from `storage`'s records with
    /// `Peer::restore`), whose batches' records go to `storage`: the hook a durable
    /// storage plugs into.
    pub(crate) fn with_storage(
        node: Node,
        peers: Vec<NodeName>,
        peer: Peer<V>,
        storage: Box<dyn Storage<V> + Send>,
    ) -> Self {
        Tables {
            node,
            peers,
            me: peer.config().me,
            held: Mutex::new(Held { peer, storage }),
            subscribers: Mutex::new(HashMap::new()),
            listener: Mutex::new(None),
            stopped: AtomicBool::new(false),
            epoch: clock::now(),
        }
    }

    /// Milliseconds since this peer started, on the one clock: the peer's time.
    pub(crate) fn now_ms(&self) -> u64 {
        clock::millis_since(self.epoch)
    }

    /// Reads the peer.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Peer<V>) -> R) -> R {
        f(&self.held.lock().peer)
    }

    /// Runs `input` on the peer (with the time now), then applies the peer's batch: its
    /// records persisted (under the lock), its messages sent by `from`, its decisions
    /// announced. A storage failure stops the peer: nothing of that batch is sent.
    pub(crate) fn drive<R>(
        &self,
        from: Option<&Pid>,
        input: impl FnOnce(&mut Peer<V>, u64) -> R,
    ) -> R {
        let now = self.now_ms();
        let (result, ready) = {
            let mut held = self.held.lock();
            let result = input(&mut held.peer, now);
            if !held.peer.has_ready() {
                return result;
            }
            let ready = held.peer.take_ready();
            if !ready.persist.is_empty()
                && let Err(e) = held.storage.persist(&ready.persist)
            {
                log::error!("paxos: {e}; this peer stops");
                self.stopped.store(true, Ordering::SeqCst);
                return result;
            }
            (result, ready)
        };
        self.apply(from, ready);
        result
    }

    /// Sends a durable batch's messages and announces its decisions.
    fn apply(&self, from: Option<&Pid>, ready: Ready<V>) {
        let forgotten_below = ready.forgotten_below();
        for out in ready.messages {
            let Some(node) = self.peers.get(out.to) else {
                log::warn!("paxos: no peer {}", out.to);
                continue;
            };
            let name = match out.role {
                Role::Acceptor => ACCEPTOR,
                Role::Proposer => PROPOSER,
                Role::Learner => LEARNER,
            };
            self.node.send(from, (name, node), out.msg);
        }
        if let Some(floor) = forgotten_below {
            self.subscribers.lock().retain(|&seq, _| seq >= floor);
        }
        for (seq, value) in ready.decided {
            self.announce(seq, value);
        }
    }

    /// Sends `Decided` to the processes waiting for `seq` and to the listener.
    fn announce(&self, seq: Seq, value: V) {
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
        // Checked under the subscribers' lock: a decision taken out of the peer after this
        // check is announced after it, and finds the subscription.
        let known = self.read(|peer| peer.decided(seq).cloned());
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

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}
