//! The node's control process (`node_ctl`): fault injection, status and process kills
//! requested from another node (the command line's `paxoskv ctl`). Requests and replies
//! travel as control traffic, which faults never drop, so a deaf or cut-off node can
//! still be told to listen again.

use crate::app::{self, NodeStatus};
use runtime::{Down, Envelope, ExitReason, Node, NodeName, Pid, Process};
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
    /// Server-to-server traffic only with these nodes.
    Allow(Vec<String>),
    AllowAll,
    Status,
    /// Kill the process registered under this name (its supervisor restarts it).
    Kill(String),
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
}

/// The control process's loop. `status` produces the node's status.
pub(crate) async fn run(mut p: Process, status: impl Fn() -> NodeStatus + Send + 'static) {
    loop {
        let env = p.recv().await;
        let Ok(call) = env.downcast::<ControlCall>() else {
            log::debug!("node_ctl: unexpected message");
            continue;
        };
        let node = p.node().clone();
        let reply = match call.request {
            ControlRequest::Status => ControlReply::Status(Box::new(status())),
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
        ControlRequest::Allow(names) => {
            let names: Vec<NodeName> = names.iter().map(NodeName::new).collect();
            app::allow(node, &names)
        }
        ControlRequest::AllowAll => app::allow_all(node),
        ControlRequest::Status => {
            return ControlReply::Refused("status needs the kv application".into());
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
    let tag: u64 = node.random_u64();
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
