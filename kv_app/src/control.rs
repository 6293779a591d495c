//! The node's control process (`node_ctl`): fault injection, status, process kills and
//! the remote Paxos API (the original's `estado`, `max`, `min`, `n_mensajes` asked of a
//! peer on another node), requested from another node (the command line's `paxoskv
//! ctl`). Requests and replies travel as control traffic, which faults never drop, so a
//! deaf or cut-off node can still be told to listen again.

use crate::Log;
use crate::app::{self, NodeStatus};
use crate::ops::LogEntry;
use paxos_app::{RequestCount, Status};
use runtime::faults::LossModel;
use runtime::{Down, Envelope, ExitReason, Node, NodeName, NodeStats, Pid, Process};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The registered name of the control process on every server node.
pub const NODE_CTL: &str = "node_ctl";

/// What a control request asks.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum ControlRequest {
    Deaf,
    Listen,
    Reliable,
    /// Drop each message crossing the node's boundary with this probability.
    Unreliable(f64),
    /// Unreliable under a loss model (see `runtime::faults`); the MIT model ignores the
    /// probability (its rates are fixed).
    UnreliableModel {
        model: LossModel,
        probability: f64,
    },
    /// Server-to-server traffic only with these nodes.
    Allow(Vec<String>),
    AllowAll,
    Status,
    /// Kill the process registered under this name (its supervisor restarts it).
    Kill(String),
    /// Ask the node's Paxos peer.
    Paxos(PaxosQuery),
}

/// What the remote Paxos API asks of a peer (each answered from its local state).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum PaxosQuery {
    /// `status(seq)` (the original's `estado`).
    Status(u64),
    /// The highest instance the peer has seen.
    Max,
    /// One more than the lowest `done` over all peers.
    Min,
    /// How many messages the peer has received (the original's `n_mensajes`).
    Messages,
}

/// What a peer knows of one instance.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    Decided,
    Pending,
    Forgotten,
}

/// The answer to a [`PaxosQuery`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum PaxosAnswer {
    Status {
        seq: u64,
        state: InstanceState,
        /// The decided batch of log entries, when decided.
        value: Option<Vec<LogEntry>>,
    },
    Max(u64),
    Min(u64),
    Messages {
        /// Protocol requests the Paxos peer received (prepare, accept, decided).
        requests: RequestCount,
        /// Every message (frame) the node received from other nodes and accepted.
        node: NodeStats,
    },
}

/// Answers a Paxos query from the node's Paxos handle.
pub fn answer_paxos(log: &Log, query: PaxosQuery) -> PaxosAnswer {
    match query {
        PaxosQuery::Status(seq) => {
            let (state, value) = match log.status(seq) {
                Status::Decided(batch) => (InstanceState::Decided, Some(batch.to_vec())),
                Status::Pending => (InstanceState::Pending, None),
                Status::Forgotten => (InstanceState::Forgotten, None),
            };
            PaxosAnswer::Status { seq, state, value }
        }
        PaxosQuery::Max => PaxosAnswer::Max(log.max()),
        PaxosQuery::Min => PaxosAnswer::Min(log.min()),
        PaxosQuery::Messages => PaxosAnswer::Messages {
            requests: log.requests_received(),
            node: log.node().stats(),
        },
    }
}

/// A control request with where to answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ControlCall {
    request: ControlRequest,
    reply_to: Pid,
    tag: u64,
}

/// The answer to a control request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum ControlReply {
    Done,
    Status(Box<NodeStatus>),
    Paxos(PaxosAnswer),
    Refused(String),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Tagged {
    tag: u64,
    reply: ControlReply,
}

/// Errors of a control call.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ControlError {
    #[error("no answer from {0} within {1:?}")]
    Timeout(String, Duration),
    #[error("node {0} is unreachable or has no control process")]
    Unreachable(String),
    #[error("node {0} refused: {1}")]
    Refused(String, String),
    #[error("node {0} gave an unexpected answer")]
    Unexpected(String),
}

