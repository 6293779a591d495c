//! The sequential specification of one key of the key-value service, and a fast form of
//! it for the search: values interned as small integers, write-hash results memoised.

use std::collections::HashMap;

use super::history::OpKind;

/// The specification: applies one operation with argument `input` to the key's current
/// value `state`, giving `(what the operation returns, the key's new value)`.
/// A key never written holds `""`.
pub fn apply(
    kind: OpKind,
    state: &str,
    input: &str,
    hash: &impl Fn(&str, &str) -> String,
) -> (String, String) {
    match kind {
        OpKind::Read => (state.to_string(), state.to_string()),
        OpKind::Write => (input.to_string(), input.to_string()),
        OpKind::WriteHash => (state.to_string(), hash(state, input)),
    }
}

/// A value interned by [`KeyModel`]: equal values have equal ids.
pub(crate) type ValueId = u32;

/// An operation as the search sees it: argument and (if known) answer interned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ModelOp {
    pub kind: OpKind,
    pub input: ValueId,
    /// `None` when the outcome is unknown: any answer is accepted.
    pub output: Option<ValueId>,
}

/// [`apply`] over interned values, for one key.
pub(crate) struct KeyModel<'h, H> {
    hash: &'h H,
    ids: HashMap<String, ValueId>,
    values: Vec<String>,
    write_hash_results: HashMap<(ValueId, ValueId), ValueId>,
}

impl<'h, H: Fn(&str, &str) -> String> KeyModel<'h, H> {
    pub fn new(hash: &'h H) -> Self {
        let mut model = KeyModel {
            hash,
            ids: HashMap::new(),
            values: Vec::new(),
            write_hash_results: HashMap::new(),
        };
        model.intern("");
        model
    }

    /// The value of a key never written.
    pub fn initial(&self) -> ValueId {
        0
    }

    pub fn intern(&mut self, value: &str) -> ValueId {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let id = ValueId::try_from(self.values.len()).unwrap_or(ValueId::MAX);
        self.values.push(value.to_string());
        self.ids.insert(value.to_string(), id);
        id
    }

    /// The id of `value` if it has one (every value the history mentions has).
    pub fn lookup(&self, value: &str) -> Option<ValueId> {
        self.ids.get(value).copied()
    }

    /// What `write_hash` stores, without remembering it.
    pub fn hash(&self, previous: &str, value: &str) -> String {
        (self.hash)(previous, value)
    }

    pub fn value(&self, id: ValueId) -> &str {
        self.values.get(id as usize).map_or("", String::as_str)
    }

    /// The key's value after `op` runs on `state`, or `None` if `op` could not have
    /// answered what it did.
    pub fn step(&mut self, state: ValueId, op: &ModelOp) -> Option<ValueId> {
        match op.kind {
            OpKind::Read => op.output.is_none_or(|out| out == state).then_some(state),
            OpKind::Write => op
                .output
                .is_none_or(|out| out == op.input)
                .then_some(op.input),
            OpKind::WriteHash => {
                if op.output.is_some_and(|out| out != state) {
                    return None;
                }
                if let Some(&next) = self.write_hash_results.get(&(state, op.input)) {
                    return Some(next);
                }
                let (_, next) = apply(
                    OpKind::WriteHash,
                    self.value(state),
                    self.value(op.input),
                    self.hash,
                );
                let next = self.intern(&next);
                self.write_hash_results.insert((state, op.input), next);
                Some(next)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concat_hash(prev: &str, v: &str) -> String {
        format!("h({prev}{v})")
    }

    #[test]
    fn the_specification() {
        let h = &concat_hash;
        assert_eq!(apply(OpKind::Read, "", "", h), ("".into(), "".into()));
        assert_eq!(apply(OpKind::Write, "a", "b", h), ("b".into(), "b".into()));
        assert_eq!(
            apply(OpKind::WriteHash, "a", "b", h),
            ("a".into(), "h(ab)".into())
        );
    }

    #[test]
    fn interned_steps_follow_the_specification() {
        let hash = concat_hash;
        let mut model = KeyModel::new(&hash);
        let empty = model.initial();
        let a = model.intern("a");
        let write_a = ModelOp {
            kind: OpKind::Write,
            input: a,
            output: Some(a),
        };
        assert_eq!(model.step(empty, &write_a), Some(a));
        let wrong_write = ModelOp {
            kind: OpKind::Write,
            input: a,
            output: Some(empty),
        };
        assert_eq!(model.step(empty, &wrong_write), None);

        let read_a = ModelOp {
            kind: OpKind::Read,
            input: empty,
            output: Some(a),
        };
        assert_eq!(model.step(a, &read_a), Some(a));
        assert_eq!(model.step(empty, &read_a), None);

        let hash_a = ModelOp {
            kind: OpKind::WriteHash,
            input: a,
            output: Some(a),
        };
        let next = model.step(a, &hash_a).unwrap();
        assert_eq!(model.value(next), "h(aa)");
        assert_eq!(
            model.step(a, &hash_a),
            Some(next),
            "memoised result is the same"
        );
        assert_eq!(model.step(empty, &hash_a), None);

        let unknown = ModelOp {
            kind: OpKind::WriteHash,
            input: a,
            output: None,
        };
        let hashed = model.step(empty, &unknown).unwrap();
        assert_eq!(model.value(hashed), "h(a)");
    }
}
