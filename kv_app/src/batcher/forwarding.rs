//! The follower side of forwarding: where a batcher that is not the distinguished
//! proposer sends its entries, the one forward it has outstanding, when it stops trusting
//! the leader (and for how long), and the instances the leader named that this node never
//! heard of. Also the forwarding options and the batcher's counters shown by `status`.

use super::machine::{Effect, distinct_entries};
use super::pending::{Origin, Pending, Waiting};
use crate::messages::{Forward, ForwardedAt};
use crate::ops::LogEntry;
use runtime::clock::{Duration, Instant};
use runtime::{NodeName, Pid};
use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

/// Whether the batchers of the other nodes forward their entries to the distinguished
/// proposer (peer 0), and how soon they stop waiting for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forwarding {
    /// Forward to peer 0 (`false`: every node proposes its own batches, as before).
    pub enabled: bool,
    /// How long a forward may go unanswered before the leader is suspected (and the
    /// entries are proposed here).
    pub patience: Duration,
    /// How long a suspected leader is bypassed before forwarding is tried again.
    pub suspect_for: Duration,
}

impl Default for Forwarding {
    fn default() -> Self {
        Forwarding {
            enabled: true,
            patience: Duration::from_millis(250),
            suspect_for: Duration::from_secs(1),
        }
    }
}

/// What a node's batcher has done since the node started; outlives batcher restarts.
#[derive(Debug, Default)]
pub struct BatcherCounters {
    proposed_locally: AtomicU64,
    forwarded: AtomicU64,
    forwards_timed_out: AtomicU64,
    lost: AtomicU64,
}

/// A reading of [`BatcherCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatcherCounts {
    /// Batches this node proposed itself (`Paxos::start`).
    pub proposed_locally: u64,
    /// Batches this node forwarded to the distinguished proposer.
    pub forwarded: u64,
    /// Forwards that got no answer in time (each one made the leader suspect).
    pub forwards_timed_out: u64,
    /// Batches proposed here whose instance another value won.
    #[serde(default)]
    pub lost: u64,
}

impl BatcherCounters {
    pub fn read(&self) -> BatcherCounts {
        BatcherCounts {
            proposed_locally: self.proposed_locally.load(Ordering::Relaxed),
            forwarded: self.forwarded.load(Ordering::Relaxed),
            forwards_timed_out: self.forwards_timed_out.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
        }
    }

    pub(super) fn count_local_batch(&self) {
        self.proposed_locally.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn count_lost(&self) {
        self.lost.fetch_add(1, Ordering::Relaxed);
    }

    fn count_forward(&self) {
        self.forwarded.fetch_add(1, Ordering::Relaxed);
    }

    fn count_timeout(&self) {
        self.forwards_timed_out.fetch_add(1, Ordering::Relaxed);
    }
}

/// The forward waiting for its `ForwardedAt`, and when the leader was last heard of.
struct Outstanding {
    waiting: Vec<Waiting>,
    last_heard: Instant,
}

/// A follower batcher's forwarding state (inert at the leader, or when disabled).
pub(super) struct Forwarder {
    opts: Forwarding,
    /// The distinguished proposer's node; `None` when this node is it, or forwarding is
    /// off.
    leader: Option<NodeName>,
    outstanding: Option<Outstanding>,
    suspect_until: Option<Instant>,
    /// Instances the leader said it proposed our entries at, and when it said so.
    named: VecDeque<(u64, Instant)>,
}

impl Forwarder {
    pub(super) fn new(opts: Forwarding, leader: Option<NodeName>) -> Self {
        Forwarder {
            opts,
            leader,
            outstanding: None,
            suspect_until: None,
            named: VecDeque::new(),
        }
    }

    /// Whether this node takes forwards: it is the distinguished proposer, or forwarding
    /// is off here (then a forward from a node that thinks otherwise is still served).
    pub(super) fn proposes_for_others(&self) -> bool {
        self.leader.is_none()
    }

    /// The node forwarded to, if any.
    pub(super) fn leader(&self) -> Option<&NodeName> {
        self.leader.as_ref()
    }

