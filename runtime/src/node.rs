//! A node: its process table, name registry, faults, counters and transport. Every
//! operation on processes (spawn, send, link, monitor, exit) ends up here, so local and
//! remote targets follow one path up to the point where the frame leaves the node.

use crate::faults::{Direction, FaultState, Faults, NodeRole};
use crate::mailbox::Mailbox;
use crate::message::{Envelope, Message, Payload, type_tag};
use crate::pid::{Dest, NodeName, Pid, Ref};
use crate::process::{ExitValue, Process};
use crate::reason::{Down, Exit, ExitReason};
use crate::transport::{Transport, Wire};
use futures::FutureExt;
use futures::task::AtomicWaker;
use parking_lot::{Mutex, RwLock};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Poll, Waker};

/// Errors of node-level operations.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NodeError {
    #[error("name {0} is already registered")]
    AlreadyRegistered(String),
    #[error("process {0} is not alive on this node")]
    NotAlive(Pid),
    #[error("the node is stopped")]
    Stopped,
}

/// One process's shared state: what senders, linkers and monitors touch.
pub(crate) struct ProcShared {
    pub(crate) pid: Pid,
    pub(crate) mailbox: Mailbox,
    /// Messages a selective receive passed over and kept aside (the rest of the mailbox).
    pub(crate) saved: AtomicUsize,
    pub(crate) trap_exit: AtomicBool,
    /// Set when somebody killed the process; the reason waits in `kill_reason`.
    killed: AtomicBool,
    kill_reason: Mutex<Option<ExitReason>>,
    /// Wakes the process's task so that it sees the kill.
    kill_waker: AtomicWaker,
    pub(crate) restarts: AtomicU32,
    state: Mutex<ProcState>,
}

#[derive(Default)]
struct ProcState {
    alive: bool,
    name: Option<String>,
    // Ordered sets and maps: the exit signals and `Down`s a death sends go out in an order
    // that does not depend on a hasher's random state, so a seeded simulation replays.
    links: BTreeSet<Pid>,
    /// Monitors watching this process: mref -> watcher.
    monitored_by: BTreeMap<Ref, Pid>,
    /// Monitors this process holds: mref -> node of the target (and pid when known).
    monitoring: BTreeMap<Ref, (NodeName, Option<Pid>)>,
}

impl ProcShared {
    fn kill_with(&self, reason: ExitReason) {
        let mut slot = self.kill_reason.lock();
        if slot.is_none() {
            *slot = Some(reason);
        }
        drop(slot);
        self.killed.store(true, Ordering::Release);
        self.kill_waker.wake();
    }

    /// The kill reason, when the process has been killed.
    #[inline]
    fn kill_requested(&self) -> Option<ExitReason> {
        if self.killed.load(Ordering::Acquire) {
            Some(
                self.kill_reason
                    .lock()
                    .clone()
                    .unwrap_or(ExitReason::Killed),
            )
        } else {
            None
        }
    }
}

/// Counters of a node's traffic.
#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    dropped_in: AtomicU64,
    dropped_out: AtomicU64,
    undeliverable: AtomicU64,
}

/// A snapshot of a node's counters.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeStats {
    /// Frames sent to other nodes.
    pub sent: u64,
    /// Frames received from other nodes and accepted.
    pub received: u64,
    /// Frames dropped by this node's faults on the way in.
    pub dropped_in: u64,
    /// Frames dropped by this node's faults on the way out.
    pub dropped_out: u64,
    /// Messages to a pid or name that does not exist here.
    pub undeliverable: u64,
    /// Live processes.
    pub processes: usize,
    /// Frames dropped (in or out), by the fault that dropped them.
    #[serde(default)]
    pub dropped_by: crate::faults::FaultCounts,
}

/// What introspection shows of one process.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: String,
    pub name: Option<String>,
    pub mailbox: usize,
    pub restarts: u32,
    pub trap_exit: bool,
}

/// The process table's map: id -> process, hashed by [`IdHasher`].
type ProcMap = HashMap<u64, Arc<ProcShared>, BuildHasherDefault<IdHasher>>;

/// One shard of the process table, on its own cache line.
#[repr(align(128))]
struct Shard(RwLock<ProcMap>);

const SHARDS: usize = 64;

