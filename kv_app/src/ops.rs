//! Client operations and the log entries that carry them through Paxos.
//!
//! A decided Paxos value is a batch of log entries (`crate::Batch`, shared between the
//! processes that hold it). These types hold no runtime types: where to send a reply is
//! tracked by the process layer, not here.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What an operation does to its key; spelt `read`, `write`, `write-hash` in text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpKind {
    /// Returns the key's value, `""` if it was never written.
    Read,
    /// Stores the value and returns it.
    Write,
    /// Stores `phash2(previous ++ value)` as a decimal string and returns the previous value.
    WriteHash,
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpKind::Read => "read",
            OpKind::Write => "write",
            OpKind::WriteHash => "write-hash",
        })
    }
}

/// Identifies one client operation: a client id (random u64 per client incarnation) and
/// the client's own sequence number (each client has at most one operation outstanding,
/// numbered 1, 2, 3 ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OpRef {
    pub client: u64,
    pub seq: u64,
}

impl fmt::Display for OpRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}#{}", self.client, self.seq)
    }
}

/// One client operation as it is proposed and decided. `value` is ignored by reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Operation {
    pub kind: OpKind,
    pub key: String,
    pub value: String,
    pub reference: OpRef,
}

impl Operation {
    /// A read of `key`.
    pub fn read(key: impl Into<String>, reference: OpRef) -> Self {
        Self {
            kind: OpKind::Read,
            key: key.into(),
            value: String::new(),
            reference,
        }
    }

    /// A write of `value` under `key`.
    pub fn write(key: impl Into<String>, value: impl Into<String>, reference: OpRef) -> Self {
        Self {
            kind: OpKind::Write,
            key: key.into(),
            value: value.into(),
            reference,
        }
    }

    /// A write_hash of `value` under `key`.
    pub fn write_hash(key: impl Into<String>, value: impl Into<String>, reference: OpRef) -> Self {
        Self {
            kind: OpKind::WriteHash,
            key: key.into(),
            value: value.into(),
            reference,
        }
    }
}

/// One entry of a decided batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LogEntry {
    /// A client operation to apply (at most once per reference).
    Op(Operation),
    /// The client has its answer: the held result for this reference may be dropped.
    DeleteRef(OpRef),
}

impl LogEntry {
    /// The reference this entry is about.
    pub fn reference(&self) -> OpRef {
        match self {
            LogEntry::Op(operation) => operation.reference,
            LogEntry::DeleteRef(reference) => *reference,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_set_kind_key_value_and_reference() {
        let reference = OpRef { client: 7, seq: 3 };
        let read = Operation::read("k", reference);
        assert_eq!(
            (read.kind, read.key.as_str(), read.value.as_str()),
            (OpKind::Read, "k", "")
        );
        let write = Operation::write("k", "v", reference);
        assert_eq!((write.kind, write.value.as_str()), (OpKind::Write, "v"));
        let write_hash = Operation::write_hash("k", "v", reference);
        assert_eq!(write_hash.kind, OpKind::WriteHash);
        assert_eq!(LogEntry::Op(write_hash).reference(), reference);
        assert_eq!(LogEntry::DeleteRef(reference).reference(), reference);
    }

    #[test]
    fn display_names_match_the_command_line() {
        assert_eq!(OpKind::Read.to_string(), "read");
        assert_eq!(OpKind::Write.to_string(), "write");
        assert_eq!(OpKind::WriteHash.to_string(), "write-hash");
        assert_eq!(
            OpRef {
                client: 255,
                seq: 4
            }
            .to_string(),
            "00000000000000ff#4"
        );
    }
}
