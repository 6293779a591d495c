//! Timers: send a message after a delay (Erlang's `erlang:send_after/3`), and cancel it.
//!
//! Each timer is a small tokio task that sleeps and then sends. A timer holds only a weak
//! handle on its node, so a pending timer never keeps a node alive. Dropping a
//! [`TimerRef`] does not cancel the timer, as in Erlang; [`cancel`] does.

use crate::message::Message;
use crate::node::Node;
use crate::pid::{Dest, Pid};
use crate::process::Process;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use tokio::task::AbortHandle;

const PENDING: u8 = 0;
const FIRED: u8 = 1;
const CANCELLED: u8 = 2;

/// A handle on a pending (or fired, or cancelled) timer. Cheap to clone.
#[derive(Clone)]
pub struct TimerRef {
    state: Arc<AtomicU8>,
    task: AbortHandle,
}

impl std::fmt::Debug for TimerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state.load(Ordering::Acquire) {
            PENDING => "pending",
            FIRED => "fired",
            _ => "cancelled",
        };
        write!(f, "TimerRef({state})")
    }
}

impl TimerRef {
    /// Cancels the timer; see [`cancel`].
    pub fn cancel(&self) -> bool {
        cancel(self)
    }

    /// Whether the timer has neither fired nor been cancelled yet.
    pub fn is_pending(&self) -> bool {
        self.state.load(Ordering::Acquire) == PENDING
    }
}

/// Sends `msg` to `dest` from `node` once `delay` has passed; the message has no sender.
/// Must be called inside a tokio runtime (every process runs in one).
pub fn send_after<M: Message>(
    node: &Node,
    delay: Duration,
    dest: impl Into<Dest>,
    msg: M,
) -> TimerRef {
    start(node, None, delay, dest.into(), msg)
}

/// Cancels a timer. True when it had not fired yet: then its message is never sent.
/// False when it already fired (or was already cancelled).
pub fn cancel(timer: &TimerRef) -> bool {
    let won = timer
        .state
        .compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
        .is_ok();
    if won {
        timer.task.abort();
    }
    won
}

fn start<M: Message>(
    node: &Node,
    from: Option<Pid>,
    delay: Duration,
    dest: Dest,
    msg: M,
) -> TimerRef {
    let state = Arc::new(AtomicU8::new(PENDING));
    let fired = state.clone();
    let weak = node.downgrade();
    let task = tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        // Whoever moves the state out of PENDING first wins: fire or cancel, never both.
        if fired
            .compare_exchange(PENDING, FIRED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            && let Some(node) = weak.upgrade()
        {
            node.send(from.as_ref(), dest, msg);
        }
    });
    TimerRef {
        state,
        task: task.abort_handle(),
    }
}

impl Process {
    /// Sends `msg` to `dest` after `delay`, with this process as the sender
    /// (`erlang:send_after(Delay, Dest, Msg)` from inside a process). Cancel with
    /// [`TimerRef::cancel`].
    pub fn send_after<M: Message>(
        &self,
        delay: Duration,
        dest: impl Into<Dest>,
        msg: M,
    ) -> TimerRef {
        start(
            self.node(),
            Some(self.pid().clone()),
            delay,
            dest.into(),
            msg,
        )
    }
}
