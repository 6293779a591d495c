//! The search for a linearization of one key's operations: Wing & Gong's algorithm with
//! Lowe's memoisation, as Porcupine does it. The search walks the time-ordered events,
//! linearizes ("lifts") a pending call whose step the model accepts, backtracks
//! ("unlifts") when it meets a return it could not place, and never explores a
//! configuration twice.
//!
//! Refinements keep it fast without changing its answer:
//! - A read that returns the current value is placed without trying alternatives to it
//!   (see [`Pass`]).
//! - Operations without an answer return at +infinity and accept any answer. They never
//!   need to be placed, since "placed last" and "never took effect" look the same, so the
//!   search places one only where it can matter: after the answered candidates failed,
//!   when some chain of them leaves a value an answered candidate returns (see
//!   `ChainOracle`), never right before a write (which would erase it unseen), and, if the
//!   value it leaves was never returned by anyone, only right before another unanswered
//!   write-hash. Any linearization can be rearranged to follow these rules by moving such
//!   unseen operations to the end.
//! - Long chains are tried last (see [`check_key`]).

use std::collections::HashSet;

use super::Excerpt;
use super::chains::{ChainOracle, OutOfBudget};
use super::event_list::{EventList, NIL};
use super::history::{OpKind, Operation};
use super::memo::Memo;
use super::model::{KeyModel, ModelOp, ValueId};
use super::op_set::OpSet;

/// How many of the last operations of the longest linearizable prefix an excerpt shows.
const PREFIX_TAIL_LEN: usize = 5;
/// How many other not-yet-placed operations an excerpt shows at most.
const PENDING_LIMIT: usize = 10;

/// The answer for one key.
#[derive(Debug)]
pub(crate) enum KeyVerdict {
    Linearizable,
    NotLinearizable(Box<Excerpt>),
    /// The step budget ran out first.
    Unknown,
}

/// Checks the operations of one key (all must share it) within `budget` units of work:
/// one per search step, per step of `ChainOracle`, and per 64-bit word the memo stores.
///
/// Chains of unanswered operations cost the search a factorial of their number, so it
/// first looks for a linearization with chains of at most one, then two, operations (what a
/// history usually needs), and only then without limit, which alone can prove there is
/// none.
pub(crate) fn check_key<H>(operations: &[&Operation], hash: &H, budget: u64) -> KeyVerdict
where
    H: Fn(&str, &str) -> String,
{
    check_key_ordered(operations, hash, budget).0
}

/// As [`check_key`], with the linearization found when there is one: the operations
/// that took effect, in order (unanswered ones that need not have are left out).
pub(crate) fn check_key_ordered<'o, H>(
    operations: &[&'o Operation],
    hash: &H,
    budget: u64,
) -> (KeyVerdict, Option<Vec<&'o Operation>>)
where
    H: Fn(&str, &str) -> String,
{
    // An unanswered read changes nothing and constrains nothing.
    let mut operations: Vec<&Operation> = operations
        .iter()
        .copied()
        .filter(|op| op.kind != OpKind::Read || op.return_time().is_some())
        .collect();
    if operations.is_empty() {
        return (KeyVerdict::Linearizable, Some(Vec::new()));
    }
    // Numbered in call order, answered ones first, the linearized operations are mostly
    // a prefix, which the memo stores in a word or two: unanswered operations that never
    // took effect would otherwise leave holes in it.
    operations.sort_by_key(|op| (op.return_time().is_none(), op.call));
    let mut model = KeyModel::new(hash);
    let problem = KeyProblem::new(&operations, &mut model);
    let unanswered = |kind| {
        operations
            .iter()
            .filter(|op| op.kind == kind && op.return_time().is_none())
            .count()
    };
    let longest_chain = unanswered(OpKind::WriteHash) + unanswered(OpKind::Write).min(1);
    let mut work = 0;
    for limit in [1, 2] {
        if limit >= longest_chain {
            break;
        }
        let mut search = Search::new(&problem, &mut model, Some(limit), work, budget);
        match search.run() {
            SearchEnd::Found => {
                return (KeyVerdict::Linearizable, Some(search.order(&operations)));
            }
            SearchEnd::OutOfBudget => return (KeyVerdict::Unknown, None),
            SearchEnd::Exhausted => work = search.work,
        }
    }
    let mut search = Search::new(&problem, &mut model, None, work, budget);
    match search.run() {
        SearchEnd::Found => (KeyVerdict::Linearizable, Some(search.order(&operations))),
        SearchEnd::OutOfBudget => (KeyVerdict::Unknown, None),
        SearchEnd::Exhausted => (
            KeyVerdict::NotLinearizable(Box::new(search.excerpt(&operations))),
            None,
        ),
    }
}

/// What the searches for one key share: the operations, and how the model sees them.
struct KeyProblem<'o> {
    operations: &'o [&'o Operation],
    model_ops: Vec<ModelOp>,
    /// Whether each operation's answer is known.
    answered: Vec<bool>,
    /// Every value some read or write-hash returned.
    observed: HashSet<ValueId>,
}

