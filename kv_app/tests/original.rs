//! The original's four tests, made strict: basic operations are in `basic.rs`; here are
//! concurrent clients, deaf servers (deaf before 16 clients start, as the original) and
//! unreliable messages (the original's loss model, switched on while the clients run,
//! where the original switched it on only after its operations). Each runs with basic
//! Paxos and with the distinguished proposer.

mod common;

use common::{Cluster, seed, wait_until, within};
use kv_app::PaxosMode;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use runtime::faults::LossModel;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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

in_both_modes!(concurrent_clients, deaf_servers, unreliable_messages);

async fn concurrent_clients(mode: PaxosMode) {
    let seed = seed("concurrent_clients");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let c = Cluster::in_mode("conc", 3, mode).await;
    rounds_of_clients(&c, &mut rng, seed, 20).await;
    c.wait_replicas_equal().await;
}

/// The original's deaf test: every server deaf before 16 clients start; nothing completes
/// while they are deaf (and the servers count what they did not hear); once they listen
/// every client finishes and every read returns "" or a value written. Three intervals.
async fn deaf_servers(mode: PaxosMode) {
    let seed = seed("deaf_servers");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let c = Cluster::in_mode("deafs", 3, mode).await;
    let mut written = Vec::new();
    for round in 0..3 {
        c.set_deaf(true);
        let deaf_before = c.dropped().deaf;
        let finished = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        let mut round_written = Vec::new();
        for i in 0..16 {
            let ck = c.client(&[rng.random_range(0..c.names.len())]);
            let finished = finished.clone();
            if i % 2 == 0 {
                let v = format!("d{round}-{i}");
                round_written.push(v.clone());
                tasks.push(tokio::spawn(async move {
                    let got = ck.write("k", &v).await;
                    finished.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(got.as_deref(), Ok(v.as_str()));
                    None
                }));
            } else {
                tasks.push(tokio::spawn(async move {
                    let got = ck.read("k").await.expect("read completes");
                    finished.fetch_add(1, Ordering::SeqCst);
                    Some(got)
                }));
            }
        }
        // Every client has been refused a hearing at least once...
        wait_until("the deaf servers drop the 16 clients' requests", || {
            c.dropped().deaf >= deaf_before + 16
        })
        .await;
        // ...and the deafness lasts its interval with nothing done.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            finished.load(Ordering::SeqCst),
            0,
            "seed {seed}: an operation completed while every server was deaf"
        );
        c.set_deaf(false);
        written.extend(round_written);
        for t in tasks {
            if let Some(r) = within("clients after deafness", t)
                .await
                .expect("client task")
            {
                assert!(
                    r.is_empty() || written.contains(&r),
                    "seed {seed}: read {r:?} was never written"
                );
            }
        }
        let v = within("readers", readers_agree(&c, "k")).await;
        assert!(
            written.contains(&v),
            "seed {seed}: final {v:?} never written"
        );
    }
    c.wait_replicas_equal().await;
}

/// The original's unreliable test, with its loss model (each message a server receives is
/// dropped with probability 0.2), switched on while the clients run.
async fn unreliable_messages(mode: PaxosMode) {
    let seed = seed("unreliable_messages");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let c = Cluster::in_mode("unrel", 3, mode).await;
    c.set_unreliable_as(LossModel::Original, 0.2, seed);
    rounds_of_clients(&c, &mut rng, seed, 5).await;
    let dropped = c.dropped();
    assert!(dropped.lost_in > 0, "seed {seed}: nothing was lost");
    assert_eq!(
        dropped.lost_out, 0,
        "the original's model drops only what arrives"
    );
    c.set_unreliable_as(LossModel::Original, 0.0, seed);
    c.wait_replicas_equal().await;
}
