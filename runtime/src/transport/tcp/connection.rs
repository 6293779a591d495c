//! One established connection to a peer node: the socket, the outgoing buffer and the two
//! tasks that serve it.
//!
//! Writing: a sender writes its frame straight to the socket when nothing is waiting
//! (one non-blocking `write`, no hop), and otherwise appends it to the outgoing buffer;
//! the writer task flushes that buffer whenever the socket would block. Frames keep the
//! order in which senders reach the buffer's lock. Sending never blocks.
//!
//! Reading: the reader task reads the socket directly and hands each frame to the node
//! (`Node::handle_wire` is synchronous and cheap), so the woken process runs next on the
//! same worker thread. When the socket is empty it keeps polling it for a short spin
//! window before it sleeps on readiness, so a ping-pong does not pay a thread wake-up per
//! message (see [`Connection::run_reader`]).

use super::binding::names_bound;
use super::frame::{Frame, FrameBuffer, FrameError};
use super::tls::Session;
use crate::faults::NodeRole;
use crate::node::{Node, WeakNode};
use crate::pid::NodeName;
use parking_lot::Mutex;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Frames not yet written, and whether the writer task owns the socket's write side.
struct Outbox {
    pending: Vec<u8>,
    writer_busy: bool,
    closed: bool,
}

/// Who the peer is, as its handshake said.
#[derive(Clone, Debug)]
pub(crate) struct PeerInfo {
    pub(crate) name: NodeName,
    pub(crate) role: NodeRole,
    pub(crate) incarnation: u64,
    /// The token the peer showed: a later connection claiming the same incarnation
    /// must show it again.
    pub(crate) token: [u8; 32],
    pub(crate) addr: SocketAddr,
    /// Whether this node opened the connection.
    pub(crate) dialed_by_me: bool,
}

/// Why a reader stopped.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The peer closed the connection (or this node closed it).
    Eof,
    Io(io::Error),
    /// No byte arrived for the silence timeout.
    Silent(Duration),
    /// A frame that could not be trusted: malformed or oversized.
    BadFrame(FrameError),
    /// The node was dropped.
    NodeGone,
    /// The outgoing buffer went over its limit: the peer does not read.
    Overflow,
}

/// Buffers larger than this are not kept for reuse once written: memory after a burst of
/// big frames goes back to what small ones need.
const KEEP_SPARE: usize = 1024 * 1024;

/// Timings the reader and writer follow.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    pub(crate) tick_interval: Duration,
    pub(crate) silence_timeout: Duration,
    pub(crate) spin: Duration,
}

/// One live connection, shared by the senders, its reader and writer tasks, and the
/// transport's table.
pub(crate) struct Connection {
    pub(crate) id: u64,
    pub(crate) peer: PeerInfo,
    /// The non-blocking socket. Reads and writes go to it directly, from any thread.
    /// It is registered with tokio's reactor only while a task sleeps on it (see
    /// [`Connection::readiness`]), so that arriving bytes do not wake an idle worker
    /// thread for nothing while the reader spins.
    raw: std::net::TcpStream,
    out: Mutex<Outbox>,
    wake_writer: Notify,
    sent_recently: AtomicBool,
    /// Set when the transport dropped this connection for a newer one: its end is not a
    /// loss of the peer.
    pub(crate) replaced: AtomicBool,
    /// The most bytes that may wait in the outgoing buffer.
    max_outbox: usize,
    /// Set when the connection was closed because the outgoing buffer was full.
    pub(crate) overflowed: AtomicBool,
    /// The TLS session, when the connection runs under TLS: every byte written is sealed
    /// by it (under the outbox lock, so in order) and every byte read opened.
    tls: Option<Session>,
}

impl Connection {
    /// Wraps an established socket. `initial` bytes (a handshake answer, frames queued
    /// while connecting) are written first, by the writer task.
    pub(crate) fn new(
        id: u64,
        peer: PeerInfo,
        socket: std::net::TcpStream,
        initial: Vec<u8>,
        max_outbox: usize,
        tls: Option<rustls::Connection>,
    ) -> io::Result<Connection> {
        socket.set_nonblocking(true)?;
        let tls = tls.map(Session::new);
        let initial = match &tls {
            Some(t) if !initial.is_empty() => t.seal(&initial)?,
            _ => initial,
        };
        let busy = !initial.is_empty();
        let conn = Connection {
            id,
            peer,
            raw: socket,
            out: Mutex::new(Outbox {
                pending: initial,
                writer_busy: busy,
                closed: false,
            }),
            wake_writer: Notify::new(),
            sent_recently: AtomicBool::new(busy),
            replaced: AtomicBool::new(false),
            max_outbox,
            overflowed: AtomicBool::new(false),
            tls,
        };
        if busy {
            conn.wake_writer.notify_one();
        }
        Ok(conn)
    }

