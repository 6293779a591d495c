//! The three `unreliable` loss models measured end to end: two unreliable in-memory
//! nodes, one sending requests and replies to the other; the share of each that arrives
//! is checked against what `docs/architecture.md` states for the model. Seeds are fixed
//! (the run is the same every time) and the tolerance is six standard deviations.

use runtime::faults::{LossModel, MIT_REPLY_LOSS, MIT_REQUEST_LOSS};
use runtime::transport::memory::Network;
use runtime::{Node, NodeRole};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Request(u32);

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Reply(u32);

const N: u32 = 5000;
const SEED: u64 = 20_261_203;

/// Waits until every frame `a` sent reached `b`'s faults (passed or dropped there).
async fn settled(a: &Node, b: &Node) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (sent, st) = (a.stats().sent, b.stats());
        if st.received + st.dropped_in == sent {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "frames unaccounted: sent {sent}, received {}, dropped {}",
            st.received,
            st.dropped_in
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends `N` requests then `N` replies from `a` to `b`, both unreliable under `model`
/// with probability `p`; returns the share of requests and of replies lost.
async fn measure(model: LossModel, p: f64) -> (f64, f64) {
    let net = Network::new();
    let a = net.start_node("a@mem", NodeRole::Server);
    let b = net.start_node("b@mem", NodeRole::Server);
    for (i, node) in [&a, &b].into_iter().enumerate() {
        node.mark_reply::<Reply>();
        node.faults().reseed(SEED + i as u64);
        node.faults().set_unreliable(model, p);
    }
    let on_a = a.attach();
    let mut on_b = b.attach();
    for i in 0..N {
        on_a.send(on_b.pid(), Request(i));
    }
    for i in 0..N {
        on_a.send(on_b.pid(), Reply(i));
    }
    settled(&a, &b).await;
    let (mut requests, mut replies) = (0u32, 0u32);
    while let Some(env) = on_b.receive(Some(Duration::ZERO), Ok).await {
        if env.is::<Request>() {
            requests += 1;
        } else if env.is::<Reply>() {
            replies += 1;
        }
    }
    let fa = a.faults().counts();
    let fb = b.faults().counts();
    assert_eq!(
        fa.lost_out + fb.lost_in,
        u64::from(2 * N - requests - replies),
        "{model}: every loss is counted"
    );
    let lost = |got: u32| f64::from(N - got) / f64::from(N);
    (lost(requests), lost(replies))
}

fn close(model: LossModel, what: &str, got: f64, want: f64) {
    let sigma = (want * (1.0 - want) / f64::from(N)).sqrt();
    assert!(
        (got - want).abs() <= 6.0 * sigma + 1e-9,
        "{model}, {what}: lost {got:.4}, the model says {want:.4} (seed {SEED})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boundary_loses_a_message_between_two_unreliable_nodes_twice_over() {
    let (req, rep) = measure(LossModel::Boundary, 0.2).await;
    let want = 1.0 - 0.8 * 0.8;
    close(LossModel::Boundary, "requests", req, want);
    close(LossModel::Boundary, "replies", rep, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn original_loses_each_message_once_at_its_receiver() {
    let (req, rep) = measure(LossModel::Original, 0.2).await;
    close(LossModel::Original, "requests", req, 0.2);
    close(LossModel::Original, "replies", rep, 0.2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mit_loses_a_tenth_of_requests_and_a_fifth_of_replies() {
    let (req, rep) = measure(LossModel::Mit, 0.2).await;
    close(LossModel::Mit, "requests", req, MIT_REQUEST_LOSS);
    close(LossModel::Mit, "replies", rep, MIT_REPLY_LOSS);
}
