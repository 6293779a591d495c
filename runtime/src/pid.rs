//! Identities: node names, process ids, unique references and send destinations.

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

/// A node's name, `name@host`, as Erlang spells it. Names are interned (as atoms are in
/// Erlang), so a name is a small number: cloning, comparing and hashing it cost nothing,
/// which keeps pids cheap on the send path. Interned names are never freed; a node meets
/// few distinct names (its peers and the clients that connect to it), and the TCP
/// transport interns a peer's name only once the peer has proved the cookie.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NodeName(u32);

/// The process-wide table of node names.
struct Interner {
    names: Vec<&'static str>,
    index: HashMap<&'static str, u32>,
}

fn interner() -> &'static RwLock<Interner> {
    static INTERNER: OnceLock<RwLock<Interner>> = OnceLock::new();
    INTERNER.get_or_init(|| {
        RwLock::new(Interner {
            names: Vec::new(),
            index: HashMap::new(),
        })
    })
}

impl NodeName {
    /// Makes (interns) a node name; any string is accepted, `name@host` is the convention.
    pub fn new(name: impl AsRef<str>) -> Self {
        let name = name.as_ref();
        if let Some(&i) = interner().read().index.get(name) {
            return NodeName(i);
        }
        let mut table = interner().write();
        if let Some(&i) = table.index.get(name) {
            return NodeName(i);
        }
        let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
        let i = u32::try_from(table.names.len()).unwrap_or(u32::MAX);
        table.names.push(leaked);
        table.index.insert(leaked, i);
        NodeName(i)
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &'static str {
        interner()
            .read()
            .names
            .get(self.0 as usize)
            .copied()
            .unwrap_or("?")
    }

    /// The part before `@` (the whole name when there is none).
    pub fn short(&self) -> &'static str {
        let s = self.as_str();
        s.split('@').next().unwrap_or(s)
    }
}

/// How many node names this OS process has interned (they are never freed): what a
/// test watches to see that strangers leave nothing behind.
pub fn interned_count() -> usize {
    interner().read().names.len()
}

impl PartialOrd for NodeName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Ordered by the text of the name, so every OS process agrees on the order.
impl Ord for NodeName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self.0 == other.0 {
            std::cmp::Ordering::Equal
        } else {
            self.as_str().cmp(other.as_str())
        }
    }
}

impl Serialize for NodeName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for NodeName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(NodeName::new(s))
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
/// creation number (its incarnation, as Erlang's `creation`), so a pid from before a
/// node restart never names a process of the new run.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pid {
    pub(crate) node: NodeName,
    pub(crate) id: u64,
    pub(crate) creation: u64,
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

    /// The creation number of the node run that made the process.
    pub fn creation(&self) -> u64 {
        self.creation
    }
}

/// A creation number for a node starting now: the wall clock in microseconds since the
/// Unix epoch, and strictly above every number handed out before in this OS process. A
/// node restarted under the same name (in another OS process, or in this one) gets a
/// larger number than its earlier run unless the wall clock went back by more than the
/// time between the two starts; unlike Erlang's 16-bit random creations, two runs do not
/// collide by chance. Identity, not timing: this is the only wall-clock read in the
/// runtime, and it takes no decision about time.
pub fn next_creation() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = wall.max(last.saturating_add(1));
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}.{}.{}>", self.node, self.id, self.creation)
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