    /// The leader to forward to now: configured, not suspected, and its node connected.
    pub(super) fn target(&self, now: Instant, connected: bool) -> Option<NodeName> {
        let leader = self.leader.as_ref()?;
        if self.suspect_until.is_some_and(|until| now < until) {
            return None;
        }
        connected.then(|| leader.clone())
    }

    /// Whether a forward waits for its answer (the next one goes after it).
    pub(super) fn busy(&self) -> bool {
        self.outstanding.is_some()
    }

    /// The `Forward` of `batch` from batcher `me`, now outstanding.
    pub(super) fn send(
        &mut self,
        me: &Pid,
        batch: Vec<Waiting>,
        counters: &BatcherCounters,
        now: Instant,
    ) -> Forward {
        let forward = Forward {
            entries: distinct_entries(&batch),
            batcher: me.clone(),
        };
        counters.count_forward();
        self.outstanding = Some(Outstanding {
            waiting: batch,
            last_heard: now,
        });
        forward
    }

    /// The leader proposed (some of) our entries at `seq`: their managers are told. A late
    /// answer, for entries already put back in `pending`, is passed on too (and takes
    /// them out of `pending`); the managers check the decided value anyway.
    pub(super) fn answered(
        &mut self,
        at: ForwardedAt,
        pending: &mut Pending,
        now: Instant,
        effects: &mut Vec<Effect>,
    ) {
        let listed: HashSet<&LogEntry> = at.entries.iter().collect();
        let mut tell = |w: &Waiting| {
            if !listed.contains(&w.entry) {
                return false;
            }
            if let Origin::Manager(m) = &w.origin {
                effects.push(Effect::Proposed {
                    manager: m.clone(),
                    seq: at.seq,
                });
            }
            true
        };
        if let Some(o) = &mut self.outstanding {
            let before = o.waiting.len();
            o.waiting.retain(|w| !tell(w));
            if o.waiting.len() < before {
                o.last_heard = now;
            }
            if o.waiting.is_empty() {
                self.outstanding = None;
            }
        }
        pending.retain(|w| !tell(w));
        self.named.push_back((at.seq, now));
    }

    /// Ends a forward that went unanswered too long: the leader becomes suspect and the
    /// entries come back, to be proposed here.
    pub(super) fn expire(&mut self, counters: &BatcherCounters, now: Instant) -> Vec<Waiting> {
        let Some(o) = self
            .outstanding
            .take_if(|o| now >= o.last_heard + self.opts.patience)
        else {
            return Vec::new();
        };
        counters.count_timeout();
        self.suspect_until = Some(now + self.opts.suspect_for);
        log::debug!(
            "kv_batcher: no answer from {:?} within {:?}; proposing here for {:?}",
            self.leader,
            self.opts.patience,
            self.opts.suspect_for
        );
        o.waiting
    }

    /// An instance the leader named but this node has not heard of after a while (the
    /// leader died before its proposal got out): an empty batch is proposed at it, which
    /// learns what was decided there or decides nothing, so the managers waiting on it
    /// go on (and the DB manager's hole filling covers the instances below it).
    pub(super) fn check_named(&mut self, max: u64, now: Instant, effects: &mut Vec<Effect>) {
        while let Some(&(seq, at)) = self.named.front() {
            if now < at + self.opts.patience {
                break;
            }
            self.named.pop_front();
            if max < seq {
                log::debug!(
                    "kv_batcher: instance {seq} named by the leader never came; filling it"
                );
                effects.push(Effect::Fill { seq });
            }
        }
    }

    /// The next moment something of forwarding is due: a forward's patience running out,
    /// a named instance to check, or the end of a suspicion.
    pub(super) fn next_due(&self, now: Instant) -> Option<Instant> {
        let patience = self.opts.patience;
        [
            self.outstanding.as_ref().map(|o| o.last_heard + patience),
            self.named.front().map(|&(_, at)| at + patience),
            self.suspect_until.filter(|&until| until > now),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
