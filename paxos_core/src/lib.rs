//! The pure Paxos protocol core: one [`Peer`] per node, inputs in, one batch of effects
//! out, and the three state machines it drives.
//!
//! Nothing here does I/O, reads a clock, spawns a thread or draws a random number, and
//! the crate depends on serde and log only, so the compiler keeps it that way. A driver
//! (the node's processes in `paxos_app`, or a test's simulated network) feeds the peer
//! ([`Peer::step`], [`Peer::tick`], [`Peer::propose`], [`Peer::done`]), takes its
//! [`Ready`] batch and applies it in order: persist the [`Record`]s, send the messages,
//! hand the decisions to the application. This is the style of tikv/raft-rs `RawNode`:
//! the protocol is easy to test because the driver owns every effect, and the code the
//! simulation tortures is the code that runs.
//!
//! # Instances, peers and ballots
//! Every instance ([`Seq`], 1-based) is an independent run of single-decree Paxos. Peers
//! are numbered `0..peers` ([`PeerId`]); every peer runs one [`Proposer`], one acceptor
//! (an [`AcceptorState`]) and one [`LearnerState`]. A [`Ballot`] is `(round, peer)`,
//! ordered by round then peer, so two proposers never share one; [`Ballot::ZERO`] is below
//! every real ballot.
//!
//! # The messages
//! | body | from → to | meaning |
//! |---|---|---|
//! | `Prepare{seq, ballot}` | proposer → every acceptor | phase 1a: promise to ignore ballots below `ballot` |
//! | `Promise{seq, ballot, accepted}` | acceptor → proposer | phase 1b: promised; `accepted` is the highest `(ballot, value)` it accepted, if any |
//! | `Accept{seq, ballot, value}` | proposer → every acceptor | phase 2a: accept `value` at `ballot` |
//! | `Accepted{seq, ballot}` | acceptor → proposer | phase 2b: accepted |
//! | `Reject{seq, ballot, promised}` | acceptor → proposer | refused: it promised the higher `promised`, so the proposer can jump its round |
//! | `Decided{seq, value}` | proposer → every learner; acceptor → proposer or learner | the value is chosen |
//! | `Query{seq}` | learner → other acceptors | "I missed `seq`": answered with `Decided` by an acceptor whose peer knows it |
//! | `PrepareFrom{from, ballot}` | leasing proposer → every acceptor | phase 1a for every instance `>= from` at once (Multi-Paxos) |
//! | `PromiseFrom{from, ballot, accepted}` | acceptor → proposer | phase 1b for all of them: every `(seq, ballot, value)` it accepted at or above `from` |
//!
//! | `Forgotten{seq}` | acceptor → a learner behind its floor | "every peer is done with `seq`": the stamped `min` lets it forget too |
//! | `Advert{seq}` | peer → the other learners, three times, 300 ms apart, after its `max` rose to `seq` | nothing but the stamp: a peer that missed every message of the last instance learns it exists while the cluster is idle, and its catch-up asks |
//!
//! Each crosses the network as a [`Message`]: the body, the sender's [`PeerId`], the
//! sender's `done` watermark (the highest instance its application called done on, 0 if
//! never), the highest instance the sender has seen (so a peer that was cut off learns at
//! once how far the others went) and the sender's `min`. The machines return [`Outgoing`]
//! bodies addressed to a [`Target`] (one peer's acceptor / proposer / learner, or that role
//! on every peer, the sender included); the [`Peer`] serves its own machines in place and
//! stamps the rest ([`Outgoing::stamp`]) with its id and its learner's
//! [`LearnerState::local_done`], [`LearnerState::max`] and [`LearnerState::min`].
//!
//! An acceptor that already knows the decision (the peer passes it the learner's value)
//! answers a `Prepare` or `Accept` with `Decided` instead; the proposer stops and hands the
//! value to its own learner. That is one way a peer that missed instances catches up: its
//! application starts them again and is told the outcome at once. The other needs no
//! start: the learner lists its holes ([`LearnerState::undecided`]) and asks the other
//! acceptors with `Query`; those whose peer knows the value answer `Decided`.
//!
//! Uncontended agreement costs one `Prepare`, one `Accept` and one `Decided` per peer.
//! A proposer configured with [`ProposerConfig::lease`] (meant for one distinguished
//! proposer) runs phase 1 once for all later instances and then sends only `Accept` and
//! `Decided` while no other proposer prepares a higher ballot; the lease and the rules
//! that keep it safe are in `lease.rs`.
//! A proposer gives an attempt up when an acceptor rejects it, or when answers are still
//! missing after [`ProposerConfig::answer_timeout_ms`]; it then retries with a higher
//! ballot after a backoff the driver chooses (jitter included) in [`Proposer::tick`].
//! Duplicated, reordered and stale messages are harmless: every reply names the ballot it
//! answers and votes are counted once per peer.
//!
//! # Where state lives
//! All of a node's Paxos state is in its [`Peer`]: the [`AcceptorState`] (the only state
//! safety depends on: what it promised and accepted), the [`LearnerState`] (decided
//! values, `max`, every peer's `done`) and the [`Proposer`] (attempts in progress). The
//! driver keeps the peer outside its processes, so a process restarted by its supervisor
//! loses nothing; what must survive a crash of the whole node is in the peer's records
//! (`durable.rs`), from which [`Peer::restore`] rebuilds it.
//!
//! # Forgetting
//! The application calls [`Peer::done`]`(seq)` when it no longer needs instances
//! `<= seq`. That watermark rides on every message the peer sends, and every peer's
//! learner records the highest one seen per peer ([`LearnerState::observe`]).
//! [`LearnerState::min`] is one more than the lowest watermark over ALL peers (a peer
//! never heard from holds it at 1). Instances below `min` are no longer needed by anyone:
//! the peer drops them from all three machines, records the new floor
//! ([`Record::Forgotten`]), and from then on every machine ignores messages below it and
//! `status` reports [`Status::Forgotten`].

mod acceptor;
mod ballot;
pub mod bugs;
mod durable;
mod learner;
mod lease;
mod messages;
mod peer;
mod proposer;
mod quorum;

pub use acceptor::AcceptorState;
pub use ballot::Ballot;
pub use bugs::Bug;
pub use durable::{MemoryStorage, Record, Storage, StorageError};
pub use learner::{LearnerState, Status};
pub use messages::{Body, Message, Outgoing, Role, Target};
pub use peer::{
    Jitter, Outbound, Peer, PeerConfig, QUERY_BATCH, ROUND_BLOCK, Ready, RequestCounts,
};
pub use proposer::{Proposer, ProposerConfig};
pub use quorum::majority;

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A peer's index in the cluster's peer list, 0-based.
pub type PeerId = usize;

/// An instance number, 1-based; 0 means "none".
pub type Seq = u64;

/// What a Paxos instance can agree on: any value that can be cloned, compared, printed and
/// sent over the network.
pub trait Value: Clone + PartialEq + Debug + Serialize + DeserializeOwned {}

impl<T: Clone + PartialEq + Debug + Serialize + DeserializeOwned> Value for T {}

/// Drops the entries below `min` and raises `floor` to it; returns how many were dropped.
/// A `min` at or below `floor` changes nothing. How every machine forgets.
fn forget_entries_below<T>(entries: &mut BTreeMap<Seq, T>, floor: &mut Seq, min: Seq) -> usize {
    if min <= *floor {
        return 0;
    }
    let before = entries.len();
    *entries = entries.split_off(&min);
    *floor = min;
    before - entries.len()
}
