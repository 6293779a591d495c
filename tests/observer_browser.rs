//! The observer page in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven over WebDriver by fantoccini. A 3-node `paxoskv cluster`
//! serves the page; the test sees the nodes and their trees, kills `db_manager` from the
//! page and sees it come back, deafens a node from the page and sees it said, checks that
//! a control without the token gets 403 and changes nothing, then opens a
//! `check --html` report of a history it recorded against the cluster (with a key that
//! is markup) and finds its operations, the key shown as text, and one of a history with a
//! stale read with that read highlighted. Screenshots go to
//! `target/observer-screenshots/`.
//!
//! Without Chromium the test says how to install it and passes, unless `CI` is set.

mod cli_support;

use cli_support::{BIN, Proc, READY_WITHIN, free_port_block, unique_cookie};
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use serde_json::{Value, json};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const INSTALL: &str = "apt-get update && apt-get install -y chromium chromium-driver";
/// What the page must show within, after a click.
const SEEN_WITHIN: Duration = Duration::from_secs(2);
/// How long anything else may take (the machine is shared).
const PATIENCE: Duration = Duration::from_secs(30);
/// A key that is markup: it must stay text.
const XSS_KEY: &str = "<script>alert(1)</script>";

/// `chromedriver` on PATH, or why not.
fn chromedriver() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("chromedriver"))
            .find(|p| p.is_file())
    })
}

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where screenshots go: `target/observer-screenshots/`.
fn screenshot_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("observer-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

async fn screenshot(c: &Client, name: &str) {
    match c.screenshot().await {
        Ok(png) => {
            let path = screenshot_dir().join(name);
            std::fs::write(&path, png).expect("write screenshot");
            eprintln!("screenshot: {}", path.display());
        }
        Err(e) => eprintln!("no screenshot {name}: {e}"),
    }
}

/// Polls `probe` (a script returning a value) until `done` holds, at most `within`;
/// returns the last value and how long it took.
async fn poll(
    c: &Client,
    probe: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> (Value, Duration, bool) {
    let start = Instant::now();
    loop {
        let v = c.execute(probe, vec![]).await.unwrap_or(Value::Null);
        if done(&v) {
            return (v, start.elapsed(), true);
        }
        if start.elapsed() > within {
            return (v, start.elapsed(), false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the page shows of one node: its tree's processes and its badges.
const NODES_PROBE: &str = r#"
return [...document.querySelectorAll('article.node')].map(card => ({
  name: card.dataset.node,
  badges: [...card.querySelectorAll('.badges .badge')].map(b => b.textContent),
  procs: Object.fromEntries([...card.querySelectorAll('.proc[data-process]')].map(r => [
    r.dataset.process,
    { pid: r.querySelector('.pid').title, restarts: r.querySelector('.restarts').textContent,
      status: r.querySelector('.status').textContent }
  ])),
}));
"#;

fn node<'a>(nodes: &'a Value, name: &str) -> &'a Value {
    nodes
        .as_array()
        .and_then(|a| a.iter().find(|n| n["name"] == name))
        .unwrap_or(&Value::Null)
}

/// Runs `ops` through a `client --pipe` per client in turn, timing each call and return,
/// and returns the history lines (docs/history-format.md).
fn record_history(servers: &str, cookie: &str, ops: &[(u64, &str)]) -> Vec<String> {
    let mut clients: std::collections::BTreeMap<u64, Proc> = Default::default();
    let origin = Instant::now();
    let micros = |t: Instant| t.duration_since(origin).as_micros() as u64;
    let mut lines = Vec::new();
    for &(client, op) in ops {
        let proc = clients.entry(client).or_insert_with(|| {
            Proc::spawn(
                &["client", "--servers", servers, "--cookie", cookie, "--pipe"],
                true,
            )
        });
        let call = micros(Instant::now());
        proc.send(&format!("{op}\n"));
        let answer = proc.wait_for_line(PATIENCE, |_| true);
        let ret = micros(Instant::now());
        let mut v: Value = serde_json::from_str(&answer).expect("pipe output is JSON");
        v["client"] = json!(client);
        v["call"] = json!(call);
        v["return"] = json!(ret);
        lines.push(v.to_string());
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_observer_page_works_in_a_real_browser() {
    let Some(driver_bin) = chromedriver().filter(|_| Path::new(CHROMIUM).is_file()) else {
        if std::env::var_os("CI").is_some() {
            panic!("Chromium is needed in CI: {INSTALL}");
        }
        eprintln!(
            "SKIPPED the_observer_page_works_in_a_real_browser: no Chromium; run `{INSTALL}`"
        );
        return;
    };

    // The cluster and its page.
    // One block of free ports: the nodes on base+1..=base+3, the page, the driver.
    let base = free_port_block(5);
    let http_port = base + 4;
    let cookie = unique_cookie("observer");
    let http = format!("127.0.0.1:{http_port}");
    let mut cluster = Proc::spawn(
        &[
            "cluster",
            "--nodes",
            "3",
            "--base-port",
            &base.to_string(),
            "--cookie",
            &cookie,
            "--no-shell",
            "--http",
            &http,
        ],
        false,
    );
    let line = cluster.wait_for_line(READY_WITHIN, |l| l.starts_with("observer "));
    let url = line.trim_start_matches("observer ").to_string();
    assert!(
        url.starts_with(&format!("http://{http}/#token=")),
        "the page's address with its token: {url}"
    );
    let servers = (1..=3u16)
        .map(|i| format!("s{i}=127.0.0.1:{}", base + i))
        .collect::<Vec<_>>()
        .join(",");

    // The browser.
    let driver_port = base + 5;
    let _driver = Killed(
        Command::new(&driver_bin)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let up_by = Instant::now() + PATIENCE;
    while TcpStream::connect(("127.0.0.1", driver_port)).is_err() {
        assert!(Instant::now() < up_by, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = std::env::temp_dir().join(format!(
        "paxoskv-observer-chromium-{:016x}",
        rand::random::<u64>()
    ));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--window-size=1440,1400",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let c = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a WebDriver session");

    let outcome = std::panic::AssertUnwindSafe(async {
        // Three nodes, each with its tree.
        c.goto(&url).await.expect("open the page");
        let (nodes, _, ok) = poll(&c, NODES_PROBE, PATIENCE, |v| {
            v.as_array().is_some_and(|a| {
                a.len() == 3
                    && a.iter().all(|n| {
                        ["node_sup", "kv_sup", "paxos_sup", "db_manager", "kv_server"]
                            .iter()
                            .all(|p| n["procs"][p]["status"] == "running")
                    })
            })
        })
        .await;
        assert!(ok, "3 nodes with their trees: {nodes}");
        let location = c.current_url().await.expect("url");
        assert!(
            location.fragment().is_none(),
            "the page took the token out of the address bar: {location}"
        );
        screenshot(&c, "observer-1-cluster.png").await;

        // Kill db_manager on s1 from the page.
        let s1 = "s1@127.0.0.1";
        let before = node(&nodes, s1)["procs"]["db_manager"].clone();
        assert_eq!(before["restarts"], "0", "{before}");
        c.find(Locator::Css(&format!(
            r#"article.node[data-node="{s1}"] .proc[data-process="db_manager"] button.kill"#
        )))
        .await
        .expect("the kill button")
        .click()
        .await
        .expect("click kill");
        let (after, took, ok) = poll(&c, NODES_PROBE, PATIENCE, |v| {
            let p = &node(v, s1)["procs"]["db_manager"];
            p["restarts"] == "1" && p["pid"] != before["pid"] && p["status"] == "running"
        })
        .await;
        assert!(ok, "db_manager restarted once with a new pid: {after}");
        assert!(
            took <= SEEN_WITHIN,
            "the restart took {took:?} to show (at most {SEEN_WITHIN:?})"
        );
        eprintln!("the restart showed after {took:?}");
        let (events, _, ok) = poll(
            &c,
            "return document.getElementById('events').textContent",
            PATIENCE,
            |v| v.as_str().is_some_and(|t| t.contains("db_manager restarted")),
        )
        .await;
        assert!(ok, "the event log tells the restart: {events}");

        // Deafen s2 from the page.
        let s2 = "s2@127.0.0.1";
        c.find(Locator::Css(&format!(
            r#"article.node[data-node="{s2}"] button[data-action="deaf"]"#
        )))
        .await
        .expect("the deaf button")
        .click()
        .await
        .expect("click deaf");
        let (v, _, ok) = poll(&c, NODES_PROBE, PATIENCE, |v| {
            node(v, s2)["badges"]
                .as_array()
                .is_some_and(|b| b.iter().any(|x| x == "deaf"))
        })
        .await;
        assert!(ok, "the page says s2 is deaf: {v}");
        screenshot(&c, "observer-2-killed-and-deaf.png").await;

        // A control without the token, or with a wrong one: 403, and s3 stays as it was.
        let post = r#"
const [token, done] = [arguments[0], arguments[arguments.length - 1]];
const headers = { "content-type": "application/json" };
if (token) headers["x-paxoskv-token"] = token;
fetch("/api/control", { method: "POST", headers,
  body: JSON.stringify({ node: "s3@127.0.0.1", action: "deaf" }) })
  .then(r => done(r.status), e => done(String(e)));
"#;
        for token in [Value::Null, json!("00".repeat(32))] {
            let status = c.execute_async(post, vec![token.clone()]).await.expect("fetch");
            assert_eq!(status, json!(403), "a control with token {token}");
        }
        let status = c
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
fetch("/api/status?node=s3@127.0.0.1").then(r => r.json()).then(done, e => done(String(e)));"#,
                vec![],
            )
            .await
            .expect("status");
        assert_eq!(status["faults"]["deaf"], json!(false), "s3 untouched: {status}");
        assert!(status["kv"]["ops"].is_object(), "ctl status JSON: {status}");
        // Lift the fault so that s2 takes part in the history below.
        c.find(Locator::Css(&format!(
            r#"article.node[data-node="{s2}"] button[data-action="deaf"]"#
        )))
        .await
        .expect("the listen button")
        .click()
        .await
        .expect("click listen");
        let (v, _, ok) = poll(&c, NODES_PROBE, PATIENCE, |v| {
            node(v, s2)["badges"]
                .as_array()
                .is_some_and(|b| b.iter().all(|x| x != "deaf"))
        })
        .await;
        assert!(ok, "s2 listens again: {v}");

        // A history recorded against the cluster, checked and drawn.
        let history = tokio::task::block_in_place(|| record_history(
            &servers,
            &cookie,
            &[
                (1, &format!("write {XSS_KEY} first")),
                (2, &format!("read {XSS_KEY}")),
                (1, "write k a"),
                (2, "write-hash k b"),
                (1, "read k"),
                (2, &format!("write {XSS_KEY} second")),
            ],
        ));
        let dir = screenshot_dir();
        let history_file = dir.join("observer-history.jsonl");
        let report = dir.join("observer-report.html");
        std::fs::File::create(&history_file)
            .and_then(|mut f| f.write_all((history.join("\n") + "\n").as_bytes()))
            .expect("write the history");
        let out = Command::new(BIN)
            .args(["check", "--html"])
            .arg(&report)
            .arg(&history_file)
            .output()
            .expect("run check");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "linearizable",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        c.goto(&format!("file://{}", report.display()))
            .await
            .expect("open the report");
        let probe = r#"
return {
  verdict: (document.getElementById('verdict') || {}).textContent,
  keys: [...document.querySelectorAll('section.key')].map(s => ({
    key: s.querySelector('.key-name').textContent,
    rows: [...s.querySelectorAll('table.ops tbody tr')].map(r => [...r.cells].map(c => c.textContent)),
    bars: s.querySelectorAll('.op-bar').length,
  })),
  scripts: document.querySelectorAll('script').length,
};"#;
        let (seen, _, ok) = poll(&c, probe, PATIENCE, |v| {
            v["keys"].as_array().is_some_and(|k| k.len() == 2)
        })
        .await;
        assert!(ok, "the report's keys: {seen}");
        assert_eq!(seen["verdict"], "linearizable");
        assert_eq!(seen["scripts"], 2, "no script came from the data: {seen}");
        let xss = seen["keys"]
            .as_array()
            .and_then(|k| k.iter().find(|k| k["key"] == XSS_KEY))
            .unwrap_or_else(|| panic!("the markup key shown as text: {seen}"));
        assert_eq!(xss["bars"], 3, "{xss}");
        let rows = xss["rows"].as_array().expect("rows");
        let ops: Vec<(String, String)> = rows
            .iter()
            .map(|r| (r[2].as_str().unwrap_or("").into(), r[4].as_str().unwrap_or("").into()))
            .collect();
        assert_eq!(
            ops,
            [
                ("write".into(), "first".into()),
                ("read".into(), "first".into()),
                ("write".into(), "second".into())
            ],
            "the key's operations in linearization order: {xss}"
        );
        assert!(
            c.get_alert_text().await.is_err(),
            "no alert: the key stayed text"
        );
        screenshot(&c, "observer-3-report.png").await;

        // A history with a stale read: the report highlights the part that shows it.
        let stale = dir.join("observer-stale.jsonl");
        let stale_report = dir.join("observer-stale.html");
        std::fs::write(
            &stale,
            concat!(
                r#"{"client":1,"op":"write","key":"x","value":"a","ok":true,"result":"a","call":0,"return":10}"#,
                "\n",
                r#"{"client":2,"op":"write","key":"x","value":"b","ok":true,"result":"b","call":20,"return":30}"#,
                "\n",
                r#"{"client":1,"op":"read","key":"x","ok":true,"result":"a","call":40,"return":50}"#,
                "\n",
            ),
        )
        .expect("write the stale history");
        let out = Command::new(BIN)
            .args(["check", "--html"])
            .arg(&stale_report)
            .arg(&stale)
            .output()
            .expect("run check");
        assert_eq!(out.status.code(), Some(1), "not linearizable");
        c.goto(&format!("file://{}", stale_report.display()))
            .await
            .expect("open the stale report");
        let probe = r#"
const stuck = [...document.querySelectorAll('table.ops tr.role-stuck')]
  .map(r => [...r.cells].map(c => c.textContent));
return {
  verdict: (document.getElementById('verdict') || {}).textContent,
  stuck,
  stuckBars: document.querySelectorAll('rect.role-stuck').length,
};"#;
        let (seen, _, ok) = poll(&c, probe, PATIENCE, |v| {
            v["stuck"].as_array().is_some_and(|s| s.len() == 1)
        })
        .await;
        assert!(ok, "the stale read highlighted: {seen}");
        assert_eq!(seen["verdict"], "not linearizable");
        assert_eq!(seen["stuckBars"], 1);
        assert_eq!(seen["stuck"][0][2], "read");
        assert_eq!(seen["stuck"][0][4], "a");
        screenshot(&c, "observer-4-violation.png").await;
    })
    .catch_unwind()
    .await;
    // Ends the browser whatever happened (killing chromedriver would leave it running).
    let _ = c.close().await;
    let _ = std::fs::remove_dir_all(&profile);
    cluster.signal("TERM");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
