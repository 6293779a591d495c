//! Transports carry [`Wire`] frames between nodes: [`memory`] for nodes inside one OS
//! process, [`tcp`] for nodes in separate processes or machines. Both give the node the
//! same semantics: frames between two nodes arrive in order or not at all, and a lost
//! peer is reported so links and monitors fire `noconnection`.

pub mod memory;
pub mod sim;
pub mod tcp;

use crate::faults::NodeRole;
use crate::pid::{Dest, NodeName, Pid, Ref};
use crate::reason::ExitReason;
use serde::{Deserialize, Serialize};

/// What crosses between nodes. Everything but `Msg` without the control flag is control
/// traffic, never dropped by faults.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Wire {
    /// A message: the receiving node decodes `body` when the receiver asks for type `tag`.
    Msg {
        from: Option<Pid>,
        to: Dest,
        tag: u64,
        body: Vec<u8>,
        control: bool,
    },
    /// `from` links to `to`.
    Link { from: Pid, to: Pid },
    /// `from` removes its link to `to`.
    Unlink { from: Pid, to: Pid },
    /// An exit signal from `from` to `to` (`link`: from a link, not from `exit/2`).
    Exit {
        from: Pid,
        to: Pid,
        reason: ExitReason,
        link: bool,
    },
    /// `watcher` monitors `target`.
    Monitor {
        watcher: Pid,
        target: Dest,
        mref: Ref,
    },
    /// `watcher` drops the monitor `mref`.
    Demonitor { watcher: Pid, mref: Ref },
    /// The monitored `pid` ended (or never existed) with `reason`.
    Down {
        watcher: Pid,
        mref: Ref,
        pid: Pid,
        reason: ExitReason,
    },
}

impl Wire {
    /// Whether faults may drop this frame.
    pub fn droppable(&self) -> bool {
        matches!(self, Wire::Msg { control: false, .. })
    }
}

/// What a node needs from a transport.
pub trait Transport: Send + Sync + 'static {
    /// Sends a frame to `node`, connecting first when needed. Best effort: when the node
    /// cannot be reached the frame is lost and the transport reports the node down.
    fn send(&self, node: &NodeName, frame: Wire);
    /// The role a connected or known peer announced, if known.
    fn peer_role(&self, node: &NodeName) -> Option<NodeRole>;
    /// Nodes with a live connection.
    fn connected(&self) -> Vec<NodeName>;
    /// Closes the transport: connections are dropped, peers see this node down.
    fn shutdown(&self);
}
