//! The proposer: drives each instance it started through prepare, accept and decide, and
//! retries with a higher ballot when an attempt fails. With [`ProposerConfig::lease`] it
//! prepares once for all later instances instead (`lease.rs`) and then only accepts.
//!
//! It has no clock: every call that can start a timer takes `now_ms` from the driver, and
//! [`Proposer::tick`] asks the driver how long to back off (jitter included) before a retry.

use std::collections::BTreeMap;

use log::debug;

use super::lease::{Cover, Lease};
use super::quorum::Votes;
use super::{
    Ballot, Body, Message, Outgoing, PeerId, Role, Seq, Target, Value, forget_entries_below,
};

/// Timing the driver chooses for its proposer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProposerConfig {
    /// How long an attempt may wait for the answers it still misses before it is given up
    /// and retried with a higher ballot.
    pub answer_timeout_ms: u64,
    /// How long to wait before sending the current phase's request again to the acceptors
    /// that have not answered yet (same ballot: acceptors answer a repeat the same way).
    /// On a lossy network this is what keeps an attempt alive without a new ballot.
    pub resend_ms: u64,
    /// Multi-Paxos: run phase 1 once for every instance from the first one started on
    /// (`PrepareFrom`), then only `Accept` while that lease lasts (see `lease.rs`). Meant
    /// for one distinguished proposer; every ballot it uses is then above every ballot it
    /// used before, for any instance.
    pub lease: bool,
}

impl Default for ProposerConfig {
    fn default() -> Self {
        ProposerConfig {
            answer_timeout_ms: 1_000,
            resend_ms: 50,
            lease: false,
        }
    }
}

/// Where the current attempt of one instance stands.
#[derive(Clone, Debug, PartialEq)]
enum Phase<V> {
    /// Sent `Prepare`; counting promises and the highest accepted value they report.
    Preparing {
        since_ms: u64,
        promises: Votes,
        highest_accepted: Option<(Ballot, V)>,
    },
    /// Sent `Accept` with `value`; counting acceptances.
    Accepting {
        since_ms: u64,
        value: V,
        accepted: Votes,
    },
    /// Waiting for the lease being acquired (its ballot is the instance's).
    AwaitingLease,
    /// Given up (rejected or timed out) at `since_ms`; retried at `retry_at_ms`, which the
    /// next tick fills in from the driver's backoff.
    Failed {
        since_ms: u64,
        retry_at_ms: Option<u64>,
    },
}

impl<V> Phase<V> {
    /// A fresh phase 1 started at `now_ms`, out of `peers` promises.
    fn preparing(peers: usize, now_ms: u64) -> Self {
        Phase::Preparing {
            since_ms: now_ms,
            promises: Votes::new(peers),
            highest_accepted: None,
        }
    }
}

/// One instance this proposer is trying to get decided.
#[derive(Clone, Debug, PartialEq)]
struct Instance<V> {
    /// This peer's own proposal, used when no acceptor reports an accepted value.
    own_value: V,
    /// The ballot of the current attempt.
    ballot: Ballot,
    /// The highest ballot heard of for this instance, to jump above on the next attempt.
    highest_seen: Ballot,
    /// How many attempts failed so far.
    failures: u32,
    /// When the current phase's request last went out.
    last_sent_ms: u64,
    phase: Phase<V>,
}

/// One peer's proposer: the instances it is driving, each with its current attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposer<V> {
    me: PeerId,
    peers: usize,
    config: ProposerConfig,
    instances: BTreeMap<Seq, Instance<V>>,
    floor: Seq,
    /// The lease, when `config.lease` is on.
    lease: Lease<V>,
    /// The highest ballot this proposer used or heard of, for any instance.
    max_ballot: Ballot,
    /// The round of a new instance's first ballot: 1, or above every round a proposer
    /// restarted from its records may have used before ([`Proposer::restore_rounds`]).
    first_round: u64,
}

impl<V: Value> Proposer<V> {
    /// The proposer of peer `me` in a cluster of `peers` peers.
    ///
    /// # Panics
    /// If `me` is not below `peers`: the peer list the driver built is wrong.
    pub fn new(me: PeerId, peers: usize, config: ProposerConfig) -> Self {
        assert!(me < peers, "peer {me} is not in a cluster of {peers}");
        Proposer {
            me,
            peers,
            config,
            instances: BTreeMap::new(),
            floor: 1,
            lease: Lease::Idle,
            max_ballot: Ballot::ZERO,
            first_round: 1,
        }
    }

    /// A restarted proposer: every round up to `used_up_to` may have been used before
    /// the restart, so every ballot from now on is above it.
    pub fn restore_rounds(&mut self, used_up_to: u64) {
        self.first_round = self.first_round.max(used_up_to.saturating_add(1));
        self.max_ballot = self.max_ballot.max(Ballot::new(used_up_to, self.me));
    }

