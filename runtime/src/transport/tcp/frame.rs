//! Framing on a TCP connection: each frame is a `u32` big-endian length followed by that
//! many bytes of postcard. The length is checked against the maximum before any buffer is
//! grown for it, so a hostile prefix cannot make a node allocate. After the handshake a
//! frame is a [`Frame`]: a [`Wire`] for the node, or a heartbeat tick for the transport.

use crate::transport::Wire;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The default largest frame body a node accepts: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;

/// What one frame can hold once a connection is established (the decoding side).
#[derive(Debug, Deserialize, PartialEq)]
pub enum Frame {
    /// A frame for the node.
    Wire(Wire),
    /// A heartbeat: says the peer is alive when it has nothing else to send.
    Tick,
}

/// The encoding side of [`Frame`], borrowing the wire frame instead of owning it. Both
/// enums have the same variants in the same order, so postcard encodes them alike.
#[derive(Serialize)]
enum FrameRef<'a> {
    Wire(&'a Wire),
    Tick,
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is over the maximum of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(#[from] postcard::Error),
    #[error("malformed frame: {0} bytes left over after the frame")]
    TrailingBytes(usize),
    #[error("connection closed")]
    Closed,
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// Encodes any message as one frame: length prefix and postcard body.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut bytes = postcard::to_extend(msg, vec![0u8; HEADER_LEN])?;
    let len = bytes.len() - HEADER_LEN;
    let prefix = u32::try_from(len).map_err(|_| FrameError::TooLarge {
        len,
        max: u32::MAX as usize,
    })?;
    bytes[..HEADER_LEN].copy_from_slice(&prefix.to_be_bytes());
    Ok(bytes)
}

/// Encodes a wire frame for a peer.
pub fn encode_wire(wire: &Wire) -> Result<Vec<u8>, FrameError> {
    encode(&FrameRef::Wire(wire))
}

/// The encoded heartbeat tick.
pub fn tick_frame() -> Vec<u8> {
    // A unit variant always encodes; the fallback is the same bytes written by hand.
    encode(&FrameRef::Tick).unwrap_or_else(|_| vec![0, 0, 0, 1, 1])
}

/// Decodes one frame body; bytes left over make it malformed.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    let (msg, rest) = postcard::take_from_bytes::<T>(body)?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes(rest.len()));
    }
    Ok(msg)
}

/// The body length announced by the prefix at the start of `bytes`, once the whole
/// prefix is there.
pub(crate) fn announced_len(bytes: &[u8]) -> Option<usize> {
    let prefix: [u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
    Some(u32::from_be_bytes(prefix) as usize)
}

/// Reads one length-prefixed message from a stream (used by the handshake).
pub async fn read_message<T: DeserializeOwned, S: AsyncRead + Unpin>(
    stream: &mut S,
    max: usize,
) -> Result<T, FrameError> {
    let mut prefix = [0u8; HEADER_LEN];
    match stream.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(FrameError::Io(e)),
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut body = vec![0u8; len];
    match stream.read_exact(&mut body).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(FrameError::Io(e)),
    }
    decode(&body)
}

/// Writes one message as a frame (used by the handshake).
pub async fn write_message<T: Serialize, S: AsyncWrite + Unpin>(
    stream: &mut S,
    msg: &T,
) -> Result<(), FrameError> {
    let bytes = encode(msg)?;
    stream.write_all(&bytes).await?;
    stream.flush().await?;
    Ok(())
}

/// Bytes read from a connection, cut into frames. Grows only for a frame whose length
/// passed the check, and shrinks back once a large frame has been consumed.
pub(crate) struct FrameBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Total size (prefix included) of the frame being received, when it is known and
    /// not complete yet.
    want: usize,
    max: usize,
}

/// The size a reader's buffer starts at and returns to.
const BUFFER_SIZE: usize = 64 * 1024;
/// Space kept free for each read.
const MIN_READ: usize = 16 * 1024;

impl FrameBuffer {
    pub(crate) fn new(max: usize) -> Self {
        FrameBuffer {
            buf: vec![0u8; BUFFER_SIZE],
            start: 0,
            end: 0,
            want: 0,
            max,
        }
    }

