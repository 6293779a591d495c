//! Ballot numbers: totally ordered, unique per proposer.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::PeerId;

/// A proposal number: ordered by `round`, then by `peer`, so two proposers never hold the
/// same ballot. Real ballots have `round >= 1`; [`Ballot::ZERO`] is below all of them.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    /// The attempt number; compared first.
    pub round: u64,
    /// The proposer that owns the ballot; breaks ties between equal rounds.
    pub peer: PeerId,
}

impl Ballot {
    /// Below every real ballot: what an acceptor has promised before any `Prepare`.
    pub const ZERO: Ballot = Ballot { round: 0, peer: 0 };

    /// The ballot `round` of proposer `peer`.
    pub fn new(round: u64, peer: PeerId) -> Self {
        Ballot { round, peer }
    }

    /// True for [`Ballot::ZERO`]'s round: no proposer ever used it.
    pub fn is_zero(&self) -> bool {
        self.round == 0
    }

    /// The lowest ballot of `peer` that is above `self`.
    pub fn next_for(&self, peer: PeerId) -> Ballot {
        Ballot {
            round: self.round.saturating_add(1),
            peer,
        }
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.round, self.peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_round_then_peer() {
        assert!(Ballot::new(1, 5) < Ballot::new(2, 0));
        assert!(Ballot::new(2, 0) < Ballot::new(2, 1));
        assert_eq!(Ballot::new(3, 2), Ballot::new(3, 2));
    }

    #[test]
    fn zero_is_below_every_real_ballot() {
        assert!(Ballot::ZERO.is_zero());
        assert!(Ballot::ZERO < Ballot::new(1, 0));
        assert!(!Ballot::new(1, 0).is_zero());
        assert_eq!(Ballot::default(), Ballot::ZERO);
    }

    #[test]
    fn next_for_is_above_and_owned_by_the_peer() {
        let seen = Ballot::new(7, 4);
        let mine = seen.next_for(1);
        assert!(mine > seen);
        assert_eq!(mine, Ballot::new(8, 1));
        assert_eq!(mine.to_string(), "8.1");
    }
}
