//! The original's Part 1 API on one node: `start`, `status`, `done`, `max`, `min`,
//! `alive`, `stop` — plus `subscribe`/`set_listener`, which tell a process when an
//! instance is decided so that nobody has to poll.

use crate::core::{Peer, PeerConfig, ProposerConfig, Record, Status};
use crate::durable::PaxosLog;
use crate::processes;
use crate::tables::{ACCEPTOR, LEARNER, OnFatal, PAXOS_SUP, PROPOSER, Tables};
use runtime::supervisor::{self, ChildSpec, Strategy, SupervisorSpec};
use runtime::{ExitReason, Message, Node, NodeName, Pid, Process};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What Paxos can agree on: a value that can be sent, cloned, compared and shared.
pub trait PaxosValue: crate::core::Value + Message + Sync {}
impl<T: crate::core::Value + Message + Sync> PaxosValue for T {}

/// Sent to a subscriber (and the listener) when an instance is decided on this node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Decided<V> {
    pub seq: u64,
    pub value: V,
}

/// Errors starting Paxos on a node.
#[derive(Debug, thiserror::Error)]
pub enum PaxosError {
    #[error("node {0} is not in the peer list")]
    NotAPeer(String),
    #[error("the Paxos supervisor did not start: {0}")]
    Supervisor(String),
}

/// Timing of a node's Paxos.
#[derive(Clone, Copy, Debug)]
pub struct PaxosOptions {
    /// How long an attempt waits for missing answers before it is retried with a higher
    /// ballot.
    pub answer_timeout: Duration,
    /// How long before the current request goes again to the acceptors that are silent.
    pub resend: Duration,
    /// How often the learner looks for instances it missed and asks the other peers.
    pub catch_up: Duration,
    /// The peer (index in the peer list) whose proposer runs Multi-Paxos: one
    /// `PrepareFrom` for all later instances, then `Accept` only while no other proposer
    /// intervenes. `None` (the default): basic Paxos everywhere, as in the original. Give
    /// it only when the application sends its proposals to that peer (the kv service
    /// does); proposers that all lease break each other's leases.
    pub distinguished_proposer: Option<usize>,
}

impl Default for PaxosOptions {
    fn default() -> Self {
        PaxosOptions {
            answer_timeout: Duration::from_millis(500),
            resend: Duration::from_millis(30),
            catch_up: Duration::from_millis(30),
            distinguished_proposer: None,
        }
    }
}

/// Figures for tests and status: protocol requests received by this peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCount {
    pub prepare: u64,
    pub accept: u64,
    pub decided: u64,
}

impl RequestCount {
    pub fn total(&self) -> u64 {
        self.prepare + self.accept + self.decided
    }
}

/// A node's Paxos peer. Cheap to clone; every call reads or changes local state only,
/// except `start`, which hands the value to the local proposer.
pub struct Paxos<V> {
    tables: Arc<Tables<V>>,
}

impl<V> Clone for Paxos<V> {
    fn clone(&self) -> Self {
        Paxos {
            tables: self.tables.clone(),
        }
    }
}

fn child<V: PaxosValue, F, Fut>(id: &'static str, tables: &Arc<Tables<V>>, body: F) -> ChildSpec
where
    F: Fn(Process, Arc<Tables<V>>) -> Fut + Send + Sync + Copy + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tables = tables.clone();
    ChildSpec::new(id, move |sup| {
        let t = tables.clone();
        let pid = sup.spawn_link(move |p| body(p, t));
        sup.node()
            .register(id, &pid)
            .map_err(|e| ExitReason::custom(e.to_string()))?;
        Ok(pid)
    })
}

/// Starts a Paxos peer on `node`, one of `peers` (the same list, in the same order, on
/// every peer): the top-level supervisor `paxos_sup` with the acceptor, learner and
/// proposer. An application that has its own supervision tree uses [`prepare`] instead
/// and puts `paxos_sup` under it.
pub async fn start<V: PaxosValue>(
    node: &Node,
    peers: Vec<NodeName>,
) -> Result<Paxos<V>, PaxosError> {
    start_with(node, peers, PaxosOptions::default()).await
}

/// [`start`] with explicit timing.
pub async fn start_with<V: PaxosValue>(
    node: &Node,
    peers: Vec<NodeName>,
    opts: PaxosOptions,
) -> Result<Paxos<V>, PaxosError> {
    let (paxos, spec) = prepare(node, peers, opts)?;
    supervisor::start(node, spec, Some(PAXOS_SUP))
        .await
        .map_err(|e| PaxosError::Supervisor(e.to_string()))?;
    Ok(paxos)
}

/// Makes a Paxos peer's state and the specification of its supervisor, `paxos_sup`
/// (one_for_one: acceptor, learner, proposer), for the caller to start under its own
/// supervisor (registered as [`PAXOS_SUP`]). The state outlives every restart.
pub fn prepare<V: PaxosValue>(
    node: &Node,
    peers: Vec<NodeName>,
    opts: PaxosOptions,
) -> Result<(Paxos<V>, SupervisorSpec), PaxosError> {
    prepare_with(node, peers, opts, None)
}

/// A durable peer's storage: its log, the records recovered from it (the peer is restored
/// from them, so it keeps every promise and acceptance it made before a crash), and what
/// to do when the log fails a sync (stop the node).
pub struct Durable<V> {
    pub log: PaxosLog<V>,
    pub records: Vec<Record<V>>,
    pub on_fatal: OnFatal,
}

