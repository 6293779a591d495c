//! The TCP transport: nodes in separate OS processes (or machines) joined by one
//! authenticated connection per node pair.
//!
//! - `config`: [`TcpConfig`], [`Tuning`], [`TcpError`].
//! - [`frame`]: length-prefixed postcard frames with a maximum size.
//! - [`handshake`]: the cookie check, HMAC-SHA256 challenge-response both ways, the
//!   member-list digest and the incarnation (creation number and token).
//! - `binding`: a connection speaks only for the node that proved itself on it.
//! - [`tls`]: TLS (rustls) under the cookie handshake, certificates from files.
//! - `complaints`: rate-limited warnings about bad connections.
//! - `connection`: one live connection: direct writes from the sender when nothing is
//!   waiting, a writer task for the rest and for heartbeat ticks, a reader task that
//!   spins briefly before sleeping and delivers straight into the node.
//! - `dial` and `accept`: opening connections either way.
//! - this module: the table of peers (connecting, up, backing off) and the
//!   [`Transport`] the node talks to.
//!
//! Semantics follow the in-memory transport: frames between two nodes arrive in order or
//! not at all; a connection that cannot be made or is lost (end of stream, error, or
//! silence past the heartbeat timeout) makes the node fire `noconnection` for every link
//! and monitor on the peer. Sending to a node with no connection dials it and queues the
//! frames until the handshake ends; after a failed dial, sends within the backoff window
//! (50 ms doubling to 2 s) are dropped and counted. When two nodes dial each other at the
//! same moment the connection dialed by the lower name is kept, decided during the
//! handshake, before any frame flows.
//!
//! Hostile input: nothing a peer says is kept before it proved the cookie (names stay
//! bounded strings until then; at most [`TcpConfig::max_handshakes`] handshakes run at
//! once). An authenticated peer's frames must name only it and this node. A second
//! connection claiming a connected name replaces the first only with the same
//! incarnation and that incarnation's token. With a member list, a peer with another
//! list is refused, and so is a member that restarted without its state: it learns why
//! ([`TcpTransport::refused`]) and should stop. What a connection waits to write is
//! bounded ([`TcpConfig::max_outbox`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), runtime::transport::tcp::TcpError> {
//! use runtime::NodeRole;
//! use runtime::transport::tcp::{TcpConfig, TcpTransport, start_node};
//! use std::net::SocketAddr;
//!
//! // A server node on a free port, and a client-only node that knows where it is.
//! let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
//! let (server, addr) = start_node(
//!     "s1@127.0.0.1",
//!     NodeRole::Server,
//!     TcpConfig::new("secret").listen(any_port),
//! )
//! .await?;
//! let mut cfg = TcpConfig::new("secret");
//! cfg.peers.extend(addr.map(|a| (server.name().clone(), a)));
//! let (client, transport) = TcpTransport::start("cli@127.0.0.1", NodeRole::Client, cfg).await?;
//! client.send(None, ("kv_server", server.name().clone()), "hello".to_string());
//! // The address book can grow at run time.
//! transport.add_peer("s2@127.0.0.1", SocketAddr::from(([127, 0, 0, 1], 7102)));
//! # Ok(())
//! # }
//! ```

mod accept;
mod binding;
mod complaints;
mod config;
mod connection;
mod dial;
pub mod frame;
pub mod fuzzing;
pub mod handshake;
pub mod tls;

use self::complaints::Complaints;
use self::connection::{Connection, Ended, Timing};
use self::handshake::{Hello, Identity, Refusal};
use super::{Transport, Wire};
use crate::faults::NodeRole;
use crate::node::{Node, WeakNode};
use crate::pid::NodeName;
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use self::config::{DEFAULT_MAX_HANDSHAKES, DEFAULT_MAX_OUTBOX, TcpConfig, TcpError, Tuning};
pub use self::frame::DEFAULT_MAX_FRAME;

