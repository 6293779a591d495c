//! Whether operations that never answered can help at a point of the search. There,
//! after a run ("chain") of unanswered operations — at most one write, first, then
//! write-hashes — the next operation placed must be an answered read or write-hash that
//! returns the value the chain leaves. If no chain leaves such a value, trying the
//! unanswered operations at that point is wasted work, and that work grows with the
//! factorial of their number. This walks the chains (up to a given length) once per
//! distinct situation and remembers which of the values the history mentions they leave.

use std::collections::HashMap;

use super::history::OpKind;
use super::model::{KeyModel, ModelOp, ValueId};

/// A situation: the value before the chain, the unanswered candidates (sorted), whether
/// the chain may start with a write, and its longest allowed length.
type Situation = (ValueId, Vec<usize>, bool, usize);

/// For each situation met so far, the values the history mentions that some chain leaves.
#[derive(Default)]
pub(crate) struct ChainOracle {
    known: HashMap<Situation, Vec<ValueId>>,
}

/// Ran out of work budget.
pub(crate) struct OutOfBudget;

impl ChainOracle {
    /// Whether some chain of at most `max_len` of the `candidates` (sorted), starting
    /// from `state`, leaves a value in `targets`. Counts one unit of `work` per step.
    #[allow(clippy::too_many_arguments)]
    pub fn can_help<H: Fn(&str, &str) -> String>(
        &mut self,
        model: &KeyModel<'_, H>,
        ops: &[ModelOp],
        state: ValueId,
        candidates: Vec<usize>,
        targets: &[ValueId],
        write_may_start: bool,
        max_len: usize,
        work: &mut u64,
        budget: u64,
    ) -> Result<bool, OutOfBudget> {
        if candidates.is_empty() || targets.is_empty() || max_len == 0 {
            return Ok(false);
        }
        let situation = (state, candidates, write_may_start, max_len);
        if let Some(reached) = self.known.get(&situation) {
            return Ok(reached.iter().any(|value| targets.contains(value)));
        }
        let mut used = vec![false; situation.1.len()];
        let mut search = ChainSearch {
            model,
            ops,
            candidates: &situation.1,
            used: &mut used,
            reached: Vec::new(),
            work,
            budget,
        };
        search.walk(model.value(state), write_may_start, max_len)?;
        let mut reached = search.reached;
        reached.sort_unstable();
        reached.dedup();
        let answer = reached.iter().any(|value| targets.contains(value));
        self.known.insert(situation, reached);
        Ok(answer)
    }
}

/// A depth-first walk over every chain of one situation. Values met on the way are not
/// interned: almost all are hashes nobody will see again.
struct ChainSearch<'s, 'm, 'h, H> {
    model: &'s KeyModel<'h, H>,
    ops: &'s [ModelOp],
    candidates: &'s [usize],
    used: &'s mut [bool],
    /// The values reached that the history mentions.
    reached: Vec<ValueId>,
    work: &'m mut u64,
    budget: u64,
}

impl<H: Fn(&str, &str) -> String> ChainSearch<'_, '_, '_, H> {
    fn walk(
        &mut self,
        state: &str,
        write_may_come: bool,
        len_left: usize,
    ) -> Result<(), OutOfBudget> {
        if len_left == 0 {
            return Ok(());
        }
        for index in 0..self.candidates.len() {
            let op = self.ops[self.candidates[index]];
            if self.used[index] || (op.kind == OpKind::Write && !write_may_come) {
                continue;
            }
            *self.work += 1;
            if *self.work > self.budget {
                return Err(OutOfBudget);
            }
            let input = self.model.value(op.input);
            let next = match op.kind {
                OpKind::Write => input.to_string(),
                OpKind::WriteHash => self.model.hash(state, input),
                // Reads change nothing; none is ever a candidate here.
                OpKind::Read => continue,
            };
            if let Some(id) = self.model.lookup(&next) {
                self.reached.push(id);
            }
            self.used[index] = true;
            let walked = self.walk(&next, false, len_left - 1);
            self.used[index] = false;
            walked?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concat_hash(prev: &str, v: &str) -> String {
        format!("{prev}{v}")
    }

    #[test]
    fn finds_a_chain_only_when_one_reaches_a_target() {
        let hash = concat_hash;
        let mut model = KeyModel::new(&hash);
        let [a, b, w, ab, ba, wb] = ["a", "b", "w", "ab", "ba", "wb"].map(|v| model.intern(v));
        let empty = model.initial();
        let hash_op = |input| ModelOp {
            kind: OpKind::WriteHash,
            input,
            output: None,
        };
        let ops = [
            hash_op(a),
            hash_op(b),
            ModelOp {
                kind: OpKind::Write,
                input: w,
                output: None,
            },
        ];
        let mut oracle = ChainOracle::default();
        let mut work = 0;
        // The same situations come back with other targets: answered from memory.
        let mut ask =
            |state, candidates: Vec<usize>, targets: Vec<ValueId>, write_first, max_len| {
                oracle
                    .can_help(
                        &model,
                        &ops,
                        state,
                        candidates,
                        &targets,
                        write_first,
                        max_len,
                        &mut work,
                        1_000,
                    )
                    .ok()
                    .expect("within budget")
            };
        let any = usize::MAX;
        assert!(ask(empty, vec![0, 1], vec![ab], true, any), "a then b");
        assert!(ask(empty, vec![0, 1], vec![ba], true, any), "b then a");
        assert!(ask(empty, vec![0, 1], vec![a], true, 1), "a alone");
        assert!(!ask(empty, vec![0, 1], vec![ab], true, 1), "too long");
        assert!(
            !ask(empty, vec![0], vec![ab], true, any),
            "b is not a candidate"
        );
        assert!(
            ask(empty, vec![0, 1, 2], vec![wb], true, any),
            "the write, then b"
        );
        assert!(
            !ask(empty, vec![0, 1, 2], vec![wb], false, any),
            "no write may start it"
        );
        assert!(
            !ask(a, vec![0, 1], vec![empty], true, any),
            "nothing gives the empty value"
        );
        assert!(!ask(empty, vec![], vec![ab], true, any));
    }

    #[test]
    fn gives_up_when_the_budget_runs_out() {
        let hash = concat_hash;
        let mut model = KeyModel::new(&hash);
        let inputs: Vec<ValueId> = (0..8).map(|i| model.intern(&i.to_string())).collect();
        let ops: Vec<ModelOp> = inputs
            .iter()
            .map(|&input| ModelOp {
                kind: OpKind::WriteHash,
                input,
                output: None,
            })
            .collect();
        let target = model.intern("unreachable");
        let mut work = 0;
        let answer = ChainOracle::default().can_help(
            &model,
            &ops,
            0,
            (0..8).collect(),
            &[target],
            true,
            usize::MAX,
            &mut work,
            500,
        );
        assert!(answer.is_err());
    }
}
