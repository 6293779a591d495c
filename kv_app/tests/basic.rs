//! The original's basic test, made strict (with basic Paxos and with the distinguished
//! proposer).

mod common;

use common::{Cluster, within};
use kv_app::PaxosMode;

in_both_modes!(basic_operations);

async fn basic_operations(mode: PaxosMode) {
    let c = Cluster::in_mode("basic", 3, mode).await;
    let ck = c.client_all();
    within("basic", async {
        assert_eq!(ck.write_hash("x", "x").await.unwrap(), "");
        assert_eq!(ck.read("x").await.unwrap(), "113605034");
        assert_eq!(ck.read("never").await.unwrap(), "");
        assert_eq!(ck.write("a", "aa").await.unwrap(), "aa");
        assert_eq!(ck.read("a").await.unwrap(), "aa");
        // Written through a client bound to one server, read through each of the others.
        let one = c.client(&[0]);
        assert_eq!(one.write("a", "aaa").await.unwrap(), "aaa");
        for s in 1..3 {
            let other = c.client(&[s]);
            assert_eq!(other.read("a").await.unwrap(), "aaa", "read via server {s}");
        }
        // The chain of write_hash from "" with "0", "1", "2".
        assert_eq!(ck.write_hash("h", "0").await.unwrap(), "");
        assert_eq!(ck.write_hash("h", "1").await.unwrap(), "14788753");
        assert_eq!(ck.write_hash("h", "2").await.unwrap(), "91417210");
        assert_eq!(ck.read("h").await.unwrap(), "107295499");
        assert_eq!(ck.servers().await.unwrap(), c.names);
    })
    .await;
    c.wait_replicas_equal().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_answers_down_when_paxos_is_stopped() {
    use kv_app::messages::{KV_SERVER, Request, RequestAnswer};
    use kv_app::ops::{OpRef, Operation};
    let c = Cluster::new("down", 3).await;
    c.servers[0].log().stop();
    assert!(!c.servers[0].log().alive());
    let node = c.net.start_node("down-raw@mem", runtime::NodeRole::Client);
    let mut me = node.attach();
    let reference = OpRef { client: 7, seq: 1 };
    me.send(
        (KV_SERVER, &c.names[0]),
        Request {
            op: Operation::read("k", reference),
            client: me.pid().clone(),
        },
    );
    let answer = me
        .receive_type::<RequestAnswer>(Some(common::LONG))
        .await
        .expect("an answer");
    assert_eq!(answer, RequestAnswer::Down(reference));
    // A client that knows another server still gets its operation done.
    let ck = c.client(&[0, 1]);
    assert_eq!(
        within("via server 1", ck.write("k", "v")).await.unwrap(),
        "v"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_paxos_supervisor_is_restarted_by_the_node_supervisor() {
    let c = Cluster::new("paxsup", 3).await;
    let node = c.node(0);
    let old = node.whereis("paxos_sup").expect("paxos_sup registered");
    node.exit(None, &old, runtime::ExitReason::Kill);
    let deadline = tokio::time::Instant::now() + common::LONG;
    while !(node.whereis("paxos_sup").is_some_and(|p| p != old) && c.servers[0].log().alive()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "paxos_sup not restarted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let ck = c.client(&[0]);
    assert_eq!(
        within("via server 0", ck.write("k", "after"))
            .await
            .unwrap(),
        "after"
    );
}

/// A batcher holding entries while its node's Paxos is down must wait, not spin: on a
/// one-thread runtime a spinning process would starve every other one. The scenario runs
/// on its own thread so that a starved runtime fails this test quickly instead of hanging.
#[test]
fn a_batcher_waits_while_paxos_is_down() {
    use kv_app::messages::{BATCHER, Propose};
    use kv_app::ops::{LogEntry, OpRef, Operation};
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let c = Cluster::new("spin", 3).await;
            c.servers[0].log().stop();
            let node = c.node(0).clone();
            let me = node.attach();
            me.send(
                BATCHER,
                Propose {
                    entry: LogEntry::Op(Operation::write("x", "y", OpRef { client: 1, seq: 1 })),
                    manager: me.pid().clone(),
                },
            );
            // The rest of the cluster still serves, on this one thread.
            let ck = c.client(&[1, 2]);
            let got = ck.write("k", "v").await;
            let _ = done_tx.send(got);
        });
    });
    let got = done_rx
        .recv_timeout(common::LONG)
        .expect("the runtime was starved: a process spins while Paxos is down");
    assert_eq!(got.as_deref(), Ok("v"));
}
