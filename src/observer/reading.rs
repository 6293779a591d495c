//! One look at the cluster: every node's `status` reply (or why there was none), taken
//! through each node's control process, as `paxoskv ctl status` does.

use futures::future::join_all;
use kv_app::NodeStatus;
use kv_app::control::{self, ControlError, ControlReply, ControlRequest};
use runtime::{Node, NodeName};
use std::net::SocketAddr;
use std::time::Duration;

/// A node the observer watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// `name@host`.
    pub name: String,
    /// Where it accepts connections.
    pub addr: SocketAddr,
}

/// What one node answered.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeReading {
    pub member: Member,
    pub status: Result<NodeStatus, String>,
}

impl NodeReading {
    pub fn status(&self) -> Option<&NodeStatus> {
        self.status.as_ref().ok()
    }
}

/// The nodes a page shows and the node it asks them from.
#[derive(Clone)]
pub struct Cluster {
    /// The node the observer's requests leave from (a server node of the cluster).
    pub caller: Node,
    pub members: Vec<Member>,
}

impl Cluster {
    /// Every node's status, asked all at once; each waits at most `timeout`.
    pub async fn read(&self, timeout: Duration) -> Vec<NodeReading> {
        let asks = self.members.iter().map(|m| async move {
            let answer = self.request(&m.name, ControlRequest::Status, timeout).await;
            let status = match answer {
                Ok(ControlReply::Status(s)) => Ok(*s),
                Ok(other) => Err(format!("unexpected answer {other:?}")),
                Err(e) => Err(e.to_string()),
            };
            NodeReading {
                member: m.clone(),
                status,
            }
        });
        join_all(asks).await
    }

    /// Sends one control request to `node`'s control process.
    pub async fn request(
        &self,
        node: &str,
        request: ControlRequest,
        timeout: Duration,
    ) -> Result<ControlReply, ControlError> {
        control::call(&self.caller, &NodeName::new(node), request, timeout).await
    }

    /// Whether `name` is one of the nodes watched.
    pub fn has(&self, name: &str) -> bool {
        self.members.iter().any(|m| m.name == name)
    }
}