/// The process table's hasher. Process ids are a node-local counter, not chosen from
/// outside, so they need no flood-resistant hash: one folded multiply spreads them over
/// every bit (the low bits too, which would otherwise be alike within a shard, since a
/// shard holds ids equal modulo `SHARDS`). SipHash cost more than the rest of a lookup.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        let product = u128::from(self.0) * 0x9e37_79b9_7f4a_7c15;
        (product as u64) ^ ((product >> 64) as u64)
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; this keeps the hasher total all the same.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id;
    }
}

impl NodeInner {
    fn shard(&self, id: u64) -> &RwLock<ProcMap> {
        // A fixed-size table and a power-of-two count: a mask, no bounds check.
        &self.procs[(id % SHARDS as u64) as usize].0
    }
}

pub(crate) struct NodeInner {
    name: NodeName,
    creation: u64,
    role: NodeRole,
    next_id: AtomicU64,
    next_ref: AtomicU64,
    /// The process table, sharded by id so that senders on different threads rarely
    /// touch the same lock.
    procs: [Shard; SHARDS],
    registry: RwLock<HashMap<String, Pid>>,
    /// mref -> id of the local process it watches (for demonitor by mref alone).
    monitor_index: Mutex<HashMap<Ref, u64>>,
    faults: Faults,
    counters: Counters,
    transport: OnceLock<Arc<dyn Transport>>,
    stopped: AtomicBool,
    /// The node's own seeded generator: every random choice its processes make.
    rng: Mutex<ChaCha8Rng>,
}

/// A handle on a node. Cheap to clone; the node lives while a handle or a process does.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<NodeInner>,
}

/// A weak handle, held by transports so that they do not keep a node alive.
#[derive(Clone)]
pub struct WeakNode(Weak<NodeInner>);

impl WeakNode {
    pub fn upgrade(&self) -> Option<Node> {
        self.0.upgrade().map(|inner| Node { inner })
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({})", self.inner.name)
    }
}

impl Node {
    /// A node with no transport yet: purely local until one is attached.
    pub fn new(name: impl Into<NodeName>, role: NodeRole) -> Node {
        Node::build(name, role, rand::random(), None)
    }

    /// A node whose every random choice (references, fault drops, and what
    /// its processes draw with [`Node::random_u64`]) comes from `seed`: a simulation that
    /// seeds its nodes replays the same run.
    ///
    /// Its creation number comes from the seed too (pids travel in messages, so a
    /// wall-clock creation would make every run different): a simulation gives each
    /// incarnation of a name its own seed.
    pub fn new_seeded(name: impl Into<NodeName>, role: NodeRole, seed: u64) -> Node {
        let creation = ChaCha8Rng::seed_from_u64(seed ^ 0x6372_6561_7469_6f6e).random::<u64>() | 1;
        Node::build(name, role, seed, Some(creation))
    }

    /// A node from `seed`, with its creation number given or else the next one of
    /// [`crate::pid::next_creation`].
    fn build(name: impl Into<NodeName>, role: NodeRole, seed: u64, creation: Option<u64>) -> Node {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Drawn and unused, so that the generator's later draws stay those a given seed
        // has always produced.
        let _ = rng.random::<u32>();
        let creation = creation.unwrap_or_else(crate::pid::next_creation);
        let ref_seed: u64 = rng.random();
        let fault_seed: u64 = rng.random();
        Node {
            inner: Arc::new(NodeInner {
                name: name.into(),
                creation,
                role,
                next_id: AtomicU64::new(1),
                next_ref: AtomicU64::new(ref_seed),
                procs: std::array::from_fn(|_| Shard(RwLock::new(ProcMap::default()))),
                registry: RwLock::new(HashMap::new()),
                monitor_index: Mutex::new(HashMap::new()),
                faults: Faults::new(fault_seed),
                counters: Counters::default(),
                transport: OnceLock::new(),
                stopped: AtomicBool::new(false),
                rng: Mutex::new(rng),
            }),
        }
    }

    /// The node's creation number ([`crate::pid::next_creation`]): its pids carry it, and
    /// the TCP transport announces it as the node's incarnation.
    pub fn creation(&self) -> u64 {
        self.inner.creation
    }

    /// A random `u64` from the node's seeded generator.
    pub fn random_u64(&self) -> u64 {
        self.inner.rng.lock().random()
    }