    /// Appends bytes to be written before anything sent later (used while the
    /// connection is not published yet).
    pub(crate) fn queue(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut out = self.out.lock();
        match &self.tls {
            Some(t) => match t.seal(bytes) {
                Ok(sealed) => out.pending.extend_from_slice(&sealed),
                Err(e) => {
                    log::debug!("sealing for {} failed: {e}", self.peer.name);
                    drop(out);
                    self.close();
                    return;
                }
            },
            None => out.pending.extend_from_slice(bytes),
        }
        if !out.writer_busy {
            out.writer_busy = true;
            drop(out);
            self.wake_writer.notify_one();
        }
    }

    /// Sends encoded frames: straight to the socket when nothing is waiting, else after
    /// what is waiting. Never blocks. False when the connection is closed (bytes lost).
    pub(crate) fn send_bytes(&self, bytes: &[u8]) -> bool {
        let mut out = self.out.lock();
        if out.closed {
            return false;
        }
        let sealed;
        let bytes = match &self.tls {
            Some(t) => match t.seal(bytes) {
                Ok(s) => {
                    sealed = s;
                    &sealed[..]
                }
                Err(e) => {
                    log::debug!("sealing for {} failed: {e}", self.peer.name);
                    drop(out);
                    self.close();
                    return false;
                }
            },
            None => bytes,
        };
        self.sent_recently.store(true, Ordering::Relaxed);
        if out.writer_busy {
            if out.pending.len() + bytes.len() > self.max_outbox {
                drop(out);
                self.overflow();
                return false;
            }
            out.pending.extend_from_slice(bytes);
            return true;
        }
        let mut written = 0;
        while written < bytes.len() {
            match (&self.raw).write(&bytes[written..]) {
                Ok(0) => {
                    drop(out);
                    self.close();
                    return false;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    log::debug!("write to {} failed: {e}", self.peer.name);
                    drop(out);
                    self.close();
                    return false;
                }
            }
        }
        if written < bytes.len() {
            out.pending.extend_from_slice(&bytes[written..]);
            out.writer_busy = true;
            drop(out);
            self.wake_writer.notify_one();
        }
        true
    }

    /// Closes the connection because the peer does not read what is sent to it.
    fn overflow(&self) {
        self.overflowed.store(true, Ordering::Relaxed);
        log::debug!(
            "outgoing buffer to {} over {} bytes: closing",
            self.peer.name,
            self.max_outbox
        );
        self.close();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.out.lock().closed
    }

    /// Closes the connection: later sends are refused, the socket is shut down (the
    /// reader then sees the end), waiting bytes are dropped.
    pub(crate) fn close(&self) {
        {
            let mut out = self.out.lock();
            if out.closed {
                return;
            }
            out.closed = true;
            out.pending = Vec::new();
        }
        let _ = self.raw.shutdown(Shutdown::Both);
        self.wake_writer.notify_one();
    }

    /// Writes all of `data` (sealed under TLS), waiting for the socket when it is full.
    /// Only for a connection no writer task serves.
    pub(crate) async fn write_sealed(&self, data: &[u8]) -> io::Result<()> {
        match &self.tls {
            Some(t) => {
                let sealed = t.seal(data)?;
                self.write_all(&sealed).await
            }
            None => self.write_all(data).await,
        }
    }

    /// Writes all of `data` as it is, waiting for the socket when it is full.
    pub(crate) async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match (&self.raw).write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readiness()?.writable().await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The writer task: flushes what senders could not write at once, and sends a tick
    /// when nothing else was sent for a tick interval.
    pub(crate) async fn run_writer(&self, tick: Duration, tick_frame: &[u8]) {
        let mut spare = Vec::new();
        loop {
            let woken = tokio::time::timeout(tick, self.wake_writer.notified())
                .await
                .is_ok();
            if self.is_closed() {
                return;
            }
            if !woken {
                if !self.sent_recently.swap(false, Ordering::Relaxed) {
                    self.send_bytes(tick_frame);
                }
                continue;
            }
            loop {
                let mut chunk = {
                    let mut out = self.out.lock();
                    if out.closed {
                        return;
                    }
                    if out.pending.is_empty() {
                        out.writer_busy = false;
                        break;
                    }
                    std::mem::replace(&mut out.pending, std::mem::take(&mut spare))
                };
                if let Err(e) = self.write_all(&chunk).await {
                    log::debug!("write to {} failed: {e}", self.peer.name);
                    self.close();
                    return;
                }
                chunk.clear();
                if chunk.capacity() <= KEEP_SPARE {
                    spare = chunk;
                }
            }
        }
    }

