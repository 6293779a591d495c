//! Entry points that run each decoder of network bytes on arbitrary input, for the fuzz
//! targets in `fuzz/` (cargo-fuzz) and the seeded property tests of the default suite:
//! the frame splitter and frame bodies, handshake messages, and the acceptor's side of
//! the handshake on a stream. Each must return (an error is an answer) and never panic,
//! hang, or allocate past its limits, whatever the bytes.

use super::binding::names_bound;
use super::frame::{self, Frame, FrameBuffer};
use super::handshake::{self, Handshake, Identity};
use crate::faults::NodeRole;
use crate::pid::NodeName;

/// The frame limit the entry points use: small, so that a length prefix over it is
/// common in random input.
pub const FUZZ_MAX_FRAME: usize = 64 * 1024;

/// Feeds `data` to a connection's frame splitter in chunks (the first byte sets the
/// chunk size), decoding every frame and checking its names as a reader does. Returns
/// how many frames decoded before the stream ended or went bad.
pub fn frame_stream(data: &[u8]) -> usize {
    let Some((&chunk, mut rest)) = data.split_first() else {
        return 0;
    };
    let chunk = usize::from(chunk).max(1) * 7;
    let (peer, me) = (NodeName::new("fuzz-peer@h"), NodeName::new("fuzz-me@h"));
    let mut frames = FrameBuffer::new(FUZZ_MAX_FRAME);
    let mut count = 0;
    while !rest.is_empty() {
        let spare = frames.spare();
        let n = chunk.min(spare.len()).min(rest.len());
        spare[..n].copy_from_slice(&rest[..n]);
        frames.filled(n);
        rest = &rest[n..];
        loop {
            match frames.next_frame() {
                Ok(Some(Frame::Wire(w))) => {
                    let _ = names_bound(&w, &peer, &me);
                    count += 1;
                }
                Ok(Some(Frame::Tick)) => count += 1,
                Ok(None) => break,
                Err(_) => return count,
            }
        }
    }
    count
}

/// Decodes `data` as one frame body; true when it is a frame.
pub fn frame_body(data: &[u8]) -> bool {
    frame::decode::<Frame>(data).is_ok()
}

/// Decodes `data` as one handshake message body; true when it is one.
pub fn handshake_message(data: &[u8]) -> bool {
    frame::decode::<Handshake>(data).is_ok()
}

/// Runs the acceptor's side of the handshake against a dialer that sends `data` and then
/// closes. True when the dialer passed (it cannot without the cookie).
pub async fn acceptor(data: &[u8]) -> bool {
    let (mut ours, mut theirs) = tokio::io::duplex(64 * 1024);
    let me = Identity::new("fuzz-acceptor@h", NodeRole::Server, 1);
    let feed = async {
        use tokio::io::AsyncWriteExt;
        let _ = theirs.write_all(data).await;
        let _ = theirs.shutdown().await;
        // Keep our end's writes flowing: read and drop what the acceptor answers.
        let mut sink = tokio::io::sink();
        let _ = tokio::io::copy(&mut theirs, &mut sink).await;
    };
    let judge = |_: &handshake::Hello| None;
    let accept = async {
        let accepted = handshake::accept_judged(&mut ours, &me, b"fuzz-cookie", &judge).await;
        // Closing our end ends the feeder's reading.
        drop(ours);
        accepted
    };
    let (_, accepted) = tokio::join!(feed, accept);
    accepted.is_ok()
}