impl<'o> KeyProblem<'o> {
    fn new<H: Fn(&str, &str) -> String>(
        operations: &'o [&'o Operation],
        model: &mut KeyModel<'_, H>,
    ) -> Self {
        let model_ops = operations
            .iter()
            .map(|op| ModelOp {
                kind: op.kind,
                input: model.intern(&op.value),
                output: op.result().map(|result| model.intern(result)),
            })
            .collect();
        let observed = operations
            .iter()
            .filter(|op| op.kind != OpKind::Write)
            .filter_map(|op| op.result())
            .map(|result| model.intern(result))
            .collect();
        KeyProblem {
            operations,
            model_ops,
            answered: operations
                .iter()
                .map(|op| op.return_time().is_some())
                .collect(),
            observed,
        }
    }
}

/// Which pending calls a scan of the event list tries. Each level tries answered reads
/// first, then the other answered operations, then the unanswered ones.
///
/// A read that returns the current value can go first in any linearization from here
/// (it changes nothing, and being a candidate it was called before every pending
/// operation returned), so the first such read is the only choice its level needs.
/// An operation that timed out is rarely what the next return needs, so those come last.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Reads,
    Updates,
    Unanswered,
}

impl Pass {
    fn of(answered: bool, kind: OpKind) -> Pass {
        match (answered, kind) {
            (false, _) => Pass::Unanswered,
            (true, OpKind::Read) => Pass::Reads,
            (true, _) => Pass::Updates,
        }
    }

    fn includes(self, answered: bool, kind: OpKind) -> bool {
        Pass::of(answered, kind) == self
    }

    /// The pass after this one at the same level, if any.
    fn after(self, has_unanswered: bool) -> Option<Pass> {
        match self {
            Pass::Reads => Some(Pass::Updates),
            Pass::Updates if has_unanswered => Some(Pass::Unanswered),
            _ => None,
        }
    }
}

enum SearchEnd {
    Found,
    Exhausted,
    OutOfBudget,
}

/// The state of one search for a key's linearization.
struct Search<'p, 'm, 'h, H> {
    problem: &'p KeyProblem<'p>,
    model: &'m mut KeyModel<'h, H>,
    events: EventList,
    /// Whether any operation's answer is unknown (else one pass per level is enough).
    has_unanswered: bool,
    /// The longest chain of unanswered operations to try; `None`: any.
    chain_limit: Option<usize>,
    /// The operations linearized so far.
    placed: OpSet,
    memo: Memo,
    chains: ChainOracle,
    /// The linearized operations in order, each with the value before it and the length
    /// of the chain of unanswered operations it ends (0 if answered).
    stack: Vec<(usize, ValueId, usize)>,
    /// Answered operations not yet linearized.
    known_left: usize,
    work: u64,
    budget: u64,
    /// The furthest the search got, for the excerpt of a failure.
    deepest: Option<Deepest>,
}

/// A snapshot of the search at its longest linearizable prefix.
struct Deepest {
    placed: OpSet,
    state: ValueId,
    /// The last few operations of the prefix, oldest first.
    tail: Vec<usize>,
    len: usize,
}