    /// A random number in `0..=most` from the node's seeded generator.
    pub fn random_up_to(&self, most: u64) -> u64 {
        self.inner.rng.lock().random_range(0..=most)
    }

    /// Whether an event of probability `p` happens, drawn from the node's generator.
    pub fn random_bool(&self, p: f64) -> bool {
        let p = if p.is_finite() {
            p.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.inner.rng.lock().random_bool(p)
    }

    /// Attaches the transport (once). Transports call this when they start.
    pub fn set_transport(&self, t: Arc<dyn Transport>) {
        if self.inner.transport.set(t).is_err() {
            log::warn!("{}: transport already set", self.inner.name);
        }
    }

    pub fn downgrade(&self) -> WeakNode {
        WeakNode(Arc::downgrade(&self.inner))
    }

    pub fn name(&self) -> &NodeName {
        &self.inner.name
    }

    pub fn role(&self) -> NodeRole {
        self.inner.role
    }

    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    pub fn fault_state(&self) -> FaultState {
        self.inner.faults.snapshot()
    }

    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    /// A fresh reference, unique with overwhelming probability across nodes.
    pub fn make_ref(&self) -> Ref {
        Ref(self.inner.next_ref.fetch_add(1, Ordering::Relaxed))
    }

    fn new_pid(&self) -> Pid {
        Pid {
            node: self.inner.name.clone(),
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            creation: self.inner.creation,
        }
    }

    fn is_local(&self, pid: &Pid) -> bool {
        pid.node == self.inner.name && pid.creation == self.inner.creation
    }

    /// The pid that stands for no process of this node: the sender of an exit signal
    /// from outside any process, the subject of a `Down` for a name nobody holds.
    fn nobody(&self) -> Pid {
        Pid {
            node: self.inner.name.clone(),
            id: 0,
            creation: self.inner.creation,
        }
    }

    fn count_undeliverable(&self) {
        self.inner
            .counters
            .undeliverable
            .fetch_add(1, Ordering::Relaxed);
    }

    fn lookup(&self, id: u64) -> Option<Arc<ProcShared>> {
        self.inner.shard(id).read().get(&id).cloned()
    }

    /// Every process, by id (a fixed order: what `node_down` and `stop` send follows it).
    fn all_processes(&self) -> Vec<Arc<ProcShared>> {
        let mut procs: Vec<Arc<ProcShared>> = self
            .inner
            .procs
            .iter()
            .flat_map(|s| s.0.read().values().cloned().collect::<Vec<_>>())
            .collect();
        procs.sort_by_key(|p| p.pid.id);
        procs
    }

    // ---------------------------------------------------------------- processes

    /// Creates a process entry and its handle; the caller runs it (task or attached).
    fn create(&self) -> Process {
        let pid = self.new_pid();
        let shared = Arc::new(ProcShared {
            pid: pid.clone(),
            mailbox: Mailbox::new(),
            saved: AtomicUsize::new(0),
            trap_exit: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            kill_reason: Mutex::new(None),
            kill_waker: AtomicWaker::new(),
            restarts: AtomicU32::new(0),
            state: Mutex::new(ProcState {
                alive: true,
                ..Default::default()
            }),
        });
        self.inner
            .shard(pid.id)
            .write()
            .insert(pid.id, shared.clone());
        Process::new(self.clone(), shared)
    }

    /// Spawns a process running `f`. Its exit reason is what the future returns (`()` is
    /// `normal`), a panic's message, or the reason it was killed with.
    pub fn spawn<F, Fut>(&self, f: F) -> Pid
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: ExitValue,
    {
        self.spawn_opts(None, None, f)
    }

    pub(crate) fn spawn_opts<F, Fut>(
        &self,
        link: Option<&Pid>,
        monitor: Option<(&Pid, Ref)>,
        f: F,
    ) -> Pid
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: ExitValue,
    {
        let proc = self.create();
        let shared = proc.shared.clone();
        let pid = shared.pid.clone();
        if let Some(parent) = link {
            shared.state.lock().links.insert(parent.clone());
            self.add_link_at(parent, &pid);
        }
        if let Some((watcher, mref)) = monitor {
            shared
                .state
                .lock()
                .monitored_by
                .insert(mref, watcher.clone());
            self.inner.monitor_index.lock().insert(mref, pid.id);
            self.note_monitoring(watcher, mref, &pid);
        }
        if self.is_stopped() {
            self.process_exited(&shared, ExitReason::Shutdown);
            return pid;
        }
        let node = self.clone();
        tokio::spawn(async move {
            let mut body = std::pin::pin!(AssertUnwindSafe(f(proc)).catch_unwind());
            // Each poll first checks for a kill (one atomic load), then runs the body.
            // The task's waker is the same on every poll, so it is handed to the kill
            // waker once (and again only if it changes), not with two atomic swaps a poll.
            // Only a kill takes it back out, and a killed process is not polled again.
            let mut kill_waker_set: Option<Waker> = None;
            let reason = std::future::poll_fn(|cx| {
                if let Some(r) = shared.kill_requested() {
                    return Poll::Ready(r);
                }
                if !kill_waker_set
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    shared.kill_waker.register(cx.waker());
                    kill_waker_set = Some(cx.waker().clone());
                }
                match body.as_mut().poll(cx) {
                    Poll::Ready(Ok(v)) => Poll::Ready(v.into_reason()),
                    Poll::Ready(Err(panic)) => Poll::Ready(ExitReason::from_panic(&*panic)),
                    Poll::Pending => match shared.kill_requested() {
                        Some(r) => Poll::Ready(r),
                        None => Poll::Pending,
                    },
                }
            })
            .await;
            if !reason.is_clean() {
                log::debug!("{} exited: {reason}", shared.pid);
            }
            node.process_exited(&shared, reason);
        });
        pid
    }

