//! The DB manager's state machine: the data DB and the references DB, applied in
//! Paxos instance order with every operation run exactly once.
//!
//! Exactly-once rests on the client discipline: a client incarnation has at most one
//! operation outstanding and numbers them 1, 2, 3 ..., so per client it is enough to keep
//! the highest sequence number applied and the result of that operation (the "references
//! DB" of the original). An operation whose sequence number is not above that mark is a
//! duplicate and is never applied again:
//! - if it is the latest one and its result is still held, it is answered again with that
//!   result, marked `duplicate`;
//! - if it is older, or its result was dropped by a `DeleteRef` (the client already has
//!   its answer), nothing is returned for it: nobody is waiting for that answer.
//!
//! The high-water mark outlives `DeleteRef`, so a late duplicate is still recognised; the
//! cost is one small record per client incarnation ever seen.
//!
//! The store is plain data (`Clone`, serde): the process layer keeps it outside the DB
//! manager process so that a restarted DB manager finds it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::deliberate::DeliberateBugs;
use crate::ops::{LogEntry, OpKind, OpRef, Operation};
use crate::phash2::write_hash_value;

/// Why a batch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    /// Instances must be applied one after another, starting at 1.
    #[error("cannot apply instance {got}: the next instance to apply is {expected}")]
    OutOfOrder { expected: u64, got: u64 },
}

/// The answer for one operation of an applied batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub reference: OpRef,
    /// read: the value (`""` if missing); write: the value written; write_hash: the
    /// previous value (`""` if missing).
    pub result: String,
    /// True when the operation had already been applied and this is its held result.
    pub duplicate: bool,
}

/// What the references DB remembers about one client incarnation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ClientRecord {
    /// The highest sequence number applied for this client.
    highest_seq: u64,
    /// The result of operation `highest_seq`, until the client asks for it to be deleted.
    held_result: Option<String>,
}

/// The data DB, the references DB and how far the decided log has been applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Store {
    data: HashMap<String, String>,
    clients: HashMap<u64, ClientRecord>,
    applied_through: u64,
    /// Test-only switches (all off in the product).
    #[serde(skip)]
    deliberate: DeliberateBugs,
}

impl Store {
    /// An empty store: no keys, nothing applied (the first instance is 1).
    pub fn new() -> Self {
        Self::default()
    }

    /// This store with deliberate bugs switched on or off (restored stores keep none).
    pub fn with_deliberate(mut self, deliberate: DeliberateBugs) -> Self {
        self.deliberate = deliberate;
        self
    }

    /// An empty store with deliberate bugs switched on (tests only).
    pub fn with_deliberate_bugs(deliberate: DeliberateBugs) -> Self {
        Store {
            deliberate,
            ..Self::default()
        }
    }

    /// Applies the batch decided in `instance`, which must be `applied_through() + 1`.
    /// Returns one `Applied` per operation that has an answer to give, in batch order
    /// (see the module documentation for duplicates).
    pub fn apply(
        &mut self,
        instance: u64,
        entries: &[LogEntry],
    ) -> Result<Vec<Applied>, StoreError> {
        let expected = self.applied_through + 1;
        if instance != expected {
            return Err(StoreError::OutOfOrder {
                expected,
                got: instance,
            });
        }
        let mut answers = Vec::new();
        for entry in entries {
            match entry {
                LogEntry::Op(operation) => answers.extend(self.apply_operation(operation)),
                LogEntry::DeleteRef(reference) => self.delete_reference(*reference),
            }
        }
        self.applied_through = instance;
        Ok(answers)
    }

