//! The simulated network: nodes inside one OS process (as [`super::memory`]), but every
//! frame travels through a queue ordered by delivery time on the one clock
//! ([`crate::clock`]), and a seeded generator decides each frame's fate: lost,
//! duplicated, delayed (so overtaken by later frames: reordering). Run under a tokio
//! runtime with paused time (`start_paused`) on one thread, a whole cluster replays bit
//! for bit from its seeds; the trace hash ([`SimNetwork::trace`]) covers every frame
//! delivered, in order, with its time, so a test can prove it.
//!
//! What the simulation may do to a frame follows what real networks do to the messages
//! the node's faults may drop: only droppable messages ([`Wire::droppable`]) are lost,
//! duplicated or reordered (reordering is [`SimConfig::reorder`]). Control traffic (links, monitors, exit signals, `Down`s,
//! control messages) is delayed too but stays in order between two nodes and is never
//! lost, as a TCP connection keeps it. Partitions, deaf and unreliable nodes are the
//! nodes' own faults ([`crate::faults`]), applied as over any transport.

use super::{Transport, Wire};
use crate::clock::{self, Duration, Instant};
use crate::faults::NodeRole;
use crate::node::{Node, WeakNode};
use crate::pid::NodeName;
use parking_lot::{Mutex, RwLock};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::hash::Hasher;
use std::sync::Arc;
use tokio::sync::Notify;

/// How the network treats frames. Probabilities are per droppable frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimConfig {
    /// Probability that a droppable frame is lost.
    pub loss: f64,
    /// Probability that a droppable frame is delivered twice.
    pub duplicate: f64,
    /// The shortest time a frame takes.
    pub min_delay: Duration,
    /// The longest usual time a frame takes (uniform between the two).
    pub max_delay: Duration,
    /// Probability that a droppable frame is held back much longer (up to
    /// `long_delay`), overtaken by what is sent after it.
    pub straggle: f64,
    pub long_delay: Duration,
    /// Whether droppable frames between two nodes may overtake each other (each takes
    /// its own random delay). `false` keeps them in order, as a TCP connection does: a
    /// straggler then holds back those behind it.
    pub reorder: bool,
}

impl Default for SimConfig {
    /// A LAN without faults: 100 µs to 1 ms, nothing lost, everything in order.
    fn default() -> Self {
        SimConfig {
            loss: 0.0,
            duplicate: 0.0,
            min_delay: Duration::from_micros(100),
            max_delay: Duration::from_millis(1),
            straggle: 0.0,
            long_delay: Duration::from_millis(50),
            reorder: false,
        }
    }
}

impl SimConfig {
    /// A random network for one run: delays, loss, duplication and stragglers each
    /// drawn from `rng` (loss at most 5 %, duplication at most 5 %, stragglers at most
    /// 5 % held up to 200 ms); messages overtake each other.
    pub fn random(rng: &mut impl Rng) -> Self {
        let min_delay = Duration::from_micros(rng.random_range(50..500));
        let max_delay = min_delay + Duration::from_micros(rng.random_range(100..5_000));
        let maybe = |rng: &mut dyn rand::RngCore, most: f64| {
            if rng.random_bool(0.5) {
                rng.random_range(0.0..most)
            } else {
                0.0
            }
        };
        SimConfig {
            loss: maybe(rng, 0.05),
            duplicate: maybe(rng, 0.05),
            min_delay,
            max_delay,
            straggle: maybe(rng, 0.05),
            long_delay: Duration::from_millis(rng.random_range(10..200)),
            reorder: true,
        }
    }
}

/// What the network did, for tests that must show the faults happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Frames handed to the network.
    pub sent: u64,
    /// Frames handed to their receiving node (duplicates included).
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    /// Frames held back as stragglers.
    pub straggled: u64,
    /// Frames whose receiving node was gone when they arrived.
    pub undeliverable: u64,
}

/// A set of simulated nodes and the frames in flight between them. Cloning shares it.
#[derive(Clone)]
pub struct SimNetwork {
    inner: Arc<Inner>,
}

struct Inner {
    /// Ordered by name: who hears of a node going down, and in which order, is fixed.
    nodes: RwLock<BTreeMap<NodeName, (WeakNode, NodeRole)>>,
    state: Mutex<State>,
    /// Wakes the delivery task when a frame is queued.
    queued: Notify,
    start: Instant,
}