    /// A process handle driven by the caller instead of a task (as Erlang's shell is a
    /// process): tests and command-line tools use it to send, receive and call. It exits
    /// `normal` when dropped.
    pub fn attach(&self) -> Process {
        let mut p = self.create();
        p.attached = true;
        p
    }

    /// Ends a process's bookkeeping: unregisters it, signals its links and monitors.
    pub(crate) fn process_exited(&self, shared: &Arc<ProcShared>, reason: ExitReason) {
        let reason = if reason == ExitReason::Kill {
            ExitReason::Killed
        } else {
            reason
        };
        let state = {
            let mut st = shared.state.lock();
            if !st.alive {
                return;
            }
            st.alive = false;
            std::mem::take(&mut *st)
        };
        self.inner
            .shard(shared.pid.id)
            .write()
            .remove(&shared.pid.id);
        shared.mailbox.close();
        if let Some(name) = &state.name {
            let mut reg = self.inner.registry.write();
            if reg.get(name) == Some(&shared.pid) {
                reg.remove(name);
            }
        }
        let from = shared.pid.clone();
        for linked in state.links {
            self.exit_signal(&from, &linked, reason.clone(), true);
        }
        {
            let mut idx = self.inner.monitor_index.lock();
            for mref in state.monitored_by.keys() {
                idx.remove(mref);
            }
        }
        for (mref, watcher) in state.monitored_by {
            self.deliver_down(&watcher, mref, &from, reason.clone());
        }
        for (mref, (node, _)) in state.monitoring {
            self.drop_monitor_at(&node, &from, mref);
        }
    }

    /// Sends an exit signal (`exit/2` when `link` is false). Local targets are handled at
    /// once; remote ones get a control frame.
    pub(crate) fn exit_signal(&self, from: &Pid, to: &Pid, reason: ExitReason, link: bool) {
        if self.is_local(to) {
            if let Some(t) = self.lookup(to.id) {
                self.apply_exit_signal(&t, from, reason, link);
            }
        } else if to.node == self.inner.name {
            // A pid of an earlier incarnation of this node: it is dead.
        } else {
            self.to_transport(
                &to.node,
                Wire::Exit {
                    from: from.clone(),
                    to: to.clone(),
                    reason,
                    link,
                },
            );
        }
    }

    fn apply_exit_signal(&self, t: &Arc<ProcShared>, from: &Pid, reason: ExitReason, link: bool) {
        if link {
            let mut st = t.state.lock();
            if !st.links.remove(from) {
                // Not linked (any more): a link signal for a link that is gone is ignored.
                return;
            }
        }
        if !link && reason == ExitReason::Kill {
            t.kill_with(ExitReason::Killed);
            return;
        }
        if t.trap_exit.load(Ordering::SeqCst) {
            self.push(
                t,
                Envelope::local(
                    Some(from.clone()),
                    Exit {
                        from: from.clone(),
                        reason,
                    },
                ),
            );
        } else if !reason.is_normal() || (!link && from == &t.pid) {
            t.kill_with(reason);
        }
    }

