//! Two real OS processes over TCP on 127.0.0.1.
//!
//! The peer is this very test binary, run again: the tests below start
//! `current_exe() peer_process_entry --exact --ignored` with `RUNTIME_TCP_PEER_COOKIE`
//! set, which makes the ignored test `peer_process_entry` run a node with a registered
//! echo process and print `PEER-READY NAME ADDR`. (Cargo gives integration tests no
//! path to an example's binary, and this needs no extra build step.) The peer exits when
//! its stdin closes, so it never outlives the test that started it.

use runtime::transport::tcp::{TcpConfig, TcpTransport, Tuning};
use runtime::{Down, Exit, ExitReason, Node, NodeName, NodeRole, Pid, Process};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::Instant;

const PEER_COOKIE_ENV: &str = "RUNTIME_TCP_PEER_COOKIE";
const PEER_TICK_ENV: &str = "RUNTIME_TCP_PEER_TICK_MS";
const COOKIE: &str = "two-processes";
const WAIT: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Echo {
    reply_to: Pid,
    n: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Echoed {
    n: u64,
    os_pid: u32,
}

/// The peer process's body; does nothing unless started by a test below.
#[test]
#[ignore = "entry point of the peer OS process, started by the other tests"]
fn peer_process_entry() {
    let Ok(cookie) = std::env::var(PEER_COOKIE_ENV) else {
        return;
    };
    let tick = std::env::var(PEER_TICK_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Tuning::default().tick_interval);
    std::thread::spawn(|| {
        let mut sink = String::new();
        // Blocks until the parent closes our stdin (or dies).
        let _ = std::io::stdin().read_line(&mut sink);
        std::process::exit(0);
    });
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let cfg = TcpConfig::new(cookie).listen(SocketAddr::from(([127, 0, 0, 1], 0)));
        let tuning = Tuning {
            tick_interval: tick,
            ..Tuning::default()
        };
        let (node, t) = TcpTransport::start_tuned("peer@127.0.0.1", NodeRole::Server, cfg, tuning)
            .await
            .expect("peer node starts");
        let echo = node.spawn(|mut p: Process| async move {
            loop {
                if let Ok(e) = p.recv().await.downcast::<Echo>() {
                    let os_pid = std::process::id();
                    p.send(&e.reply_to, Echoed { n: e.n, os_pid });
                }
            }
        });
        node.register("echo", &echo).expect("register");
        let addr = t.local_addr().expect("listening");
        println!("PEER-READY {} {addr}", node.name());
        std::future::pending::<()>().await;
    });
}

/// A peer node in its own OS process.
struct Peer {
    child: Child,
    name: NodeName,
    addr: SocketAddr,
    _stdout: BufReader<ChildStdout>,
}

async fn start_peer(tick_ms: Option<u64>) -> Peer {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args(["peer_process_entry", "--exact", "--ignored", "--nocapture"])
        .env(PEER_COOKIE_ENV, COOKIE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    if let Some(ms) = tick_ms {
        cmd.env(PEER_TICK_ENV, ms.to_string());
    }
    let mut child = cmd.spawn().expect("peer process starts");
    let stdout = child.stdout.take().expect("peer stdout");
    let mut lines = BufReader::new(stdout);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout_at(deadline, lines.read_line(&mut line))
            .await
            .expect("peer ready in time")
            .expect("peer stdout readable");
        assert!(n > 0, "peer exited before it was ready");
        if let Some(rest) = line.trim().strip_prefix("PEER-READY ") {
            let mut words = rest.split_whitespace();
            let name = NodeName::new(words.next().expect("peer name"));
            let addr = words.next().expect("peer addr").parse().expect("addr");
            return Peer {
                child,
                name,
                addr,
                _stdout: lines,
            };
        }
    }
}

async fn local_node(peer: &Peer, tuning: Tuning) -> Node {
    let cfg = TcpConfig::new(COOKIE)
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
        .peer(peer.name.clone(), peer.addr);
    let (node, _t) = TcpTransport::start_tuned("main@127.0.0.1", NodeRole::Server, cfg, tuning)
        .await
        .expect("local node starts");
    node
}

