//! End-to-end tests of the command line on real `paxoskv node` processes over TCP:
//! single-op and `--pipe` clients, `ctl status`, cookies, bad input, the `cluster`
//! command (served and scripted shell) and `bench --json`.

mod cli_support;

use cli_support::{
    Cluster, Proc, READY_WITHIN, free_port_block, free_ports, hash_chain, json_lines, run,
    run_with, unique_cookie,
};
use std::collections::HashSet;
use std::time::Duration;

const OP: Duration = Duration::from_secs(60);

#[test]
fn single_op_clients_write_read_and_chain_write_hash_then_nodes_stop_on_sigterm() {
    let mut c = Cluster::start("single", 3);
    let all = c.all();
    assert_eq!(
        c.client(&all, &["write", "k", "hello world"], OP).ok(),
        "hello world"
    );
    assert_eq!(c.client(&all, &["read", "k"], OP).ok(), "hello world");
    // Through another single node, the same value: every read goes through Paxos.
    assert_eq!(
        c.client(&c.some(&[3]), &["read", "k"], OP).ok(),
        "hello world"
    );
    assert_eq!(c.client(&all, &["read", "never-written"], OP).ok(), "");
    // write-hash returns the previous value: "" -> "0" -> "1" gives these.
    assert_eq!(c.client(&all, &["write-hash", "h", "0"], OP).ok(), "");
    assert_eq!(
        c.client(&all, &["write-hash", "h", "1"], OP).ok(),
        "14788753"
    );
    assert_eq!(
        c.client(&all, &["write-hash", "h", "2"], OP).ok(),
        "91417210"
    );
    assert_eq!(c.client(&all, &["read", "h"], OP).ok(), "107295499");
    // A value that looks like a flag is a value.
    assert_eq!(c.client(&all, &["write", "neg", "-5"], OP).ok(), "-5");
    // SIGTERM and SIGINT: orderly shutdown, exit 0.
    c.nodes[0].signal("TERM");
    assert_eq!(
        c.nodes[0].wait_exit(Duration::from_secs(20)).code(),
        Some(0)
    );
    c.nodes[1].signal("INT");
    assert_eq!(
        c.nodes[1].wait_exit(Duration::from_secs(20)).code(),
        Some(0)
    );
}

#[test]
fn pipe_clients_in_parallel_each_on_its_own_key() {
    let c = Cluster::start("pipe", 3);
    let all = c.all();
    let values: Vec<String> = (0..8).map(|i| i.to_string()).collect();
    let value_refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let expected = hash_chain(&value_refs);
    // Three client processes at once, each with its whole input at the start.
    let mut clients: Vec<Proc> = (0..3).map(|_| c.pipe_proc(&all, "30")).collect();
    for (client, proc) in clients.iter_mut().enumerate() {
        let key = format!("key{client}");
        let mut input: String = values
            .iter()
            .map(|v| format!("write-hash {key} {v}\n"))
            .collect();
        input.push_str(&format!(
            "read {key}\nnonsense here\nwrite {key} \nread {key}"
        ));
        proc.send(&input);
        proc.close_stdin();
    }
    let outs: Vec<String> = clients
        .iter_mut()
        .map(|proc| {
            let lines: Vec<String> = (0..values.len() + 4)
                .map(|_| proc.wait_for_line(OP, |_| true))
                .collect();
            assert_eq!(
                proc.wait_exit(OP).code(),
                Some(0),
                "the pipe ends with its input"
            );
            lines.join("\n")
        })
        .collect();
    let mut client_ids = HashSet::new();
    for (client, out) in outs.iter().enumerate() {
        let key = format!("key{client}");
        let lines = json_lines(out);
        assert_eq!(lines.len(), values.len() + 4, "{out}");
        let id = lines[0]["client"].as_u64().expect("client id");
        client_ids.insert(id);
        for (i, v) in values.iter().enumerate() {
            let l = &lines[i];
            assert_eq!(l["op"], "write-hash");
            assert_eq!(l["key"], key.as_str());
            assert_eq!(l["value"], v.as_str());
            assert_eq!(l["ok"], true, "{l}");
            assert_eq!(l["result"], expected[i].as_str(), "{l}");
            assert_eq!(l["client"].as_u64(), Some(id));
            let (call, ret) = (l["call"].as_u64(), l["return"].as_u64());
            assert!(call.is_some() && ret >= call, "{l}");
        }
        let n = values.len();
        let last = kv_app::phash2::write_hash_value(&expected[n - 1], &values[n - 1]);
        assert_eq!(lines[n]["op"], "read");
        assert_eq!(lines[n]["result"], last.as_str());
        assert!(lines[n].get("value").is_none(), "reads carry no value");
        assert_eq!(lines[n + 1]["ok"], false);
        assert_eq!(lines[n + 1]["line"], "nonsense here");
        assert!(
            lines[n + 1]["error"]
                .as_str()
                .is_some_and(|e| e.contains("nonsense"))
        );
        // "write k " writes the empty string.
        assert_eq!(
            (&lines[n + 2]["value"], &lines[n + 2]["result"]),
            (&"".into(), &"".into())
        );
        assert_eq!(lines[n + 3]["result"], "");
        // Each call starts after the previous return: one at a time, in order.
        for w in lines.windows(2) {
            if let (Some(ret), Some(call)) = (w[0]["return"].as_u64(), w[1]["call"].as_u64()) {
                assert!(call >= ret);
            }
        }
    }
    assert_eq!(client_ids.len(), 3, "client ids must differ");
}

