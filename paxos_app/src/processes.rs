//! The three Paxos processes of a node — acceptor, proposer, learner — as thin drivers of
//! the node's one [`crate::core::Peer`] (held in the node's [`Tables`]): each takes the
//! messages addressed to its machine, or wakes when time is due, feeds the peer, and
//! applies the peer's batch ([`Tables::drive`]). No Paxos rule lives here.

use crate::PaxosValue;
use crate::core::Message as PaxosMessage;
use crate::core::Role;
use crate::tables::Tables;
use runtime::Process;
use std::sync::Arc;
use std::time::Duration;

/// Feeds one message a process received to the peer, as addressed to `role`.
fn step<V: PaxosValue>(p: &Process, t: &Tables<V>, role: Role, env: runtime::Envelope) {
    match env.downcast::<PaxosMessage<V>>() {
        Ok(msg) => t.drive(Some(p.pid()), |peer, now| peer.step(role, msg, now)),
        Err(_) => log::debug!("paxos: unexpected message for the {role:?}"),
    }
}

/// Time passes for the peer: retries, resends and catch-up, with the node's seeded
/// generator as the backoff's jitter.
fn tick<V: PaxosValue>(p: &Process, t: &Tables<V>) {
    let node = t.node.clone();
    t.drive(Some(p.pid()), |peer, now| {
        peer.tick(now, &mut |most| node.random_up_to(most))
    });
}

/// How long until `due_ms` on the peer's clock, at most `longest`.
fn wait_until<V: PaxosValue>(t: &Tables<V>, due_ms: Option<u64>, longest: Duration) -> Duration {
    due_ms
        .map(|due| Duration::from_millis(due.saturating_sub(t.now_ms())))
        .unwrap_or(longest)
        .min(longest)
}

/// The acceptor: takes `Prepare`, `Accept`, `PrepareFrom` and `Query` from other peers.
pub(crate) async fn acceptor<V: PaxosValue>(mut p: Process, t: Arc<Tables<V>>) {
    loop {
        let env = p.recv().await;
        if !t.is_stopped() {
            step(&p, &t, Role::Acceptor, env);
        }
    }
}

/// The learner: takes `Decided` from other peers, and wakes every `catch_up` interval
/// for the peer's catch-up look.
pub(crate) async fn learner<V: PaxosValue>(mut p: Process, t: Arc<Tables<V>>, catch_up: Duration) {
    loop {
        let due = t.read(|peer| peer.catch_up_due_ms());
        let received = p.recv_timeout(wait_until(&t, due, catch_up)).await;
        if t.is_stopped() {
            continue;
        }
        if let Some(env) = received {
            step(&p, &t, Role::Learner, env);
        }
        if due.is_none_or(|due| t.now_ms() >= due) {
            tick(&p, &t);
        }
    }
}

/// The longest the proposer sleeps: [`crate::Paxos::start`] runs the peer in its caller,
/// so a new instance's first deadline is noticed at the latest this late.
const PROPOSER_POLL: Duration = Duration::from_millis(20);

/// The proposer: takes the acceptors' replies, and wakes when the peer's proposer has a
/// deadline (a resend, a timeout, a retry after its backoff).
pub(crate) async fn proposer<V: PaxosValue>(mut p: Process, t: Arc<Tables<V>>) {
    loop {
        let due = t.read(|peer| peer.proposer_deadline_ms());
        let received = p.recv_timeout(wait_until(&t, due, PROPOSER_POLL)).await;
        if t.is_stopped() {
            continue;
        }
        let timed_out = received.is_none();
        if let Some(env) = received {
            step(&p, &t, Role::Proposer, env);
        }
        // A steady stream of replies must not hold the timers back.
        if timed_out || due.is_some_and(|due| t.now_ms() >= due) {
            tick(&p, &t);
        }
    }
}
