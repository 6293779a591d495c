//! The proposal batcher (registered as `kv_batcher`; not in the original): operation
//! managers hand it their log entries, and it proposes them together, one batch at a time,
//! at the next free instance, telling each manager which instance carries its entry.
//! Concurrent operations on a node then share one Paxos instance instead of duelling for
//! the same one; the operation manager still checks that the decided value carries its
//! entry and asks again when another value won (a decided value may hold several
//! operations: "carries my reference" means "contains").
//!
//! Delete-reference entries are not urgent (nobody waits for them): they ride with the
//! next batch of operations, or go on their own after [`LAZY_DELETE`], so that a client's
//! delete does not cost its next operation a Paxos round of its own.
//!
//! Batchers of different nodes still meet at the same instance. When a batcher's batch
//! loses twice in a row, it waits a short random while (growing with the losses, at most
//! a few milliseconds) before proposing again, so that the node that is winning keeps the
//! instances flowing instead of every node duelling for each one; a win resets the wait.
//! (A single loss is most often a stale `max`, and is retried at once.)

use crate::messages::{Propose, Proposed};
use crate::ops::LogEntry;
use crate::{Batch, Log};
use paxos_app::Decided;
use rand::Rng;
use runtime::{Pid, Process};
use std::time::{Duration, Instant};

/// The largest number of entries proposed in one instance.
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
    entries: Vec<LogEntry>,
}

/// An entry waiting to be proposed, who asked, and since when.
struct Waiting {
    entry: LogEntry,
    manager: Pid,
    since: Instant,
}

struct Batcher {
    log: Log,
    pending: Vec<Waiting>,
    in_flight: Option<InFlight>,
    losses: u32,
    paused_until: Option<Instant>,
}

impl Batcher {
    /// When the next batch should go, if there is one to send.
    fn ready_at(&self) -> Option<Instant> {
        if self.in_flight.is_some() || self.pending.is_empty() {
            return None;
        }
        let urgent = self
            .pending
            .iter()
            .any(|w| matches!(w.entry, LogEntry::Op(_)));
        let base = if urgent {
            Instant::now()
        } else {
            self.pending.iter().map(|w| w.since).min()? + LAZY_DELETE
        };
        Some(self.paused_until.map_or(base, |p| p.max(base)))
    }

    fn take(&mut self, entry: LogEntry, manager: Pid) {
        if !self
            .pending
            .iter()
            .any(|w| w.entry == entry && w.manager == manager)
        {
            self.pending.push(Waiting {
                entry,
                manager,
                since: Instant::now(),
            });
        }
    }

    fn decided(&mut self, d: Decided<Batch>) {
        let Some(f) = self.in_flight.take_if(|f| f.seq == d.seq) else {
            return;
        };
        if f.entries.iter().any(|e| d.value.contains(e)) {
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

    fn launch(&mut self, p: &Process) {
        let take = self.pending.len().min(MAX_BATCH);
        let batch: Vec<Waiting> = self.pending.drain(..take).collect();
        let seq = self.log.max() + 1;
        self.log.subscribe(seq, p.pid());
        let mut value: Batch = Vec::with_capacity(batch.len());
        for w in &batch {
            if !value.contains(&w.entry) {
                value.push(w.entry.clone());
            }
        }
        self.log.start(seq, value.clone());
        for w in batch {
            p.send(&w.manager, Proposed { seq });
        }
        self.in_flight = Some(InFlight {
            seq,
            entries: value,
        });
    }
}

/// The batcher's loop.
pub(crate) async fn run(mut p: Process, log: Log) {
    let mut b = Batcher {
        log,
        pending: Vec::new(),
        in_flight: None,
        losses: 0,
        paused_until: None,
    };
    loop {
        let env = match b.ready_at() {
            // Paxos is down (stopped, or its supervisor restarting): look again shortly
            // rather than spin.
            Some(t) if t <= Instant::now() && !b.log.alive() => {
                p.recv_timeout(PAXOS_DOWN_RETRY).await
            }
            Some(t) if t <= Instant::now() => None,
            Some(t) => p.recv_timeout(t - Instant::now()).await,
            None => Some(p.recv().await),
        };
        if let Some(env) = env {
            match env.downcast::<Propose>() {
                Ok(Propose { entry, manager }) => b.take(entry, manager),
                Err(env) => match env.downcast::<Decided<Batch>>() {
                    Ok(d) => b.decided(d),
                    Err(env) => log::debug!("kv_batcher: unexpected message {env:?}"),
                },
            }
        }
        if b.log.alive() && b.ready_at().is_some_and(|t| t <= Instant::now()) {
            b.launch(&p);
        }
    }
}
