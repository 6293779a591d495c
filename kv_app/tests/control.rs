//! The node's control process asked from another node: the remote Paxos API (`status N`,
//! `max`, `min`, `messages`, the original's `estado`, `max`, `min`, `n_mensajes`) and
//! `unreliable` with a loss model; and a stopped client stopping.

mod common;

use common::{Cluster, LONG, within};
use kv_app::ClientError;
use kv_app::control::{self, ControlReply, ControlRequest, InstanceState, PaxosAnswer, PaxosQuery};
use kv_app::ops::LogEntry;
use runtime::faults::{LossModel, MIT_REQUEST_LOSS};
use runtime::{Down, ExitReason, NodeRole};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peers_paxos_state_is_asked_from_another_node() {
    let c = Cluster::new("remote", 3).await;
    let ck = c.client_all();
    within("writes", async {
        for i in 0..3 {
            ck.write("k", &format!("v{i}")).await.unwrap();
        }
    })
    .await;
    c.wait_replicas_equal().await;
    let asker = c.net.start_node("remote-ask@mem", NodeRole::Client);
    for (i, s) in c.servers.iter().enumerate() {
        let target = &c.names[i];
        let ask = |q| control::paxos(&asker, target, q, LONG);
        let PaxosAnswer::Max(max) = ask(PaxosQuery::Max).await.unwrap() else {
            panic!("max answered something else");
        };
        assert_eq!(max, s.log().max(), "server {i}: max");
        assert!(max >= 3, "server {i}: max {max} after three writes");
        let PaxosAnswer::Min(min) = ask(PaxosQuery::Min).await.unwrap() else {
            panic!("min answered something else");
        };
        assert_eq!(min, s.log().min(), "server {i}: min");
        // The latest instance: decided, and the value is the local one.
        let PaxosAnswer::Status { seq, state, value } = ask(PaxosQuery::Status(max)).await.unwrap()
        else {
            panic!("status answered something else");
        };
        assert_eq!((seq, state), (max, InstanceState::Decided), "server {i}");
        let paxos_app::Status::Decided(local) = s.log().status(max) else {
            panic!("server {i}: instance {max} not decided locally");
        };
        assert_eq!(value, Some(local.to_vec()));
        assert!(value.is_some_and(|v| {
            v.iter()
                .all(|e| matches!(e, LogEntry::Op(_) | LogEntry::DeleteRef(_)))
        }));
        let PaxosAnswer::Status { state, value, .. } =
            ask(PaxosQuery::Status(max + 100)).await.unwrap()
        else {
            panic!("status answered something else");
        };
        assert_eq!((state, value), (InstanceState::Pending, None));
        let PaxosAnswer::Messages { requests, node } = ask(PaxosQuery::Messages).await.unwrap()
        else {
            panic!("messages answered something else");
        };
        assert!(requests.accept >= 1, "server {i}: {requests:?}");
        assert!(node.received > 0, "server {i}: {node:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreliable_takes_a_loss_model_over_control() {
    let c = Cluster::new("ctlmodel", 3).await;
    let asker = c.net.start_node("ctlmodel-ask@mem", NodeRole::Client);
    let reply = control::call(
        &asker,
        &c.names[1],
        ControlRequest::UnreliableModel {
            model: LossModel::Mit,
            probability: 0.2,
        },
        LONG,
    )
    .await
    .unwrap();
    assert_eq!(reply, ControlReply::Done);
    let state = c.node(1).fault_state();
    assert_eq!(
        (state.model, state.drop),
        (LossModel::Mit, MIT_REQUEST_LOSS)
    );
    let refused = control::call(
        &asker,
        &c.names[1],
        ControlRequest::UnreliableModel {
            model: LossModel::Original,
            probability: 1.5,
        },
        LONG,
    )
    .await
    .unwrap();
    assert!(matches!(refused, ControlReply::Refused(_)), "{refused:?}");
    control::call(&asker, &c.names[1], ControlRequest::Reliable, LONG)
        .await
        .unwrap();
    let state = c.node(1).fault_state();
    assert_eq!((state.model, state.drop), (LossModel::Boundary, 0.0));
}

/// A client whose only server is cut off from the majority has its operation in flight;
/// stopping the client ends the operation (its caller hears `Stopped`) and the client
/// process (it no longer resends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_client_cancels_its_operation_in_flight() {
    let c = Cluster::new("stop", 3).await;
    c.partition(&[&[0, 1], &[2]]);
    let ck = c.client(&[2]);
    let pid = ck.pid().clone();
    let op = {
        let ck = ck.clone();
        tokio::spawn(async move { ck.write("k", "never-acknowledged").await })
    };
    // The operation is in flight: server 2 is trying to reach the others.
    common::wait_until("server 2 tries to reach the majority", || {
        c.dropped_at(&[2]).cut > 0
    })
    .await;
    assert!(!op.is_finished(), "a write at a minority completed");
    let watcher = c.net.start_node("stop-watch@mem", NodeRole::Client);
    let mut me = watcher.attach();
    let mref = me.monitor(&pid);
    ck.stop();
    let got = within("the stopped client's operation", op).await.unwrap();
    assert_eq!(got, Err(ClientError::Stopped));
    let down = me
        .receive_match::<Down>(Some(LONG), |d| d.mref == mref)
        .await
        .expect("the client process ends");
    assert_eq!(down.reason, ExitReason::Normal);
}