    fn deliver_down(&self, watcher: &Pid, mref: Ref, pid: &Pid, reason: ExitReason) {
        if self.is_local(watcher) {
            if let Some(w) = self.lookup(watcher.id) {
                let had = w.state.lock().monitoring.remove(&mref).is_some();
                if had {
                    self.push(
                        &w,
                        Envelope::local(
                            Some(pid.clone()),
                            Down {
                                mref,
                                pid: pid.clone(),
                                reason,
                            },
                        ),
                    );
                }
            }
        } else if watcher.node != self.inner.name {
            self.to_transport(
                &watcher.node,
                Wire::Down {
                    watcher: watcher.clone(),
                    mref,
                    pid: pid.clone(),
                    reason,
                },
            );
        }
    }

    fn push(&self, t: &ProcShared, env: Envelope) {
        t.mailbox.push(env);
    }

    /// Records on `at` (local) that it is linked to `other`; when `at` is gone, `other`
    /// gets a `noproc` exit signal at once.
    fn add_link_at(&self, at: &Pid, other: &Pid) {
        if self.is_local(at) {
            let alive = match self.lookup(at.id) {
                Some(t) => {
                    let mut st = t.state.lock();
                    if st.alive {
                        st.links.insert(other.clone());
                        true
                    } else {
                        false
                    }
                }
                None => false,
            };
            if !alive {
                self.exit_signal(at, other, ExitReason::NoProc, true);
            }
        } else if at.node == self.inner.name {
            self.exit_signal(at, other, ExitReason::NoProc, true);
        } else {
            self.to_transport(
                &at.node,
                Wire::Link {
                    from: other.clone(),
                    to: at.clone(),
                },
            );
        }
    }

    /// Links `a` (a local process) and `b`.
    pub(crate) fn link(&self, a: &Pid, b: &Pid) {
        if a == b {
            return;
        }
        if let Some(pa) = self.lookup(a.id) {
            pa.state.lock().links.insert(b.clone());
        }
        self.add_link_at(b, a);
    }

    pub(crate) fn unlink(&self, a: &Pid, b: &Pid) {
        if let Some(pa) = self.lookup(a.id) {
            pa.state.lock().links.remove(b);
        }
        if self.is_local(b) {
            if let Some(pb) = self.lookup(b.id) {
                pb.state.lock().links.remove(a);
            }
        } else if b.node != self.inner.name {
            self.to_transport(
                &b.node,
                Wire::Unlink {
                    from: a.clone(),
                    to: b.clone(),
                },
            );
        }
    }

    fn note_monitoring(&self, watcher: &Pid, mref: Ref, target: &Pid) {
        if self.is_local(watcher)
            && let Some(w) = self.lookup(watcher.id)
        {
            w.state
                .lock()
                .monitoring
                .insert(mref, (target.node.clone(), Some(target.clone())));
        }
    }

    /// `watcher` (local) monitors `target`; returns the monitor's reference.
    pub(crate) fn monitor(&self, watcher: &Pid, target: Dest) -> Ref {
        let mref = self.make_ref();
        let target_node = match &target {
            Dest::Pid(p) => p.node.clone(),
            Dest::Name(_) => self.inner.name.clone(),
            Dest::Remote(_, n) => n.clone(),
        };
        if let Some(w) = self.lookup(watcher.id) {
            let pid = match &target {
                Dest::Pid(p) => Some(p.clone()),
                _ => None,
            };
            w.state
                .lock()
                .monitoring
                .insert(mref, (target_node.clone(), pid));
        }
        if target_node == self.inner.name {
            self.monitor_local(watcher, &target, mref);
        } else {
            self.to_transport(
                &target_node,
                Wire::Monitor {
                    watcher: watcher.clone(),
                    target,
                    mref,
                },
            );
        }
        mref
    }

