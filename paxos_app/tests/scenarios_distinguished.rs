//! The original's and MIT's Paxos scenarios of `scenarios.rs` (which runs them with basic
//! Paxos, the original's) again with a distinguished proposer: peer 0 holds the
//! Multi-Paxos lease, as `--paxos distinguished` gives the kv service. Other peers still
//! propose with basic Paxos, so these also race the lease.

mod common;

use common::{Cluster, seed};
use paxos_app::{PaxosOptions, Status};
use std::time::Duration;

fn distinguished() -> PaxosOptions {
    PaxosOptions {
        distinguished_proposer: Some(0),
        ..Default::default()
    }
}

async fn cluster<V: paxos_app::PaxosValue>(prefix: &str, n: usize) -> Cluster<V> {
    Cluster::with_options(prefix, n, distinguished()).await
}

/// MIT TestBasic: one proposer, many with one value, many with different values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_and_many_proposers() {
    let c: Cluster<u64> = cluster("dbasic", 3).await;
    c.px(0).start(1, 100);
    c.wait_n(1, 3).await;
    for i in 0..3 {
        c.px(i).start(2, 77);
    }
    c.wait_n(2, 3).await;
    for i in 0..3 {
        c.px(i).start(3, 100 + i as u64);
    }
    c.wait_n(3, 3).await;
    let Status::Decided(v) = c.px(0).status(3) else {
        unreachable!("wait_n saw it decided")
    };
    assert!((100..103).contains(&v), "decided {v} was never proposed");
}

/// MIT TestDeaf: deaf peers learn nothing until they listen; the leaseholder (peer 0) is
/// one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deaf_proposers() {
    let c: Cluster<String> = cluster("ddeaf", 5).await;
    c.px(0).start(1, "hello".into());
    c.wait_n(1, 5).await;
    c.node(0).faults().set_deaf(true);
    c.node(4).faults().set_deaf(true);
    c.px(1).start(2, "goodbye".into());
    c.wait_majority(2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.ndecided(2), 3, "deaf peers must not learn");
    for i in [0, 4] {
        assert!(
            c.node(i).faults().counts().deaf > 0,
            "peer {i} heard nothing"
        );
    }
    c.node(0).faults().set_deaf(false);
    c.px(0).start(2, "xxx".into());
    c.wait_n(2, 4).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(c.ndecided(2), 4, "the still-deaf peer must not learn");
    c.node(4).faults().set_deaf(false);
    c.px(4).start(2, "yyy".into());
    c.wait_n(2, 5).await;
    assert_eq!(c.px(4).status(2), Status::Decided("goodbye".to_string()));
}

/// MIT TestForget: `min` waits for the slowest peer's `done`, then instances below it are
/// forgotten everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetting() {
    let n = 6;
    let c: Cluster<u64> = cluster("dforget", n).await;
    for (i, seq) in [(0, 1), (1, 2), (2, 3)] {
        c.px(i).start(seq, seq * 11);
    }
    for seq in 1..=3 {
        c.wait_n(seq, n).await;
    }
    for i in 0..n - 1 {
        c.px(i).done(2);
    }
    for i in 0..n {
        c.px(i).start(4 + i as u64, 1);
    }
    for i in 0..n {
        c.wait_n(4 + i as u64, n).await;
        assert_eq!(
            c.px(i).min(),
            1,
            "peer {i}: the lagging peer holds min back"
        );
    }
    c.px(n - 1).done(2);
    for i in 0..n {
        c.px(i).start(10 + i as u64, 1);
    }
    for i in 0..n {
        c.wait_n(10 + i as u64, n).await;
    }
    for i in 0..n {
        c.wait_min(i, 3).await;
        assert_eq!(c.px(i).status(1), Status::Forgotten, "peer {i}");
        assert_eq!(c.px(i).status(3), Status::Decided(33), "peer {i}");
    }
}

/// MIT TestMany and TestManyUnreliable: every peer proposes every instance, a window of
/// instances at a time.
async fn many_instances(c: &Cluster<u64>, ninst: u64, window: u64) {
    let n = c.names.len();
    let (mut started, mut done) = (0u64, 0u64);
    while done < ninst {
        while started < ninst && started < done + window {
            started += 1;
            for i in 0..n {
                c.px(i).start(started, started * 100 + i as u64);
            }
        }
        done += 1;
        c.wait_n(done, n).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_instances_reliable() {
    let c: Cluster<u64> = cluster("dmany", 3).await;
    many_instances(&c, 50, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_instances_unreliable() {
    let c: Cluster<u64> = cluster("dmanyu", 3).await;
    c.set_unreliable(0.2, seed("many_instances_unreliable (distinguished)"));
    many_instances(&c, 50, 3).await;
    let lost: u64 = (0..3).map(|i| c.node(i).faults().counts().lost_in).sum();
    assert!(lost > 0, "nothing was lost");
}

/// MIT TestOld: a peer that starts late learns an old decision instead of its own value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_instance_learned_by_a_late_peer() {
    let mut c: Cluster<u64> = Cluster::empty("dold", 5);
    c.options = distinguished();
    for i in 1..=3 {
        c.start_peer(i).await;
    }
    c.px(1).start(1, 111);
    c.wait_n(1, 3).await;
    c.start_peer(0).await;
    c.px(0).start(1, 222);
    c.wait_n(1, 4).await;
    assert_eq!(c.px(0).status(1), Status::Decided(111));
}

/// MIT TestPartition: no majority decides nothing; a majority forms around the proposer;
/// healed peers learn; peers switching sides, reliable then unreliable. The leaseholder
/// (peer 0) is in the minority of the first partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions() {
    let c: Cluster<u64> = cluster("dpart", 5).await;
    let mut seq = 1;
    c.partition(&[&[0, 2], &[1, 3], &[4]]);
    c.px(1).start(seq, 111);
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.check_none(seq);
    assert!(
        c.node(1).faults().counts().cut > 0,
        "the partition cut nothing"
    );
    c.partition(&[&[0], &[1, 2, 3], &[4]]);
    c.wait_majority(seq).await;
    assert!(
        c.ndecided(seq) <= 3,
        "a minority peer learned across the partition"
    );
    c.px(0).start(seq, 1000);
    c.px(4).start(seq, 1004);
    c.heal();
    c.wait_n(seq, 5).await;
    assert_eq!(c.px(4).status(seq), Status::Decided(111));
    for unreliable in [false, true] {
        if unreliable {
            c.set_unreliable(0.2, seed("partitions (distinguished)"));
        }
        for _ in 0..10 {
            seq += 1;
            c.partition(&[&[0, 1, 2], &[3, 4]]);
            c.px(0).start(seq, seq * 10);
            c.px(3).start(seq, seq * 10 + 1);
            c.wait_majority(seq).await;
            let n = c.ndecided(seq);
            assert!(n <= 3, "instance {seq}: {n} decided across the partition");
            c.partition(&[&[0, 1], &[2, 3, 4]]);
            c.wait_n(seq, 5).await;
        }
    }
}
