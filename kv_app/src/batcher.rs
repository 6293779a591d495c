//! The proposal batcher (registered as `kv_batcher`; not in the original): operation
//! managers hand it their log entries, and the entries are proposed together, one batch
//! at a time, at the next free instance; each manager is told which instance carries its
//! entry. The operation manager still checks that the decided value carries its entry and
//! asks again when another value won (a decided value may hold several operations:
//! "carries my reference" means "contains"), so nothing here is needed for safety: it
//! only decides who proposes what, and when.
//!
//! **Forwarding to the distinguished proposer.** Peer 0 (`Paxos::peers()[0]`, the same
//! on every node) is the leader: its batcher proposes for the whole cluster. The batcher
//! of any other node does not start instances itself: it sends its pending entries (up
//! to [`MAX_BATCH`]) as one `Forward` to the leader's batcher, which adds them to its own
//! pending entries and, when it launches an instance carrying some of them, answers that
//! batcher with one `ForwardedAt { seq, entries }`; the follower then tells those
//! entries' managers `Proposed { seq }`, and may forward its next batch (the managers,
//! not the batcher, wait for the decision). So the nodes no longer duel for each
//! instance. A forward split by the leader across launches is answered in parts.
//!
//! **Failover.** A forward unanswered for [`Forwarding::patience`] (250 ms) makes the
//! leader suspect for [`Forwarding::suspect_for`] (1 s): its entries come back to the
//! follower, which proposes them itself, the old way, until the suspicion ends and it
//! forwards again. A follower also proposes itself while the leader's node is not
//! connected. A late `ForwardedAt` is still passed on (the managers check `carries`); the
//! leader drops forwarded entries that waited longer than its patience (their follower
//! proposes them itself by then). When the leader dies after answering, its instance is
//! filled by the followers' DB managers (hole filling: an empty batch at a stalled
//! instance) and the managers propose again; an instance the leader named but whose
//! proposal never reached this node is proposed empty here after the patience, so that
//! nobody waits on an instance nobody knows.
//!
//! **Proposing here** (the leader, a follower that suspects it, or every node when
//! forwarding is off): one batch in flight at `max + 1`. Delete-reference entries are
//! not urgent (nobody waits for them): they ride with the next batch of operations, or go
//! on their own after [`LAZY_DELETE`], so that a client's delete does not cost its next
//! operation a Paxos round of its own. When a batch loses twice in a row, the batcher
//! waits a short random while (growing with the losses, at most a few milliseconds)
//! before proposing again, so that the node that is winning keeps the instances flowing
//! instead of every node duelling for each one; a win resets the wait. (A single loss is
//! most often a stale `max`, and is retried at once.)
//!
//! **Shape.** The rules above live in a pure state machine, [`machine::BatcherMachine`]:
//! inputs (an entry from a manager, a forward, a forward's answer, a decision, a tick
//! with the time and what Paxos and the node look like) in, one batch of effects
//! ([`machine::Effect`]: messages to send, instances to propose) and the next time to
//! look out. Clock and randomness are injected. [`run`] is the thin process loop that
//! feeds it and carries its effects out.

mod forwarding;
pub mod machine;
mod pending;

pub use forwarding::{BatcherCounters, BatcherCounts, Forwarding};

use crate::messages::{BATCHER, Forward, ForwardedAt, Propose, Proposed};
use crate::{Batch, Log};
use machine::{BatcherMachine, Effect, View};
use paxos_app::Decided;
use runtime::clock::Duration;
use runtime::{Envelope, NodeName, Process};
use std::sync::Arc;

/// The largest number of entries proposed in one instance (and forwarded in one message).
pub const MAX_BATCH: usize = 256;

/// How long delete-reference entries may wait for operations to ride with.
pub const LAZY_DELETE: Duration = Duration::from_millis(5);

/// The distinguished proposer's node this node's batcher forwards to: peer 0, when
/// forwarding is on and this node is not peer 0.
fn leader_of(log: &Log, opts: Forwarding) -> Option<NodeName> {
    log.peers()
        .first()
        .filter(|_| opts.enabled && log.me() != 0)
        .cloned()
}

/// Carries out the machine's effects, in order.
fn apply(p: &Process, log: &Log, effects: Vec<Effect>) {
    for effect in effects {
        match effect {
            Effect::Propose { seq, value } => {
                log.subscribe(seq, p.pid());
                log.start(seq, value);
            }
            Effect::Fill { seq } => log.start(seq, Batch::default()),
            Effect::Proposed { manager, seq } => p.send(&manager, Proposed { seq }),
            Effect::ForwardedAt { batcher, at } => p.send(&batcher, at),
            Effect::Forward { leader, forward } => p.send((BATCHER, &leader), forward),
        }
    }
}

/// Feeds one message to the machine.
fn handle(p: &Process, m: &mut BatcherMachine, env: Envelope) {
    let now = runtime::clock::now();
    let env = match env.downcast::<Propose>() {
        Ok(Propose { entry, manager }) => return m.propose(entry, manager, now),
        Err(env) => env,
    };
    let env = match env.downcast::<Decided<Batch>>() {
        Ok(d) => return m.decided(d.seq, &d.value, now, |most| p.node().random_up_to(most)),
        Err(env) => env,
    };
    let env = match env.downcast::<Forward>() {
        Ok(f) => return m.forward(f, now),
        Err(env) => env,
    };
    match env.downcast::<ForwardedAt>() {
        Ok(at) => m.forwarded_at(at, now),
        Err(env) => log::debug!("kv_batcher: unexpected message {env:?}"),
    }
}

/// The batcher's loop: what Paxos and the node look like, a tick of the machine, its
/// effects carried out, then the next message or the machine's next time; `counters`
/// outlive it (the status reads them).
pub(crate) async fn run(
    mut p: Process,
    log: Log,
    forwarding: Forwarding,
    counters: Arc<BatcherCounters>,
) {
    let leader = leader_of(&log, forwarding);
    let mut m = BatcherMachine::new(p.pid().clone(), leader, forwarding, counters);
    loop {
        let now = runtime::clock::now();
        // The connection table is read only when the machine may forward.
        let leader_connected = m.has_pending()
            && m.leader()
                .is_some_and(|leader| p.node().connected_nodes().contains(leader));
        let view = View {
            max: log.max(),
            paxos_alive: log.alive(),
            leader_connected,
        };
        let out = m.tick(now, view);
        apply(&p, &log, out.effects);
        let env = match out.wake_at {
            Some(t) => {
                p.recv_timeout(t.saturating_duration_since(runtime::clock::now()))
                    .await
            }
            None => Some(p.recv().await),
        };
        if let Some(env) = env {
            handle(&p, &mut m, env);
        }
    }
}
