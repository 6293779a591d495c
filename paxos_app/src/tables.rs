//! The per-node Paxos state that outlives the Paxos processes, as Erlang keeps such state
//! in ETS tables owned by a longer-lived process: the node's one [`Peer`] (every Paxos
//! rule is in it) with its storage, and who waits for which decision. A process restarted
//! by the Paxos supervisor finds its state here.
//!
//! [`Tables::drive`] is the one way anything changes the peer, and it applies the peer's
//! output in the order the core demands: persist the batch's records, then send its
//! messages, then announce its decisions. With a durable log ([`PaxosLog`]) the records
//! are queued for the storage thread and the batch waits in the [`Outbox`]; the storage
//! thread's callback, run after the `fdatasync` that covers them, releases it. Batches
//! leave in the order they were made, so a later batch (a repeated `Accepted`, say, that
//! rests on an earlier record) never overtakes an earlier one still waiting for its sync.

use crate::core::{MemoryStorage, Peer, PeerConfig, Ready, Role, Seq, Status, Storage};
use crate::durable::PaxosLog;
use crate::{Decided, PaxosValue};
use parking_lot::Mutex;
use runtime::clock::{self, Instant};
use runtime::{Node, NodeName, Pid};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Registered names of the three Paxos processes and their supervisor.
pub const ACCEPTOR: &str = "paxos_acceptor";
pub const PROPOSER: &str = "paxos_proposer";
pub const LEARNER: &str = "paxos_learner";
pub const PAXOS_SUP: &str = "paxos_sup";

/// What a node does when its storage can no longer be trusted (an fsync failed): it must
/// stop, never retry and carry on. The argument is the one-line reason.
pub type OnFatal = Arc<dyn Fn(&str) + Send + Sync>;

/// Where the peer's records go.
enum Sink<V> {
    /// Synchronously, before the lock is released (memory mode, simulations).
    Now(Box<dyn Storage<V> + Send>),
    /// To the group-commit log; the batch's messages wait for the callback.
    Log(PaxosLog<V>),
}

/// The peer and the storage its records go to, under one lock: batches are handed to the
/// storage in the order the peer made them.
struct Held<V> {
    peer: Peer<V>,
    sink: Sink<V>,
}

/// A batch waiting to be sent.
struct Pending<V> {
    from: Option<Pid>,
    ready: Ready<V>,
    /// Its records are durable (or it had none).
    durable: bool,
}

/// Batches in the order made, each sent once it and every batch before it is durable;
/// and who is told of decisions.
pub(crate) struct Outbox<V> {
    node: Node,
    peers: Vec<NodeName>,
    queue: Mutex<VecDeque<Pending<V>>>,
    /// Held while batches are sent, so two threads releasing never interleave them.
    sending: Mutex<()>,
    /// Instances the peer decided in a batch not yet released: not decided yet for
    /// anyone outside (the decision may rest on this node's acceptance, not yet durable).
    unannounced: Mutex<std::collections::HashSet<Seq>>,
    /// Processes waiting for one instance's decision.
    subscribers: Mutex<HashMap<Seq, Vec<Pid>>>,
    /// A process told of every decision (the DB manager).
    listener: Mutex<Option<Pid>>,
    stopped: Arc<AtomicBool>,
    on_fatal: Option<OnFatal>,
    /// The runtime the node's transports run on, entered by the storage thread when it
    /// sends a released batch.
    runtime: Option<tokio::runtime::Handle>,
}

pub(crate) struct Tables<V> {
    pub(crate) node: Node,
    pub(crate) peers: Vec<NodeName>,
    pub(crate) me: usize,
    held: Mutex<Held<V>>,
    out: Arc<Outbox<V>>,
    pub(crate) stopped: Arc<AtomicBool>,
    epoch: Instant,
    /// The durable log's counters, when there is one.
    storage_stats: Option<Arc<storage::GroupCommitLog>>,
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
    /// `Peer::restore`), whose batches' records go to `storage` synchronously.
    pub(crate) fn with_storage(
        node: Node,
        peers: Vec<NodeName>,
        peer: Peer<V>,
        storage: Box<dyn Storage<V> + Send>,
    ) -> Self {
        Self::build(node, peers, peer, Sink::Now(storage), None)
    }

    /// The tables of `peer` (restored from `log`'s records), whose batches' records go to
    /// the durable `log`; `on_fatal` runs when the log fails a sync.
    pub(crate) fn with_log(
        node: Node,
        peers: Vec<NodeName>,
        peer: Peer<V>,
        log: PaxosLog<V>,
        on_fatal: OnFatal,
    ) -> Self {
        let mut tables = Self::build(node, peers, peer, Sink::Log(log), Some(on_fatal));
        if let Sink::Log(log) = &tables.held.get_mut().sink {
            tables.storage_stats = Some(log.stats_source());
        }
        tables
    }

