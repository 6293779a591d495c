//! Counting votes: a majority of distinct peers, each counted once however often it answers.

use super::PeerId;

/// How many peers make a majority of `peers`.
pub fn majority(peers: usize) -> usize {
    peers / 2 + 1
}

/// The set of distinct peers that voted for one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Votes {
    voted: Vec<bool>,
    count: usize,
}

impl Votes {
    /// No votes yet, out of `peers`.
    pub(crate) fn new(peers: usize) -> Self {
        Votes {
            voted: vec![false; peers],
            count: 0,
        }
    }

    /// Counts `peer`'s vote; returns false for a repeat vote or an unknown peer.
    pub(crate) fn add(&mut self, peer: PeerId) -> bool {
        match self.voted.get_mut(peer) {
            Some(voted) if !*voted => {
                *voted = true;
                self.count += 1;
                true
            }
            Some(_) if crate::bugs::active(crate::Bug::DuplicateVote) => {
                self.count += 1;
                true
            }
            _ => false,
        }
    }

    /// The peers that have not voted yet, lowest first.
    pub(crate) fn missing(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.voted
            .iter()
            .enumerate()
            .filter(|(_, voted)| !**voted)
            .map(|(peer, _)| peer)
    }

    /// True once a majority of the peers voted.
    pub(crate) fn is_majority(&self) -> bool {
        self.count >= majority(self.voted.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_sizes() {
        assert_eq!(majority(1), 1);
        assert_eq!(majority(2), 2);
        assert_eq!(majority(3), 2);
        assert_eq!(majority(4), 3);
        assert_eq!(majority(5), 3);
    }

    #[test]
    fn repeat_and_unknown_votes_do_not_count() {
        let mut votes = Votes::new(3);
        assert!(votes.add(0));
        assert!(!votes.add(0));
        assert!(!votes.add(3));
        assert!(!votes.is_majority());
        assert!(votes.add(2));
        assert!(votes.is_majority());
        assert_eq!(votes.missing().collect::<Vec<_>>(), vec![1]);
    }
}
