//! A process's mailbox: a queue that any thread pushes to and one process pops from,
//! waking the process when it waits. Smaller and cheaper than a channel (no per-process
//! block allocation, one lock per push and per pop, the waker kept rather than cloned on
//! every message), and its length is exact for introspection.

use crate::message::Envelope;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Poll, Waker};

pub(crate) struct Mailbox {
    inner: Mutex<Inner>,
}

struct Inner {
    queue: VecDeque<Envelope>,
    /// The owner's waker, kept between waits.
    waker: Option<Waker>,
    /// The owner is waiting: the next push wakes it.
    waiting: bool,
    closed: bool,
}

impl Mailbox {
    pub(crate) fn new() -> Self {
        Mailbox {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                waker: None,
                waiting: false,
                closed: false,
            }),
        }
    }

    /// Appends a message; false when the owner has exited.
    pub(crate) fn push(&self, env: Envelope) -> bool {
        let mut inner = self.inner.lock();
        if inner.closed {
            return false;
        }
        inner.queue.push_back(env);
        if inner.waiting {
            inner.waiting = false;
            if let Some(w) = &inner.waker {
                w.wake_by_ref();
            }
        }
        true
    }

    /// Closes the mailbox: later pushes are refused, queued messages are dropped.
    pub(crate) fn close(&self) {
        let dropped = {
            let mut inner = self.inner.lock();
            inner.closed = true;
            inner.waker = None;
            std::mem::take(&mut inner.queue)
        };
        drop(dropped);
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.lock().queue.len()
    }

    pub(crate) fn try_pop(&self) -> Option<Envelope> {
        self.inner.lock().queue.pop_front()
    }

    /// Waits for the next message; never resolves once the mailbox is closed and empty.
    pub(crate) async fn pop(&self) -> Envelope {
        poll_fn(|cx| {
            let mut inner = self.inner.lock();
            if let Some(e) = inner.queue.pop_front() {
                inner.waiting = false;
                return Poll::Ready(e);
            }
            if !inner.closed {
                match &inner.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => inner.waker = Some(cx.waker().clone()),
                }
                inner.waiting = true;
            }
            Poll::Pending
        })
        .await
    }
}
