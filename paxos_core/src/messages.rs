//! The protocol's messages, and where the machines ask for them to be sent.

use serde::{Deserialize, Serialize};

use super::{Ballot, PeerId, Seq};

/// Which of a peer's three machines a message is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Receives `Prepare`, `Accept`, `PrepareFrom` and `Query`.
    Acceptor,
    /// Receives `Promise`, `PromiseFrom`, `Accepted`, `Reject`, and `Decided` from an
    /// acceptor that knew it.
    Proposer,
    /// Receives `Decided`.
    Learner,
}

/// Where an [`Outgoing`] message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Target {
    /// One peer's machine.
    Peer(PeerId, Role),
    /// That machine on every peer, the sender's own included.
    AllPeers(Role),
}

impl Target {
    /// The machine the message is for.
    pub fn role(&self) -> Role {
        match self {
            Target::Peer(_, role) | Target::AllPeers(role) => *role,
        }
    }
}

/// What a message says. Every body names its instance; replies name the ballot they answer
/// so a proposer can tell a stale reply from a current one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Body<V> {
    /// Proposer → acceptor, phase 1a: promise to ignore ballots below `ballot`.
    Prepare { seq: Seq, ballot: Ballot },
    /// Acceptor → proposer, phase 1b: promised `ballot`; `accepted` is the highest-ballot
    /// value this acceptor accepted for `seq`, if any.
    Promise {
        seq: Seq,
        ballot: Ballot,
        accepted: Option<(Ballot, V)>,
    },
    /// Proposer → acceptor, phase 2a: accept `value` at `ballot`.
    Accept { seq: Seq, ballot: Ballot, value: V },
    /// Acceptor → proposer, phase 2b: accepted the value of `ballot`.
    Accepted { seq: Seq, ballot: Ballot },
    /// Acceptor → proposer: refused `ballot` because it promised the higher `promised`.
    Reject {
        seq: Seq,
        ballot: Ballot,
        promised: Ballot,
    },
    /// `value` is chosen for `seq`: proposer → learners, or acceptor → proposer when the
    /// acceptor already knew the outcome.
    Decided { seq: Seq, value: V },
    /// Learner → the other peers' acceptors: a peer that missed the decision of `seq` asks
    /// for it; an acceptor whose peer knows it answers `Decided` to the asking learner,
    /// the others stay silent. This is how a peer that was deaf, cut off or late catches
    /// up without its application starting the instance again.
    Query { seq: Seq },
    /// Acceptor → the asking peer's learner: `seq` is below this peer's forgetting floor,
    /// so it will never answer about it. Sent only to a peer whose `min` is below that
    /// floor (a peer restarted from old records, say): the message's stamped `min` tells
    /// it that every peer is done with `seq`, and it forgets too instead of asking forever.
    Forgotten { seq: Seq },
    /// Multi-Paxos phase 1a for every instance from `from` on at once: a proposer that
    /// holds the resulting lease skips `Prepare` for those instances (see `lease.rs`).
    PrepareFrom { from: Seq, ballot: Ballot },
    /// The answer to `PrepareFrom`: promised for every instance `>= from`; `accepted`
    /// lists each of those instances this acceptor accepted a value for.
    PromiseFrom {
        from: Seq,
        ballot: Ballot,
        accepted: Vec<(Seq, Ballot, V)>,
    },
    /// Peer → the other learners, a few times after its highest instance seen rose to
    /// `seq`: nothing but the stamp. A peer that missed every message of the last
    /// instance would otherwise never learn it exists while the cluster is idle (catch-up
    /// only asks about holes below its own `max`); this tells it, and its next look asks.
    Advert { seq: Seq },
}

impl<V> Body<V> {
    /// The instance the message is about.
    pub fn seq(&self) -> Seq {
        match self {
            Body::Prepare { seq, .. }
            | Body::Promise { seq, .. }
            | Body::Accept { seq, .. }
            | Body::Accepted { seq, .. }
            | Body::Reject { seq, .. }
            | Body::Decided { seq, .. }
            | Body::Query { seq }
            | Body::Forgotten { seq }
            | Body::Advert { seq } => *seq,
            Body::PrepareFrom { from, .. } | Body::PromiseFrom { from, .. } => *from,
        }
    }

