//! The server (the original's `servidor`, registered as `kv_server`): takes operation
//! requests from clients, answers `Ok` when Paxos is alive (`Down` otherwise) and hands
//! each operation to a new operation manager; turns delete-reference requests into log
//! entries the same way.

use crate::Log;
use crate::messages::{DeleteRef, Request, RequestAnswer};
use crate::operation::{self, Waits};
use crate::ops::LogEntry;
use runtime::Process;

/// The server's loop.
pub(crate) async fn run(mut p: Process, log: Log, waits: Waits) {
    loop {
        let env = p.recv().await;
        let env = match env.downcast::<Request>() {
            Ok(Request { op, client }) => {
                let reference = op.reference;
                if log.alive() {
                    p.send(&client, RequestAnswer::Ok(reference));
                    let log = log.clone();
                    p.spawn(move |m| operation::run(m, log, LogEntry::Op(op), Some(client), waits));
                } else {
                    p.send(&client, RequestAnswer::Down(reference));
                }
                continue;
            }
            Err(env) => env,
        };
        match env.downcast::<DeleteRef>() {
            Ok(DeleteRef { reference, .. }) => {
                let log = log.clone();
                p.spawn(move |m| {
                    operation::run(m, log, LogEntry::DeleteRef(reference), None, waits)
                });
            }
            Err(env) => log::debug!("kv_server: unexpected message {env:?}"),
        }
    }
}
