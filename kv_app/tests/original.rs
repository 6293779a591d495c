//! The original's four tests, made strict: basic operations are in `basic.rs`; here are
//! concurrent clients, deaf servers and unreliable messages (switched on while the
//! clients run, where the original switched it on only after its operations).

mod common;

use common::{Cluster, seed, within};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// 16 short-lived client nodes, each bound to a random server; half write a random value
/// to `key`, half read it. Every read must return "" or a value written so far; the
/// values written are added to `written`.
async fn round_of_clients(c: &Cluster, rng: &mut ChaCha8Rng, key: &str, written: &mut Vec<String>) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let server = rng.random_range(0..c.names.len());
        let ck = c.client(&[server]);
        let key = key.to_string();
        if i % 2 == 0 {
            let v = format!("v{}", rng.random::<u32>());
            written.push(v.clone());
            tasks.push(tokio::spawn(async move {
                let got = ck.write(&key, &v).await;
                ck.stop();
                assert_eq!(got.as_deref(), Ok(v.as_str()));
                None
            }));
        } else {
            tasks.push(tokio::spawn(async move {
                let got = ck.read(&key).await;
                ck.stop();
                Some(got.expect("read completes"))
            }));
        }
    }
    let mut reads = Vec::new();
    for t in tasks {
        if let Some(r) = t.await.expect("client task") {
            reads.push(r);
        }
    }
    for r in reads {
        assert!(
            r.is_empty() || written.contains(&r),
            "read {r:?} was never written"
        );
    }
}

/// Three clients, one per server, read `key`: all equal.
async fn readers_agree(c: &Cluster, key: &str) -> String {
    let mut values = Vec::new();
    for s in 0..c.names.len() {
        values.push(c.client(&[s]).read(key).await.expect("read"));
    }
    assert!(
        values.windows(2).all(|w| w[0] == w[1]),
        "servers disagree on {key}: {values:?}"
    );
    values.remove(0)
}

/// `rounds` rounds of short-lived clients on key "k", each followed by one reader per
/// server: the readers agree, on a value that was written.
async fn rounds_of_clients(c: &Cluster, rng: &mut ChaCha8Rng, seed: u64, rounds: usize) {
    let mut all_written = Vec::new();
    for _ in 0..rounds {
        within(
            "round of clients",
            round_of_clients(c, rng, "k", &mut all_written),
        )
        .await;
        let v = within("readers", readers_agree(c, "k")).await;
        assert!(
            all_written.contains(&v),
            "seed {seed}: final {v:?} never written"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients() {
    let seed = seed("concurrent_clients");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let c = Cluster::new("conc", 3).await;
    rounds_of_clients(&c, &mut rng, seed, 20).await;
    c.wait_replicas_equal().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deaf_servers() {
    let seed = seed("deaf_servers");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let c = Cluster::new("deafs", 3).await;
    for _ in 0..5 {
        let clients = tokio::spawn({
            let mut rng = ChaCha8Rng::seed_from_u64(rng.random());
            let c_names = c.names.len();
            let cks: Vec<_> = (0..6)
                .map(|_| c.client(&[rng.random_range(0..c_names)]))
                .collect();
            async move {
                let mut tasks = Vec::new();
                for (i, ck) in cks.into_iter().enumerate() {
                    tasks.push(tokio::spawn(async move {
                        let v = format!("d{i}");
                        assert_eq!(ck.write("k", &v).await.as_deref(), Ok(v.as_str()));
                        ck.read("k").await.expect("read")
                    }));
                }
                for t in tasks {
                    t.await.expect("client task");
                }
            }
        });
        c.set_deaf(true);
        tokio::time::sleep(Duration::from_secs(2)).await;
        c.set_deaf(false);
        within("clients after deafness", clients)
            .await
            .expect("clients");
        within("readers", readers_agree(&c, "k")).await;
    }
    c.wait_replicas_equal().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreliable_messages() {
    let seed = seed("unreliable_messages");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let c = Cluster::new("unrel", 3).await;
    c.set_unreliable(0.2, seed);
    rounds_of_clients(&c, &mut rng, seed, 5).await;
    c.set_unreliable(0.0, seed);
    c.wait_replicas_equal().await;
}