    /// Installs a monitor on a local target, or answers `noproc` at once.
    fn monitor_local(&self, watcher: &Pid, target: &Dest, mref: Ref) {
        let resolved = match target {
            Dest::Pid(p) if self.is_local(p) => Some(p.clone()),
            Dest::Pid(_) => None,
            Dest::Name(n) | Dest::Remote(n, _) => self.whereis(n),
        };
        let installed = resolved.as_ref().and_then(|p| self.lookup(p.id)).map(|t| {
            let mut st = t.state.lock();
            if st.alive {
                st.monitored_by.insert(mref, watcher.clone());
                self.inner.monitor_index.lock().insert(mref, t.pid.id);
                true
            } else {
                false
            }
        });
        if installed != Some(true) {
            let pid = match (resolved, target) {
                (Some(p), _) => p,
                (None, Dest::Pid(p)) => p.clone(),
                (None, _) => self.nobody(),
            };
            self.deliver_down(watcher, mref, &pid, ExitReason::NoProc);
        }
    }

    /// Removes a monitor held by local `watcher`.
    pub(crate) fn demonitor(&self, watcher: &Pid, mref: Ref) {
        let entry = self
            .lookup(watcher.id)
            .and_then(|w| w.state.lock().monitoring.remove(&mref));
        if let Some((node, _)) = entry {
            self.drop_monitor_at(&node, watcher, mref);
        }
    }

    /// Removes the monitor `mref` of `watcher` where its target lives: here, or on `node`.
    fn drop_monitor_at(&self, node: &NodeName, watcher: &Pid, mref: Ref) {
        if *node == self.inner.name {
            self.remove_monitor_here(mref);
        } else {
            self.to_transport(
                node,
                Wire::Demonitor {
                    watcher: watcher.clone(),
                    mref,
                },
            );
        }
    }

    fn remove_monitor_here(&self, mref: Ref) {
        let id = self.inner.monitor_index.lock().remove(&mref);
        if let Some(t) = id.and_then(|id| self.lookup(id)) {
            t.state.lock().monitored_by.remove(&mref);
        }
    }

    /// Sends an exit signal to `to` as `exit(Pid, Reason)` does.
    pub fn exit(&self, from: Option<&Pid>, to: &Pid, reason: ExitReason) {
        let from = from.cloned().unwrap_or_else(|| self.nobody());
        self.exit_signal(&from, to, reason, false);
    }

    /// Whether a pid names a live process (local pids only; remote ones answer false).
    pub fn is_alive(&self, pid: &Pid) -> bool {
        self.is_local(pid) && self.lookup(pid.id).is_some()
    }

    pub(crate) fn set_trap_exit(&self, pid: &Pid, on: bool) {
        if let Some(p) = self.lookup(pid.id) {
            p.trap_exit.store(on, Ordering::SeqCst);
        }
    }

    /// Sets the restart count shown by introspection (supervisors call this).
    pub fn set_restarts(&self, pid: &Pid, n: u32) {
        if let Some(p) = self.lookup(pid.id) {
            p.restarts.store(n, Ordering::Relaxed);
        }
    }

    // ---------------------------------------------------------------- registry

    /// Registers a local live process under `name`.
    pub fn register(&self, name: &str, pid: &Pid) -> Result<(), NodeError> {
        let p = self
            .lookup(pid.id)
            .filter(|_| self.is_local(pid))
            .ok_or_else(|| NodeError::NotAlive(pid.clone()))?;
        let mut reg = self.inner.registry.write();
        if reg.contains_key(name) {
            return Err(NodeError::AlreadyRegistered(name.to_string()));
        }
        let mut st = p.state.lock();
        if !st.alive {
            return Err(NodeError::NotAlive(pid.clone()));
        }
        st.name = Some(name.to_string());
        reg.insert(name.to_string(), pid.clone());
        Ok(())
    }

    pub fn unregister(&self, name: &str) -> bool {
        let removed = self.inner.registry.write().remove(name);
        if let Some(p) = removed.as_ref().and_then(|pid| self.lookup(pid.id)) {
            p.state.lock().name = None;
        }
        removed.is_some()
    }

    pub fn whereis(&self, name: &str) -> Option<Pid> {
        self.inner.registry.read().get(name).cloned()
    }

    /// Every registered name, sorted.
    pub fn registered(&self) -> Vec<String> {
        let mut v: Vec<String> = self.inner.registry.read().keys().cloned().collect();
        v.sort();
        v
    }

    // ---------------------------------------------------------------- sending