impl<'p, 'm, 'h, H: Fn(&str, &str) -> String> Search<'p, 'm, 'h, H> {
    /// A search that has already spent `work` of its `budget`.
    fn new(
        problem: &'p KeyProblem<'p>,
        model: &'m mut KeyModel<'h, H>,
        chain_limit: Option<usize>,
        work: u64,
        budget: u64,
    ) -> Self {
        Search {
            events: EventList::new(problem.operations),
            has_unanswered: problem.answered.contains(&false),
            chain_limit,
            placed: OpSet::new(problem.operations.len()),
            memo: Memo::default(),
            chains: ChainOracle::default(),
            stack: Vec::new(),
            known_left: problem.answered.iter().filter(|&&a| a).count(),
            work,
            budget,
            deepest: None,
            problem,
            model,
        }
    }

    fn run(&mut self) -> SearchEnd {
        let mut state = self.model.initial();
        let mut entry = self.events.first();
        let mut pass = Pass::Reads;
        loop {
            if self.known_left == 0 {
                return SearchEnd::Found;
            }
            self.work += 1;
            if self.work > self.budget {
                return SearchEnd::OutOfBudget;
            }
            if entry == NIL {
                // Unreachable: a pending call's return always follows it in the list.
                return SearchEnd::Exhausted;
            }
            let op = self.events.op_of[entry];
            let model_op = self.problem.model_ops[op];
            let level_failed = if !self.events.is_call[entry] {
                // The end of this pass over the level's candidates.
                match self.next_pass(pass, state) {
                    Ok(Some(next_pass)) => {
                        pass = next_pass;
                        entry = self.events.first();
                        continue;
                    }
                    Ok(None) => true,
                    Err(OutOfBudget) => return SearchEnd::OutOfBudget,
                }
            } else if pass.includes(self.problem.answered[op], model_op.kind)
                && self.may_follow(op, state)
                && let Some(next_state) = self.model.step(state, &model_op)
            {
                if self.place(op, state, next_state) {
                    state = next_state;
                    entry = self.events.first();
                    pass = Pass::Reads;
                    continue;
                }
                // A read that fits is as good as any other choice at its level (see
                // `Pass::Reads`), so if it led nowhere before, neither does this level.
                pass == Pass::Reads
            } else {
                false
            };
            if !level_failed {
                entry = self.events.next[entry];
                continue;
            }
            // Undo placements until one whose level has candidates left, and go on with
            // the candidates after it, in the pass it was found in.
            loop {
                let Some(undone) = self.undo_last(&mut state) else {
                    return SearchEnd::Exhausted;
                };
                let kind = self.problem.model_ops[undone].kind;
                pass = Pass::of(self.problem.answered[undone], kind);
                if pass != Pass::Reads {
                    entry = self.events.next[self.events.call_node[undone]];
                    break;
                }
            }
        }
    }

