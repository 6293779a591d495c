//! Careless operators and oversized input through the command line: killing `node_sup`
//! stops the node, a node started with another member list is refused with one clear
//! error on both sides, oversized values are refused at once by the client and by the
//! server, the cookie comes from a file, and TLS between node processes refuses a
//! client whose certificate another CA signed.

mod cli_support;

use cli_support::{
    Cluster, Proc, READY_WITHIN, endpoints, free_ports, run_with, unique_cookie, wait_until,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

const OP: Duration = Duration::from_secs(90);

/// A directory of its own under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("paxoskv-{test}-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn killing_node_sup_stops_the_node_with_exit_1_and_the_others_serve() {
    let mut c = Cluster::start("kill-node-sup", 3);
    let all = c.all();
    assert_eq!(c.client(&all, &["write", "k", "before"], OP).ok(), "before");
    // The answer may or may not come back before the node stops.
    let _ = c.ctl(1, &["kill", "node_sup"]);
    let status = c.nodes[0].wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{status:?}");
    assert_eq!(
        c.client(&c.some(&[2, 3]), &["write", "k", "after"], OP)
            .ok(),
        "after"
    );
}

#[test]
fn a_node_with_another_member_list_is_refused_with_one_clear_error_on_both_sides() {
    let dir = TempDir::new("members");
    let cookie = unique_cookie("members");
    let ports = free_ports(3);
    let names = ["s1", "s2", "s3"];
    let members: Vec<(String, u16)> = names.iter().map(|n| n.to_string()).zip(ports).collect();
    let two = endpoints(&members[..2]);
    let three = endpoints(&members);
    let env = [("PAXOSKV_COOKIE", cookie.as_str()), ("RUST_LOG", "warn")];
    let logs: Vec<PathBuf> = names
        .iter()
        .map(|n| dir.0.join(format!("{n}.log")))
        .collect();
    let mut nodes: Vec<Proc> = (0..3)
        .map(|i| {
            let listen = format!("127.0.0.1:{}", members[i].1);
            let peers = if i < 2 { &two } else { &three };
            Proc::spawn_logging(
                &[
                    "node", "--name", names[i], "--listen", &listen, "--peers", peers,
                ],
                &env,
                &logs[i],
            )
        })
        .collect();
    for node in &mut nodes {
        node.wait_for_line(READY_WITHIN, |l| l.starts_with("ready"));
    }
    // An operation on s3 makes it reach for s1 and s2, its peers: they refuse it, and
    // it them. The operation cannot be done (s3 has no majority of its own).
    let third = endpoints(&members[2..]);
    let out = run_with(
        &[
            "client",
            "--servers",
            &third,
            "--timeout",
            "3",
            "write",
            "k",
            "lost",
        ],
        None,
        OP,
        &[("PAXOSKV_COOKIE", cookie.as_str())],
    );
    assert_eq!(out.code(), 1, "{}", out.stderr);
    wait_until(
        Duration::from_secs(60),
        "refusals logged on both sides",
        || {
            let (s1, s3) = (read(&logs[0]), read(&logs[2]));
            (s1.contains("another member list") && s3.contains("another member list")).then_some(())
        },
    );
    let s1 = read(&logs[0]);
    let s3 = read(&logs[2]);
    assert!(s1.contains("start every node with the same list"), "{s1}");
    assert!(
        s3.contains("[s1@127.0.0.1,s2@127.0.0.1,s3@127.0.0.1]"),
        "{s3}"
    );
    // One line per cause per interval, not one per attempt.
    let lines = s1
        .lines()
        .filter(|l| l.contains("another member list"))
        .count();
    assert!(lines <= 2, "{lines} lines:\n{s1}");
    // The two that agree serve; no node stopped for it.
    let cluster_env = [("PAXOSKV_COOKIE", cookie.as_str())];
    let out = run_with(
        &["client", "--servers", &two, "write", "k", "v"],
        None,
        OP,
        &cluster_env,
    );
    assert_eq!(out.ok(), "v");
    for node in &mut nodes {
        assert!(node.try_exit_status().is_none(), "a node stopped");
    }
}

#[test]
fn oversized_values_are_refused_at_once_by_the_client_and_by_the_server() {
    let c = Cluster::start("oversized", 3);
    let all = c.all();
    // On the command line: the client's own limit.
    let out = c.client(
        &all,
        &["--max-value", "1000", "write", "k", &"v".repeat(2000)],
        OP,
    );
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("the value is 2000 bytes, over the limit of 1000 bytes (--max-value)"),
        "{}",
        out.stderr
    );
    // Through --pipe, over the default limit of 2 MiB: refused by the client...
    let big = "v".repeat(2 * 1024 * 1024 + 1);
    let line = format!("write big {big}\n");
    let pipe = |extra: &[&str]| {
        let mut args = vec!["client", "--servers", &all, "--pipe"];
        args.extend_from_slice(extra);
        run_with(&args, Some(&line), OP, &c.cookie_env())
    };
    let out = pipe(&[]);
    assert!(
        out.stdout.contains("over the limit of 2097152 bytes"),
        "{}",
        out.stderr
    );
    // ...and, from a client that allows more, by the server.
    let out = pipe(&["--max-value", "8000000"]);
    assert!(
        out.stdout.contains("over the limit of 2097152 bytes"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("may still take effect"));
    // Nothing was written.
    assert_eq!(c.client(&all, &["read", "big"], OP).ok(), "");
}

