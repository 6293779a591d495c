//! The batcher as a pure state machine: batching, lazy deletes, the pause after lost
//! instances, forwarding to the distinguished proposer with its patience and failover.
//! Inputs are method calls carrying the time (and, for a decision, a draw from the
//! node's generator); [`BatcherMachine::tick`] returns one batch of [`Effect`]s — the
//! messages to send and the instances to propose, in order — and when to tick again.
//! The process loop (`super::run`) reads the [`View`], feeds messages in and carries the
//! effects out; nothing here sends, reads a clock or draws a random number itself.

use super::forwarding::{BatcherCounters, Forwarder, Forwarding};
use super::pending::{Origin, Pending, Waiting};
use super::{LAZY_DELETE, MAX_BATCH};
use crate::Batch;
use crate::messages::{Forward, ForwardedAt};
use crate::ops::LogEntry;
use runtime::clock::{Duration, Instant};
use runtime::{NodeName, Pid};
use std::collections::HashSet;
use std::sync::Arc;

/// The longest pause after lost instances.
const LONGEST_PAUSE: Duration = Duration::from_millis(4);

/// How soon to look again when entries wait and Paxos is down.
const PAXOS_DOWN_RETRY: Duration = Duration::from_millis(20);

/// What the machine needs to know of the world when it ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    /// The highest instance this node's Paxos knows of.
    pub max: u64,
    /// Whether Paxos is running (not stopped, not being restarted).
    pub paxos_alive: bool,
    /// Whether the leader's node is connected (false without a leader).
    pub leader_connected: bool,
}

/// One thing the process loop must do, in the order given.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Propose `value` at instance `seq` here, and be told its decision.
    Propose { seq: u64, value: Batch },
    /// Propose an empty batch at `seq`: an instance the leader named never came.
    Fill { seq: u64 },
    /// Tell a local operation manager its entry is proposed at `seq`.
    Proposed { manager: Pid, seq: u64 },
    /// Tell a follower's batcher where (some of) its forwarded entries went.
    ForwardedAt { batcher: Pid, at: ForwardedAt },
    /// Forward a batch to the leader's batcher.
    Forward { leader: NodeName, forward: Forward },
}

/// What a tick returns.
#[derive(Debug, Default, PartialEq)]
pub struct Output {
    pub effects: Vec<Effect>,
    /// When to tick again if no message comes first (`None`: at the next message).
    pub wake_at: Option<Instant>,
}

/// The batch in flight.
struct InFlight {
    seq: u64,
    entries: Batch,
}

/// The batcher's whole state.
pub struct BatcherMachine {
    me: Pid,
    counters: Arc<BatcherCounters>,
    forwarder: Forwarder,
    /// How long forwarded entries may wait here before their follower gives up on them.
    patience: Duration,
    pending: Pending,
    in_flight: Option<InFlight>,
    losses: u32,
    paused_until: Option<Instant>,
    /// Effects of inputs since the last tick.
    effects: Vec<Effect>,
}

impl BatcherMachine {
    /// The batcher `me`; `leader` is the distinguished proposer's node it forwards to
    /// (`None`: it proposes itself, for others too).
    pub fn new(
        me: Pid,
        leader: Option<NodeName>,
        opts: Forwarding,
        counters: Arc<BatcherCounters>,
    ) -> Self {
        BatcherMachine {
            me,
            counters,
            forwarder: Forwarder::new(opts, leader),
            patience: opts.patience,
            pending: Pending::default(),
            in_flight: None,
            losses: 0,
            paused_until: None,
            effects: Vec::new(),
        }
    }

    /// The node this batcher forwards to, if any.
    pub fn leader(&self) -> Option<&NodeName> {
        self.forwarder.leader()
    }

    /// Whether entries wait to be proposed or forwarded.
    pub fn has_pending(&self) -> bool {
        self.pending.len() > 0
    }

    /// Input: a local operation manager's entry.
    pub fn propose(&mut self, entry: LogEntry, manager: Pid, now: Instant) {
        self.pending.add_from_manager(entry, manager, now);
    }

