//! The kv application on a server node: the node supervisor `node_sup` (one_for_one) with
//! the Paxos supervisor `paxos_sup` (acceptor, learner, proposer), the kv supervisor
//! `kv_sup` (rest_for_one: the DB manager, the proposal batcher, then the server) and the
//! control process `node_ctl`;
//! plus the original's fault calls (`Sordo`, `Escucha`, `Fiable`, `No_fiable`, and
//! `allow`).

use crate::batcher::{BatcherCounters, Forwarding};
use crate::control::{self, NODE_CTL};
use crate::db_manager::{self, HoleFilling, SharedStore};
use crate::durable::{self, OpenReport, StorageMode, StorageStatus, StoreSnapshots};
use crate::messages::{
    Answer, BATCHER, DB_MANAGER, ForwardedAt, KV_SERVER, KV_SUP, NODE_SUP, RequestAnswer,
};
use crate::operation::Waits;
use crate::service_counters::{ServiceCounters, ServiceCounts};
use crate::{Log, batcher, server};
use runtime::faults::LossModel;
use runtime::gen_server;
use runtime::supervisor::{self, ChildSpec, Strategy, SupervisorSpec};
use runtime::{ExitReason, Node, NodeName, Pid, ProcessInfo};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Errors starting the kv application.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("node {node} is not in its own peer list")]
    NotAPeer { node: String },
    #[error("starting Paxos: {0}")]
    Paxos(String),
    #[error("starting the kv supervisor: {0}")]
    Supervisor(String),
    /// The data dir was refused (one line naming the file and offset) or could not be
    /// opened.
    #[error("{0}")]
    Storage(String),
}

/// Tuning of the kv processes; the defaults are the product's.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerOptions {
    pub waits: Waits,
    pub holes: HoleFilling,
    /// Whether the batchers forward to the distinguished proposer (peer 0); with it, peer
    /// 0's proposer holds the Multi-Paxos lease. See [`PaxosMode`].
    pub forwarding: Forwarding,
    /// Deliberate bugs for the simulation's proof that it bites; off in the product.
    pub deliberate: crate::deliberate::DeliberateBugs,
    /// The largest key and value the server takes.
    pub limits: crate::limits::Limits,
}

/// Which Paxos the service runs: the original's, or the default with a leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaxosMode {
    /// The original: every server proposes its own operations with basic Paxos (two
    /// phases per instance); no lease, no forwarding.
    Basic,
    /// A distinguished proposer (peer 0) holds a Multi-Paxos lease and the other servers
    /// forward their batches to it.
    #[default]
    Distinguished,
}

impl PaxosMode {
    pub fn name(self) -> &'static str {
        match self {
            PaxosMode::Basic => "basic",
            PaxosMode::Distinguished => "distinguished",
        }
    }
}

impl std::str::FromStr for PaxosMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "basic" => Ok(PaxosMode::Basic),
            "distinguished" => Ok(PaxosMode::Distinguished),
            other => Err(format!(
                "unknown Paxos mode '{other}' (basic or distinguished)"
            )),
        }
    }
}

impl std::fmt::Display for PaxosMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl ServerOptions {
    /// The default options running Paxos in `mode`: basic turns forwarding off, and with
    /// it the distinguished proposer's lease.
    pub fn with_paxos(mode: PaxosMode) -> ServerOptions {
        let mut opts = ServerOptions::default();
        opts.forwarding.enabled = mode == PaxosMode::Distinguished;
        opts
    }

    /// The Paxos these options run.
    pub fn paxos_mode(&self) -> PaxosMode {
        if self.forwarding.enabled {
            PaxosMode::Distinguished
        } else {
            PaxosMode::Basic
        }
    }
}

/// A running kv server node.
#[derive(Clone)]
pub struct KvServer {
    node: Node,
    log: Log,
    store: SharedStore,
    batcher: Arc<BatcherCounters>,
    service: Arc<ServiceCounters>,
    leader: Option<NodeName>,
    sup: Pid,
    storage: Option<StorageSource>,
    opened: Option<OpenReport>,
}

/// The mode of a node started with [`start_server`] (memory: nothing survives the node);
/// [`start_server_with`] chooses, and [`KvServer::storage_mode`] says which a node runs.
pub fn storage_mode() -> &'static str {
    StorageMode::Memory.name()
}

/// Where a durable node's storage figures come from.
#[derive(Clone)]
struct StorageSource {
    dir: String,
    recovered: Option<OpenReport>,
    snapshots: Arc<parking_lot::Mutex<StoreSnapshots>>,
}

