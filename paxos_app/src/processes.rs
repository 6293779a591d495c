//! The three Paxos processes of a node — acceptor, proposer, learner — as thin loops
//! around the pure machines of [`crate::core`]: each takes a message, runs its machine
//! (whose state sits in the node's [`Tables`]) and sends what the machine returns.

use crate::PaxosValue;
use crate::core::Message as PaxosMessage;
use crate::core::{Body, Outgoing, Role, Seq, Target};
use crate::tables::Tables;
use runtime::clock::Duration;
use runtime::{Node, Process};
use std::sync::Arc;

/// The retry backoff: 10 ms doubled per failure up to 640 ms, plus up to as much again of
/// random jitter (from the node's seeded generator) so that duelling proposers fall out
/// of step.
fn backoff_ms(node: &Node, failures: u32) -> u64 {
    let base = 10u64 << failures.saturating_sub(1).min(6);
    base + node.random_up_to(base)
}

/// The acceptor: answers `Prepare`, `Accept`, `PrepareFrom` and `Query`.
pub(crate) async fn acceptor<V: PaxosValue>(mut p: Process, t: Arc<Tables<V>>) {
    loop {
        let env = p.recv().await;
        if t.is_stopped() {
            continue;
        }
        let Ok(msg) = env.downcast::<PaxosMessage<V>>() else {
            log::debug!("paxos_acceptor: unexpected message");
            continue;
        };
        let reply = t.handle(Role::Acceptor, &msg);
        t.send_all(p.pid(), reply);
    }
}

/// How many holes the learner asks about at a time.
const QUERY_BATCH: usize = 256;

/// The learner: takes `Decided` messages. Every `catch_up` interval it also looks for
/// holes — instances it knows exist but has not learned — and asks the other peers'
/// acceptors about those that were already missing at the previous look, so a peer that
/// was deaf, cut off or late learns what was decided without waiting for a new start.
pub(crate) async fn learner<V: PaxosValue>(mut p: Process, t: Arc<Tables<V>>, catch_up: Duration) {
    let mut next_look = runtime::clock::now() + catch_up;
    let mut missing_before: Vec<Seq> = Vec::new();
    loop {
        let wait = next_look.saturating_duration_since(runtime::clock::now());
        if let Some(env) = p.recv_timeout(wait).await {
            if t.is_stopped() {
                continue;
            }
            match env.downcast::<PaxosMessage<V>>() {
                Ok(msg) => {
                    t.handle(Role::Learner, &msg);
                }
                Err(_) => log::debug!("paxos_learner: unexpected message"),
            }
            if runtime::clock::now() < next_look {
                continue;
            }
        }
        next_look = runtime::clock::now() + catch_up;
        if t.is_stopped() {
            continue;
        }
        let missing = t.learner.read().undecided(QUERY_BATCH);
        let ask: Vec<Outgoing<V>> = missing
            .iter()
            .filter(|seq| missing_before.contains(seq))
            .flat_map(|&seq| {
                (0..t.peers.len())
                    .filter(|&peer| peer != t.me)
                    .map(move |peer| {
                        Outgoing::new(Target::Peer(peer, Role::Acceptor), Body::Query { seq })
                    })
            })
            .collect();
        t.send_all(p.pid(), ask);
        missing_before = missing;
    }
}

/// The longest the proposer sleeps: [`crate::Paxos::start`] runs the proposer's machine
/// in its caller, so a new instance's first deadline is noticed at the latest this late.
const PROPOSER_POLL: Duration = Duration::from_millis(20);

/// The proposer: drives the instances [`crate::Paxos::start`] began with the acceptors'
/// replies, and retries failed attempts when their backoff has passed.
pub(crate) async fn proposer<V: PaxosValue>(mut p: Process, t: Arc<Tables<V>>) {
    loop {
        let wait = t
            .proposer
            .lock()
            .next_deadline_ms()
            .map(|d| Duration::from_millis(d.saturating_sub(t.now_ms())))
            .unwrap_or(PROPOSER_POLL)
            .min(PROPOSER_POLL);
        let received = p.recv_timeout(wait).await;
        if t.is_stopped() {
            continue;
        }
        let out = match received {
            None => {
                let now = t.now_ms();
                t.proposer
                    .lock()
                    .tick(now, |_, failures| backoff_ms(p.node(), failures))
            }
            Some(env) => match env.downcast::<PaxosMessage<V>>() {
                Ok(msg) => t.handle(Role::Proposer, &msg),
                Err(_) => {
                    log::debug!("paxos_proposer: unexpected message");
                    Vec::new()
                }
            },
        };
        t.dispatch_from_proposer(Some(p.pid()), out);
    }
}
