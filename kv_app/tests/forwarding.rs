//! Forwarding to the distinguished proposer (peer 0): operations sent only to followers
//! are proposed by the leader; a deaf or stopped leader is bypassed and forwarding comes
//! back when it listens again; with forwarding off every node proposes itself; the leader
//! answers a forward larger than a batch in parts; and a leader that dies after naming an
//! instance nobody else heard of leaves no operation waiting for ever.

mod common;

use common::{Cluster, LONG, wait_until, within};
use kv_app::batcher::{Forwarding, MAX_BATCH};
use kv_app::messages::{Answer, BATCHER, Forward, ForwardedAt, KV_SERVER, Request, RequestAnswer};
use kv_app::ops::{LogEntry, OpRef, Operation};
use kv_app::{ServerOptions, start_server};
use runtime::transport::memory::Network;
use runtime::{NodeName, NodeRole};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Three kv servers with the given forwarding options.
async fn trio(prefix: &str, forwarding: Forwarding) -> Cluster {
    let opts = ServerOptions {
        forwarding,
        ..ServerOptions::default()
    };
    Cluster::with_options(prefix, 3, opts).await
}

/// Forwarding with a patience no loaded test machine runs out of: for tests of routing,
/// not of failover.
fn patient() -> Forwarding {
    Forwarding {
        patience: Duration::from_secs(10),
        ..Forwarding::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_sent_to_followers_are_proposed_by_peer_0() {
    let c = trio("fwd", patient()).await;
    within("operations through the followers", async {
        let one = c.client(&[1]);
        assert_eq!(one.write("a", "1").await.unwrap(), "1");
        assert_eq!(one.read("a").await.unwrap(), "1");
        assert_eq!(one.write_hash("h", "0").await.unwrap(), "");
        assert_eq!(one.write_hash("h", "1").await.unwrap(), "14788753");
        // Concurrent clients on both followers.
        let mut tasks = Vec::new();
        for i in 0..6 {
            let ck = c.client(&[1 + i % 2]);
            tasks.push(tokio::spawn(async move {
                let key = format!("k{i}");
                for n in 0..5 {
                    let v = format!("{i}-{n}");
                    assert_eq!(ck.write(&key, &v).await.unwrap(), v);
                    assert_eq!(ck.read(&key).await.unwrap(), v);
                }
            }));
        }
        for t in tasks {
            t.await.expect("client task");
        }
        assert_eq!(c.client(&[2]).read("a").await.unwrap(), "1");
        assert_eq!(c.client(&[0]).read("h").await.unwrap(), "91417210");
    })
    .await;
    c.wait_replicas_equal().await;
    for follower in [1, 2] {
        let kv = c.kv(follower);
        assert_eq!(kv.proposed_locally, 0, "follower {follower}: {kv:?}");
        assert!(kv.forwarded > 0, "follower {follower}: {kv:?}");
        assert_eq!(kv.forwards_timed_out, 0, "follower {follower}: {kv:?}");
    }
    let leader = c.kv(0);
    assert!(leader.proposed_locally > 0, "leader: {leader:?}");
    assert_eq!(leader.forwarded, 0, "leader: {leader:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deaf_leader_is_bypassed_and_forwarding_resumes_when_it_listens() {
    let c = trio("fwdeaf", Forwarding::default()).await;
    let ck = c.client(&[1]);
    within("before", ck.write("k", "before")).await.unwrap();
    assert!(c.kv(1).forwarded > 0, "{:?}", c.kv(1));

    kv_app::app::deaf(c.servers[0].node());
    within("while the leader is deaf", async {
        for n in 0..5 {
            let v = format!("deaf{n}");
            assert_eq!(ck.write("k", &v).await.unwrap(), v);
        }
        assert_eq!(ck.read("k").await.unwrap(), "deaf4");
    })
    .await;
    let during = c.kv(1);
    assert!(during.proposed_locally > 0, "{during:?}");
    assert!(during.forwards_timed_out > 0, "{during:?}");
    assert!(
        c.dropped_at(&[0]).deaf > 0,
        "the deaf leader dropped nothing"
    );

    kv_app::app::listen(c.servers[0].node());
    let forwarded_at_heal = c.kv(1).forwarded;
    let deadline = Instant::now() + LONG;
    let mut n = 0;
    while c.kv(1).forwarded <= forwarded_at_heal {
        assert!(Instant::now() < deadline, "forwarding did not resume");
        let v = format!("after{n}");
        assert_eq!(within("after", ck.write("k", &v)).await.unwrap(), v);
        n += 1;
    }
    assert_eq!(
        within("final read", c.client(&[2]).read("k"))
            .await
            .unwrap(),
        format!("after{}", n - 1)
    );
    c.wait_replicas_equal().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_propose_themselves_once_the_leader_node_is_gone() {
    let c = trio("fwstop", Forwarding::default()).await;
    let ck = c.client(&[1]);
    within("before", ck.write("k", "before")).await.unwrap();
    // The delete of that operation's reference is applied: no forward is outstanding.
    wait_until("reference deleted", || c.kv(1).held_results == 0).await;
    let before = c.kv(1);
    assert!(before.forwarded > 0, "{before:?}");

    c.servers[0].node().stop();
    within("without the leader", async {
        for n in 0..5 {
            let v = format!("gone{n}");
            assert_eq!(ck.write("k", &v).await.unwrap(), v);
        }
        assert_eq!(c.client(&[2]).read("k").await.unwrap(), "gone4");
    })
    .await;
    let after = c.kv(1);
    assert!(
        after.proposed_locally > before.proposed_locally,
        "{after:?}"
    );
    // Its node is known to be down: nothing was sent there to time out.
    assert_eq!(after.forwards_timed_out, 0, "{after:?}");
    assert_eq!(after.forwarded, before.forwarded, "{after:?}");
    c.wait_replicas_equal_among(&[1, 2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_forwarding_off_every_node_proposes_itself() {
    let off = Forwarding {
        enabled: false,
        ..Forwarding::default()
    };
    let c = trio("fwoff", off).await;
    within("operations", async {
        for s in 0..3 {
            let ck = c.client(&[s]);
            let v = format!("v{s}");
            assert_eq!(ck.write("k", &v).await.unwrap(), v);
            assert_eq!(ck.read("k").await.unwrap(), v);
        }
    })
    .await;
    for s in 0..3 {
        let kv = c.kv(s);
        assert!(kv.proposed_locally > 0, "server {s}: {kv:?}");
        assert_eq!(kv.forwarded, 0, "server {s}: {kv:?}");
    }
    c.wait_replicas_equal().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_answers_a_forward_larger_than_a_batch_in_parts() {
    let c = trio("fwsplit", patient()).await;
    // A stand-in for a follower's batcher, on a node of its own.
    let node = c.net.start_node("fwsplit-follower@mem", NodeRole::Server);
    let mut me = node.attach();
    let count = MAX_BATCH + 44;
    let entries: Vec<LogEntry> = (1..=count as u64)
        .map(|seq| LogEntry::DeleteRef(OpRef { client: 99, seq }))
        .collect();
    me.send(
        (BATCHER, &c.names[0]),
        Forward {
            entries: entries.clone(),
            batcher: me.pid().clone(),
        },
    );
    let mut answered: Vec<LogEntry> = Vec::new();
    let mut seqs = Vec::new();
    within("the answers", async {
        while answered.len() < count {
            let at = me
                .receive_type::<ForwardedAt>(None)
                .await
                .expect("an answer");
            assert!(
                !at.entries.is_empty() && at.entries.len() <= MAX_BATCH,
                "{}",
                at.entries.len()
            );
            seqs.push(at.seq);
            answered.extend(at.entries);
        }
    })
    .await;
    assert!(seqs.len() >= 2, "one answer for {count} entries: {seqs:?}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "instances {seqs:?}");
    assert_eq!(answered, entries, "every entry answered once, in order");
    assert_eq!(c.kv(0).forwarded, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_named_by_a_leader_that_died_does_not_hold_an_operation() {
    // Peer 0 is a stand-in that answers the first forward with an instance it never
    // proposes, then goes silent: as a leader that died right after answering.
    let net = Network::new();
    let names: Vec<NodeName> = (0..3)
        .map(|i| NodeName::new(format!("fwdied-s{i}@mem")))
        .collect();
    let fake = net.start_node(names[0].clone(), NodeRole::Server);
    let answered = Arc::new(AtomicBool::new(false));
    let named = 3;
    let pid = fake.spawn({
        let answered = answered.clone();
        move |mut p| async move {
            loop {
                let Some(f) = p.receive_type::<Forward>(None).await else {
                    continue;
                };
                if !answered.swap(true, Ordering::SeqCst) {
                    p.send(
                        &f.batcher,
                        ForwardedAt {
                            seq: named,
                            entries: f.entries,
                        },
                    );
                }
            }
        }
    });
    fake.register(BATCHER, &pid).expect("register the stand-in");
    let mut servers = Vec::new();
    for name in &names[1..] {
        let node = net.start_node(name.clone(), NodeRole::Server);
        servers.push(
            start_server(&node, names.clone(), ServerOptions::default())
                .await
                .expect("kv server starts"),
        );
    }
    // One request, never sent again (a client would resend, and hide a stuck manager).
    let client = net.start_node("fwdied-raw@mem", NodeRole::Client);
    let mut me = client.attach();
    let reference = OpRef { client: 7, seq: 1 };
    me.send(
        (KV_SERVER, &names[1]),
        Request {
            op: Operation::write("k", "v", reference),
            client: me.pid().clone(),
        },
    );
    let answer = me
        .receive_type::<Answer>(Some(LONG))
        .await
        .expect("the operation is answered");
    assert_eq!(
        answer,
        Answer::Write {
            reference,
            value: "v".into()
        }
    );
    assert!(
        answered.load(Ordering::SeqCst),
        "the stand-in was never asked"
    );
    let kv = servers[0].status().kv;
    assert!(
        kv.forwards_timed_out > 0 && kv.proposed_locally > 0,
        "{kv:?}"
    );
    assert!(servers[0].log().max() > named);
    // The server's own `Ok` came first and is still in the mailbox.
    assert_eq!(
        me.receive_type::<RequestAnswer>(Some(Duration::ZERO)).await,
        Some(RequestAnswer::Ok(reference))
    );
}
