//! A proposer's lease (Multi-Paxos): phase 1 run once, with `PrepareFrom`, for every
//! instance from `from` on. While the lease is held the proposer sends `Accept` straight
//! away for those instances — one round trip instead of two.
//!
//! Safety is ordinary Paxos, applied to all those instances at once: a majority promised
//! `ballot` for each of them and reported what they had accepted there, so the proposer
//! proposes, for each instance, the highest-ballot value reported for it (its own value
//! only when nothing was reported). Two rules keep it so:
//! - the lease's ballot is above every ballot this proposer used before, so no
//!   `(instance, ballot)` pair is ever sent with two values;
//! - under the lease, an instance's value is fixed the first time it is proposed
//!   ([`Lease::value_for`] remembers it), so a restart or retry sends the same one.
//!
//! The lease ends as soon as any acceptor refuses its ballot (another proposer prepared a
//! higher one), or when the promises do not come in time. A lease only pays off for a
//! single distinguished proposer: proposers that all hold leases break each other's at
//! every turn, which is why it is an option ([`super::ProposerConfig::lease`]).

use std::collections::BTreeMap;

use super::quorum::Votes;
use super::{Ballot, Body, Outgoing, PeerId, Role, Seq, Target, Value};

/// Where the lease stands.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Lease<V> {
    /// No lease: instances run phase 1 each, or wait for [`Lease::begin`].
    Idle,
    /// `PrepareFrom` sent; counting promises and the values they report.
    Acquiring {
        ballot: Ballot,
        from: Seq,
        since_ms: u64,
        last_sent_ms: u64,
        promises: Votes,
        reported: BTreeMap<Seq, (Ballot, V)>,
    },
    /// A majority promised `ballot` for every instance `>= from`. `values` holds, per
    /// instance, the value that must be proposed there under this ballot: the highest
    /// reported one, or the proposer's own once it chose it.
    Held {
        ballot: Ballot,
        from: Seq,
        values: BTreeMap<Seq, V>,
    },
}

/// What the lease says about one instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cover {
    /// Held and covering it: `Accept` at this ballot.
    Held(Ballot),
    /// Being acquired and covering it: wait for the promises.
    Pending(Ballot),
    /// Not covered: no lease, or the instance is below the lease's start.
    No,
}

impl<V: Value> Lease<V> {
    /// What the lease says about `seq`.
    pub(crate) fn cover(&self, seq: Seq) -> Cover {
        match self {
            Lease::Held { ballot, from, .. } if seq >= *from => Cover::Held(*ballot),
            Lease::Acquiring { ballot, from, .. } if seq >= *from => Cover::Pending(*ballot),
            _ => Cover::No,
        }
    }

