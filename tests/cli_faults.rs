//! End-to-end fault tests through the command line only: deaf and unreliable nodes
//! while clients run, a partition of a 5-node cluster, `kill -9` of a node, and a killed
//! DB manager restarted by its supervisor.

mod cli_support;

use cli_support::{Cluster, hash_chain, json_lines, wait_until};
use std::time::Duration;

const OP: Duration = Duration::from_secs(90);

/// Runs `scenario(mode)` as the tests `NAME::basic` and `NAME::distinguished`.
macro_rules! in_both_modes {
    ($($name:ident),*) => {$(
        mod $name {
            #[test]
            fn basic() {
                super::$name("basic")
            }

            #[test]
            fn distinguished() {
                super::$name("distinguished")
            }
        }
    )*};
}

in_both_modes!(
    deaf_and_unreliable_nodes_while_clients_run,
    a_partition_blocks_the_minority_until_allow_all
);

/// A fault counter of node i's status (`faults.dropped.WHAT`).
fn dropped(c: &Cluster, i: usize, what: &str) -> u64 {
    c.status(i)["faults"]["dropped"][what]
        .as_u64()
        .unwrap_or_else(|| panic!("status of node {i} has no faults.dropped.{what}"))
}

fn deaf_and_unreliable_nodes_while_clients_run(mode: &str) {
    let c = Cluster::start_in("deaf-unreliable", 3, mode);
    let all = c.all();
    let values: Vec<String> = (0..12).map(|i| format!("v{i}")).collect();
    let value_refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let expected = hash_chain(&value_refs);
    let mut clients: Vec<_> = (0..3).map(|_| c.pipe_proc(&all, "60")).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        let input: String = values
            .iter()
            .map(|v| format!("write-hash key{i} {v}\n"))
            .collect();
        client.send(&input);
        client.close_stdin();
    }
    // Faults while the clients run.
    assert_eq!(c.ctl(1, &["deaf"]).ok(), "ok");
    assert_eq!(c.ctl(2, &["unreliable"]).ok(), "ok");
    assert_eq!(c.status(2)["faults"]["drop"], 0.2);
    let mut lines: Vec<Vec<serde_json::Value>> = vec![Vec::new(); clients.len()];
    // Half of each client's operations under the faults...
    for (i, client) in clients.iter_mut().enumerate() {
        for _ in 0..values.len() / 2 {
            let line = client.wait_for_line(OP, |_| true);
            lines[i].extend(json_lines(&line));
        }
    }
    assert!(
        c.status(1)["traffic"]["dropped_in"]
            .as_u64()
            .is_some_and(|d| d > 0)
    );
    assert!(dropped(&c, 1, "deaf") > 0, "the deaf node heard everything");
    wait_until(OP, "the unreliable node loses a message", || {
        (dropped(&c, 2, "lost_in") + dropped(&c, 2, "lost_out") > 0).then_some(())
    });
    // ...the rest after they are lifted.
    assert_eq!(c.ctl(1, &["listen"]).ok(), "ok");
    assert_eq!(c.ctl(2, &["reliable"]).ok(), "ok");
    for (i, client) in clients.iter_mut().enumerate() {
        while lines[i].len() < values.len() {
            let line = client.wait_for_line(OP, |_| true);
            lines[i].extend(json_lines(&line));
        }
        assert_eq!(client.wait_exit(OP).code(), Some(0));
    }
    // Every operation completed, exactly once: each returned the previous link of the
    // chain.
    for (i, client_lines) in lines.iter().enumerate() {
        for (j, l) in client_lines.iter().enumerate() {
            assert_eq!(l["ok"], true, "client {i} op {j}: {l}");
            assert_eq!(l["key"], format!("key{i}"));
            assert_eq!(l["result"], expected[j].as_str(), "client {i} op {j}: {l}");
        }
    }
}

fn a_partition_blocks_the_minority_until_allow_all(mode: &str) {
    let c = Cluster::start_in("partition", 5, mode);
    for (node, allowed) in [
        (1, "s1,s2"),
        (2, "s1,s2"),
        (3, "s3,s4,s5"),
        (4, "s3,s4,s5"),
        (5, "s3,s4,s5"),
    ] {
        assert_eq!(c.ctl(node, &["allow", allowed]).ok(), "ok");
    }
    // A client bound to the minority gets no answer.
    let blocked = c.client(&c.some(&[1]), &["--timeout", "3", "write", "m", "1"], OP);
    assert_eq!(blocked.code(), 1, "{blocked:?}");
    assert!(blocked.stderr.contains("timeout"), "{}", blocked.stderr);
    assert!(dropped(&c, 1, "cut") > 0, "the partition cut nothing");
    // The majority serves, also through each of its nodes.
    assert_eq!(c.client(&c.some(&[3]), &["write", "q", "1"], OP).ok(), "1");
    assert_eq!(c.client(&c.some(&[5]), &["read", "q"], OP).ok(), "1");
    // A piped operation through the minority waits...
    let mut pipe = c.pipe_proc(&c.some(&[2]), "120");
    pipe.send("write m 2\n");
    assert!(
        pipe.next_line(Duration::from_secs(2)).is_none(),
        "the minority answered"
    );
    // ...and completes once the partition is healed.
    for node in 1..=5 {
        assert_eq!(c.ctl(node, &["allow-all"]).ok(), "ok");
    }
    let line = pipe.wait_for_line(OP, |_| true);
    let l = &json_lines(&line)[0];
    assert_eq!((&l["ok"], &l["result"]), (&true.into(), &"2".into()), "{l}");
    pipe.close_stdin();
    assert_eq!(pipe.wait_exit(OP).code(), Some(0));
    // The minority's nodes caught up: they serve the majority's write.
    assert_eq!(c.client(&c.some(&[1]), &["read", "q"], OP).ok(), "1");
}

