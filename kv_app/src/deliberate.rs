//! Deliberate bugs, for tests only: switches that break one rule of the kv service so
//! that a test can prove the whole-cluster simulation catches the break (a simulation
//! that never fails proves nothing). Every switch is off by default and the product never
//! sets one.

/// Which deliberate bugs are switched on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliberateBugs {
    /// The DB manager applies an operation again when its (client, seq) is decided a
    /// second time, instead of answering its held result (breaks exactly-once).
    pub apply_duplicates: bool,
}
