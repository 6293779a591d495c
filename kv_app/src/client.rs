//! The client (the original's `cliente`): one process per client node, registered as
//! `kv_client`, that knows a list of servers. It answers `get servers` with them, and runs
//! the node's operations one at a time: it sends the request to a server, and when that
//! server does not answer `Ok`, or the result does not come in time, it tries the next
//! one with the same reference — so the operation still runs exactly once. It keeps to
//! the server that served its last operation (each client starts at a server chosen at
//! random, or by the caller, so clients spread over the servers). After the
//! answer it asks the server to delete the reference. By default it never gives up (as
//! the original); a deadline can be set per operation. Stopping a client cancels the
//! operation it has in flight: it stops resending it at once and answers `Stopped` (what
//! was already sent may still take effect, as when the original stops the client's node).

use crate::limits::Limits;
use crate::messages::{
    Answer, ClientServers, DeleteRef, GetServers, KV_CLIENT, KV_SERVER, Request, RequestAnswer,
};
use crate::ops::{OpKind, OpRef, Operation};
use runtime::clock::Instant;
use runtime::{Envelope, Node, NodeName, Pid, Process};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Errors of client operations.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientError {
    #[error("no result within the deadline (the operation may still take effect)")]
    Timeout,
    #[error("no client process on node {0}")]
    NoClient(String),
    #[error("the client has no servers")]
    NoServers,
    #[error("the client was stopped (the operation may still take effect)")]
    Stopped,
    /// Over a limit: refused before anything was sent (or by the server), so it will
    /// never take effect.
    #[error("refused: {0}")]
    TooLarge(#[from] crate::limits::TooLarge),
}

/// How patient the client is.
#[derive(Clone, Copy, Debug)]
pub struct ClientTimeouts {
    /// How long to wait for a server's `Ok` before trying the next one.
    pub ask: Duration,
    /// How long to wait for the result once a server said `Ok`; doubled after each full
    /// round of the servers, up to `longest_result`.
    pub result: Duration,
    pub longest_result: Duration,
}

impl Default for ClientTimeouts {
    fn default() -> Self {
        ClientTimeouts {
            ask: Duration::from_millis(150),
            result: Duration::from_millis(400),
            longest_result: Duration::from_secs(2),
        }
    }
}

/// API -> client process: run this operation (`deadline`: give up after it).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Perform {
    kind: OpKind,
    key: String,
    value: String,
    deadline: Option<Duration>,
    reply_to: Pid,
    tag: u64,
}

/// Client process -> API: the outcome of a `Perform`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Performed {
    tag: u64,
    result: Result<String, ClientError>,
}

/// Stops the client process.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StopClient;

/// A handle on a running client.
#[derive(Clone, Debug)]
pub struct Client {
    node: Node,
    pid: Pid,
    limits: Limits,
}

/// Starts a client on `node` (registered as `kv_client`) that knows `servers`.
pub fn start(
    node: &Node,
    servers: Vec<NodeName>,
    timeouts: ClientTimeouts,
) -> Result<Client, runtime::NodeError> {
    let client = start_unregistered(node, servers, timeouts);
    node.register(KV_CLIENT, &client.pid)?;
    Ok(client)
}

/// Starts a client on `node` without registering it, so that several clients can share
/// one node (the command line's `bench` runs one per simulated user). Each has its own
/// id, hence its own operation references; its first server is chosen at random.
pub fn start_unregistered(node: &Node, servers: Vec<NodeName>, timeouts: ClientTimeouts) -> Client {
    let first = node.random_up_to(servers.len().saturating_sub(1) as u64) as usize;
    start_unregistered_at(node, servers, first, timeouts)
}

/// [`start_unregistered`] with the client's first server chosen: `servers[first % len]`
/// (the command line's `bench` spreads its clients over the servers in turn).
pub fn start_unregistered_at(
    node: &Node,
    servers: Vec<NodeName>,
    first: usize,
    timeouts: ClientTimeouts,
) -> Client {
    let id = node.random_u64();
    let first = first % servers.len().max(1);
    let pid = node.spawn(move |p| client_loop(p, id, first, servers, timeouts));
    Client {
        node: node.clone(),
        pid,
        limits: Limits::default(),
    }
}

