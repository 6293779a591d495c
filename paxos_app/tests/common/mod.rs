//! Test harness: a cluster of in-memory nodes, each with a Paxos peer, and the helpers of
//! the original's tests (count decided peers — asserting their values agree —, wait for
//! n or a majority, partition the cluster).

#![allow(dead_code)]

use paxos_app::core::majority;
use paxos_app::{Paxos, PaxosOptions, PaxosValue, Status};
use runtime::transport::memory::Network;
use runtime::{Node, NodeName, NodeRole};
use std::collections::BTreeSet;
use std::time::Duration;

pub const LONG: Duration = Duration::from_secs(20);

pub struct Cluster<V> {
    pub net: Network,
    pub names: Vec<NodeName>,
    pub nodes: Vec<Option<Node>>,
    pub peers: Vec<Option<Paxos<V>>>,
    pub options: PaxosOptions,
}

pub fn names(prefix: &str, n: usize) -> Vec<NodeName> {
    (0..n)
        .map(|i| NodeName::new(format!("{prefix}{i}@mem")))
        .collect()
}

impl<V: PaxosValue> Cluster<V> {
    /// `n` peers, all started with the default options.
    pub async fn new(prefix: &str, n: usize) -> Self {
        Self::with_options(prefix, n, PaxosOptions::default()).await
    }

    /// `n` peers named, none started.
    pub fn empty(prefix: &str, n: usize) -> Self {
        Cluster {
            net: Network::new(),
            names: names(prefix, n),
            nodes: (0..n).map(|_| None).collect(),
            peers: (0..n).map(|_| None).collect(),
            options: PaxosOptions::default(),
        }
    }

    /// `n` peers, all started with `opts`.
    pub async fn with_options(prefix: &str, n: usize, opts: PaxosOptions) -> Self {
        let mut c = Self::empty(prefix, n);
        c.options = opts;
        for i in 0..n {
            c.start_peer(i).await;
        }
        c
    }

    pub async fn start_peer(&mut self, i: usize) {
        let node = self.net.start_node(self.names[i].clone(), NodeRole::Server);
        let px = paxos_app::start_with::<V>(&node, self.names.clone(), self.options)
            .await
            .expect("paxos starts");
        self.nodes[i] = Some(node);
        self.peers[i] = Some(px);
    }

    pub fn px(&self, i: usize) -> &Paxos<V> {
        self.peers[i].as_ref().expect("peer started")
    }

    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("peer started")
    }

    /// How many peers decided `seq`, asserting that they all decided the same value.
    pub fn ndecided(&self, seq: u64) -> usize {
        let mut count = 0;
        let mut first: Option<(usize, V)> = None;
        for (i, px) in self.peers.iter().enumerate() {
            let Some(px) = px else { continue };
            if let Status::Decided(v) = px.status(seq) {
                if let Some((j, w)) = &first {
                    assert_eq!(
                        &v, w,
                        "instance {seq}: peer {i} decided {v:?} but peer {j} decided {w:?}"
                    );
                } else {
                    first = Some((i, v));
                }
                count += 1;
            }
        }
        count
    }

    /// Waits until at least `wanted` peers decided `seq`; panics at the deadline.
    pub async fn wait_n(&self, seq: u64, wanted: usize) {
        let deadline = tokio::time::Instant::now() + LONG;
        let mut pause = Duration::from_millis(2);
        loop {
            let n = self.ndecided(seq);
            if n >= wanted {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "instance {seq}: only {n} decided, wanted {wanted}"
            );
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    pub async fn wait_majority(&self, seq: u64) {
        self.wait_n(seq, majority(self.names.len())).await;
    }

    /// Waits until peer `i`'s `min` is `want`; panics at the deadline.
    pub async fn wait_min(&self, i: usize, want: u64) {
        let deadline = tokio::time::Instant::now() + LONG;
        loop {
            let min = self.px(i).min();
            if min == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "peer {i}: min {min} instead of {want}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Asserts that nobody decided `seq`.
    pub fn check_none(&self, seq: u64) {
        let n = self.ndecided(seq);
        assert_eq!(n, 0, "instance {seq}: {n} peers decided; expected none");
    }

    /// Cuts the cluster into groups of peer indexes: servers talk only within their group.
    pub fn partition(&self, groups: &[&[usize]]) {
        for group in groups {
            let allowed: BTreeSet<NodeName> =
                group.iter().map(|&i| self.names[i].clone()).collect();
            for &i in group.iter() {
                if let Some(node) = &self.nodes[i] {
                    node.faults().set_allow(Some(allowed.clone()));
                }
            }
        }
    }

    pub fn heal(&self) {
        for node in self.nodes.iter().flatten() {
            node.faults().set_allow(None);
        }
    }

    pub fn set_unreliable(&self, p: f64, seed: u64) {
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(node) = node {
                node.faults().reseed(seed.wrapping_add(i as u64));
                node.faults().set_drop(p);
            }
        }
    }
}

/// A seed from `PAXOS_TEST_SEED` or the clock; printed so a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("PAXOS_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("{test}: seed {seed} (replay with PAXOS_TEST_SEED={seed})");
    seed
}
