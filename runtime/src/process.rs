//! The process handle: what a running process (or an attached caller) uses to send,
//! receive (with timeout, and selectively), link, monitor, trap exits and spawn.

use crate::clock::Instant;
use crate::message::{Envelope, Message};
use crate::node::{Node, NodeError, ProcShared};
use crate::pid::{Dest, Pid, Ref};
use crate::reason::ExitReason;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What a process body may return: `()` (exit `normal`) or an [`ExitReason`].
pub trait ExitValue: Send + 'static {
    fn into_reason(self) -> ExitReason;
}

impl ExitValue for () {
    fn into_reason(self) -> ExitReason {
        ExitReason::Normal
    }
}

impl ExitValue for ExitReason {
    fn into_reason(self) -> ExitReason {
        self
    }
}

/// Names the never type `!` on stable Rust, so that a process body that loops for ever
/// (its future's output is `!`) is accepted.
pub trait FnOutput {
    type Output;
}
impl<T> FnOutput for fn() -> T {
    type Output = T;
}
type Never = <fn() -> ! as FnOutput>::Output;

impl ExitValue for Never {
    fn into_reason(self) -> ExitReason {
        self
    }
}

/// A process's own handle. Owned by the process body (or by the caller, for attached ones).
pub struct Process {
    node: Node,
    pub(crate) shared: Arc<ProcShared>,
    /// Messages passed over by a selective receive, in arrival order.
    saved: VecDeque<Envelope>,
    pub(crate) attached: bool,
}

impl Process {
    pub(crate) fn new(node: Node, shared: Arc<ProcShared>) -> Self {
        Process {
            node,
            shared,
            saved: VecDeque::new(),
            attached: false,
        }
    }

    /// This process's pid (Erlang's `self()`).
    pub fn pid(&self) -> &Pid {
        &self.shared.pid
    }

    /// The node this process runs on.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Sends a message; see [`Node::send`].
    pub fn send<M: Message>(&self, to: impl Into<Dest>, msg: M) {
        self.node.send(Some(&self.shared.pid), to, msg)
    }

    /// Sends a message as control traffic (never dropped by faults).
    pub fn send_control<M: Message>(&self, to: impl Into<Dest>, msg: M) {
        self.node.send_control(Some(&self.shared.pid), to, msg)
    }

    /// Messages waiting in the mailbox.
    pub fn mailbox_len(&self) -> usize {
        self.shared.mailbox.len() + self.saved.len()
    }

    /// Keeps the count of set-aside messages visible to introspection.
    fn sync_saved(&self) {
        self.shared.saved.store(self.saved.len(), Ordering::Relaxed);
    }

    /// The next message, waiting as long as it takes.
    pub async fn recv(&mut self) -> Envelope {
        if let Some(e) = self.saved.pop_front() {
            self.sync_saved();
            return e;
        }
        self.shared.mailbox.pop().await
    }

