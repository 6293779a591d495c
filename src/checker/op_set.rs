//! A set of operation indices as a bitset of 64-bit words. It keeps up to date, on every
//! change, a fingerprint (Zobrist hashing: the xor of a random-looking word per member)
//! and how many leading words are all ones, so that hashing and storing a set for the
//! memo cache cost little however long the history is.

/// A bitset over `0..len` with an incrementally maintained fingerprint.
#[derive(Debug, Clone)]
pub(crate) struct OpSet {
    words: Vec<u64>,
    fingerprint: u64,
    /// Words `0..full` are all ones.
    full: usize,
    /// Words `used..` are all zeros.
    used: usize,
}

impl OpSet {
    pub fn new(len: usize) -> Self {
        OpSet {
            words: vec![0; len.div_ceil(64)],
            fingerprint: 0,
            full: 0,
            used: 0,
        }
    }

    pub fn contains(&self, index: usize) -> bool {
        self.words[index / 64] & (1 << (index % 64)) != 0
    }

    /// Adds `index`, which must not be in the set.
    pub fn insert(&mut self, index: usize) {
        debug_assert!(!self.contains(index));
        let word = index / 64;
        self.words[word] |= 1 << (index % 64);
        self.fingerprint ^= mix(index as u64);
        self.used = self.used.max(word + 1);
        while self.full < self.words.len() && self.words[self.full] == u64::MAX {
            self.full += 1;
        }
    }

    /// Removes `index`, which must be in the set.
    pub fn remove(&mut self, index: usize) {
        debug_assert!(self.contains(index));
        let word = index / 64;
        self.words[word] &= !(1 << (index % 64));
        self.fingerprint ^= mix(index as u64);
        self.full = self.full.min(word);
        while self.used > 0 && self.words[self.used - 1] == 0 {
            self.used -= 1;
        }
    }

    /// How many leading words are all ones.
    pub fn full_words(&self) -> u32 {
        u32::try_from(self.full).unwrap_or(u32::MAX)
    }

    /// The non-zero words after the leading full ones, with their positions. With
    /// [`OpSet::full_words`] this describes the set exactly.
    pub fn sparse_words(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        let end = self.used.max(self.full);
        (self.full..end)
            .filter(|&index| self.words[index] != 0)
            .map(|index| (u32::try_from(index).unwrap_or(u32::MAX), self.words[index]))
    }

    /// Equal sets have equal fingerprints; different sets almost never do.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

/// SplitMix64's finaliser: a well-spread 64-bit value for each input.
pub(crate) fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_depends_only_on_the_members() {
        let mut a = OpSet::new(130);
        let mut b = OpSet::new(130);
        for i in [3, 129, 64] {
            a.insert(i);
        }
        for i in [64, 3, 129] {
            b.insert(i);
        }
        assert_eq!(a.fingerprint(), b.fingerprint());
        a.remove(129);
        assert!(!a.contains(129) && a.contains(64) && a.contains(3));
        assert_ne!(a.fingerprint(), b.fingerprint());
        a.remove(3);
        a.remove(64);
        assert_eq!(a.fingerprint(), 0);
        assert_eq!(a.sparse_words().count(), 0);
    }

    #[test]
    fn full_and_sparse_words_track_the_members() {
        let sparse = |set: &OpSet| (set.full_words(), set.sparse_words().collect::<Vec<_>>());
        let mut set = OpSet::new(300);
        for i in 0..128 {
            set.insert(i);
        }
        assert_eq!(sparse(&set), (2, vec![]));
        set.insert(130);
        set.insert(290);
        assert_eq!(sparse(&set), (2, vec![(2, 1 << 2), (4, 1 << (290 - 256))]));
        set.remove(5);
        assert_eq!(
            sparse(&set),
            (
                0,
                vec![(0, !(1 << 5)), (1, u64::MAX), (2, 1 << 2), (4, 1 << 34)]
            )
        );
        set.remove(130);
        set.remove(290);
        set.insert(5);
        assert_eq!(sparse(&set), (2, vec![]));
        for i in 0..128 {
            set.remove(i);
        }
        assert_eq!(sparse(&set), (0, vec![]));
    }
}
