//! The in-memory transport: nodes inside one OS process, joined by a shared [`Network`].
//! Message bodies cross as postcard bytes, decoded by the receiver as over TCP (the
//! frame around them is handed over as a value), and faults apply at the same points, so
//! code tested here meets the same semantics on real sockets.

use super::{Transport, Wire};
use crate::faults::NodeRole;
use crate::node::{Node, WeakNode};
use crate::pid::NodeName;
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A set of in-memory nodes that can reach each other.
#[derive(Clone, Default)]
pub struct Network {
    // Ordered by name: who hears of a node going down, and in which order, is fixed.
    nodes: Arc<RwLock<BTreeMap<NodeName, (WeakNode, NodeRole)>>>,
}

impl Network {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a node on this network. A node of the same name must be stopped first.
    pub fn start_node(&self, name: impl Into<NodeName>, role: NodeRole) -> Node {
        self.attach(Node::new(name, role))
    }

    /// [`start_node`](Self::start_node) with the node's randomness drawn from `seed`.
    pub fn start_node_seeded(&self, name: impl Into<NodeName>, role: NodeRole, seed: u64) -> Node {
        self.attach(Node::new_seeded(name, role, seed))
    }

    fn attach(&self, node: Node) -> Node {
        let role = node.role();
        self.nodes
            .write()
            .insert(node.name().clone(), (node.downgrade(), role));
        node.set_transport(Arc::new(MemoryTransport {
            net: self.clone(),
            me: node.name().clone(),
            role,
        }));
        node
    }

    /// Removes a node and tells every other node it is down (`noconnection`).
    fn remove(&self, name: &NodeName) {
        let others: Vec<WeakNode> = {
            let mut nodes = self.nodes.write();
            nodes.remove(name);
            nodes.values().map(|(w, _)| w.clone()).collect()
        };
        for w in others {
            if let Some(n) = w.upgrade() {
                n.node_down(name);
            }
        }
    }

    /// Names of the nodes on the network.
    pub fn nodes(&self) -> Vec<NodeName> {
        self.nodes.read().keys().cloned().collect()
    }
}

struct MemoryTransport {
    net: Network,
    me: NodeName,
    role: NodeRole,
}

impl Transport for MemoryTransport {
    fn send(&self, node: &NodeName, frame: Wire) {
        let target = self
            .net
            .nodes
            .read()
            .get(node)
            .and_then(|(w, _)| w.upgrade());
        match target {
            Some(t) => t.handle_wire(&self.me, self.role, frame),
            None => {
                // Unknown or stopped node: as a failed connection, the sender sees it down.
                let me = self
                    .net
                    .nodes
                    .read()
                    .get(&self.me)
                    .and_then(|(w, _)| w.upgrade());
                if let Some(me) = me {
                    me.node_down(node);
                }
            }
        }
    }

    fn peer_role(&self, node: &NodeName) -> Option<NodeRole> {
        self.net.nodes.read().get(node).map(|(_, r)| *r)
    }

    fn connected(&self) -> Vec<NodeName> {
        self.net
            .nodes
            .read()
            .keys()
            .filter(|n| **n != self.me)
            .cloned()
            .collect()
    }

    fn shutdown(&self) {
        self.net.remove(&self.me);
    }
}