    /// Starts proposing `value` for `seq`: a `Prepare` to every acceptor (with a lease:
    /// an `Accept` under the held lease, nothing while it is being acquired, or a
    /// `PrepareFrom` that starts acquiring one). If this proposer is already driving `seq`
    /// it just carries on (the first value stays its proposal); a forgotten or zero `seq`
    /// is ignored. The driver should not start an instance its
    /// learner already knows is decided.
    pub fn start(&mut self, seq: Seq, value: V, now_ms: u64) -> Vec<Outgoing<V>> {
        if seq == 0 || seq < self.floor || self.instances.contains_key(&seq) {
            return Vec::new();
        }
        if self.config.lease {
            let mut instance = Instance {
                own_value: value,
                ballot: Ballot::ZERO,
                highest_seen: Ballot::ZERO,
                failures: 0,
                last_sent_ms: now_ms,
                phase: Phase::AwaitingLease,
            };
            let out = self.launch_leased(seq, &mut instance, now_ms);
            self.instances.insert(seq, instance);
            return out;
        }
        let ballot = Ballot::new(self.first_round, self.me);
        debug!("proposer {}: start seq {seq} at ballot {ballot}", self.me);
        self.instances.insert(
            seq,
            Instance {
                own_value: value,
                ballot,
                highest_seen: ballot,
                failures: 0,
                last_sent_ms: now_ms,
                phase: Phase::preparing(self.peers, now_ms),
            },
        );
        vec![prepare(seq, ballot)]
    }

    /// Handles a reply from an acceptor (`Promise`, `PromiseFrom`, `Accepted`, `Reject`,
    /// or `Decided`) and returns what to send next. Replies to an older attempt, repeats,
    /// and replies about instances this proposer is not driving change nothing.
    pub fn handle(&mut self, msg: &Message<V>, now_ms: u64) -> Vec<Outgoing<V>> {
        let seq = msg.body.seq();
        let me = self.me;
        match &msg.body {
            Body::PromiseFrom {
                from,
                ballot,
                accepted,
            } => {
                for (_, accepted_ballot, _) in accepted {
                    self.max_ballot = self.max_ballot.max(*accepted_ballot);
                }
                if !self.lease.promised(msg.from, *from, *ballot, accepted) {
                    return Vec::new();
                }
                debug!("proposer {me}: lease at {ballot} from seq {from} held");
                return self.launch_waiting(now_ms);
            }
            Body::Reject {
                ballot, promised, ..
            } => {
                self.max_ballot = self.max_ballot.max(*promised);
                if self.lease.end_if(*ballot) {
                    debug!("proposer {me}: lease at {ballot} refused, {promised} promised");
                    self.fail_waiting(now_ms);
                }
            }
            Body::Promise {
                accepted: Some((accepted_ballot, _)),
                ..
            } => self.max_ballot = self.max_ballot.max(*accepted_ballot),
            _ => {}
        }
        let Some(instance) = self.instances.get_mut(&seq) else {
            return Vec::new();
        };
        match &msg.body {
            Body::Promise {
                ballot, accepted, ..
            } => {
                if let Some((accepted_ballot, _)) = accepted {
                    instance.highest_seen = instance.highest_seen.max(*accepted_ballot);
                }
                if *ballot != instance.ballot {
                    return Vec::new();
                }
                let Phase::Preparing {
                    promises,
                    highest_accepted,
                    ..
                } = &mut instance.phase
                else {
                    return Vec::new();
                };
                if !promises.add(msg.from) {
                    return Vec::new();
                }
                if let Some((accepted_ballot, value)) = accepted
                    && highest_accepted
                        .as_ref()
                        .is_none_or(|(best, _)| accepted_ballot > best)
                {
                    *highest_accepted = Some((*accepted_ballot, value.clone()));
                }
                if !promises.is_majority() {
                    return Vec::new();
                }
                let value = match highest_accepted.take() {
                    Some(_) if crate::bugs::active(crate::Bug::OwnValueOverAccepted) => {
                        instance.own_value.clone()
                    }
                    Some((_, value)) => value,
                    None => instance.own_value.clone(),
                };
                debug!("proposer {me}: seq {seq} promised at {ballot}, accepting {value:?}");
                instance.phase = Phase::Accepting {
                    since_ms: now_ms,
                    value: value.clone(),
                    accepted: Votes::new(self.peers),
                };
                instance.last_sent_ms = now_ms;
                vec![Outgoing::new(
                    Target::AllPeers(Role::Acceptor),
                    Body::Accept {
                        seq,
                        ballot: *ballot,
                        value,
                    },
                )]
            }
            Body::Accepted { ballot, .. } => {
                if *ballot != instance.ballot {
                    return Vec::new();
                }
                let Phase::Accepting {
                    value, accepted, ..
                } = &mut instance.phase
                else {
                    return Vec::new();
                };
                if !accepted.add(msg.from) || !accepted.is_majority() {
                    return Vec::new();
                }
                let value = value.clone();
                debug!("proposer {me}: seq {seq} decided {value:?} at {ballot}");
                self.instances.remove(&seq);
                vec![Outgoing::new(
                    Target::AllPeers(Role::Learner),
                    Body::Decided { seq, value },
                )]
            }
            Body::Reject {
                ballot, promised, ..
            } => {
                instance.highest_seen = instance.highest_seen.max(*promised);
                let in_flight = matches!(
                    instance.phase,
                    Phase::Preparing { .. } | Phase::Accepting { .. }
                );
                if *ballot == instance.ballot && in_flight {
                    debug!(
                        "proposer {me}: seq {seq} ballot {ballot} rejected, {promised} promised"
                    );
                    instance.failures += 1;
                    instance.phase = Phase::Failed {
                        since_ms: now_ms,
                        retry_at_ms: None,
                    };
                }
                Vec::new()
            }
            Body::Decided { value, .. } => {
                debug!("proposer {me}: seq {seq} already decided");
                let value = value.clone();
                self.instances.remove(&seq);
                vec![Outgoing::new(
                    Target::Peer(me, Role::Learner),
                    Body::Decided { seq, value },
                )]
            }
            Body::Prepare { .. }
            | Body::Accept { .. }
            | Body::Query { .. }
            | Body::Advert { .. }
            | Body::Forgotten { .. }
            | Body::PrepareFrom { .. }
            | Body::PromiseFrom { .. } => Vec::new(),
        }
    }

