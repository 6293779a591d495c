//! The replicated key-value application: operations, the DB state machine and write_hash's hash.
pub mod ops;
pub mod phash2;
pub mod store;
