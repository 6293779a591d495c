//! The original's Paxos test scenarios (the Part 1 tests), on in-memory nodes.

mod common;

use common::{Cluster, seed};
use paxos_app::Status;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_and_many_proposers() {
    let c: Cluster<u64> = Cluster::new("basic", 3).await;
    // Single proposer.
    c.px(0).start(1, 100);
    c.wait_n(1, 3).await;
    // Many proposers, same value.
    for i in 0..3 {
        c.px(i).start(2, 77);
    }
    c.wait_n(2, 3).await;
    // Many proposers, different values: all decide one identical value.
    for i in 0..3 {
        c.px(i).start(3, 100 + i as u64);
    }
    c.wait_n(3, 3).await;
    let Status::Decided(v) = c.px(0).status(3) else {
        unreachable!()
    };
    assert!((100..103).contains(&v), "decided {v} was never proposed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_instances() {
    let c: Cluster<u64> = Cluster::new("ooo", 3).await;
    c.px(0).start(7, 700);
    c.px(0).start(6, 600);
    c.px(1).start(5, 500);
    c.wait_n(7, 3).await;
    c.px(0).start(4, 400);
    c.px(1).start(3, 300);
    for seq in 3..=7 {
        c.wait_n(seq, 3).await;
    }
    for i in 0..3 {
        assert_eq!(c.px(i).max(), 7, "peer {i}: max");
    }
    // Instances 1 and 2 were never started.
    c.check_none(1);
    c.check_none(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deaf_proposers() {
    let c: Cluster<String> = Cluster::new("deaf", 5).await;
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
    let Status::Decided(v) = c.px(4).status(2) else {
        unreachable!()
    };
    assert_eq!(v, "goodbye");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetting() {
    let n = 6;
    let c: Cluster<u64> = Cluster::new("forget", n).await;
    for i in 0..n {
        assert!(c.px(i).min() <= 1, "peer {i}: min before anything");
    }
    c.px(0).start(1, 11);
    c.px(1).start(2, 22);
    c.px(2).start(3, 33);
    c.wait_n(1, n).await;
    c.wait_n(2, n).await;
    c.wait_n(3, n).await;
    for i in 0..n {
        assert_eq!(c.px(i).min(), 1, "peer {i}: nobody is done yet");
    }
    // Everybody but the last peer is done with 1 and 2.
    for i in 0..n - 1 {
        c.px(i).done(1);
        c.px(i).done(2);
    }
    // Fresh instances from every peer carry the done watermarks around.
    for i in 0..n {
        c.px(i).start(4 + i as u64, 1);
    }
    for i in 0..n {
        c.wait_n(4 + i as u64, n).await;
    }
    for i in 0..n {
        assert_eq!(
            c.px(i).min(),
            1,
            "peer {i}: the lagging peer holds min back"
        );
        assert!(matches!(c.px(i).status(1), Status::Decided(11)));
    }
    c.px(n - 1).done(1);
    c.px(n - 1).done(2);
    for i in 0..n {
        c.px(i).start(10 + i as u64, 1);
    }
    for i in 0..n {
        c.wait_n(10 + i as u64, n).await;
    }
    // The last peer's own watermark reached the others with its proposal: min is 3.
    for i in 0..n {
        c.wait_min(i, 3).await;
        assert!(matches!(c.px(i).status(1), Status::Forgotten), "peer {i}");
        assert!(matches!(c.px(i).status(3), Status::Decided(33)), "peer {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetting_frees_memory() {
    let n = 3;
    let c: Cluster<String> = Cluster::new("mem", n).await;
    let big = "x".repeat(1 << 20);
    for seq in 1..=10 {
        c.px(seq as usize % n).start(seq, format!("{seq}{big}"));
    }
    for seq in 1..=10 {
        c.wait_n(seq, n).await;
    }
    for i in 0..n {
        assert!(c.px(i).held() >= 10, "peer {i} holds the 10 values");
        c.px(i).done(10);
    }
    for i in 0..n {
        c.px(i).start(11 + i as u64, "small".into());
    }
    for i in 0..n {
        c.wait_n(11 + i as u64, n).await;
    }
    for i in 0..n {
        c.wait_min(i, 11).await;
        let held = c.px(i).held();
        assert!(held <= 5, "peer {i} still holds {held} instances");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_count() {
    let c: Cluster<u64> = Cluster::new("count", 3).await;
    let total =
        |c: &Cluster<u64>| -> u64 { (0..3).map(|i| c.px(i).requests_received().total()).sum() };
    let before = total(&c);
    for seq in 1..=5 {
        c.px(0).start(seq, seq * 10);
        c.wait_n(seq, 3).await;
    }
    let sequential = total(&c) - before;
    assert!(
        sequential <= 45,
        "5 uncontended agreements cost {sequential} requests (max 45)"
    );
    assert!(
        sequential >= 15,
        "only {sequential} requests counted: is counting broken?"
    );

    let before = total(&c);
    for seq in 6..=10 {
        for i in 0..3 {
            c.px(i).start(seq, seq * 10 + i as u64);
        }
        c.wait_n(seq, 3).await;
    }
    // Let retries in flight settle before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let concurrent = total(&c) - before;
    assert!(
        concurrent <= 225,
        "5 contended rounds cost {concurrent} requests (max 225)"
    );
}

async fn many_instances(c: &Cluster<u64>, ninst: u64, window: u64) {
    let n = c.names.len();
    let mut started = 0u64;
    let mut done = 0u64;
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
    let c: Cluster<u64> = Cluster::new("many", 3).await;
    many_instances(&c, 50, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_instances_unreliable() {
    let c: Cluster<u64> = Cluster::new("manyu", 3).await;
    c.set_unreliable(0.2, seed("many_instances_unreliable"));
    many_instances(&c, 50, 3).await;
    let lost: u64 = (0..3).map(|i| c.node(i).faults().counts().lost_in).sum();
    assert!(lost > 0, "nothing was lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_instance_learned_by_a_late_peer() {
    let mut c: Cluster<u64> = Cluster::empty("old", 5);
    for i in 1..=3 {
        c.start_peer(i).await;
    }
    c.px(1).start(1, 111);
    c.wait_n(1, 3).await;
    c.start_peer(0).await;
    c.px(0).start(1, 222);
    c.wait_n(1, 4).await;
    assert!(matches!(c.px(0).status(1), Status::Decided(111)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions() {
    let c: Cluster<u64> = Cluster::new("part", 5).await;
    let mut seq = 1;
    // No majority anywhere: nothing is decided.
    c.partition(&[&[0, 2], &[1, 3], &[4]]);
    c.px(1).start(seq, 111);
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.check_none(seq);
    assert!(
        c.node(1).faults().counts().cut > 0,
        "the partition cut nothing"
    );

    // A majority forms around the proposer: it decides without a new start.
    c.partition(&[&[0], &[1, 2, 3], &[4]]);
    c.wait_majority(seq).await;
    assert!(
        c.ndecided(seq) <= 3,
        "a minority peer learned across the partition"
    );

    // Healed: the others start the instance and learn the decided value.
    c.px(0).start(seq, 1000);
    c.px(4).start(seq, 1004);
    c.heal();
    c.wait_n(seq, 5).await;
    assert!(matches!(c.px(4).status(seq), Status::Decided(111)));

    // One peer switches sides, reliable then unreliable.
    for unreliable in [false, true] {
        if unreliable {
            c.set_unreliable(0.2, seed("partitions"));
        }
        for _ in 0..20 {
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

fn distinguished(proposer: usize) -> paxos_app::PaxosOptions {
    paxos_app::PaxosOptions {
        distinguished_proposer: Some(proposer),
        ..Default::default()
    }
}

/// The distinguished proposer runs phase 1 once (`PrepareFrom`) and then only `Accept`:
/// twenty instances cost each acceptor one prepare and twenty accepts. Another peer's
/// basic-Paxos proposal for one instance takes only that instance; the lease goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinguished_proposer_prepares_once_for_all_instances() {
    let c: Cluster<u64> = Cluster::with_options("lease", 3, distinguished(0)).await;
    for seq in 1..=20 {
        c.px(0).start(seq, seq * 10);
        c.wait_n(seq, 3).await;
    }
    for i in 0..3 {
        let r = c.px(i).requests_received();
        assert_eq!(r.prepare, 1, "peer {i}: one PrepareFrom for all twenty");
        assert!(r.accept >= 20, "peer {i}: {} accepts", r.accept);
    }
    c.px(1).start(21, 211);
    c.wait_n(21, 3).await;
    assert_eq!(c.px(0).status(21), Status::Decided(211));
    c.px(0).start(22, 220);
    c.wait_n(22, 3).await;
    assert_eq!(c.px(2).status(22), Status::Decided(220));
    let prepares: u64 = (0..3).map(|i| c.px(i).requests_received().prepare).sum();
    assert_eq!(
        prepares,
        3 + 3,
        "peer 1's own prepare for 21, and no new lease for 22"
    );
}

/// The distinguished proposer and a basic-Paxos peer racing for the same instances, and
/// the leasing peer cut off while the others go on: every instance is still decided once,
/// the same everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinguished_proposer_contended_and_partitioned() {
    let c: Cluster<u64> = Cluster::with_options("leasecut", 3, distinguished(0)).await;
    for seq in 1..=10 {
        c.px(0).start(seq, seq * 10);
        c.px(1).start(seq, seq * 10 + 1);
        c.wait_n(seq, 3).await;
    }
    c.partition(&[&[0], &[1, 2]]);
    for seq in 11..=15 {
        c.px(0).start(seq, seq * 10);
        c.px(2).start(seq, seq * 10 + 2);
        c.wait_majority(seq).await;
    }
    for seq in 11..=15 {
        assert_eq!(c.px(0).status(seq), Status::Pending, "peer 0 is cut off");
    }
    c.heal();
    for seq in 16..=20 {
        c.px(0).start(seq, seq * 10);
    }
    for seq in 11..=20 {
        c.wait_n(seq, 3).await;
    }
    for seq in 11..=15 {
        assert_eq!(c.px(0).status(seq), Status::Decided(seq * 10 + 2));
    }
}