/// Starts Paxos and the kv application on `node`, one of `peers` (every server node,
/// this one included, in the same order on every node).
pub async fn start_server(
    node: &Node,
    peers: Vec<NodeName>,
    opts: ServerOptions,
) -> Result<KvServer, KvError> {
    start_server_with(node, peers, opts, StorageMode::Memory).await
}

/// [`start_server`], keeping the node's state where `mode` says. A durable node opens its
/// data dir first (off the runtime's workers: recovery reads and syncs), restores its
/// Paxos peer and its store from it, and refuses to start if the dir is refused.
pub async fn start_server_with(
    node: &Node,
    peers: Vec<NodeName>,
    opts: ServerOptions,
    mode: StorageMode,
) -> Result<KvServer, KvError> {
    if !peers.contains(node.name()) {
        return Err(KvError::NotAPeer {
            node: node.name().to_string(),
        });
    }
    // The leader the batchers forward to (peer 0) is also the proposer that holds a
    // Multi-Paxos lease; without forwarding every node proposes, and leases would only
    // break each other.
    let paxos_opts = paxos_app::PaxosOptions {
        distinguished_proposer: (opts.paxos_mode() == PaxosMode::Distinguished).then_some(0),
        ..Default::default()
    };
    // What the MIT loss model treats as replies: the server's Ok/Down and the result to a
    // client (sent after the operation ran), and the leader's answer to a forward.
    node.mark_reply::<RequestAnswer>();
    node.mark_reply::<Answer>();
    node.mark_reply::<ForwardedAt>();
    let opened = match &mode {
        StorageMode::Memory => None,
        StorageMode::Durable(dir) => {
            let (name, dir) = (node.name().to_string(), dir.clone());
            let opened = tokio::task::spawn_blocking(move || durable::open(&name, &dir))
                .await
                .map_err(|e| KvError::Storage(format!("opening the data dir: {e}")))?
                .map_err(|e| KvError::Storage(e.to_string()))?;
            Some(opened)
        }
    };
    let (paxos_durable, restored, durable_parts) = match opened {
        None => (None, None, None),
        Some(o) => (
            Some(o.paxos),
            o.store,
            Some((
                Arc::new(parking_lot::Mutex::new(o.snapshots)),
                o.accepted_max,
                o.report,
            )),
        ),
    };
    let (log, paxos_spec): (Log, _) =
        paxos_app::prepare_with(node, peers, paxos_opts, paxos_durable)
            .map_err(|e| KvError::Paxos(e.to_string()))?;
    let store = SharedStore::new(parking_lot::Mutex::new(
        restored
            .unwrap_or_default()
            .with_deliberate(opts.deliberate),
    ));
    let storage = durable_parts
        .as_ref()
        .map(|(snapshots, _, _)| StorageSource {
            dir: snapshots.lock().dir().parent().map_or_else(
                || snapshots.lock().dir().display().to_string(),
                |p| p.display().to_string(),
            ),
            snapshots: snapshots.clone(),
            recovered: durable_parts.as_ref().map(|(_, _, report)| report.clone()),
        });
    let db_durable = durable_parts
        .as_ref()
        .map(|(snapshots, max, _)| (snapshots.clone(), *max));
    let opened_report = durable_parts.map(|(_, _, report)| report);
    let counters = Arc::new(BatcherCounters::default());
    let service = Arc::new(ServiceCounters::default());
    // The distinguished proposer: the batchers' leader and the Multi-Paxos lease holder.
    let leader = paxos_opts
        .distinguished_proposer
        .and_then(|i| log.peers().get(i).cloned());
    let (db_log, db_store) = (log.clone(), store.clone());
    let (srv_log, srv_counters) = (log.clone(), service.clone());
    let (batch_log, batch_counters) = (log.clone(), counters.clone());
    let kv_spec = SupervisorSpec::new(Strategy::RestForOne)
        .intensity(10, Duration::from_secs(10))
        .child(ChildSpec::gen_server(
            "db_manager",
            Some(DB_MANAGER),
            move || {
                let manager =
                    db_manager::DbManager::new(db_log.clone(), db_store.clone(), opts.holes);
                match &db_durable {
                    Some((snapshots, max)) => manager.durable(snapshots.clone(), *max),
                    None => manager,
                }
            },
        ))
        .child(ChildSpec::new("kv_batcher", move |sup| {
            let (log, counters) = (batch_log.clone(), batch_counters.clone());
            let pid = sup.spawn_link(move |p| batcher::run(p, log, opts.forwarding, counters));
            register(sup.node(), BATCHER, &pid)?;
            Ok(pid)
        }))
        .child(ChildSpec::gen_server(
            "kv_server",
            Some(KV_SERVER),
            move || server::Server {
                log: srv_log.clone(),
                waits: opts.waits,
                counters: srv_counters.clone(),
                limits: opts.limits,
            },
        ));
    let sources = StatusSources {
        node: node.clone(),
        log: log.clone(),
        store: store.clone(),
        batcher: counters.clone(),
        service: service.clone(),
        leader: leader.clone(),
        storage: storage.clone(),
    };
    let ctl_log = log.clone();
    let node_spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(10))
        .child(ChildSpec::supervisor(
            "paxos_sup",
            Some(paxos_app::tables::PAXOS_SUP),
            paxos_spec,
        ))
        .child(ChildSpec::supervisor("kv_sup", Some(KV_SUP), kv_spec))
        .child(ChildSpec::new("node_ctl", move |sup| {
            let sources = sources.clone();
            let paxos = ctl_log.clone();
            let pid = sup.spawn_link(move |p| control::run(p, paxos, move || sources.status()));
            register(sup.node(), NODE_CTL, &pid)?;
            Ok(pid)
        }));
    let sup = supervisor::start(node, node_spec, Some(NODE_SUP))
        .await
        .map_err(|e| KvError::Supervisor(e.to_string()))?;
    Ok(KvServer {
        node: node.clone(),
        log,
        store,
        batcher: counters,
        service,
        leader,
        sup,
        storage,
        opened: opened_report,
    })
}

