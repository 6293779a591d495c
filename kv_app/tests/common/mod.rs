//! Test harness for the kv service: server nodes and client nodes on one in-memory
//! network, faults per server, and the checks the original's tests make.

#![allow(dead_code)]

use kv_app::app::KvStatus;
use kv_app::{Client, ClientTimeouts, KvServer, PaxosMode, ServerOptions, start_server};
use runtime::faults::{FaultCounts, LossModel};
use runtime::transport::memory::Network;
use runtime::{Node, NodeName, NodeRole};
use std::collections::BTreeSet;
use std::time::Duration;

pub const LONG: Duration = Duration::from_secs(30);

pub struct Cluster {
    pub net: Network,
    pub names: Vec<NodeName>,
    pub servers: Vec<KvServer>,
    prefix: String,
    clients: std::sync::atomic::AtomicUsize,
    /// Every client node started, for their traffic counters.
    client_nodes: std::sync::Mutex<Vec<Node>>,
}

/// Runs a scenario `async fn NAME(mode: PaxosMode)` once per Paxos mode, as the tests
/// `NAME::basic` and `NAME::distinguished`.
#[macro_export]
macro_rules! in_both_modes {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn basic() {
                super::$name(kv_app::PaxosMode::Basic).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn distinguished() {
                super::$name(kv_app::PaxosMode::Distinguished).await
            }
        }
    )*};
}

impl Cluster {
    pub async fn new(prefix: &str, n: usize) -> Cluster {
        Cluster::with_options(prefix, n, ServerOptions::default()).await
    }

    /// `n` servers running Paxos in `mode`.
    pub async fn in_mode(prefix: &str, n: usize, mode: PaxosMode) -> Cluster {
        Cluster::with_options(prefix, n, ServerOptions::with_paxos(mode)).await
    }

    /// `n` servers started with `opts`.
    pub async fn with_options(prefix: &str, n: usize, opts: ServerOptions) -> Cluster {
        let net = Network::new();
        let names: Vec<NodeName> = (0..n)
            .map(|i| NodeName::new(format!("{prefix}-s{i}@mem")))
            .collect();
        let mut servers = Vec::new();
        for name in &names {
            let node = net.start_node(name.clone(), NodeRole::Server);
            let s = start_server(&node, names.clone(), opts)
                .await
                .expect("kv server starts");
            servers.push(s);
        }
        Cluster {
            net,
            names,
            servers,
            prefix: prefix.to_string(),
            clients: Default::default(),
            client_nodes: Default::default(),
        }
    }

    /// A new client node that knows the given servers (by index).
    pub fn client(&self, servers: &[usize]) -> Client {
        let i = self
            .clients
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let node = self.net.start_node(
            NodeName::new(format!("{}-c{i}@mem", self.prefix)),
            NodeRole::Client,
        );
        let list = servers.iter().map(|&s| self.names[s].clone()).collect();
        self.client_nodes
            .lock()
            .expect("client list")
            .push(node.clone());
        kv_app::client::start(&node, list, ClientTimeouts::default()).expect("client starts")
    }

    /// Frames every client node started so far has sent (requests, resends, deletes).
    pub fn client_frames_sent(&self) -> u64 {
        let nodes = self.client_nodes.lock().expect("client list");
        nodes.iter().map(|n| n.stats().sent).sum()
    }

    /// What the servers' faults dropped, summed over the given servers.
    pub fn dropped_at(&self, servers: &[usize]) -> FaultCounts {
        let mut sum = FaultCounts::default();
        for &i in servers {
            let c = self.node(i).faults().counts();
            sum.deaf += c.deaf;
            sum.cut += c.cut;
            sum.lost_in += c.lost_in;
            sum.lost_out += c.lost_out;
        }
        sum
    }

    /// What every server's faults dropped.
    pub fn dropped(&self) -> FaultCounts {
        let all: Vec<usize> = (0..self.servers.len()).collect();
        self.dropped_at(&all)
    }

    /// A client that knows every server.
    pub fn client_all(&self) -> Client {
        let all: Vec<usize> = (0..self.names.len()).collect();
        self.client(&all)
    }

    pub fn node(&self, i: usize) -> &Node {
        self.servers[i].node()
    }

    /// The kv part of server `i`'s status.
    pub fn kv(&self, i: usize) -> KvStatus {
        self.servers[i].status().kv
    }

    pub fn partition(&self, groups: &[&[usize]]) {
        for group in groups {
            let allowed: BTreeSet<NodeName> =
                group.iter().map(|&i| self.names[i].clone()).collect();
            for &i in group.iter() {
                self.node(i).faults().set_allow(Some(allowed.clone()));
            }
        }
    }

    pub fn heal(&self) {
        for s in &self.servers {
            s.node().faults().set_allow(None);
        }
    }

    /// Every server unreliable under the boundary model with probability `p`.
    pub fn set_unreliable(&self, p: f64, seed: u64) {
        self.set_unreliable_as(LossModel::Boundary, p, seed);
    }

    /// Every server unreliable under `model` (0 makes them reliable).
    pub fn set_unreliable_as(&self, model: LossModel, p: f64, seed: u64) {
        for (i, s) in self.servers.iter().enumerate() {
            s.node().faults().reseed(seed.wrapping_add(i as u64));
            if p > 0.0 {
                s.node().faults().set_unreliable(model, p);
            } else {
                s.node().faults().set_reliable();
            }
        }
    }

    pub fn set_deaf(&self, deaf: bool) {
        for s in &self.servers {
            s.node().faults().set_deaf(deaf);
        }
    }

    /// Waits until every replica has applied the same log prefix and holds the same data.
    pub async fn wait_replicas_equal(&self) {
        let all: Vec<usize> = (0..self.servers.len()).collect();
        self.wait_replicas_equal_among(&all).await;
    }

    /// [`Cluster::wait_replicas_equal`] for the given servers only (the running ones).
    pub async fn wait_replicas_equal_among(&self, running: &[usize]) {
        let deadline = tokio::time::Instant::now() + LONG;
        loop {
            let datas: Vec<_> = running.iter().map(|&i| self.servers[i].data()).collect();
            let applied: Vec<u64> = running.iter().map(|&i| self.servers[i].applied()).collect();
            if datas.windows(2).all(|w| w[0] == w[1]) && applied.windows(2).all(|w| w[0] == w[1]) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "replicas differ: applied {applied:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A seed from `KV_TEST_SEED` or the clock; printed so a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("KV_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("{test}: seed {seed} (replay with KV_TEST_SEED={seed})");
    seed
}

/// Polls `ready` until it holds; fails the test after [`LONG`].
pub async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + LONG;
    while !ready() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {LONG:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `f` with a deadline, so a hung operation fails the test with a message.
pub async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(LONG, f).await {
        Ok(t) => t,
        Err(_) => panic!("{what}: not done within {LONG:?}"),
    }
}