    /// Input: a follower's forward (taken only when this batcher proposes for others).
    pub fn forward(&mut self, f: Forward, now: Instant) {
        if !self.forwarder.proposes_for_others() {
            log::debug!(
                "kv_batcher: a forward from {} reached a node that forwards itself; dropped",
                f.batcher
            );
            return;
        }
        self.pending.add_forwarded(f.entries, &f.batcher, now);
    }

    /// Input: the leader's answer to a forward.
    pub fn forwarded_at(&mut self, at: ForwardedAt, now: Instant) {
        self.forwarder
            .answered(at, &mut self.pending, now, &mut self.effects);
    }

    /// Input: instance `seq` was decided with `value`. `draw(most)` is a random number
    /// in `0..=most` (the node's generator), for the pause after repeated losses.
    pub fn decided(
        &mut self,
        seq: u64,
        value: &Batch,
        now: Instant,
        draw: impl FnOnce(u64) -> u64,
    ) {
        let Some(f) = self.in_flight.take_if(|f| f.seq == seq) else {
            return;
        };
        // Our own proposal comes back as the very same shared batch.
        if Batch::ptr_eq(&f.entries, value) || f.entries.iter().any(|e| value.contains(e)) {
            self.losses = 0;
            self.paused_until = None;
        } else if self.losses == 0 {
            // A first loss is usually a stale `max` (the instance was decided before this
            // batch reached it): retry at once.
            self.counters.count_lost();
            self.losses = 1;
        } else {
            self.counters.count_lost();
            self.losses += 1;
            let most =
                (Duration::from_micros(250) * 2u32.pow(self.losses.min(5))).min(LONGEST_PAUSE);
            let most = u64::try_from(most.as_micros()).unwrap_or(u64::MAX);
            self.paused_until = Some(now + Duration::from_micros(draw(most)));
        }
    }

    /// Input: time passes. Does what is due at `now` and returns every effect since the
    /// last tick, and when to tick again.
    pub fn tick(&mut self, now: Instant, view: View) -> Output {
        let wake_at = self.act(now, view);
        Output {
            effects: std::mem::take(&mut self.effects),
            wake_at,
        }
    }

    /// When the pending entries are due to go (at once when an operation waits, else
    /// when the oldest delete has waited [`LAZY_DELETE`]); `None` when nothing waits.
    fn due(&self, now: Instant) -> Option<Instant> {
        let urgent = self
            .pending
            .iter()
            .any(|w| matches!(w.entry, LogEntry::Op(_)));
        if urgent {
            return Some(now);
        }
        Some(self.pending.iter().map(|w| w.since).min()? + LAZY_DELETE)
    }

    /// Forwarded entries older than the patience are dropped: their follower has stopped
    /// waiting and proposes them itself.
    fn drop_stale_forwards(&mut self, now: Instant) {
        let before = self.pending.len();
        self.pending.retain(|w| {
            !(matches!(w.origin, Origin::Batcher(_)) && now >= w.since + self.patience)
        });
        let dropped = before - self.pending.len();
        if dropped > 0 {
            log::debug!("kv_batcher: dropped {dropped} forwarded entries that waited too long");
        }
    }

    /// Proposes the next batch here, at `max + 1`; tells local managers `Proposed` and
    /// each follower batcher one `ForwardedAt` with its entries.
    fn launch(&mut self, max: u64) {
        let batch = self
            .pending
            .take_oldest_within(MAX_BATCH, crate::limits::MAX_BATCH_BYTES);
        let seq = max + 1;
        let value = Batch::from(distinct_entries(&batch));
        self.effects.push(Effect::Propose {
            seq,
            value: value.clone(),
        });
        self.counters.count_local_batch();
        let mut followers: Vec<(Pid, Vec<LogEntry>)> = Vec::new();
        for w in batch {
            match w.origin {
                Origin::Manager(manager) => self.effects.push(Effect::Proposed { manager, seq }),
                Origin::Batcher(b) => match followers.iter_mut().find(|(f, _)| *f == b) {
                    Some((_, entries)) => entries.push(w.entry),
                    None => followers.push((b, vec![w.entry])),
                },
            }
        }
        for (batcher, entries) in followers {
            self.effects.push(Effect::ForwardedAt {
                batcher,
                at: ForwardedAt { seq, entries },
            });
        }
        self.in_flight = Some(InFlight {
            seq,
            entries: value,
        });
    }