/// Sends `count` echoes by name and checks they come back in order from the peer's
/// process; returns the peer's echo pid.
async fn exchange(p: &mut Process, peer: &Peer, from: u64, count: u64) -> Pid {
    let os_pid = peer.child.id().expect("peer running");
    for n in from..from + count {
        p.send(
            ("echo", peer.name.clone()),
            Echo {
                reply_to: p.pid().clone(),
                n,
            },
        );
    }
    let mut echo_pid = None;
    for n in from..from + count {
        let (sender, e) = p
            .receive(Some(WAIT), |env| {
                let sender = env.from().cloned();
                env.downcast::<Echoed>().map(|e| (sender, e))
            })
            .await
            .unwrap_or_else(|| panic!("echo {n} did not come back"));
        assert_eq!(e, Echoed { n, os_pid }, "echoes out of order");
        echo_pid = sender;
    }
    echo_pid.expect("echo replies carry their sender")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_os_processes_exchange_messages_and_a_kill_gives_noconnection() {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut peer = start_peer(None).await;
    let node = local_node(&peer, Tuning::default()).await;
    let mut p = node.attach();
    let echo = exchange(&mut p, &peer, 0, 1000).await;
    assert_eq!(echo.node(), &peer.name);
    assert_eq!(node.connected_nodes(), vec![peer.name.clone()]);

    p.trap_exit(true);
    p.link(&echo);
    let mref = p.monitor(&echo);
    // The link and monitor are installed once this round trip is done (same connection).
    exchange(&mut p, &peer, 1000, 1).await;

    let killed = Instant::now();
    peer.child.start_kill().expect("kill -9 the peer");
    let down = p
        .receive_match::<Down>(Some(WAIT), |d| d.mref == mref)
        .await
        .expect("Down after the kill");
    let exit = p
        .receive_type::<Exit>(Some(WAIT))
        .await
        .expect("exit signal after the kill");
    let elapsed = killed.elapsed();
    assert_eq!(
        (down.pid, down.reason),
        (echo.clone(), ExitReason::NoConnection)
    );
    assert_eq!((exit.from, exit.reason), (echo, ExitReason::NoConnection));
    assert!(
        elapsed < Duration::from_secs(2),
        "noconnection took {elapsed:?}"
    );
    let _ = peer.child.wait().await;
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_keep_an_idle_link_and_silence_ends_it() {
    let _ = env_logger::builder().is_test(true).try_init();
    // The peer ticks every 100 ms; this node gives up after 1 s of silence.
    let mut peer = start_peer(Some(100)).await;
    let silence = Duration::from_secs(1);
    let tuning = Tuning {
        silence_timeout: silence,
        tick_interval: Duration::from_millis(100),
        ..Tuning::default()
    };
    let node = local_node(&peer, tuning).await;
    let mut p = node.attach();
    let echo = exchange(&mut p, &peer, 0, 10).await;
    let mref = p.monitor(&echo);
    exchange(&mut p, &peer, 10, 1).await;

    // Idle for longer than the silence timeout: the ticks keep the connection.
    assert!(
        p.receive_type::<Down>(Some(silence * 2)).await.is_none(),
        "an idle connection was dropped"
    );
    assert_eq!(node.connected_nodes(), vec![peer.name.clone()]);

    // A stopped (not killed) peer keeps its socket open but says nothing.
    let os_pid = peer.child.id().expect("peer running");
    let stopped = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-STOP", &os_pid.to_string()])
        .status()
        .expect("kill -STOP");
    assert!(status.success());
    let down = p
        .receive_match::<Down>(Some(WAIT), |d| d.mref == mref)
        .await
        .expect("Down after the silence");
    let elapsed = stopped.elapsed();
    assert_eq!(down.reason, ExitReason::NoConnection);
    assert!(
        elapsed >= silence / 2,
        "lost after {elapsed:?}: not by the silence timeout"
    );
    peer.child.start_kill().expect("kill -9 the peer");
    let _ = peer.child.wait().await;
    node.stop();
}