    /// Sends `msg` to `to` (pid, local name, or name on a node). Sending never fails, as in
    /// Erlang: a message to a dead process or an unknown name is dropped (and counted).
    pub fn send<M: Message>(&self, from: Option<&Pid>, to: impl Into<Dest>, msg: M) {
        self.send_inner(from, to.into(), msg, false)
    }

    /// Like [`send`](Self::send), but as control traffic, which faults never drop.
    pub fn send_control<M: Message>(&self, from: Option<&Pid>, to: impl Into<Dest>, msg: M) {
        self.send_inner(from, to.into(), msg, true)
    }

    fn send_inner<M: Message>(&self, from: Option<&Pid>, to: Dest, msg: M, control: bool) {
        let remote_node = match &to {
            Dest::Pid(p) if self.is_local(p) => None,
            Dest::Pid(p) if p.node == self.inner.name => {
                self.count_undeliverable();
                return;
            }
            Dest::Pid(p) => Some(p.node.clone()),
            Dest::Name(_) => None,
            Dest::Remote(_, n) if *n == self.inner.name => None,
            Dest::Remote(_, n) => Some(n.clone()),
        };
        match remote_node {
            None => {
                let env = Envelope::local(from.cloned(), msg);
                self.deliver_here(&to, env);
            }
            Some(node) => {
                let body = match postcard::to_allocvec(&msg) {
                    Ok(b) => b,
                    Err(e) => {
                        log::error!("cannot encode {}: {e}", std::any::type_name::<M>());
                        return;
                    }
                };
                let frame = Wire::Msg {
                    from: from.cloned(),
                    to,
                    tag: type_tag::<M>(),
                    body,
                    control,
                };
                self.to_transport(&node, frame);
            }
        }
    }

    /// Delivers an envelope to a local destination.
    fn deliver_here(&self, to: &Dest, env: Envelope) -> bool {
        let id = match to {
            Dest::Pid(p) => Some(p.id).filter(|_| self.is_local(p)),
            Dest::Name(n) | Dest::Remote(n, _) => self.whereis(n).map(|p| p.id),
        };
        let delivered = id.is_some_and(|id| match self.inner.shard(id).read().get(&id) {
            Some(p) => p.mailbox.push(env),
            None => false,
        });
        if !delivered {
            self.count_undeliverable();
            log::trace!("{}: undeliverable message to {to}", self.inner.name);
        }
        delivered
    }

