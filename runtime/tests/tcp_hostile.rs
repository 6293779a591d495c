//! Authenticated peers that lie, and careless operators, against TCP nodes: a node with
//! another member list, frames naming nodes other than their connection's, a name
//! claimed by a second connection, a member restarted without its state, a peer that
//! never reads.

use runtime::transport::Wire;
use runtime::transport::tcp::frame::encode_wire;
use runtime::transport::tcp::handshake::{self, HandshakeError, Identity, Refusal};
use runtime::transport::tcp::{TcpConfig, TcpTransport};
use runtime::{Dest, ExitReason, Node, NodeName, NodeRole, Process};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

const COOKIE: &str = "tcp-hostile-test-cookie";
const WAIT: Duration = Duration::from_secs(20);

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Note(u64);

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Big(Vec<u8>);

fn init_log() {
    let _ = env_logger::builder().is_test(true).try_init();
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn names(list: &[&str]) -> Vec<NodeName> {
    list.iter().map(NodeName::new).collect()
}

async fn start(name: &str, cfg: TcpConfig) -> (Node, TcpTransport) {
    TcpTransport::start(name, NodeRole::Server, cfg.listen(any_port()))
        .await
        .expect("node starts")
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn msg_frame<M: Serialize + 'static>(from: Option<runtime::Pid>, to: Dest, msg: &M) -> Vec<u8> {
    encode_wire(&Wire::Msg {
        from,
        to,
        tag: runtime::message::type_tag::<M>(),
        body: postcard::to_allocvec(msg).expect("encodes"),
        control: false,
    })
    .expect("frame")
}

/// Sends notes from `from` to `to`'s inbox until one arrives.
async fn reach(from: &Node, to: &NodeName, inbox: &mut Process) {
    let deadline = Instant::now() + WAIT;
    let mut n = 0;
    loop {
        n += 1;
        from.send(None, ("inbox", to.clone()), Note(n));
        if inbox
            .receive_match::<Note>(Some(Duration::from_millis(200)), |x| x.0 == n)
            .await
            .is_some()
        {
            return;
        }
        assert!(Instant::now() < deadline, "{to} never reached");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_member_list_is_refused_with_one_clear_error_on_both_sides() {
    init_log();
    let (a, b) = ("a@127.0.0.1", "b@127.0.0.1");
    let (na, ta) = start(a, TcpConfig::new(COOKIE).members(names(&[a, b]))).await;
    let (nb, tb) = start(
        b,
        TcpConfig::new(COOKIE).members(names(&[a, b, "c@127.0.0.1"])),
    )
    .await;
    ta.add_peer(b, tb.local_addr().expect("listening"));
    na.send(None, ("inbox", nb.name().clone()), Note(1));
    eventually("both sides refuse", || {
        ta.last_rejection().is_some() && tb.last_rejection().is_some()
    })
    .await;
    let (why_a, why_b) = (
        ta.last_rejection().unwrap_or_default(),
        tb.last_rejection().unwrap_or_default(),
    );
    for why in [&why_a, &why_b] {
        assert!(why.contains("another member list"), "{why}");
        assert!(why.contains("start every node with the same list"), "{why}");
    }
    assert!(why_a.contains("[a@127.0.0.1,b@127.0.0.1]"), "{why_a}");
    assert!(
        why_b.contains("[a@127.0.0.1,b@127.0.0.1,c@127.0.0.1]"),
        "{why_b}"
    );
    assert!(na.connected_nodes().is_empty() && nb.connected_nodes().is_empty());
    assert!(tb.stats().refused >= 1, "{:?}", tb.stats());
    na.stop();
    nb.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_naming_other_nodes_are_dropped_and_a_connected_name_is_not_taken_over() {
    init_log();
    let (a, b) = ("a@127.0.0.1", "b@127.0.0.1");
    let (na, ta) = start(a, TcpConfig::new(COOKIE)).await;
    let (nb, tb) = start(b, TcpConfig::new(COOKIE)).await;
    let a_addr = ta.local_addr().expect("listening");
    tb.add_peer(a, a_addr);
    let mut inbox = na.attach();
    inbox.register("inbox").expect("register");
    reach(&nb, na.name(), &mut inbox).await;
    let b_pid = nb.attach().pid().clone();

    // A cookie holder, connected as "rogue", sends frames in b's name.
    let rogue = Identity::new("rogue@127.0.0.1", NodeRole::Server, 1);
    let mut raw = TcpStream::connect(a_addr).await.expect("connect");
    handshake::dial(&mut raw, &rogue, COOKIE.as_bytes(), Some(na.name()))
        .await
        .expect("handshake with the right cookie");
    raw.write_all(&msg_frame(
        Some(b_pid.clone()),
        Dest::Name("inbox".into()),
        &Note(100),
    ))
    .await
    .expect("write");
    let link = encode_wire(&Wire::Link {
        from: b_pid.clone(),
        to: inbox.pid().clone(),
    })
    .expect("frame");
    raw.write_all(&link).await.expect("write");
    let elsewhere = Dest::Remote("inbox".into(), nb.name().clone());
    raw.write_all(&msg_frame(None, elsewhere, &Note(101)))
        .await
        .expect("write");
    // Then one honest frame: it arrives, so the three before it were seen and dropped.
    raw.write_all(&msg_frame(None, Dest::Name("inbox".into()), &Note(102)))
        .await
        .expect("write");
    let got = inbox
        .receive_match::<Note>(Some(WAIT), |n| n.0 >= 100)
        .await
        .expect("the honest frame");
    assert_eq!(got, Note(102));
    assert_eq!(ta.stats().forged, 3, "{:?}", ta.stats());

    // The rogue claims b's name on a second connection: b's connection stays.
    let claim = Identity::new(b, NodeRole::Server, nb.creation());
    let mut second = TcpStream::connect(a_addr).await.expect("connect");
    let refused = handshake::dial(&mut second, &claim, COOKIE.as_bytes(), Some(na.name())).await;
    assert!(
        matches!(refused, Err(HandshakeError::Refused(Refusal::Busy))),
        "{refused:?}"
    );
    reach(&nb, na.name(), &mut inbox).await;
    assert!(na.connected_nodes().contains(nb.name()));
    na.stop();
    nb.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_restarted_without_its_state_is_refused_and_told_what_to_do() {
    init_log();
    let (a, b) = ("a@127.0.0.1", "b@127.0.0.1");
    let members = || TcpConfig::new(COOKIE).members(names(&[a, b]));
    let (na, ta) = start(a, members()).await;
    let a_addr = ta.local_addr().expect("listening");
    let (nb, tb) = start(b, members()).await;
    tb.add_peer(a, a_addr);
    let mut inbox = na.attach();
    inbox.register("inbox").expect("register");
    reach(&nb, na.name(), &mut inbox).await;
    nb.stop();
    eventually("a sees b gone", || na.connected_nodes().is_empty()).await;

    // b again, same name, state lost: refused, and told why and what to do.
    let (nb2, tb2) = start(b, members()).await;
    assert!(nb2.creation() > nb.creation());
    tb2.add_peer(a, a_addr);
    nb2.send(None, ("inbox", na.name().clone()), Note(1));
    let why = tokio::time::timeout(WAIT, tb2.refused())
        .await
        .expect("b is refused");
    assert!(why.contains("restarted without its state"), "{why}");
    assert!(why.contains("new name"), "{why}");
    assert!(!na.connected_nodes().contains(nb2.name()));
    nb2.stop();

    // b from recovered state is welcome under its old name.
    let recovered = TcpConfig {
        recovered: true,
        ..members()
    };
    let (nb3, tb3) = start(b, recovered).await;
    tb3.add_peer(a, a_addr);
    reach(&nb3, na.name(), &mut inbox).await;
    na.stop();
    nb3.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_is_disconnected_not_buffered_without_end() {
    init_log();
    let cfg = TcpConfig {
        max_frame: 256 * 1024,
        max_outbox: 1024 * 1024,
        ..TcpConfig::new(COOKIE)
    };
    let (na, ta) = start("a@127.0.0.1", cfg).await;
    let listener = tokio::net::TcpListener::bind(any_port())
        .await
        .expect("bind");
    let f = NodeName::new("f@127.0.0.1");
    ta.add_peer(f.clone(), listener.local_addr().expect("addr"));
    let mut watcher = na.attach();
    let mref = watcher.monitor(("x", f.clone()));
    let (mut socket, _) = listener.accept().await.expect("a dials f");
    let fake = Identity::new(f.clone(), NodeRole::Server, 1);
    let auth = handshake::accept(&mut socket, &fake, COOKIE.as_bytes())
        .await
        .expect("handshake");
    socket
        .write_all(&auth.welcome_frame().expect("welcome"))
        .await
        .expect("write");
    eventually("a connected to f", || {
        na.connected_nodes() == vec![f.clone()]
    })
    .await;
    // f never reads: the kernel's buffers fill, then a's outgoing buffer, then a gives up.
    let mut sent = 0;
    while ta.stats().overflowed == 0 {
        assert!(
            sent < 2000,
            "sent {sent} frames of 200 KB, never overflowed"
        );
        na.send(None, ("x", f.clone()), Big(vec![7; 200 * 1024]));
        sent += 1;
        tokio::task::yield_now().await;
    }
    let down = watcher
        .receive_match::<runtime::Down>(Some(WAIT), |d| d.mref == mref)
        .await
        .expect("f is down");
    assert_eq!(down.reason, ExitReason::NoConnection);
    assert_eq!(ta.stats().overflowed, 1);
    drop(socket);
    na.stop();
}
