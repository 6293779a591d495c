//! Identities: node names, process ids, unique references and send destinations.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// A node's name, `name@host`, as Erlang spells it. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeName(Arc<str>);

impl NodeName {
    /// Makes a node name; any string is accepted, `name@host` is the convention.
    pub fn new(name: impl AsRef<str>) -> Self {
        NodeName(Arc::from(name.as_ref()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before `@` (the whole name when there is none).
    pub fn short(&self) -> &str {
        self.0.split('@').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for NodeName {
    fn from(s: &str) -> Self {
        NodeName::new(s)
    }
}

impl From<String> for NodeName {
    fn from(s: String) -> Self {
        NodeName::new(s)
    }
}

impl From<&NodeName> for NodeName {
    fn from(n: &NodeName) -> Self {
        n.clone()
    }
}

/// A process id: the node it lives on, a number unique on that node, and the node's
/// incarnation (`serial`), so a pid from before a node restart never names a new process.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pid {
    pub(crate) node: NodeName,
    pub(crate) id: u64,
    pub(crate) serial: u32,
}

impl Pid {
    /// The node the process lives on.
    pub fn node(&self) -> &NodeName {
        &self.node
    }

    /// The number of the process on its node.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}.{}.{}>", self.node, self.id, self.serial)
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A unique reference (Erlang's `make_ref()`), used to tag monitors, calls and timers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Debug)]
pub struct Ref(pub u64);

/// Where a message goes: a pid, a name registered on the sender's node, or a name
/// registered on a given node. The same `send` call takes all three.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Debug)]
pub enum Dest {
    Pid(Pid),
    Name(String),
    Remote(String, NodeName),
}

impl From<Pid> for Dest {
    fn from(p: Pid) -> Self {
        Dest::Pid(p)
    }
}

impl From<&Pid> for Dest {
    fn from(p: &Pid) -> Self {
        Dest::Pid(p.clone())
    }
}

impl From<&str> for Dest {
    fn from(s: &str) -> Self {
        Dest::Name(s.to_string())
    }
}

impl From<(&str, &NodeName)> for Dest {
    fn from((name, node): (&str, &NodeName)) -> Self {
        Dest::Remote(name.to_string(), node.clone())
    }
}

impl From<(&str, NodeName)> for Dest {
    fn from((name, node): (&str, NodeName)) -> Self {
        Dest::Remote(name.to_string(), node)
    }
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dest::Pid(p) => write!(f, "{p}"),
            Dest::Name(n) => write!(f, "{n}"),
            Dest::Remote(n, node) => write!(f, "{{{n},{node}}}"),
        }
    }
}