/// Registers a freshly started child; on failure the child is killed so that no orphan
/// stays linked to the supervisor.
fn register(node: &Node, name: &str, pid: &Pid) -> Result<(), ExitReason> {
    node.register(name, pid).map_err(|e| {
        node.exit(None, pid, ExitReason::Kill);
        ExitReason::custom(e.to_string())
    })
}

/// What `status` reports about a server node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeStatus {
    pub node: String,
    /// Where the node keeps its state: "memory" or "durable".
    #[serde(default = "default_mode")]
    pub mode: String,
    /// A durable node's data dir and storage figures (fsyncs, their latency histogram).
    #[serde(default)]
    pub storage: Option<StorageStatus>,
    /// The nodes this node has a live connection with (servers and clients).
    #[serde(default)]
    pub connected: Vec<String>,
    pub paxos: PaxosStatus,
    pub kv: KvStatus,
    pub faults: runtime::FaultState,
    pub traffic: runtime::NodeStats,
    pub processes: Vec<ProcessInfo>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PaxosStatus {
    pub max: u64,
    pub min: u64,
    /// Instances held in memory (not yet forgotten).
    pub held: usize,
    pub alive: bool,
    /// The distinguished proposer (peer 0): the batchers' leader and the one proposer
    /// that takes a Multi-Paxos lease; `None` when every node proposes.
    #[serde(default)]
    pub leader: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KvStatus {
    pub keys: usize,
    /// The highest instance applied to the data.
    pub applied: u64,
    /// Results held for operations whose reference is not yet deleted.
    pub held_results: usize,
    /// Batches this node's batcher proposed itself.
    #[serde(default)]
    pub proposed_locally: u64,
    /// Batches this node's batcher forwarded to the distinguished proposer.
    #[serde(default)]
    pub forwarded: u64,
    /// Forwards that went unanswered (each made this node propose itself for a while).
    #[serde(default)]
    pub forwards_timed_out: u64,
    /// Batches this node proposed whose instance another value won.
    #[serde(default)]
    pub proposals_lost: u64,
    /// Operation requests this node's server took, by kind, with their latencies.
    #[serde(default)]
    pub ops: ServiceCounts,
}

fn default_mode() -> String {
    storage_mode().to_string()
}

impl KvServer {
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The Paxos log of this node.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The node supervisor's pid.
    pub fn supervisor(&self) -> &Pid {
        &self.sup
    }

    /// The value of `key` in this replica's data (no Paxos: for tests and status).
    pub fn local_value(&self, key: &str) -> Option<String> {
        self.store.lock().get(key).map(str::to_string)
    }

    /// A copy of this replica's data (for tests comparing replicas).
    pub fn data(&self) -> std::collections::BTreeMap<String, String> {
        self.store.lock().entries()
    }

    /// The highest instance applied to this replica's data.
    pub fn applied(&self) -> u64 {
        self.store.lock().applied_through()
    }

    pub fn status(&self) -> NodeStatus {
        StatusSources {
            node: self.node.clone(),
            log: self.log.clone(),
            store: self.store.clone(),
            batcher: self.batcher.clone(),
            service: self.service.clone(),
            leader: self.leader.clone(),
            storage: self.storage.clone(),
        }
        .status()
    }

    /// `"durable"` or `"memory"`: where this node keeps its state.
    pub fn storage_mode(&self) -> &'static str {
        if self.storage.is_some() {
            "durable"
        } else {
            storage_mode()
        }
    }

    /// What opening the data dir found (a durable node).
    pub fn opened(&self) -> Option<&OpenReport> {
        self.opened.as_ref()
    }

    /// Orderly shutdown: the node supervisor stops its children in reverse start order
    /// (node_ctl, then kv_sup — the server, the batcher, the DB manager —, then paxos_sup),
    /// each within its shutdown time; then the node itself stops and its peers see it go.
    pub async fn shutdown(&self) {
        let mut me = self.node.attach();
        if let Err(e) = gen_server::stop(
            &mut me,
            &self.sup,
            ExitReason::Shutdown,
            Duration::from_secs(20),
        )
        .await
        {
            log::warn!(
                "{}: orderly shutdown failed ({e}); stopping",
                self.node.name()
            );
        }
        drop(me);
        self.node.stop();
    }
}

