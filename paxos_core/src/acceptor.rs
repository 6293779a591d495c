//! The acceptor: per instance, the highest ballot promised and the value accepted.
//!
//! Its whole state is [`AcceptorState`], a plain struct the driver keeps outside the
//! acceptor process so that a restarted acceptor still honours what it promised.
//! Besides the per-instance promises it keeps one standing promise from `PrepareFrom`
//! (a Multi-Paxos lease): a ballot below which nothing is accepted from some instance on.

use std::collections::BTreeMap;

use log::debug;

use super::{Ballot, Body, Message, Outgoing, Role, Seq, Target, Value, forget_entries_below};

/// What one acceptor remembers about one instance.
#[derive(Clone, Debug, PartialEq)]
struct Slot<V> {
    promised: Ballot,
    accepted: Option<(Ballot, V)>,
}

impl<V> Default for Slot<V> {
    fn default() -> Self {
        Slot {
            promised: Ballot::ZERO,
            accepted: None,
        }
    }
}

/// Everything an acceptor knows: per instance, the highest ballot it promised and the
/// highest-ballot value it accepted; and the floor below which it forgot everything.
#[derive(Clone, Debug, PartialEq)]
pub struct AcceptorState<V> {
    slots: BTreeMap<Seq, Slot<V>>,
    floor: Seq,
    /// The standing promise of a `PrepareFrom`: no ballot below `.1` is accepted for any
    /// instance `>= .0`. A later `PrepareFrom` raises the ballot and only ever lowers the
    /// start, so no instance loses a promise it was given.
    blanket: Option<(Seq, Ballot)>,
}

impl<V> Default for AcceptorState<V> {
    fn default() -> Self {
        AcceptorState {
            slots: BTreeMap::new(),
            floor: 1,
            blanket: None,
        }
    }
}

impl<V: Value> AcceptorState<V> {
    /// An acceptor that promised and accepted nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles a message for the acceptor and returns the reply to send, if any.
    ///
    /// `known_decision` is the value this peer's learner already holds for the message's
    /// instance, if any: the acceptor then answers `Decided` so the proposer stops at once.
    /// A `Query` is answered only with a known decision. Messages below the forgetting
    /// floor (except `PrepareFrom`, which covers every instance from its start on), and
    /// bodies that are not for an acceptor, get no reply.
    pub fn handle(&mut self, msg: &Message<V>, known_decision: Option<&V>) -> Option<Outgoing<V>> {
        let seq = msg.body.seq();
        if let Body::PrepareFrom { from, ballot } = msg.body {
            let reply = self.prepare_from(from, ballot);
            return Some(Outgoing::new(Target::Peer(msg.from, Role::Proposer), reply));
        }
        if seq < self.floor {
            debug!(
                "acceptor: ignoring {} for forgotten seq {seq}",
                msg.body.kind()
            );
            // A peer behind the floor is told, once per request, so that it forgets too.
            let asks = matches!(
                msg.body,
                Body::Query { .. } | Body::Prepare { .. } | Body::Accept { .. }
            );
            return (asks && msg.min < self.floor).then(|| {
                Outgoing::new(
                    Target::Peer(msg.from, Role::Learner),
                    Body::Forgotten { seq },
                )
            });
        }
        if let Body::Query { .. } = msg.body {
            return known_decision.map(|value| {
                Outgoing::new(
                    Target::Peer(msg.from, Role::Learner),
                    Body::Decided {
                        seq,
                        value: value.clone(),
                    },
                )
            });
        }
        let reply = match (&msg.body, known_decision) {
            (Body::Prepare { .. } | Body::Accept { .. }, Some(value)) => Body::Decided {
                seq,
                value: value.clone(),
            },
            (Body::Prepare { ballot, .. }, None) => self.prepare(seq, *ballot),
            (Body::Accept { ballot, value, .. }, None) => self.accept(seq, *ballot, value),
            (other, _) => {
                debug!("acceptor: ignoring {} from peer {}", other.kind(), msg.from);
                return None;
            }
        };
        Some(Outgoing::new(Target::Peer(msg.from, Role::Proposer), reply))
    }

    /// The standing promise's ballot for `seq` (zero when none covers it).
    fn blanket_for(&self, seq: Seq) -> Ballot {
        match self.blanket {
            Some((from, ballot)) if seq >= from => ballot,
            _ => Ballot::ZERO,
        }
    }