struct State {
    config: SimConfig,
    rng: ChaCha8Rng,
    /// Frames in flight by (delivery time, sequence number): a total order.
    queue: BTreeMap<(Instant, u64), InFlight>,
    next: u64,
    /// When the last ordered frame between two nodes is due, so that the next one is not
    /// due before it.
    ordered_until: BTreeMap<(NodeName, NodeName), Instant>,
    trace: std::hash::DefaultHasher,
    stats: SimStats,
}

struct InFlight {
    from: NodeName,
    from_role: NodeRole,
    to: NodeName,
    frame: Wire,
}

impl SimNetwork {
    /// A network whose every choice comes from `seed`; its delivery task runs on the
    /// current tokio runtime until the network is dropped.
    pub fn new(config: SimConfig, seed: u64) -> Self {
        let net = SimNetwork {
            inner: Arc::new(Inner {
                nodes: RwLock::new(BTreeMap::new()),
                state: Mutex::new(State {
                    config,
                    rng: ChaCha8Rng::seed_from_u64(seed),
                    queue: BTreeMap::new(),
                    next: 0,
                    ordered_until: BTreeMap::new(),
                    trace: std::hash::DefaultHasher::new(),
                    stats: SimStats::default(),
                }),
                queued: Notify::new(),
                start: clock::now(),
            }),
        };
        tokio::spawn(deliver(net.inner.clone()));
        net
    }

    /// Starts a node on this network, its randomness drawn from `seed`. A node of the
    /// same name must be stopped first; a restarted node is a new incarnation (pids of
    /// the old one name nothing).
    pub fn start_node(&self, name: impl Into<NodeName>, role: NodeRole, seed: u64) -> Node {
        let node = Node::new_seeded(name, role, seed);
        self.inner
            .nodes
            .write()
            .insert(node.name().clone(), (node.downgrade(), role));
        node.set_transport(Arc::new(SimTransport {
            net: self.clone(),
            me: node.name().clone(),
            role,
        }));
        node
    }

    /// Changes how later frames are treated (frames in flight keep their fate).
    pub fn set_config(&self, config: SimConfig) {
        self.inner.state.lock().config = config;
    }

    pub fn config(&self) -> SimConfig {
        self.inner.state.lock().config
    }

    pub fn stats(&self) -> SimStats {
        self.inner.state.lock().stats
    }

    /// The hash of every frame delivered so far, in order, with its time: two runs with
    /// the same seeds have the same trace.
    pub fn trace(&self) -> u64 {
        self.inner.state.lock().trace.finish()
    }

    /// Mixes `bytes` into the trace (a harness adds what its nodes decided).
    pub fn note(&self, bytes: &[u8]) {
        self.inner.state.lock().trace.write(bytes);
    }

    /// Frames in flight.
    pub fn in_flight(&self) -> usize {
        self.inner.state.lock().queue.len()
    }

    /// Names of the nodes on the network.
    pub fn nodes(&self) -> Vec<NodeName> {
        self.inner.nodes.read().keys().cloned().collect()
    }

    fn node(&self, name: &NodeName) -> Option<(Node, NodeRole)> {
        let nodes = self.inner.nodes.read();
        let (weak, role) = nodes.get(name)?;
        Some((weak.upgrade()?, *role))
    }

    /// Queues a frame with its fate drawn now.
    fn send(&self, from: &NodeName, from_role: NodeRole, to: &NodeName, frame: Wire) {
        let now = clock::now();
        let mut st = self.inner.state.lock();
        st.stats.sent += 1;
        let config = st.config;
        let droppable = frame.droppable();
        let copies = if !droppable {
            1
        } else if config.loss > 0.0 && st.rng.random_bool(config.loss) {
            st.stats.lost += 1;
            0
        } else if config.duplicate > 0.0 && st.rng.random_bool(config.duplicate) {
            st.stats.duplicated += 1;
            2
        } else {
            1
        };
        let mut frames = Vec::with_capacity(copies);
        if copies == 2 {
            frames.push(frame.clone());
        }
        if copies > 0 {
            frames.push(frame);
        }
        for frame in frames {
            let mut delay = random_delay(&mut st.rng, config.min_delay, config.max_delay);
            if droppable && config.straggle > 0.0 && st.rng.random_bool(config.straggle) {
                st.stats.straggled += 1;
                delay += random_delay(&mut st.rng, Duration::ZERO, config.long_delay);
            }
            let mut at = now + delay;
            if !droppable || !config.reorder {
                let last = st
                    .ordered_until
                    .entry((from.clone(), to.clone()))
                    .or_insert(at);
                at = at.max(*last);
                *last = at;
            }
            let seq = st.next;
            st.next += 1;
            st.queue.insert(
                (at, seq),
                InFlight {
                    from: from.clone(),
                    from_role,
                    to: to.clone(),
                    frame,
                },
            );
        }
        drop(st);
        self.inner.queued.notify_one();
    }