/// Starts a node on TCP. Returns the node and the address it listens on (`None` for a
/// client-only node).
pub async fn start_node(
    name: impl Into<NodeName>,
    role: NodeRole,
    cfg: TcpConfig,
) -> Result<(Node, Option<SocketAddr>), TcpError> {
    let (node, transport) = TcpTransport::start(name, role, cfg).await?;
    let addr = transport.local_addr();
    Ok((node, addr))
}

/// A handle on a node's TCP transport: address book, bound address, counters.
#[derive(Clone)]
pub struct TcpTransport {
    inner: Arc<Inner>,
}

/// One peer's state in the table.
enum Entry {
    /// A dial is in progress; frames wait in `queued`. `delay` is the backoff to apply
    /// if this attempt fails.
    Connecting {
        attempt: u64,
        queued: Vec<u8>,
        delay: Duration,
    },
    Up(Arc<Connection>),
    /// The last dial failed: sends before `until` are dropped.
    Backoff {
        until: Instant,
        delay: Duration,
    },
}

struct Inner {
    me: Identity,
    cookie: Vec<u8>,
    max_frame: usize,
    max_outbox: usize,
    max_handshakes: usize,
    tls: Option<tls::TlsSettings>,
    /// The member list, when one was given.
    members: Option<HashSet<NodeName>>,
    /// The incarnation last seen of each member: a member back with another one and no
    /// recovered state is refused.
    seen: Mutex<HashMap<NodeName, u64>>,
    /// Incoming connections in the handshake now.
    handshakes: AtomicUsize,
    complaints: Complaints,
    counters: Counters,
    /// Why this node was refused by its cluster, once it was (see
    /// [`TcpTransport::refused`]).
    refused: tokio::sync::watch::Sender<Option<String>>,
    /// The last refusal after a proof, either way (see [`TcpTransport::last_rejection`]).
    last_rejection: Mutex<Option<String>>,
    tuning: Tuning,
    node: WeakNode,
    runtime: tokio::runtime::Handle,
    table: Mutex<HashMap<NodeName, Entry>>,
    book: RwLock<HashMap<NodeName, SocketAddr>>,
    roles: RwLock<HashMap<NodeName, NodeRole>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    listener: Mutex<Option<JoinHandle<()>>>,
    tick: Vec<u8>,
}

/// The transport's counters.
#[derive(Default)]
struct Counters {
    dropped: AtomicU64,
    forged: AtomicU64,
    refused: AtomicU64,
    overflowed: AtomicU64,
}

/// A snapshot of what a TCP transport counted and holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpStats {
    /// Frames dropped on the way out (see [`TcpTransport::dropped_frames`]).
    pub dropped: u64,
    /// Frames received that named a node other than their connection's peer or this node.
    pub forged: u64,
    /// Incoming connections refused or failed before they were kept.
    pub refused: u64,
    /// Connections closed because their outgoing buffer was full.
    pub overflowed: u64,
    /// Incoming connections in the handshake now.
    pub handshakes: usize,
    /// Peers whose role is remembered (connected peers and members).
    pub roles: usize,
    /// Entries in the connection table.
    pub table: usize,
    /// Entries in the address book.
    pub book: usize,
    /// Warnings about bad connections logged, and held back by the rate limit.
    pub warnings_logged: u64,
    pub warnings_held_back: u64,
}

/// What `send` does once the table lock is released.
enum SendAction {
    Done,
    Write(Arc<Connection>),
    Dial(u64, SocketAddr),
    Drop(&'static str),
}

impl TcpTransport {
    /// Starts a node on TCP with default timings; see [`start_tuned`](Self::start_tuned).
    pub async fn start(
        name: impl Into<NodeName>,
        role: NodeRole,
        cfg: TcpConfig,
    ) -> Result<(Node, TcpTransport), TcpError> {
        Self::start_tuned(name, role, cfg, Tuning::default()).await
    }