    /// True when no lease is held or being acquired.
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self, Lease::Idle)
    }

    /// The lease's ballot, held or being acquired.
    pub(crate) fn ballot(&self) -> Option<Ballot> {
        match self {
            Lease::Idle => None,
            Lease::Acquiring { ballot, .. } | Lease::Held { ballot, .. } => Some(*ballot),
        }
    }

    /// Starts acquiring a lease at `ballot` for every instance `>= from`.
    pub(crate) fn begin(
        &mut self,
        ballot: Ballot,
        from: Seq,
        peers: usize,
        now_ms: u64,
    ) -> Outgoing<V> {
        *self = Lease::Acquiring {
            ballot,
            from,
            since_ms: now_ms,
            last_sent_ms: now_ms,
            promises: Votes::new(peers),
            reported: BTreeMap::new(),
        };
        Outgoing::new(
            Target::AllPeers(Role::Acceptor),
            Body::PrepareFrom { from, ballot },
        )
    }

    /// Counts a `PromiseFrom`; returns true when it completed a majority (the lease is
    /// now held). Promises for another ballot or start, and repeats, change nothing.
    pub(crate) fn promised(
        &mut self,
        peer: PeerId,
        answer_from: Seq,
        answer_ballot: Ballot,
        accepted: &[(Seq, Ballot, V)],
    ) -> bool {
        let Lease::Acquiring {
            ballot,
            from,
            promises,
            reported,
            ..
        } = self
        else {
            return false;
        };
        if answer_ballot != *ballot || answer_from != *from || !promises.add(peer) {
            return false;
        }
        for (seq, accepted_ballot, value) in accepted {
            if *seq < *from {
                continue;
            }
            let higher = reported
                .get(seq)
                .is_none_or(|(best, _)| accepted_ballot > best);
            if higher {
                reported.insert(*seq, (*accepted_ballot, value.clone()));
            }
        }
        if !promises.is_majority() {
            return false;
        }
        let values = std::mem::take(reported)
            .into_iter()
            .map(|(seq, (_, value))| (seq, value))
            .collect();
        *self = Lease::Held {
            ballot: *ballot,
            from: *from,
            values,
        };
        true
    }

    /// The value to propose for `seq` under the held lease: the one fixed for it already,
    /// else `own`, which is fixed from now on.
    pub(crate) fn value_for(&mut self, seq: Seq, own: &V) -> V {
        match self {
            Lease::Held { values, .. } => values.entry(seq).or_insert_with(|| own.clone()).clone(),
            _ => own.clone(),
        }
    }

    /// Ends the lease if it is at `ballot` (an acceptor refused that ballot); returns true
    /// if it did.
    pub(crate) fn end_if(&mut self, ballot: Ballot) -> bool {
        if self.ballot() == Some(ballot) {
            *self = Lease::Idle;
            true
        } else {
            false
        }
    }

    /// Advances time: sends the `PrepareFrom` again to silent acceptors every `resend_ms`
    /// and gives the acquisition up after `timeout_ms`. Returns what to send and whether
    /// the acquisition was given up.
    pub(crate) fn tick(
        &mut self,
        now_ms: u64,
        timeout_ms: u64,
        resend_ms: u64,
    ) -> (Vec<Outgoing<V>>, bool) {
        let Lease::Acquiring {
            ballot,
            from,
            since_ms,
            last_sent_ms,
            promises,
            ..
        } = self
        else {
            return (Vec::new(), false);
        };
        if now_ms >= since_ms.saturating_add(timeout_ms) {
            *self = Lease::Idle;
            return (Vec::new(), true);
        }
        if now_ms < last_sent_ms.saturating_add(resend_ms) {
            return (Vec::new(), false);
        }
        *last_sent_ms = now_ms;
        let again = promises
            .missing()
            .map(|p| {
                Outgoing::new(
                    Target::Peer(p, Role::Acceptor),
                    Body::PrepareFrom {
                        from: *from,
                        ballot: *ballot,
                    },
                )
            })
            .collect();
        (again, false)
    }

    /// When [`Lease::tick`] next has something to do, if anything.
    pub(crate) fn deadline_ms(&self, timeout_ms: u64, resend_ms: u64) -> Option<u64> {
        match self {
            Lease::Acquiring {
                since_ms,
                last_sent_ms,
                ..
            } => Some(
                since_ms
                    .saturating_add(timeout_ms)
                    .min(last_sent_ms.saturating_add(resend_ms)),
            ),
            _ => None,
        }
    }

    /// Drops what it remembers about instances below `min`.
    pub(crate) fn forget_below(&mut self, min: Seq) {
        match self {
            Lease::Held { values, .. } => *values = values.split_off(&min),
            Lease::Acquiring { reported, .. } => *reported = reported.split_off(&min),
            Lease::Idle => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_majority_of_promises_holds_the_lease_with_the_highest_reported_values() {
        let mut lease: Lease<u32> = Lease::Idle;
        let b = Ballot::new(3, 0);
        let out = lease.begin(b, 5, 3, 0);
        assert_eq!(
            out,
            Outgoing::new(
                Target::AllPeers(Role::Acceptor),
                Body::PrepareFrom { from: 5, ballot: b }
            )
        );
        assert_eq!(lease.cover(5), Cover::Pending(b));
        assert_eq!(lease.cover(4), Cover::No);
        let low = Ballot::new(1, 1);
        let high = Ballot::new(2, 2);
        assert!(!lease.promised(1, 5, b, &[(6, low, 60), (7, low, 70)]));
        assert!(
            !lease.promised(1, 5, b, &[]),
            "a repeat is not a second vote"
        );
        assert!(
            !lease.promised(2, 5, Ballot::new(2, 0), &[]),
            "another ballot does not count"
        );
        assert!(lease.promised(2, 5, b, &[(6, high, 61)]));
        assert_eq!(lease.cover(9), Cover::Held(b));
        assert_eq!(lease.value_for(6, &1), 61, "the highest ballot's value");
        assert_eq!(lease.value_for(7, &1), 70);
        assert_eq!(lease.value_for(8, &1), 1, "nothing reported: the own value");
        assert_eq!(lease.value_for(8, &2), 1, "fixed once chosen");
        lease.forget_below(8);
        assert_eq!(lease.value_for(6, &9), 9, "forgotten instances are dropped");
    }

    #[test]
    fn a_refusal_of_its_ballot_ends_the_lease_and_another_ballot_does_not() {
        let mut lease: Lease<u32> = Lease::Idle;
        let b = Ballot::new(1, 0);
        lease.begin(b, 1, 3, 0);
        lease.promised(0, 1, b, &[]);
        lease.promised(1, 1, b, &[]);
        assert!(!lease.end_if(Ballot::new(1, 2)));
        assert_eq!(lease.cover(1), Cover::Held(b));
        assert!(lease.end_if(b));
        assert!(lease.is_idle());
        assert_eq!(lease.cover(1), Cover::No);
    }

    #[test]
    fn acquisition_resends_to_the_silent_and_gives_up_after_the_timeout() {
        let mut lease: Lease<u32> = Lease::Idle;
        let b = Ballot::new(1, 0);
        lease.begin(b, 1, 3, 0);
        lease.promised(0, 1, b, &[]);
        assert_eq!(lease.deadline_ms(100, 30), Some(30));
        assert_eq!(lease.tick(29, 100, 30), (Vec::new(), false));
        let (again, gave_up) = lease.tick(30, 100, 30);
        assert!(!gave_up);
        let to: Vec<Target> = again.iter().map(|o| o.to).collect();
        assert_eq!(
            to,
            vec![
                Target::Peer(1, Role::Acceptor),
                Target::Peer(2, Role::Acceptor)
            ]
        );
        assert_eq!(lease.tick(100, 100, 30), (Vec::new(), true));
        assert!(lease.is_idle());
        assert_eq!(lease.deadline_ms(100, 30), None);
    }
}