    /// The operations placed, in linearization order.
    fn order<'o>(&self, operations: &[&'o Operation]) -> Vec<&'o Operation> {
        self.stack
            .iter()
            .map(|&(op, _, _)| operations[op])
            .collect()
    }

    /// The length of the chain of unanswered operations placed last.
    fn current_chain(&self) -> usize {
        self.stack.last().map_or(0, |&(_, _, chain)| chain)
    }

    /// Linearizes `op` (taking `state` to `next_state`) unless that configuration was
    /// explored before; returns whether it did.
    fn place(&mut self, op: usize, state: ValueId, next_state: ValueId) -> bool {
        let answered = self.problem.answered[op];
        let chain = if answered {
            0
        } else {
            self.current_chain() + 1
        };
        // Without a limit, only whether a chain is going on changes what may come next.
        let chain_in_memo = if self.chain_limit.is_some() {
            chain
        } else {
            chain.min(1)
        };
        self.placed.insert(op);
        let (new, stored) = self.memo.insert_if_new(
            &self.placed,
            next_state,
            u32::try_from(chain_in_memo).unwrap_or(u32::MAX),
        );
        self.work += stored;
        if !new {
            self.placed.remove(op);
            return false;
        }
        self.stack.push((op, state, chain));
        if answered {
            self.known_left -= 1;
        }
        self.events.lift(op);
        self.note_depth(next_state);
        true
    }

    /// Takes back the last placement, restoring `state`; returns the operation, or `None`
    /// when nothing is placed.
    fn undo_last(&mut self, state: &mut ValueId) -> Option<usize> {
        let (undone, previous_state, _) = self.stack.pop()?;
        *state = previous_state;
        self.placed.remove(undone);
        if self.problem.answered[undone] {
            self.known_left += 1;
        }
        self.events.unlift(undone);
        Some(undone)
    }

    /// The pass to make over this level's candidates after `pass`, if any is worth it.
    fn next_pass(&mut self, pass: Pass, state: ValueId) -> Result<Option<Pass>, OutOfBudget> {
        match pass.after(self.has_unanswered) {
            Some(Pass::Unanswered) if !self.unanswered_can_help(state)? => Ok(None),
            next_pass => Ok(next_pass),
        }
    }

    /// Whether placing unanswered operations at this level can lead anywhere (see
    /// `ChainOracle`).
    fn unanswered_can_help(&mut self, state: ValueId) -> Result<bool, OutOfBudget> {
        let chain = self.current_chain();
        let chain_left = self
            .chain_limit
            .map_or(usize::MAX, |limit| limit.saturating_sub(chain));
        let mut candidates = Vec::new();
        let mut targets = Vec::new();
        let mut entry = self.events.first();
        while entry != NIL && self.events.is_call[entry] {
            let op = self.events.op_of[entry];
            let model_op = &self.problem.model_ops[op];
            if !self.problem.answered[op] {
                candidates.push(op);
            } else if let (OpKind::Read | OpKind::WriteHash, Some(output)) =
                (model_op.kind, model_op.output)
            {
                targets.push(output);
            }
            entry = self.events.next[entry];
        }
        candidates.sort_unstable();
        self.chains.can_help(
            self.model,
            &self.problem.model_ops,
            state,
            candidates,
            &targets,
            chain == 0,
            chain_left,
            &mut self.work,
            self.budget,
        )
    }

    /// Whether `op` may be placed next, given the value `state` the placed ones leave:
    /// the rules for what may follow an unanswered operation (see the module doc).
    fn may_follow(&self, op: usize, state: ValueId) -> bool {
        let chain = self.current_chain();
        if chain == 0 {
            return true;
        }
        match (self.problem.model_ops[op].kind, self.problem.answered[op]) {
            (OpKind::Write, _) => false,
            (_, true) => self.problem.observed.contains(&state),
            (_, false) => self.chain_limit.is_none_or(|limit| chain < limit),
        }
    }

    fn note_depth(&mut self, state: ValueId) {
        if self
            .deepest
            .as_ref()
            .is_some_and(|d| d.len >= self.stack.len())
        {
            return;
        }
        let from = self.stack.len().saturating_sub(PREFIX_TAIL_LEN);
        self.deepest = Some(Deepest {
            placed: self.placed.clone(),
            state,
            tail: self.stack[from..].iter().map(|&(op, _, _)| op).collect(),
            len: self.stack.len(),
        });
    }

    /// What to show for a key with no linearization: the end of the longest linearizable
    /// prefix found, the operation whose return came before it could be placed, and the
    /// other operations pending at that point.
    fn excerpt(&self, operations: &[&Operation]) -> Excerpt {
        let empty = OpSet::new(operations.len());
        let (placed, state, tail, len) = match &self.deepest {
            Some(d) => (&d.placed, d.state, d.tail.as_slice(), d.len),
            None => (&empty, self.model.initial(), &[][..], 0),
        };
        let unplaced = |op: &usize| !placed.contains(*op);
        let stuck = (0..operations.len())
            .filter(unplaced)
            .filter(|&op| self.problem.answered[op])
            .min_by_key(|&op| self.events.return_node[op]);
        let stuck_return = stuck.map_or(NIL, |op| self.events.return_node[op]);
        let mut pending: Vec<usize> = (0..operations.len())
            .filter(unplaced)
            .filter(|&op| Some(op) != stuck && self.events.call_node[op] < stuck_return)
            .collect();
        pending.sort_by_key(|&op| self.events.call_node[op]);
        let pending_omitted = pending.len().saturating_sub(PENDING_LIMIT);
        pending.truncate(PENDING_LIMIT);
        Excerpt {
            prefix_len: len,
            value_after_prefix: self.model.value(state).to_string(),
            prefix_tail: tail.iter().map(|&op| operations[op].clone()).collect(),
            stuck: stuck.map(|op| operations[op].clone()),
            pending: pending.iter().map(|&op| operations[op].clone()).collect(),
            pending_omitted,
        }
    }
}
