//! What the page receives on every update: each node (address, connections, faults,
//! mode, leader, supervision tree, Paxos and kv figures), the cluster's rates and their
//! recent history, and the event log. Serialised to JSON; the page renders every string
//! as text.

use super::events::Event;
use super::rates::Rates;
use super::reading::NodeReading;
use super::tree::{self, SERVER_TREE, TreeNode};
use kv_app::NodeStatus;
use serde::Serialize;

/// The page's picture of the cluster.
#[derive(Clone, Debug, Serialize)]
pub struct PageView {
    /// Milliseconds since the observer started.
    pub at_ms: u64,
    /// The distinguished proposer: the batchers' leader and the lease holder.
    pub leader: Option<String>,
    pub nodes: Vec<NodeView>,
    /// Over the last two seconds or so.
    pub rates: Rates,
    /// One point a second over the last minutes.
    pub chart: Vec<Rates>,
    /// Newest last.
    pub events: Vec<Event>,
}

/// One node on the page.
#[derive(Clone, Debug, Serialize)]
pub struct NodeView {
    pub name: String,
    pub addr: String,
    pub leader: bool,
    /// Why the node did not answer; `None` when it did.
    pub error: Option<String>,
    /// The node's status without its process list (the tree shows those).
    pub status: Option<NodeStatus>,
    pub tree: Option<TreeNode>,
    /// Live processes outside the tree (operation managers, connections, ...).
    pub other_processes: usize,
}

impl NodeView {
    pub fn of(r: &NodeReading, leader: Option<&str>) -> NodeView {
        let (status, tree, other_processes, error) = match &r.status {
            Ok(s) => {
                let tree = tree::build(&SERVER_TREE, &s.processes);
                let named = tree::names(&SERVER_TREE);
                let others = s
                    .processes
                    .iter()
                    .filter(|p| !p.name.as_deref().is_some_and(|n| named.contains(&n)))
                    .count();
                let mut s = s.clone();
                s.processes.clear();
                (Some(s), Some(tree), others, None)
            }
            Err(e) => (None, None, 0, Some(e.clone())),
        };
        NodeView {
            name: r.member.name.clone(),
            addr: r.member.addr.to_string(),
            leader: leader == Some(r.member.name.as_str()),
            error,
            status,
            tree,
            other_processes,
        }
    }
}