/// The control process's loop. `status` produces the node's status; `log` answers the
/// Paxos queries.
pub(crate) async fn run(
    mut p: Process,
    log: Log,
    status: impl Fn() -> NodeStatus + Send + 'static,
) {
    loop {
        let env = p.recv().await;
        let Ok(call) = env.downcast::<ControlCall>() else {
            log::debug!("node_ctl: unexpected message");
            continue;
        };
        let node = p.node().clone();
        let reply = match call.request {
            ControlRequest::Status => ControlReply::Status(Box::new(status())),
            ControlRequest::Paxos(query) => ControlReply::Paxos(answer_paxos(&log, query)),
            other => apply(&node, other),
        };
        p.send_control(
            &call.reply_to,
            Tagged {
                tag: call.tag,
                reply,
            },
        );
    }
}

/// Carries out a request on `node`.
pub fn apply(node: &Node, request: ControlRequest) -> ControlReply {
    match request {
        ControlRequest::Deaf => app::deaf(node),
        ControlRequest::Listen => app::listen(node),
        ControlRequest::Reliable => app::reliable(node),
        ControlRequest::Unreliable(p) => {
            if !(0.0..=1.0).contains(&p) {
                return ControlReply::Refused(format!("probability {p} is not within 0..1"));
            }
            app::unreliable(node, p)
        }
        ControlRequest::UnreliableModel { model, probability } => {
            if !(0.0..=1.0).contains(&probability) {
                return ControlReply::Refused(format!(
                    "probability {probability} is not within 0..1"
                ));
            }
            app::unreliable_as(node, model, probability)
        }
        ControlRequest::Allow(names) => {
            let names: Vec<NodeName> = names.iter().map(NodeName::new).collect();
            app::allow(node, &names)
        }
        ControlRequest::AllowAll => app::allow_all(node),
        ControlRequest::Status | ControlRequest::Paxos(_) => {
            return ControlReply::Refused("this request needs the kv application".into());
        }
        ControlRequest::Kill(name) => match node.whereis(&name) {
            Some(pid) => {
                log::info!("{}: killing {name} ({pid}) on request", node.name());
                node.exit(None, &pid, ExitReason::Kill);
            }
            None => return ControlReply::Refused(format!("no process registered as {name}")),
        },
    }
    ControlReply::Done
}

/// Sends `request` to the control process of `target` from `node` and waits for the
/// answer, at most `timeout`.
pub async fn call(
    node: &Node,
    target: &NodeName,
    request: ControlRequest,
    timeout: Duration,
) -> Result<ControlReply, ControlError> {
    let mut me = node.attach();
    let tag = node.random_u64();
    let mref = me.monitor((NODE_CTL, target));
    me.send_control(
        (NODE_CTL, target),
        ControlCall {
            request,
            reply_to: me.pid().clone(),
            tag,
        },
    );
    let got = me
        .receive(Some(timeout), |env| {
            let env = match env.downcast::<Tagged>() {
                Ok(t) if t.tag == tag => return Ok(Some(t.reply)),
                Ok(t) => return Err(Envelope::local(None, t)),
                Err(env) => env,
            };
            match env.downcast::<Down>() {
                Ok(d) if d.mref == mref => Ok(None),
                Ok(d) => Err(Envelope::local(None, d)),
                Err(env) => Err(env),
            }
        })
        .await;
    me.demonitor(mref);
    match got {
        Some(Some(reply)) => Ok(reply),
        Some(None) => Err(ControlError::Unreachable(target.to_string())),
        None => Err(ControlError::Timeout(target.to_string(), timeout)),
    }
}

/// Asks the Paxos peer of `target` from `node` (the remote Paxos API).
pub async fn paxos(
    node: &Node,
    target: &NodeName,
    query: PaxosQuery,
    timeout: Duration,
) -> Result<PaxosAnswer, ControlError> {
    match call(node, target, ControlRequest::Paxos(query), timeout).await? {
        ControlReply::Paxos(answer) => Ok(answer),
        ControlReply::Refused(why) => Err(ControlError::Refused(target.to_string(), why)),
        _ => Err(ControlError::Unexpected(target.to_string())),
    }
}