    /// Hands a frame to the transport, through the outgoing faults.
    fn to_transport(&self, node: &NodeName, frame: Wire) {
        let Some(t) = self.inner.transport.get() else {
            log::debug!("{}: no transport, frame to {node} lost", self.inner.name);
            self.node_down(node);
            return;
        };
        let peer_role = t.peer_role(node).unwrap_or_default();
        if !self.inner.faults.admit(
            Direction::Out,
            self.inner.role,
            node,
            peer_role,
            !frame.droppable(),
            message_tag(&frame),
        ) {
            self.inner
                .counters
                .dropped_out
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.inner.counters.sent.fetch_add(1, Ordering::Relaxed);
        t.send(node, frame);
    }

    /// Marks messages of type `M` as replies, for the MIT loss model (see `faults`).
    pub fn mark_reply<M: Message>(&self) {
        self.inner.faults.mark_reply_tag(type_tag::<M>());
    }

    // ---------------------------------------------------------------- from transports

    /// Takes a frame from node `from` (transports call this), through the incoming faults.
    pub fn handle_wire(&self, from: &NodeName, peer_role: NodeRole, frame: Wire) {
        if !self.inner.faults.admit(
            Direction::In,
            self.inner.role,
            from,
            peer_role,
            !frame.droppable(),
            message_tag(&frame),
        ) {
            self.inner
                .counters
                .dropped_in
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.inner.counters.received.fetch_add(1, Ordering::Relaxed);
        match frame {
            Wire::Msg {
                from: sender,
                to,
                tag,
                body,
                ..
            } => {
                if let Dest::Pid(p) = &to
                    && !self.is_local(p)
                {
                    self.count_undeliverable();
                    return;
                }
                let env = Envelope {
                    from: sender,
                    payload: Payload::Remote { tag, bytes: body },
                };
                self.deliver_here(&to, env);
            }
            Wire::Link { from: a, to: b } => self.add_link_at(&b, &a),
            Wire::Unlink { from: a, to: b } => {
                if let Some(pb) = self.lookup(b.id).filter(|_| self.is_local(&b)) {
                    pb.state.lock().links.remove(&a);
                }
            }
            Wire::Exit {
                from: a,
                to: b,
                reason,
                link,
            } => {
                if let Some(t) = self.lookup(b.id).filter(|_| self.is_local(&b)) {
                    self.apply_exit_signal(&t, &a, reason, link);
                }
            }
            Wire::Monitor {
                watcher,
                target,
                mref,
            } => self.monitor_local(&watcher, &target, mref),
            Wire::Demonitor { mref, .. } => self.remove_monitor_here(mref),
            Wire::Down {
                watcher,
                mref,
                pid,
                reason,
            } => self.deliver_down(&watcher, mref, &pid, reason),
        }
    }

    /// The connection to `node` is lost (or could not be made): every link to one of its
    /// processes fires `noconnection`, every monitor on it a `noconnection` Down.
    pub fn node_down(&self, node: &NodeName) {
        if *node == self.inner.name {
            return;
        }
        let procs = self.all_processes();
        for p in procs {
            let (links, downs) = {
                let mut st = p.state.lock();
                let links: Vec<Pid> = st
                    .links
                    .iter()
                    .filter(|l| l.node == *node)
                    .cloned()
                    .collect();
                let downs: Vec<(Ref, Option<Pid>)> = st
                    .monitoring
                    .iter()
                    .filter(|(_, (n, _))| n == node)
                    .map(|(r, (_, pid))| (*r, pid.clone()))
                    .collect();
                for r in &downs {
                    st.monitoring.remove(&r.0);
                }
                st.monitored_by.retain(|_, w| w.node != *node);
                (links, downs)
            };
            for l in links {
                self.apply_exit_signal(&p, &l, ExitReason::NoConnection, true);
            }
            for (mref, pid) in downs {
                let pid = pid.unwrap_or(Pid {
                    node: node.clone(),
                    id: 0,
                    creation: 0,
                });
                self.push(
                    &p,
                    Envelope::local(
                        Some(pid.clone()),
                        Down {
                            mref,
                            pid,
                            reason: ExitReason::NoConnection,
                        },
                    ),
                );
            }
        }
    }

    // ---------------------------------------------------------------- introspection

    /// Every live process with its name, mailbox length and restart count, by pid.
    pub fn processes(&self) -> Vec<ProcessInfo> {
        self.all_processes()
            .iter()
            .map(|p| ProcessInfo {
                pid: p.pid.to_string(),
                name: p.state.lock().name.clone(),
                mailbox: p.mailbox.len() + p.saved.load(Ordering::Relaxed),
                restarts: p.restarts.load(Ordering::Relaxed),
                trap_exit: p.trap_exit.load(Ordering::Relaxed),
            })
            .collect()
    }

    pub fn stats(&self) -> NodeStats {
        let c = &self.inner.counters;
        NodeStats {
            sent: c.sent.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            dropped_in: c.dropped_in.load(Ordering::Relaxed),
            dropped_out: c.dropped_out.load(Ordering::Relaxed),
            undeliverable: c.undeliverable.load(Ordering::Relaxed),
            processes: self.inner.procs.iter().map(|s| s.0.read().len()).sum(),
            dropped_by: self.inner.faults.counts(),
        }
    }

    /// Nodes this node has a live connection with.
    pub fn connected_nodes(&self) -> Vec<NodeName> {
        self.inner
            .transport
            .get()
            .map(|t| t.connected())
            .unwrap_or_default()
    }

    /// Stops the node: the transport is closed (peers see the node down) and every
    /// process is killed.
    pub fn stop(&self) {
        if self.inner.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(t) = self.inner.transport.get() {
            t.shutdown();
        }
        let procs = self.all_processes();
        for p in procs {
            p.kill_with(ExitReason::Killed);
            // Attached handles are not tasks: end their bookkeeping here.
            self.process_exited(&p, ExitReason::Killed);
        }
    }
}

/// The type tag of a frame's message (none for links, exits and monitors), by which the
/// faults tell replies from requests.
fn message_tag(frame: &Wire) -> Option<u64> {
    match frame {
        Wire::Msg { tag, .. } => Some(*tag),
        _ => None,
    }
}