    /// A ballot above every ballot this proposer used or heard of (and above `seen`).
    fn fresh_ballot(&mut self, seen: Ballot) -> Ballot {
        let ballot = self.max_ballot.max(seen).next_for(self.me);
        self.max_ballot = ballot;
        ballot
    }

    /// Starts the next attempt of `seq` in lease mode: `Accept` under the held lease,
    /// wait for the lease being acquired, or start acquiring one from `seq`; an instance
    /// below the lease's start runs its own phase 1.
    fn launch_leased(
        &mut self,
        seq: Seq,
        instance: &mut Instance<V>,
        now_ms: u64,
    ) -> Vec<Outgoing<V>> {
        instance.last_sent_ms = now_ms;
        match self.lease.cover(seq) {
            Cover::Held(ballot) => {
                let value = self.lease.value_for(seq, &instance.own_value);
                instance.ballot = ballot;
                instance.phase = Phase::Accepting {
                    since_ms: now_ms,
                    value: value.clone(),
                    accepted: Votes::new(self.peers),
                };
                vec![Outgoing::new(
                    Target::AllPeers(Role::Acceptor),
                    Body::Accept { seq, ballot, value },
                )]
            }
            Cover::Pending(ballot) => {
                instance.ballot = ballot;
                instance.phase = Phase::AwaitingLease;
                Vec::new()
            }
            Cover::No => {
                let ballot = self.fresh_ballot(instance.highest_seen);
                instance.ballot = ballot;
                instance.highest_seen = ballot;
                if self.lease.is_idle() {
                    debug!(
                        "proposer {}: acquiring a lease at {ballot} from seq {seq}",
                        self.me
                    );
                    instance.phase = Phase::AwaitingLease;
                    vec![self.lease.begin(ballot, seq, self.peers, now_ms)]
                } else {
                    instance.phase = Phase::preparing(self.peers, now_ms);
                    vec![prepare(seq, ballot)]
                }
            }
        }
    }

    /// The lease is held: every instance that waited for it goes on.
    fn launch_waiting(&mut self, now_ms: u64) -> Vec<Outgoing<V>> {
        let waiting: Vec<Seq> = self
            .instances
            .iter()
            .filter(|(_, i)| matches!(i.phase, Phase::AwaitingLease))
            .map(|(&seq, _)| seq)
            .collect();
        self.relaunch_leased(waiting, now_ms)
    }

    /// [`Proposer::launch_leased`] for each of `seqs` this proposer drives.
    fn relaunch_leased(&mut self, seqs: Vec<Seq>, now_ms: u64) -> Vec<Outgoing<V>> {
        let mut out = Vec::new();
        for seq in seqs {
            if let Some(mut instance) = self.instances.remove(&seq) {
                out.extend(self.launch_leased(seq, &mut instance, now_ms));
                self.instances.insert(seq, instance);
            }
        }
        out
    }