    /// A short name for logs and message counts.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Prepare { .. } => "prepare",
            Body::Promise { .. } => "promise",
            Body::Accept { .. } => "accept",
            Body::Accepted { .. } => "accepted",
            Body::Reject { .. } => "reject",
            Body::Decided { .. } => "decided",
            Body::Query { .. } => "query",
            Body::Forgotten { .. } => "forgotten",
            Body::PrepareFrom { .. } => "prepare_from",
            Body::PromiseFrom { .. } => "promise_from",
            Body::Advert { .. } => "advert",
        }
    }
}

/// A message as it crosses the network: the body, who sent it, the sender's `done`
/// watermark (the highest instance its application called done on, 0 if never), so that
/// forgetting rides on protocol traffic, and the highest instance the sender has seen, so
/// that a peer that was cut off learns at once how far the others are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message<V> {
    /// The sending peer.
    pub from: PeerId,
    /// The sender's `done` watermark.
    pub done: Seq,
    /// The highest instance the sender has seen (0 when the driver does not say).
    pub max: Seq,
    /// The sender's `min`: every peer is done below it, as far as the sender knows (0
    /// when the driver does not say). Peers that never hear from each other (followers of
    /// a distinguished proposer) learn through it that they may forget.
    pub min: Seq,
    /// What it says.
    pub body: Body<V>,
}

/// A message a machine wants sent. The driver stamps it with its own peer id and
/// watermarks ([`Outgoing::stamp`]) and delivers it to `to`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outgoing<V> {
    /// Where it goes.
    pub to: Target,
    /// What it says.
    pub body: Body<V>,
}

impl<V> Outgoing<V> {
    /// A body for `to`.
    pub fn new(to: Target, body: Body<V>) -> Self {
        Outgoing { to, body }
    }

    /// The network message, sent by peer `from` whose watermark is `done`, whose highest
    /// instance seen is `max` and whose `min` is `min` (see [`Message`]; 0 says nothing).
    pub fn stamp(self, from: PeerId, done: Seq, max: Seq, min: Seq) -> (Target, Message<V>) {
        (
            self.to,
            Message {
                from,
                done,
                max,
                min,
                body: self.body,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_body_names_its_seq_and_kind() {
        let ballot = Ballot::new(1, 0);
        let bodies: Vec<Body<String>> = vec![
            Body::Prepare { seq: 1, ballot },
            Body::Promise {
                seq: 2,
                ballot,
                accepted: None,
            },
            Body::Accept {
                seq: 3,
                ballot,
                value: "v".into(),
            },
            Body::Accepted { seq: 4, ballot },
            Body::Reject {
                seq: 5,
                ballot,
                promised: Ballot::new(2, 1),
            },
            Body::Decided {
                seq: 6,
                value: "v".into(),
            },
            Body::Query { seq: 7 },
            Body::Forgotten { seq: 7 },
            Body::PrepareFrom { from: 8, ballot },
            Body::PromiseFrom {
                from: 9,
                ballot,
                accepted: vec![(10, ballot, "v".into())],
            },
        ];
        let seqs: Vec<Seq> = bodies.iter().map(Body::seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6, 7, 7, 8, 9]);
        let kinds: Vec<&str> = bodies.iter().map(Body::kind).collect();
        assert_eq!(
            kinds,
            vec![
                "prepare",
                "promise",
                "accept",
                "accepted",
                "reject",
                "decided",
                "query",
                "forgotten",
                "prepare_from",
                "promise_from"
            ]
        );
    }

    #[test]
    fn stamp_carries_sender_and_watermark() {
        let out = Outgoing::new(
            Target::AllPeers(Role::Learner),
            Body::Decided {
                seq: 9,
                value: 42u32,
            },
        );
        let (to, msg) = out.stamp(2, 7, 9, 5);
        assert_eq!(to, Target::AllPeers(Role::Learner));
        assert_eq!(to.role(), Role::Learner);
        assert_eq!(msg.from, 2);
        assert_eq!(msg.done, 7);
        assert_eq!(msg.max, 9);
        assert_eq!(msg.min, 5);
        assert_eq!(msg.body.seq(), 9);
        assert_eq!(Target::Peer(1, Role::Acceptor).role(), Role::Acceptor);
    }
}
