//! Test harness for the kv service: server nodes and client nodes on one in-memory
//! network, faults per server, and the checks the original's tests make.

#![allow(dead_code)]

use kv_app::app::KvStatus;
use kv_app::{Client, ClientTimeouts, KvServer, ServerOptions, start_server};
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
}

impl Cluster {
    pub async fn new(prefix: &str, n: usize) -> Cluster {
        Cluster::with_options(prefix, n, ServerOptions::default()).await
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
        kv_app::client::start(&node, list, ClientTimeouts::default()).expect("client starts")
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

    pub fn set_unreliable(&self, p: f64, seed: u64) {
        for (i, s) in self.servers.iter().enumerate() {
            s.node().faults().reseed(seed.wrapping_add(i as u64));
            s.node().faults().set_drop(p);
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
