//! The TCP transport between nodes in one test process, over real sockets on 127.0.0.1
//! with ports picked by the system: sends by pid and by name, ordering, calls, remote
//! monitors and links, node loss, reconnection, the cookie, bad input and faults.

use runtime::transport::Wire;
use runtime::transport::tcp::frame::encode_wire;
use runtime::transport::tcp::handshake::{self, Identity};
use runtime::transport::tcp::{TcpConfig, TcpTransport};
use runtime::{Dest, Down, Exit, ExitReason, Node, NodeName, NodeRole, Pid, Process, Ref};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const COOKIE: &str = "tcp-transport-test-cookie";
/// Generous: tests run in parallel on two cores.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Echo {
    reply_to: Pid,
    n: u64,
    text: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Echoed {
    n: u64,
    text: String,
    by: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Note(u64);

fn init_log() {
    let _ = env_logger::builder().is_test(true).try_init();
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn start(name: &str, role: NodeRole, cookie: &str) -> (Node, TcpTransport, SocketAddr) {
    let cfg = TcpConfig::new(cookie).listen(any_port());
    let (node, t) = TcpTransport::start(name, role, cfg)
        .await
        .expect("node starts");
    let addr = t.local_addr().expect("listening");
    (node, t, addr)
}

/// Two server nodes that know each other's address.
async fn pair(a: &str, b: &str) -> ((Node, TcpTransport), (Node, TcpTransport)) {
    let (na, ta, aa) = start(a, NodeRole::Server, COOKIE).await;
    let (nb, tb, ab) = start(b, NodeRole::Server, COOKIE).await;
    ta.add_peer(b, ab);
    tb.add_peer(a, aa);
    ((na, ta), (nb, tb))
}

/// A registered process that answers every `Echo` with an `Echoed` naming its node.
fn spawn_echo(node: &Node, name: &str) -> Pid {
    let pid = node.spawn(|mut p: Process| async move {
        loop {
            if let Ok(e) = p.recv().await.downcast::<Echo>() {
                let by = p.node().name().to_string();
                p.send(
                    &e.reply_to,
                    Echoed {
                        n: e.n,
                        text: e.text,
                        by,
                    },
                );
            }
        }
    });
    node.register(name, &pid).expect("register echo");
    pid
}

/// Asks the echo process at `to` to send `n` and `text` back to `p`.
fn ask_echo(p: &Process, to: impl Into<Dest>, n: u64, text: &str) {
    p.send(
        to,
        Echo {
            reply_to: p.pid().clone(),
            n,
            text: text.into(),
        },
    );
}

/// How a peer that is not a real node (a test driving the handshake by hand) names itself.
fn fake_identity(name: &str, instance: u64) -> Identity {
    Identity::new(name, NodeRole::Server, instance)
}

/// Starts node `name` listening on `addr`, retrying until the port is free again (an
/// earlier listener on it may take a moment to go).
async fn start_on(name: &str, addr: SocketAddr) -> (Node, TcpTransport) {
    let deadline = Instant::now() + WAIT;
    loop {
        match TcpTransport::start(name, NodeRole::Server, TcpConfig::new(COOKIE).listen(addr)).await
        {
            Ok(started) => return started,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "cannot listen on {addr} again: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn expect_echo(p: &mut Process, n: u64) -> Echoed {
    p.receive_match::<Echoed>(Some(WAIT), |e| e.n == n)
        .await
        .unwrap_or_else(|| panic!("no echo {n}"))
}

async fn expect_down(p: &mut Process, mref: Ref) -> Down {
    p.receive_match::<Down>(Some(WAIT), |d| d.mref == mref)
        .await
        .expect("a Down for the monitor")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_by_pid_and_by_name_both_ways() {
    init_log();
    let ((a, ta), (b, tb)) = pair("a@127.0.0.1", "b@127.0.0.1").await;
    spawn_echo(&b, "echo");
    spawn_echo(&a, "echo");
    let mut pa = a.attach();
    let mut pb = b.attach();

    // a -> b by (name, node); the reply comes back by pid.
    ask_echo(&pa, ("echo", b.name().clone()), 1, "hello");
    let e = expect_echo(&mut pa, 1).await;
    assert_eq!((e.text.as_str(), e.by.as_str()), ("hello", "b@127.0.0.1"));

    // b -> a by name, then by the pid a's echo answered from.
    ask_echo(&pb, ("echo", a.name().clone()), 2, "back");
    let env = pb
        .receive(Some(WAIT), |env| match env.from().cloned() {
            Some(from) => env.downcast::<Echoed>().map(|e| (from, e)),
            None => Err(env),
        })
        .await
        .expect("echo from a");
    let (a_echo, e) = env;
    assert_eq!((e.n, e.by.as_str()), (2, "a@127.0.0.1"));
    assert_eq!(a_echo.node(), a.name());
    ask_echo(&pb, &a_echo, 3, "by pid");
    assert_eq!(expect_echo(&mut pb, 3).await.text, "by pid");

    // One connection serves both directions.
    assert_eq!(a.connected_nodes(), vec![b.name().clone()]);
    assert_eq!(b.connected_nodes(), vec![a.name().clone()]);
    assert!(ta.peers().iter().any(|(n, _)| n == b.name()));
    assert!(tb.peers().iter().any(|(n, _)| n == a.name()));
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_learns_the_address_of_a_node_that_dialed_in() {
    init_log();
    let (a, ta, aa) = start("a@127.0.0.1", NodeRole::Server, COOKIE).await;
    let (b, tb, _) = start("b@127.0.0.1", NodeRole::Server, COOKIE).await;
    tb.add_peer("a@127.0.0.1", aa);
    spawn_echo(&a, "echo");
    let mut pb = b.attach();
    ask_echo(&pb, ("echo", a.name().clone()), 1, "x");
    expect_echo(&mut pb, 1).await;
    let learned = ta
        .peers()
        .into_iter()
        .find(|(n, _)| n == b.name())
        .map(|(_, addr)| addr);
    assert_eq!(learned, tb.local_addr());
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_arrive_in_order() {
    init_log();
    let ((a, _ta), (b, _tb)) = pair("a@127.0.0.1", "b@127.0.0.1").await;
    const N: u64 = 10_000;
    let mut pa = a.attach();
    let me = pa.pid().clone();
    // Counts what arrives and reports the first gap; bodies of 1 KiB fill the socket
    // so the writer task's path is exercised as well as direct writes.
    let sink = b.spawn(move |mut p: Process| async move {
        let mut expected = 0u64;
        while expected < N {
            match p.receive_type::<(u64, Vec<u8>)>(None).await {
                Some((k, body)) if k == expected && body.len() == 1024 => expected += 1,
                Some((k, _)) => {
                    p.send(
                        &me,
                        Err::<u64, String>(format!("got {k}, expected {expected}")),
                    );
                    return;
                }
                None => return,
            }
        }
        p.send(&me, Ok::<u64, String>(expected));
    });
    for k in 0..N {
        pa.send(&sink, (k, vec![(k % 251) as u8; 1024]));
    }
    let result = pa
        .receive_type::<Result<u64, String>>(Some(Duration::from_secs(30)))
        .await
        .expect("the sink reports");
    assert_eq!(result, Ok(N));
    a.stop();
    b.stop();
}

#[derive(Serialize, Deserialize, Debug)]
struct Request {
    from: Pid,
    tag: Ref,
    x: i64,
}

#[derive(Serialize, Deserialize, Debug)]
struct Reply {
    tag: Ref,
    y: i64,
}

/// A call as gen_server does it: a unique tag, a selective receive of the reply.
async fn call(p: &mut Process, server: impl Into<Dest>, x: i64) -> Option<i64> {
    let tag = p.make_ref();
    p.send(
        server,
        Request {
            from: p.pid().clone(),
            tag,
            x,
        },
    );
    p.receive_match::<Reply>(Some(WAIT), |r| r.tag == tag)
        .await
        .map(|r| r.y)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_like_request_reply() {
    init_log();
    let ((a, _ta), (b, _tb)) = pair("a@127.0.0.1", "b@127.0.0.1").await;
    let server = b.spawn(|mut p: Process| async move {
        while let Some(r) = p.receive_type::<Request>(None).await {
            p.send(
                &r.from,
                Reply {
                    tag: r.tag,
                    y: r.x * r.x,
                },
            );
        }
    });
    b.register("square", &server).expect("register");
    let mut pa = a.attach();
    // Unrelated messages in the mailbox do not disturb the selective receive.
    pa.send(pa.pid().clone(), Note(0));
    for x in -50..50 {
        assert_eq!(
            call(&mut pa, ("square", b.name().clone()), x).await,
            Some(x * x)
        );
    }
    assert_eq!(pa.receive_type::<Note>(Some(WAIT)).await, Some(Note(0)));
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_monitor_gets_the_exit_reason() {
    init_log();
    let ((a, _ta), (b, _tb)) = pair("a@127.0.0.1", "b@127.0.0.1").await;
    let target = b.spawn(|mut p: Process| async move {
        let _ = p.receive_type::<Note>(None).await;
        ExitReason::custom("boom")
    });
    let mut pa = a.attach();
    let mref = pa.monitor(&target);
    pa.send(&target, Note(1));
    let down = expect_down(&mut pa, mref).await;
    assert_eq!(down.pid, target);
    assert_eq!(down.reason, ExitReason::custom("boom"));

    // Monitoring a name nobody holds answers noproc.
    let mref = pa.monitor(("nobody", b.name().clone()));
    assert_eq!(expect_down(&mut pa, mref).await.reason, ExitReason::NoProc);

    // A remote link carries the exit reason too.
    let linked = b.spawn(|mut p: Process| async move {
        let _ = p.receive_type::<Note>(None).await;
        ExitReason::custom("linked boom")
    });
    let mut watcher = a.attach();
    watcher.trap_exit(true);
    watcher.link(&linked);
    // The link frame and the note go in order over the one connection.
    watcher.send(&linked, Note(2));
    let exit = watcher
        .receive_type::<Exit>(Some(WAIT))
        .await
        .expect("exit signal");
    assert_eq!(
        (exit.from, exit.reason),
        (linked, ExitReason::custom("linked boom"))
    );
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_remote_node_gives_noconnection_within_two_seconds() {
    init_log();
    let ((a, _ta), (b, _tb)) = pair("a@127.0.0.1", "b@127.0.0.1").await;
    let echo = spawn_echo(&b, "echo");
    let mut pa = a.attach();
    pa.trap_exit(true);
    pa.link(&echo);
    let mref = pa.monitor(&echo);
    // Make sure both frames went through before the node goes.
    ask_echo(&pa, &echo, 1, "up");
    expect_echo(&mut pa, 1).await;
    let stopped = Instant::now();
    b.stop();
    let down = expect_down(&mut pa, mref).await;
    let exit = pa
        .receive_type::<Exit>(Some(WAIT))
        .await
        .expect("exit signal");
    let elapsed = stopped.elapsed();
    assert_eq!(down.reason, ExitReason::NoConnection);
    assert_eq!(down.pid, echo);
    assert_eq!((exit.from, exit.reason), (echo, ExitReason::NoConnection));
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    eventually("a forgets the connection", || {
        a.connected_nodes().is_empty()
    })
    .await;
    a.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_on_the_same_address_is_reached_again() {
    init_log();
    let ((a, _ta), (b, tb)) = pair("a@127.0.0.1", "b@127.0.0.1").await;
    let b_addr = tb.local_addr().expect("listening");
    spawn_echo(&b, "echo");
    let mut pa = a.attach();
    ask_echo(&pa, ("echo", b.name().clone()), 1, "first life");
    expect_echo(&mut pa, 1).await;
    let mref = pa.monitor(("echo", b.name().clone()));
    b.stop();
    assert_eq!(
        expect_down(&mut pa, mref).await.reason,
        ExitReason::NoConnection
    );

    // Same name, same address: the port is free once the old listener is dropped.
    let (b2, _tb2) = start_on("b@127.0.0.1", b_addr).await;
    spawn_echo(&b2, "echo");
    // The first sends may fall in a backoff window: resend until one is answered.
    let mut n = 1;
    let deadline = Instant::now() + WAIT;
    let echoed = loop {
        n += 1;
        ask_echo(&pa, ("echo", b2.name().clone()), n, "second life");
        if let Some(e) = pa
            .receive_match::<Echoed>(Some(Duration::from_millis(200)), |e| e.n == n)
            .await
        {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted node never answered"
        );
    };
    assert_eq!(echoed.text, "second life");
    // Monitors work over the new connection.
    let victim = b2.spawn(|mut p: Process| async move {
        let _ = p.receive_type::<Note>(None).await;
        ExitReason::custom("again")
    });
    let mref = pa.monitor(&victim);
    pa.send(&victim, Note(0));
    assert_eq!(
        expect_down(&mut pa, mref).await.reason,
        ExitReason::custom("again")
    );
    a.stop();
    b2.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cookie_is_refused_and_good_connections_keep_working() {
    init_log();
    let ((a, ta), (b, _tb)) = pair("a@127.0.0.1", "b@127.0.0.1").await;
    spawn_echo(&a, "echo");
    let inbox_pid = {
        let mut pb = b.attach();
        ask_echo(&pb, ("echo", a.name().clone()), 1, "before");
        expect_echo(&mut pb, 1).await;
        pb
    };
    let a_addr = ta.local_addr().expect("listening");
    let (intruder, ti, _) = start("c@127.0.0.1", NodeRole::Server, "not-the-cookie").await;
    ti.add_peer("a@127.0.0.1", a_addr);
    let mut pc = intruder.attach();
    let received_before = a.stats().received;
    let mref = pc.monitor(("echo", a.name().clone()));
    ask_echo(&pc, ("echo", a.name().clone()), 9, "let me in");
    assert_eq!(
        expect_down(&mut pc, mref).await.reason,
        ExitReason::NoConnection
    );
    assert!(ti.dropped_frames() >= 1);
    assert!(!a.connected_nodes().contains(intruder.name()));
    // The good connection still works, and nothing from the intruder arrived.
    let mut pb = inbox_pid;
    ask_echo(&pb, ("echo", a.name().clone()), 2, "after");
    assert_eq!(expect_echo(&mut pb, 2).await.text, "after");
    assert_eq!(a.stats().received, received_before + 1);
    assert!(
        pc.receive_type::<Echoed>(Some(Duration::from_millis(100)))
            .await
            .is_none()
    );
    a.stop();
    b.stop();
    intruder.stop();
}

/// Reads until the peer closes; true when it did within the wait.
async fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

fn msg_frame<M: Serialize + 'static>(to: Dest, msg: &M) -> Vec<u8> {
    encode_wire(&Wire::Msg {
        from: None,
        to,
        tag: runtime::message::type_tag::<M>(),
        body: postcard::to_allocvec(msg).expect("encodes"),
        control: false,
    })
    .expect("frame")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_closes_only_the_offending_connection() {
    init_log();
    let ((a, ta), (b, _tb)) = pair("a@127.0.0.1", "b@127.0.0.1").await;
    let a_addr = ta.local_addr().expect("listening");
    spawn_echo(&a, "echo");
    let mut inbox = a.attach();
    inbox.register("inbox").expect("register");
    let mut pb = b.attach();
    let mut n = 0;
    let mut check_good_link = async |pb: &mut Process| {
        n += 1;
        ask_echo(pb, ("echo", a.name().clone()), n, "still here");
        expect_echo(pb, n).await;
    };
    check_good_link(&mut pb).await;

    // Garbage instead of a handshake.
    let mut raw = TcpStream::connect(a_addr).await.expect("connect");
    raw.write_all(&[0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff])
        .await
        .expect("write");
    assert!(
        closed_by_peer(&mut raw).await,
        "garbage handshake kept open"
    );
    check_good_link(&mut pb).await;

    // A length prefix over the maximum, before the handshake.
    let mut raw = TcpStream::connect(a_addr).await.expect("connect");
    raw.write_all(&u32::MAX.to_be_bytes()).await.expect("write");
    assert!(closed_by_peer(&mut raw).await, "oversized prefix kept open");
    check_good_link(&mut pb).await;

    // An authenticated rogue peer: valid frames pass, an unknown target is only
    // undeliverable, a malformed frame closes the connection.
    let rogue = fake_identity("rogue@127.0.0.1", 7);
    let mut raw = TcpStream::connect(a_addr).await.expect("connect");
    handshake::dial(&mut raw, &rogue, COOKIE.as_bytes(), Some(a.name()))
        .await
        .expect("handshake with the right cookie");
    let undeliverable = a.stats().undeliverable;
    raw.write_all(&msg_frame(Dest::Name("nobody".into()), &Note(1)))
        .await
        .expect("write");
    raw.write_all(&msg_frame(Dest::Name("inbox".into()), &Note(2)))
        .await
        .expect("write");
    assert_eq!(inbox.receive_type::<Note>(Some(WAIT)).await, Some(Note(2)));
    assert_eq!(a.stats().undeliverable, undeliverable + 1);
    assert!(a.connected_nodes().contains(&rogue.name));
    raw.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff])
        .await
        .expect("write");
    assert!(closed_by_peer(&mut raw).await, "malformed frame kept open");
    eventually("a drops the rogue", || {
        !a.connected_nodes().contains(&rogue.name)
    })
    .await;
    check_good_link(&mut pb).await;

    // Authenticated, then a length prefix over the maximum.
    let mut raw = TcpStream::connect(a_addr).await.expect("connect");
    handshake::dial(&mut raw, &rogue, COOKIE.as_bytes(), Some(a.name()))
        .await
        .expect("handshake with the right cookie");
    raw.write_all(&(16 * 1024 * 1024 + 1u32).to_be_bytes())
        .await
        .expect("write");
    assert!(closed_by_peer(&mut raw).await, "oversized frame kept open");
    check_good_link(&mut pb).await;
    eventually("a drops the second rogue", || {
        a.connected_nodes() == vec![b.name().clone()]
    })
    .await;
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deaf_node_drops_what_it_receives_but_can_still_send() {
    init_log();
    let ((a, _ta), (b, _tb)) = pair("a@127.0.0.1", "b@127.0.0.1").await;
    spawn_echo(&b, "echo");
    let mut pa = a.attach();
    pa.register("inbox").expect("register");
    // Connect first, so the drops below are the fault's, not a connection's.
    ask_echo(&pa, ("echo", b.name().clone()), 0, "hi");
    expect_echo(&mut pa, 0).await;

    b.faults().set_deaf(true);
    let dropped = b.stats().dropped_in;
    ask_echo(&pa, ("echo", b.name().clone()), 1, "hello?");
    eventually("b drops the message", || b.stats().dropped_in > dropped).await;
    // b still sends.
    b.send(None, ("inbox", a.name().clone()), Note(5));
    assert_eq!(pa.receive_type::<Note>(Some(WAIT)).await, Some(Note(5)));
    // Control traffic is never dropped: a monitor still works.
    let victim = b.spawn(|_p: Process| async { ExitReason::custom("bye") });
    let mref = pa.monitor(&victim);
    assert!(matches!(
        expect_down(&mut pa, mref).await.reason,
        ExitReason::Custom(_) | ExitReason::NoProc
    ));
    assert!(
        pa.receive_match::<Echoed>(Some(Duration::from_millis(100)), |e| e.n == 1)
            .await
            .is_none()
    );
    b.faults().set_deaf(false);
    ask_echo(&pa, ("echo", b.name().clone()), 2, "now?");
    assert_eq!(expect_echo(&mut pa, 2).await.text, "now?");
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_cuts_server_traffic_both_ways_but_not_clients() {
    init_log();
    let ((a, ta), (b, _tb)) = pair("a@127.0.0.1", "b@127.0.0.1").await;
    let (c, tc, _) = start("c@127.0.0.1", NodeRole::Client, COOKIE).await;
    tc.add_peer("a@127.0.0.1", ta.local_addr().expect("listening"));
    spawn_echo(&a, "echo");
    spawn_echo(&b, "echo");
    let mut pa = a.attach();
    pa.register("inbox").expect("register");
    let mut pc = c.attach();
    // Connections first.
    for (p, dest) in [(&mut pa, b.name()), (&mut pc, a.name())] {
        ask_echo(p, ("echo", dest.clone()), 0, "hi");
        expect_echo(p, 0).await;
    }

    a.faults()
        .set_allow(Some(BTreeSet::from([a.name().clone()])));
    let (out_before, in_before) = (a.stats().dropped_out, a.stats().dropped_in);
    ask_echo(&pa, ("echo", b.name().clone()), 1, "cut");
    assert_eq!(a.stats().dropped_out, out_before + 1);
    b.send(None, ("inbox", a.name().clone()), Note(1));
    eventually("a drops b's message", || a.stats().dropped_in > in_before).await;
    // The client is never cut.
    ask_echo(&pc, ("echo", a.name().clone()), 2, "client");
    assert_eq!(expect_echo(&mut pc, 2).await.by, "a@127.0.0.1");
    assert!(
        pa.receive_type::<Note>(Some(Duration::from_millis(100)))
            .await
            .is_none()
    );

    a.faults().set_allow(None);
    ask_echo(&pa, ("echo", b.name().clone()), 3, "healed");
    assert_eq!(expect_echo(&mut pa, 3).await.text, "healed");
    a.stop();
    b.stop();
    c.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_only_node_is_reached_over_the_connection_it_opened() {
    init_log();
    let (a, ta, _) = start("a@127.0.0.1", NodeRole::Server, COOKIE).await;
    let cfg = TcpConfig::new(COOKIE).peer("a@127.0.0.1", ta.local_addr().expect("listening"));
    let (c, tc) = TcpTransport::start("cli@127.0.0.1", NodeRole::Client, cfg)
        .await
        .expect("client starts");
    assert_eq!(tc.local_addr(), None);
    spawn_echo(&a, "echo");
    let mut pc = c.attach();
    ask_echo(&pc, ("echo", a.name().clone()), 1, "from a client");
    assert_eq!(expect_echo(&mut pc, 1).await.text, "from a client");
    assert!(!ta.peers().iter().any(|(n, _)| n == c.name()));

    let mut pa = a.attach();
    let mref = pa.monitor(pc.pid());
    c.stop();
    assert_eq!(
        expect_down(&mut pa, mref).await.reason,
        ExitReason::NoConnection
    );
    // With no connection and no address, a monitor fails at once.
    let mref = pa.monitor(pc.pid());
    assert_eq!(
        expect_down(&mut pa, mref).await.reason,
        ExitReason::NoConnection
    );
    a.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_peer_is_down_and_retried_after_backoff() {
    init_log();
    // A port nobody listens on: bind one, note it, close it.
    let dead = {
        let l = std::net::TcpListener::bind(any_port()).expect("bind");
        l.local_addr().expect("addr")
    };
    let (a, ta, _) = start("a@127.0.0.1", NodeRole::Server, COOKIE).await;
    ta.add_peer("ghost@127.0.0.1", dead);
    let mut pa = a.attach();
    let started = Instant::now();
    let mref = pa.monitor(("echo", NodeName::new("ghost@127.0.0.1")));
    assert_eq!(
        expect_down(&mut pa, mref).await.reason,
        ExitReason::NoConnection
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // Within the backoff window the monitor is dropped and fails at once too.
    let mref = pa.monitor(("echo", NodeName::new("ghost@127.0.0.1")));
    assert_eq!(
        expect_down(&mut pa, mref).await.reason,
        ExitReason::NoConnection
    );
    assert!(ta.dropped_frames() >= 2);

    // Once something listens there, a later send connects.
    let (g, _tg) = start_on("ghost@127.0.0.1", dead).await;
    spawn_echo(&g, "echo");
    let deadline = Instant::now() + WAIT;
    let mut n = 0;
    loop {
        n += 1;
        ask_echo(&pa, ("echo", g.name().clone()), n, "found you");
        if pa
            .receive_match::<Echoed>(Some(Duration::from_millis(200)), |e| e.n == n)
            .await
            .is_some()
        {
            break;
        }
        assert!(Instant::now() < deadline, "never connected");
    }
    a.stop();
    g.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_dials_leave_one_connection_and_lose_nothing() {
    init_log();
    for round in 0..5 {
        let ((a, _ta), (b, _tb)) = pair("a@127.0.0.1", "b@127.0.0.1").await;
        const N: u64 = 300;
        let mut sa = a.attach();
        sa.register("sink").expect("register");
        let mut sb = b.attach();
        sb.register("sink").expect("register");
        // Both nodes send first, at the same moment, so both dial.
        let (an, bn) = (a.name().clone(), b.name().clone());
        let (a2, b2) = (a.clone(), b.clone());
        let ta = tokio::spawn(async move {
            for k in 0..N {
                a2.send(None, ("sink", bn.clone()), Note(k));
            }
        });
        let tb = tokio::spawn(async move {
            for k in 0..N {
                b2.send(None, ("sink", an.clone()), Note(k));
            }
        });
        ta.await.expect("sender a");
        tb.await.expect("sender b");
        for (name, sink) in [("a", &mut sa), ("b", &mut sb)] {
            for k in 0..N {
                assert_eq!(
                    sink.receive_type::<Note>(Some(WAIT)).await,
                    Some(Note(k)),
                    "round {round}: sink on {name}"
                );
            }
        }
        assert_eq!(a.connected_nodes(), vec![b.name().clone()]);
        assert_eq!(b.connected_nodes(), vec![a.name().clone()]);
        a.stop();
        b.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_gets_every_frame_in_order() {
    init_log();
    use runtime::transport::tcp::frame::{Frame, decode};
    // A fake peer that completes the handshake and then reads nothing until the sender
    // is done, so the socket fills and the writer task takes over from direct writes.
    let listener = tokio::net::TcpListener::bind(any_port())
        .await
        .expect("bind");
    let fake_addr = listener.local_addr().expect("addr");
    let (a, ta, _) = start("a@127.0.0.1", NodeRole::Server, COOKIE).await;
    ta.add_peer("slow@127.0.0.1", fake_addr);
    // 8 MiB: about twice what the socket buffers hold while nobody reads (the send
    // buffer grows to 4 MiB at most, the receive buffer stays small).
    const N: u64 = 1000;
    const BODY: usize = 8 * 1024;
    let fake = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let me = fake_identity("slow@127.0.0.1", 1);
        let auth = handshake::accept(&mut s, &me, COOKIE.as_bytes())
            .await
            .expect("handshake");
        s.write_all(&auth.welcome_frame().expect("welcome"))
            .await
            .expect("write");
        s
    });
    let pa = a.attach();
    for k in 0..N {
        pa.send(
            ("sink", NodeName::new("slow@127.0.0.1")),
            (k, vec![1u8; BODY]),
        );
    }
    // Every send has returned: far more than the socket buffers hold is now waiting.
    let (mut s, mut w) = fake.await.expect("fake peer").into_split();
    // Ticks from the fake peer, so that a slow read in a debug build is not silence.
    let ticker = tokio::spawn(async move {
        let tick = runtime::transport::tcp::frame::tick_frame();
        while w.write_all(&tick).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut next = 0u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while next < N {
        let mut prefix = [0u8; 4];
        tokio::time::timeout_at(deadline, s.read_exact(&mut prefix))
            .await
            .expect("in time")
            .expect("frame prefix");
        let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
        tokio::time::timeout_at(deadline, s.read_exact(&mut body))
            .await
            .expect("in time")
            .expect("frame body");
        match decode::<Frame>(&body).expect("a well-formed frame") {
            Frame::Tick => {}
            Frame::Wire(Wire::Msg { body, .. }) => {
                let (k, data): (u64, Vec<u8>) = postcard::from_bytes(&body).expect("message");
                assert_eq!((k, data.len()), (next, BODY), "frames out of order");
                next += 1;
            }
            Frame::Wire(other) => panic!("unexpected frame {other:?}"),
        }
    }
    ticker.abort();
    a.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_limits_hold_on_both_ends_and_big_frames_pass() {
    init_log();
    let ((b, tb), (c, _tc)) = pair("b@127.0.0.1", "c@127.0.0.1").await;
    let mut cfg = TcpConfig::new(COOKIE).listen(any_port());
    cfg.max_frame = 64 * 1024;
    let (a, ta) = TcpTransport::start("a@127.0.0.1", NodeRole::Server, cfg)
        .await
        .expect("node starts");
    ta.add_peer("b@127.0.0.1", tb.local_addr().expect("listening"));
    tb.add_peer("a@127.0.0.1", ta.local_addr().expect("listening"));
    let mut sink_b = b.attach();
    sink_b.register("sink").expect("register");
    let mut sink_c = c.attach();
    sink_c.register("sink").expect("register");
    let mut inbox_a = a.attach();
    inbox_a.register("inbox").expect("register");

    // Within a's limit: delivered. Over it: dropped by a before it leaves.
    a.send(None, ("sink", b.name().clone()), vec![7u8; 60 * 1024]);
    let got = sink_b.receive_type::<Vec<u8>>(Some(WAIT)).await;
    assert_eq!(got.map(|v| v.len()), Some(60 * 1024));
    let dropped = ta.dropped_frames();
    a.send(None, ("sink", b.name().clone()), vec![7u8; 100 * 1024]);
    assert_eq!(ta.dropped_frames(), dropped + 1);
    a.send(None, ("sink", b.name().clone()), Note(1));
    assert_eq!(sink_b.receive_type::<Note>(Some(WAIT)).await, Some(Note(1)));
    assert!(
        sink_b
            .receive_type::<Vec<u8>>(Some(Duration::from_millis(50)))
            .await
            .is_none()
    );

    // b may send 4 MiB (its limit is the default), but a refuses it on arrival: that
    // connection closes, so b's monitor on a's process fires; nothing is delivered.
    let mut pb = b.attach();
    let mref = pb.monitor(("inbox", a.name().clone()));
    let big: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    pb.send(("inbox", a.name().clone()), big.clone());
    assert_eq!(
        expect_down(&mut pb, mref).await.reason,
        ExitReason::NoConnection
    );
    // A later send connects again.
    pb.send(("inbox", a.name().clone()), Note(2));
    assert_eq!(
        inbox_a.receive_type::<Note>(Some(WAIT)).await,
        Some(Note(2))
    );
    assert!(
        inbox_a
            .receive_type::<Vec<u8>>(Some(Duration::from_millis(50)))
            .await
            .is_none()
    );

    // Between two nodes with the default limit, the 4 MiB frame crosses whole.
    pb.send(("sink", c.name().clone()), big.clone());
    assert_eq!(sink_c.receive_type::<Vec<u8>>(Some(WAIT)).await, Some(big));
    a.stop();
    b.stop();
    c.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_per_pair_and_only_a_proven_incarnation_replaces_it() {
    init_log();
    use runtime::transport::tcp::handshake::{HandshakeError, Refusal};
    let (a, ta, a_addr) = start("a@127.0.0.1", NodeRole::Server, COOKIE).await;
    let listener = tokio::net::TcpListener::bind(any_port())
        .await
        .expect("bind");
    ta.add_peer("f@127.0.0.1", listener.local_addr().expect("addr"));
    let fake = |instance| fake_identity("f@127.0.0.1", instance);
    let f5 = fake(5);
    // a dials the fake peer f (instance 5), which accepts.
    let mut pa = a.attach();
    let mref = pa.monitor(("x", NodeName::new("f@127.0.0.1")));
    let (mut first, _) = listener.accept().await.expect("a dials f");
    let auth = handshake::accept(&mut first, &f5, COOKIE.as_bytes())
        .await
        .expect("handshake");
    first
        .write_all(&auth.welcome_frame().expect("welcome"))
        .await
        .expect("write");
    eventually("a connected to f", || {
        a.connected_nodes() == vec![NodeName::new("f@127.0.0.1")]
    })
    .await;

    // The same incarnation of f dialing a as well is refused: a keeps its own connection.
    let mut second = TcpStream::connect(a_addr).await.expect("connect");
    let refused = handshake::dial(&mut second, &f5, COOKIE.as_bytes(), Some(a.name())).await;
    assert!(
        matches!(refused, Err(HandshakeError::Refused(Refusal::Busy))),
        "{refused:?}"
    );
    // A cookie holder claiming f's name and incarnation number, without f's token, and
    // a new incarnation of f while the old connection lives, are refused too.
    for claim in [fake(5), fake(6)] {
        let mut s = TcpStream::connect(a_addr).await.expect("connect");
        let refused = handshake::dial(&mut s, &claim, COOKIE.as_bytes(), Some(a.name())).await;
        assert!(
            matches!(refused, Err(HandshakeError::Refused(Refusal::Busy))),
            "{refused:?}"
        );
    }
    assert!(
        pa.receive_type::<Down>(Some(Duration::from_millis(100)))
            .await
            .is_none()
    );
    assert_eq!(a.connected_nodes(), vec![NodeName::new("f@127.0.0.1")]);

    // Once the old connection ends, the restarted f (another incarnation) gets in.
    drop(first);
    assert_eq!(
        expect_down(&mut pa, mref).await.reason,
        ExitReason::NoConnection
    );
    let f6 = fake(6);
    let deadline = Instant::now() + WAIT;
    let mut third = loop {
        let mut s = TcpStream::connect(a_addr).await.expect("connect");
        match handshake::dial(&mut s, &f6, COOKIE.as_bytes(), Some(a.name())).await {
            Ok(_) => break s,
            Err(HandshakeError::Refused(Refusal::Busy)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("the restarted peer is refused: {e}"),
        }
    };
    assert_eq!(a.connected_nodes(), vec![NodeName::new("f@127.0.0.1")]);
    // And the new connection carries frames.
    let mut inbox = a.attach();
    inbox.register("inbox").expect("register");
    third
        .write_all(&msg_frame(Dest::Name("inbox".into()), &Note(9)))
        .await
        .expect("write");
    assert_eq!(inbox.receive_type::<Note>(Some(WAIT)).await, Some(Note(9)));
    a.stop();
}