/// What `status` reads: local state only.
#[derive(Clone)]
struct StatusSources {
    node: Node,
    log: Log,
    store: SharedStore,
    batcher: Arc<BatcherCounters>,
    service: Arc<ServiceCounters>,
    leader: Option<NodeName>,
    storage: Option<StorageSource>,
}

impl StatusSources {
    fn status(&self) -> NodeStatus {
        let (keys, applied, held_results) = {
            let store = self.store.lock();
            (store.len(), store.applied_through(), store.held_results())
        };
        let batches = self.batcher.read();
        let node = &self.node;
        NodeStatus {
            node: node.name().to_string(),
            mode: if self.storage.is_some() {
                "durable"
            } else {
                storage_mode()
            }
            .to_string(),
            storage: self.storage.as_ref().map(|s| StorageStatus {
                dir: s.dir.clone(),
                paxos: self.log.storage_stats().unwrap_or_default(),
                kv: s.snapshots.lock().stats(),
                recovered: s.recovered.clone(),
            }),
            connected: node
                .connected_nodes()
                .iter()
                .map(|n| n.to_string())
                .collect(),
            paxos: PaxosStatus {
                max: self.log.max(),
                min: self.log.min(),
                held: self.log.held(),
                alive: self.log.alive(),
                leader: self.leader.as_ref().map(|n| n.to_string()),
            },
            kv: KvStatus {
                keys,
                applied,
                held_results,
                proposed_locally: batches.proposed_locally,
                forwarded: batches.forwarded,
                forwards_timed_out: batches.forwards_timed_out,
                proposals_lost: batches.lost,
                ops: self.service.read(),
            },
            faults: node.fault_state(),
            traffic: node.stats(),
            processes: node.processes(),
        }
    }
}

/// `Sordo`: the node drops every message arriving from other nodes.
pub fn deaf(node: &Node) {
    node.faults().set_deaf(true);
}

/// `Escucha`: undoes `deaf`.
pub fn listen(node: &Node) {
    node.faults().set_deaf(false);
}

/// `Fiable`: undoes `unreliable`.
pub fn reliable(node: &Node) {
    node.faults().set_reliable();
}

/// `unreliable [P]` of the brief: each message crossing the node's boundary, in or out,
/// is dropped with probability `p` (the boundary loss model).
pub fn unreliable(node: &Node, p: f64) {
    unreliable_as(node, LossModel::Boundary, p);
}

/// `No_fiable` with a loss model: `LossModel::Original` is the original's (each message
/// the node receives dropped with probability `p`), `LossModel::Mit` MIT 6.824's (see
/// `runtime::faults`).
pub fn unreliable_as(node: &Node, model: LossModel, p: f64) {
    node.faults().set_unreliable(model, p);
}

/// Server-to-server traffic only with `servers` (a partition); clients are never cut.
pub fn allow(node: &Node, servers: &[NodeName]) {
    let set: BTreeSet<NodeName> = servers.iter().cloned().collect();
    node.faults().set_allow(Some(set));
}

/// Undoes `allow`.
pub fn allow_all(node: &Node) {
    node.faults().set_allow(None);
}
