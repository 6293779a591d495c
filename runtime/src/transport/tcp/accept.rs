//! Accepting: the listener's loop, the handshake as acceptor, and the decision to keep
//! an authenticated connection (publishing it in the table) or refuse it because the
//! two nodes already have one, or are dialing each other at the same moment.

use super::connection::{Connection, PeerInfo};
use super::handshake::{self, Authenticated, HandshakeError, Refusal};
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
                tokio::spawn(inner.clone().accepted(stream, addr));
            }
            Err(e) => {
                log::warn!("{}: accept failed: {e}", inner.me.name);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
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
                let same_instance = old.peer.instance == conn.peer.instance;
                if same_instance && old.peer.dialed_by_me && self.me.name < *peer {
                    // Ours is the keeper of a simultaneous dial, which the peer has
                    // accepted already; or the peer lost it and we have not seen that
                    // yet (then the peer tries again after a backoff).
                    Decision::Refuse(Refusal::Busy)
                } else {
                    // The peer restarted, or it lost the old connection before we saw it.
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

    async fn accepted(self: Arc<Self>, mut stream: TcpStream, addr: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let auth = match tokio::time::timeout(
            self.tuning.handshake_timeout,
            handshake::accept(&mut stream, &self.me, &self.cookie),
        )
        .await
        {
            Ok(Ok(auth)) => auth,
            Ok(Err(HandshakeError::WrongCookie)) => {
                log::warn!(
                    "{}: refused a connection from {addr}: wrong cookie",
                    self.me.name
                );
                return;
            }
            Ok(Err(e)) => {
                log::warn!(
                    "{}: handshake with {addr} failed: {e}; connection closed",
                    self.me.name
                );
                return;
            }
            Err(_) => {
                log::warn!(
                    "{}: handshake with {addr} timed out; connection closed",
                    self.me.name
                );
                return;
            }
        };
        self.keep_or_refuse(stream, addr, auth).await;
    }

    async fn keep_or_refuse(
        self: &Arc<Self>,
        stream: TcpStream,
        addr: SocketAddr,
        auth: Authenticated,
    ) {
        let peer = auth.peer.name.clone();
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
            instance: auth.peer.instance,
            addr,
            dialed_by_me: false,
        };
        let conn = match stream
            .into_std()
            .and_then(|s| Connection::new(self.next_id(), info, s, welcome))
        {
            Ok(c) => Arc::new(c),
            Err(e) => {
                log::warn!("{}: connection from {addr} failed: {e}", self.me.name);
                return;
            }
        };
        self.roles.write().insert(peer.clone(), auth.peer.role);
        match self.decide(&conn) {
            Decision::Refuse(why) => {
                log::debug!(
                    "{}: incoming connection from {peer} refused: {why}",
                    self.me.name
                );
                conn.replaced.store(true, Ordering::Relaxed);
                // No writer runs for it: the Welcome stays queued and is never written.
                if let Ok(bytes) = handshake::refusal_frame(why) {
                    let _ =
                        tokio::time::timeout(self.tuning.handshake_timeout, conn.write_all(&bytes))
                            .await;
                }
                conn.close();
            }
            Decision::Keep { replaced } => {
                if let Some(listen) = auth.peer.listen {
                    let reachable = if listen.ip().is_unspecified() {
                        SocketAddr::new(addr.ip(), listen.port())
                    } else {
                        listen
                    };
                    self.book.write().insert(peer.clone(), reachable);
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