    fn build(
        node: Node,
        peers: Vec<NodeName>,
        peer: Peer<V>,
        sink: Sink<V>,
        on_fatal: Option<OnFatal>,
    ) -> Self {
        let stopped = Arc::new(AtomicBool::new(false));
        Tables {
            out: Arc::new(Outbox {
                node: node.clone(),
                peers: peers.clone(),
                queue: Mutex::new(VecDeque::new()),
                sending: Mutex::new(()),
                unannounced: Mutex::new(Default::default()),
                subscribers: Mutex::new(HashMap::new()),
                listener: Mutex::new(None),
                stopped: stopped.clone(),
                on_fatal,
                runtime: tokio::runtime::Handle::try_current().ok(),
            }),
            node,
            peers,
            me: peer.config().me,
            held: Mutex::new(Held { peer, sink }),
            stopped,
            epoch: clock::now(),
            storage_stats: None,
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

    /// The durable log's counters (None in memory mode).
    pub(crate) fn storage_stats(&self) -> Option<storage::StorageStats> {
        self.storage_stats.as_ref().map(|log| log.stats())
    }

    /// Runs `input` on the peer (with the time now), then applies the peer's batch: its
    /// records persisted, its messages sent by `from` once they are durable, its decisions
    /// announced. A storage failure stops the peer: nothing of that batch is sent.
    pub(crate) fn drive<R>(
        &self,
        from: Option<&Pid>,
        input: impl FnOnce(&mut Peer<V>, u64) -> R,
    ) -> R {
        let now = self.now_ms();
        let (result, now_send) = {
            let mut held = self.held.lock();
            let result = input(&mut held.peer, now);
            if !held.peer.has_ready() {
                return result;
            }
            let ready = held.peer.take_ready();
            if self.is_stopped() {
                return result;
            }
            if !ready.decided.is_empty() {
                self.out
                    .unannounced
                    .lock()
                    .extend(ready.decided.iter().map(|(seq, _)| *seq));
            }
            let from = from.cloned();
            let now_send = match &mut held.sink {
                Sink::Now(storage) => {
                    if !ready.persist.is_empty()
                        && let Err(e) = storage.persist(&ready.persist)
                    {
                        log::error!("paxos: {e}; this peer stops");
                        self.stopped.store(true, Ordering::SeqCst);
                        return result;
                    }
                    // Durable already, and nothing ever waits in the outbox: sent at once,
                    // after the lock.
                    Some((from, ready))
                }
                Sink::Log(log) => {
                    let durable = ready.persist.is_empty();
                    let records = (!durable).then(|| ready.persist.clone());
                    self.out.queue.lock().push_back(Pending {
                        from,
                        ready,
                        durable,
                    });
                    if let Some(records) = records {
                        let out = self.out.clone();
                        log.persist_then(
                            &records,
                            Box::new(move |outcome| match outcome {
                                Ok(_) => {
                                    out.mark_durable();
                                    out.release();
                                }
                                Err(e) => out.fail(&e),
                            }),
                        );
                    }
                    None
                }
            };
            (result, now_send)
        };
        match now_send {
            Some((from, ready)) => self.out.apply(from.as_ref(), ready),
            None => self.out.release(),
        }
        result
    }

    /// What this node may say of `seq`: a decision counts once its batch was released
    /// (every record it rests on is durable), not when the peer first knows it.
    pub(crate) fn status(&self, seq: Seq) -> Status<V> {
        match self.read(|peer| peer.status(seq)) {
            Status::Decided(_) if self.out.unannounced.lock().contains(&seq) => Status::Pending,
            other => other,
        }
    }

    /// `pid` gets a `Decided` for `seq` once it is decided here (at once if it is).
    pub(crate) fn subscribe(&self, seq: Seq, pid: &Pid) {
        let mut subs = self.out.subscribers.lock();
        // Checked under the subscribers' lock: a decision taken out of the peer after this
        // check is announced after it, and finds the subscription. One still waiting in
        // the outbox is announced by its release, which takes this lock after it left the
        // unannounced set.
        let known = self
            .read(|peer| peer.decided(seq).cloned())
            .filter(|_| !self.out.unannounced.lock().contains(&seq));
        match known {
            Some(value) => {
                drop(subs);
                self.node.send(None, pid, Decided { seq, value });
            }
            None => subs.entry(seq).or_default().push(pid.clone()),
        }
    }

    pub(crate) fn set_listener(&self, pid: Option<Pid>) {
        *self.out.listener.lock() = pid;
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

impl<V: PaxosValue> Outbox<V> {
    /// The oldest batch still waiting for its sync is durable: appends complete in the
    /// order they were queued, and batches were queued in that same order.
    fn mark_durable(&self) {
        let mut queue = self.queue.lock();
        if let Some(first) = queue.iter_mut().find(|p| !p.durable) {
            first.durable = true;
        }
    }

    /// Sends every batch at the front that is durable, in order.
    fn release(&self) {
        let _runtime = match tokio::runtime::Handle::try_current() {
            Ok(_) => None,
            Err(_) => self.runtime.as_ref().map(|handle| handle.enter()),
        };
        let _sending = self.sending.lock();
        loop {
            let next = {
                let mut queue = self.queue.lock();
                match queue.front() {
                    Some(p) if p.durable => queue.pop_front(),
                    _ => None,
                }
            };
            let Some(pending) = next else { break };
            self.apply(pending.from.as_ref(), pending.ready);
        }
    }

    /// The log failed the append: nothing waiting is sent, ever, and the peer stops. A
    /// failed sync poisons the log and the node must stop (`on_fatal`); a failed write (a
    /// full disk) leaves the peer stopped, acknowledging nothing, until it is restarted.
    fn fail(&self, error: &storage::Error) {
        self.stopped.store(true, Ordering::SeqCst);
        let dropped = {
            let mut queue = self.queue.lock();
            let n = queue.len();
            queue.clear();
            n
        };
        let fatal = error.is_poisoned();
        let why = if fatal {
            format!("paxos storage failed to sync, the node stops (never retried): {error}")
        } else {
            format!(
                "paxos storage failed to write, this peer stops acknowledging \
                 ({dropped} batches unsent); free space and restart the node: {error}"
            )
        };
        log::error!("{}: {why}", self.node.name());
        if fatal && let Some(on_fatal) = &self.on_fatal {
            on_fatal(&why);
        }
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
            self.unannounced.lock().remove(&seq);
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
}
