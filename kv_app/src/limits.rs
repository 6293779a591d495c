//! Limits on what one operation and one batch may carry, so that no write can make a
//! frame over the transport's maximum or hold memory without bound. The client checks
//! them before sending (and answers at once), the server checks them again before
//! taking an operation, and the batcher cuts batches by bytes as well as by entries.

use crate::ops::LogEntry;
use serde::{Deserialize, Serialize};

/// The default largest key, in bytes.
pub const DEFAULT_MAX_KEY: usize = 4 * 1024;
/// The default largest value, in bytes: well under the transport's 16 MiB frame limit,
/// and above the 1 MB values of the MIT kvpaxos tests.
pub const DEFAULT_MAX_VALUE: usize = 2 * 1024 * 1024;
/// The most bytes of entries in one batch (a batch of one larger entry still goes
/// alone), beside [`crate::batcher::MAX_BATCH`] entries.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Room kept in a frame beside one entry's key and value, for the messages around it.
const FRAME_ROOM: usize = 64 * 1024;
/// What an entry costs beyond its key and value, counted for the batch limit.
const ENTRY_OVERHEAD: usize = 64;

/// The limits a node or a client applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_key: usize,
    pub max_value: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key: DEFAULT_MAX_KEY,
            max_value: DEFAULT_MAX_VALUE,
        }
    }
}

/// An operation over a limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TooLarge {
    #[error("the key is {len} bytes, over the limit of {max} bytes (--max-key)")]
    Key { len: usize, max: usize },
    #[error("the value is {len} bytes, over the limit of {max} bytes (--max-value)")]
    Value { len: usize, max: usize },
}

/// Limits that could not work with the transport's frame size.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "a key of {max_key} bytes and a value of {max_value} bytes do not fit in a frame of      {max_frame} bytes with {FRAME_ROOM} bytes to spare: lower --max-value or --max-key"
)]
pub struct LimitsTooLarge {
    pub max_key: usize,
    pub max_value: usize,
    pub max_frame: usize,
}

impl Limits {
    /// Whether one entry at the limits, with the messages around it, fits in a frame of
    /// `max_frame` bytes.
    pub fn fit(&self, max_frame: usize) -> Result<(), LimitsTooLarge> {
        let need = self
            .max_key
            .saturating_add(self.max_value)
            .saturating_add(FRAME_ROOM);
        if need > max_frame {
            return Err(LimitsTooLarge {
                max_key: self.max_key,
                max_value: self.max_value,
                max_frame,
            });
        }
        Ok(())
    }

    /// Whether an operation on `key` with `value` is within the limits.
    pub fn check(&self, key: &str, value: &str) -> Result<(), TooLarge> {
        if key.len() > self.max_key {
            return Err(TooLarge::Key {
                len: key.len(),
                max: self.max_key,
            });
        }
        if value.len() > self.max_value {
            return Err(TooLarge::Value {
                len: value.len(),
                max: self.max_value,
            });
        }
        Ok(())
    }
}

/// The bytes an entry counts for in a batch.
pub fn entry_bytes(entry: &LogEntry) -> usize {
    match entry {
        LogEntry::Op(op) => op.key.len() + op.value.len() + ENTRY_OVERHEAD,
        LogEntry::DeleteRef(_) => ENTRY_OVERHEAD,
    }
}

/// How many of `entries` (oldest first), at most `most`, fit in `max_bytes`; never
/// fewer than one when there is one, so an entry larger than the limit goes alone.
pub fn batch_len<'a>(
    entries: impl IntoIterator<Item = &'a LogEntry>,
    most: usize,
    max_bytes: usize,
) -> usize {
    let mut bytes = 0usize;
    let mut n = 0;
    for e in entries.into_iter().take(most) {
        bytes = bytes.saturating_add(entry_bytes(e));
        if n > 0 && bytes > max_bytes {
            break;
        }
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{OpRef, Operation};

    fn write(len: usize) -> LogEntry {
        LogEntry::Op(Operation::write(
            "k",
            "v".repeat(len),
            OpRef { client: 1, seq: 1 },
        ))
    }

    #[test]
    fn limits_name_what_is_over_and_by_how_much() {
        let l = Limits::default();
        assert_eq!(l.check("k", "v"), Ok(()));
        let e = l
            .check("k", &"v".repeat(DEFAULT_MAX_VALUE + 1))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "the value is {} bytes, over the limit of {DEFAULT_MAX_VALUE} bytes (--max-value)",
                DEFAULT_MAX_VALUE + 1
            )
        );
        assert!(matches!(
            l.check(&"k".repeat(DEFAULT_MAX_KEY + 1), ""),
            Err(TooLarge::Key { .. })
        ));
        assert_eq!(l.fit(16 * 1024 * 1024), Ok(()));
        let huge = Limits {
            max_value: 16 * 1024 * 1024,
            ..l
        };
        assert!(huge.fit(16 * 1024 * 1024).is_err());
    }

    #[test]
    fn batches_are_cut_by_bytes_and_a_big_entry_goes_alone() {
        let entries = [write(900), write(900), write(900), write(10)];
        assert_eq!(batch_len(&entries, 256, 2000), 2);
        assert_eq!(batch_len(&entries, 1, 2000), 1);
        assert_eq!(batch_len(&entries, 256, 100_000), 4);
        assert_eq!(batch_len(&entries[..1], 256, 10), 1);
        assert_eq!(batch_len(&[], 256, 10), 0);
    }
}
