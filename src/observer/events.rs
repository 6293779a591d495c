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
            // Seen between its exit and its restart by an earlier look.
            (None, Some(new)) if new.restarts > 0 => out.push((
                "process",
                format!(
                    "{name} restarted: {} started (restarts {})",
                    new.pid, new.restarts
                ),
            )),
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
            text: format!("leader is now {}", la.as_deref().unwrap_or("nobody")),
        });
    }
    let answering = |rs: &[NodeReading], name: &str| {
        rs.iter().any(|r| r.member.name == name && r.status.is_ok())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observer::reading::Member;
    use serde_json::json;

    fn status(db_pid: &str, restarts: u32, connected: &[&str], deaf: bool) -> NodeStatus {
        serde_json::from_value(json!({
            "node": "s1@h",
            "connected": connected,
            "paxos": {"max": 1, "min": 1, "held": 0, "alive": true, "leader": "s1@h"},
            "kv": {"keys": 0, "applied": 0, "held_results": 0},
            "faults": {"deaf": deaf, "drop": 0.0, "allow": null},
            "traffic": {"sent": 0, "received": 0, "dropped_in": 0, "dropped_out": 0,
                        "undeliverable": 0, "processes": 2},
            "processes": [
                {"pid": "<s1@h.1.1>", "name": "node_sup", "mailbox": 0, "restarts": 0, "trap_exit": true},
                {"pid": db_pid, "name": "db_manager", "mailbox": 0, "restarts": restarts, "trap_exit": false},
            ],
        }))
        .expect("a status")
    }

    fn reading(status: Result<NodeStatus, String>) -> NodeReading {
        NodeReading {
            member: Member {
                name: "s1@h".into(),
                addr: ([127, 0, 0, 1], 1).into(),
            },
            status,
        }
    }

    #[test]
    fn restarts_connections_and_faults_become_events() {
        let before = reading(Ok(status("<s1@h.7.1>", 0, &["s2@h"], false)));
        let after = reading(Ok(status("<s1@h.9.1>", 1, &["s3@h"], true)));
        let texts: Vec<(&str, String)> = node_changes(&before, &after);
        assert_eq!(
            texts,
            vec![
                (
                    "process",
                    "db_manager restarted: <s1@h.7.1> exited, <s1@h.9.1> started (restarts 1)"
                        .to_string()
                ),
                ("connection", "connection up with s3@h".to_string()),
                ("connection", "connection down with s2@h".to_string()),
                ("fault", "deaf".to_string()),
            ]
        );
        assert!(
            node_changes(&after, &after).is_empty(),
            "no change, no event"
        );
        // A look that fell between the exit and the restart.
        let mut gone = status("<s1@h.7.1>", 0, &["s2@h"], false);
        gone.processes
            .retain(|p| p.name.as_deref() != Some("db_manager"));
        let gone = reading(Ok(gone));
        assert_eq!(
            node_changes(&before, &gone),
            vec![("process", "db_manager (<s1@h.7.1>) exited".to_string())]
        );
        let back = reading(Ok(status("<s1@h.9.1>", 1, &["s2@h"], false)));
        assert_eq!(
            node_changes(&gone, &back),
            vec![(
                "process",
                "db_manager restarted: <s1@h.9.1> started (restarts 1)".to_string()
            )]
        );
    }

    #[test]
    fn a_node_that_stops_answering_and_a_new_leader_are_told() {
        let up = reading(Ok(status("<s1@h.7.1>", 0, &[], false)));
        let down = reading(Err("no answer".into()));
        let events = changes(std::slice::from_ref(&up), std::slice::from_ref(&down), 5);
        let kinds: Vec<(&str, &str)> = events.iter().map(|e| (e.kind, e.text.as_str())).collect();
        assert_eq!(kinds[0], ("node", "does not answer: no answer"));
        assert!(events.iter().all(|e| e.at_ms == 5));
        let back = changes(std::slice::from_ref(&down), std::slice::from_ref(&up), 6);
        assert!(
            back.iter()
                .any(|e| e.kind == "leader" && e.text == "leader is now s1@h")
        );
        assert!(
            back.iter()
                .any(|e| e.kind == "node" && e.text == "answers again")
        );
    }
}
