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

mod forwarding;
mod pending;

pub use forwarding::{BatcherCounters, BatcherCounts, Forwarding};

use crate::messages::{Forward, ForwardedAt, Propose, Proposed};
use crate::ops::LogEntry;
use crate::{Batch, Log};
use forwarding::Forwarder;
use paxos_app::Decided;
use pending::{Origin, Pending, Waiting};
use rand::Rng;
use runtime::{Envelope, Pid, Process};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest number of entries proposed in one instance (and forwarded in one message).
pub const MAX_BATCH: usize = 256;

/// The longest pause after lost instances.
const LONGEST_PAUSE: Duration = Duration::from_millis(4);

/// How long delete-reference entries may wait for operations to ride with.
pub const LAZY_DELETE: Duration = Duration::from_millis(5);

/// How soon to look again when entries wait and Paxos is down.
const PAXOS_DOWN_RETRY: Duration = Duration::from_millis(20);

/// The batch in flight.
struct InFlight {
    seq: u64,
    entries: Batch,
}

struct Batcher {
    log: Log,
    counters: Arc<BatcherCounters>,
    forwarder: Forwarder,
    /// How long forwarded entries may wait here before their follower gives up on them.
    patience: Duration,
    pending: Pending,
    in_flight: Option<InFlight>,
    losses: u32,
    paused_until: Option<Instant>,
}

impl Batcher {
    fn new(log: Log, opts: Forwarding, counters: Arc<BatcherCounters>) -> Self {
        Batcher {
            forwarder: Forwarder::new(opts, &log),
            log,
            counters,
            patience: opts.patience,
            pending: Pending::default(),
            in_flight: None,
            losses: 0,
            paused_until: None,
        }
    }

    /// When the pending entries are due to go (at once when an operation waits, else
    /// when the oldest delete has waited [`LAZY_DELETE`]); `None` when nothing waits.
    fn due(&self, now: Instant) -> Option<Instant> {
        let urgent = self
            .pending
            .iter()
            .any(|w| matches!(w.entry, LogEntry::Op(_)));
        if urgent {
            return Some(now);
        }
        Some(self.pending.iter().map(|w| w.since).min()? + LAZY_DELETE)
    }

    fn forwarded_to_me(&mut self, f: Forward) {
        if !self.forwarder.proposes_for_others() {
            log::debug!(
                "kv_batcher: a forward from {} reached a node that forwards itself; dropped",
                f.batcher
            );
            return;
        }
        self.pending
            .add_forwarded(f.entries, &f.batcher, Instant::now());
    }

    /// Forwarded entries older than the patience are dropped: their follower has stopped
    /// waiting and proposes them itself.
    fn drop_stale_forwards(&mut self, now: Instant) {
        let before = self.pending.len();
        self.pending.retain(|w| {
            !(matches!(w.origin, Origin::Batcher(_)) && now >= w.since + self.patience)
        });
        let dropped = before - self.pending.len();
        if dropped > 0 {
            log::debug!("kv_batcher: dropped {dropped} forwarded entries that waited too long");
        }
    }

    fn decided(&mut self, d: Decided<Batch>) {
        let Some(f) = self.in_flight.take_if(|f| f.seq == d.seq) else {
            return;
        };
        // Our own proposal comes back as the very same shared batch.
        if Batch::ptr_eq(&f.entries, &d.value) || f.entries.iter().any(|e| d.value.contains(e)) {
            self.losses = 0;
            self.paused_until = None;
        } else if self.losses == 0 {
            // A first loss is usually a stale `max` (the instance was decided before this
            // batch reached it): retry at once.
            self.losses = 1;
        } else {
            self.losses += 1;
            let most =
                (Duration::from_micros(250) * 2u32.pow(self.losses.min(5))).min(LONGEST_PAUSE);
            let pause = rand::rng().random_range(Duration::ZERO..=most);
            self.paused_until = Some(Instant::now() + pause);
        }
    }

    /// The next batch of pending entries, oldest first, bounded in entries and bytes.
    fn next_batch(&mut self) -> Vec<Waiting> {
        self.pending
            .take_oldest_within(MAX_BATCH, crate::limits::MAX_BATCH_BYTES)
    }

