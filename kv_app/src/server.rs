//! The server (the original's `servidor`, registered as `kv_server`), a gen_server: takes
//! operation requests from clients, answers `Ok` when Paxos is alive (`Down` otherwise)
//! and hands each operation to a new operation manager; turns delete-reference requests
//! into log entries the same way.

use crate::Log;
use crate::messages::{DeleteRef, Request, RequestAnswer};
use crate::operation::{self, Waits};
use crate::ops::LogEntry;
use crate::service_counters::ServiceCounters;
use runtime::{CallResult, Envelope, Flow, GenServer, Process, ReplyTo};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The server takes no calls: clients send it plain messages, as in the original.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum NoCalls {}

/// The server's state: the Paxos log its operation managers use.
pub(crate) struct Server {
    pub(crate) log: Log,
    pub(crate) waits: Waits,
    /// Requests by kind and their latencies, for status and metrics.
    pub(crate) counters: Arc<ServiceCounters>,
    pub(crate) limits: crate::limits::Limits,
}

impl Server {
    /// `{Operación, Clave, IPCliente, Referencia}`.
    fn request(&self, ctx: &Process, Request { op, client }: Request) {
        let reference = op.reference;
        self.counters.count_request(op.kind);
        if let Err(e) = self.limits.check(&op.key, &op.value) {
            log::debug!("kv_server: {reference:?} refused: {e}");
            ctx.send(&client, RequestAnswer::TooLarge(reference, e));
        } else if self.log.alive() {
            ctx.send(&client, RequestAnswer::Ok(reference));
            let (log, waits, counters) = (self.log.clone(), self.waits, self.counters.clone());
            let arrived = runtime::clock::now();
            ctx.spawn(move |m| async move {
                operation::run(m, log, LogEntry::Op(op), Some(client), waits).await;
                counters.count_latency(arrived.elapsed());
            });
        } else {
            ctx.send(&client, RequestAnswer::Down(reference));
        }
    }

    /// `{borrar_ref, Referencia, IPCliente}`: agreed through Paxos like any operation.
    fn delete_ref(&self, ctx: &Process, DeleteRef { reference, .. }: DeleteRef) {
        let (log, waits) = (self.log.clone(), self.waits);
        ctx.spawn(move |m| operation::run(m, log, LogEntry::DeleteRef(reference), None, waits));
    }
}

impl GenServer for Server {
    type Call = NoCalls;
    type Reply = NoCalls;
    type Cast = NoCalls;

    fn handle_call(
        &mut self,
        req: NoCalls,
        _from: ReplyTo<NoCalls>,
        _ctx: &mut Process,
    ) -> CallResult<NoCalls> {
        match req {}
    }

    fn handle_info(&mut self, env: Envelope, ctx: &mut Process) -> Flow {
        let env = match env.downcast::<Request>() {
            Ok(r) => {
                self.request(ctx, r);
                return Flow::Continue;
            }
            Err(env) => env,
        };
        match env.downcast::<DeleteRef>() {
            Ok(d) => self.delete_ref(ctx, d),
            Err(env) => log::debug!("kv_server: unexpected message {env:?}"),
        }
        Flow::Continue
    }
}
