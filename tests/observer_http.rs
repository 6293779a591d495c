//! The observer's HTTP surface without a browser: three `paxoskv node` processes, one
//! with `--http`; `/api/status` is the `ctl status` JSON, `/metrics` is Prometheus text
//! with the documented families, a control needs the token (403 and no change without
//! it, done with it), requests naming another host are refused, the page and its assets
//! come from the binary, and an address beyond loopback needs `--http-public`.

mod cli_support;

use cli_support::{Proc, READY_WITHIN, endpoints, free_ports, run, unique_cookie};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long the page's figures may take to show a change (the machine is shared).
const PATIENCE: Duration = Duration::from_secs(30);

/// One HTTP/1.1 request to `port` on 127.0.0.1 (connection closed after the answer);
/// returns the status code and the body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the observer");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    let answer = String::from_utf8_lossy(&answer).to_string();
    let code = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    // The observer answers small bodies in one piece or chunked: undo the chunking.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (code, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Waits until `GET path` answers 200 with a body satisfying `wanted`.
fn wait_for(port: u16, path: &str, wanted: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (code, body) = http(port, "GET", path, &[], "");
        if code == 200 && wanted(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} never satisfied the test: {code} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_observer_serves_status_metrics_and_guarded_controls() {
    let cookie = unique_cookie("observer-http");
    let ports = free_ports(4);
    let http_port = ports[3];
    let members: Vec<(String, u16)> = (1..=3).map(|i| (format!("s{i}"), ports[i - 1])).collect();
    let peers = endpoints(&members);
    let http_addr = format!("127.0.0.1:{http_port}");
    let mut nodes: Vec<Proc> = members
        .iter()
        .map(|(name, port)| {
            let listen = format!("127.0.0.1:{port}");
            let mut args = vec![
                "node", "--name", name, "--listen", &listen, "--peers", &peers, "--cookie", &cookie,
            ];
            if name == "s1" {
                args.extend(["--http", &http_addr]);
            }
            Proc::spawn(&args, false)
        })
        .collect();
    for node in &mut nodes {
        node.wait_for_line(READY_WITHIN, |l| l.starts_with("ready "));
    }
    let line = nodes[0].wait_for_line(READY_WITHIN, |l| l.starts_with("observer "));
    let token = line
        .split_once("/#token=")
        .map(|(_, t)| t.to_string())
        .unwrap_or_else(|| panic!("the observer line carries the token: {line}"));
    assert_eq!(line, format!("observer http://{http_addr}/#token={token}"));
    assert_eq!(token.len(), 64);

    // The page and its assets come from the binary, with a policy that keeps them there.
    let (code, page) = http(http_port, "GET", "/", &[], "");
    assert_eq!(code, 200);
    assert!(page.contains("/assets/observer.js"), "{page}");
    assert!(!page.contains("https://"), "nothing from elsewhere");
    let (code, js) = http(http_port, "GET", "/assets/observer.js", &[], "");
    assert_eq!(code, 200);
    assert!(js.contains("EventSource"));
    assert_eq!(http(http_port, "GET", "/assets/nope.js", &[], "").0, 404);

    // Every node's ctl status JSON, and one node's alone.
    let all = wait_for(http_port, "/api/status", |b| {
        serde_json::from_str::<Value>(b)
            .is_ok_and(|v| v["nodes"].as_array().is_some_and(|n| n.len() == 3))
    });
    let all: Value = serde_json::from_str(&all).expect("JSON");
    let s2 = &all["nodes"][1];
    assert_eq!(s2["node"], "s2@127.0.0.1");
    // Durable by default (in the test's fresh data root).
    assert_eq!(s2["mode"], "durable");
    assert!(s2["storage"]["paxos"].is_object(), "{s2}");
    assert_eq!(s2["paxos"]["leader"], "s1@127.0.0.1");
    assert!(s2["processes"].as_array().is_some_and(|p| !p.is_empty()));

    // Traffic, so that counters move.
    let out = run(
        &[
            "client",
            "--servers",
            &peers,
            "--cookie",
            &cookie,
            "write",
            "k",
            "v",
        ],
        None,
        PATIENCE,
    );
    assert_eq!(out.ok(), "v");
    let metrics = wait_for(http_port, "/metrics", |m| {
        m.lines().any(|l| {
            l.starts_with("paxoskv_operations_total{")
                && l.contains("kind=\"write\"")
                && !l.ends_with(" 0")
        })
    });
    for family in [
        "# TYPE paxoskv_operations_total counter",
        "# TYPE paxoskv_operation_latency_seconds histogram",
        "# TYPE paxoskv_decisions_total counter",
        "# TYPE paxoskv_proposals_lost_total counter",
        "# TYPE paxoskv_dropped_messages_total counter",
        "# TYPE paxoskv_process_restarts_total counter",
        "# TYPE paxoskv_paxos_max gauge",
        "# TYPE paxoskv_node_up gauge",
    ] {
        assert!(metrics.contains(family), "{family} in\n{metrics}");
    }
    assert!(
        metrics.contains(
            "paxoskv_operation_latency_seconds_bucket{node=\"s1@127.0.0.1\",le=\"+Inf\"}"
        ),
        "{metrics}"
    );

    // A control without the token, with a wrong one, or for another host: 403, no change.
    let deaf_s3 = r#"{"node":"s3@127.0.0.1","action":"deaf"}"#;
    let wrong = "ab".repeat(32);
    let json = ("content-type", "application/json");
    for headers in [
        vec![json],
        vec![json, ("x-paxoskv-token", wrong.as_str())],
        vec![
            json,
            ("x-paxoskv-token", token.as_str()),
            ("Host", "attacker.example"),
        ],
    ] {
        let (code, body) = http(http_port, "POST", "/api/control", &headers, deaf_s3);
        assert_eq!(code, 403, "{headers:?}: {body}");
    }
    let (_, s3) = http(http_port, "GET", "/api/status?node=s3@127.0.0.1", &[], "");
    let s3: Value = serde_json::from_str(&s3).expect("JSON");
    assert_eq!(s3["faults"]["deaf"], false, "nothing changed: {s3}");

    // With the token: bad requests are refused clearly, good ones are done.
    let with_token = [json, ("x-paxoskv-token", token.as_str())];
    let (code, body) = http(http_port, "POST", "/api/control", &with_token, "{nonsense");
    assert_eq!(code, 400, "{body}");
    let (code, body) = http(
        http_port,
        "POST",
        "/api/control",
        &with_token,
        r#"{"node":"s9@127.0.0.1","action":"deaf"}"#,
    );
    assert_eq!(code, 404, "{body}");
    let (code, body) = http(
        http_port,
        "POST",
        "/api/control",
        &with_token,
        r#"{"node":"s2@127.0.0.1","action":"kill","process":"no_such"}"#,
    );
    assert_eq!(code, 409, "{body}");
    let (code, body) = http(
        http_port,
        "POST",
        "/api/control",
        &with_token,
        r#"{"node":"s2@127.0.0.1","action":"kill","process":"node_sup"}"#,
    );
    assert_eq!(
        code, 400,
        "the root supervisor is not killed from the page: {body}"
    );
    let (code, body) = http(http_port, "POST", "/api/control", &with_token, deaf_s3);
    assert_eq!((code, body.as_str()), (200, r#"{"ok":true}"#));
    wait_for(http_port, "/api/status?node=s3@127.0.0.1", |b| {
        serde_json::from_str::<Value>(b).is_ok_and(|v| v["faults"]["deaf"] == true)
    });
    // The deaf node drops what the others send it, and the metrics say which fault did.
    let out = run(
        &[
            "client",
            "--servers",
            &peers,
            "--cookie",
            &cookie,
            "write",
            "k",
            "w",
        ],
        None,
        PATIENCE,
    );
    assert_eq!(out.ok(), "w");
    wait_for(http_port, "/metrics", |m| {
        m.lines().any(|l| {
            l.starts_with("paxoskv_dropped_messages_total{node=\"s3@127.0.0.1\",fault=\"deaf\"}")
                && !l.ends_with(" 0")
        })
    });
}

#[test]
fn the_observer_stays_on_loopback_unless_told() {
    let port = free_ports(1)[0];
    let listen = format!("127.0.0.1:{port}");
    let out = run(
        &[
            "node",
            "--name",
            "s1",
            "--listen",
            &listen,
            "--cookie",
            "c",
            "--http",
            "0.0.0.0:0",
        ],
        None,
        PATIENCE,
    );
    assert_eq!(out.code(), 2, "refused as bad input");
    assert!(out.stderr.contains("--http-public"), "{}", out.stderr);
}