    fn prepare(&mut self, seq: Seq, ballot: Ballot) -> Body<V> {
        let promised = self.promised(seq);
        if ballot >= promised {
            let slot = self.slots.entry(seq).or_default();
            slot.promised = ballot;
            Body::Promise {
                seq,
                ballot,
                accepted: slot.accepted.clone(),
            }
        } else {
            Body::Reject {
                seq,
                ballot,
                promised,
            }
        }
    }

    fn accept(&mut self, seq: Seq, ballot: Ballot, value: &V) -> Body<V> {
        let promised = self.promised(seq);
        if ballot >= promised {
            let slot = self.slots.entry(seq).or_default();
            slot.promised = ballot;
            slot.accepted = Some((ballot, value.clone()));
            Body::Accepted { seq, ballot }
        } else {
            Body::Reject {
                seq,
                ballot,
                promised,
            }
        }
    }

    /// Phase 1 for every instance `>= from` at once. Granted when `ballot` is at least
    /// the standing promise; instances that promised more on their own keep that (and
    /// will refuse the proposer's `Accept`, which ends its lease). The answer lists every
    /// value accepted at or above `from`, so that the proposer re-proposes them.
    fn prepare_from(&mut self, from: Seq, ballot: Ballot) -> Body<V> {
        let standing = self.blanket.map_or(Ballot::ZERO, |(_, b)| b);
        if ballot < standing {
            return Body::Reject {
                seq: from,
                ballot,
                promised: standing,
            };
        }
        let start = self.blanket.map_or(from, |(old, _)| old.min(from));
        self.blanket = Some((start, ballot));
        let accepted = self
            .slots
            .range(from..)
            .filter_map(|(&seq, slot)| {
                slot.accepted
                    .as_ref()
                    .map(|(b, value)| (seq, *b, value.clone()))
            })
            .collect();
        Body::PromiseFrom {
            from,
            ballot,
            accepted,
        }
    }

    /// The highest ballot promised for `seq`, on its own or by a standing promise
    /// ([`Ballot::ZERO`] if none).
    pub fn promised(&self, seq: Seq) -> Ballot {
        self.slots
            .get(&seq)
            .map_or(Ballot::ZERO, |slot| slot.promised)
            .max(self.blanket_for(seq))
    }

    /// The `(ballot, value)` accepted for `seq`, if any.
    pub fn accepted(&self, seq: Seq) -> Option<&(Ballot, V)> {
        self.slots.get(&seq).and_then(|slot| slot.accepted.as_ref())
    }

    /// Drops everything about instances below `min` and ignores them from now on; returns
    /// how many instances were freed. A lower `min` than before changes nothing.
    pub fn forget_below(&mut self, min: Seq) -> usize {
        forget_entries_below(&mut self.slots, &mut self.floor, min)
    }

    /// The standing promise of the latest `PrepareFrom` granted: `(from, ballot)`.
    pub fn standing(&self) -> Option<(Seq, Ballot)> {
        self.blanket
    }

    /// Replays a promise made before a restart (see [`crate::Record::Promised`]).
    pub fn restore_promise(&mut self, seq: Seq, ballot: Ballot) {
        if seq >= self.floor {
            let slot = self.slots.entry(seq).or_default();
            slot.promised = slot.promised.max(ballot);
        }
    }

    /// Replays an acceptance made before a restart (see [`crate::Record::Accepted`]).
    pub fn restore_accepted(&mut self, seq: Seq, ballot: Ballot, value: V) {
        if seq >= self.floor {
            let slot = self.slots.entry(seq).or_default();
            slot.promised = slot.promised.max(ballot);
            if slot.accepted.as_ref().is_none_or(|(b, _)| ballot >= *b) {
                slot.accepted = Some((ballot, value));
            }
        }
    }

    /// Replays the standing promise held before a restart.
    pub fn restore_standing(&mut self, from: Seq, ballot: Ballot) {
        self.blanket = Some((from, ballot));
    }

    /// The lowest instance not forgotten.
    pub fn floor(&self) -> Seq {
        self.floor
    }

