//! The learner: the decided values, the highest instance seen, and every peer's `done`
//! watermark, from which it works out what may be forgotten.
//!
//! [`LearnerState`] is a plain struct so the driver can share it (e.g. in an
//! `Arc<RwLock<..>>`): `status`, `max` and `min` read only local state.

use std::collections::BTreeMap;

use log::{error, warn};

use super::{Body, Message, PeerId, Seq, Value, forget_entries_below};

/// What a peer knows about one instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status<V> {
    /// The instance chose this value.
    Decided(V),
    /// Not decided yet, as far as this peer knows.
    Pending,
    /// Below `min`: every peer called done on it, so it was (or may be) forgotten.
    Forgotten,
}

/// One peer's learner: decided values per instance and the forgetting bookkeeping.
#[derive(Clone, Debug, PartialEq)]
pub struct LearnerState<V> {
    me: PeerId,
    decided: BTreeMap<Seq, V>,
    done: Vec<Seq>,
    max: Seq,
    floor: Seq,
}

impl<V: Value> LearnerState<V> {
    /// The learner of peer `me` in a cluster of `peers` peers.
    ///
    /// # Panics
    /// If `me` is not below `peers`: the peer list the driver built is wrong.
    pub fn new(me: PeerId, peers: usize) -> Self {
        assert!(me < peers, "peer {me} is not in a cluster of {peers}");
        LearnerState {
            me,
            decided: BTreeMap::new(),
            done: vec![0; peers],
            max: 0,
            floor: 1,
        }
    }

    /// Takes in any message that reached this peer, whatever machine it is for: records
    /// the sender's `done` watermark and `min` and the instance numbers it names (its own
    /// and the sender's `max`), and learns the value of a `Decided`. Returns the instance
    /// if this message decided it here for the first time.
    pub fn observe(&mut self, msg: &Message<V>) -> Option<Seq> {
        self.note_done(msg.from, msg.done);
        self.note_min(msg.min);
        let seq = msg.body.seq();
        self.note_seq(seq.max(msg.max));
        match &msg.body {
            Body::Decided { value, .. } if self.learn(seq, value.clone()) => Some(seq),
            _ => None,
        }
    }

    /// Records that `value` was chosen for `seq`; returns true if it was news. A value for
    /// a forgotten instance is dropped.
    pub fn learn(&mut self, seq: Seq, value: V) -> bool {
        if self.is_forgotten(seq) {
            return false;
        }
        self.note_seq(seq);
        match self.decided.get(&seq) {
            None => {
                self.decided.insert(seq, value);
                true
            }
            Some(known) => {
                if *known != value {
                    error!(
                        "learner {}: seq {seq} decided {known:?}, now told {value:?}",
                        self.me
                    );
                }
                false
            }
        }
    }

    /// Records that `peer`'s application is done with every instance up to `done`.
    /// Watermarks only go up; an unknown peer is ignored.
    pub fn note_done(&mut self, peer: PeerId, done: Seq) {
        match self.done.get_mut(peer) {
            Some(watermark) => *watermark = (*watermark).max(done),
            None => warn!(
                "learner {}: done watermark from unknown peer {peer}",
                self.me
            ),
        }
    }

    /// Another peer's `min`: every peer is done at least up to `min - 1` (its watermarks
    /// came from those peers' own messages), so every watermark here rises to that.
    pub fn note_min(&mut self, min: Seq) {
        let below = min.saturating_sub(1);
        for watermark in &mut self.done {
            *watermark = (*watermark).max(below);
        }
    }

    /// Up to `limit` instances, lowest first, that this peer knows exist (between its
    /// forgetting floor and `max`) but has not learned: the holes to ask about.
    pub fn undecided(&self, limit: usize) -> Vec<Seq> {
        (self.floor.max(1)..=self.max)
            .filter(|seq| !self.decided.contains_key(seq))
            .take(limit)
            .collect()
    }

    /// Records that instance `seq` exists (the application started it, or a message named it).
    pub fn note_seq(&mut self, seq: Seq) {
        self.max = self.max.max(seq);
    }