#[test]
fn ctl_status_reports_the_contract_fields() {
    let c = Cluster::start("status", 3);
    let all = c.all();
    for i in 0..5 {
        c.client(&all, &["write", &format!("k{i}"), "v"], OP).ok();
    }
    for node in 1..=3 {
        // Replicas learn the last writes shortly after the client is answered.
        let s = cli_support::wait_until(Duration::from_secs(30), "all keys applied", || {
            let s = c.status(node);
            (s["kv"]["keys"].as_u64() == Some(5)).then_some(s)
        });
        assert_eq!(s["node"], format!("s{node}@127.0.0.1"));
        let max = s["paxos"]["max"].as_u64().expect("paxos.max");
        let min = s["paxos"]["min"].as_u64().expect("paxos.min");
        assert!(max >= 5 && min <= max + 1, "{s}");
        assert!(s["paxos"]["held"].is_u64());
        assert!(s["kv"]["applied"].as_u64().is_some_and(|a| a >= 5), "{s}");
        assert_eq!(s["faults"]["deaf"], false);
        assert_eq!(s["faults"]["drop"], 0.0);
        assert!(s["faults"]["allow"].is_null());
        let procs = s["processes"].as_array().expect("processes");
        for p in procs {
            assert!(p["pid"].is_string() && p["mailbox"].is_u64() && p["restarts"].is_u64());
            assert!(p.get("name").is_some());
        }
        let names: HashSet<&str> = procs.iter().filter_map(|p| p["name"].as_str()).collect();
        for needed in ["kv_server", "db_manager", "kv_sup"] {
            assert!(names.contains(needed), "{needed} missing from {names:?}");
        }
    }
    // Faults show up in status.
    assert_eq!(c.ctl(2, &["deaf"]).ok(), "ok");
    assert_eq!(c.ctl(2, &["unreliable", "0.3"]).ok(), "ok");
    assert_eq!(c.ctl(2, &["allow", "s1,s2"]).ok(), "ok");
    let s = c.status(2);
    assert_eq!(s["faults"]["deaf"], true);
    assert_eq!(s["faults"]["drop"], 0.3);
    assert_eq!(
        s["faults"]["allow"],
        serde_json::json!(["s1@127.0.0.1", "s2@127.0.0.1"])
    );
    for undo in ["listen", "reliable", "allow-all"] {
        assert_eq!(c.ctl(2, &[undo]).ok(), "ok");
    }
    let s = c.status(2);
    assert_eq!(
        (&s["faults"]["deaf"], &s["faults"]["drop"]),
        (&false.into(), &0.0.into())
    );
    assert!(s["faults"]["allow"].is_null());
    // A refusal: its reason on stderr, exit 1.
    let out = c.ctl(2, &["kill", "no_such_process"]);
    assert_eq!(out.code(), 1);
    assert!(out.stderr.contains("no_such_process"), "{}", out.stderr);
}

