//! The proposal batcher (registered as `kv_batcher`; not in the original): operation
//! managers hand it their log entries, and it proposes them together, one batch at a time,
//! at the next free instance, telling each manager which instance carries its entry.
//! Concurrent operations on a node then share one Paxos instance instead of duelling for
//! the same one; the operation manager still checks that the decided value carries its
//! entry and asks again when another value won (a decided value may hold several
//! operations: "carries my reference" means "contains").

use crate::messages::{Propose, Proposed};
use crate::ops::LogEntry;
use crate::{Batch, Log};
use paxos_app::Decided;
use runtime::{Pid, Process};

/// The largest number of entries proposed in one instance.
pub const MAX_BATCH: usize = 256;

/// The batcher's loop.
pub(crate) async fn run(mut p: Process, log: Log) {
    let mut pending: Vec<(LogEntry, Pid)> = Vec::new();
    let mut in_flight: Option<u64> = None;
    loop {
        let env = p.recv().await;
        let env = match env.downcast::<Propose>() {
            Ok(Propose { entry, manager }) => {
                if !pending.iter().any(|(e, m)| *e == entry && *m == manager) {
                    pending.push((entry, manager));
                }
                None
            }
            Err(env) => Some(env),
        };
        if let Some(env) = env {
            match env.downcast::<Decided<Batch>>() {
                Ok(d) if Some(d.seq) == in_flight => in_flight = None,
                Ok(_) => {}
                Err(env) => log::debug!("kv_batcher: unexpected message {env:?}"),
            }
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
            log.start(seq, value);
            for (_, manager) in batch {
                p.send(&manager, Proposed { seq });
            }
            in_flight = Some(seq);
        }
    }
}