    /// The reader task: delivers every frame to the node until the connection ends, and
    /// says why it ended.
    ///
    /// After delivering, it yields once so that the processes it woke run on this worker
    /// thread at once. Then, with nothing of its own left to run, it polls the socket in
    /// place for the spin window (giving the core away between polls) before it sleeps.
    /// Spinning inside one poll, rather than yielding to tokio between polls, keeps the
    /// scheduler from waking an idle worker thread on every turn.
    /// Frames naming nodes other than the peer and this node (`me`) are dropped and
    /// counted in `forged`.
    pub(crate) async fn run_reader(
        &self,
        node: &WeakNode,
        me: &NodeName,
        max_frame: usize,
        t: Timing,
        forged: &AtomicU64,
    ) -> Ended {
        let mut frames = FrameBuffer::new(max_frame);
        // Under TLS, socket bytes are read here and opened into `frames`.
        let mut cipher = vec![0u8; if self.tls.is_some() { 64 * 1024 } else { 0 }];
        if let Some(node) = node.upgrade()
            && let Some(t) = &self.tls
        {
            let opened = t
                .open(&[], &mut |plain| feed(&mut frames, plain))
                .and_then(|_| self.deliver(&node, me, &mut frames, forged));
            if let Err(e) = opened {
                return Ended::BadFrame(e);
            }
        }
        let runtime = tokio::runtime::Handle::current().metrics();
        let mut last_byte = Instant::now();
        // Whether the tasks this reader woke have had their turn.
        let mut yielded = true;
        loop {
            let spin_until = yielded.then(|| Instant::now() + t.spin);
            let buf = if self.tls.is_some() {
                &mut cipher[..]
            } else {
                frames.spare()
            };
            match self.read_some(buf, spin_until, &runtime) {
                Ok(Some(0)) => return Ended::Eof,
                Ok(Some(n)) => {
                    let mut tls_closed = false;
                    match &self.tls {
                        Some(t) => match t.open(&cipher[..n], &mut |p| feed(&mut frames, p)) {
                            Ok(open) => tls_closed = !open,
                            Err(e) => return Ended::BadFrame(e),
                        },
                        None => frames.filled(n),
                    }
                    last_byte = Instant::now();
                    // Upgraded on every read, ticks included, so that a reader whose
                    // node was dropped stops even if only ticks arrive.
                    let Some(node) = node.upgrade() else {
                        return Ended::NodeGone;
                    };
                    if let Err(e) = self.deliver(&node, me, &mut frames, forged) {
                        return Ended::BadFrame(e);
                    }
                    drop(node);
                    if tls_closed {
                        return Ended::Eof;
                    }
                    yielded = false;
                    // Let other tasks run when a peer keeps the socket full.
                    tokio::task::consume_budget().await;
                }
                Ok(None) if !yielded => {
                    yielded = true;
                    tokio::task::yield_now().await;
                }
                Ok(None) => match self.wait_readable(last_byte + t.silence_timeout).await {
                    Ok(true) => {}
                    Ok(false) => return Ended::Silent(t.silence_timeout),
                    Err(e) => return Ended::Io(e),
                },
                Err(e) => return Ended::Io(e),
            }
        }
    }

    /// Reads what the socket holds: `Some(n)` bytes (0 at the end of stream), or `None`
    /// when it is empty, after polling it until `spin_until` if given (and while no task
    /// waits in the runtime's global queue).
    fn read_some(
        &self,
        buf: &mut [u8],
        spin_until: Option<Instant>,
        runtime: &tokio::runtime::RuntimeMetrics,
    ) -> io::Result<Option<usize>> {
        loop {
            match (&self.raw).read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => match spin_until {
                    // Another thread on this core (the peer, on a busy machine) may
                    // run meanwhile.
                    Some(until) if Instant::now() < until && runtime.global_queue_depth() == 0 => {
                        std::thread::yield_now()
                    }
                    _ => return Ok(None),
                },
                Err(e) => return Err(e),
            }
        }
    }

    /// Sleeps until the socket may have bytes or the end (true) or the deadline passes
    /// (false).
    async fn wait_readable(&self, deadline: Instant) -> io::Result<bool> {
        let registered = self.readiness()?;
        match tokio::time::timeout_at(deadline, registered.readable()).await {
            Ok(ready) => ready.map(|()| true),
            Err(_) => Ok(false),
        }
    }

    /// A registration of the socket with tokio's reactor, to sleep until it is ready; it
    /// is dropped (deregistered) once awake. Registering reports the socket's current
    /// state, so bytes that came between the last read and this call are not missed.
    fn readiness(&self) -> io::Result<tokio::net::TcpStream> {
        tokio::net::TcpStream::from_std(self.raw.try_clone()?)
    }

    /// Hands every complete frame to the node, but for forged ones.
    fn deliver(
        &self,
        node: &Node,
        me: &NodeName,
        frames: &mut FrameBuffer,
        forged: &AtomicU64,
    ) -> Result<(), FrameError> {
        while let Some(frame) = frames.next_frame()? {
            if let Frame::Wire(wire) = frame {
                if names_bound(&wire, &self.peer.name, me) {
                    node.handle_wire(&self.peer.name, self.peer.role, wire);
                } else {
                    forged.fetch_add(1, Ordering::Relaxed);
                    log::debug!("{me}: forged frame from {} dropped", self.peer.name);
                }
            }
        }
        Ok(())
    }
}

/// Copies opened bytes into the frame buffer.
fn feed(frames: &mut FrameBuffer, mut plain: &[u8]) {
    while !plain.is_empty() {
        let spare = frames.spare();
        let n = spare.len().min(plain.len());
        spare[..n].copy_from_slice(&plain[..n]);
        frames.filled(n);
        plain = &plain[n..];
    }
}