    /// Starts a node on TCP: binds the listener (if any), attaches the transport.
    pub async fn start_tuned(
        name: impl Into<NodeName>,
        role: NodeRole,
        cfg: TcpConfig,
        tuning: Tuning,
    ) -> Result<(Node, TcpTransport), TcpError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| TcpError::NoRuntime)?;
        if cfg.max_frame < 64 {
            return Err(TcpError::MaxFrame(cfg.max_frame));
        }
        if cfg.max_outbox < cfg.max_frame + frame::HEADER_LEN {
            return Err(TcpError::MaxOutbox {
                outbox: cfg.max_outbox,
                frame: cfg.max_frame,
            });
        }
        let listener = match cfg.listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| TcpError::Listen { addr, source })?,
            ),
            None => None,
        };
        let bound = match &listener {
            Some(l) => Some(l.local_addr().map_err(|source| TcpError::Listen {
                addr: cfg.listen.unwrap_or_else(|| ([0, 0, 0, 0], 0).into()),
                source,
            })?),
            None => None,
        };
        let node = Node::new(name, role);
        let mut me = Identity::new(node.name().clone(), role, node.creation());
        me.listen = bound;
        me.recovered = cfg.recovered;
        me.members = cfg
            .members
            .as_ref()
            .map(|m| handshake::members_digest(m.iter().map(|n| n.as_str())));
        let inner = Arc::new(Inner {
            me,
            cookie: cfg.cookie.into_bytes(),
            max_frame: cfg.max_frame,
            max_outbox: cfg.max_outbox,
            max_handshakes: cfg.max_handshakes,
            tls: cfg.tls,
            members: cfg.members.map(|m| m.into_iter().collect()),
            seen: Mutex::new(HashMap::new()),
            handshakes: AtomicUsize::new(0),
            complaints: Complaints::new(tuning.warn_interval),
            counters: Counters::default(),
            refused: tokio::sync::watch::Sender::new(None),
            last_rejection: Mutex::new(None),
            tuning,
            node: node.downgrade(),
            runtime,
            table: Mutex::new(HashMap::new()),
            book: RwLock::new(cfg.peers.into_iter().collect()),
            roles: RwLock::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            listener: Mutex::new(None),
            tick: frame::tick_frame(),
        });
        if let Some(listener) = listener {
            let task = inner
                .runtime
                .spawn(accept::accept_loop(inner.clone(), listener));
            *inner.listener.lock() = Some(task);
        }
        let transport = TcpTransport { inner };
        node.set_transport(Arc::new(transport.clone()));
        log::info!(
            "{}: started on TCP{}",
            node.name(),
            bound
                .map(|a| format!(", listening on {a}"))
                .unwrap_or_default()
        );
        Ok((node, transport))
    }

    /// The address the node listens on (`None` for a client-only node).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.me.listen
    }

    /// Adds or changes a peer's address.
    pub fn add_peer(&self, name: impl Into<NodeName>, addr: SocketAddr) {
        self.inner.book.write().insert(name.into(), addr);
    }

    /// Forgets a peer's address (a live connection stays).
    pub fn remove_peer(&self, name: &NodeName) {
        self.inner.book.write().remove(name);
    }

    /// The address book: configured, added, and learned from peers that dialed in.
    pub fn peers(&self) -> Vec<(NodeName, SocketAddr)> {
        let mut v: Vec<_> = self
            .inner
            .book
            .read()
            .iter()
            .map(|(n, a)| (n.clone(), *a))
            .collect();
        v.sort();
        v
    }

    /// Frames this transport dropped: sent while a peer was unreachable or backing off,
    /// queued for a dial that failed, or too large to send.
    pub fn dropped_frames(&self) -> u64 {
        self.inner.counters.dropped.load(Ordering::Relaxed)
    }

    /// What the transport counted and holds now.
    pub fn stats(&self) -> TcpStats {
        let i = &self.inner;
        let c = &i.counters;
        TcpStats {
            dropped: c.dropped.load(Ordering::Relaxed),
            forged: c.forged.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            overflowed: c.overflowed.load(Ordering::Relaxed),
            handshakes: i.handshakes.load(Ordering::Relaxed),
            roles: i.roles.read().len(),
            table: i.table.lock().len(),
            book: i.book.read().len(),
            warnings_logged: i.complaints.logged(),
            warnings_held_back: i.complaints.held_back(),
        }
    }

    /// The last connection refused after both sides proved the cookie (another member
    /// list, a restart without state), by this node or its peer, explained.
    pub fn last_rejection(&self) -> Option<String> {
        self.inner.last_rejection.lock().clone()
    }

    /// Waits until the cluster refuses this node for good (a restart without its state
    /// under a name the members remember) and says why, with what the operator should
    /// do. A node should stop then: it cannot take part.
    pub async fn refused(&self) -> String {
        let mut rx = self.inner.refused.subscribe();
        loop {
            if let Some(why) = rx.borrow_and_update().clone() {
                return why;
            }
            if rx.changed().await.is_err() {
                // The transport is gone; never resolves.
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Transport for TcpTransport {
    fn send(&self, node: &NodeName, frame: Wire) {
        self.inner.send(node, frame);
    }

    fn peer_role(&self, node: &NodeName) -> Option<NodeRole> {
        self.inner.roles.read().get(node).copied()
    }

    fn connected(&self) -> Vec<NodeName> {
        let mut v: Vec<NodeName> = self
            .inner
            .table
            .lock()
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Up(_)))
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }

    fn shutdown(&self) {
        self.inner.shutdown();
    }
}

impl Inner {
    fn send(self: &Arc<Self>, peer: &NodeName, wire: Wire) {
        if self.closed.load(Ordering::Acquire) {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut bytes = match frame::encode_wire(&wire) {
            Ok(b) if b.len() - frame::HEADER_LEN <= self.max_frame => b,
            Ok(b) => {
                log::warn!(
                    "{}: frame of {} bytes to {peer} is over the maximum of {}: dropped",
                    self.me.name,
                    b.len() - frame::HEADER_LEN,
                    self.max_frame
                );
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                log::error!("{}: cannot encode a frame to {peer}: {e}", self.me.name);
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let action = {
            let mut table = self.table.lock();
            match table.get_mut(peer) {
                Some(Entry::Up(conn)) => SendAction::Write(conn.clone()),
                Some(Entry::Connecting { queued, .. })
                    if queued.len() + bytes.len() > self.max_outbox =>
                {
                    SendAction::Drop("the queue for the connection being made is full")
                }
                Some(Entry::Connecting { queued, .. }) => {
                    queued.extend_from_slice(&bytes);
                    SendAction::Done
                }
                Some(Entry::Backoff { until, .. }) if Instant::now() < *until => {
                    SendAction::Drop("backing off after a failed connection")
                }
                other => {
                    let delay = match other {
                        Some(Entry::Backoff { delay, .. }) => *delay,
                        _ => self.tuning.backoff_min,
                    };
                    match self.book.read().get(peer).copied() {
                        Some(addr) => {
                            let attempt = self.next_id();
                            table.insert(
                                peer.clone(),
                                Entry::Connecting {
                                    attempt,
                                    queued: std::mem::take(&mut bytes),
                                    delay,
                                },
                            );
                            SendAction::Dial(attempt, addr)
                        }
                        None => SendAction::Drop("no known address"),
                    }
                }
            }
        };
        match action {
            SendAction::Done => {}
            SendAction::Write(conn) => {
                // A closed connection loses the frame; its reader reports the peer down.
                conn.send_bytes(&bytes);
            }
            SendAction::Dial(attempt, addr) => {
                let inner = self.clone();
                let peer = peer.clone();
                self.runtime
                    .spawn(async move { inner.dial(peer, addr, attempt).await });
            }
            SendAction::Drop(why) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                log::debug!("{}: frame to {peer} dropped: {why}", self.me.name);
                // A lost link, monitor or exit must still fire: report the peer down. A
                // lost message needs nothing more.
                if !matches!(wire, Wire::Msg { .. })
                    && let Some(node) = self.node.upgrade()
                {
                    node.node_down(peer);
                }
            }
        }
    }

    /// Starts the reader and writer tasks of a published connection.
    fn serve(self: &Arc<Self>, conn: Arc<Connection>) {
        let timing = Timing {
            tick_interval: self.tuning.tick_interval,
            silence_timeout: self.tuning.silence_timeout,
            spin: self.tuning.spin,
        };
        let writer = conn.clone();
        let inner = self.clone();
        self.runtime.spawn(async move {
            writer.run_writer(timing.tick_interval, &inner.tick).await;
        });
        let inner = self.clone();
        self.runtime.spawn(async move {
            let ended = conn
                .run_reader(
                    &inner.node,
                    &inner.me.name,
                    inner.max_frame,
                    timing,
                    &inner.counters.forged,
                )
                .await;
            inner.connection_ended(&conn, ended);
        });
    }

    /// Whether `name` is in the member list.
    fn is_member(&self, name: &str) -> bool {
        self.members
            .as_ref()
            .is_some_and(|m| m.iter().any(|n| n.as_str() == name))
    }

    /// The checks both sides of a handshake make on a peer that may be kept: the same
    /// member list, and, for a member, no restart that lost its state.
    fn judge(&self, peer: &Hello) -> Option<Refusal> {
        if let (Some(mine), Some(theirs)) = (self.me.members, peer.members)
            && mine != theirs
        {
            return Some(Refusal::Membership);
        }
        if peer.members.is_some() && !peer.recovered && self.is_member(&peer.name) {
            let seen = self
                .seen
                .lock()
                .iter()
                .find(|(n, _)| n.as_str() == peer.name)
                .map(|(_, i)| *i);
            if seen.is_some_and(|i| i != peer.incarnation) {
                return Some(Refusal::Restarted);
            }
        }
        None
    }

    /// Records a kept connection's peer: its role, and a member's incarnation.
    fn remember(&self, peer: &NodeName, role: NodeRole, incarnation: u64) {
        self.roles.write().insert(peer.clone(), role);
        if self.is_member(peer.as_str()) {
            self.seen.lock().insert(peer.clone(), incarnation);
        }
    }

    /// Explains a refusal after the proof, on either side, and when it is this node
    /// that cannot take part, says so to whoever waits on [`TcpTransport::refused`].
    fn explain_rejection(
        &self,
        addr: SocketAddr,
        err: &handshake::HandshakeError,
    ) -> Option<String> {
        use handshake::HandshakeError::{Rejected, Rejecting};
        let (reason, peer, by_peer) = match err {
            Rejected { reason, peer } => (*reason, peer, true),
            Rejecting { reason, peer } => (*reason, peer, false),
            _ => return None,
        };
        let me = &self.me.name;
        let text = match reason {
            Refusal::Membership => {
                let mine = self.members.as_ref().map(|m| {
                    let mut v: Vec<&str> = m.iter().map(|n| n.as_str()).collect();
                    v.sort_unstable();
                    v.join(",")
                });
                format!(
                    "{} ({addr}) was started with another member list: this node has [{}]                      (digest {}), {} has digest {}; start every node with the same list",
                    peer.name,
                    mine.unwrap_or_default(),
                    self.me
                        .members
                        .as_ref()
                        .map(handshake::short_hex)
                        .unwrap_or_default(),
                    peer.name,
                    peer.members
                        .as_ref()
                        .map(handshake::short_hex)
                        .unwrap_or_default(),
                )
            }
            Refusal::Restarted if by_peer => format!(
                "{} remembers an earlier run of {me} (this run is incarnation {}): this                  node restarted without its state and cannot take part under the same                  name. Start it under a new name with every member's list updated, or                  restart the whole cluster, or start it from recovered state",
                peer.name, self.me.incarnation
            ),
            Refusal::Restarted => format!(
                "{} ({addr}) restarted without its state (incarnation {}, an earlier                  one was seen): refused until it is started under a new name or from                  recovered state",
                peer.name, peer.incarnation
            ),
            other => format!("{} ({addr}): {other}", peer.name),
        };
        *self.last_rejection.lock() = Some(text.clone());
        // Only a restart refused by a member is this node's own fault for sure: a list
        // mismatch may be either side's, and stopping for it would let one misconfigured
        // node stop a healthy cluster.
        if by_peer && reason == Refusal::Restarted {
            log::error!("{me}: refused by the cluster: {text}");
            self.refused.send_if_modified(|slot| {
                if slot.is_none() {
                    *slot = Some(text.clone());
                    true
                } else {
                    false
                }
            });
        } else {
            let cause = match reason {
                Refusal::Membership => "member list mismatches",
                _ => "refused peers",
            };
            self.complaints
                .error(me, cause, || format!("refused: {text}"));
        }
        Some(text)
    }

    /// Cleans up after a reader stopped; the peer is reported down unless the
    /// connection was replaced or the transport is shut down.
    fn connection_ended(&self, conn: &Arc<Connection>, ended: Ended) {
        let peer = &conn.peer.name;
        let addr = conn.peer.addr;
        let by_us = conn.is_closed();
        // Out of the table before the socket closes, so that the peer, seeing the end,
        // cannot dial again before this node has forgotten the old connection.
        let removed = {
            let mut table = self.table.lock();
            match table.get(peer) {
                Some(Entry::Up(c)) if c.id == conn.id => {
                    table.remove(peer);
                    true
                }
                _ => false,
            }
        };
        conn.close();
        if removed && !self.is_member(peer.as_str()) {
            // A client's role is of no use once it is gone; members' are kept.
            self.roles.write().remove(peer);
        }
        if self.closed.load(Ordering::Acquire) || conn.replaced.load(Ordering::Relaxed) {
            return;
        }
        let me = &self.me.name;
        let ended = if conn.overflowed.load(Ordering::Relaxed) {
            Ended::Overflow
        } else {
            ended
        };
        match &ended {
            Ended::BadFrame(e) => self.complaints.warn(me, "bad frames", || {
                format!("{e} from {peer} ({addr}); connection closed")
            }),
            Ended::Silent(t) => self.complaints.warn(me, "silent connections", || {
                format!("nothing heard from {peer} ({addr}) for {t:?}; connection closed")
            }),
            Ended::Overflow => {
                self.counters.overflowed.fetch_add(1, Ordering::Relaxed);
                self.complaints.warn(me, "full outgoing buffers", || {
                    format!(
                        "{peer} ({addr}) is not reading: more than {} bytes wait to be                          written to it; connection closed",
                        self.max_outbox
                    )
                })
            }
            Ended::Io(e) => log::info!("{}: connection to {peer} lost: {e}", self.me.name),
            Ended::Eof if by_us => {
                log::info!(
                    "{}: connection to {peer} closed after a write error",
                    self.me.name
                )
            }
            Ended::Eof => log::info!("{}: {peer} closed the connection", self.me.name),
            Ended::NodeGone => return,
        }
        if removed && let Some(node) = self.node.upgrade() {
            node.node_down(peer);
        }
    }

    fn shutdown(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(task) = self.listener.lock().take() {
            task.abort();
        }
        let entries: Vec<Entry> = self.table.lock().drain().map(|(_, e)| e).collect();
        for e in entries {
            if let Entry::Up(conn) = e {
                conn.close();
            }
        }
        log::info!("{}: TCP transport shut down", self.me.name);
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}
