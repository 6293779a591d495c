//! MIT 6.824's Paxos tests TestManyForget and TestRPCCount, each with basic Paxos
//! (every peer proposes for itself) and with a distinguished proposer (peer 0 holds the
//! Multi-Paxos lease). `docs/testing.md` maps them to MIT's.

mod common;

use common::{Cluster, LONG, seed};
use paxos_app::{PaxosOptions, Status};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use runtime::faults::LossModel;
use runtime::{Node, Process};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The Paxos options of a mode: basic, or peer 0 distinguished.
fn options(distinguished: bool) -> PaxosOptions {
    PaxosOptions {
        distinguished_proposer: distinguished.then_some(0),
        ..Default::default()
    }
}

macro_rules! in_both_modes {
    ($($name:ident),*) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn basic() {
                super::$name(false).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn distinguished() {
                super::$name(true).await
            }
        }
    )*};
}

in_both_modes!(many_forget, rpc_count);

const MAXSEQ: u64 = 20;

/// TestManyForget: three unreliable peers (MIT's loss model); one process starts the
/// instances 1..=20 in a random order, each at a random peer, while another keeps calling
/// `done` on instances a random peer has decided. Both are runtime processes on the
/// peers' nodes, as MIT's are goroutines. Afterwards, with the network reliable and one
/// more instance from each peer to spread the `done` watermarks, every instance is
/// decided or forgotten at every peer, the decided values agree, and the faults dropped
/// messages.
async fn many_forget(distinguished: bool) {
    let seed = seed("many_forget");
    let c: Arc<Cluster<u64>> =
        Arc::new(Cluster::with_options("forget", 3, options(distinguished)).await);
    for i in 0..3 {
        c.node(i).faults().reseed(seed.wrapping_add(i as u64));
        c.node(i).faults().set_unreliable(LossModel::Mit, 0.0);
    }
    let done = Arc::new(AtomicBool::new(false));
    let starter = spawn_on(c.node(0), {
        let c = c.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        move |_p| async move {
            let mut order: Vec<u64> = (1..=MAXSEQ).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.random_range(0..=i));
            }
            for seq in order {
                c.px(rng.random_range(0..3)).start(seq, rng.random());
                tokio::task::yield_now().await;
            }
        }
    });
    let doner = spawn_on(c.node(1), {
        let (c, done) = (c.clone(), done.clone());
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 1);
        move |_p| async move {
            let mut dones = 0u64;
            while !done.load(Ordering::SeqCst) {
                let seq = rng.random_range(1..=MAXSEQ);
                let px = c.px(rng.random_range(0..3));
                if seq >= px.min() && matches!(px.status(seq), Status::Decided(_)) {
                    px.done(seq);
                    dones += 1;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            assert!(dones > 0, "seed {seed}: nothing was ever done");
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    done.store(true, Ordering::SeqCst);
    starter.await;
    doner.await;
    let lost: u64 = (0..3).map(|i| c.node(i).faults().counts().lost_in).sum();
    assert!(lost > 0, "seed {seed}: the unreliable network lost nothing");
    for i in 0..3 {
        c.node(i).faults().set_reliable();
    }
    // One more instance from every peer carries each peer's `done` to the others (it rides
    // on protocol messages), so a peer whose `min` lagged forgets what the others forgot.
    for i in 0..3 {
        c.px(i).start(MAXSEQ + 1 + i as u64, 0);
    }
    for i in 0..3 {
        c.wait_n(MAXSEQ + 1 + i as u64, 3).await;
    }
    let deadline = tokio::time::Instant::now() + LONG;
    for seq in 1..=MAXSEQ {
        loop {
            // ndecided asserts that the peers that decided agree.
            let decided = c.ndecided(seq);
            let forgotten = (0..3)
                .filter(|&i| c.px(i).status(seq) == Status::Forgotten)
                .count();
            if decided + forgotten == 3 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "seed {seed}: instance {seq}: {decided} decided, {forgotten} forgotten"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Runs `body` as a process on `node` and returns a future for its end (a panic in the
/// process fails the test).
fn spawn_on<F, Fut>(node: &Node, body: F) -> impl std::future::Future<Output = ()>
where
    F: FnOnce(Process) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut watcher = node.attach();
    // Spawned and monitored at once: a process that ends at once still reports how.
    let (_pid, mref) = watcher.spawn_monitor(body);
    async move {
        let down = watcher
            .receive_match::<runtime::Down>(Some(LONG), |d| d.mref == mref)
            .await
            .expect("the process ends");
        assert_eq!(down.reason, runtime::ExitReason::Normal, "{down:?}");
    }
}

/// Every message every peer's node received from another node: requests, replies and the
/// learners' queries alike.
fn messages(c: &Cluster<u64>) -> u64 {
    (0..3).map(|i| c.node(i).stats().received).sum()
}

/// TestRPCCount: five agreements started at peer 0 one after another, then five started
/// at all three peers at once, each phase followed by MIT's 2-second settle so that late
/// messages are counted too. MIT bounds the RPCs (a request and its reply): 3 prepares,
/// 3 accepts and 3 decides per uncontended agreement, and 15 per peer for a contended
/// one. We count every message any node received, replies, resends and the learners'
/// queries included, so the bound is twice MIT's. (MIT's bound on the protocol requests
/// alone is `scenarios.rs`'s `message_count`.)
async fn rpc_count(distinguished: bool) {
    let c: Cluster<u64> = Cluster::with_options("count", 3, options(distinguished)).await;
    let npaxos = 3u64;
    let ninst = 5u64;
    let msgs0 = messages(&c);
    let mut seq = 0;
    for _ in 0..ninst {
        seq += 1;
        c.px(0).start(seq, seq * 10);
        c.wait_n(seq, 3).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let msgs1 = messages(&c) - msgs0;
    let expected1 = ninst * npaxos * npaxos;
    assert!(
        msgs1 <= 2 * expected1,
        "{msgs1} messages for {ninst} serial agreements (at most {})",
        2 * expected1
    );
    assert!(
        msgs1 >= ninst * 2,
        "only {msgs1} messages: is counting broken?"
    );

    let msgs0 = messages(&c);
    for _ in 0..ninst {
        seq += 1;
        for i in 0..3 {
            c.px(i).start(seq, seq * 10 + i as u64);
        }
        c.wait_n(seq, 3).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let msgs2 = messages(&c) - msgs0;
    let expected2 = ninst * npaxos * 15;
    assert!(
        msgs2 <= 2 * expected2,
        "{msgs2} messages for {ninst} contended agreements (at most {})",
        2 * expected2
    );
    eprintln!(
        "rpc_count (distinguished {distinguished}): {msgs1} messages for {ninst} serial \
         agreements, {msgs2} for {ninst} contended ones"
    );
}
