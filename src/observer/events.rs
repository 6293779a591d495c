//! The event log: what changed between two successive looks at a node — process exits
//! and restarts, connections up and down, faults set and cleared, the node answering or
//! not — and leader changes across the cluster. The runtime has no event feed, so the
//! events are found by comparing snapshots (a change that is undone between two looks is
//! not seen, except through restart counts).

use super::reading::NodeReading;
use super::tree::{SERVER_TREE, names};
use kv_app::NodeStatus;
use serde::Serialize;
use std::collections::BTreeSet;

/// One entry of the log.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Event {
    /// Milliseconds since the observer started.
    pub at_ms: u64,
    /// The node it happened on (empty for cluster-wide events).
    pub node: String,
    /// `process`, `connection`, `fault`, `leader` or `node`.
    pub kind: &'static str,
    pub text: String,
}

/// What changed on one node between `before` and `after` (the same node).
pub fn node_changes(before: &NodeReading, after: &NodeReading) -> Vec<(&'static str, String)> {
    match (&before.status, &after.status) {
        (Ok(b), Ok(a)) => status_changes(b, a),
        (Err(_), Ok(_)) => vec![("node", "answers again".to_string())],
        (Ok(_), Err(e)) => vec![("node", format!("does not answer: {e}"))],
        (Err(_), Err(_)) => Vec::new(),
    }
}

fn status_changes(b: &NodeStatus, a: &NodeStatus) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for name in names(&SERVER_TREE) {
        let find = |s: &NodeStatus| {
            s.processes
                .iter()
                .find(|p| p.name.as_deref() == Some(name))
                .cloned()
        };
        match (find(b), find(a)) {
            (Some(old), Some(new)) if old.pid != new.pid => out.push((
                "process",
                format!(
                    "{name} restarted: {} exited, {} started (restarts {})",
                    old.pid, new.pid, new.restarts
                ),
            )),
            (Some(old), Some(new)) if new.restarts > old.restarts => out.push((
                "process",
                format!("{name} restarted (restarts {})", new.restarts),
            )),
            (Some(old), None) => out.push(("process", format!("{name} ({}) exited", old.pid))),
            (None, Some(new)) => out.push(("process", format!("{name} ({}) started", new.pid))),
            _ => {}
        }
    }
    let (was, is): (BTreeSet<&String>, BTreeSet<&String>) =
        (b.connected.iter().collect(), a.connected.iter().collect());
    for n in is.difference(&was) {
        out.push(("connection", format!("connection up with {n}")));
    }
    for n in was.difference(&is) {
        out.push(("connection", format!("connection down with {n}")));
    }
    let (fb, fa) = (&b.faults, &a.faults);
    if fb.deaf != fa.deaf {
        out.push((
            "fault",
            if fa.deaf { "deaf" } else { "listening" }.to_string(),
        ));
    }
    if fb.drop != fa.drop {
        out.push((
            "fault",
            if fa.drop > 0.0 {
                format!("unreliable: drops {:.0}% of messages", fa.drop * 100.0)
            } else {
                "reliable".to_string()
            },
        ));
    }
    if fb.allow != fa.allow {
        out.push((
            "fault",
            match &fa.allow {
                Some(list) => format!("partition: only {}", list.join(", ")),
                None => "partition lifted: all nodes allowed".to_string(),
            },
        ));
    }
    if b.paxos.alive != a.paxos.alive {
        out.push((
            "process",
            if a.paxos.alive {
                "Paxos is up"
            } else {
                "Paxos is down"
            }
            .to_string(),
        ));
    }
    out
}

/// The cluster's leader as the nodes that answer report it, with whether it answers.
pub fn leader(readings: &[NodeReading]) -> Option<String> {
    readings
        .iter()
        .filter_map(NodeReading::status)
        .find_map(|s| s.paxos.leader.clone())
}

/// Every change from `before` to `after` (the same members in the same order).
pub fn changes(before: &[NodeReading], after: &[NodeReading], at_ms: u64) -> Vec<Event> {
    let mut out: Vec<Event> = before
        .iter()
        .zip(after)
        .flat_map(|(b, a)| {
            node_changes(b, a).into_iter().map(|(kind, text)| Event {
                at_ms,
                node: a.member.name.clone(),
                kind,
                text,
            })
        })
        .collect();
    let (lb, la) = (leader(before), leader(after));
    if lb != la && la.is_some() {
        out.push(Event {
            at_ms,
            node: String::new(),
            kind: "leader",
            text: format!(
                "leader is now {}",
                la.as_deref().unwrap_or("nobody")
            ),
        });
    }
    let answering = |rs: &[NodeReading], name: &str| {
        rs.iter()
            .any(|r| r.member.name == name && r.status.is_ok())
    };
    if let Some(l) = &la
        && lb == la
        && answering(before, l)
        && !answering(after, l)
    {
        out.push(Event {
            at_ms,
            node: String::new(),
            kind: "leader",
            text: format!("the leader {l} does not answer"),
        });
    }
    out
}
