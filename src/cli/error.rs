//! What can go wrong in a command, each as one line for stderr, and the exit code it
//! gives: 2 for bad input, 1 for everything else.

use crate::cli::cookie::CookieError;
use std::io;

/// A command's failure.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or the input makes no sense.
    #[error("{0}")]
    BadInput(String),
    #[error(transparent)]
    Cookie(#[from] CookieError),
    #[error("cannot start node {name}: {reason}")]
    Start { name: String, reason: String },
    /// The operation or request got no answer in time (it may still take effect).
    #[error("{0}")]
    Timeout(String),
    /// No server could be reached, or none accepted our cookie.
    #[error("{0}")]
    Unreachable(String),
    /// The node refused a control request.
    #[error("refused by {node}: {reason}")]
    Refused { node: String, reason: String },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    /// A running node stopped on its own: its top supervisor ended, or its cluster
    /// refused it.
    #[error("node {node} stopped: {reason}")]
    Stopped { node: String, reason: String },
}

impl CliError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::BadInput(_) => 2,
            _ => 1,
        }
    }

    /// An I/O failure while doing `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> CliError {
        let what = what.into();
        move |source| CliError::Io { what, source }
    }
}