    /// How many instances this acceptor holds state for.
    pub fn held(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PeerId;

    /// The acceptor's expected reply: `body` addressed to peer `to`'s proposer.
    fn reply_to(to: PeerId, body: Body<u32>) -> Option<Outgoing<u32>> {
        Some(Outgoing::new(Target::Peer(to, Role::Proposer), body))
    }

    fn msg(from: PeerId, body: Body<u32>) -> Message<u32> {
        Message {
            from,
            done: 0,
            max: 0,
            min: 0,
            body,
        }
    }

    fn prepare(from: PeerId, seq: Seq, ballot: Ballot) -> Message<u32> {
        msg(from, Body::Prepare { seq, ballot })
    }

    fn accept(from: PeerId, seq: Seq, ballot: Ballot, value: u32) -> Message<u32> {
        msg(from, Body::Accept { seq, ballot, value })
    }

    #[test]
    fn query_is_answered_only_with_a_known_decision() {
        let mut a: AcceptorState<u32> = AcceptorState::new();
        let query = msg(2, Body::Query { seq: 4 });
        assert_eq!(a.handle(&query, None), None);
        assert_eq!(
            a.handle(&query, Some(&9)),
            Some(Outgoing::new(
                Target::Peer(2, Role::Learner),
                Body::Decided { seq: 4, value: 9 }
            ))
        );
        assert_eq!(a.held(), 0, "a query leaves no state behind");
    }

    #[test]
    fn promises_a_higher_ballot_and_rejects_a_lower_one() {
        let mut acceptor = AcceptorState::new();
        let b1 = Ballot::new(1, 0);
        let b2 = Ballot::new(2, 1);
        assert_eq!(
            acceptor.handle(&prepare(1, 1, b2), None),
            reply_to(
                1,
                Body::Promise {
                    seq: 1,
                    ballot: b2,
                    accepted: None
                }
            )
        );
        assert_eq!(
            acceptor.handle(&prepare(0, 1, b1), None),
            reply_to(
                0,
                Body::Reject {
                    seq: 1,
                    ballot: b1,
                    promised: b2
                }
            )
        );
        assert_eq!(acceptor.promised(1), b2);
        assert_eq!(acceptor.promised(2), Ballot::ZERO);
    }

    #[test]
    fn a_repeated_prepare_gets_the_same_promise() {
        let mut acceptor = AcceptorState::new();
        let b = Ballot::new(1, 2);
        let first = acceptor.handle(&prepare(2, 4, b), None);
        let again = acceptor.handle(&prepare(2, 4, b), None);
        assert_eq!(first, again);
    }

    #[test]
    fn accepts_at_the_promised_ballot_and_reports_it_in_later_promises() {
        let mut acceptor = AcceptorState::new();
        let b1 = Ballot::new(1, 0);
        let b2 = Ballot::new(2, 1);
        acceptor.handle(&prepare(0, 1, b1), None);
        assert_eq!(
            acceptor.handle(&accept(0, 1, b1, 10), None),
            reply_to(0, Body::Accepted { seq: 1, ballot: b1 })
        );
        assert_eq!(acceptor.accepted(1), Some(&(b1, 10)));
        assert_eq!(
            acceptor.handle(&prepare(1, 1, b2), None),
            reply_to(
                1,
                Body::Promise {
                    seq: 1,
                    ballot: b2,
                    accepted: Some((b1, 10))
                }
            )
        );
    }

    #[test]
    fn rejects_an_accept_below_its_promise_and_keeps_the_old_value() {
        let mut acceptor = AcceptorState::new();
        let b1 = Ballot::new(1, 0);
        let b2 = Ballot::new(2, 1);
        acceptor.handle(&accept(0, 1, b1, 10), None);
        acceptor.handle(&prepare(1, 1, b2), None);
        assert_eq!(
            acceptor.handle(&accept(0, 1, b1, 11), None),
            reply_to(
                0,
                Body::Reject {
                    seq: 1,
                    ballot: b1,
                    promised: b2
                }
            )
        );
        assert_eq!(acceptor.accepted(1), Some(&(b1, 10)));
    }

    #[test]
    fn an_accept_without_prepare_raises_the_promise() {
        let mut acceptor = AcceptorState::new();
        let b3 = Ballot::new(3, 0);
        acceptor.handle(&accept(0, 1, b3, 5), None);
        assert_eq!(acceptor.promised(1), b3);
        let reply = acceptor.handle(&prepare(1, 1, Ballot::new(2, 1)), None);
        assert!(matches!(
            reply,
            Some(Outgoing {
                body: Body::Reject { .. },
                ..
            })
        ));
    }

    #[test]
    fn answers_decided_when_the_outcome_is_known() {
        let mut acceptor = AcceptorState::new();
        let b = Ballot::new(1, 2);
        assert_eq!(
            acceptor.handle(&prepare(2, 3, b), Some(&77)),
            reply_to(2, Body::Decided { seq: 3, value: 77 })
        );
        assert_eq!(
            acceptor.handle(&accept(2, 3, b, 1), Some(&77)),
            reply_to(2, Body::Decided { seq: 3, value: 77 })
        );
        assert_eq!(
            acceptor.held(),
            0,
            "a known outcome needs no acceptor state"
        );
    }

    #[test]
    fn ignores_bodies_meant_for_other_roles() {
        let mut acceptor: AcceptorState<u32> = AcceptorState::new();
        let b = Ballot::new(1, 0);
        assert_eq!(
            acceptor.handle(&msg(0, Body::Accepted { seq: 1, ballot: b }), None),
            None
        );
        assert_eq!(
            acceptor.handle(&msg(0, Body::Decided { seq: 1, value: 3 }), None),
            None
        );
        assert_eq!(acceptor.held(), 0);
    }

    #[test]
    fn a_standing_promise_covers_every_instance_from_its_start() {
        let mut acceptor: AcceptorState<u32> = AcceptorState::new();
        let lease = Ballot::new(5, 0);
        let below = Ballot::new(4, 1);
        let prepare_from = |ballot| msg(0, Body::PrepareFrom { from: 3, ballot });
        assert!(matches!(
            acceptor.handle(&prepare_from(lease), None),
            Some(Outgoing {
                body: Body::PromiseFrom { .. },
                ..
            })
        ));
        assert_eq!(acceptor.standing(), Some((3, lease)));
        assert_eq!(acceptor.promised(3), lease);
        assert_eq!(acceptor.promised(9), lease);
        assert_eq!(
            acceptor.promised(2),
            Ballot::ZERO,
            "below its start: not covered"
        );
        assert!(matches!(
            acceptor.handle(&prepare(1, 4, below), None),
            Some(Outgoing {
                body: Body::Reject { .. },
                ..
            })
        ));
        assert!(matches!(
            acceptor.handle(&prepare(1, 2, below), None),
            Some(Outgoing {
                body: Body::Promise { .. },
                ..
            })
        ));
        assert!(
            matches!(
                acceptor.handle(&prepare_from(lease), None),
                Some(Outgoing {
                    body: Body::PromiseFrom { .. },
                    ..
                })
            ),
            "the same lease asked again is granted again"
        );
        assert!(matches!(
            acceptor.handle(&prepare_from(below), None),
            Some(Outgoing {
                body: Body::Reject { .. },
                ..
            })
        ));
    }

    #[test]
    fn restored_promises_and_acceptances_keep_the_highest() {
        let mut acceptor: AcceptorState<u32> = AcceptorState::new();
        let (low, high) = (Ballot::new(1, 0), Ballot::new(2, 1));
        acceptor.restore_accepted(1, high, 20);
        acceptor.restore_accepted(1, low, 10);
        assert_eq!(acceptor.accepted(1), Some(&(high, 20)));
        acceptor.restore_promise(2, high);
        acceptor.restore_promise(2, low);
        assert_eq!(acceptor.promised(2), high);
        acceptor.restore_standing(5, high);
        assert_eq!(acceptor.standing(), Some((5, high)));
        assert_eq!(acceptor.promised(7), high);
    }

    #[test]
    fn forgets_below_the_floor_and_ignores_it_afterwards() {
        let mut acceptor = AcceptorState::new();
        let b = Ballot::new(1, 0);
        for seq in 1..=5 {
            acceptor.handle(&accept(0, seq, b, seq as u32), None);
        }
        assert_eq!(acceptor.held(), 5);
        assert_eq!(acceptor.forget_below(4), 3);
        assert_eq!(acceptor.held(), 2);
        assert_eq!(acceptor.floor(), 4);
        assert_eq!(acceptor.accepted(3), None);
        assert_eq!(acceptor.accepted(4), Some(&(b, 4)));
        assert_eq!(
            acceptor.handle(&prepare(1, 2, Ballot::new(9, 1)), None),
            Some(Outgoing::new(
                Target::Peer(1, Role::Learner),
                Body::Forgotten { seq: 2 }
            )),
            "a peer behind the floor is told"
        );
        let mut caught_up = prepare(1, 2, Ballot::new(9, 1));
        caught_up.min = 4;
        assert_eq!(
            acceptor.handle(&caught_up, None),
            None,
            "one that knows is not"
        );
        assert_eq!(acceptor.held(), 2, "a forgotten instance is not recreated");
        assert_eq!(acceptor.forget_below(2), 0, "the floor never goes down");
        assert_eq!(acceptor.floor(), 4);
    }
}
