//! What a peer must keep across a crash, and the storage it keeps it in.
//!
//! A [`Record`] is one change to the state Paxos safety depends on. The peer lists the
//! records of every step in the `persist` part of its [`crate::Ready`]; the driver makes
//! them durable with a [`Storage`] BEFORE it sends the messages of that same batch (a
//! `Promise` or `Accepted` that leaves before its record is durable can be forgotten by a
//! crash after the proposer counted it, and two values can then be chosen).
//! [`crate::Peer::restore`] rebuilds a peer from the records, replayed in the order they
//! were persisted.
//!
//! What is recorded, and why:
//! - the acceptor's promises ([`Record::Promised`]), acceptances ([`Record::Accepted`],
//!   which is also a promise of its ballot) and the lease's standing promise
//!   ([`Record::StandingPromise`]): an acceptor that forgets one breaks agreement;
//! - the proposer's ballot rounds ([`Record::RoundsReserved`]): a restarted proposer must
//!   never send a ballot it used before with another value, so it starts above every round
//!   it reserved; rounds are reserved in blocks so that this costs a record only rarely;
//! - the forgetting floor ([`Record::Forgotten`]): instances below it are never answered
//!   again, and the records before it about them may be dropped (compaction).
//!
//! Decided values are NOT in `persist`: they come out in the `decided` part of the batch
//! and the application keeps them its own way (its log and snapshots). A storage that
//! keeps them may hand them back as [`Record::Decided`] so the restored learner knows them
//! at once; without them a restored peer learns them again by catch-up.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Ballot, Seq};

/// One change to a peer's durable state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Record<V> {
    /// The acceptor promised `ballot` for `seq` (ignores every lower ballot there).
    Promised { seq: Seq, ballot: Ballot },
    /// The acceptor accepted `value` at `ballot` for `seq`, and so promised `ballot`.
    Accepted { seq: Seq, ballot: Ballot, value: V },
    /// The acceptor's standing promise (a `PrepareFrom`): no ballot below `ballot` is
    /// accepted for any instance `>= from`. The latest one replaces the earlier ones.
    StandingPromise { from: Seq, ballot: Ballot },
    /// The proposer may use ballot rounds up to `up_to`; a restarted one starts above it.
    RoundsReserved { up_to: u64 },
    /// Every machine forgot every instance below `below`.
    Forgotten { below: Seq },
    /// `value` was decided for `seq` (never emitted by the peer; see the module doc).
    Decided { seq: Seq, value: V },
}

impl<V> Record<V> {
    /// The instance the record is about, for records about one instance.
    pub fn seq(&self) -> Option<Seq> {
        match self {
            Record::Promised { seq, .. }
            | Record::Accepted { seq, .. }
            | Record::Decided { seq, .. } => Some(*seq),
            Record::StandingPromise { .. }
            | Record::RoundsReserved { .. }
            | Record::Forgotten { .. } => None,
        }
    }
}

/// A storage failed: the batch it was given is not durable, and its messages must never
/// be sent. A driver stops the peer rather than retry and carry on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageError(pub String);

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "paxos storage: {}", self.0)
    }
}

impl std::error::Error for StorageError {}

/// Where a driver keeps a peer's records.
pub trait Storage<V> {
    /// Makes `records` durable, in order, after every record given before; returns once
    /// they are. One call per batch: a durable storage syncs once for all of them.
    fn persist(&mut self, records: &[Record<V>]) -> Result<(), StorageError>;

    /// Every record still needed, in the order persisted, for [`crate::Peer::restore`].
    fn load(&self) -> Result<Vec<Record<V>>, StorageError>;
}

/// Records kept in memory: durable for as long as the storage value lives (a node's
/// memory mode, where nothing survives the node, and simulations, which keep it across a
/// simulated crash). Compacts itself on [`Record::Forgotten`].
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryStorage<V> {
    records: Vec<Record<V>>,
    persisted: u64,
}

impl<V> Default for MemoryStorage<V> {
    fn default() -> Self {
        MemoryStorage {
            records: Vec::new(),
            persisted: 0,
        }
    }
}

impl<V: Clone> MemoryStorage<V> {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many records were ever persisted (compaction does not lower it).
    pub fn persisted(&self) -> u64 {
        self.persisted
    }

    /// How many records are kept now.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Drops what a restore no longer needs: records about instances below `below`, and
    /// every standing promise, reservation and floor but the latest.
    fn compact(&mut self, below: Seq) {
        let last_of =
            |records: &[Record<V>], kind: fn(&Record<V>) -> bool| records.iter().rposition(kind);
        let standing = last_of(&self.records, |r| {
            matches!(r, Record::StandingPromise { .. })
        });
        let rounds = last_of(&self.records, |r| {
            matches!(r, Record::RoundsReserved { .. })
        });
        let floor = last_of(&self.records, |r| matches!(r, Record::Forgotten { .. }));
        let mut index = 0;
        self.records.retain(|record| {
            let keep = match record {
                Record::StandingPromise { .. } => Some(index) == standing,
                Record::RoundsReserved { .. } => Some(index) == rounds,
                Record::Forgotten { .. } => Some(index) == floor,
                other => other.seq().is_some_and(|seq| seq >= below),
            };
            index += 1;
            keep
        });
    }
}

impl<V: Clone> Storage<V> for MemoryStorage<V> {
    fn persist(&mut self, records: &[Record<V>]) -> Result<(), StorageError> {
        self.records.extend_from_slice(records);
        self.persisted += records.len() as u64;
        let floor = records.iter().rev().find_map(|record| match record {
            Record::Forgotten { below } => Some(*below),
            _ => None,
        });
        if let Some(below) = floor {
            self.compact(below);
        }
        Ok(())
    }

    fn load(&self) -> Result<Vec<Record<V>>, StorageError> {
        Ok(self.records.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_storage_keeps_records_in_order_and_compacts_below_the_floor() {
        let b = Ballot::new(1, 0);
        let mut storage: MemoryStorage<u32> = MemoryStorage::new();
        assert!(storage.is_empty());
        storage
            .persist(&[
                Record::RoundsReserved { up_to: 10 },
                Record::Promised { seq: 1, ballot: b },
                Record::Accepted {
                    seq: 2,
                    ballot: b,
                    value: 7,
                },
                Record::StandingPromise { from: 1, ballot: b },
            ])
            .unwrap();
        assert_eq!(storage.len(), 4);
        assert!(!storage.is_empty());
        storage
            .persist(&[
                Record::RoundsReserved { up_to: 20 },
                Record::Forgotten { below: 2 },
            ])
            .unwrap();
        assert_eq!(
            storage.load().unwrap(),
            vec![
                Record::Accepted {
                    seq: 2,
                    ballot: b,
                    value: 7
                },
                Record::StandingPromise { from: 1, ballot: b },
                Record::RoundsReserved { up_to: 20 },
                Record::Forgotten { below: 2 },
            ]
        );
        assert_eq!(storage.persisted(), 6);
    }

    #[test]
    fn a_record_names_its_instance() {
        let record: Record<String> = Record::Accepted {
            seq: 3,
            ballot: Ballot::new(2, 1),
            value: "v".into(),
        };
        assert_eq!(record.seq(), Some(3));
        assert_eq!(Record::<String>::Forgotten { below: 4 }.seq(), None);
        assert_eq!(
            StorageError("disk full".into()).to_string(),
            "paxos storage: disk full"
        );
    }
}