    /// Does what is due now; returns when to look again (`None`: at the next message).
    fn act(&mut self, now: Instant, view: View) -> Option<Instant> {
        self.pending
            .put_back(self.forwarder.expire(&self.counters, now));
        self.forwarder.check_named(view.max, now, &mut self.effects);
        // An instance filled just now is taken: the next batch goes above it.
        let max = self
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::Fill { seq } => Some(*seq),
                _ => None,
            })
            .fold(view.max, u64::max);
        if self.in_flight.is_none() {
            self.drop_stale_forwards(now);
        }
        let mut next = self.forwarder.next_due(now);
        let mut wake_at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        let Some(due) = self.due(now) else {
            return next;
        };
        if !view.paxos_alive {
            // Paxos is down (stopped, or its supervisor restarting): look again shortly
            // rather than spin.
            wake_at(now + PAXOS_DOWN_RETRY);
            return next;
        }
        if let Some(leader) = self.forwarder.target(now, view.leader_connected) {
            if !self.forwarder.busy() {
                if due <= now {
                    let batch = self
                        .pending
                        .take_oldest_within(MAX_BATCH, crate::limits::MAX_BATCH_BYTES);
                    let forward = self.forwarder.send(&self.me, batch, &self.counters, now);
                    self.effects.push(Effect::Forward { leader, forward });
                    // Its patience is now due, and more may wait for the answer.
                    if let Some(t) = self.forwarder.next_due(now) {
                        wake_at(t);
                    }
                } else {
                    wake_at(due);
                }
            }
        } else if self.in_flight.is_none() {
            let at = self.paused_until.map_or(due, |p| p.max(due));
            if at <= now {
                self.launch(max);
            } else {
                wake_at(at);
            }
        }
        next
    }
}

