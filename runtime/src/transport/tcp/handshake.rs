//! The handshake that opens a connection: each side proves it knows the shared cookie
//! without sending it, by HMAC-SHA256 over a digest of both `Hello` messages (the
//! transcript), so every field either side announced is covered by both proofs.
//!
//! ```text
//! dialer                                   acceptor
//!   Hello{name, role, listen, incarnation, recovered, members, nonce_d, to} ->
//!                                          (checks version and names; keeps nothing)
//!                                       <- Hello{..., nonce_a}   or Refused(reason)
//!   Proof{HMAC(cookie, "dial", transcript, token, verdict), token, verdict} ->
//!                                          (checks the proof, then judges the dialer)
//!                                       <- Welcome{HMAC(cookie, "accept", ...), token, verdict}
//!                                          or Refused(reason)
//! ```
//! The acceptor answers with its own proof only after the dialer proved itself, so a
//! stranger never gets a MAC from a listener. Until the proof passes, the names a peer
//! announces stay plain bounded strings: nothing of a stranger's is interned or kept.
//!
//! Each side may refuse the other after the proof, for a reason the other can trust
//! because it is under the MAC (the `verdict`): a different member list
//! ([`Refusal::Membership`]) or a restart that lost the node's state
//! ([`Refusal::Restarted`]).
//!
//! The `token` is what a node shows a given peer to prove, on a later connection, that
//! it is the same incarnation: `HMAC(incarnation secret, peer name)`. Only that peer has
//! seen it, so another cookie holder cannot take over a live connection by claiming the
//! name and incarnation number of a connected node.

use super::frame::{self, FrameError};
use crate::faults::NodeRole;
use crate::pid::NodeName;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};

/// The version of this protocol; a peer with another one is refused.
pub const PROTOCOL_VERSION: u16 = 2;

/// The largest handshake message accepted: names and addresses are small.
pub const MAX_HANDSHAKE_FRAME: usize = 4096;

/// The longest node name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 255;

const DIAL_LABEL: &[u8] = b"paxoskv-runtime dial v2";
const ACCEPT_LABEL: &[u8] = b"paxoskv-runtime accept v2";
const TOKEN_LABEL: &[u8] = b"paxoskv-runtime incarnation token v2";
const MEMBERS_LABEL: &[u8] = b"paxoskv-runtime members v2";

type HmacSha256 = Hmac<Sha256>;

/// What a node says about itself when a connection opens. Names are plain strings here,
/// checked for length and characters, and made [`NodeName`]s only after the proof.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Hello {
    pub version: u16,
    pub name: String,
    pub role: NodeRole,
    /// Where the node accepts connections; `None` for a client-only node.
    pub listen: Option<SocketAddr>,
    /// The node's creation number: tells a restarted peer from the same one.
    pub incarnation: u64,
    /// Whether the node recovered its state from disk when it started (a restart that
    /// lost nothing, which peers accept under the old name).
    pub recovered: bool,
    /// The digest of the sorted member list the node was started with ([`members_digest`]),
    /// `None` for a node that is not a member (a client).
    pub members: Option<[u8; 32]>,
    pub nonce: [u8; 32],
    /// The node the dialer means to reach (the acceptor leaves it empty).
    pub to: Option<String>,
}

impl Hello {
    /// The announced name as a node name. Call only once the peer is authenticated:
    /// this interns it.
    pub fn node_name(&self) -> NodeName {
        NodeName::new(&self.name)
    }
}

/// A proof of the cookie, with what the prover says about the connection.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Answer {
    pub mac: [u8; 32],
    /// The prover's incarnation token for this peer.
    pub token: [u8; 32],
    /// The prover refuses the connection for this reason (after proving the cookie, so
    /// the other side can trust it).
    pub verdict: Option<Refusal>,
}

/// The messages of the handshake.
#[derive(Debug, Serialize, Deserialize)]
pub enum Handshake {
    Hello(Hello),
    Proof(Answer),
    Welcome(Answer),
    Refused(Refusal),
}

