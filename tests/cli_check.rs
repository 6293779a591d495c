//! `paxoskv check FILE`: histories recorded by real `--pipe` clients against real nodes
//! check linearizable; hand-made bad histories do not; unreadable input is refused.

mod cli_support;

use cli_support::{Cluster, run};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn write_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("paxoskv-check-{}-{name}", std::process::id()));
    std::fs::write(&path, text).expect("write history");
    path
}

#[test]
fn recorded_pipe_histories_are_linearizable() {
    let c = Cluster::start("check", 3);
    // Two pipe clients in parallel on the same keys, then check their joint history.
    let input_a = "write a 1\nwrite-hash a x\nread a\nwrite b 2\nread b\nwrite-hash b y\n";
    let input_b = "read a\nwrite-hash a z\nread b\nwrite a 3\nread a\n";
    let mut a = c.pipe_proc(&c.all(), "20");
    let mut b = c.pipe_proc(&c.some(&[1]), "20");
    a.send(input_a);
    b.send(input_b);
    a.close_stdin();
    b.close_stdin();
    let mut lines = Vec::new();
    for (p, n) in [(&mut a, 6), (&mut b, 5)] {
        for _ in 0..n {
            let line = p.next_line(LONG).expect("one JSON line per operation");
            assert!(line.contains("\"ok\":true"), "{line}");
            lines.push(line);
        }
    }
    let history = lines.join("\n");
    let path = write_file("good.jsonl", &history);
    let out = run(&["check", path.to_str().expect("utf-8 path")], None, LONG);
    assert_eq!(out.code(), 0, "stdout {} stderr {}", out.stdout, out.stderr);
    assert_eq!(out.stdout.trim(), "linearizable");
}

#[test]
fn a_stale_read_is_not_linearizable() {
    let bad = [
        r#"{"client":1,"op":"write","key":"k","value":"a","ok":true,"result":"a","call":10,"return":20}"#,
        r#"{"client":1,"op":"write","key":"k","value":"b","ok":true,"result":"b","call":30,"return":40}"#,
        r#"{"client":2,"op":"read","key":"k","ok":true,"result":"a","call":50,"return":60}"#,
    ]
    .join("\n");
    let path = write_file("stale.jsonl", &bad);
    let out = run(&["check", path.to_str().expect("utf-8 path")], None, LONG);
    assert_eq!(out.code(), 1, "stdout {} stderr {}", out.stdout, out.stderr);
    assert!(
        out.stdout.starts_with("not linearizable: key k"),
        "{}",
        out.stdout
    );
}

#[test]
fn write_hash_uses_erlang_phash2() {
    // "" ++ "0" hashes to 14788753 in Erlang: a read of anything else is wrong.
    let good = [
        r#"{"client":1,"op":"write-hash","key":"h","value":"0","ok":true,"result":"","call":1,"return":2}"#,
        r#"{"client":1,"op":"read","key":"h","ok":true,"result":"14788753","call":3,"return":4}"#,
    ]
    .join("\n");
    let path = write_file("hash.jsonl", &good);
    let out = run(&["check", path.to_str().expect("utf-8 path")], None, LONG);
    assert_eq!(out.code(), 0, "{}", out.stdout);
    let bad = good.replace("14788753", "14788754");
    let path = write_file("hash-bad.jsonl", &bad);
    let out = run(&["check", path.to_str().expect("utf-8 path")], None, LONG);
    assert_eq!(out.code(), 1, "{}", out.stdout);
}

#[test]
fn unreadable_or_malformed_input_is_refused() {
    let out = run(&["check", "/nonexistent/history.jsonl"], None, LONG);
    assert_eq!(out.code(), 2);
    assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
    let path = write_file("malformed.jsonl", "{\"op\":\"read\"\nnot json\n");
    let out = run(&["check", path.to_str().expect("utf-8 path")], None, LONG);
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr.contains("line 1"),
        "names the line: {}",
        out.stderr
    );
}
