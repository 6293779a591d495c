//! The handshake that opens a connection: each side proves it knows the shared cookie
//! without sending it, by HMAC-SHA256 over the other side's random nonce.
//!
//! ```text
//! dialer                                   acceptor
//!   Hello{name, role, listen, nonce_d} ->
//!                                       <- Hello{name, role, listen, nonce_a}
//!   Proof(HMAC(cookie, "dial", nonce_a, nonce_d, names)) ->
//!                                          (checks the proof, decides to keep the link)
//!                                       <- Welcome(HMAC(cookie, "accept", nonce_d, nonce_a, names))
//!                                          or Refused(reason)
//! ```
//! The acceptor answers with its own proof only after the dialer proved itself, so a
//! stranger never gets a MAC from a listener. The labels and both names are inside each
//! MAC, so a proof cannot be replayed in the other direction or towards another node.

use super::frame::{self, FrameError};
use crate::faults::NodeRole;
use crate::pid::NodeName;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// The version of this protocol; a peer with another one is refused.
pub const PROTOCOL_VERSION: u16 = 1;

/// The largest handshake message accepted: names and addresses are small.
pub const MAX_HANDSHAKE_FRAME: usize = 4096;

const DIAL_LABEL: &[u8] = b"paxoskv-runtime dial v1";
const ACCEPT_LABEL: &[u8] = b"paxoskv-runtime accept v1";

type HmacSha256 = Hmac<Sha256>;

/// What a node says about itself when a connection opens.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Hello {
    pub version: u16,
    pub name: NodeName,
    pub role: NodeRole,
    /// Where the node accepts connections; `None` for a client-only node.
    pub listen: Option<SocketAddr>,
    /// Random per start of the node: tells a restarted peer from the same one.
    pub instance: u64,
    pub nonce: [u8; 32],
    /// The node the dialer means to reach (the acceptor leaves it empty).
    pub to: Option<NodeName>,
}

/// The messages of the handshake.
#[derive(Debug, Serialize, Deserialize)]
pub enum Handshake {
    Hello(Hello),
    Proof([u8; 32]),
    Welcome([u8; 32]),
    Refused(Refusal),
}

/// Why an acceptor turned a connection down.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("wrong cookie")]
    WrongCookie,
    #[error("a connection between the two nodes already exists")]
    Busy,
    #[error("both nodes are dialing each other; the listener's connection will be kept")]
    Crossed,
    #[error("the listener is another node than the one dialed")]
    WrongName,
    #[error("the dialer has the listener's own name")]
    SameName,
    #[error("unsupported protocol version")]
    Version,
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("the peer refused the connection: {0}")]
    Refused(Refusal),
    #[error("wrong cookie (the peer's proof does not match)")]
    WrongCookie,
    #[error("expected node {expected}, found {found}")]
    WrongPeer { expected: NodeName, found: NodeName },
    #[error("protocol version {0} is not supported")]
    Version(u16),
    #[error("unexpected handshake message: {0}")]
    Unexpected(&'static str),
    #[error("the cookie cannot key an HMAC")]
    BadCookie,
}

/// Who this node is, as told in its `Hello`.
#[derive(Clone, Debug)]
pub struct Identity {
    pub name: NodeName,
    pub role: NodeRole,
    pub listen: Option<SocketAddr>,
    pub instance: u64,
}

impl Identity {
    fn hello(&self, nonce: [u8; 32], to: Option<NodeName>) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            name: self.name.clone(),
            role: self.role,
            listen: self.listen,
            instance: self.instance,
            nonce,
            to,
        }
    }
}

/// The MAC one side sends: over the label, the other side's nonce, its own nonce, its
/// own name and the other side's name (each name length-prefixed).
fn proof_mac(
    cookie: &[u8],
    label: &[u8],
    their_nonce: &[u8; 32],
    my_nonce: &[u8; 32],
    my_name: &NodeName,
    their_name: &NodeName,
) -> Result<HmacSha256, HandshakeError> {
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(cookie).map_err(|_| HandshakeError::BadCookie)?;
    mac.update(label);
    mac.update(their_nonce);
    mac.update(my_nonce);
    for name in [my_name, their_name] {
        let bytes = name.as_str().as_bytes();
        mac.update(&(bytes.len() as u64).to_be_bytes());
        mac.update(bytes);
    }
    Ok(mac)
}

