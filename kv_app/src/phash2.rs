//! Erlang's `erlang:phash2/1` for Erlang strings, bit-exact, and the value `write_hash` stores.
//!
//! An Erlang string is a proper list of Unicode code points. OTP hashes such a list with
//! `make_hash2` (a Jenkins-style mix): runs of code points that fit in a byte are packed
//! four to a 32-bit word before mixing, any other code point is mixed as a small integer,
//! and the closing `[]` is mixed last. `phash2/1` keeps the low 27 bits.

/// Jenkins' golden-ratio constant: the salt OTP uses when mixing a small integer.
const GOLDEN_RATIO: u32 = 0x9e37_79b9;
/// Salt for the closing `[]` of a non-empty list (`GOLDEN_RATIO * 2` mod 2^32).
const NIL_SALT: u32 = GOLDEN_RATIO.wrapping_mul(2);
/// Salt for a word of packed byte-sized list elements (`GOLDEN_RATIO * 4` mod 2^32).
const PACKED_BYTES_SALT: u32 = GOLDEN_RATIO.wrapping_mul(4);
/// The number OTP mixes for `[]` (its internal type code for nil).
const NIL_TYPE_CODE: u32 = 2;
/// The hash of `[]` on its own, a fixed value in OTP.
const EMPTY_LIST_HASH: u32 = 3_468_870_702;
/// `phash2/1` returns values in `0..2^27`.
const PHASH2_RANGE_MASK: u32 = (1 << 27) - 1;

/// `erlang:phash2(unicode:characters_to_list(s))`: the hash of the Erlang string holding
/// the code points of `s`, in `0..2^27`.
pub fn phash2_string(s: &str) -> u32 {
    hash_code_point_list(s.chars().map(u32::from)) & PHASH2_RANGE_MASK
}

/// The value `write_hash` stores: the decimal string of `phash2(previous ++ value)`.
pub fn write_hash_value(previous: &str, value: &str) -> String {
    let code_points = previous.chars().chain(value.chars()).map(u32::from);
    (hash_code_point_list(code_points) & PHASH2_RANGE_MASK).to_string()
}

/// OTP's full 32-bit `make_hash2` of a proper list of non-negative small integers.
fn hash_code_point_list(code_points: impl Iterator<Item = u32>) -> u32 {
    let mut hash = 0;
    let mut packed = PackedBytes::default();
    for code_point in code_points {
        if code_point <= 0xff {
            if let Some(word) = packed.push(code_point) {
                hash = mix_word(hash, PACKED_BYTES_SALT, word);
            }
        } else {
            if let Some(word) = packed.take() {
                hash = mix_word(hash, PACKED_BYTES_SALT, word);
            }
            hash = mix_word(hash, GOLDEN_RATIO, code_point);
        }
    }
    if let Some(word) = packed.take() {
        hash = mix_word(hash, PACKED_BYTES_SALT, word);
    }
    if hash == 0 {
        EMPTY_LIST_HASH
    } else {
        mix_word(hash, NIL_SALT, NIL_TYPE_CODE)
    }
}

/// Up to four consecutive byte-sized list elements, packed big-end first into one word.
#[derive(Default)]
struct PackedBytes {
    word: u32,
    count: u8,
}

impl PackedBytes {
    /// Adds one byte; returns the full word once it holds four.
    fn push(&mut self, byte: u32) -> Option<u32> {
        self.word = (self.word << 8) | byte;
        self.count += 1;
        if self.count == 4 { self.take() } else { None }
    }

    /// Returns the partial word, if any byte is pending, and starts afresh.
    fn take(&mut self) -> Option<u32> {
        let pending = (self.count > 0).then_some(self.word);
        *self = Self::default();
        pending
    }
}

/// Mixes one 32-bit word into `hash` the way OTP's `UINT32_HASH` does.
fn mix_word(hash: u32, salt: u32, word: u32) -> u32 {
    jenkins_mix(salt.wrapping_add(word), salt, hash)
}

/// Bob Jenkins' 96-bit mix; returns the mixed third word.
fn jenkins_mix(mut a: u32, mut b: u32, mut c: u32) -> u32 {
    a = a.wrapping_sub(b).wrapping_sub(c) ^ (c >> 13);
    b = b.wrapping_sub(c).wrapping_sub(a) ^ (a << 8);
    c = c.wrapping_sub(a).wrapping_sub(b) ^ (b >> 13);
    a = a.wrapping_sub(b).wrapping_sub(c) ^ (c >> 12);
    b = b.wrapping_sub(c).wrapping_sub(a) ^ (a << 16);
    c = c.wrapping_sub(a).wrapping_sub(b) ^ (b >> 5);
    a = a.wrapping_sub(b).wrapping_sub(c) ^ (c >> 3);
    b = b.wrapping_sub(c).wrapping_sub(a) ^ (a << 10);
    c.wrapping_sub(a).wrapping_sub(b) ^ (b >> 15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_string_is_the_fixed_nil_hash() {
        assert_eq!(phash2_string(""), EMPTY_LIST_HASH & PHASH2_RANGE_MASK);
        assert_eq!(phash2_string(""), 113_427_502);
    }

    #[test]
    fn write_hash_chain_from_empty_matches_erlang() {
        let first = write_hash_value("", "0");
        let second = write_hash_value(&first, "1");
        let third = write_hash_value(&second, "2");
        assert_eq!(
            [first, second, third],
            ["14788753", "91417210", "107295499"]
        );
        assert_eq!(write_hash_value("", "x"), "113605034");
    }

    #[test]
    fn write_hash_value_hashes_the_concatenation() {
        for (previous, value) in [("ab", "cd"), ("", "é€😀"), ("hé", "llo 𝄞"), ("abcde", "")]
        {
            let joined = format!("{previous}{value}");
            assert_eq!(
                write_hash_value(previous, value),
                phash2_string(&joined).to_string()
            );
        }
    }
}
