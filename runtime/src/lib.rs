//! An OTP-like process runtime on tokio.
//!
//! Lightweight processes with mailboxes and selective receive; links, exit signals and
//! `trap_exit`; monitors; a per-node registry; supervisors and a gen_server behaviour;
//! timers; and nodes that talk either in memory (several nodes in one OS process) or over
//! TCP with a cookie checked by HMAC challenge-response. Faults (deaf, unreliable, allow)
//! can be set on a node at run time.

pub mod clock;
pub mod faults;
pub mod gen_server;
mod mailbox;
pub mod message;
pub mod node;
pub mod pid;
pub mod process;
pub mod reason;
pub mod supervisor;
pub mod timer;
pub mod transport;

pub use faults::{FaultCounts, FaultState, LossModel, NodeRole};
pub use gen_server::{CallError, CallResult, Flow, GenServer, ReplyTo, StartError};
pub use message::{Envelope, Message};
pub use node::{Node, NodeError, NodeStats, ProcessInfo, WeakNode};
pub use pid::{Dest, NodeName, Pid, Ref};
pub use process::{ExitValue, Process};
pub use reason::{Down, Exit, ExitReason};
pub use supervisor::{ChildSpec, Restart, Shutdown, Strategy, SupervisorSpec};
pub use timer::TimerRef;