    /// Removes a node and tells every other node it is down (`noconnection`).
    fn remove(&self, name: &NodeName) {
        let others: Vec<WeakNode> = {
            let mut nodes = self.inner.nodes.write();
            nodes.remove(name);
            nodes.values().map(|(w, _)| w.clone()).collect()
        };
        for w in others {
            if let Some(n) = w.upgrade() {
                n.node_down(name);
            }
        }
    }
}

fn random_delay(rng: &mut ChaCha8Rng, least: Duration, most: Duration) -> Duration {
    if most <= least {
        return least;
    }
    let span = u64::try_from((most - least).as_micros()).unwrap_or(u64::MAX);
    least + Duration::from_micros(rng.random_range(0..=span))
}

/// The delivery task: hands every due frame to its node, in (time, sequence) order, then
/// sleeps until the next one is due or a frame is queued. It lives as long as the
/// runtime it was spawned on (a simulation drops its runtime at the end of a run).
async fn deliver(inner: Arc<Inner>) {
    let net = SimNetwork { inner };
    loop {
        let queued = net.inner.queued.notified();
        let due = loop {
            let now = clock::now();
            let next = {
                let mut st = net.inner.state.lock();
                match st.queue.first_key_value() {
                    Some((&(at, _), _)) if at <= now => st.queue.pop_first(),
                    Some((&(at, _), _)) => break Some(at),
                    None => break None,
                }
            };
            if let Some(((at, _), f)) = next {
                net.hand_over(at, f);
            }
        };
        match due {
            Some(at) => {
                tokio::select! {
                    biased;
                    () = tokio::time::sleep_until(at) => {}
                    () = queued => {}
                }
            }
            None => queued.await,
        }
    }
}

impl SimNetwork {
    fn hand_over(&self, at: Instant, f: InFlight) {
        match self.node(&f.to) {
            Some((target, _)) => {
                {
                    let mut st = self.inner.state.lock();
                    st.stats.delivered += 1;
                    let since = at.saturating_duration_since(self.inner.start);
                    st.trace.write_u128(since.as_nanos());
                    st.trace.write(f.from.as_str().as_bytes());
                    st.trace.write(f.to.as_str().as_bytes());
                    match postcard::to_allocvec(&f.frame) {
                        Ok(bytes) => st.trace.write(&bytes),
                        Err(e) => log::error!("sim: cannot encode a frame for the trace: {e}"),
                    }
                }
                target.handle_wire(&f.from, f.from_role, f.frame);
            }
            None => {
                self.inner.state.lock().stats.undeliverable += 1;
                // As a failed connection: the sender, if still up, sees the target down.
                if let Some((sender, _)) = self.node(&f.from) {
                    sender.node_down(&f.to);
                }
            }
        }
    }
}

struct SimTransport {
    net: SimNetwork,
    me: NodeName,
    role: NodeRole,
}

impl Transport for SimTransport {
    fn send(&self, node: &NodeName, frame: Wire) {
        self.net.send(&self.me, self.role, node, frame);
    }

    fn peer_role(&self, node: &NodeName) -> Option<NodeRole> {
        self.net.inner.nodes.read().get(node).map(|(_, r)| *r)
    }

    fn connected(&self) -> Vec<NodeName> {
        self.net
            .inner
            .nodes
            .read()
            .keys()
            .filter(|n| **n != self.me)
            .cloned()
            .collect()
    }

    fn shutdown(&self) {
        self.net.remove(&self.me);
    }
}