/// The client registered on `node`, if any.
pub fn on(node: &Node) -> Result<Client, ClientError> {
    node.whereis(KV_CLIENT)
        .map(|pid| Client {
            node: node.clone(),
            pid,
            limits: Limits::default(),
        })
        .ok_or_else(|| ClientError::NoClient(node.name().to_string()))
}

impl Client {
    pub fn pid(&self) -> &Pid {
        &self.pid
    }

    /// Stops the client process, cancelling the operation it has in flight (its caller
    /// gets [`ClientError::Stopped`]).
    pub fn stop(&self) {
        self.node.send(None, &self.pid, StopClient);
    }

    /// `{get servidores, From}`: the servers the client knows.
    pub async fn servers(&self) -> Result<Vec<NodeName>, ClientError> {
        let mut me = self.node.attach();
        me.send(
            &self.pid,
            GetServers {
                from: me.pid().clone(),
            },
        );
        let mref = me.monitor(&self.pid);
        let got = me
            .receive(None, |env| {
                let env = match env.downcast::<ClientServers>() {
                    Ok(s) => return Ok(Some(s.0)),
                    Err(env) => env,
                };
                match env.downcast::<runtime::Down>() {
                    Ok(d) if d.mref == mref => Ok(None),
                    Ok(d) => Err(Envelope::local(None, d)),
                    Err(env) => Err(env),
                }
            })
            .await
            .flatten();
        got.ok_or_else(|| ClientError::NoClient(self.node.name().to_string()))
    }

    /// Any operation, with an optional deadline after which it answers `Timeout`.
    pub async fn run(
        &self,
        kind: OpKind,
        key: &str,
        value: &str,
        deadline: Option<Duration>,
    ) -> Result<String, ClientError> {
        self.limits.check(key, value)?;
        let mut me = self.node.attach();
        let tag = self.node.random_u64();
        let mref = me.monitor(&self.pid);
        me.send(
            &self.pid,
            Perform {
                kind,
                key: key.to_string(),
                value: value.to_string(),
                deadline,
                reply_to: me.pid().clone(),
                tag,
            },
        );
        me.receive(None, |env| {
            let env = match env.downcast::<Performed>() {
                Ok(r) if r.tag == tag => return Ok(r.result),
                Ok(r) => return Err(Envelope::local(None, r)),
                Err(env) => env,
            };
            match env.downcast::<runtime::Down>() {
                Ok(d) if d.mref == mref => {
                    Ok(Err(ClientError::NoClient(self.node.name().to_string())))
                }
                Ok(d) => Err(Envelope::local(None, d)),
                Err(env) => Err(env),
            }
        })
        .await
        .unwrap_or(Err(ClientError::Timeout))
    }

    /// The same client, checking operations against `limits` before sending them.
    pub fn with_limits(mut self, limits: Limits) -> Client {
        self.limits = limits;
        self
    }

    /// `Lee`: the value of `key` (`""` when never written).
    pub async fn read(&self, key: &str) -> Result<String, ClientError> {
        self.run(OpKind::Read, key, "", None).await
    }

    /// `Escribe`: stores `value` under `key`; returns the value.
    pub async fn write(&self, key: &str, value: &str) -> Result<String, ClientError> {
        self.run(OpKind::Write, key, value, None).await
    }

    /// `Escribe_hash`: stores `phash2(previous ++ value)`; returns the previous value.
    pub async fn write_hash(&self, key: &str, value: &str) -> Result<String, ClientError> {
        self.run(OpKind::WriteHash, key, value, None).await
    }
}

/// The client process: answers `get servers`, runs operations one at a time.
async fn client_loop(
    mut p: Process,
    id: u64,
    first: usize,
    servers: Vec<NodeName>,
    timeouts: ClientTimeouts,
) {
    let mut seq = 0u64;
    // Start each client at a different server so that load spreads.
    let mut next_server = first;
    loop {
        let env = p.recv().await;
        let env = match env.downcast::<GetServers>() {
            Ok(g) => {
                p.send(&g.from, ClientServers(servers.clone()));
                continue;
            }
            Err(env) => env,
        };
        let env = match env.downcast::<Perform>() {
            Ok(job) => {
                seq += 1;
                let reference = OpRef { client: id, seq };
                let op = Operation {
                    kind: job.kind,
                    key: job.key,
                    value: job.value,
                    reference,
                };
                let result = if servers.is_empty() {
                    Err(ClientError::NoServers)
                } else {
                    run_operation(
                        &mut p,
                        &servers,
                        &mut next_server,
                        op,
                        job.deadline,
                        timeouts,
                    )
                    .await
                };
                let stopped = result == Err(ClientError::Stopped);
                p.send(
                    &job.reply_to,
                    Performed {
                        tag: job.tag,
                        result,
                    },
                );
                if stopped {
                    return;
                }
                continue;
            }
            Err(env) => env,
        };
        if env.is::<StopClient>() {
            return;
        }
        // Late answers of earlier operations are dropped here.
    }
}

