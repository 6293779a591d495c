//! Dialing out: opening a connection to a peer from the address book, the handshake as
//! dialer, and what the table records when that succeeds or fails (the queued frames
//! go out on the new connection, or are dropped and the peer is reported down, with a
//! backoff before the next try).

use super::connection::{Connection, PeerInfo};
use super::handshake::{self, HandshakeError, Refusal};
use super::tls::Secured;
use super::{Entry, Inner, frame};
use crate::pid::NodeName;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::net::TcpStream;
use tokio::time::Instant;

impl Inner {
    /// Dials `peer` for the table entry `Connecting { attempt }`.
    pub(super) async fn dial(self: Arc<Self>, peer: NodeName, addr: SocketAddr, attempt: u64) {
        let started = Instant::now();
        let mut retry_wait = self.tuning.backoff_min;
        loop {
            match self.connect_and_handshake(&peer, addr).await {
                Ok((stream, dialed)) => {
                    return self.dial_succeeded(peer, addr, attempt, stream, dialed);
                }
                Err(DialError::Handshake(HandshakeError::Refused(Refusal::Crossed))) => {
                    // The peer's own dial is on its way and will take the queued frames.
                    // Should it never come, give up as for any failed dial.
                    tokio::time::sleep(self.tuning.handshake_timeout).await;
                    let why = DialError::Timeout("waiting for the peer's crossing connection");
                    return self.dial_failed(&peer, addr, attempt, why);
                }
                Err(DialError::Handshake(HandshakeError::Refused(Refusal::Busy)))
                    if self.still_connecting(&peer, attempt)
                        && started.elapsed() < self.tuning.handshake_timeout =>
                {
                    // The peer still holds a connection we have lost: it will see the
                    // end of it soon. Try again, keeping the queued frames.
                    log::debug!(
                        "{}: {peer} still holds our old connection; dialing again in \
                         {retry_wait:?}",
                        self.me.name
                    );
                    tokio::time::sleep(retry_wait).await;
                    retry_wait = (retry_wait * 2).min(self.tuning.backoff_max);
                }
                Err(why) => return self.dial_failed(&peer, addr, attempt, why),
            }
        }
    }

    /// Whether the table still waits on this dial.
    fn still_connecting(&self, peer: &NodeName, attempt: u64) -> bool {
        matches!(
            self.table.lock().get(peer),
            Some(Entry::Connecting { attempt: a, .. }) if *a == attempt
        ) && !self.closed.load(Ordering::Acquire)
    }

