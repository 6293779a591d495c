//! A one-shot completion that works without any async runtime: the storage thread fills
//! it in; the caller either blocks on it ([`Completion::wait`]) or awaits it (it is a
//! `std::future::Future`, so tokio or any executor can await it).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::error::{Error, Result};

struct State<T> {
    result: Option<Result<T>>,
    waker: Option<Waker>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    done: Condvar,
}

/// The caller's side: the outcome of an append or snapshot, once the storage thread has
/// made it durable (or failed).
pub struct Completion<T> {
    shared: Arc<Shared<T>>,
}

/// The storage thread's side. Dropping it unfilled completes with [`Error::Stopped`].
pub(crate) struct Completer<T> {
    shared: Option<Arc<Shared<T>>>,
}

/// A linked completion and completer.
pub(crate) fn completion<T>() -> (Completer<T>, Completion<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            result: None,
            waker: None,
        }),
        done: Condvar::new(),
    });
    (
        Completer {
            shared: Some(Arc::clone(&shared)),
        },
        Completion { shared },
    )
}

impl<T> Completer<T> {
    pub(crate) fn complete(mut self, result: Result<T>) {
        self.fill(result);
    }

    fn fill(&mut self, result: Result<T>) {
        if let Some(shared) = self.shared.take() {
            let waker = {
                let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                state.result = Some(result);
                state.waker.take()
            };
            shared.done.notify_all();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        self.fill(Err(Error::Stopped));
    }
}

impl<T> Completion<T> {
    /// Blocks the calling thread until the outcome is known. Not for async tasks: await
    /// the completion there instead.
    pub fn wait(self) -> Result<T> {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(result) = state.result.take() {
                return result;
            }
            state = self
                .shared
                .done
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Like [`Completion::wait`], giving the completion back if `timeout` passes first.
    pub fn wait_timeout(self, timeout: Duration) -> std::result::Result<Result<T>, Self> {
        let state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let (mut state, _) = self
            .shared
            .done
            .wait_timeout_while(state, timeout, |state| state.result.is_none())
            .unwrap_or_else(|e| e.into_inner());
        match state.result.take() {
            Some(result) => Ok(result),
            None => {
                drop(state);
                Err(self)
            }
        }
    }

    /// True once the outcome is known.
    pub fn is_done(&self) -> bool {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .result
            .is_some()
    }
}

impl<T> Future for Completion<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.result.take() {
            Some(result) => Poll::Ready(result),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