/// What the client waits for while an operation is in flight.
enum Event {
    Taken(NodeName),
    Refused,
    Result(String),
    Stop,
    TooLarge(crate::limits::TooLarge),
}

/// Sends the operation to one server after another until a result comes back.
async fn run_operation(
    p: &mut Process,
    servers: &[NodeName],
    next_server: &mut usize,
    op: Operation,
    deadline: Option<Duration>,
    timeouts: ClientTimeouts,
) -> Result<String, ClientError> {
    let reference = op.reference;
    let give_up = deadline.map(|d| Instant::now() + d);
    let mut result_wait = timeouts.result;
    let mut tried = 0usize;
    loop {
        let server = servers[*next_server % servers.len()].clone();
        p.send(
            (KV_SERVER, &server),
            Request {
                op: op.clone(),
                client: p.pid().clone(),
            },
        );
        // First the server's Ok, then the result; an early result is welcome too.
        let mut until = Instant::now() + timeouts.ask;
        let mut taken_by: Option<NodeName> = None;
        loop {
            let mut limit = until;
            if let Some(g) = give_up {
                limit = limit.min(g);
            }
            let wait = limit.saturating_duration_since(Instant::now());
            let event = p
                .receive(Some(wait), |env| classify(env, reference, &server))
                .await
                .flatten();
            match event {
                Some(Event::Result(value)) => {
                    // The next operation starts at the server that served this one.
                    let to = taken_by.unwrap_or(server);
                    if let Some(i) = servers.iter().position(|s| *s == to) {
                        *next_server = i;
                    }
                    p.send(
                        (KV_SERVER, &to),
                        DeleteRef {
                            reference,
                            client: p.pid().clone(),
                        },
                    );
                    return Ok(value);
                }
                Some(Event::Taken(by)) if taken_by.is_none() => {
                    taken_by = Some(by);
                    until = Instant::now() + result_wait;
                }
                Some(Event::Taken(_)) => {}
                Some(Event::Refused) => break,
                Some(Event::Stop) => return Err(ClientError::Stopped),
                Some(Event::TooLarge(e)) => return Err(ClientError::TooLarge(e)),
                None => {
                    if give_up.is_some_and(|g| Instant::now() >= g) {
                        return Err(ClientError::Timeout);
                    }
                    if Instant::now() >= until {
                        break;
                    }
                }
            }
        }
        // No answer in time (or `Down`): the next server in turn.
        *next_server = (*next_server + 1) % servers.len();
        tried += 1;
        if tried.is_multiple_of(servers.len()) {
            result_wait = (result_wait * 2).min(timeouts.longest_result);
        }
    }
}

/// Sorts an incoming message: answers for this operation and a stop become events
/// (`Some`), stale answers of earlier operations are consumed and ignored (`None`),
/// anything else stays.
fn classify(env: Envelope, reference: OpRef, server: &NodeName) -> Result<Option<Event>, Envelope> {
    if env.is::<StopClient>() {
        return Ok(Some(Event::Stop));
    }
    let sender_node = env.from().map(|p| p.node().clone());
    let env = match env.downcast::<Answer>() {
        Ok(a) if a.reference() == reference => {
            return Ok(Some(Event::Result(a.value().to_string())));
        }
        Ok(_) => return Ok(None),
        Err(env) => env,
    };
    match env.downcast::<RequestAnswer>() {
        Ok(RequestAnswer::Ok(r)) if r == reference => Ok(Some(Event::Taken(
            sender_node.unwrap_or_else(|| server.clone()),
        ))),
        Ok(RequestAnswer::Down(r)) if r == reference => Ok(Some(Event::Refused)),
        Ok(RequestAnswer::TooLarge(r, e)) if r == reference => Ok(Some(Event::TooLarge(e))),
        Ok(_) => Ok(None),
        Err(env) => Err(env),
    }
}