/// Why a connection was turned down.
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
    #[error("the node name is empty, longer than {MAX_NAME_LEN} bytes or not printable ASCII")]
    BadName,
    #[error("the two nodes were started with different member lists")]
    Membership,
    #[error(
        "the node restarted without its state: its peers remember an earlier run under the same name"
    )]
    Restarted,
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The peer refused before either side proved anything.
    #[error("the peer refused the connection: {0}")]
    Refused(Refusal),
    /// The peer, having proved the cookie, refused this node.
    #[error("the peer refused this node: {reason}")]
    Rejected { reason: Refusal, peer: Box<Hello> },
    /// This node, having checked the peer's proof, refused the peer.
    #[error("this node refused the peer: {reason}")]
    Rejecting { reason: Refusal, peer: Box<Hello> },
    #[error("wrong cookie (the peer's proof does not match)")]
    WrongCookie,
    #[error("expected node {expected}, found {found}")]
    WrongPeer { expected: NodeName, found: String },
    #[error("protocol version {0} is not supported")]
    Version(u16),
    #[error("the peer's name is empty, too long or not printable ASCII")]
    BadName,
    #[error("unexpected handshake message: {0}")]
    Unexpected(&'static str),
    #[error("the cookie cannot key an HMAC")]
    BadCookie,
    /// TLS could not be opened (a certificate not signed by the CA, none where one is
    /// required, a name that does not match, or no TLS on the other side).
    #[error("TLS failed: {0}")]
    Tls(String),
}

/// Who this node is, as told in its `Hello`, and the secret behind its tokens.
#[derive(Clone)]
pub struct Identity {
    pub name: NodeName,
    pub role: NodeRole,
    pub listen: Option<SocketAddr>,
    pub incarnation: u64,
    pub recovered: bool,
    pub members: Option<[u8; 32]>,
    /// Random per incarnation, never sent: keys the tokens.
    pub secret: [u8; 32],
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("incarnation", &self.incarnation)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// An identity with a fresh secret, not a member of any list, not recovered.
    pub fn new(name: impl Into<NodeName>, role: NodeRole, incarnation: u64) -> Identity {
        Identity {
            name: name.into(),
            role,
            listen: None,
            incarnation,
            recovered: false,
            members: None,
            // The operating system's generator: a secret must not be replayable from a
            // simulation seed.
            secret: rand::random(),
        }
    }

    fn hello(&self, nonce: [u8; 32], to: Option<&NodeName>) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            name: self.name.as_str().to_string(),
            role: self.role,
            listen: self.listen,
            incarnation: self.incarnation,
            recovered: self.recovered,
            members: self.members,
            nonce,
            to: to.map(|n| n.as_str().to_string()),
        }
    }

    /// The token this node shows `peer`.
    pub fn token_for(&self, peer: &str) -> [u8; 32] {
        // A 32-byte key always keys an HMAC; the fallback is never taken.
        match <HmacSha256 as Mac>::new_from_slice(&self.secret) {
            Ok(mut mac) => {
                mac.update(TOKEN_LABEL);
                mac.update(peer.as_bytes());
                mac.finalize().into_bytes().into()
            }
            Err(_) => [0; 32],
        }
    }
}

/// Whether a name a peer announces is acceptable: 1 to [`MAX_NAME_LEN`] bytes of
/// printable ASCII without spaces.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.bytes().all(|b| b.is_ascii_graphic())
}

/// The digest of a member list: SHA-256 over the sorted, de-duplicated names, each
/// length-prefixed. Every node started with the same list computes the same digest.
pub fn members_digest<'a>(members: impl IntoIterator<Item = &'a str>) -> [u8; 32] {
    let mut names: Vec<&str> = members.into_iter().collect();
    names.sort_unstable();
    names.dedup();
    let mut h = Sha256::new();
    h.update(MEMBERS_LABEL);
    for n in names {
        h.update((n.len() as u64).to_be_bytes());
        h.update(n.as_bytes());
    }
    h.finalize().into()
}