    /// The lease was lost before it was held: every instance that waited for it failed.
    fn fail_waiting(&mut self, now_ms: u64) {
        for instance in self.instances.values_mut() {
            if matches!(instance.phase, Phase::AwaitingLease) {
                instance.failures += 1;
                instance.phase = Phase::Failed {
                    since_ms: now_ms,
                    retry_at_ms: None,
                };
            }
        }
    }

    /// Advances time to `now_ms`: sends the current request again to the acceptors that
    /// have not answered it for `resend_ms`, gives up attempts (and a lease being
    /// acquired) that waited longer than the answer timeout with answers still missing,
    /// and retries failed attempts whose backoff has passed, each with a ballot above any
    /// it heard of.
    ///
    /// `backoff_ms(seq, failures)` is asked once per failure for the delay before the
    /// retry; `failures` counts the failed attempts of `seq` so far (1 for the first). The
    /// driver decides the policy and adds any random jitter.
    pub fn tick(
        &mut self,
        now_ms: u64,
        mut backoff_ms: impl FnMut(Seq, u32) -> u64,
    ) -> Vec<Outgoing<V>> {
        let timeout = self.config.answer_timeout_ms;
        let resend = self.config.resend_ms;
        let peers = self.peers;
        let (mut out, lease_given_up) = self.lease.tick(now_ms, timeout, resend);
        if lease_given_up {
            debug!("proposer {}: no lease: promises missing", self.me);
            self.fail_waiting(now_ms);
        }
        let leased = self.config.lease;
        let mut retry_leased = Vec::new();
        for (&seq, instance) in self.instances.iter_mut() {
            if now_ms >= instance.last_sent_ms.saturating_add(resend) {
                let ballot = instance.ballot;
                let again: Vec<(PeerId, Body<V>)> = match &instance.phase {
                    Phase::Preparing {
                        since_ms, promises, ..
                    } if now_ms < since_ms.saturating_add(timeout) => promises
                        .missing()
                        .map(|p| (p, Body::Prepare { seq, ballot }))
                        .collect(),
                    Phase::Accepting {
                        since_ms,
                        value,
                        accepted,
                    } if now_ms < since_ms.saturating_add(timeout) => accepted
                        .missing()
                        .map(|p| {
                            (
                                p,
                                Body::Accept {
                                    seq,
                                    ballot,
                                    value: value.clone(),
                                },
                            )
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                if !again.is_empty() {
                    instance.last_sent_ms = now_ms;
                    out.extend(
                        again
                            .into_iter()
                            .map(|(p, body)| Outgoing::new(Target::Peer(p, Role::Acceptor), body)),
                    );
                }
            }
            if let Phase::Preparing { since_ms, .. } | Phase::Accepting { since_ms, .. } =
                instance.phase
                && now_ms >= since_ms.saturating_add(timeout)
            {
                debug!(
                    "proposer {}: seq {seq} ballot {} timed out",
                    self.me, instance.ballot
                );
                instance.failures += 1;
                instance.phase = Phase::Failed {
                    since_ms: now_ms,
                    retry_at_ms: None,
                };
            }
            if let Phase::Failed {
                since_ms,
                retry_at_ms,
            } = &mut instance.phase
            {
                let failures = instance.failures;
                let retry_at = *retry_at_ms
                    .get_or_insert_with(|| since_ms.saturating_add(backoff_ms(seq, failures)));
                if now_ms >= retry_at && leased {
                    debug!("proposer {}: seq {seq} retries", self.me);
                    retry_leased.push(seq);
                } else if now_ms >= retry_at {
                    instance.ballot = instance.ballot.max(instance.highest_seen).next_for(self.me);
                    instance.highest_seen = instance.ballot;
                    debug!(
                        "proposer {}: seq {seq} retries at {}",
                        self.me, instance.ballot
                    );
                    instance.phase = Phase::preparing(peers, now_ms);
                    instance.last_sent_ms = now_ms;
                    out.push(prepare(seq, instance.ballot));
                }
            }
        }
        out.extend(self.relaunch_leased(retry_leased, now_ms));
        out
    }

    /// The earliest time at which [`Proposer::tick`] has something to do, if any: a
    /// resend, an answer timeout, a retry, or (for an attempt that failed since the last
    /// tick) now.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let timeout = self.config.answer_timeout_ms;
        let resend = self.config.resend_ms;
        let instances = self
            .instances
            .values()
            .filter_map(|instance| match instance.phase {
                Phase::Preparing { since_ms, .. } | Phase::Accepting { since_ms, .. } => Some(
                    since_ms
                        .saturating_add(timeout)
                        .min(instance.last_sent_ms.saturating_add(resend)),
                ),
                Phase::Failed {
                    since_ms,
                    retry_at_ms,
                } => Some(retry_at_ms.unwrap_or(since_ms)),
                Phase::AwaitingLease => None,
            });
        instances
            .chain(self.lease.deadline_ms(timeout, resend))
            .min()
    }

    /// Stops driving `seq` (the driver learned it is decided); returns true if it was.
    pub fn stop(&mut self, seq: Seq) -> bool {
        self.instances.remove(&seq).is_some()
    }

    /// True while this proposer is driving `seq`.
    pub fn is_proposing(&self, seq: Seq) -> bool {
        self.instances.contains_key(&seq)
    }

    /// The ballot of the current (or last failed) attempt for `seq`.
    pub fn ballot(&self, seq: Seq) -> Option<Ballot> {
        self.instances.get(&seq).map(|instance| instance.ballot)
    }

    /// Stops driving every instance below `min` and ignores starts below it from now on;
    /// returns how many instances were dropped.
    pub fn forget_below(&mut self, min: Seq) -> usize {
        if min > self.floor {
            self.lease.forget_below(min);
        }
        forget_entries_below(&mut self.instances, &mut self.floor, min)
    }

    /// How many instances this proposer is driving.
    pub fn held(&self) -> usize {
        self.instances.len()
    }

    /// This peer's id.
    pub fn me(&self) -> PeerId {
        self.me
    }
}

fn prepare<V>(seq: Seq, ballot: Ballot) -> Outgoing<V> {
    Outgoing::new(
        Target::AllPeers(Role::Acceptor),
        Body::Prepare { seq, ballot },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: u64 = 100;

    fn proposer(me: PeerId, peers: usize) -> Proposer<u32> {
        Proposer::new(
            me,
            peers,
            ProposerConfig {
                answer_timeout_ms: TIMEOUT,
                resend_ms: u64::MAX,
                lease: false,
            },
        )
    }

    fn from(peer: PeerId, body: Body<u32>) -> Message<u32> {
        Message {
            from: peer,
            done: 0,
            max: 0,
            min: 0,
            body,
        }
    }

    fn promise(
        peer: PeerId,
        seq: Seq,
        ballot: Ballot,
        accepted: Option<(Ballot, u32)>,
    ) -> Message<u32> {
        from(
            peer,
            Body::Promise {
                seq,
                ballot,
                accepted,
            },
        )
    }

    fn accepted(peer: PeerId, seq: Seq, ballot: Ballot) -> Message<u32> {
        from(peer, Body::Accepted { seq, ballot })
    }

    fn reject(peer: PeerId, seq: Seq, ballot: Ballot, promised: Ballot) -> Message<u32> {
        from(
            peer,
            Body::Reject {
                seq,
                ballot,
                promised,
            },
        )
    }

    fn accept_all(seq: Seq, ballot: Ballot, value: u32) -> Outgoing<u32> {
        Outgoing::new(
            Target::AllPeers(Role::Acceptor),
            Body::Accept { seq, ballot, value },
        )
    }

    fn no_backoff(_: Seq, _: u32) -> u64 {
        0
    }

    #[test]
    fn resends_the_current_phase_to_acceptors_that_did_not_answer() {
        let mut p: Proposer<u32> = Proposer::new(
            0,
            3,
            ProposerConfig {
                answer_timeout_ms: 1_000,
                resend_ms: 50,
                lease: false,
            },
        );
        p.start(1, 7, 0);
        let b = p.ballot(1).unwrap();
        assert!(
            p.tick(49, no_backoff).is_empty(),
            "nothing before the resend time"
        );
        assert_eq!(p.next_deadline_ms(), Some(50));
        p.handle(
            &from(
                0,
                Body::Promise {
                    seq: 1,
                    ballot: b,
                    accepted: None,
                },
            ),
            10,
        );
        let again = p.tick(50, no_backoff);
        assert_eq!(
            again,
            vec![
                Outgoing::new(
                    Target::Peer(1, Role::Acceptor),
                    Body::Prepare { seq: 1, ballot: b }
                ),
                Outgoing::new(
                    Target::Peer(2, Role::Acceptor),
                    Body::Prepare { seq: 1, ballot: b }
                ),
            ],
            "the same ballot again, only to the silent acceptors"
        );
        assert_eq!(p.ballot(1), Some(b));
        let accept = p.handle(
            &from(
                2,
                Body::Promise {
                    seq: 1,
                    ballot: b,
                    accepted: None,
                },
            ),
            60,
        );
        assert_eq!(accept.len(), 1);
        p.handle(&from(1, Body::Accepted { seq: 1, ballot: b }), 70);
        let again = p.tick(110, no_backoff);
        assert_eq!(
            again,
            vec![
                Outgoing::new(
                    Target::Peer(0, Role::Acceptor),
                    Body::Accept {
                        seq: 1,
                        ballot: b,
                        value: 7
                    }
                ),
                Outgoing::new(
                    Target::Peer(2, Role::Acceptor),
                    Body::Accept {
                        seq: 1,
                        ballot: b,
                        value: 7
                    }
                ),
            ]
        );
    }

    #[test]
    fn start_prepares_at_every_acceptor() {
        let mut p = proposer(1, 3);
        let out = p.start(1, 10, 0);
        assert_eq!(out, vec![prepare(1, Ballot::new(1, 1))]);
        assert!(p.is_proposing(1));
        assert!(
            p.start(1, 11, 0).is_empty(),
            "a second start joins the first"
        );
        assert!(p.start(0, 11, 0).is_empty(), "there is no instance 0");
        assert_eq!(p.held(), 1);
    }

    #[test]
    fn majority_of_promises_sends_own_value_then_majority_accepted_decides() {
        let mut p = proposer(0, 3);
        p.start(4, 10, 0);
        let b = Ballot::new(1, 0);
        assert!(p.handle(&promise(0, 4, b, None), 1).is_empty());
        assert!(
            p.handle(&promise(0, 4, b, None), 1).is_empty(),
            "a repeat does not count"
        );
        let out = p.handle(&promise(2, 4, b, None), 2);
        assert_eq!(out, vec![accept_all(4, b, 10)]);
        assert!(
            p.handle(&promise(1, 4, b, None), 3).is_empty(),
            "a late promise is ignored"
        );
        assert!(p.handle(&accepted(1, 4, b), 3).is_empty());
        assert!(p.handle(&accepted(1, 4, b), 3).is_empty());
        let out = p.handle(&accepted(2, 4, b), 4);
        assert_eq!(
            out,
            vec![Outgoing::new(
                Target::AllPeers(Role::Learner),
                Body::Decided { seq: 4, value: 10 }
            )]
        );
        assert!(!p.is_proposing(4));
        assert!(
            p.handle(&accepted(0, 4, b), 5).is_empty(),
            "a late acceptance is ignored"
        );
        assert!(
            p.tick(10_000, no_backoff).is_empty(),
            "nothing left to retry"
        );
    }

    #[test]
    fn proposes_the_highest_accepted_value_reported() {
        let mut p = proposer(2, 5);
        p.start(1, 99, 0);
        let b = Ballot::new(1, 2);
        p.handle(&promise(0, 1, b, Some((Ballot::new(1, 0), 5))), 1);
        p.handle(&promise(1, 1, b, None), 1);
        let out = p.handle(&promise(3, 1, b, Some((Ballot::new(1, 1), 7))), 1);
        assert_eq!(out, vec![accept_all(1, b, 7)]);
    }

    #[test]
    fn a_reject_abandons_the_attempt_and_the_retry_jumps_above_it() {
        let mut p = proposer(0, 3);
        p.start(1, 10, 0);
        let b = Ballot::new(1, 0);
        let rival = Ballot::new(5, 2);
        assert!(p.handle(&reject(1, 1, b, rival), 10).is_empty());
        assert!(p.handle(&promise(0, 1, b, None), 11).is_empty());
        assert!(
            p.handle(&promise(2, 1, b, None), 11).is_empty(),
            "promises for an abandoned attempt do not count"
        );
        let mut asked = Vec::new();
        let backoff = |seq: Seq, failures: u32| {
            asked.push((seq, failures));
            50
        };
        assert!(p.tick(30, backoff).is_empty(), "backoff not over yet");
        assert_eq!(asked, vec![(1, 1)]);
        assert_eq!(p.next_deadline_ms(), Some(60));
        let out = p.tick(60, |_, _| {
            unreachable!("the backoff is asked once per failure")
        });
        assert_eq!(out, vec![prepare(1, Ballot::new(6, 0))]);
    }

    #[test]
    fn a_stale_reject_only_raises_the_next_ballot() {
        let mut p = proposer(1, 3);
        p.start(1, 10, 0);
        let b1 = Ballot::new(1, 1);
        p.handle(&reject(0, 1, b1, Ballot::new(2, 0)), 1);
        let out = p.tick(1, no_backoff);
        let b2 = Ballot::new(3, 1);
        assert_eq!(out, vec![prepare(1, b2)]);
        let stale = reject(2, 1, b1, Ballot::new(4, 2));
        assert!(p.handle(&stale, 2).is_empty());
        assert_eq!(p.ballot(1), Some(b2), "the current attempt goes on");
        assert!(p.handle(&promise(0, 1, b2, None), 3).is_empty());
        assert_eq!(p.handle(&promise(2, 1, b2, None), 3).len(), 1);
    }

    #[test]
    fn replies_to_an_earlier_attempt_do_not_count_for_the_current_one() {
        let mut p = proposer(0, 3);
        p.start(1, 10, 0);
        let b1 = Ballot::new(1, 0);
        assert_eq!(
            p.tick(TIMEOUT, no_backoff).len(),
            1,
            "retry after the timeout"
        );
        let b2 = Ballot::new(2, 0);
        assert_eq!(p.ballot(1), Some(b2));
        assert!(p.handle(&promise(1, 1, b1, None), TIMEOUT).is_empty());
        assert!(p.handle(&promise(2, 1, b1, None), TIMEOUT).is_empty());
        assert!(
            p.handle(&promise(1, 1, b2, None), TIMEOUT).is_empty(),
            "one vote of two"
        );
        assert_eq!(p.handle(&promise(2, 1, b2, None), TIMEOUT).len(), 1);
        assert!(p.handle(&accepted(1, 1, b1), TIMEOUT).is_empty());
        assert!(p.handle(&accepted(2, 1, b1), TIMEOUT).is_empty());
        assert!(
            p.is_proposing(1),
            "acceptances of the old ballot decide nothing"
        );
        assert!(p.handle(&accepted(1, 1, b2), TIMEOUT).is_empty());
        assert_eq!(p.handle(&accepted(2, 1, b2), TIMEOUT).len(), 1);
        assert!(!p.is_proposing(1));
    }

    #[test]
    fn no_retry_before_the_timeout_and_one_after_it() {
        let mut p = proposer(0, 3);
        p.start(1, 10, 1_000);
        let b = Ballot::new(1, 0);
        p.handle(&promise(0, 1, b, None), 1_010);
        assert!(p.tick(1_000 + TIMEOUT - 1, no_backoff).is_empty());
        assert_eq!(p.next_deadline_ms(), Some(1_000 + TIMEOUT));
        let out = p.tick(1_000 + TIMEOUT, no_backoff);
        assert_eq!(out, vec![prepare(1, Ballot::new(2, 0))]);
        assert!(
            p.tick(1_000 + TIMEOUT, no_backoff).is_empty(),
            "one retry per failure"
        );
    }

    #[test]
    fn a_timed_out_attempt_is_not_resent() {
        let mut p: Proposer<u32> = Proposer::new(
            0,
            3,
            ProposerConfig {
                answer_timeout_ms: TIMEOUT,
                resend_ms: 10,
                lease: false,
            },
        );
        p.start(1, 10, 0);
        assert_eq!(
            p.tick(10, no_backoff).len(),
            3,
            "a resend before the timeout"
        );
        let b = Ballot::new(1, 0);
        p.handle(&promise(0, 1, b, None), 10);
        p.handle(&promise(1, 1, b, None), 10);
        assert_eq!(
            p.tick(20, no_backoff).len(),
            3,
            "the accept resent to the silent"
        );
        let out = p.tick(10 + TIMEOUT, |_, _| 1_000);
        assert!(
            out.is_empty(),
            "timed out: no resend, no retry yet: {out:?}"
        );
    }

    #[test]
    fn a_timed_out_prepare_is_not_resent() {
        let mut p: Proposer<u32> = Proposer::new(
            0,
            3,
            ProposerConfig {
                answer_timeout_ms: TIMEOUT,
                resend_ms: 10,
                lease: false,
            },
        );
        p.start(1, 10, 0);
        assert_eq!(p.tick(10, no_backoff).len(), 3, "the prepare resent");
        let out = p.tick(TIMEOUT, |_, _| 1_000);
        assert!(out.is_empty(), "phase 1 timed out: no resend: {out:?}");
    }

    #[test]
    fn the_accept_phase_times_out_from_its_own_start() {
        let mut p = proposer(0, 3);
        p.start(1, 10, 0);
        let b = Ballot::new(1, 0);
        p.handle(&promise(0, 1, b, None), 90);
        p.handle(&promise(1, 1, b, None), 90);
        assert!(
            p.tick(TIMEOUT + 50, no_backoff).is_empty(),
            "accepting since 90"
        );
        assert_eq!(p.tick(90 + TIMEOUT, no_backoff).len(), 1);
    }

    #[test]
    fn decided_from_an_acceptor_stops_and_tells_the_own_learner() {
        let mut p = proposer(2, 3);
        p.start(3, 10, 0);
        let out = p.handle(&from(0, Body::Decided { seq: 3, value: 8 }), 1);
        assert_eq!(
            out,
            vec![Outgoing::new(
                Target::Peer(2, Role::Learner),
                Body::Decided { seq: 3, value: 8 }
            )]
        );
        assert!(!p.is_proposing(3));
        assert!(
            p.handle(&from(1, Body::Decided { seq: 3, value: 8 }), 1)
                .is_empty()
        );
        assert_eq!(p.next_deadline_ms(), None);
    }

    #[test]
    fn stop_and_forget_drop_instances() {
        let mut p = proposer(0, 3);
        for seq in 1..=5 {
            p.start(seq, 1, 0);
        }
        assert!(p.stop(5));
        assert!(!p.stop(5));
        assert_eq!(p.forget_below(3), 2);
        assert_eq!(p.held(), 2);
        assert!(
            p.start(2, 1, 0).is_empty(),
            "a forgotten instance is not started"
        );
        assert_eq!(p.forget_below(1), 0);
    }

    fn leasing(me: PeerId, peers: usize) -> Proposer<u32> {
        Proposer::new(
            me,
            peers,
            ProposerConfig {
                answer_timeout_ms: TIMEOUT,
                resend_ms: u64::MAX,
                lease: true,
            },
        )
    }

    fn promise_from(
        peer: PeerId,
        from_seq: Seq,
        ballot: Ballot,
        accepted: Vec<(Seq, Ballot, u32)>,
    ) -> Message<u32> {
        from(
            peer,
            Body::PromiseFrom {
                from: from_seq,
                ballot,
                accepted,
            },
        )
    }

    fn prepare_from_all(from_seq: Seq, ballot: Ballot) -> Outgoing<u32> {
        Outgoing::new(
            Target::AllPeers(Role::Acceptor),
            Body::PrepareFrom {
                from: from_seq,
                ballot,
            },
        )
    }

    #[test]
    fn a_leasing_proposer_prepares_once_then_only_accepts() {
        let mut p = leasing(0, 3);
        let b = Ballot::new(1, 0);
        assert_eq!(p.start(4, 40, 0), vec![prepare_from_all(4, b)]);
        assert!(p.start(5, 50, 0).is_empty(), "waits for the lease");
        assert!(p.handle(&promise_from(0, 4, b, vec![]), 1).is_empty());
        let mut accepts = p.handle(&promise_from(2, 4, b, vec![]), 2);
        accepts.sort_by_key(|o| o.body.seq());
        assert_eq!(accepts, vec![accept_all(4, b, 40), accept_all(5, b, 50)]);
        assert_eq!(
            p.start(6, 60, 3),
            vec![accept_all(6, b, 60)],
            "no phase 1 under the lease"
        );
        p.handle(&accepted(0, 6, b), 4);
        assert_eq!(
            p.handle(&accepted(1, 6, b), 5),
            vec![Outgoing::new(
                Target::AllPeers(Role::Learner),
                Body::Decided { seq: 6, value: 60 }
            )]
        );
        assert_eq!(
            p.start(2, 20, 6),
            vec![prepare(2, Ballot::new(2, 0))],
            "below the lease's start: its own phase 1, at a ballot never used"
        );
    }

    #[test]
    fn a_lease_proposes_the_values_its_promises_report() {
        let mut p = leasing(1, 3);
        let b = Ballot::new(1, 1);
        p.start(1, 10, 0);
        p.handle(&promise_from(0, 1, b, vec![(1, Ballot::new(1, 0), 7)]), 1);
        let out = p.handle(
            &promise_from(
                2,
                1,
                b,
                vec![(1, Ballot::new(1, 2), 8), (3, Ballot::new(1, 2), 9)],
            ),
            1,
        );
        assert_eq!(out, vec![accept_all(1, b, 8)], "the highest ballot wins");
        assert_eq!(p.start(3, 30, 2), vec![accept_all(3, b, 9)]);
        assert_eq!(p.start(2, 20, 2), vec![accept_all(2, b, 20)]);
    }

    #[test]
    fn a_refused_lease_ends_and_the_retry_takes_a_higher_one() {
        let mut p = leasing(0, 3);
        let b = Ballot::new(1, 0);
        p.start(1, 10, 0);
        p.handle(&promise_from(0, 1, b, vec![]), 1);
        p.handle(&promise_from(1, 1, b, vec![]), 1);
        let higher = Ballot::new(4, 2);
        p.handle(&reject(2, 1, b, higher), 2);
        assert_eq!(
            p.start(2, 20, 3),
            vec![prepare_from_all(2, Ballot::new(5, 0))],
            "the lease is gone: a new one, above the refusal"
        );
        assert_eq!(
            p.tick(3 + TIMEOUT, no_backoff),
            vec![prepare_from_all(1, Ballot::new(6, 0))],
            "no promises came: given up, and retried with a fresh lease from the lowest \
             waiting instance"
        );
        assert_eq!(p.ballot(1), Some(Ballot::new(6, 0)));
        assert_eq!(p.ballot(2), Some(Ballot::new(6, 0)));
    }
}