#[test]
fn kill_9_of_one_node_leaves_the_others_serving() {
    let mut c = Cluster::start("kill9", 3);
    let all = c.all();
    assert_eq!(c.client(&all, &["write", "k", "before"], OP).ok(), "before");
    c.nodes[1].kill9();
    for i in 0..3 {
        let v = format!("after{i}");
        assert_eq!(c.client(&all, &["write", "k", &v], OP).ok(), v);
        assert_eq!(c.client(&all, &["read", "k"], OP).ok(), v);
    }
    assert_eq!(
        c.client(&c.some(&[1, 3]), &["write-hash", "h", "0"], OP)
            .ok(),
        ""
    );
    assert_eq!(
        c.client(&c.some(&[3]), &["write-hash", "h", "1"], OP).ok(),
        "14788753"
    );
}

#[test]
fn a_killed_db_manager_is_restarted_by_its_supervisor() {
    let c = Cluster::start("restart", 3);
    let all = c.all();
    assert_eq!(c.client(&all, &["write", "k", "kept"], OP).ok(), "kept");
    let db_manager = |status: &serde_json::Value| {
        status["processes"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "db_manager").cloned())
    };
    let before = db_manager(&c.status(1)).expect("db_manager runs");
    assert_eq!(before["restarts"], 0);
    assert_eq!(c.ctl(1, &["kill", "db_manager"]).ok(), "ok");
    let after = wait_until(Duration::from_secs(30), "db_manager restarted", || {
        db_manager(&c.status(1)).filter(|p| p["restarts"].as_u64().is_some_and(|r| r >= 1))
    });
    assert_ne!(after["pid"], before["pid"], "a new process");
    // The node still serves, with its data.
    assert_eq!(c.client(&c.some(&[1]), &["read", "k"], OP).ok(), "kept");
    assert_eq!(
        c.client(&c.some(&[1]), &["write", "k", "new"], OP).ok(),
        "new"
    );
}

/// `ctl paxos` asks a node's Paxos peer from outside; `ctl unreliable --model` sets the
/// loss model `status` then reports (and refuses a probability for mit's fixed rates).
#[test]
fn ctl_paxos_and_unreliable_models() {
    let c = Cluster::start_in("ctl-paxos", 3, "basic");
    assert_eq!(c.client(&c.all(), &["write", "k", "v"], OP).ok(), "v");
    let max: u64 = wait_until(OP, "node 1 learns the write", || {
        let out: serde_json::Value =
            serde_json::from_str(&c.ctl(1, &["paxos", "max"]).ok()).ok()?;
        let max = out["max"].as_u64()?;
        (max >= 1).then_some(max)
    });
    let status: serde_json::Value =
        serde_json::from_str(&c.ctl(1, &["paxos", "status", &max.to_string()]).ok()).expect("JSON");
    assert_eq!(status["status"]["state"], "decided", "{status}");
    let min: serde_json::Value =
        serde_json::from_str(&c.ctl(1, &["paxos", "min"]).ok()).expect("JSON");
    assert!(min["min"].as_u64().is_some_and(|m| m >= 1), "{min}");
    let messages: serde_json::Value =
        serde_json::from_str(&c.ctl(1, &["paxos", "messages"]).ok()).expect("JSON");
    assert!(
        messages["messages"]["node"]["received"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{messages}"
    );
    assert_eq!(c.ctl(2, &["unreliable", "--model", "mit"]).ok(), "ok");
    let faults = &c.status(2)["faults"];
    assert_eq!(
        (&faults["model"], &faults["drop"]),
        (&"mit".into(), &0.1.into())
    );
    assert_eq!(
        c.ctl(2, &["unreliable", "--model", "original", "0.3"]).ok(),
        "ok"
    );
    assert_eq!(c.status(2)["faults"]["model"], "original");
    let refused = c.ctl(2, &["unreliable", "--model", "mit", "0.3"]);
    assert_eq!(refused.code(), 2, "{refused:?}");
    assert_eq!(c.ctl(2, &["reliable"]).ok(), "ok");
}