/// [`prepare`], with the peer's records in a durable log (`Some`) or in memory (`None`).
pub fn prepare_with<V: PaxosValue>(
    node: &Node,
    peers: Vec<NodeName>,
    opts: PaxosOptions,
    durable: Option<Durable<V>>,
) -> Result<(Paxos<V>, SupervisorSpec), PaxosError> {
    let me = peers
        .iter()
        .position(|p| p == node.name())
        .ok_or_else(|| PaxosError::NotAPeer(node.name().to_string()))?;
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let config = PeerConfig {
        proposer: ProposerConfig {
            answer_timeout_ms: millis(opts.answer_timeout),
            resend_ms: millis(opts.resend),
            lease: opts.distinguished_proposer == Some(me),
        },
        catch_up_ms: millis(opts.catch_up),
        ..PeerConfig::new(me, peers.len())
    };
    let tables = Arc::new(match durable {
        None => Tables::new(node.clone(), peers, config),
        Some(Durable {
            log,
            records,
            on_fatal,
        }) => Tables::with_log(
            node.clone(),
            peers,
            Peer::restore(config, records),
            log,
            on_fatal,
        ),
    });
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(10))
        .child(child(ACCEPTOR, &tables, processes::acceptor::<V>))
        .child(child(LEARNER, &tables, move |p, t| {
            processes::learner::<V>(p, t, opts.catch_up)
        }))
        .child(child(PROPOSER, &tables, processes::proposer::<V>));
    Ok((Paxos { tables }, spec))
}

impl<V: PaxosValue> Paxos<V> {
    /// Proposes `value` for instance `seq` and returns at once. An instance already
    /// forgotten (below `min`) is ignored, as in the original; one already decided here is
    /// not proposed again.
    ///
    /// The peer runs here, in the caller (it is in the node's tables): the proposer's
    /// machine and the node's own acceptor and learner, in place, and the first requests
    /// go out at once; the proposer process takes the replies and the timers. That saves
    /// process wake-ups on every operation's path.
    pub fn start(&self, seq: u64, value: V) {
        let t = &self.tables;
        if t.is_stopped() {
            return;
        }
        t.drive(t.node.whereis(PROPOSER).as_ref(), |peer, now| {
            peer.propose(seq, value, now)
        });
    }

    /// What this peer knows of `seq`, from local state only. A decision shows once the
    /// records it rests on here are durable (and it was announced).
    pub fn status(&self, seq: u64) -> Status<V> {
        self.tables.status(seq)
    }

    /// The application no longer needs instances `<= seq`.
    pub fn done(&self, seq: u64) {
        self.tables.drive(None, |peer, _| peer.done(seq));
    }

    /// The highest instance seen by this peer (0 if none).
    pub fn max(&self) -> u64 {
        self.tables.read(|peer| peer.max())
    }

    /// One more than the lowest `done` over all peers; instances below it are forgotten.
    pub fn min(&self) -> u64 {
        self.tables.read(|peer| peer.min())
    }

    /// Whether this peer is running: not stopped, and its processes are up (a peer whose
    /// supervisor gave up, or is being restarted, is not alive).
    pub fn alive(&self) -> bool {
        let node = &self.tables.node;
        !self.tables.is_stopped()
            && !node.is_stopped()
            && [ACCEPTOR, LEARNER, PROPOSER]
                .iter()
                .all(|name| node.whereis(name).is_some())
    }

    /// Stops this peer, as the original's `stop`: from now on it ignores every message
    /// and every start, and answers `alive() == false`. Its processes stay (quiet) so
    /// that their supervisor has nothing to restart.
    pub fn stop(&self) {
        self.tables.stopped.store(true, Ordering::SeqCst);
    }

    /// Instances this peer holds in memory (learner, acceptor and proposer together count
    /// once per instance in the largest of them).
    pub fn held(&self) -> usize {
        self.tables.read(|peer| peer.held())
    }

    /// `pid` receives a [`Decided`] for `seq` when it is decided here (at once if it is).
    pub fn subscribe(&self, seq: u64, pid: &Pid) {
        self.tables.subscribe(seq, pid);
    }

    /// `pid` receives a [`Decided`] for every instance decided here from now on.
    pub fn set_listener(&self, pid: Option<Pid>) {
        self.tables.set_listener(pid);
    }

    /// Protocol requests (prepare, accept, decided) this peer has received.
    pub fn requests_received(&self) -> RequestCount {
        let c = self.tables.read(|peer| peer.counts());
        RequestCount {
            prepare: c.prepare,
            accept: c.accept,
            decided: c.decided,
        }
    }

    /// Every peer's node, in peer-list order (the same on every peer).
    pub fn peers(&self) -> &[NodeName] {
        &self.tables.peers
    }

    /// This peer's index in the peer list.
    pub fn me(&self) -> usize {
        self.tables.me
    }

    /// The node this peer runs on.
    pub fn node(&self) -> &Node {
        &self.tables.node
    }

    /// The durable log's counters (fsyncs, their latency histogram, errors); `None` for
    /// a peer whose records are in memory.
    pub fn storage_stats(&self) -> Option<storage::StorageStats> {
        self.tables.storage_stats()
    }

    /// The Paxos supervisor's pid, when it runs.
    pub fn supervisor(&self) -> Option<Pid> {
        self.tables.node.whereis(PAXOS_SUP)
    }
}