/// The first bytes of a digest in hex, for messages.
pub fn short_hex(digest: &[u8; 32]) -> String {
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// The transcript: a digest of the dialer's and the acceptor's `Hello`.
fn transcript(dialer: &Hello, acceptor: &Hello) -> Result<[u8; 32], HandshakeError> {
    let mut h = Sha256::new();
    for hello in [dialer, acceptor] {
        let bytes = postcard::to_stdvec(hello).map_err(FrameError::from)?;
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(&bytes);
    }
    Ok(h.finalize().into())
}

fn answer_mac(
    cookie: &[u8],
    label: &[u8],
    transcript: &[u8; 32],
    token: &[u8; 32],
    verdict: Option<Refusal>,
) -> Result<HmacSha256, HandshakeError> {
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(cookie).map_err(|_| HandshakeError::BadCookie)?;
    mac.update(label);
    mac.update(transcript);
    mac.update(token);
    let verdict = postcard::to_stdvec(&verdict).map_err(FrameError::from)?;
    mac.update(&verdict);
    Ok(mac)
}

fn make_answer(
    cookie: &[u8],
    label: &[u8],
    transcript: &[u8; 32],
    token: [u8; 32],
    verdict: Option<Refusal>,
) -> Result<Answer, HandshakeError> {
    let mac = answer_mac(cookie, label, transcript, &token, verdict)?;
    Ok(Answer {
        mac: mac.finalize().into_bytes().into(),
        token,
        verdict,
    })
}

/// Checks an answer's MAC in constant time.
fn check_answer(
    cookie: &[u8],
    label: &[u8],
    transcript: &[u8; 32],
    answer: &Answer,
) -> Result<bool, HandshakeError> {
    let mac = answer_mac(cookie, label, transcript, &answer.token, answer.verdict)?;
    Ok(mac.verify_slice(&answer.mac).is_ok())
}

async fn read<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Handshake, HandshakeError> {
    Ok(frame::read_message::<Handshake, S>(stream, MAX_HANDSHAKE_FRAME).await?)
}

async fn write<S: AsyncWrite + Unpin>(stream: &mut S, m: &Handshake) -> Result<(), HandshakeError> {
    Ok(frame::write_message(stream, m).await?)
}

/// What a dialer learned: the peer's `Hello` and the token it showed.
#[derive(Debug)]
pub struct Dialed {
    pub peer: Hello,
    pub token: [u8; 32],
}

/// Runs the dialer's side with no judgement of the peer; see [`dial_judged`].
pub async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    me: &Identity,
    cookie: &[u8],
    expected: Option<&NodeName>,
) -> Result<Dialed, HandshakeError> {
    dial_judged(stream, me, cookie, expected, &|_| None).await
}