fn make_proof(
    cookie: &[u8],
    label: &[u8],
    their_nonce: &[u8; 32],
    my_nonce: &[u8; 32],
    my_name: &NodeName,
    their_name: &NodeName,
) -> Result<[u8; 32], HandshakeError> {
    let mac = proof_mac(cookie, label, their_nonce, my_nonce, my_name, their_name)?;
    Ok(mac.finalize().into_bytes().into())
}

/// Checks the peer's proof in constant time.
fn check_proof(
    cookie: &[u8],
    label: &[u8],
    proof: &[u8; 32],
    nonce_of_checker: &[u8; 32],
    nonce_of_prover: &[u8; 32],
    prover: &NodeName,
    checker: &NodeName,
) -> Result<bool, HandshakeError> {
    let mac = proof_mac(
        cookie,
        label,
        nonce_of_checker,
        nonce_of_prover,
        prover,
        checker,
    )?;
    Ok(mac.verify_slice(proof).is_ok())
}

async fn read(stream: &mut TcpStream) -> Result<Handshake, HandshakeError> {
    Ok(frame::read_message::<Handshake>(stream, MAX_HANDSHAKE_FRAME).await?)
}

/// Runs the dialer's side on a fresh connection. On success the peer is authenticated
/// and has accepted the connection; its `Hello` is returned.
pub async fn dial(
    stream: &mut TcpStream,
    me: &Identity,
    cookie: &[u8],
    expected: Option<&NodeName>,
) -> Result<Hello, HandshakeError> {
    let my_nonce: [u8; 32] = rand::random();
    frame::write_message(
        stream,
        &Handshake::Hello(me.hello(my_nonce, expected.cloned())),
    )
    .await?;
    let peer = match read(stream).await? {
        Handshake::Hello(h) => h,
        Handshake::Refused(r) => return Err(HandshakeError::Refused(r)),
        _ => return Err(HandshakeError::Unexpected("dialer expected Hello")),
    };
    if peer.version != PROTOCOL_VERSION {
        return Err(HandshakeError::Version(peer.version));
    }
    if let Some(expected) = expected
        && *expected != peer.name
    {
        return Err(HandshakeError::WrongPeer {
            expected: expected.clone(),
            found: peer.name,
        });
    }
    let proof = make_proof(
        cookie,
        DIAL_LABEL,
        &peer.nonce,
        &my_nonce,
        &me.name,
        &peer.name,
    )?;
    frame::write_message(stream, &Handshake::Proof(proof)).await?;
    match read(stream).await? {
        Handshake::Welcome(proof) => {
            if check_proof(
                cookie,
                ACCEPT_LABEL,
                &proof,
                &my_nonce,
                &peer.nonce,
                &peer.name,
                &me.name,
            )? {
                Ok(peer)
            } else {
                Err(HandshakeError::WrongCookie)
            }
        }
        Handshake::Refused(r) => Err(HandshakeError::Refused(r)),
        _ => Err(HandshakeError::Unexpected("dialer expected Welcome")),
    }
}

/// An incoming connection whose dialer proved it knows the cookie; the acceptor now
/// decides whether to keep it, and answers with [`welcome_frame`](Self::welcome_frame)
/// or [`refusal_frame`].
#[derive(Debug)]
pub struct Authenticated {
    pub peer: Hello,
    welcome: [u8; 32],
}

impl Authenticated {
    /// The encoded `Welcome` frame, to be the first bytes written after the decision.
    pub fn welcome_frame(&self) -> Result<Vec<u8>, FrameError> {
        frame::encode(&Handshake::Welcome(self.welcome))
    }
}

/// The encoded `Refused` frame.
pub fn refusal_frame(reason: Refusal) -> Result<Vec<u8>, FrameError> {
    frame::encode(&Handshake::Refused(reason))
}