    /// The next message, or `None` after `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Option<Envelope> {
        if let Some(e) = self.saved.pop_front() {
            self.sync_saved();
            return Some(e);
        }
        tokio::time::timeout(timeout, self.shared.mailbox.pop())
            .await
            .ok()
    }

    /// Selective receive: the first message (oldest first) that `f` accepts, turned into a
    /// `T`; the messages it gives back stay in the mailbox in their order. `None` after
    /// `timeout` (`None` timeout waits for ever).
    pub async fn receive<T>(
        &mut self,
        timeout: Option<Duration>,
        mut f: impl FnMut(Envelope) -> Result<T, Envelope>,
    ) -> Option<T> {
        // Each set-aside message is taken from the front and, when refused, put at the
        // back: one pass leaves them in their order, with no shifting in the middle.
        for refused in 0..self.saved.len() {
            let Some(env) = self.saved.pop_front() else {
                break;
            };
            match f(env) {
                Ok(t) => {
                    // Those refused went behind the unchecked ones: put them first again.
                    self.saved.rotate_right(refused);
                    self.sync_saved();
                    return Some(t);
                }
                Err(env) => self.saved.push_back(env),
            }
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let env = match deadline {
                Some(d) => match tokio::time::timeout_at(d, self.shared.mailbox.pop()).await {
                    Ok(e) => e,
                    Err(_) => return None,
                },
                None => self.shared.mailbox.pop().await,
            };
            match f(env) {
                Ok(t) => return Some(t),
                Err(env) => {
                    self.saved.push_back(env);
                    self.sync_saved();
                }
            }
        }
    }

    /// Selective receive of the first `M` for which `pred` holds.
    pub async fn receive_match<M: Message>(
        &mut self,
        timeout: Option<Duration>,
        mut pred: impl FnMut(&M) -> bool,
    ) -> Option<M> {
        self.receive(timeout, |env| {
            let from = env.from.clone();
            match env.downcast::<M>() {
                Ok(m) if pred(&m) => Ok(m),
                Ok(m) => Err(Envelope::local(from, m)),
                Err(env) => Err(env),
            }
        })
        .await
    }

    /// Waits for the next `M`, leaving other messages in the mailbox.
    pub async fn receive_type<M: Message>(&mut self, timeout: Option<Duration>) -> Option<M> {
        self.receive_match::<M>(timeout, |_| true).await
    }

    /// Turns exit signals from links into [`crate::Exit`] messages (or back).
    pub fn trap_exit(&self, on: bool) {
        self.node.set_trap_exit(&self.shared.pid, on);
    }

    /// Links this process with `other`: when either ends abnormally the other gets the signal.
    pub fn link(&self, other: &Pid) {
        self.node.link(&self.shared.pid, other);
    }

    pub fn unlink(&self, other: &Pid) {
        self.node.unlink(&self.shared.pid, other);
    }

    /// Monitors a process (by pid, local name, or name on a node): a [`crate::Down`]
    /// arrives when it ends, does not exist, or its node is lost.
    pub fn monitor(&self, target: impl Into<Dest>) -> Ref {
        self.node.monitor(&self.shared.pid, target.into())
    }

    /// Removes a monitor and flushes a `Down` for it already in the mailbox.
    pub fn demonitor(&mut self, mref: Ref) {
        self.node.demonitor(&self.shared.pid, mref);
        let is_that_down = |env: &Envelope| {
            env.peek_local::<crate::Down>()
                .is_some_and(|d| d.mref == mref)
        };
        self.saved.retain(|env| !is_that_down(env));
        while let Some(env) = self.shared.mailbox.try_pop() {
            if !is_that_down(&env) {
                self.saved.push_back(env);
            }
        }
        self.sync_saved();
    }

    /// Spawns an unlinked process on this node.
    pub fn spawn<F, Fut>(&self, f: F) -> Pid
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: ExitValue,
    {
        self.node.spawn(f)
    }

    /// Spawns a process linked to this one (atomically: a crash at start is not missed).
    pub fn spawn_link<F, Fut>(&self, f: F) -> Pid
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: ExitValue,
    {
        self.node.spawn_opts(Some(&self.shared.pid), None, f)
    }

    /// Spawns a process monitored by this one.
    pub fn spawn_monitor<F, Fut>(&self, f: F) -> (Pid, Ref)
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: ExitValue,
    {
        let mref = self.node.make_ref();
        let pid = self
            .node
            .spawn_opts(None, Some((&self.shared.pid, mref)), f);
        (pid, mref)
    }

    /// Sends an exit signal to `to` (`exit(Pid, Reason)`); `Kill` cannot be trapped.
    pub fn exit(&self, to: &Pid, reason: ExitReason) {
        self.node.exit(Some(&self.shared.pid), to, reason);
    }

    /// Registers this process under `name` on its node.
    pub fn register(&self, name: &str) -> Result<(), NodeError> {
        self.node.register(name, &self.shared.pid)
    }

    /// A fresh unique reference.
    pub fn make_ref(&self) -> Ref {
        self.node.make_ref()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.attached {
            self.node.process_exited(&self.shared, ExitReason::Normal);
        }
    }
}