    /// Proposes the next batch here, at `max + 1`; tells local managers `Proposed` and
    /// each follower batcher one `ForwardedAt` with its entries.
    fn launch(&mut self, p: &Process) {
        let batch = self.next_batch();
        let seq = self.log.max() + 1;
        self.log.subscribe(seq, p.pid());
        let value = Batch::from(distinct_entries(&batch));
        self.log.start(seq, value.clone());
        self.counters.count_local_batch();
        let mut followers: Vec<(Pid, Vec<LogEntry>)> = Vec::new();
        for w in batch {
            match w.origin {
                Origin::Manager(m) => p.send(&m, Proposed { seq }),
                Origin::Batcher(b) => match followers.iter_mut().find(|(f, _)| *f == b) {
                    Some((_, entries)) => entries.push(w.entry),
                    None => followers.push((b, vec![w.entry])),
                },
            }
        }
        for (b, entries) in followers {
            p.send(&b, ForwardedAt { seq, entries });
        }
        self.in_flight = Some(InFlight {
            seq,
            entries: value,
        });
    }

    /// Does what is due now; returns when to look again (`None`: at the next message).
    fn act(&mut self, p: &Process) -> Option<Instant> {
        let now = Instant::now();
        self.pending
            .put_back(self.forwarder.expire(&self.counters, now));
        self.forwarder.check_named(&self.log, now);
        if self.in_flight.is_none() {
            self.drop_stale_forwards(now);
        }
        let mut next = self.forwarder.next_due(now);
        let mut wake_at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        let Some(due) = self.due(now) else {
            return next;
        };
        if !self.log.alive() {
            // Paxos is down (stopped, or its supervisor restarting): look again shortly
            // rather than spin.
            wake_at(now + PAXOS_DOWN_RETRY);
            return next;
        }
        if let Some(leader) = self.forwarder.target(p, now) {
            if !self.forwarder.busy() {
                if due <= now {
                    let batch = self.next_batch();
                    self.forwarder.send(p, &leader, batch, &self.counters, now);
                    // Its patience is now due, and more may wait for the answer.
                    if let Some(t) = self.forwarder.next_due(now) {
                        wake_at(t);
                    }
                } else {
                    wake_at(due);
                }
            }
        } else if self.in_flight.is_none() {
            let at = self.paused_until.map_or(due, |p| p.max(due));
            if at <= now {
                self.launch(p);
            } else {
                wake_at(at);
            }
        }
        next
    }

    fn handle(&mut self, p: &Process, env: Envelope) {
        let env = match env.downcast::<Propose>() {
            Ok(Propose { entry, manager }) => {
                self.pending
                    .add_from_manager(entry, manager, Instant::now());
                return;
            }
            Err(env) => env,
        };
        let env = match env.downcast::<Decided<Batch>>() {
            Ok(d) => return self.decided(d),
            Err(env) => env,
        };
        let env = match env.downcast::<Forward>() {
            Ok(f) => return self.forwarded_to_me(f),
            Err(env) => env,
        };
        match env.downcast::<ForwardedAt>() {
            Ok(at) => self
                .forwarder
                .answered(p, at, &mut self.pending, Instant::now()),
            Err(env) => log::debug!("kv_batcher: unexpected message {env:?}"),
        }
    }
}

/// The entries of `batch`, each once, in order.
fn distinct_entries(batch: &[Waiting]) -> Vec<LogEntry> {
    let mut seen: HashSet<&LogEntry> = HashSet::with_capacity(batch.len());
    batch
        .iter()
        .filter(|w| seen.insert(&w.entry))
        .map(|w| w.entry.clone())
        .collect()
}

/// The batcher's loop; `counters` outlive it (the status reads them).
pub(crate) async fn run(
    mut p: Process,
    log: Log,
    forwarding: Forwarding,
    counters: Arc<BatcherCounters>,
) {
    let mut b = Batcher::new(log, forwarding, counters);
    loop {
        let env = match b.act(&p) {
            Some(t) => {
                p.recv_timeout(t.saturating_duration_since(Instant::now()))
                    .await
            }
            None => Some(p.recv().await),
        };
        if let Some(env) = env {
            b.handle(&p, env);
        }
    }
}