/// Runs the dialer's side on a fresh connection. `judge` may refuse the acceptor once
/// its `Hello` is in (the refusal goes out under the dialer's proof). On success the
/// peer is authenticated and has accepted the connection.
pub async fn dial_judged<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    me: &Identity,
    cookie: &[u8],
    expected: Option<&NodeName>,
    judge: &(dyn Fn(&Hello) -> Option<Refusal> + Sync),
) -> Result<Dialed, HandshakeError> {
    // The operating system's generator: nonces must not repeat across runs.
    let my_nonce: [u8; 32] = rand::random();
    let mine = me.hello(my_nonce, expected);
    write(stream, &Handshake::Hello(mine.clone())).await?;
    let peer = match read(stream).await? {
        Handshake::Hello(h) => h,
        Handshake::Refused(r) => return Err(HandshakeError::Refused(r)),
        _ => return Err(HandshakeError::Unexpected("dialer expected Hello")),
    };
    if peer.version != PROTOCOL_VERSION {
        return Err(HandshakeError::Version(peer.version));
    }
    if !valid_name(&peer.name) {
        return Err(HandshakeError::BadName);
    }
    if let Some(expected) = expected
        && expected.as_str() != peer.name
    {
        return Err(HandshakeError::WrongPeer {
            expected: expected.clone(),
            found: peer.name,
        });
    }
    let t = transcript(&mine, &peer)?;
    let verdict = judge(&peer);
    let proof = make_answer(cookie, DIAL_LABEL, &t, me.token_for(&peer.name), verdict)?;
    write(stream, &Handshake::Proof(proof)).await?;
    if let Some(reason) = verdict {
        return Err(HandshakeError::Rejecting {
            reason,
            peer: Box::new(peer),
        });
    }
    match read(stream).await? {
        Handshake::Welcome(answer) => {
            if !check_answer(cookie, ACCEPT_LABEL, &t, &answer)? {
                return Err(HandshakeError::WrongCookie);
            }
            match answer.verdict {
                Some(reason) => Err(HandshakeError::Rejected {
                    reason,
                    peer: Box::new(peer),
                }),
                None => Ok(Dialed {
                    peer,
                    token: answer.token,
                }),
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
    /// The token the dialer showed.
    pub token: [u8; 32],
    welcome: Answer,
}

impl Authenticated {
    /// The encoded `Welcome` frame, to be the first bytes written after the decision.
    pub fn welcome_frame(&self) -> Result<Vec<u8>, FrameError> {
        frame::encode(&Handshake::Welcome(self.welcome.clone()))
    }
}

/// The encoded `Refused` frame.
pub fn refusal_frame(reason: Refusal) -> Result<Vec<u8>, FrameError> {
    frame::encode(&Handshake::Refused(reason))
}

/// Runs the acceptor's side with no judgement of the peer; see [`accept_judged`].
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    me: &Identity,
    cookie: &[u8],
) -> Result<Authenticated, HandshakeError> {
    accept_judged(stream, me, cookie, &|_| None).await
}

/// Runs the acceptor's side up to the decision. A dialer with the wrong cookie, a bad
/// name or version is told why (it learns nothing about the cookie) and gets an error.
/// `judge` runs only on a dialer that proved the cookie; its refusal is sent under the
/// acceptor's proof.
pub async fn accept_judged<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    me: &Identity,
    cookie: &[u8],
    judge: &(dyn Fn(&Hello) -> Option<Refusal> + Sync),
) -> Result<Authenticated, HandshakeError> {
    let peer = match read(stream).await? {
        Handshake::Hello(h) => h,
        _ => return Err(HandshakeError::Unexpected("acceptor expected Hello")),
    };
    let refusal = if peer.version != PROTOCOL_VERSION {
        Some(Refusal::Version)
    } else if !valid_name(&peer.name) {
        Some(Refusal::BadName)
    } else if peer.name == me.name.as_str() {
        Some(Refusal::SameName)
    } else if peer.to.as_ref().is_some_and(|to| to != me.name.as_str()) {
        Some(Refusal::WrongName)
    } else {
        None
    };
    if let Some(r) = refusal {
        write(stream, &Handshake::Refused(r)).await?;
        return Err(HandshakeError::Refused(r));
    }
    // The operating system's generator: nonces must not repeat across runs.
    let my_nonce: [u8; 32] = rand::random();
    let mine = me.hello(my_nonce, None);
    write(stream, &Handshake::Hello(mine.clone())).await?;
    let proof = match read(stream).await? {
        Handshake::Proof(p) => p,
        _ => return Err(HandshakeError::Unexpected("acceptor expected Proof")),
    };
    let t = transcript(&peer, &mine)?;
    if !check_answer(cookie, DIAL_LABEL, &t, &proof)? {
        // Best effort: the dialer may already be gone.
        let _ = write(stream, &Handshake::Refused(Refusal::WrongCookie)).await;
        return Err(HandshakeError::WrongCookie);
    }
    if let Some(reason) = proof.verdict {
        return Err(HandshakeError::Rejected {
            reason,
            peer: Box::new(peer),
        });
    }
    if let Some(reason) = judge(&peer) {
        let answer = make_answer(
            cookie,
            ACCEPT_LABEL,
            &t,
            me.token_for(&peer.name),
            Some(reason),
        )?;
        let _ = write(stream, &Handshake::Welcome(answer)).await;
        return Err(HandshakeError::Rejecting {
            reason,
            peer: Box::new(peer),
        });
    }
    let welcome = make_answer(cookie, ACCEPT_LABEL, &t, me.token_for(&peer.name), None)?;
    Ok(Authenticated {
        peer,
        token: proof.token,
        welcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pid::interned_count;
    use tokio::net::{TcpListener, TcpStream};

    fn identity(name: &str) -> Identity {
        Identity::new(name, NodeRole::Server, 1)
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let (a, b) = tokio::join!(TcpStream::connect(addr), l.accept());
        (a.expect("connect"), b.expect("accept").0)
    }

    async fn accept_and_welcome(
        a: &mut TcpStream,
        id: &Identity,
        cookie: &[u8],
    ) -> Result<Authenticated, HandshakeError> {
        let auth = accept(a, id, cookie).await?;
        let bytes = auth.welcome_frame()?;
        tokio::io::AsyncWriteExt::write_all(a, &bytes)
            .await
            .map_err(FrameError::from)?;
        Ok(auth)
    }

    #[tokio::test]
    async fn same_cookie_authenticates_both_ways_and_tokens_are_per_peer() {
        let (mut d, mut a) = pair().await;
        let target = NodeName::new("a@h");
        let (id_d, id_a) = (identity("d@h"), identity("a@h"));
        let (dialed, accepted) = tokio::join!(
            dial(&mut d, &id_d, b"c", Some(&target)),
            accept_and_welcome(&mut a, &id_a, b"c")
        );
        let dialed = dialed.expect("dialer");
        let accepted = accepted.expect("acceptor");
        assert_eq!(dialed.peer.name, "a@h");
        assert_eq!(accepted.peer.name, "d@h");
        assert_eq!(dialed.token, id_a.token_for("d@h"));
        assert_eq!(accepted.token, id_d.token_for("a@h"));
        assert_ne!(id_d.token_for("a@h"), id_d.token_for("x@h"));
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

    #[tokio::test]
    async fn a_strangers_name_is_not_interned_before_the_proof() {
        let id_a = identity("a@h");
        let before = interned_count();
        for i in 0..20 {
            let (mut d, mut a) = pair().await;
            let name = format!("stranger-{i}-{}@h", "x".repeat(200));
            let hello = Handshake::Hello(Hello {
                version: PROTOCOL_VERSION,
                name,
                role: NodeRole::Server,
                listen: None,
                incarnation: 1,
                recovered: false,
                members: None,
                nonce: [0; 32],
                to: None,
            });
            let (_, accepted) = tokio::join!(
                async {
                    write(&mut d, &hello).await?;
                    let _ = read(&mut d).await?;
                    let bogus = Answer {
                        mac: [7; 32],
                        token: [0; 32],
                        verdict: None,
                    };
                    write(&mut d, &Handshake::Proof(bogus)).await
                },
                accept(&mut a, &id_a, b"c")
            );
            assert!(matches!(accepted, Err(HandshakeError::WrongCookie)));
        }
        // Other tests in this process may intern a few names meanwhile, none of these.
        assert!(
            interned_count() < before + 20,
            "{} names interned",
            interned_count() - before
        );
    }

    #[tokio::test]
    async fn a_bad_name_is_refused_before_anything_else() {
        let (mut d, mut a) = pair().await;
        let mut id_d = identity("d@h");
        id_d.name = NodeName::new("has space");
        let id_a = identity("a@h");
        let (dialed, accepted) =
            tokio::join!(dial(&mut d, &id_d, b"c", None), accept(&mut a, &id_a, b"c"));
        assert!(matches!(
            accepted,
            Err(HandshakeError::Refused(Refusal::BadName))
        ));
        assert!(matches!(
            dialed,
            Err(HandshakeError::Refused(Refusal::BadName))
        ));
        assert!(!valid_name(&"x".repeat(MAX_NAME_LEN + 1)));
        assert!(valid_name("s1@127.0.0.1"));
    }

    #[tokio::test]
    async fn a_judged_refusal_is_authenticated_and_seen_on_both_sides() {
        let (mut d, mut a) = pair().await;
        let (id_d, id_a) = (identity("d@h"), identity("a@h"));
        let judge = |_: &Hello| Some(Refusal::Membership);
        let (dialed, accepted) = tokio::join!(
            dial(&mut d, &id_d, b"c", None),
            accept_judged(&mut a, &id_a, b"c", &judge)
        );
        assert!(matches!(
            accepted,
            Err(HandshakeError::Rejecting {
                reason: Refusal::Membership,
                ..
            })
        ));
        assert!(matches!(
            dialed,
            Err(HandshakeError::Rejected {
                reason: Refusal::Membership,
                ..
            })
        ));

        // And the dialer's own verdict reaches the acceptor the same way.
        let (mut d, mut a) = pair().await;
        let judge = |_: &Hello| Some(Refusal::Restarted);
        let (dialed, accepted) = tokio::join!(
            dial_judged(&mut d, &id_d, b"c", None, &judge),
            accept(&mut a, &id_a, b"c")
        );
        assert!(matches!(
            accepted,
            Err(HandshakeError::Rejected {
                reason: Refusal::Restarted,
                ..
            })
        ));
        assert!(matches!(
            dialed,
            Err(HandshakeError::Rejecting {
                reason: Refusal::Restarted,
                ..
            })
        ));
    }

    #[test]
    fn answers_are_bound_to_direction_transcript_token_and_verdict() {
        let t = [1u8; 32];
        let a = make_answer(b"c", DIAL_LABEL, &t, [3; 32], None).expect("mac");
        assert!(check_answer(b"c", DIAL_LABEL, &t, &a).expect("mac"));
        assert!(!check_answer(b"c", ACCEPT_LABEL, &t, &a).expect("mac"));
        assert!(!check_answer(b"c", DIAL_LABEL, &[2; 32], &a).expect("mac"));
        assert!(!check_answer(b"d", DIAL_LABEL, &t, &a).expect("mac"));
        let mut forged = a.clone();
        forged.token = [4; 32];
        assert!(!check_answer(b"c", DIAL_LABEL, &t, &forged).expect("mac"));
        let mut forged = a;
        forged.verdict = Some(Refusal::Restarted);
        assert!(!check_answer(b"c", DIAL_LABEL, &t, &forged).expect("mac"));
    }

    #[test]
    fn the_member_digest_ignores_order_and_duplicates() {
        let a = members_digest(["s2", "s1", "s3"]);
        assert_eq!(a, members_digest(["s1", "s2", "s3", "s1"]));
        assert_ne!(a, members_digest(["s1", "s2"]));
        assert_ne!(members_digest(["ab", "c"]), members_digest(["a", "bc"]));
    }
}