/// The entries of `batch`, each once, in order.
pub(super) fn distinct_entries(batch: &[Waiting]) -> Vec<LogEntry> {
    let mut seen: HashSet<&LogEntry> = HashSet::with_capacity(batch.len());
    batch
        .iter()
        .filter(|w| seen.insert(&w.entry))
        .map(|w| w.entry.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{OpRef, Operation};
    use runtime::{Node, NodeRole, Process};

    fn op(seq: u64) -> LogEntry {
        LogEntry::Op(Operation::read("k", OpRef { client: 1, seq }))
    }

    fn delete(seq: u64) -> LogEntry {
        LogEntry::DeleteRef(OpRef { client: 1, seq })
    }

    fn batch(entries: &[LogEntry]) -> Batch {
        Batch::from(entries.to_vec())
    }

    /// A node and processes standing for the batcher itself, a manager and a follower's
    /// batcher (only their pids are used).
    struct World {
        _node: Node,
        me: Process,
        manager: Process,
        follower: Process,
        counters: Arc<BatcherCounters>,
    }

    fn world() -> World {
        let node = Node::new_seeded("machine@mem", NodeRole::Server, 1);
        World {
            me: node.attach(),
            manager: node.attach(),
            follower: node.attach(),
            _node: node,
            counters: Arc::new(BatcherCounters::default()),
        }
    }

    impl World {
        fn machine(&self, leader: Option<&str>) -> BatcherMachine {
            BatcherMachine::new(
                self.me.pid().clone(),
                leader.map(NodeName::new),
                Forwarding::default(),
                self.counters.clone(),
            )
        }

        fn manager(&self) -> Pid {
            self.manager.pid().clone()
        }
    }

    fn view(max: u64) -> View {
        View {
            max,
            paxos_alive: true,
            leader_connected: true,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_batcher_that_proposes_itself_goes_at_max_plus_one_and_tells_the_manager() {
        let w = world();
        let mut m = w.machine(None);
        let t0 = runtime::clock::now();
        m.propose(op(1), w.manager(), t0);
        m.propose(op(1), w.manager(), t0); // asked again: one entry
        let out = m.tick(t0, view(7));
        assert_eq!(
            out.effects,
            [
                Effect::Propose {
                    seq: 8,
                    value: batch(&[op(1)])
                },
                Effect::Proposed {
                    manager: w.manager(),
                    seq: 8
                },
            ]
        );
        assert_eq!(out.wake_at, None);
        // One batch in flight: the next entry waits for its decision.
        m.propose(op(2), w.manager(), t0);
        assert_eq!(m.tick(t0, view(8)).effects, []);
        m.decided(8, &batch(&[op(1)]), t0, |_| {
            unreachable!("a win draws nothing")
        });
        let out = m.tick(t0, view(8));
        assert!(matches!(&out.effects[0], Effect::Propose { seq: 9, value } if **value == [op(2)]));
        assert_eq!(w.counters.read().proposed_locally, 2);
    }

    #[test]
    fn deletes_wait_for_an_operation_or_the_lazy_delay() {
        let w = world();
        let mut m = w.machine(None);
        let t0 = runtime::clock::now();
        m.propose(delete(1), w.manager(), t0);
        let out = m.tick(t0, view(0));
        assert_eq!(out.effects, []);
        assert_eq!(out.wake_at, Some(t0 + LAZY_DELETE));
        // An operation takes the delete along at once.
        m.propose(op(2), w.manager(), t0 + ms(1));
        let out = m.tick(t0 + ms(1), view(0));
        assert!(
            matches!(&out.effects[0], Effect::Propose { seq: 1, value } if **value == [delete(1), op(2)])
        );
        // Alone, a delete goes when the delay is over.
        let mut m = w.machine(None);
        m.propose(delete(3), w.manager(), t0);
        assert_eq!(m.tick(t0 + ms(4), view(0)).effects, []);
        let out = m.tick(t0 + LAZY_DELETE, view(0));
        assert!(matches!(&out.effects[0], Effect::Propose { seq: 1, .. }));
    }

    #[test]
    fn a_first_loss_retries_at_once_and_repeated_losses_pause_by_the_draw() {
        let w = world();
        let mut m = w.machine(None);
        let t0 = runtime::clock::now();
        let other = batch(&[op(99)]);
        m.propose(op(1), w.manager(), t0);
        assert!(matches!(
            m.tick(t0, view(0)).effects[0],
            Effect::Propose { seq: 1, .. }
        ));
        m.decided(1, &other, t0, |_| {
            unreachable!("a first loss draws nothing")
        });
        // The entry is the manager's to propose again (it checks the decided value).
        m.propose(op(1), w.manager(), t0);
        assert!(matches!(
            m.tick(t0, view(1)).effects[0],
            Effect::Propose { seq: 2, .. }
        ));
        let mut asked = None;
        m.decided(2, &other, t0, |most| {
            asked = Some(most);
            most
        });
        // Two losses: up to 250 µs * 2^2.
        assert_eq!(asked, Some(1_000));
        m.propose(op(1), w.manager(), t0);
        let out = m.tick(t0, view(2));
        assert_eq!(out.effects, []);
        assert_eq!(out.wake_at, Some(t0 + ms(1)));
        assert!(matches!(
            m.tick(t0 + ms(1), view(2)).effects[0],
            Effect::Propose { seq: 3, .. }
        ));
        // A win ends the pauses.
        m.decided(3, &batch(&[op(1)]), t0 + ms(1), |_| unreachable!());
        m.propose(op(2), w.manager(), t0 + ms(1));
        assert!(!m.tick(t0 + ms(1), view(3)).effects.is_empty());
    }

    #[test]
    fn entries_wait_while_paxos_is_down() {
        let w = world();
        let mut m = w.machine(None);
        let t0 = runtime::clock::now();
        m.propose(op(1), w.manager(), t0);
        let down = View {
            paxos_alive: false,
            ..view(0)
        };
        let out = m.tick(t0, down);
        assert_eq!(out.effects, []);
        assert_eq!(out.wake_at, Some(t0 + PAXOS_DOWN_RETRY));
        assert_eq!(m.tick(t0 + PAXOS_DOWN_RETRY, view(0)).effects.len(), 2);
    }

    #[test]
    fn a_follower_forwards_and_proposes_itself_when_the_leader_does_not_answer() {
        let w = world();
        let mut m = w.machine(Some("leader@mem"));
        let t0 = runtime::clock::now();
        m.propose(op(1), w.manager(), t0);
        let out = m.tick(t0, view(4));
        assert_eq!(
            out.effects,
            [Effect::Forward {
                leader: NodeName::new("leader@mem"),
                forward: Forward {
                    entries: vec![op(1)],
                    batcher: w.me.pid().clone()
                }
            }]
        );
        let patience = Forwarding::default().patience;
        assert_eq!(out.wake_at, Some(t0 + patience));
        // One forward at a time.
        m.propose(op(2), w.manager(), t0);
        assert_eq!(m.tick(t0 + ms(1), view(4)).effects, []);
        // No answer within the patience: the leader is suspect, the entries go here.
        let out = m.tick(t0 + patience, view(4));
        assert!(
            matches!(&out.effects[0], Effect::Propose { seq: 5, value } if **value == [op(1), op(2)]),
            "{:?}",
            out.effects
        );
        let counts = w.counters.read();
        assert_eq!(
            (
                counts.forwarded,
                counts.forwards_timed_out,
                counts.proposed_locally
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn a_follower_whose_leader_is_not_connected_proposes_itself() {
        let w = world();
        let mut m = w.machine(Some("leader@mem"));
        let t0 = runtime::clock::now();
        m.propose(op(1), w.manager(), t0);
        let cut = View {
            leader_connected: false,
            ..view(0)
        };
        assert!(matches!(
            m.tick(t0, cut).effects[0],
            Effect::Propose { seq: 1, .. }
        ));
        assert_eq!(w.counters.read().forwarded, 0);
    }

    #[test]
    fn the_leaders_answer_reaches_the_managers_and_a_named_instance_never_seen_is_filled() {
        let w = world();
        let mut m = w.machine(Some("leader@mem"));
        let t0 = runtime::clock::now();
        m.propose(op(1), w.manager(), t0);
        assert_eq!(m.tick(t0, view(4)).effects.len(), 1);
        m.forwarded_at(
            ForwardedAt {
                seq: 12,
                entries: vec![op(1)],
            },
            t0 + ms(2),
        );
        m.propose(op(2), w.manager(), t0 + ms(2));
        let out = m.tick(t0 + ms(2), view(4));
        // The manager is told, and the next forward may go at once.
        assert_eq!(
            out.effects[0],
            Effect::Proposed {
                manager: w.manager(),
                seq: 12
            }
        );
        assert!(
            matches!(&out.effects[1], Effect::Forward { forward, .. } if forward.entries == [op(2)])
        );
        // Instance 12 never reached this node within the patience: it is filled.
        let patience = Forwarding::default().patience;
        m.forwarded_at(
            ForwardedAt {
                seq: 13,
                entries: vec![op(2)],
            },
            t0 + ms(3),
        );
        let out = m.tick(t0 + ms(2) + patience, view(4));
        assert!(out.effects.contains(&Effect::Fill { seq: 12 }), "{out:?}");
        assert!(!out.effects.contains(&Effect::Fill { seq: 13 }));
        let out = m.tick(t0 + ms(3) + patience, view(13));
        assert!(
            !out.effects.contains(&Effect::Fill { seq: 13 }),
            "known by then"
        );
    }

    #[test]
    fn the_leader_proposes_forwarded_entries_and_answers_their_batcher() {
        let w = world();
        let mut m = w.machine(None);
        let t0 = runtime::clock::now();
        let follower = w.follower.pid().clone();
        m.forward(
            Forward {
                entries: vec![op(1), op(2)],
                batcher: follower.clone(),
            },
            t0,
        );
        m.propose(op(3), w.manager(), t0);
        let out = m.tick(t0, view(20));
        assert_eq!(
            out.effects,
            [
                Effect::Propose {
                    seq: 21,
                    value: batch(&[op(1), op(2), op(3)])
                },
                Effect::Proposed {
                    manager: w.manager(),
                    seq: 21
                },
                Effect::ForwardedAt {
                    batcher: follower,
                    at: ForwardedAt {
                        seq: 21,
                        entries: vec![op(1), op(2)]
                    }
                },
            ]
        );
        // A follower drops forwards (it does not propose for others).
        let mut f = w.machine(Some("leader@mem"));
        f.forward(
            Forward {
                entries: vec![op(4)],
                batcher: w.me.pid().clone(),
            },
            t0,
        );
        assert!(!f.has_pending());
    }
}
