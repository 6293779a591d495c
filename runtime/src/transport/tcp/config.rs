//! What a TCP node is started with: its address, cookie and address book
//! ([`TcpConfig`]), its timings ([`Tuning`]), and the errors of starting it.

use super::frame::DEFAULT_MAX_FRAME;
use crate::pid::NodeName;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// How a TCP node is reached and authenticated.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// Where to accept connections (`127.0.0.1:0` picks a free port); `None` for a
    /// client-only node that only dials out.
    pub listen: Option<SocketAddr>,
    /// The shared secret; never sent, only proved.
    pub cookie: String,
    /// The address book at start.
    pub peers: Vec<(NodeName, SocketAddr)>,
    /// The largest frame body accepted or sent, in bytes.
    pub max_frame: usize,
    /// The cluster's member list (server nodes), this node included if it is one. When
    /// set, the handshake carries its digest: a peer started with another list is refused,
    /// and a member that restarts without its state is refused under its old name.
    pub members: Option<Vec<NodeName>>,
    /// This node recovered its state from disk at start: peers accept it under its old
    /// name after a restart.
    pub recovered: bool,
    /// The most bytes waiting to be written to one peer; past it the connection is closed
    /// (the peer is not reading) rather than letting the buffer grow.
    pub max_outbox: usize,
    /// The most incoming connections in the handshake at once; more are closed at once.
    pub max_handshakes: usize,
    /// TLS for every connection, both ways, when set; the cookie handshake runs inside.
    pub tls: Option<super::tls::TlsSettings>,
}

/// The default [`TcpConfig::max_outbox`]: 64 MiB.
pub const DEFAULT_MAX_OUTBOX: usize = 64 * 1024 * 1024;
/// The default [`TcpConfig::max_handshakes`].
pub const DEFAULT_MAX_HANDSHAKES: usize = 256;

impl TcpConfig {
    /// A client-only configuration with this cookie, no peers, the default frame limit.
    pub fn new(cookie: impl Into<String>) -> Self {
        TcpConfig {
            listen: None,
            cookie: cookie.into(),
            peers: Vec::new(),
            max_frame: DEFAULT_MAX_FRAME,
            members: None,
            recovered: false,
            max_outbox: DEFAULT_MAX_OUTBOX,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            tls: None,
        }
    }

    /// Sets the cluster's member list.
    pub fn members(mut self, members: impl IntoIterator<Item = NodeName>) -> Self {
        self.members = Some(members.into_iter().collect());
        self
    }

    /// Accepts connections on `addr`.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Adds a peer to the address book.
    pub fn peer(mut self, name: impl Into<NodeName>, addr: SocketAddr) -> Self {
        self.peers.push((name.into(), addr));
        self
    }
}

/// Timings of the transport. The defaults suit a LAN or loopback.
#[derive(Clone, Copy, Debug)]
pub struct Tuning {
    /// A tick is sent when nothing else was sent for this long.
    pub tick_interval: Duration,
    /// A connection with no byte received for this long is lost.
    pub silence_timeout: Duration,
    /// Limit on opening a TCP connection.
    pub connect_timeout: Duration,
    /// Limit on the handshake.
    pub handshake_timeout: Duration,
    /// The first wait after a failed dial; it doubles on each failure...
    pub backoff_min: Duration,
    /// ...up to this.
    pub backoff_max: Duration,
    /// How long a reader keeps polling an empty socket before it sleeps.
    pub spin: Duration,
    /// The shortest time between two warnings of one cause about bad connections.
    pub warn_interval: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            tick_interval: Duration::from_millis(500),
            silence_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(3),
            handshake_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            spin: Duration::from_micros(50),
            warn_interval: super::complaints::DEFAULT_INTERVAL,
        }
    }
}

/// Errors starting a TCP node.
#[derive(Debug, thiserror::Error)]
pub enum TcpError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
    #[error("a TCP node must be started inside a tokio runtime")]
    NoRuntime,
    #[error("the maximum frame size must be at least 64 bytes, got {0}")]
    MaxFrame(usize),
    #[error("the maximum outgoing buffer ({outbox} bytes) must hold one frame ({frame} bytes)")]
    MaxOutbox { outbox: usize, frame: usize },
}
