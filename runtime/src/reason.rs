//! Exit reasons, and the system messages that carry them: `Exit` (links) and `Down` (monitors).

use crate::pid::{Pid, Ref};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::fmt;

/// Why a process ended, or the reason carried by an exit signal.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Debug)]
pub enum ExitReason {
    /// The process returned: linked processes are not affected.
    Normal,
    /// Orderly shutdown asked by a supervisor.
    Shutdown,
    /// The untrappable signal `kill`; the victim ends with `Killed`.
    Kill,
    /// The process was killed by `Kill`.
    Killed,
    /// The node of the other end was lost.
    NoConnection,
    /// The process did not exist (link or monitor to a dead pid).
    NoProc,
    /// The process panicked; the panic's message.
    Panic(String),
    /// Any other reason, as text.
    Custom(String),
}

impl ExitReason {
    /// A custom reason from any text.
    pub fn custom(s: impl Into<String>) -> Self {
        ExitReason::Custom(s.into())
    }

    /// Whether this is `Normal`: the one reason a link does not pass on.
    pub fn is_normal(&self) -> bool {
        matches!(self, ExitReason::Normal)
    }

    /// True for `Normal` and `Shutdown`: the reasons a transient child is not restarted for.
    pub fn is_clean(&self) -> bool {
        matches!(self, ExitReason::Normal | ExitReason::Shutdown)
    }

    /// The reason for a caught panic: its message (`panic` when it has none as text).
    pub(crate) fn from_panic(payload: &(dyn Any + Send)) -> Self {
        let text = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "panic".to_string()
        };
        ExitReason::Panic(text)
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Shutdown => f.write_str("shutdown"),
            ExitReason::Kill => f.write_str("kill"),
            ExitReason::Killed => f.write_str("killed"),
            ExitReason::NoConnection => f.write_str("noconnection"),
            ExitReason::NoProc => f.write_str("noproc"),
            ExitReason::Panic(m) => write!(f, "panic: {m}"),
            ExitReason::Custom(m) => f.write_str(m),
        }
    }
}

/// An exit signal turned into a message, received by a process that traps exits.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Exit {
    pub from: Pid,
    pub reason: ExitReason,
}

/// The message a monitor delivers when the watched process ends (or cannot be reached).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct Down {
    pub mref: Ref,
    pub pid: Pid,
    pub reason: ExitReason,
}
