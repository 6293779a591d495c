//! Accepting: the listener's loop, the handshake as acceptor, and the decision to keep
//! an authenticated connection (publishing it in the table) or refuse it because the
//! two nodes already have one, or are dialing each other at the same moment.
//!
//! A connection that has not proved the cookie holds one task, a handshake buffer of at
//! most [`handshake::MAX_HANDSHAKE_FRAME`] bytes and a slot among
//! [`TcpConfig::max_handshakes`](super::TcpConfig::max_handshakes), all freed when it
//! ends (by the handshake timeout at the latest).

use super::connection::{Connection, PeerInfo};
use super::handshake::{self, Authenticated, HandshakeError, Refusal};
use super::tls::Secured;
use super::{Entry, Inner};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// What the table decided for an authenticated incoming connection.
enum Decision {
    Keep { replaced: Option<Arc<Connection>> },
    Refuse(Refusal),
}

/// Accepts connections until the transport shuts down or the node is dropped.
pub(super) async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                if inner.closed.load(Ordering::Acquire) || inner.node.upgrade().is_none() {
                    return;
                }
                let Some(slot) = HandshakeSlot::take(&inner) else {
                    inner.counters.refused.fetch_add(1, Ordering::Relaxed);
                    inner
                        .complaints
                        .warn(&inner.me.name, "connections over the handshake limit", || {
                            format!(
                                "{} connections are in the handshake already: a connection                                  from {addr} closed at once",
                                inner.max_handshakes
                            )
                        });
                    drop(stream);
                    continue;
                };
                tokio::spawn(inner.clone().accepted(stream, addr, slot));
            }
            Err(e) => {
                log::warn!("{}: accept failed: {e}", inner.me.name);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One of the limited places for a connection in the handshake, given back on drop.
pub(super) struct HandshakeSlot(Arc<Inner>);

impl HandshakeSlot {
    fn take(inner: &Arc<Inner>) -> Option<HandshakeSlot> {
        let taken = inner
            .handshakes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < inner.max_handshakes).then_some(n + 1)
            });
        taken.ok().map(|_| HandshakeSlot(inner.clone()))
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        self.0.handshakes.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Inner {
    /// Decides about an authenticated incoming connection and publishes it if kept.
    fn decide(&self, conn: &Arc<Connection>) -> Decision {
        let peer = &conn.peer.name;
        let mut table = self.table.lock();
        if self.closed.load(Ordering::Acquire) {
            return Decision::Refuse(Refusal::Busy);
        }
        let decision = match table.get(peer) {
            None | Some(Entry::Backoff { .. }) => Decision::Keep { replaced: None },
            Some(Entry::Connecting { .. }) => {
                // Both dialed: the lower name's outgoing connection is the one kept.
                // The peer keeps its queued frames for it.
                if self.me.name < *peer {
                    Decision::Refuse(Refusal::Crossed)
                } else {
                    Decision::Keep { replaced: None }
                }
            }
            Some(Entry::Up(old)) => {
                // Only the same incarnation, showing the token it showed on the live
                // connection, may take its place: another cookie holder claiming the
                // name (or a restarted run, which waits until the old connection is
                // seen to end) is refused.
                let same_incarnation = old.peer.incarnation == conn.peer.incarnation
                    && constant_time_eq(&old.peer.token, &conn.peer.token);
                if !same_incarnation || (old.peer.dialed_by_me && self.me.name < *peer) {
                    // Or: ours is the keeper of a simultaneous dial, which the peer has
                    // accepted already; or the peer lost it and we have not seen that
                    // yet (then the peer tries again after a backoff).
                    Decision::Refuse(Refusal::Busy)
                } else {
                    // The peer lost the old connection before we saw it.
                    Decision::Keep {
                        replaced: Some(old.clone()),
                    }
                }
            }
        };
        if let Decision::Keep { .. } = decision {
            if let Some(Entry::Connecting { queued, .. }) = table.get(peer) {
                conn.queue(queued);
            }
            table.insert(peer.clone(), Entry::Up(conn.clone()));
        }
        decision
    }

    async fn accepted(self: Arc<Self>, stream: TcpStream, addr: SocketAddr, slot: HandshakeSlot) {
        let _ = stream.set_nodelay(true);
        let judge = |peer: &handshake::Hello| self.judge(peer);
        let outcome = tokio::time::timeout(self.tuning.handshake_timeout, async {
            let mut secured = match &self.tls {
                Some(tls) => tls
                    .accept(stream)
                    .await
                    .map_err(|e| HandshakeError::Tls(e.to_string()))?,
                None => Secured::Plain(stream),
            };
            let auth = handshake::accept_judged(&mut secured, &self.me, &self.cookie, &judge)
                .await
                .map_err(super::tls::tls_failure)?;
            Ok::<_, HandshakeError>((secured, auth))
        })
        .await;
        drop(slot);
        let me = &self.me.name;
        let (secured, auth) = match outcome {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                if self.explain_rejection(addr, &e).is_none() {
                    let cause = match e {
                        HandshakeError::WrongCookie => "wrong cookies",
                        HandshakeError::Tls(_) => "failed TLS handshakes",
                        _ => "failed handshakes",
                    };
                    self.complaints.warn(me, cause, || {
                        format!("refused a connection from {addr}: {e}")
                    });
                }
                return;
            }
            Err(_) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                self.complaints.warn(me, "handshake timeouts", || {
                    format!("handshake with {addr} timed out; connection closed")
                });
                return;
            }
        };
        self.keep_or_refuse(secured, addr, auth).await;
    }

    async fn keep_or_refuse(
        self: &Arc<Self>,
        secured: Secured,
        addr: SocketAddr,
        auth: Authenticated,
    ) {
        let (stream, tls) = secured.into_parts();
        // The peer proved the cookie: its name may now be interned.
        let peer = auth.peer.node_name();
        let welcome = match auth.welcome_frame() {
            Ok(w) => w,
            Err(e) => {
                log::error!("{}: cannot encode Welcome: {e}", self.me.name);
                return;
            }
        };
        let info = PeerInfo {
            name: peer.clone(),
            role: auth.peer.role,
            incarnation: auth.peer.incarnation,
            token: auth.token,
            addr,
            dialed_by_me: false,
        };
        let conn = match stream
            .into_std()
            .and_then(|s| Connection::new(self.next_id(), info, s, welcome, self.max_outbox, tls))
        {
            Ok(c) => Arc::new(c),
            Err(e) => {
                log::warn!("{}: connection from {addr} failed: {e}", self.me.name);
                return;
            }
        };
        match self.decide(&conn) {
            Decision::Refuse(why) => {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                log::debug!(
                    "{}: incoming connection from {peer} refused: {why}",
                    self.me.name
                );
                conn.replaced.store(true, Ordering::Relaxed);
                // No writer runs for it: the Welcome stays queued and is never written.
                if let Ok(bytes) = handshake::refusal_frame(why) {
                    let _ = tokio::time::timeout(
                        self.tuning.handshake_timeout,
                        conn.write_sealed(&bytes),
                    )
                    .await;
                }
                conn.close();
            }
            Decision::Keep { replaced } => {
                self.remember(&peer, auth.peer.role, auth.peer.incarnation);
                // A peer's announced address is learned, but never over a member's:
                // members' addresses are the operator's to give.
                if let Some(listen) = auth.peer.listen {
                    let reachable = if listen.ip().is_unspecified() {
                        SocketAddr::new(addr.ip(), listen.port())
                    } else {
                        listen
                    };
                    let mut book = self.book.write();
                    if self.is_member(peer.as_str()) {
                        book.entry(peer.clone()).or_insert(reachable);
                    } else {
                        book.insert(peer.clone(), reachable);
                    }
                }
                log::debug!("{}: accepted {peer} from {addr}", self.me.name);
                if let Some(old) = replaced {
                    old.replaced.store(true, Ordering::Relaxed);
                    old.close();
                    log::info!(
                        "{}: {peer} connected again; the old connection is lost",
                        self.me.name
                    );
                    if let Some(node) = self.node.upgrade() {
                        node.node_down(&peer);
                    }
                }
                self.serve(conn);
            }
        }
    }
}

/// Compares two tokens in time independent of where they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