    async fn connect_and_handshake(
        &self,
        peer: &NodeName,
        addr: SocketAddr,
    ) -> Result<(Secured, handshake::Dialed), DialError> {
        let stream =
            match tokio::time::timeout(self.tuning.connect_timeout, TcpStream::connect(addr)).await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(DialError::Connect(e)),
                Err(_) => return Err(DialError::Timeout("connecting")),
            };
        let _ = stream.set_nodelay(true);
        let judge = |hello: &handshake::Hello| self.judge(hello);
        let handshake = async {
            let mut secured = match &self.tls {
                Some(tls) => tls
                    .connect(stream, addr)
                    .await
                    .map_err(|e| HandshakeError::Tls(e.to_string()))?,
                None => Secured::Plain(stream),
            };
            let dialed =
                handshake::dial_judged(&mut secured, &self.me, &self.cookie, Some(peer), &judge)
                    .await
                    .map_err(super::tls::tls_failure)?;
            Ok::<_, HandshakeError>((secured, dialed))
        };
        match tokio::time::timeout(self.tuning.handshake_timeout, handshake).await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(e)) => Err(DialError::Handshake(e)),
            Err(_) => Err(DialError::Timeout("in the handshake")),
        }
    }

    fn dial_succeeded(
        self: &Arc<Self>,
        peer: NodeName,
        addr: SocketAddr,
        attempt: u64,
        secured: Secured,
        dialed: handshake::Dialed,
    ) {
        let (stream, tls) = secured.into_parts();
        let hello = dialed.peer;
        let info = PeerInfo {
            name: peer.clone(),
            role: hello.role,
            incarnation: hello.incarnation,
            token: dialed.token,
            addr,
            dialed_by_me: true,
        };
        let conn = match stream.into_std().and_then(|s| {
            Connection::new(self.next_id(), info, s, Vec::new(), self.max_outbox, tls)
        }) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                self.dial_failed(&peer, addr, attempt, DialError::Connect(e));
                return;
            }
        };
        let published = {
            let mut table = self.table.lock();
            match table.get_mut(&peer) {
                Some(Entry::Connecting {
                    attempt: a, queued, ..
                }) if *a == attempt && !self.closed.load(Ordering::Acquire) => {
                    conn.queue(queued);
                    table.insert(peer.clone(), Entry::Up(conn.clone()));
                    true
                }
                _ => false,
            }
        };
        if published {
            self.remember(&peer, hello.role, hello.incarnation);
            log::debug!("{}: connected to {peer} at {addr}", self.me.name);
            self.serve(conn);
        } else {
            // Superseded (the peer's own dial was kept) or shut down meanwhile.
            conn.replaced.store(true, Ordering::Relaxed);
            conn.close();
        }
    }

    fn dial_failed(&self, peer: &NodeName, addr: SocketAddr, attempt: u64, why: DialError) {
        let lost = {
            let mut table = self.table.lock();
            match table.get(peer) {
                Some(Entry::Connecting {
                    attempt: a, delay, ..
                }) if *a == attempt => {
                    let delay = *delay;
                    let queued = match table.insert(
                        peer.clone(),
                        Entry::Backoff {
                            until: Instant::now() + delay,
                            delay: (delay * 2).min(self.tuning.backoff_max),
                        },
                    ) {
                        Some(Entry::Connecting { queued, .. }) => queued,
                        _ => Vec::new(),
                    };
                    Some((queued, delay))
                }
                // The peer's own connection was kept meanwhile: nothing was lost.
                _ => None,
            }
        };
        let Some((queued, delay)) = lost else {
            log::debug!(
                "{}: dial to {peer} at {addr} superseded: {why}",
                self.me.name
            );
            return;
        };
        let frames = count_frames(&queued);
        self.counters.dropped.fetch_add(frames, Ordering::Relaxed);
        let me = &self.me.name;
        match &why {
            DialError::Handshake(e) if self.explain_rejection(addr, e).is_some() => {}
            DialError::Handshake(HandshakeError::WrongCookie)
            | DialError::Handshake(HandshakeError::Refused(Refusal::WrongCookie)) => {
                self.complaints.warn(me, "wrong cookies", || {
                    format!("connection to {peer} at {addr} failed: wrong cookie")
                })
            }
            DialError::Handshake(e) => self.complaints.warn(me, "failed handshakes", || {
                format!("handshake with {peer} at {addr} failed: {e}")
            }),
            _ => log::debug!(
                "{}: cannot reach {peer} at {addr}: {why}; {frames} frame(s) dropped, \
                 next try in {delay:?}",
                self.me.name
            ),
        }
        if let Some(node) = self.node.upgrade() {
            node.node_down(peer);
        }
    }
}

/// Why a dial failed.
#[derive(Debug, thiserror::Error)]
enum DialError {
    #[error("{0}")]
    Connect(io::Error),
    #[error("timed out {0}")]
    Timeout(&'static str),
    #[error(transparent)]
    Handshake(HandshakeError),
}

/// Counts the frames in a buffer of encoded frames.
fn count_frames(mut bytes: &[u8]) -> u64 {
    let mut n = 0;
    while let Some(len) = frame::announced_len(bytes) {
        bytes = bytes.get(frame::HEADER_LEN + len..).unwrap_or(&[]);
        n += 1;
    }
    n
}
