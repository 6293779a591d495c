//! Waiting for SIGINT or SIGTERM, the two ways a node or cluster is asked to stop. The
//! handlers are installed before a node says it is ready, so a signal sent right after
//! the ready line is never lost.

use std::io;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Installed handlers for SIGINT and SIGTERM.
pub struct ShutdownSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl ShutdownSignals {
    /// Installs the handlers (inside a tokio runtime).
    pub fn install() -> io::Result<ShutdownSignals> {
        Ok(ShutdownSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for either signal; returns its name.
    pub async fn wait(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}