/// Exactly one line on stderr, and a non-zero exit.
fn assert_one_line_failure(out: &cli_support::Out, mentions: &str) {
    assert_ne!(out.code(), 0, "should fail: {out:?}");
    assert_eq!(
        out.stderr.trim_end().lines().count(),
        1,
        "stderr: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains(mentions),
        "expected '{mentions}' in: {}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "stdout: {}", out.stdout);
}

#[test]
fn bad_input_gets_one_line_on_stderr_and_the_nodes_keep_serving() {
    let c = Cluster::start("bad-input", 3);
    let all = c.all();
    let within = Duration::from_secs(30);
    let cookie = c.cookie.as_str();
    assert_one_line_failure(&run(&["frobnicate"], None, within), "frobnicate");
    assert_one_line_failure(
        &run(
            &[
                "node", "--name", "s9", "--listen", "nonsense", "--peers", &all,
            ],
            None,
            within,
        ),
        "nonsense",
    );
    assert_one_line_failure(
        &run(
            &["client", "--servers", "s1=127.0.0.1:notaport", "read", "k"],
            None,
            within,
        ),
        "notaport",
    );
    assert_one_line_failure(&c.client(&all, &["write", "k"], within), "VALUE");
    assert_one_line_failure(&c.client(&all, &["delete", "k"], within), "delete");
    assert_one_line_failure(&c.client(&all, &[], within), "missing operation");
    assert_one_line_failure(
        &run_with(
            &["ctl", "--node", &c.some(&[1]), "frobnicate"],
            None,
            within,
            &[("PAXOSKV_COOKIE", cookie)],
        ),
        "frobnicate",
    );
    assert_one_line_failure(
        &run_with(
            &["ctl", "--node", &c.some(&[1]), "unreliable", "7"],
            None,
            within,
            &[("PAXOSKV_COOKIE", cookie)],
        ),
        "7",
    );
    // A node that is not there: the client times out and says so.
    let nobody = format!("s9=127.0.0.1:{}", free_ports(1)[0]);
    let out = c.client(&nobody, &["--timeout", "2", "read", "k"], within);
    assert_one_line_failure(&out, "timeout");
    assert_eq!(out.code(), 1);
    assert!(out.stderr.contains("s9@127.0.0.1"), "{}", out.stderr);
    // A port already taken by a node.
    let (_, port) = &c.members[0];
    let taken = format!("127.0.0.1:{port}");
    let out = run_with(
        &["node", "--name", "s9", "--listen", &taken],
        None,
        within,
        &[("PAXOSKV_COOKIE", cookie)],
    );
    assert_one_line_failure(&out, &taken);
    // Help explains itself.
    let help = run(&["client", "--help"], None, within);
    assert!(
        help.status.success() && help.stdout.contains("--pipe"),
        "{help:?}"
    );
    // And the cluster still serves.
    assert_eq!(
        c.client(&all, &["write", "after", "bad input"], OP).ok(),
        "bad input"
    );
    assert_eq!(c.client(&all, &["read", "after"], OP).ok(), "bad input");
}

#[test]
fn a_wrong_cookie_is_refused_and_the_nodes_keep_serving_good_clients() {
    let c = Cluster::start("cookie", 3);
    let all = c.all();
    let bad = run_with(
        &["client", "--servers", &all, "--timeout", "20", "read", "k"],
        None,
        Duration::from_secs(40),
        &[("PAXOSKV_COOKIE", "not-the-cookie")],
    );
    assert_eq!(bad.code(), 1);
    assert_eq!(bad.stderr.trim_end().lines().count(), 1, "{}", bad.stderr);
    assert!(bad.stderr.contains("wrong cookie"), "{}", bad.stderr);
    // A pipe prints the refused operation's line, then stops with exit 1.
    let piped = run_with(
        &["client", "--servers", &all, "--timeout", "20", "--pipe"],
        Some("read k\nread k\n"),
        Duration::from_secs(40),
        &[("PAXOSKV_COOKIE", "not-the-cookie")],
    );
    assert_eq!(piped.code(), 1, "{piped:?}");
    let lines = json_lines(&piped.stdout);
    assert_eq!(lines.len(), 1, "{piped:?}");
    assert_eq!(
        (&lines[0]["op"], &lines[0]["ok"], &lines[0]["error"]),
        (
            &"read".into(),
            &false.into(),
            &"connection refused: wrong cookie?".into()
        )
    );
    assert!(piped.stderr.contains("wrong cookie"), "{}", piped.stderr);
    let ctl = run_with(
        &["ctl", "--node", &c.some(&[1]), "deaf"],
        None,
        Duration::from_secs(40),
        &[("PAXOSKV_COOKIE", "not-the-cookie")],
    );
    assert_eq!(ctl.code(), 1);
    assert!(ctl.stderr.contains("wrong cookie"), "{}", ctl.stderr);
    assert_eq!(
        c.status(1)["faults"]["deaf"],
        false,
        "the refused ctl did nothing"
    );
    assert_eq!(c.client(&all, &["write", "k", "good"], OP).ok(), "good");
    assert_eq!(c.client(&all, &["read", "k"], OP).ok(), "good");
}

#[test]
fn the_cookie_file_is_made_on_first_use_and_used_by_nodes() {
    let home = std::env::temp_dir().join(format!("paxoskv-home-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&home).expect("temporary home");
    struct RemoveDir(std::path::PathBuf);
    impl Drop for RemoveDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = RemoveDir(home.clone());
    let home_str = home.to_str().expect("utf-8 path");
    let env = [("HOME", home_str)];
    let port = free_ports(1)[0];
    let server = format!("s1=127.0.0.1:{port}");
    let nobody = run_with(
        &[
            "client",
            "--servers",
            &server,
            "--timeout",
            "0.5",
            "read",
            "k",
        ],
        None,
        Duration::from_secs(30),
        &env,
    );
    assert_eq!(nobody.code(), 1, "{nobody:?}");
    let path = home.join(".paxoskv.cookie");
    let cookie = std::fs::read_to_string(&path).expect("cookie file made");
    assert_eq!(cookie.len(), 20);
    assert!(
        cookie.chars().all(|c| c.is_ascii_alphanumeric()),
        "{cookie}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // A node started without --cookie uses the file: a client with its text is let in.
    let listen = format!("127.0.0.1:{port}");
    let mut node = Proc::spawn_with(&["node", "--name", "s1", "--listen", &listen], false, &env);
    node.wait_for_line(READY_WITHIN, |l| l.starts_with("ready s1@127.0.0.1"));
    let out = run_with(
        &["client", "--servers", &server, "write", "k", "v"],
        None,
        OP,
        &[("PAXOSKV_COOKIE", &cookie)],
    );
    assert_eq!(out.ok(), "v");
    assert_eq!(
        std::fs::read_to_string(&path).expect("still there"),
        cookie,
        "not remade"
    );
    // PAXOSKV_COOKIE comes before the file.
    let out = run_with(
        &["client", "--servers", &server, "read", "k"],
        None,
        OP,
        &[("HOME", home_str), ("PAXOSKV_COOKIE", &cookie)],
    );
    assert_eq!(out.ok(), "v");
}

#[test]
fn cluster_without_a_terminal_prints_ready_lines_serves_and_stops_on_sigterm() {
    let base = free_port_block(3);
    let cookie = unique_cookie("cluster");
    let base_arg = base.to_string();
    let mut cluster = Proc::spawn_with(
        &["cluster", "--nodes", "3", "--base-port", &base_arg],
        false,
        &[("PAXOSKV_COOKIE", &cookie)],
    );
    for i in 1..=3u16 {
        let line = cluster.wait_for_line(READY_WITHIN, |_| true);
        assert_eq!(line, format!("ready s{i}@127.0.0.1 127.0.0.1:{}", base + i));
    }
    assert_eq!(
        cluster.wait_for_line(READY_WITHIN, |_| true),
        "cluster ready"
    );
    let observer = cluster.wait_for_line(READY_WITHIN, |_| true);
    assert!(
        observer.starts_with("observer http://127.0.0.1:") && observer.contains("/#token="),
        "{observer}"
    );
    let servers = (1..=3u16)
        .map(|i| format!("s{i}=127.0.0.1:{}", base + i))
        .collect::<Vec<_>>()
        .join(",");
    let client = |args: &[&str]| {
        let mut all = vec!["client", "--servers", &servers];
        all.extend_from_slice(args);
        run_with(&all, None, OP, &[("PAXOSKV_COOKIE", &cookie)])
    };
    assert_eq!(client(&["write", "k", "v"]).ok(), "v");
    assert_eq!(client(&["read", "k"]).ok(), "v");
    cluster.signal("TERM");
    assert_eq!(cluster.wait_exit(Duration::from_secs(20)).code(), Some(0));
}

#[test]
fn cluster_shell_runs_a_script_from_stdin() {
    let base = free_port_block(3);
    let cookie = unique_cookie("shell");
    let base_arg = base.to_string();
    let mut cluster = Proc::spawn_with(
        &["cluster", "--base-port", &base_arg, "--shell"],
        true,
        &[("PAXOSKV_COOKIE", &cookie)],
    );
    cluster.wait_for_line(READY_WITHIN, |l| l == "cluster ready");
    // The observer's address comes last, before the shell reads its first command.
    cluster.wait_for_line(READY_WITHIN, |l| {
        l.starts_with("observer http://127.0.0.1:")
    });
    assert_eq!(ask(&mut cluster, "write k hello world"), "\"hello world\"");
    assert_eq!(ask(&mut cluster, "read k"), "\"hello world\"");
    assert_eq!(ask(&mut cluster, "write-hash h 0"), "\"\" (previous value)");
    assert_eq!(
        ask(&mut cluster, "write-hash h 1"),
        "\"14788753\" (previous value)"
    );
    assert_eq!(ask(&mut cluster, "deaf s2"), "ok");
    let first = ask(&mut cluster, "status");
    let status = [
        first,
        cluster.wait_for_line(OP, |_| true),
        cluster.wait_for_line(OP, |_| true),
    ];
    assert!(
        status[1].starts_with("s2@127.0.0.1") && status[1].contains("deaf"),
        "{status:?}"
    );
    for (line, name) in [(&status[0], "s1@127.0.0.1"), (&status[2], "s3@127.0.0.1")] {
        assert!(
            line.starts_with(name) && !line.contains("deaf"),
            "{status:?}"
        );
    }
    assert_eq!(ask(&mut cluster, "listen s2"), "ok");
    assert_eq!(ask(&mut cluster, "kill s1 db_manager"), "ok");
    assert!(ask(&mut cluster, "kill s7 db_manager").contains("unknown node 's7'"));
    assert!(ask(&mut cluster, "frobnicate").contains("unknown command"));
    // The data survives the DB manager's restart.
    assert_eq!(ask(&mut cluster, "read k"), "\"hello world\"");
    cluster.send("quit\n");
    assert_eq!(cluster.wait_exit(Duration::from_secs(20)).code(), Some(0));
}

/// Sends one command line to the shell and returns the first line it answers.
fn ask(shell: &mut Proc, command: &str) -> String {
    shell.send(&format!("{command}\n"));
    shell.wait_for_line(OP, |_| true)
}

#[test]
fn bench_json_has_the_documented_shape() {
    let c = Cluster::start("bench", 3);
    let all = c.all();
    let out = run_with(
        &[
            "bench",
            "--servers",
            &all,
            "--clients",
            "2",
            "--duration",
            "1",
            "--keys",
            "50",
            "--value-size",
            "8",
            "--json",
        ],
        None,
        OP,
        &[("PAXOSKV_COOKIE", &c.cookie)],
    );
    let text = out.ok();
    assert_eq!(text.lines().count(), 1, "{text}");
    let r: serde_json::Value = serde_json::from_str(&text).expect("one JSON object");
    assert_eq!(r["clients"], 2);
    assert_eq!(
        (&r["keys"], &r["value_size"], &r["read_ratio"]),
        (&50.into(), &8.into(), &0.5.into())
    );
    assert!(r["duration_s"].as_f64().is_some_and(|d| d >= 1.0), "{r}");
    let ops = r["ops"].as_u64().expect("ops");
    assert!(ops > 0, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    let (reads, writes) = (r["read"]["count"].as_u64(), r["write"]["count"].as_u64());
    assert_eq!(reads.zip(writes).map(|(a, b)| a + b), Some(ops));
    assert!(r["throughput"].as_f64().is_some_and(|t| t > 0.0));
    for kind in ["read", "write"] {
        let p: Vec<u64> = ["p50_us", "p90_us", "p99_us", "p999_us"]
            .iter()
            .map(|f| r[kind][f].as_u64().expect("percentile"))
            .collect();
        assert!(p.windows(2).all(|w| w[0] <= w[1]), "{kind}: {p:?}");
    }
    assert!(r["cpu_user_s"].is_f64() && r["cpu_sys_s"].is_f64());
    // Reads only.
    let out = run_with(
        &[
            "bench",
            "--servers",
            &all,
            "--duration",
            "0.5",
            "--read-ratio",
            "1",
            "--json",
        ],
        None,
        OP,
        &[("PAXOSKV_COOKIE", &c.cookie)],
    );
    let r: serde_json::Value = serde_json::from_str(&out.ok()).expect("JSON");
    assert_eq!(r["write"]["count"], 0);
    assert!(r["read"]["count"].as_u64().is_some_and(|n| n > 0));
}
