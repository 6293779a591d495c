//! The proposal batcher (registered as `kv_batcher`; not in the original): operation
//! managers hand it their log entries, and it proposes them together, one batch at a time,
//! at the next free instance, telling each manager which instance carries its entry.
//! Concurrent operations on a node then share one Paxos instance instead of duelling for
//! the same one; the operation manager still checks that the decided value carries its
//! entry and asks again when another value won (a decided value may hold several
//! operations: "carries my reference" means "contains").
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

/// The batch in flight.
struct InFlight {
    seq: u64,
    entries: Vec<LogEntry>,
}

/// The batcher's loop.
pub(crate) async fn run(mut p: Process, log: Log) {
    let mut pending: Vec<(LogEntry, Pid)> = Vec::new();
    let mut in_flight: Option<InFlight> = None;
    let mut losses: u32 = 0;
    let mut paused_until: Option<Instant> = None;
    loop {
        let env = match paused_until {
            Some(t) if !pending.is_empty() && in_flight.is_none() => {
                p.recv_timeout(t.saturating_duration_since(Instant::now()))
                    .await
            }
            _ => Some(p.recv().await),
        };
        if let Some(env) = env {
            match env.downcast::<Propose>() {
                Ok(Propose { entry, manager }) => {
                    if !pending.iter().any(|(e, m)| *e == entry && *m == manager) {
                        pending.push((entry, manager));
                    }
                }
                Err(env) => match env.downcast::<Decided<Batch>>() {
                    Ok(d) => {
                        if let Some(f) = in_flight.take_if(|f| f.seq == d.seq) {
                            if f.entries.iter().any(|e| d.value.contains(e)) {
                                losses = 0;
                                paused_until = None;
                            } else if losses == 0 {
                                // A first loss is usually a stale `max` (the instance was
                                // decided before this batch reached it): retry at once.
                                losses = 1;
                            } else {
                                losses += 1;
                                let most = (Duration::from_micros(250) * 2u32.pow(losses.min(5)))
                                    .min(LONGEST_PAUSE);
                                let pause = rand::rng().random_range(Duration::ZERO..=most);
                                paused_until = Some(Instant::now() + pause);
                            }
                        }
                    }
                    Err(env) => log::debug!("kv_batcher: unexpected message {env:?}"),
                },
            }
        }
        if paused_until.is_some_and(|t| Instant::now() < t) {
            continue;
        }
        if in_flight.is_none() && !pending.is_empty() && log.alive() {
            let take = pending.len().min(MAX_BATCH);
            let batch: Vec<(LogEntry, Pid)> = pending.drain(..take).collect();
            let seq = log.max() + 1;
            log.subscribe(seq, p.pid());
            let mut value: Batch = Vec::with_capacity(batch.len());
            for (entry, _) in &batch {
                if !value.contains(entry) {
                    value.push(entry.clone());
                }
            }
            log.start(seq, value.clone());
            for (_, manager) in batch {
                p.send(&manager, Proposed { seq });
            }
            in_flight = Some(InFlight {
                seq,
                entries: value,
            });
        }
    }
}