    /// This peer's application no longer needs instances `<= seq`.
    pub fn done(&mut self, seq: Seq) {
        self.note_done(self.me, seq);
    }

    /// This peer's own `done` watermark: what its outgoing messages carry.
    pub fn local_done(&self) -> Seq {
        self.done[self.me]
    }

    /// What this peer knows about `seq`.
    pub fn status(&self, seq: Seq) -> Status<V> {
        if self.is_forgotten(seq) {
            return Status::Forgotten;
        }
        match self.decided.get(&seq) {
            Some(value) => Status::Decided(value.clone()),
            None => Status::Pending,
        }
    }

    /// True if `seq` is below `min` or was dropped by `forget_below`.
    pub fn is_forgotten(&self, seq: Seq) -> bool {
        seq < self.min() || seq < self.floor
    }

    /// The decided value of `seq`, if this peer holds it.
    pub fn decided(&self, seq: Seq) -> Option<&V> {
        self.decided.get(&seq)
    }

    /// The highest instance seen in any message or start; 0 if none.
    pub fn max(&self) -> Seq {
        self.max
    }

    /// One more than the lowest `done` watermark over all peers: every instance below it
    /// is no longer needed by anyone. A peer never heard from holds it at 1.
    pub fn min(&self) -> Seq {
        self.done
            .iter()
            .copied()
            .min()
            .unwrap_or(0)
            .saturating_add(1)
    }

    /// Drops the decided values below `min`; returns how many were freed. A lower `min`
    /// than before changes nothing.
    pub fn forget_below(&mut self, min: Seq) -> usize {
        forget_entries_below(&mut self.decided, &mut self.floor, min)
    }

    /// Forgets everything below [`LearnerState::min`]. Returns the new floor when it rose,
    /// for the driver to pass to the acceptor's and proposer's `forget_below`.
    pub fn forget_to_min(&mut self) -> Option<Seq> {
        let min = self.min();
        if min <= self.floor {
            return None;
        }
        self.forget_below(min);
        Some(min)
    }

    /// The lowest instance not forgotten yet.
    pub fn floor(&self) -> Seq {
        self.floor
    }

    /// How many decided values this learner holds.
    pub fn held(&self) -> usize {
        self.decided.len()
    }

    /// This peer's id.
    pub fn me(&self) -> PeerId {
        self.me
    }