    /// Free space to read into, made large enough for the frame being received.
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > BUFFER_SIZE && self.want == 0 {
                self.buf = vec![0u8; BUFFER_SIZE];
            }
        }
        let pending = self.end - self.start;
        let room = MIN_READ.max(self.want.saturating_sub(pending));
        if self.buf.len() - self.end < room {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.start = 0;
                self.end = pending;
            }
            if self.buf.len() - self.end < room {
                self.buf.resize(self.end + room, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// Records that `n` bytes were read into [`spare`](Self::spare).
    pub(crate) fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// The next complete frame, if one has arrived. An oversized length or a body that
    /// does not decode is an error: the connection cannot be trusted after it.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let pending = self.end - self.start;
        let Some(len) = announced_len(&self.buf[self.start..self.end]) else {
            return Ok(None);
        };
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        let total = HEADER_LEN + len;
        if pending < total {
            self.want = total;
            return Ok(None);
        }
        self.want = 0;
        let body = &self.buf[self.start + HEADER_LEN..self.start + total];
        self.start += total;
        decode(body).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pid::{Dest, NodeName};

    fn msg(n: u8) -> Wire {
        Wire::Msg {
            from: None,
            to: Dest::Remote("x".into(), NodeName::new("b@h")),
            tag: 7,
            body: vec![n; n as usize],
            control: false,
        }
    }

    fn feed(fb: &mut FrameBuffer, mut bytes: &[u8], chunk: usize) -> Vec<Frame> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let spare = fb.spare();
            let n = chunk.min(spare.len()).min(bytes.len());
            spare[..n].copy_from_slice(&bytes[..n]);
            fb.filled(n);
            bytes = &bytes[n..];
            while let Some(f) = fb.next_frame().expect("well-formed frames") {
                out.push(f);
            }
        }
        out
    }

    #[test]
    fn frames_survive_any_cut() {
        let mut stream = Vec::new();
        for n in 0..50u8 {
            stream.extend(encode_wire(&msg(n)).expect("encodes"));
            stream.extend(tick_frame());
        }
        for chunk in [1, 3, 7, 100, 100_000] {
            let mut fb = FrameBuffer::new(DEFAULT_MAX_FRAME);
            let frames = feed(&mut fb, &stream, chunk);
            assert_eq!(frames.len(), 100, "chunk {chunk}");
            for (i, f) in frames.iter().enumerate() {
                if i % 2 == 0 {
                    assert_eq!(f, &Frame::Wire(msg((i / 2) as u8)), "chunk {chunk}");
                } else {
                    assert_eq!(f, &Frame::Tick);
                }
            }
        }
    }

    #[test]
    fn large_frame_grows_then_shrinks() {
        let big = Wire::Msg {
            from: None,
            to: Dest::Name("x".into()),
            tag: 1,
            body: vec![9; 300_000],
            control: true,
        };
        let bytes = encode_wire(&big).expect("encodes");
        let mut fb = FrameBuffer::new(DEFAULT_MAX_FRAME);
        let frames = feed(&mut fb, &bytes, 50_000);
        assert_eq!(frames, vec![Frame::Wire(big)]);
        fb.spare();
        assert_eq!(fb.buf.len(), BUFFER_SIZE);
    }

    #[test]
    fn oversized_prefix_is_refused_before_allocating() {
        let mut fb = FrameBuffer::new(1000);
        let spare = fb.spare();
        spare[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        fb.filled(4);
        match fb.next_frame() {
            Err(FrameError::TooLarge { len, max }) => {
                assert_eq!((len, max), (u32::MAX as usize, 1000));
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert_eq!(fb.buf.len(), BUFFER_SIZE);
    }

    #[test]
    fn garbage_and_trailing_bytes_are_malformed() {
        let mut fb = FrameBuffer::new(1000);
        let spare = fb.spare();
        spare[..7].copy_from_slice(&[0, 0, 0, 3, 0xff, 0xff, 0xff]);
        fb.filled(7);
        assert!(matches!(fb.next_frame(), Err(FrameError::Malformed(_))));

        let mut bytes = tick_frame();
        bytes[3] += 1;
        bytes.push(0);
        let mut fb = FrameBuffer::new(1000);
        let spare = fb.spare();
        spare[..bytes.len()].copy_from_slice(&bytes);
        fb.filled(bytes.len());
        assert!(matches!(fb.next_frame(), Err(FrameError::TrailingBytes(1))));
    }
}
