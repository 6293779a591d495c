//! Processes on one node and across in-memory nodes: send, receive, selective receive,
//! registry, links, trap_exit, monitors, exit signals, panics, introspection.

use runtime::transport::memory::Network;
use runtime::{Down, Exit, ExitReason, Node, NodeRole, Pid, Process};
use serde::{Deserialize, Serialize};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping(u32);

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pong(u32);

fn node(name: &str) -> Node {
    Node::new(name, NodeRole::Server)
}

async fn expect_down(p: &mut Process, mref: runtime::Ref) -> Down {
    p.receive_match::<Down>(Some(LONG), |d| d.mref == mref)
        .await
        .expect("no Down within the deadline")
}

/// Waits until `cond` holds, polling, or panics after the deadline.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + LONG;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_by_pid_and_by_name_and_reply() {
    let n = node("a@test");
    let echo = n.spawn(|mut p: Process| async move {
        loop {
            let env = p.recv().await;
            let from = env.from().cloned();
            if let (Ok(Ping(x)), Some(from)) = (env.downcast::<Ping>(), from) {
                p.send(from, Pong(x + 1));
            }
        }
    });
    n.register("echo", &echo).unwrap();
    let mut me = n.attach();
    me.send(&echo, Ping(1));
    me.send("echo", Ping(10));
    me.send(("echo", n.name()), Ping(100));
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(me.receive_type::<Pong>(Some(LONG)).await.unwrap().0);
    }
    assert_eq!(got, vec![2, 11, 101]);
    assert_eq!(n.whereis("echo"), Some(echo.clone()));
    assert!(n.unregister("echo"));
    assert_eq!(n.whereis("echo"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selective_receive_keeps_the_rest_in_order() {
    let n = node("a@test");
    let mut me = n.attach();
    for i in 0..5 {
        me.send(me.pid(), Ping(i));
    }
    me.send(me.pid(), Pong(99));
    // Take the Pong first, though it arrived last.
    let pong = me.receive_type::<Pong>(Some(LONG)).await.unwrap();
    assert_eq!(pong, Pong(99));
    // Then the Ping 3, skipping 0..2.
    let three = me
        .receive_match::<Ping>(Some(LONG), |p| p.0 == 3)
        .await
        .unwrap();
    assert_eq!(three, Ping(3));
    assert_eq!(me.mailbox_len(), 4);
    let mut rest = Vec::new();
    while let Some(env) = me.recv_timeout(Duration::from_millis(50)).await {
        rest.push(env.downcast::<Ping>().unwrap().0);
    }
    assert_eq!(rest, vec![0, 1, 2, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_times_out() {
    let n = node("a@test");
    let mut me = n.attach();
    let t = tokio::time::Instant::now();
    assert!(me.recv_timeout(Duration::from_millis(100)).await.is_none());
    assert!(t.elapsed() >= Duration::from_millis(100));
    assert!(
        me.receive_type::<Ping>(Some(Duration::from_millis(50)))
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_refuses_duplicates_and_frees_names_on_exit() {
    let n = node("a@test");
    let mut me = n.attach();
    let (a, mref) = me.spawn_monitor(|mut p: Process| async move {
        p.receive_type::<Ping>(None).await;
    });
    n.register("x", &a).unwrap();
    let b = n.spawn(|mut p: Process| async move {
        p.recv().await;
    });
    assert!(matches!(
        n.register("x", &b),
        Err(runtime::NodeError::AlreadyRegistered(_))
    ));
    me.send("x", Ping(0));
    expect_down(&mut me, mref).await;
    assert_eq!(n.whereis("x"), None, "name freed when its process ends");
    n.register("x", &b).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_carry_the_exit_reason() {
    let n = node("a@test");
    let mut me = n.attach();
    let (_, normal) = me.spawn_monitor(|_p: Process| async {});
    let (_, custom) = me.spawn_monitor(|_p: Process| async { ExitReason::custom("bored") });
    let (_, panic) = me.spawn_monitor(|_p: Process| async {
        panic!("boom {}", 7);
    });
    assert_eq!(
        expect_down(&mut me, normal).await.reason,
        ExitReason::Normal
    );
    assert_eq!(
        expect_down(&mut me, custom).await.reason,
        ExitReason::custom("bored")
    );
    assert_eq!(
        expect_down(&mut me, panic).await.reason,
        ExitReason::Panic("boom 7".into())
    );
    // The node survived the panic: a new process works.
    let (_, again) = me.spawn_monitor(|_p: Process| async {});
    assert_eq!(expect_down(&mut me, again).await.reason, ExitReason::Normal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_of_a_dead_process_is_noproc_and_demonitor_flushes() {
    let n = node("a@test");
    let mut me = n.attach();
    let (dead, mref) = me.spawn_monitor(|_p: Process| async {});
    expect_down(&mut me, mref).await;
    let m2 = me.monitor(&dead);
    assert_eq!(expect_down(&mut me, m2).await.reason, ExitReason::NoProc);
    let m3 = me.monitor("nobody");
    assert_eq!(expect_down(&mut me, m3).await.reason, ExitReason::NoProc);

    let sleeper = n.spawn(|mut p: Process| async move {
        p.receive_type::<Ping>(None).await;
    });
    let m4 = me.monitor(&sleeper);
    me.demonitor(m4);
    me.send(&sleeper, Ping(0));
    assert!(
        me.receive_match::<Down>(Some(Duration::from_millis(200)), |d| d.mref == m4)
            .await
            .is_none(),
        "no Down after demonitor"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_propagate_abnormal_exits_and_trap_exit_turns_them_into_messages() {
    let n = node("a@test");
    let mut me = n.attach();
    // A middle process linked to a crashing child dies with the child's reason.
    let (middle, mref) = me.spawn_monitor(|p: Process| async move {
        let mut p = p;
        p.spawn_link(|_c: Process| async { ExitReason::custom("child crashed") });
        p.receive_type::<Ping>(None).await;
    });
    assert_eq!(
        expect_down(&mut me, mref).await.reason,
        ExitReason::custom("child crashed")
    );
    assert!(!n.is_alive(&middle));

    // A normal exit does not kill linked processes. The survivor also monitors its
    // child: a Down comes after the exit signals, so once the survivor has it (and
    // reports), the child's signal has reached it.
    let observer = me.pid().clone();
    let (survivor, mref) = me.spawn_monitor(move |mut p: Process| async move {
        let child = p.spawn_link(|mut c: Process| async move {
            c.receive_type::<Ping>(None).await;
        });
        let child_mref = p.monitor(&child);
        p.send(&child, Ping(0));
        let down = p
            .receive_match::<Down>(None, |d| d.mref == child_mref)
            .await;
        if down.is_some_and(|d| d.reason == ExitReason::Normal) {
            p.send(&observer, Pong(0));
        }
        p.receive_type::<Ping>(None).await;
    });
    assert_eq!(
        me.receive_type::<Pong>(Some(LONG)).await,
        Some(Pong(0)),
        "the survivor outlived its child's normal exit"
    );
    assert!(n.is_alive(&survivor), "normal exit must not propagate");
    me.send(&survivor, Ping(0));
    assert_eq!(expect_down(&mut me, mref).await.reason, ExitReason::Normal);

    // trap_exit: the signal arrives as an Exit message.
    me.trap_exit(true);
    let child = me.spawn_link(|_c: Process| async { ExitReason::custom("oops") });
    let exit = me
        .receive_match::<Exit>(Some(LONG), |e| e.from == child)
        .await
        .unwrap();
    assert_eq!(exit.reason, ExitReason::custom("oops"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_signals_kill_and_kill_cannot_be_trapped() {
    let n = node("a@test");
    let mut me = n.attach();
    let (victim, mref) = me.spawn_monitor(|mut p: Process| async move {
        p.receive_type::<Ping>(None).await;
    });
    me.exit(&victim, ExitReason::custom("go away"));
    assert_eq!(
        expect_down(&mut me, mref).await.reason,
        ExitReason::custom("go away")
    );

    // A trapping process receives exit/2 signals as messages...
    let (trapper, mref) = me.spawn_monitor(|mut p: Process| async move {
        p.trap_exit(true);
        let e = p.receive_type::<Exit>(None).await;
        // ... and survives them, until it is killed.
        p.send(e.unwrap().from, Pong(1));
        p.receive_type::<Ping>(None).await;
    });
    // Let it set trap_exit first.
    wait_until("trap_exit set", || {
        n.processes()
            .iter()
            .any(|i| i.pid == trapper.to_string() && i.trap_exit)
    })
    .await;
    me.exit(&trapper, ExitReason::Shutdown);
    assert_eq!(me.receive_type::<Pong>(Some(LONG)).await, Some(Pong(1)));
    me.exit(&trapper, ExitReason::Kill);
    assert_eq!(expect_down(&mut me, mref).await.reason, ExitReason::Killed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_shows_names_mailboxes_and_counts() {
    let n = node("a@test");
    let idle = n.spawn(|mut p: Process| async move {
        p.receive_type::<Pong>(None).await;
    });
    n.register("idle", &idle).unwrap();
    for i in 0..3 {
        n.send(None, &idle, Ping(i));
    }
    let info = n.processes();
    let entry = info
        .iter()
        .find(|i| i.pid == idle.to_string())
        .expect("idle listed");
    assert_eq!(entry.name.as_deref(), Some("idle"));
    assert_eq!(entry.mailbox, 3);
    assert!(n.stats().processes >= 1);
    n.send(None, "no-such-name", Ping(0));
    assert_eq!(n.stats().undeliverable, 1);
}

fn two_nodes(net: &Network) -> (Node, Node) {
    (
        net.start_node("a@mem", NodeRole::Server),
        net.start_node("b@mem", NodeRole::Server),
    )
}

/// A process on `node` registered as `name` that answers each Ping with a Pong.
fn echo_on(node: &Node, name: &str) -> Pid {
    let pid = node.spawn(|mut p: Process| async move {
        loop {
            let env = p.recv().await;
            let from = env.from().cloned();
            if let (Ok(Ping(x)), Some(from)) = (env.downcast::<Ping>(), from) {
                p.send(from, Pong(x));
            }
        }
    });
    node.register(name, &pid).unwrap();
    pid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_send_by_pid_and_name_keeps_order() {
    let net = Network::new();
    let (a, b) = two_nodes(&net);
    let echo = echo_on(&b, "echo");
    let mut me = a.attach();
    for i in 0..1000 {
        if i % 2 == 0 {
            me.send(&echo, Ping(i));
        } else {
            me.send(("echo", b.name()), Ping(i));
        }
    }
    for i in 0..1000 {
        assert_eq!(me.receive_type::<Pong>(Some(LONG)).await, Some(Pong(i)));
    }
    assert_eq!(a.stats().sent, 1000);
    assert_eq!(b.stats().received, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_monitors_links_and_lost_nodes() {
    let net = Network::new();
    let (a, b) = two_nodes(&net);
    let mut me = a.attach();
    me.trap_exit(true);
    let remote = b.spawn(|mut p: Process| async move {
        p.receive_type::<Ping>(None).await;
        ExitReason::custom("asked to stop")
    });
    let mref = me.monitor(&remote);
    me.send(&remote, Ping(0));
    let d = expect_down(&mut me, mref).await;
    assert_eq!(d.reason, ExitReason::custom("asked to stop"));
    assert_eq!(d.pid, remote);

    // A remote process linked and monitored; its node stops: noconnection, both ways.
    let linked = echo_on(&b, "echo");
    me.link(&linked);
    let mref = me.monitor(("echo", b.name()));
    // Make sure the link and monitor are installed before the node goes away.
    me.send(&linked, Ping(5));
    assert_eq!(me.receive_type::<Pong>(Some(LONG)).await, Some(Pong(5)));
    let t = tokio::time::Instant::now();
    b.stop();
    let d = expect_down(&mut me, mref).await;
    assert_eq!(d.reason, ExitReason::NoConnection);
    let e = me
        .receive_match::<Exit>(Some(LONG), |e| e.from == linked)
        .await
        .unwrap();
    assert_eq!(e.reason, ExitReason::NoConnection);
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deaf_node_drops_incoming_but_still_sends() {
    let net = Network::new();
    let (a, b) = two_nodes(&net);
    let mut on_a = a.attach();
    let mut on_b = b.attach();
    b.faults().set_deaf(true);
    on_a.send(on_b.pid(), Ping(1));
    on_b.send(on_a.pid(), Ping(2));
    assert_eq!(on_a.receive_type::<Ping>(Some(LONG)).await, Some(Ping(2)));
    assert!(
        on_b.receive_type::<Ping>(Some(Duration::from_millis(200)))
            .await
            .is_none()
    );
    assert_eq!(b.stats().dropped_in, 1);
    // Control traffic still passes a deaf node.
    a.send_control(Some(on_a.pid()), on_b.pid(), Ping(3));
    assert_eq!(on_b.receive_type::<Ping>(Some(LONG)).await, Some(Ping(3)));
    b.faults().set_deaf(false);
    on_a.send(on_b.pid(), Ping(4));
    assert_eq!(on_b.receive_type::<Ping>(Some(LONG)).await, Some(Ping(4)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreliable_drops_about_the_given_fraction() {
    let seed = 20261128;
    let net = Network::new();
    let (a, b) = two_nodes(&net);
    a.faults().reseed(seed);
    a.faults().set_drop(0.2);
    let mut on_b = b.attach();
    let on_a = a.attach();
    let n = 5000;
    for i in 0..n {
        on_a.send(on_b.pid(), Ping(i));
    }
    let mut got = 0;
    while on_b
        .receive_type::<Ping>(Some(Duration::from_millis(300)))
        .await
        .is_some()
    {
        got += 1;
    }
    let dropped = f64::from(n - got) / f64::from(n);
    assert!(
        (0.17..=0.23).contains(&dropped),
        "seed {seed}: dropped {dropped}, expected about 0.2"
    );
    assert_eq!(a.stats().dropped_out, u64::from(n - got));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_cuts_server_traffic_both_ways_but_not_clients() {
    let net = Network::new();
    let s1 = net.start_node("s1@mem", NodeRole::Server);
    let s2 = net.start_node("s2@mem", NodeRole::Server);
    let c = net.start_node("c@mem", NodeRole::Client);
    let mut p1 = s1.attach();
    let mut p2 = s2.attach();
    let mut pc = c.attach();
    s1.faults()
        .set_allow(Some([s1.name().clone()].into_iter().collect()));
    p1.send(p2.pid(), Ping(1));
    p2.send(p1.pid(), Ping(2));
    let quiet = Some(Duration::from_millis(200));
    assert!(
        p2.receive_type::<Ping>(quiet).await.is_none(),
        "s1 -> s2 cut"
    );
    assert!(
        p1.receive_type::<Ping>(quiet).await.is_none(),
        "s2 -> s1 cut"
    );
    // The client still reaches s1 and hears from it.
    pc.send(p1.pid(), Ping(3));
    assert_eq!(p1.receive_type::<Ping>(Some(LONG)).await, Some(Ping(3)));
    p1.send(pc.pid(), Ping(4));
    assert_eq!(pc.receive_type::<Ping>(Some(LONG)).await, Some(Ping(4)));
    s1.faults().set_allow(None);
    p1.send(p2.pid(), Ping(5));
    assert_eq!(p2.receive_type::<Ping>(Some(LONG)).await, Some(Ping(5)));
}
