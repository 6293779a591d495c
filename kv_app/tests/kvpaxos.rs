//! The classic kvpaxos scenarios (MIT 6.824, 2014) on the kv service: Basic, Done,
//! Unreliable, Partition, Hole and ManyPartition; plus supervision under load.

mod common;

use common::{Cluster, LONG, seed, within};
use kv_app::phash2::write_hash_value;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_concurrent_writers_agree() {
    let c = Cluster::new("kvbasic", 5).await;
    let ck = c.client_all();
    within("basic", async {
        assert_eq!(ck.write("a", "aa").await.unwrap(), "aa");
        for s in 0..5 {
            assert_eq!(c.client(&[s]).read("a").await.unwrap(), "aa");
        }
        // Concurrent writers on one key; afterwards every server reads the same value,
        // one that was written.
        for _ in 0..3 {
            let mut tasks = Vec::new();
            for i in 0..5 {
                let cki = c.client(&[i]);
                tasks.push(tokio::spawn(async move {
                    let v = format!("w{i}");
                    assert_eq!(cki.write("b", &v).await.unwrap(), v);
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let mut seen = Vec::new();
            for s in 0..5 {
                seen.push(c.client(&[s]).read("b").await.unwrap());
            }
            assert!(
                seen.windows(2).all(|w| w[0] == w[1]),
                "servers disagree: {seen:?}"
            );
            assert!(seen[0].starts_with('w'), "read {:?} never written", seen[0]);
        }
    })
    .await;
    c.wait_replicas_equal().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_forgets_the_log_and_memory_stays_bounded() {
    let c = Cluster::new("kvdone", 3).await;
    let ck = c.client_all();
    let big = "x".repeat(1 << 20);
    within("20 writes of 1 MB", async {
        for i in 0..20 {
            let v = format!("{i}{big}");
            assert_eq!(ck.write("big", &v).await.unwrap().len(), v.len());
        }
        // A few small operations from every server carry the done watermarks around.
        for round in 0..3 {
            for s in 0..3 {
                c.client(&[s])
                    .write("small", &format!("{round}"))
                    .await
                    .unwrap();
            }
        }
    })
    .await;
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        let held: Vec<usize> = c.servers.iter().map(|s| s.log().held()).collect();
        // Watermarks travel on Paxos messages, so a peer's `min` may lag until the next
        // operation: keep operating until the 1 MB instances are forgotten everywhere.
        let min: Vec<u64> = c.servers.iter().map(|s| s.log().min()).collect();
        if held.iter().all(|&h| h <= 10) && min.iter().all(|&m| m > 20) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Paxos still holds {held:?} instances, min {min:?}"
        );
        c.client_all().write("small", "again").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for s in &c.servers {
        let st = s.status();
        // The 1 MB values are gone from the log; the data holds one of them.
        let bytes: usize = s.data().values().map(String::len).sum();
        assert!(bytes < 2 << 20, "{}: {bytes} bytes of data", st.node);
        assert!(
            st.paxos.min > 20,
            "{}: min {} (log not forgotten)",
            st.node,
            st.paxos.min
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreliable_write_hash_chains_and_concurrent_clients() {
    let seed = seed("kvpaxos unreliable");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let c = Cluster::new("kvunrel", 3).await;
    c.set_unreliable(0.2, seed);
    within("chains", async {
        for iter in 0..6 {
            let mut tasks = Vec::new();
            for cli in 0..5 {
                let ck = c.client(&[rng.random_range(0..3), rng.random_range(0..3)]);
                tasks.push(tokio::spawn(async move {
                    let key = format!("chain{cli}");
                    let pv = ck.read(&key).await.unwrap();
                    let mut expect = pv;
                    for part in ["0", "1", "2"] {
                        let got = ck.write_hash(&key, part).await.unwrap();
                        assert_eq!(got, expect, "seed {seed}: iteration {iter} client {cli}");
                        expect = write_hash_value(&expect, part);
                    }
                    assert_eq!(ck.read(&key).await.unwrap(), expect, "seed {seed}");
                    assert_eq!(ck.read(&key).await.unwrap(), expect, "seed {seed}");
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        }
    })
    .await;
    // Duelling proposers under 20% loss make this phase slow (about a second an
    // iteration), hence a deadline of its own.
    let phase = tokio::time::timeout(Duration::from_secs(180), async {
        for _ in 0..20 {
            let mut tasks = Vec::new();
            let mut written = Vec::new();
            for cli in 0..15 {
                let ck = c.client(&[rng.random_range(0..3)]);
                let v = format!("u{}", rng.random::<u32>());
                written.push(v.clone());
                let write = rng.random_bool(0.5);
                tasks.push(tokio::spawn(async move {
                    if write {
                        assert_eq!(ck.write("b", &v).await.unwrap(), v, "client {cli}");
                    } else {
                        ck.read("b").await.unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        }
    })
    .await;
    assert!(
        phase.is_ok(),
        "seed {seed}: concurrent clients not done within 180 s"
    );
    c.set_unreliable(0.0, seed);
    c.wait_replicas_equal().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_blocks_the_minority_until_healed() {
    let c = Cluster::new("kvpart", 5).await;
    let ck = c.client_all();
    within("setup", ck.write("1", "13")).await.unwrap();
    c.partition(&[&[0, 1, 2], &[3, 4]]);
    // The majority serves.
    within("majority", c.client(&[0]).write("1", "14"))
        .await
        .unwrap();
    assert_eq!(
        within("majority read", c.client(&[2]).read("1"))
            .await
            .unwrap(),
        "14"
    );
    // The minority blocks.
    let minority = c.client(&[3]);
    let blocked = tokio::spawn(async move { minority.write("1", "15").await });
    let minority_read = c.client(&[4]);
    let blocked_read = tokio::spawn(async move { minority_read.read("1").await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!blocked.is_finished(), "a write at the minority completed");
    assert!(
        !blocked_read.is_finished(),
        "a read at the minority completed"
    );
    // Healed: both finish, and correctly.
    c.heal();
    assert_eq!(
        within("healed write", blocked).await.unwrap().unwrap(),
        "15"
    );
    let r = within("healed read", blocked_read).await.unwrap().unwrap();
    assert!(r == "14" || r == "15", "read {r:?} after the heal");
    assert_eq!(within("final", ck.read("1")).await.unwrap(), "15");
    c.wait_replicas_equal().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hole_does_not_block_the_majority() {
    let seed = seed("kvpaxos hole");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let c = Arc::new(Cluster::new("kvhole", 5).await);
    for iter in 0..5 {
        c.heal();
        let done = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for cli in 0..4 {
            let c = c.clone();
            let done = done.clone();
            // Each client talks to the majority side only: servers 0, 1, 2.
            let ck = c.client(&[cli % 3, (cli + 1) % 3]);
            tasks.push(tokio::spawn(async move {
                let key = format!("hole{cli}");
                let mut last = String::new();
                let mut n = 0;
                while !done.load(Ordering::SeqCst) {
                    let v = format!("{iter}-{cli}-{n}");
                    ck.write(&key, &v).await.unwrap();
                    last = v;
                    n += 1;
                    let got = ck.read(&key).await.unwrap();
                    assert_eq!(
                        got, last,
                        "client {cli} read another value than its own write"
                    );
                }
                (key, last, n)
            }));
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..150))).await;
        // Cut the minority off in the middle of agreements.
        c.partition(&[&[0, 1, 2], &[3, 4]]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        done.store(true, Ordering::SeqCst);
        for t in tasks {
            let (key, last, n) = within("hole clients", t).await.unwrap();
            assert!(n > 0, "seed {seed}: client made no progress");
            c.heal();
            let got = within("read after heal", c.client(&[3]).read(&key))
                .await
                .unwrap();
            assert_eq!(got, last, "seed {seed}: {key}");
        }
    }
    c.wait_replicas_equal().await;
}

async fn many_partitions(duration: Duration, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let c = Arc::new(Cluster::new(&format!("kvmany{}", seed % 1000), 5).await);
    c.set_unreliable(0.1, seed);
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
    let mut clients = Vec::new();
    for cli in 0..10 {
        let ck = c.client_all();
        let done = done.clone();
        clients.push(tokio::spawn(async move {
            let key = format!("many{cli}");
            let mut expect = String::new();
            let mut n = 0;
            while !done.load(Ordering::SeqCst) {
                let part = format!("{n}");
                let got = ck.write_hash(&key, &part).await.unwrap();
                assert_eq!(got, expect, "seed {seed}: client {cli} op {n}");
                expect = write_hash_value(&expect, &part);
                n += 1;
            }
            (key, expect)
        }));
    }
    tokio::time::sleep(duration).await;
    done.store(true, Ordering::SeqCst);
    partitioner.await.unwrap();
    c.heal();
    c.set_unreliable(0.0, seed);
    for t in clients {
        let (key, expect) = within("clients after the heal", t).await.unwrap();
        let got = within("final read", c.client_all().read(&key))
            .await
            .unwrap();
        assert_eq!(got, expect, "seed {seed}: {key}");
    }
    c.wait_replicas_equal().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_partitions_short() {
    many_partitions(Duration::from_secs(4), seed("many_partitions_short")).await;
}

/// The long variant: `cargo test -p kv_app --release --test kvpaxos -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "20-second soak; run with --ignored"]
async fn many_partitions_long() {
    many_partitions(Duration::from_secs(20), seed("many_partitions_long")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_restarts_db_manager_and_server_under_load() {
    let c = Arc::new(Cluster::new("kvsup", 3).await);
    let done = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for cli in 0..4 {
        let ck = c.client_all();
        let done = done.clone();
        clients.push(tokio::spawn(async move {
            let key = format!("sup{cli}");
            let mut acked = Vec::new();
            let mut n = 0;
            while !done.load(Ordering::SeqCst) {
                let v = format!("{cli}-{n}");
                ck.write(&key, &v).await.unwrap();
                acked.push(v);
                n += 1;
            }
            (key, acked)
        }));
    }
    let node = c.node(1).clone();
    let restarts_of = |name: &str| {
        node.processes()
            .into_iter()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| (p.pid, p.restarts))
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    for name in ["db_manager", "kv_server"] {
        let (pid, before) = restarts_of(name).expect("registered");
        let victim = node.whereis(name).expect("registered");
        node.exit(None, &victim, runtime::ExitReason::Kill);
        let deadline = tokio::time::Instant::now() + LONG;
        loop {
            if let Some((new_pid, after)) = restarts_of(name)
                && new_pid != pid
            {
                assert!(
                    after > before,
                    "{name}: restart count {after} (was {before})"
                );
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} not restarted"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    done.store(true, Ordering::SeqCst);
    for t in clients {
        let (key, acked) = within("clients", t).await.unwrap();
        let last = acked.last().cloned().unwrap_or_default();
        // No acknowledged write is lost: the node whose processes were killed serves the
        // last one.
        let got = within("read via the restarted node", c.client(&[1]).read(&key))
            .await
            .unwrap();
        assert_eq!(got, last, "{key}");
    }
    c.wait_replicas_equal().await;
}