/// Runs the acceptor's side up to the decision. A dialer with the wrong cookie, a wrong
/// name or version is told why (it learns nothing about the cookie) and gets an error.
pub async fn accept(
    stream: &mut TcpStream,
    me: &Identity,
    cookie: &[u8],
) -> Result<Authenticated, HandshakeError> {
    let peer = match read(stream).await? {
        Handshake::Hello(h) => h,
        _ => return Err(HandshakeError::Unexpected("acceptor expected Hello")),
    };
    let refusal = if peer.version != PROTOCOL_VERSION {
        Some(Refusal::Version)
    } else if peer.name == me.name {
        Some(Refusal::SameName)
    } else if peer.to.as_ref().is_some_and(|to| *to != me.name) {
        Some(Refusal::WrongName)
    } else {
        None
    };
    if let Some(r) = refusal {
        frame::write_message(stream, &Handshake::Refused(r)).await?;
        return Err(HandshakeError::Refused(r));
    }
    let my_nonce: [u8; 32] = rand::random();
    frame::write_message(stream, &Handshake::Hello(me.hello(my_nonce, None))).await?;
    let proof = match read(stream).await? {
        Handshake::Proof(p) => p,
        _ => return Err(HandshakeError::Unexpected("acceptor expected Proof")),
    };
    if !check_proof(
        cookie,
        DIAL_LABEL,
        &proof,
        &my_nonce,
        &peer.nonce,
        &peer.name,
        &me.name,
    )? {
        // Best effort: the dialer may already be gone.
        let _ = frame::write_message(stream, &Handshake::Refused(Refusal::WrongCookie)).await;
        return Err(HandshakeError::WrongCookie);
    }
    let welcome = make_proof(
        cookie,
        ACCEPT_LABEL,
        &peer.nonce,
        &my_nonce,
        &me.name,
        &peer.name,
    )?;
    Ok(Authenticated { peer, welcome })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn identity(name: &str) -> Identity {
        Identity {
            name: NodeName::new(name),
            role: NodeRole::Server,
            listen: None,
            instance: 1,
        }
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let (a, b) = tokio::join!(TcpStream::connect(addr), l.accept());
        (a.expect("connect"), b.expect("accept").0)
    }

    #[tokio::test]
    async fn same_cookie_authenticates_both_ways() {
        let (mut d, mut a) = pair().await;
        let target = NodeName::new("a@h");
        let (id_d, id_a) = (identity("d@h"), identity("a@h"));
        let (dialed, accepted) = tokio::join!(dial(&mut d, &id_d, b"c", Some(&target)), async {
            let auth = accept(&mut a, &id_a, b"c").await?;
            let bytes = auth.welcome_frame()?;
            tokio::io::AsyncWriteExt::write_all(&mut a, &bytes)
                .await
                .map_err(FrameError::from)?;
            Ok::<_, HandshakeError>(auth)
        });
        assert_eq!(dialed.expect("dialer").name, NodeName::new("a@h"));
        assert_eq!(accepted.expect("acceptor").peer.name, NodeName::new("d@h"));
    }

    #[tokio::test]
    async fn wrong_cookie_is_refused_on_both_sides() {
        let (mut d, mut a) = pair().await;
        let (id_d, id_a) = (identity("d@h"), identity("a@h"));
        let (dialed, accepted) = tokio::join!(
            dial(&mut d, &id_d, b"bad", None),
            accept(&mut a, &id_a, b"good")
        );
        assert!(matches!(accepted, Err(HandshakeError::WrongCookie)));
        assert!(matches!(
            dialed,
            Err(HandshakeError::Refused(Refusal::WrongCookie))
        ));
    }

    #[tokio::test]
    async fn dialer_checks_the_name_it_reached() {
        let (mut d, mut a) = pair().await;
        let target = NodeName::new("x@h");
        let (id_d, id_a) = (identity("d@h"), identity("a@h"));
        let (dialed, accepted) = tokio::join!(
            dial(&mut d, &id_d, b"c", Some(&target)),
            accept(&mut a, &id_a, b"c")
        );
        assert!(matches!(
            accepted,
            Err(HandshakeError::Refused(Refusal::WrongName))
        ));
        assert!(matches!(
            dialed,
            Err(HandshakeError::Refused(Refusal::WrongName))
        ));
    }

    #[test]
    fn proofs_are_bound_to_direction_and_names() {
        let (n1, n2) = ([1u8; 32], [2u8; 32]);
        let (a, b) = (NodeName::new("a"), NodeName::new("b"));
        let p = make_proof(b"c", DIAL_LABEL, &n1, &n2, &a, &b).expect("mac");
        assert!(check_proof(b"c", DIAL_LABEL, &p, &n1, &n2, &a, &b).expect("mac"));
        assert!(!check_proof(b"c", ACCEPT_LABEL, &p, &n1, &n2, &a, &b).expect("mac"));
        assert!(!check_proof(b"c", DIAL_LABEL, &p, &n1, &n2, &b, &a).expect("mac"));
        assert!(!check_proof(b"c", DIAL_LABEL, &p, &n2, &n1, &a, &b).expect("mac"));
        assert!(!check_proof(b"d", DIAL_LABEL, &p, &n1, &n2, &a, &b).expect("mac"));
    }
}
