//! Paxos under process kills and random re-partitions: an acceptor killed by a test
//! mid-agreement comes back with its promises (they live outside the process), and the
//! "lots" scenario — unreliable links and random partitions while instances start.

mod common;

use common::{Cluster, LONG, seed};
use paxos_app::Status;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use runtime::ExitReason;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Waits until `name` on peer `i` is a live process again (restarted by paxos_sup).
async fn wait_restarted(c: &Cluster<u64>, i: usize, name: &str, old: &runtime::Pid) {
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        if let Some(pid) = c.node(i).whereis(name)
            && &pid != old
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} on peer {i} not restarted"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_acceptors_keep_their_promises() {
    let seed = seed("killed_acceptors_keep_their_promises");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let c: Cluster<u64> = Cluster::new("akill", 3).await;
    // 12 kills spread over 3 peers stay below paxos_sup's restart intensity (10 in 10 s).
    for seq in 1..=12u64 {
        // Every peer proposes a different value; acceptors are killed while they vote.
        for i in 0..3 {
            c.px(i).start(seq, seq * 10 + i as u64);
        }
        let victim = rng.random_range(0..3);
        let old = c
            .node(victim)
            .whereis("paxos_acceptor")
            .expect("acceptor registered");
        c.node(victim).exit(None, &old, ExitReason::Kill);
        wait_restarted(&c, victim, "paxos_acceptor", &old).await;
        c.wait_n(seq, 3).await; // also asserts that the three agree
        let restarts = c
            .node(victim)
            .processes()
            .into_iter()
            .find(|p| p.name.as_deref() == Some("paxos_acceptor"))
            .map(|p| p.restarts)
            .unwrap_or(0);
        assert!(restarts >= 1, "seed {seed}: restart not counted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acceptor_state_survives_its_restart() {
    let c: Cluster<u64> = Cluster::new("astate", 3).await;
    c.px(0).start(1, 100);
    c.wait_n(1, 3).await;
    // Peer 0 gets instance 2 decided with only itself and peer 1 reachable; peer 1's
    // acceptor is killed; then peer 2, with peer 1 only, proposes another value and must
    // end with the first one.
    c.partition(&[&[0, 1], &[2]]);
    c.px(0).start(2, 200);
    c.wait_n(2, 1).await;
    let old = c.node(1).whereis("paxos_acceptor").expect("registered");
    c.node(1).exit(None, &old, ExitReason::Kill);
    wait_restarted(&c, 1, "paxos_acceptor", &old).await;
    // Peer 0 is now cut off; peers 1 and 2 form the majority. Peer 2 proposes another
    // value: it must learn 200 from the restarted acceptor of peer 1.
    c.partition(&[&[0], &[1, 2]]);
    c.px(2).start(2, 999);
    let deadline = tokio::time::Instant::now() + LONG;
    while matches!(c.px(2).status(2), Status::Pending) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "peer 2 never decided instance 2"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        matches!(c.px(2).status(2), Status::Decided(200)),
        "the restarted acceptor forgot what it accepted"
    );
    c.heal();
    c.wait_n(2, 3).await;
}

async fn lots(duration: Duration, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let c = Arc::new(Cluster::<u64>::new(&format!("lots{}-", seed % 1000), 5).await);
    c.set_unreliable(0.2, seed);
    let done = Arc::new(AtomicBool::new(false));
    let partitioner = {
        let c = c.clone();
        let done = done.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(rng.random());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                let mut groups: Vec<Vec<usize>> = vec![Vec::new(); 3];
                for s in 0..5 {
                    groups[rng.random_range(0..3)].push(s);
                }
                let refs: Vec<&[usize]> = groups.iter().map(|g| g.as_slice()).collect();
                c.partition(&refs);
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..200))).await;
            }
        })
    };
    let started = tokio::time::Instant::now();
    let mut seq = 0u64;
    while started.elapsed() < duration {
        seq += 1;
        let proposers = rng.random_range(1..=3);
        for _ in 0..proposers {
            let i = rng.random_range(0..5);
            c.px(i).start(seq, rng.random());
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..50))).await;
    }
    done.store(true, Ordering::SeqCst);
    partitioner.await.expect("partitioner");
    let cut: u64 = (0..5).map(|i| c.node(i).faults().counts().cut).sum();
    let lost: u64 = (0..5).map(|i| c.node(i).faults().counts().lost_in).sum();
    assert!(cut > 0 && lost > 0, "seed {seed}: cut {cut}, lost {lost}");
    c.heal();
    c.set_unreliable(0.0, seed);
    // Every started instance is decided by a majority, and no two peers disagree
    // (ndecided asserts equal values).
    for s in 1..=seq {
        let deadline = tokio::time::Instant::now() + LONG;
        while c.ndecided(s) < 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "seed {seed}: instance {s} decided by {} peers only",
                c.ndecided(s)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lots_short() {
    lots(Duration::from_secs(3), seed("lots_short")).await;
}

/// The 20-second variant: `cargo test -p paxos_app --release --test faults -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "20-second soak; run with --ignored"]
async fn lots_long() {
    lots(Duration::from_secs(20), seed("lots_long")).await;
}