    /// How many peers the cluster has.
    pub fn peers(&self) -> usize {
        self.done.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Ballot;

    fn decided(from: PeerId, done: Seq, seq: Seq, value: u32) -> Message<u32> {
        Message {
            from,
            done,
            max: 0,
            min: 0,
            body: Body::Decided { seq, value },
        }
    }

    #[test]
    fn max_rises_with_the_senders_max() {
        let mut l: LearnerState<u32> = LearnerState::new(0, 3);
        let mut msg = decided(1, 0, 2, 5);
        msg.max = 40;
        l.observe(&msg);
        assert_eq!(l.max(), 40);
    }

    #[test]
    fn undecided_lists_the_holes_up_to_max() {
        let mut l: LearnerState<u32> = LearnerState::new(0, 3);
        assert!(l.undecided(10).is_empty());
        l.learn(2, 20);
        l.note_seq(5);
        assert_eq!(l.undecided(10), vec![1, 3, 4, 5]);
        assert_eq!(l.undecided(2), vec![1, 3]);
    }

    #[test]
    fn learns_a_decided_value_once() {
        let mut learner = LearnerState::new(0, 3);
        assert_eq!(learner.status(1), Status::Pending);
        assert_eq!(learner.observe(&decided(1, 0, 1, 5)), Some(1));
        assert_eq!(learner.observe(&decided(2, 0, 1, 5)), None);
        assert_eq!(learner.status(1), Status::Decided(5));
        assert_eq!(learner.decided(1), Some(&5));
        assert_eq!(learner.held(), 1);
    }

    #[test]
    fn keeps_the_first_value_if_told_another() {
        let mut learner = LearnerState::new(0, 3);
        assert!(learner.learn(2, 5));
        assert!(!learner.learn(2, 6));
        assert_eq!(learner.status(2), Status::Decided(5));
    }

    #[test]
    fn max_is_the_highest_seq_in_any_message_or_start() {
        let mut learner: LearnerState<u32> = LearnerState::new(1, 3);
        assert_eq!((learner.me(), learner.peers()), (1, 3));
        assert_eq!(learner.max(), 0);
        learner.note_seq(4);
        assert_eq!(learner.max(), 4);
        let prepare = Message {
            from: 2,
            done: 0,
            max: 0,
            min: 0,
            body: Body::Prepare {
                seq: 9,
                ballot: Ballot::new(1, 2),
            },
        };
        assert_eq!(learner.observe(&prepare), None);
        assert_eq!(learner.max(), 9);
        assert_eq!(learner.status(9), Status::Pending);
        learner.note_seq(3);
        assert_eq!(learner.max(), 9);
    }

    #[test]
    fn another_peers_min_raises_every_watermark_to_it() {
        // Peer 2 never hears from peer 1 (both follow peer 0), but peer 0 knows both.
        let mut learner: LearnerState<u32> = LearnerState::new(2, 3);
        learner.done(9);
        let mut msg = decided(0, 9, 10, 1);
        assert_eq!(learner.observe(&msg), Some(10));
        assert_eq!(learner.min(), 1, "peer 1 was never heard from");
        msg.min = 6;
        learner.observe(&msg);
        assert_eq!(learner.min(), 6);
        assert_eq!(learner.local_done(), 9, "a watermark never goes down");
        msg.min = 3;
        learner.observe(&msg);
        assert_eq!(learner.min(), 6, "an older min changes nothing");
    }

    #[test]
    fn min_waits_for_every_peer() {
        let mut learner: LearnerState<u32> = LearnerState::new(0, 3);
        assert_eq!(learner.min(), 1);
        learner.done(5);
        assert_eq!(learner.local_done(), 5);
        learner.note_done(1, 7);
        assert_eq!(learner.min(), 1, "peer 2 was never heard from");
        learner.note_done(2, 3);
        assert_eq!(learner.min(), 4);
        learner.note_done(2, 2);
        assert_eq!(learner.min(), 4, "watermarks never go down");
        learner.note_done(7, 100);
        assert_eq!(learner.min(), 4, "an unknown peer changes nothing");
    }

    #[test]
    fn forgets_below_min_and_reports_the_new_floor() {
        let mut learner = LearnerState::new(0, 2);
        for seq in 1..=6 {
            learner.learn(seq, seq as u32 * 10);
        }
        learner.done(4);
        assert_eq!(learner.forget_to_min(), None, "peer 1 still needs them");
        assert_eq!(learner.held(), 6);
        learner.observe(&decided(1, 3, 6, 60));
        assert_eq!(learner.min(), 4);
        assert_eq!(learner.forget_to_min(), Some(4));
        assert_eq!(learner.forget_to_min(), None, "nothing new to forget");
        assert_eq!(learner.held(), 3);
        assert_eq!(learner.floor(), 4);
        assert_eq!(learner.status(3), Status::Forgotten);
        assert_eq!(learner.status(4), Status::Decided(40));
        assert!(
            !learner.learn(2, 99),
            "a forgotten instance is not learned again"
        );
        assert_eq!(learner.held(), 3);
        assert_eq!(learner.max(), 6);
    }

    #[test]
    fn forget_below_frees_only_below_its_argument() {
        let mut learner = LearnerState::new(0, 1);
        for seq in 1..=4 {
            learner.learn(seq, 1u32);
        }
        assert_eq!(learner.forget_below(3), 2);
        assert_eq!(learner.forget_below(2), 0);
        assert_eq!(learner.held(), 2);
        assert_eq!(learner.status(2), Status::Forgotten);
        assert_eq!(learner.status(3), Status::Decided(1));
    }
}