    /// The value stored under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.data.get(key).map(String::as_str)
    }

    /// Number of keys stored.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The highest instance applied (0 before the first).
    pub fn applied_through(&self) -> u64 {
        self.applied_through
    }

    /// The result held for `reference`, if it is its client's latest applied operation
    /// and has not been deleted.
    pub fn held_result(&self, reference: OpRef) -> Option<&str> {
        self.clients
            .get(&reference.client)
            .filter(|record| record.highest_seq == reference.seq)
            .and_then(|record| record.held_result.as_deref())
    }

    /// Number of results held, waiting for their client to ask for deletion.
    pub fn held_results(&self) -> usize {
        self.clients
            .values()
            .filter(|record| record.held_result.is_some())
            .count()
    }

    /// Every key and value, sorted by key (to compare replicas).
    pub fn entries(&self) -> std::collections::BTreeMap<String, String> {
        self.data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn apply_operation(&mut self, operation: &Operation) -> Option<Applied> {
        let reference = operation.reference;
        if let Some(record) = self.clients.get(&reference.client)
            && reference.seq <= record.highest_seq
            && !self.deliberate.apply_duplicates
        {
            return self.answer_duplicate(reference, record);
        }
        let result = self.execute(operation);
        self.clients.insert(
            reference.client,
            ClientRecord {
                highest_seq: reference.seq,
                held_result: Some(result.clone()),
            },
        );
        Some(Applied {
            reference,
            result,
            duplicate: false,
        })
    }

    fn answer_duplicate(&self, reference: OpRef, record: &ClientRecord) -> Option<Applied> {
        match &record.held_result {
            Some(result) if record.highest_seq == reference.seq => {
                log::debug!("operation {reference} decided again: answering its held result");
                Some(Applied {
                    reference,
                    result: result.clone(),
                    duplicate: true,
                })
            }
            _ => {
                log::debug!("operation {reference} decided again after it was answered: ignored");
                None
            }
        }
    }

    /// Runs one operation on the data DB and returns its result.
    fn execute(&mut self, operation: &Operation) -> String {
        let key = &operation.key;
        match operation.kind {
            OpKind::Read => self.data.get(key).cloned().unwrap_or_default(),
            OpKind::Write => {
                self.data.insert(key.clone(), operation.value.clone());
                operation.value.clone()
            }
            OpKind::WriteHash => {
                let previous = self.data.get(key).cloned().unwrap_or_default();
                let stored = write_hash_value(&previous, &operation.value);
                self.data.insert(key.clone(), stored);
                previous
            }
        }
    }

    fn delete_reference(&mut self, reference: OpRef) {
        match self.clients.get_mut(&reference.client) {
            Some(record) if record.highest_seq == reference.seq => record.held_result = None,
            Some(record) if record.highest_seq > reference.seq => {}
            _ => log::warn!("delete of reference {reference}, which was never applied: ignored"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn reference(client: u64, seq: u64) -> OpRef {
        OpRef { client, seq }
    }

    fn op(operation: Operation) -> LogEntry {
        LogEntry::Op(operation)
    }

    fn fresh(reference: OpRef, result: &str) -> Applied {
        Applied {
            reference,
            result: result.to_string(),
            duplicate: false,
        }
    }

    fn again(reference: OpRef, result: &str) -> Applied {
        Applied {
            reference,
            result: result.to_string(),
            duplicate: true,
        }
    }

    /// Applies `entries` as the next instance; panics on an ordering error.
    fn apply_next(store: &mut Store, entries: &[LogEntry]) -> Vec<Applied> {
        let instance = store.applied_through() + 1;
        store
            .apply(instance, entries)
            .unwrap_or_else(|error| panic!("instance {instance}: {error}"))
    }

    #[test]
    fn read_of_a_missing_key_is_empty_and_stores_nothing() {
        let mut store = Store::new();
        let r = reference(1, 1);
        assert_eq!(
            apply_next(&mut store, &[op(Operation::read("k", r))]),
            [fresh(r, "")]
        );
        assert_eq!(store.get("k"), None);
        assert!(store.is_empty());
        assert_eq!(store.applied_through(), 1);
    }

    #[test]
    fn write_stores_and_returns_the_value_and_read_sees_it() {
        let mut store = Store::new();
        let (w, r) = (reference(1, 1), reference(1, 2));
        assert_eq!(
            apply_next(&mut store, &[op(Operation::write("k", "v1", w))]),
            [fresh(w, "v1")]
        );
        assert_eq!(
            apply_next(&mut store, &[op(Operation::read("k", r))]),
            [fresh(r, "v1")]
        );
        assert_eq!(store.get("k"), Some("v1"));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn write_hash_returns_previous_and_stores_the_erlang_hash() {
        let mut store = Store::new();
        let mut answers = Vec::new();
        for (seq, value) in [(1, "0"), (2, "1"), (3, "2")] {
            answers.extend(apply_next(
                &mut store,
                &[op(Operation::write_hash("k", value, reference(9, seq)))],
            ));
        }
        let previous: Vec<&str> = answers.iter().map(|a| a.result.as_str()).collect();
        assert_eq!(previous, ["", "14788753", "91417210"]);
        assert_eq!(store.get("k"), Some("107295499"));
    }

    #[test]
    fn operations_in_one_batch_apply_in_order() {
        let mut store = Store::new();
        let answers = apply_next(
            &mut store,
            &[
                op(Operation::write("k", "a", reference(1, 1))),
                op(Operation::write_hash("k", "x", reference(2, 1))),
                op(Operation::read("k", reference(3, 1))),
            ],
        );
        let expected_hash = write_hash_value("a", "x");
        assert_eq!(
            answers,
            [
                fresh(reference(1, 1), "a"),
                fresh(reference(2, 1), "a"),
                fresh(reference(3, 1), &expected_hash),
            ]
        );
    }

    #[test]
    fn a_duplicate_runs_once_and_answers_the_held_result() {
        let mut store = Store::new();
        let w = reference(5, 1);
        let write = op(Operation::write("k", "first", w));
        assert_eq!(
            apply_next(&mut store, std::slice::from_ref(&write)),
            [fresh(w, "first")]
        );
        // Another client overwrites; the late duplicate must not write "first" again.
        apply_next(
            &mut store,
            &[op(Operation::write("k", "second", reference(6, 1)))],
        );
        assert_eq!(
            apply_next(&mut store, std::slice::from_ref(&write)),
            [again(w, "first")]
        );
        assert_eq!(store.get("k"), Some("second"));
        // The same operation twice in one batch: applied once, answered twice.
        let w2 = reference(5, 2);
        let write2 = op(Operation::write("j", "v", w2));
        assert_eq!(
            apply_next(&mut store, &[write2.clone(), write2]),
            [fresh(w2, "v"), again(w2, "v")]
        );
    }

    #[test]
    fn write_hash_is_applied_once_under_duplication() {
        let mut store = Store::new();
        let h = reference(3, 1);
        let write_hash = op(Operation::write_hash("k", "x", h));
        for round in 0..4 {
            let answers = apply_next(&mut store, &[write_hash.clone(), write_hash.clone()]);
            assert_eq!(answers.len(), 2, "round {round}");
            assert!(answers.iter().all(|a| a.result.is_empty()), "round {round}");
        }
        assert_eq!(store.get("k"), Some(write_hash_value("", "x").as_str()));
        assert_eq!(store.get("k"), Some("113605034"));
    }

    #[test]
    fn after_delete_a_late_duplicate_is_ignored() {
        let mut store = Store::new();
        let h = reference(4, 1);
        let write_hash = op(Operation::write_hash("k", "x", h));
        apply_next(&mut store, std::slice::from_ref(&write_hash));
        assert_eq!(store.held_result(h), Some(""));
        assert_eq!(store.held_results(), 1);
        assert_eq!(apply_next(&mut store, &[LogEntry::DeleteRef(h)]), []);
        assert_eq!(store.held_result(h), None);
        assert_eq!(store.held_results(), 0);
        assert_eq!(apply_next(&mut store, &[write_hash]), []);
        assert_eq!(store.get("k"), Some("113605034"));
    }

    #[test]
    fn an_older_operation_of_the_same_client_is_ignored() {
        let mut store = Store::new();
        let (old, new) = (reference(8, 1), reference(8, 2));
        apply_next(&mut store, &[op(Operation::write("k", "old", old))]);
        apply_next(&mut store, &[op(Operation::write("k", "new", new))]);
        assert_eq!(
            apply_next(&mut store, &[op(Operation::write("k", "old", old))]),
            []
        );
        assert_eq!(store.get("k"), Some("new"));
        // Deleting the old reference must not drop the newer result.
        apply_next(&mut store, &[LogEntry::DeleteRef(old)]);
        assert_eq!(store.held_result(new), Some("new"));
    }

    #[test]
    fn deleting_a_never_applied_reference_changes_nothing() {
        let mut store = Store::new();
        let r = reference(2, 1);
        apply_next(&mut store, &[LogEntry::DeleteRef(r)]);
        assert_eq!(
            apply_next(&mut store, &[op(Operation::write("k", "v", r))]),
            [fresh(r, "v")]
        );
    }

    #[test]
    fn instances_must_be_applied_in_order() {
        let mut store = Store::new();
        let write = [op(Operation::write("k", "v", reference(1, 1)))];
        assert_eq!(
            store.apply(2, &write),
            Err(StoreError::OutOfOrder {
                expected: 1,
                got: 2
            })
        );
        assert_eq!(store.applied_through(), 0);
        assert_eq!(store.get("k"), None);
        assert_eq!(store.apply(1, &write).map(|a| a.len()), Ok(1));
        assert_eq!(
            store.apply(1, &write),
            Err(StoreError::OutOfOrder {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            store.apply(3, &[]),
            Err(StoreError::OutOfOrder {
                expected: 2,
                got: 3
            })
        );
        assert_eq!(store.apply(2, &[]), Ok(Vec::new()));
        assert_eq!(store.applied_through(), 2);
    }

    #[test]
    fn a_copy_holds_the_whole_state_and_goes_on_alone() {
        let mut store = Store::new();
        let w = reference(1, 1);
        let write = op(Operation::write("k", "v", w));
        apply_next(&mut store, std::slice::from_ref(&write));
        let mut restored = store.clone();
        assert_eq!(restored, store);
        apply_next(
            &mut store,
            &[op(Operation::write("k", "changed", reference(2, 1)))],
        );
        assert_eq!(restored.get("k"), Some("v"));
        assert_eq!(restored.applied_through(), 1);
        assert_eq!(apply_next(&mut restored, &[write]), [again(w, "v")]);
    }

    /// A straightforward model: remembers every reference ever applied and its result.
    #[derive(Default)]
    struct Model {
        data: HashMap<String, String>,
        results: HashMap<OpRef, String>,
        latest: HashMap<u64, u64>,
        deleted: HashSet<OpRef>,
    }

    impl Model {
        fn apply(&mut self, entries: &[LogEntry]) -> Vec<Applied> {
            let mut answers = Vec::new();
            for entry in entries {
                match entry {
                    LogEntry::Op(operation) => {
                        let r = operation.reference;
                        if let Some(result) = self.results.get(&r) {
                            if self.latest.get(&r.client) == Some(&r.seq)
                                && !self.deleted.contains(&r)
                            {
                                answers.push(again(r, result));
                            }
                            continue;
                        }
                        let previous = self.data.get(&operation.key).cloned().unwrap_or_default();
                        let result = match operation.kind {
                            OpKind::Read => previous,
                            OpKind::Write => {
                                self.data
                                    .insert(operation.key.clone(), operation.value.clone());
                                operation.value.clone()
                            }
                            OpKind::WriteHash => {
                                let stored = write_hash_value(&previous, &operation.value);
                                self.data.insert(operation.key.clone(), stored);
                                previous
                            }
                        };
                        self.results.insert(r, result.clone());
                        self.latest.insert(r.client, r.seq);
                        answers.push(fresh(r, &result));
                    }
                    LogEntry::DeleteRef(r) => {
                        self.deleted.insert(*r);
                    }
                }
            }
            answers
        }
    }

    /// What one simulated client has done so far.
    struct SimulatedClient {
        id: u64,
        sent: Vec<Operation>,
        /// The last sent operation has been decided (the client has its answer).
        answered: bool,
    }

    /// Builds one batch as clients, retrying operation managers and lost replies would.
    fn random_batch(rng: &mut ChaCha8Rng, clients: &mut [SimulatedClient]) -> Vec<LogEntry> {
        const KEYS: [&str; 3] = ["a", "b", "c"];
        let mut batch = Vec::new();
        for _ in 0..rng.random_range(1..=4) {
            let index = rng.random_range(0..clients.len());
            let client = &mut clients[index];
            match rng.random_range(0..10) {
                // A new operation, only once the previous one was answered.
                0..=3 if client.answered || client.sent.is_empty() => {
                    let r = reference(client.id, client.sent.len() as u64 + 1);
                    let key = KEYS[rng.random_range(0..KEYS.len())];
                    let value = rng.random_range(0..100u32).to_string();
                    let operation = match rng.random_range(0..3) {
                        0 => Operation::read(key, r),
                        1 => Operation::write(key, value, r),
                        _ => Operation::write_hash(key, value, r),
                    };
                    client.sent.push(operation.clone());
                    client.answered = false;
                    batch.push(LogEntry::Op(operation));
                }
                // A resend of any operation already sent: the latest or a late old one.
                0..=6 if !client.sent.is_empty() => {
                    let pick = if rng.random_bool(0.7) {
                        client.sent.len() - 1
                    } else {
                        rng.random_range(0..client.sent.len())
                    };
                    batch.push(LogEntry::Op(client.sent[pick].clone()));
                }
                // A delete of an answered operation (possibly resent, possibly old).
                _ if client.answered => {
                    let pick = rng.random_range(0..client.sent.len());
                    batch.push(LogEntry::DeleteRef(client.sent[pick].reference));
                }
                _ => {}
            }
        }
        batch
    }

    #[test]
    fn random_batches_with_duplicates_match_the_model() {
        let base_seed = std::env::var("KV_STORE_TEST_SEED")
            .ok()
            .and_then(|text| text.parse::<u64>().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |elapsed| elapsed.as_nanos() as u64)
            });
        for round in 0..20 {
            let seed = base_seed.wrapping_add(round);
            check_against_model(seed);
        }
    }

    fn check_against_model(seed: u64) {
        let context = format!("seed {seed} (rerun with KV_STORE_TEST_SEED={seed})");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut clients: Vec<SimulatedClient> = (0..4)
            .map(|i| SimulatedClient {
                id: 1000 + i,
                sent: Vec::new(),
                answered: false,
            })
            .collect();
        let mut store = Store::new();
        let mut model = Model::default();
        let mut duplicates_answered = 0;
        for instance in 1..=300 {
            let batch = random_batch(&mut rng, &mut clients);
            let expected = model.apply(&batch);
            let answers = store
                .apply(instance, &batch)
                .unwrap_or_else(|error| panic!("{context}: instance {instance}: {error}"));
            assert_eq!(
                answers, expected,
                "{context}: instance {instance}, batch {batch:?}"
            );
            duplicates_answered += answers.iter().filter(|a| a.duplicate).count();
            for client in &mut clients {
                if client
                    .sent
                    .last()
                    .is_some_and(|last| model.results.contains_key(&last.reference))
                {
                    client.answered = true;
                }
            }
        }
        for key in ["a", "b", "c"] {
            assert_eq!(
                store.get(key),
                model.data.get(key).map(String::as_str),
                "{context}: key {key}"
            );
        }
        assert_eq!(store.len(), model.data.len(), "{context}");
        assert_eq!(store.applied_through(), 300, "{context}");
        assert!(
            duplicates_answered > 0,
            "{context}: the run exercised no duplicate"
        );
    }
}
