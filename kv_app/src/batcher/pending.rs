//! The batcher's pending entries, oldest first: who asked for each and since when. It
//! also counts the entries of each local manager, so that a manager's repeated `Propose`
//! (it asks again when no `Proposed` came in time) is recognised without scanning every
//! pending entry on each `Propose`.

use crate::ops::LogEntry;
use runtime::Pid;
use runtime::clock::Instant;
use std::collections::HashMap;

/// Who is told the instance of an entry: a manager on this node, or (at the leader) the
/// batcher of the node that forwarded it.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Origin {
    Manager(Pid),
    Batcher(Pid),
}

/// An entry waiting to be proposed, who asked, and since when.
pub(super) struct Waiting {
    pub(super) entry: LogEntry,
    pub(super) origin: Origin,
    pub(super) since: Instant,
}

/// The entries waiting to be proposed or forwarded, oldest first.
#[derive(Default)]
pub(super) struct Pending {
    waiting: Vec<Waiting>,
    /// How many of `waiting` each local manager has (never zero: a manager with none is
    /// not a key).
    managers: HashMap<Pid, usize>,
}

impl Pending {
    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }

    pub(super) fn iter(&self) -> std::slice::Iter<'_, Waiting> {
        self.waiting.iter()
    }

    /// Adds `manager`'s `entry`, unless that very entry of that manager already waits.
    pub(super) fn add_from_manager(&mut self, entry: LogEntry, manager: Pid, since: Instant) {
        let count = self.managers.entry(manager.clone()).or_default();
        // Only a manager with an entry here can be asking again: the scan is for that
        // rare case.
        if *count > 0
            && self.waiting.iter().any(|w| {
                matches!(&w.origin, Origin::Manager(m) if *m == manager) && w.entry == entry
            })
        {
            return;
        }
        *count += 1;
        self.waiting.push(Waiting {
            entry,
            origin: Origin::Manager(manager),
            since,
        });
    }

    /// Adds the entries a follower's `batcher` forwarded (not checked for duplicates: the
    /// follower sent each entry once, a forward may be a whole batch, and an entry
    /// proposed twice is harmless anyway).
    pub(super) fn add_forwarded(&mut self, entries: Vec<LogEntry>, batcher: &Pid, since: Instant) {
        self.waiting
            .extend(entries.into_iter().map(|entry| Waiting {
                entry,
                origin: Origin::Batcher(batcher.clone()),
                since,
            }));
    }

    /// Puts entries taken out earlier back in front of the others.
    pub(super) fn put_back(&mut self, mut older: Vec<Waiting>) {
        if older.is_empty() {
            return;
        }
        for w in &older {
            if let Origin::Manager(m) = &w.origin {
                *self.managers.entry(m.clone()).or_default() += 1;
            }
        }
        older.append(&mut self.waiting);
        self.waiting = older;
    }

    /// Takes out the oldest entries, at most `most`.
    pub(super) fn take_oldest(&mut self, most: usize) -> Vec<Waiting> {
        let take = self.waiting.len().min(most);
        let taken: Vec<Waiting> = self.waiting.drain(..take).collect();
        for w in &taken {
            uncount(&mut self.managers, w);
        }
        taken
    }

    /// Takes out the oldest entries, at most `most` and, but for a first entry larger
    /// than that, at most `max_bytes` ([`crate::limits::batch_len`]).
    pub(super) fn take_oldest_within(&mut self, most: usize, max_bytes: usize) -> Vec<Waiting> {
        let n = crate::limits::batch_len(self.waiting.iter().map(|w| &w.entry), most, max_bytes);
        self.take_oldest(n)
    }

    /// Keeps only the entries `keep` holds to.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Waiting) -> bool) {
        let managers = &mut self.managers;
        self.waiting.retain(|w| {
            let kept = keep(w);
            if !kept {
                uncount(managers, w);
            }
            kept
        });
    }
}

/// `w` left the pending entries: one fewer for its manager.
fn uncount(managers: &mut HashMap<Pid, usize>, w: &Waiting) {
    if let Origin::Manager(m) = &w.origin
        && let Some(count) = managers.get_mut(m)
    {
        *count -= 1;
        if *count == 0 {
            managers.remove(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{OpRef, Operation};
    use runtime::{Node, NodeRole};

    fn entry(seq: u64) -> LogEntry {
        LogEntry::Op(Operation::read("k", OpRef { client: 1, seq }))
    }

    fn listed(pending: &Pending) -> Vec<(LogEntry, Origin)> {
        pending
            .iter()
            .map(|w| (w.entry.clone(), w.origin.clone()))
            .collect()
    }

    /// The counts match the entries: `managers` is what counting `waiting` gives.
    fn assert_counted(pending: &Pending, step: &str) {
        let mut counted: HashMap<Pid, usize> = HashMap::new();
        for w in pending.iter() {
            if let Origin::Manager(m) = &w.origin {
                *counted.entry(m.clone()).or_default() += 1;
            }
        }
        assert_eq!(pending.managers, counted, "after {step}");
    }

    #[test]
    fn a_manager_asking_again_for_a_waiting_entry_adds_nothing() {
        let node = Node::new("pending@mem", NodeRole::Server);
        let (pa, pb) = (node.attach(), node.attach());
        let (a, b) = (pa.pid().clone(), pb.pid().clone());
        assert_ne!(a, b);
        let now = runtime::clock::now();
        let mut pending = Pending::default();
        pending.add_from_manager(entry(1), a.clone(), now);
        pending.add_from_manager(entry(1), a.clone(), now);
        // The same entry from another manager, or from a forwarding batcher, is another
        // request; another entry of the same manager too.
        pending.add_from_manager(entry(1), b.clone(), now);
        pending.add_forwarded(vec![entry(1)], &a, now);
        pending.add_from_manager(entry(2), a.clone(), now);
        pending.add_from_manager(entry(2), a.clone(), now);
        assert_eq!(
            listed(&pending),
            [
                (entry(1), Origin::Manager(a.clone())),
                (entry(1), Origin::Manager(b.clone())),
                (entry(1), Origin::Batcher(a.clone())),
                (entry(2), Origin::Manager(a.clone())),
            ]
        );
        assert_counted(&pending, "adding");

        // Taken out, an entry may be asked for again; put back, it is a repeat again.
        let taken = pending.take_oldest(2);
        assert_eq!(taken.len(), 2);
        assert_counted(&pending, "take_oldest");
        pending.add_from_manager(entry(1), b.clone(), now);
        assert_eq!(pending.len(), 3);
        assert_counted(&pending, "asking again");
        pending.retain(|w| w.origin != Origin::Manager(b.clone()));
        assert_counted(&pending, "retain");
        pending.put_back(taken);
        assert_counted(&pending, "put_back");
        pending.add_from_manager(entry(1), b.clone(), now);
        pending.add_from_manager(entry(1), a.clone(), now);
        assert_eq!(
            listed(&pending),
            [
                (entry(1), Origin::Manager(a.clone())),
                (entry(1), Origin::Manager(b.clone())),
                (entry(1), Origin::Batcher(a.clone())),
                (entry(2), Origin::Manager(a.clone())),
            ]
        );

        // Dropped by `retain`, every entry may be asked for again.
        pending.retain(|_| false);
        assert_counted(&pending, "dropping all");
        pending.add_from_manager(entry(1), a.clone(), now);
        pending.add_from_manager(entry(2), a, now);
        assert_eq!(pending.len(), 2);
        assert_counted(&pending, "adding again");
    }
}
