//! The operation manager (the original's `GestionarOperación`): one process per operation.
//! It proposes the operation at the next free instance (max seen + 1) — through the node's
//! batcher, which puts concurrent operations into one instance —, waits for the decision
//! with growing waits, but wakes as soon as its instance is decided, checks that the
//! decided value carries its reference, retries at a later instance when another value
//! won, then asks the DB manager to bring the data up to that instance and sends the
//! result to the client.

use crate::messages::{Answer, BATCHER, DB_MANAGER, Propose, Proposed, UpdateDb, Updated};
use crate::ops::{LogEntry, OpKind};
use crate::{Batch, Log};
use paxos_app::{Decided, Status};
use runtime::{Pid, Process, gen_server};
use std::time::Duration;

/// How long the operation manager sleeps between looks at Paxos, and at the DB manager.
#[derive(Clone, Copy, Debug)]
pub struct Waits {
    /// The first wait for a decision; doubled each time round.
    pub first: Duration,
    /// The longest wait for a decision.
    pub longest: Duration,
    /// How long to wait for the batcher's `Proposed` or the DB manager's `Updated` before
    /// asking again (either may be restarting).
    pub db_manager: Duration,
}

impl Default for Waits {
    fn default() -> Self {
        Waits {
            first: Duration::from_millis(10),
            longest: Duration::from_millis(1000),
            db_manager: Duration::from_millis(1000),
        }
    }
}

/// Whether a decided batch carries this entry (batches may hold several operations).
fn carries(batch: &Batch, entry: &LogEntry) -> bool {
    batch.iter().any(|e| e == entry)
}

/// Waits until instance `seq` is decided and returns its value. The learner sends a
/// `Decided` as soon as it knows; the growing timeout only re-checks local state.
async fn decision(p: &mut Process, log: &Log, seq: u64, waits: Waits) -> Option<Batch> {
    let mut wait = waits.first;
    loop {
        if let Some(d) = p
            .receive_match::<Decided<Batch>>(Some(wait), |d| d.seq == seq)
            .await
        {
            return Some(d.value);
        }
        match log.status(seq) {
            Status::Decided(v) => return Some(v),
            // Forgotten before we saw it: everybody applied it, so it was not ours.
            Status::Forgotten => return None,
            Status::Pending => {}
        }
        if !log.alive() {
            return None;
        }
        wait = (wait * 2).min(waits.longest);
    }
}

/// Runs one operation (or a delete-reference) through Paxos; answers `client` when given.
pub(crate) async fn run(
    mut p: Process,
    log: Log,
    entry: LogEntry,
    client: Option<Pid>,
    waits: Waits,
) {
    let instance = loop {
        if !log.alive() {
            log::debug!("operation manager {}: Paxos is down", p.pid());
            return;
        }
        p.send(
            BATCHER,
            Propose {
                entry: entry.clone(),
                manager: p.pid().clone(),
            },
        );
        // The batcher may be restarting: ask again when it does not answer.
        let Some(Proposed { seq }) = p.receive_type::<Proposed>(Some(waits.db_manager)).await
        else {
            continue;
        };
        log.subscribe(seq, p.pid());
        match decision(&mut p, &log, seq, waits).await {
            Some(batch) if carries(&batch, &entry) => break seq,
            _ => log::trace!("instance {seq} went to another value; retrying"),
        }
    };
    let (LogEntry::Op(op), Some(client)) = (&entry, client) else {
        return;
    };
    let reference = op.reference;
    let updated = loop {
        gen_server::cast(
            &p,
            DB_MANAGER,
            UpdateDb {
                instance,
                reference,
                manager: p.pid().clone(),
            },
        );
        if let Some(u) = p
            .receive_match::<Updated>(Some(waits.db_manager), |u| u.reference == reference)
            .await
        {
            break u;
        }
    };
    let Some(value) = updated.result else {
        return;
    };
    let answer = match op.kind {
        OpKind::Read => Answer::Read { reference, value },
        OpKind::Write | OpKind::WriteHash => Answer::Write { reference, value },
    };
    p.send(&client, answer);
}
