//! The supervision tree of a server node as the page draws it: the shape of the kv
//! application's tree (supervisors, their strategies, their children in start order,
//! each registered under its child id), filled in with the live processes of a `status`
//! reply. The runtime reports processes as a flat list, so the shape is written down
//! here; a test compares it with what the running supervisors say they hold.

use runtime::ProcessInfo;
use serde::Serialize;

/// One supervisor or worker of the shape.
pub struct Shape {
    /// The child id, which is also the name it is registered under.
    pub name: &'static str,
    /// `Some(strategy)` for a supervisor.
    pub strategy: Option<&'static str>,
    pub children: &'static [Shape],
}

const fn worker(name: &'static str) -> Shape {
    Shape {
        name,
        strategy: None,
        children: &[],
    }
}

/// The kv application's tree (see `kv_app::app` and `paxos_app::prepare`).
pub const SERVER_TREE: Shape = Shape {
    name: "node_sup",
    strategy: Some("one_for_one"),
    children: &[
        Shape {
            name: "paxos_sup",
            strategy: Some("one_for_one"),
            children: &[
                worker("paxos_acceptor"),
                worker("paxos_learner"),
                worker("paxos_proposer"),
            ],
        },
        Shape {
            name: "kv_sup",
            strategy: Some("rest_for_one"),
            children: &[
                worker("db_manager"),
                worker("kv_batcher"),
                worker("kv_server"),
            ],
        },
        worker("node_ctl"),
    ],
};

/// A process of the tree as the page shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TreeNode {
    pub name: String,
    pub kind: &'static str,
    pub strategy: Option<&'static str>,
    /// `None` while it is not running (being restarted, or given up on).
    pub pid: Option<String>,
    pub status: &'static str,
    pub mailbox: usize,
    pub restarts: u32,
    pub children: Vec<TreeNode>,
}

/// The tree of `shape` filled in from `processes` (a node's `status`).
pub fn build(shape: &Shape, processes: &[ProcessInfo]) -> TreeNode {
    let live = processes
        .iter()
        .find(|p| p.name.as_deref() == Some(shape.name));
    TreeNode {
        name: shape.name.to_string(),
        kind: if shape.strategy.is_some() {
            "supervisor"
        } else {
            "worker"
        },
        strategy: shape.strategy,
        pid: live.map(|p| p.pid.clone()),
        status: if live.is_some() {
            "running"
        } else {
            "not running"
        },
        mailbox: live.map_or(0, |p| p.mailbox),
        restarts: live.map_or(0, |p| p.restarts),
        children: shape.children.iter().map(|c| build(c, processes)).collect(),
    }
}

/// Every name in the shape.
pub fn names(shape: &Shape) -> Vec<&'static str> {
    std::iter::once(shape.name)
        .chain(shape.children.iter().flat_map(names))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pid: &str, name: Option<&str>, restarts: u32) -> ProcessInfo {
        ProcessInfo {
            pid: pid.into(),
            name: name.map(str::to_string),
            mailbox: 2,
            restarts,
            trap_exit: false,
        }
    }

    #[test]
    fn live_processes_fill_the_shape_and_missing_ones_show_as_not_running() {
        let procs = vec![
            info("<1.1>", Some("node_sup"), 0),
            info("<1.7>", Some("db_manager"), 3),
            info("<1.9>", None, 0),
        ];
        let tree = build(&SERVER_TREE, &procs);
        assert_eq!(tree.pid.as_deref(), Some("<1.1>"));
        assert_eq!(tree.strategy, Some("one_for_one"));
        let kv = &tree.children[1];
        assert_eq!(
            (kv.name.as_str(), kv.strategy),
            ("kv_sup", Some("rest_for_one"))
        );
        assert_eq!(kv.status, "not running");
        let db = &kv.children[0];
        assert_eq!(
            (db.pid.as_deref(), db.restarts, db.mailbox),
            (Some("<1.7>"), 3, 2)
        );
        assert_eq!(names(&SERVER_TREE).len(), 10);
    }
}