#[test]
fn the_cookie_comes_from_a_file_and_the_flag_warns() {
    let c = Cluster::start("cookie-file", 1);
    let dir = TempDir::new("cookie-file");
    let file = dir.0.join("cookie");
    std::fs::write(&file, format!("{}\n", c.cookie)).expect("write the cookie file");
    let path = file.to_string_lossy().to_string();
    let all = c.all();
    let out = run_with(
        &[
            "client",
            "--servers",
            &all,
            "--cookie-file",
            &path,
            "write",
            "k",
            "v",
        ],
        None,
        OP,
        &[],
    );
    assert_eq!(out.ok(), "v");
    let out = run_with(
        &[
            "client",
            "--servers",
            &all,
            "--cookie",
            &c.cookie,
            "read",
            "k",
        ],
        None,
        OP,
        &[],
    );
    assert_eq!(out.ok(), "v");
    assert!(
        out.stderr.contains("--cookie shows the secret"),
        "{}",
        out.stderr
    );
}

/// Writes a CA certificate and, per name, a certificate for 127.0.0.1 signed by it with
/// its key: `dir/{name}.crt`, `dir/{name}.key`, `dir/ca.crt`.
fn make_certs(dir: &Path, ca_file: &str, names: &[&str]) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let ca = rcgen::CertifiedIssuer::self_signed(params, ca_key).expect("CA");
    std::fs::write(dir.join(ca_file), ca.pem()).expect("write CA");
    for name in names {
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &ca).expect("signed");
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).expect("write cert");
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).expect("write key");
    }
}

#[test]
fn tls_between_node_processes_refuses_a_certificate_from_another_ca() {
    let dir = TempDir::new("tls");
    make_certs(&dir.0, "ca.crt", &["s1", "s2", "good"]);
    make_certs(&dir.0, "other-ca.crt", &["bad"]);
    let file = |f: &str| dir.0.join(f).to_string_lossy().to_string();
    let tls = |who: &str| {
        vec![
            "--tls-cert".to_string(),
            file(&format!("{who}.crt")),
            "--tls-key".to_string(),
            file(&format!("{who}.key")),
            "--tls-ca".to_string(),
            file("ca.crt"),
        ]
    };
    let cookie = unique_cookie("tls");
    let env = [("PAXOSKV_COOKIE", cookie.as_str()), ("RUST_LOG", "warn")];
    let ports = free_ports(2);
    let members: Vec<(String, u16)> = ["s1", "s2"]
        .iter()
        .map(|n| n.to_string())
        .zip(ports)
        .collect();
    let peers = endpoints(&members);
    let mut nodes: Vec<Proc> = members
        .iter()
        .map(|(name, port)| {
            let listen = format!("127.0.0.1:{port}");
            let mut args: Vec<String> = [
                "node", "--name", name, "--listen", &listen, "--peers", &peers,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(tls(name));
            args.push("--tls-require-client-cert".into());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Proc::spawn_logging(&args, &env, &dir.0.join(format!("{name}.log")))
        })
        .collect();
    for node in &mut nodes {
        node.wait_for_line(READY_WITHIN, |l| l.starts_with("ready"));
    }
    let client = |who: &str, op: &[&str]| {
        let mut args: Vec<String> = ["client", "--servers", &peers, "--timeout", "5"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(tls(who));
        args.extend(op.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_with(&args, None, OP, &env)
    };
    assert_eq!(client("good", &["write", "k", "over tls"]).ok(), "over tls");
    assert_eq!(client("good", &["read", "k"]).ok(), "over tls");
    // Without TLS, and with a certificate from another CA: nothing gets through.
    let plain = run_with(
        &["client", "--servers", &peers, "--timeout", "3", "read", "k"],
        None,
        OP,
        &env,
    );
    assert_ne!(plain.code(), 0, "{}", plain.stdout);
    let bad = client("bad", &["write", "k", "intruder"]);
    assert_ne!(bad.code(), 0, "{}", bad.stdout);
    assert!(bad.stderr.contains("TLS"), "{}", bad.stderr);
    let log = read(&dir.0.join("s1.log")) + &read(&dir.0.join("s2.log"));
    assert!(log.contains("TLS failed"), "{log}");
    assert_eq!(client("good", &["read", "k"]).ok(), "over tls");
}
