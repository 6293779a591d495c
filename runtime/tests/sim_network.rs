//! The simulated network (`runtime::transport::sim`) on a paused clock: what it does to
//! messages (loses, duplicates, holds back and so reorders them) is counted and seen by
//! the receiver; control traffic arrives complete and in order; a node that leaves is
//! seen down; and the same seed gives the same trace.

use runtime::clock::{self, Duration};
use runtime::transport::sim::{SimConfig, SimNetwork, SimStats};
use runtime::{Down, ExitReason, NodeRole};

const MESSAGES: u64 = 2_000;

fn rough() -> SimConfig {
    SimConfig {
        loss: 0.1,
        duplicate: 0.1,
        straggle: 0.1,
        reorder: true,
        ..SimConfig::default()
    }
}

/// Sends `MESSAGES` numbered messages from one node to another, plus as many numbered
/// control messages; returns what arrived of each, the network's figures and trace.
async fn exchange(config: SimConfig, seed: u64) -> (Vec<u64>, Vec<u64>, SimStats, u64) {
    let net = SimNetwork::new(config, seed);
    let a = net.start_node("a@sim", NodeRole::Server, seed);
    let b = net.start_node("b@sim", NodeRole::Server, seed + 1);
    let mut receiver = b.attach();
    for i in 0..MESSAGES {
        a.send(None, receiver.pid(), i);
        a.send_control(None, receiver.pid(), (i, "control".to_string()));
    }
    let (mut plain, mut control) = (Vec::new(), Vec::new());
    // Everything has arrived once nothing comes for longer than the longest delay.
    while let Some(env) = receiver.recv_timeout(Duration::from_secs(1)).await {
        match env.downcast::<u64>() {
            Ok(i) => plain.push(i),
            Err(env) => match env.downcast::<(u64, String)>() {
                Ok((i, _)) => control.push(i),
                Err(env) => panic!("unexpected {env:?}"),
            },
        }
    }
    (plain, control, net.stats(), net.trace())
}

#[tokio::test(start_paused = true)]
async fn messages_are_lost_duplicated_and_reordered_control_traffic_is_not() {
    let (plain, control, stats, _) = exchange(rough(), 7).await;
    assert!(
        stats.lost > 100 && stats.duplicated > 100 && stats.straggled > 100,
        "{stats:?}"
    );
    // What the receiver saw matches the figures.
    assert_eq!(
        plain.len() as u64,
        MESSAGES - stats.lost + stats.duplicated,
        "{stats:?}"
    );
    let mut distinct = plain.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() < plain.len(), "duplicates arrived");
    assert!(
        (distinct.len() as u64) < MESSAGES,
        "some messages were lost"
    );
    assert!(
        plain.windows(2).any(|w| w[0] > w[1]),
        "some overtook others"
    );
    assert_eq!(control, (0..MESSAGES).collect::<Vec<_>>());
    assert_eq!(stats.delivered, plain.len() as u64 + MESSAGES);
}

#[tokio::test(start_paused = true)]
async fn a_fault_free_network_delivers_everything_in_order_within_the_delay() {
    let started = clock::now();
    let (plain, control, stats, _) = exchange(SimConfig::default(), 3).await;
    assert_eq!(plain, (0..MESSAGES).collect::<Vec<_>>());
    assert_eq!(control.len() as u64, MESSAGES);
    assert_eq!((stats.lost, stats.duplicated), (0, 0));
    // Simulated time: the last delivery, then the one-second silence that ends the wait.
    let took = clock::now().saturating_duration_since(started);
    assert!(took < Duration::from_millis(1_010), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_the_same_trace() {
    let (first, _, _, trace) = exchange(rough(), 11).await;
    let (second, _, _, again) = exchange(rough(), 11).await;
    let (_, _, _, other) = exchange(rough(), 12).await;
    assert_eq!((&first, trace), (&second, again));
    assert_ne!(trace, other);
}

#[tokio::test(start_paused = true)]
async fn a_stopped_node_is_seen_down_by_its_monitors() {
    let net = SimNetwork::new(SimConfig::default(), 5);
    let a = net.start_node("a@sim", NodeRole::Server, 1);
    let b = net.start_node("b@sim", NodeRole::Server, 2);
    let target = b.attach();
    let mut watcher = a.attach();
    let mref = watcher.monitor(target.pid());
    // The monitor is installed on b once the frame arrives.
    tokio::time::sleep(Duration::from_millis(10)).await;
    b.stop();
    let down = watcher
        .receive_type::<Down>(Some(Duration::from_secs(1)))
        .await
        .expect("a Down for the stopped node");
    assert_eq!(down.mref, mref);
    assert!(matches!(
        down.reason,
        ExitReason::NoConnection | ExitReason::Killed
    ));
    assert_eq!(net.nodes(), vec![a.name().clone()]);
}

#[tokio::test(start_paused = true)]
async fn without_reordering_lost_and_duplicated_messages_still_arrive_in_order() {
    let config = SimConfig {
        reorder: false,
        ..rough()
    };
    let (plain, _, stats, _) = exchange(config, 9).await;
    assert!(
        stats.lost > 100 && stats.duplicated > 100 && stats.straggled > 100,
        "{stats:?}"
    );
    assert!(plain.windows(2).all(|w| w[0] <= w[1]), "out of order");
}
