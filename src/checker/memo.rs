//! Lowe's memoisation for the search: every configuration (set of linearized operations,
//! value, length of the run of unanswered operations placed last) reached so far, so none
//! is explored twice.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::model::ValueId;
use super::op_set::{OpSet, mix};

/// A stored set: its count of leading full words and the non-zero words after them, with
/// their positions (usually one or two, whatever the history's length).
type StoredSet = (u32, Box<[(u32, u64)]>);

#[derive(Default)]
pub(crate) struct Memo {
    seen: HashMap<u64, Vec<(StoredSet, ValueId, u32)>, BuildHasherDefault<PassThroughHasher>>,
    /// Room to lay out the set being looked up.
    scratch: Vec<(u32, u64)>,
}

impl Memo {
    /// Records a configuration; false if it was there already. Returns as well the number
    /// of words it stored, for the work budget.
    pub fn insert_if_new(&mut self, placed: &OpSet, state: ValueId, chain: u32) -> (bool, u64) {
        let key = placed.fingerprint()
            ^ mix(u64::from(state) | (1 << 63))
            ^ mix(u64::from(chain) | (1 << 62));
        let full = placed.full_words();
        self.scratch.clear();
        self.scratch.extend(placed.sparse_words());
        let rest = self.scratch.as_slice();
        let bucket = self.seen.entry(key).or_default();
        let already = bucket.iter().any(|((f, words), value, run)| {
            *value == state && *run == chain && *f == full && **words == *rest
        });
        if already {
            return (false, 0);
        }
        bucket.push(((full, rest.into()), state, chain));
        (true, rest.len() as u64 + 1)
    }
}

/// A hasher for keys that are already well-mixed 64-bit values.
#[derive(Default)]
pub(crate) struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = mix(self.0 ^ u64::from(byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_is_new_once() {
        let mut memo = Memo::default();
        let mut set = OpSet::new(200);
        for i in 0..70 {
            set.insert(i);
        }
        set.insert(150);
        assert!(memo.insert_if_new(&set, 1, 0).0);
        assert!(!memo.insert_if_new(&set, 1, 0).0);
        assert!(memo.insert_if_new(&set, 2, 0).0, "another value");
        assert!(
            memo.insert_if_new(&set, 1, 1).0,
            "after an unanswered operation"
        );
        set.remove(150);
        set.insert(151);
        assert!(memo.insert_if_new(&set, 1, 0).0, "another set");
    }
}
