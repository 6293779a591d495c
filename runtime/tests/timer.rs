//! Timers: `send_after` delivers after its delay, `cancel` before firing prevents delivery.

use runtime::transport::memory::Network;
use runtime::{Node, NodeRole, timer};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Tick(u32);

const GENEROUS: Duration = Duration::from_secs(10);

fn node() -> Node {
    Network::new().start_node("a@test", NodeRole::Server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_after_delivers_after_the_delay() {
    let node = node();
    let mut me = node.attach();
    let delay = Duration::from_millis(80);
    let started = Instant::now();
    let t = timer::send_after(&node, delay, me.pid(), Tick(1));
    assert!(t.is_pending());
    let got = me.receive_type::<Tick>(Some(GENEROUS)).await;
    let elapsed = started.elapsed();
    assert_eq!(got, Some(Tick(1)));
    assert!(
        elapsed >= delay,
        "delivered after {elapsed:?}, before {delay:?}"
    );
    assert!(!t.is_pending());
    assert!(!t.cancel(), "cancel after firing must say it had fired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_before_firing_prevents_delivery() {
    let node = node();
    let mut me = node.attach();
    let delay = Duration::from_millis(100);
    let t = timer::send_after(&node, delay, me.pid(), Tick(2));
    assert!(timer::cancel(&t), "a pending timer cancels");
    assert!(!timer::cancel(&t), "a second cancel finds nothing pending");
    // Absence can only be checked by waiting past the delay (three times it).
    let got = me.recv_timeout(delay * 3).await;
    assert!(got.is_none(), "a cancelled timer delivered {got:?}");
    // A timer that was not cancelled still fires: the mailbox works.
    timer::send_after(&node, Duration::from_millis(1), me.pid(), Tick(3));
    assert_eq!(me.receive_type::<Tick>(Some(GENEROUS)).await, Some(Tick(3)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_send_after_names_the_process_as_sender_and_works_by_name() {
    let node = node();
    let mut me = node.attach();
    me.register("listener").expect("register");
    let sender = node.attach();
    let delay = Duration::from_millis(30);
    let started = Instant::now();
    sender.send_after(delay, "listener", Tick(4));
    let env = me.recv_timeout(GENEROUS).await.expect("the timer fired");
    assert!(started.elapsed() >= delay);
    assert_eq!(env.from(), Some(sender.pid()));
    assert_eq!(env.downcast::<Tick>().ok(), Some(Tick(4)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_timer_does_not_keep_its_node_alive() {
    let node = Node::new("lonely@test", NodeRole::Server);
    let weak = node.downgrade();
    let target = node.attach();
    let pid = target.pid().clone();
    drop(target);
    let t = timer::send_after(&node, Duration::from_secs(3600), pid, Tick(5));
    drop(node);
    assert!(weak.upgrade().is_none(), "the timer holds the node");
    assert!(t.cancel());
}
