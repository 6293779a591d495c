//! The kv application on a server node: Paxos (under its own supervisor) and the kv
//! supervisor `kv_sup` (rest_for_one) with the DB manager and the server; plus the
//! original's fault calls (`Sordo`, `Escucha`, `Fiable`, `No_fiable`, and `allow`).

use crate::db_manager::{self, HoleFilling, SharedStore};
use crate::messages::{DB_MANAGER, KV_SERVER, KV_SUP};
use crate::operation::Waits;
use crate::{Log, server};
use runtime::supervisor::{self, ChildSpec, Strategy, SupervisorSpec};
use runtime::{ExitReason, Node, NodeName, Pid, ProcessInfo};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
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
}

/// Tuning of the kv processes; the defaults are the product's.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerOptions {
    pub waits: Waits,
    pub holes: HoleFilling,
}

/// A running kv server node.
#[derive(Clone)]
pub struct KvServer {
    node: Node,
    log: Log,
    store: SharedStore,
    sup: Pid,
}

/// Starts Paxos and the kv application on `node`, one of `peers` (every server node,
/// this one included, in the same order on every node).
pub async fn start_server(
    node: &Node,
    peers: Vec<NodeName>,
    opts: ServerOptions,
) -> Result<KvServer, KvError> {
    if !peers.contains(node.name()) {
        return Err(KvError::NotAPeer {
            node: node.name().to_string(),
        });
    }
    let log: Log = paxos_app::start(node, peers)
        .await
        .map_err(|e| KvError::Paxos(e.to_string()))?;
    let store = SharedStore::default();
    let (db_log, db_store) = (log.clone(), store.clone());
    let srv_log = log.clone();
    let spec = SupervisorSpec::new(Strategy::RestForOne)
        .intensity(10, Duration::from_secs(10))
        .child(ChildSpec::new("db_manager", move |sup| {
            let (log, store) = (db_log.clone(), db_store.clone());
            let pid = sup.spawn_link(move |p| db_manager::run(p, log, store, opts.holes));
            sup.node()
                .register(DB_MANAGER, &pid)
                .map_err(|e| ExitReason::custom(e.to_string()))?;
            Ok(pid)
        }))
        .child(ChildSpec::new("kv_server", move |sup| {
            let log = srv_log.clone();
            let pid = sup.spawn_link(move |p| server::run(p, log, opts.waits));
            sup.node()
                .register(KV_SERVER, &pid)
                .map_err(|e| ExitReason::custom(e.to_string()))?;
            Ok(pid)
        }));
    let sup = supervisor::start(node, spec, Some(KV_SUP))
        .await
        .map_err(|e| KvError::Supervisor(e.to_string()))?;
    Ok(KvServer {
        node: node.clone(),
        log,
        store,
        sup,
    })
}

/// What `status` reports about a server node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeStatus {
    pub node: String,
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
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KvStatus {
    pub keys: usize,
    /// The highest instance applied to the data.
    pub applied: u64,
    /// Results held for operations whose reference is not yet deleted.
    pub held_results: usize,
}

impl KvServer {
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The Paxos log of this node.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The kv supervisor's pid.
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
        let store = self.store.lock();
        NodeStatus {
            node: self.node.name().to_string(),
            paxos: PaxosStatus {
                max: self.log.max(),
                min: self.log.min(),
                held: self.log.held(),
                alive: self.log.alive(),
            },
            kv: KvStatus {
                keys: store.len(),
                applied: store.applied_through(),
                held_results: store.held_results(),
            },
            faults: self.node.fault_state(),
            traffic: self.node.stats(),
            processes: self.node.processes(),
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
    node.faults().set_drop(0.0);
}

/// `No_fiable`: each message crossing the node's boundary is dropped with probability `p`
/// (the original's rate is 0.2).
pub fn unreliable(node: &Node, p: f64) {
    node.faults().set_drop(p);
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
