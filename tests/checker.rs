//! Tests of the linearizability checker: hand-made histories with known verdicts, many
//! seeded random histories of a real linearizable register (which must pass) and
//! corrupted copies of them (which must fail), small random histories against a
//! brute-force checker, the work the search needs, the step budget, and the file
//! interface.
//!
//! Set `CHECKER_SEED` to run the random tests from another base seed.

use std::time::{Duration, Instant};

use paxoskv::checker::{
    CheckError, CheckResult, DEFAULT_STEP_BUDGET, OpKind, Operation, Outcome, check_file,
    check_history,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A stand-in for phash2: FNV-1a over `prev ++ v`, spelt so it never looks like a value
/// the tests write (those never start with `#`).
fn toy_hash(prev: &str, v: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in prev.bytes().chain(v.bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("#{hash:016x}")
}

fn check(ops: &[Operation]) -> CheckResult {
    check_history(ops, toy_hash, DEFAULT_STEP_BUDGET).expect("a valid history")
}

fn done(
    client: u64,
    kind: OpKind,
    key: &str,
    value: &str,
    result: &str,
    call: u64,
    ret: u64,
) -> Operation {
    Operation {
        client,
        kind,
        key: key.to_string(),
        value: value.to_string(),
        call,
        outcome: Outcome::Returned {
            result: result.to_string(),
            at: ret,
        },
    }
}

fn write(client: u64, value: &str, call: u64, ret: u64) -> Operation {
    done(client, OpKind::Write, "k", value, value, call, ret)
}

fn read(client: u64, result: &str, call: u64, ret: u64) -> Operation {
    done(client, OpKind::Read, "k", "", result, call, ret)
}

fn write_hash(client: u64, value: &str, previous: &str, call: u64, ret: u64) -> Operation {
    done(client, OpKind::WriteHash, "k", value, previous, call, ret)
}

fn timed_out(client: u64, kind: OpKind, value: &str, call: u64) -> Operation {
    Operation {
        client,
        kind,
        key: "k".to_string(),
        value: value.to_string(),
        call,
        outcome: Outcome::Unknown {
            error: "timeout".to_string(),
            gave_up_at: Some(call + 1_000),
        },
    }
}

fn assert_linearizable(ops: &[Operation]) {
    let result = check(ops);
    assert_eq!(result, CheckResult::Linearizable, "{result}");
}

fn assert_not_linearizable(ops: &[Operation]) -> Box<paxoskv::checker::Excerpt> {
    match check(ops) {
        CheckResult::NotLinearizable { excerpt, .. } => excerpt,
        other => panic!("expected not linearizable, got {other}"),
    }
}

#[test]
fn a_sequential_history_of_every_kind_passes() {
    let h1 = toy_hash("a", "x");
    assert_linearizable(&[
        read(1, "", 0, 1),
        write(1, "a", 2, 3),
        read(1, "a", 4, 5),
        write_hash(1, "x", "a", 6, 7),
        read(1, &h1, 8, 9),
        write_hash(1, "y", &h1, 10, 11),
        read(1, &toy_hash(&h1, "y"), 12, 13),
    ]);
}

#[test]
fn an_empty_history_passes() {
    assert_linearizable(&[]);
}

#[test]
fn a_read_of_a_value_never_written_fails() {
    let excerpt = assert_not_linearizable(&[read(1, "ghost", 0, 1)]);
    assert_eq!(excerpt.prefix_len, 0);
    assert_eq!(
        excerpt.stuck.as_ref().and_then(|op| op.result()),
        Some("ghost")
    );
}

#[test]
fn a_stale_read_fails_and_the_excerpt_points_at_it() {
    let stale = read(3, "a", 40, 50);
    let excerpt =
        assert_not_linearizable(&[write(1, "a", 0, 10), write(2, "b", 20, 30), stale.clone()]);
    assert_eq!(excerpt.prefix_len, 2);
    assert_eq!(excerpt.value_after_prefix, "b");
    assert_eq!(excerpt.stuck, Some(stale));
    assert!(excerpt.pending.is_empty());
}

#[test]
fn a_lost_write_fails() {
    assert_not_linearizable(&[write(1, "a", 0, 10), read(2, "", 20, 30)]);
}

#[test]
fn a_write_hash_applied_twice_fails() {
    let once = toy_hash("", "x");
    let twice = toy_hash(&once, "x");
    assert_linearizable(&[write_hash(1, "x", "", 0, 10), read(2, &once, 20, 30)]);
    assert_not_linearizable(&[write_hash(1, "x", "", 0, 10), read(2, &twice, 20, 30)]);
    // A resent write-hash executed twice shows up as a second answer of the first value.
    assert_not_linearizable(&[
        write_hash(1, "x", "", 0, 10),
        write_hash(1, "x", "", 20, 30),
    ]);
}

#[test]
fn a_write_answering_another_value_fails() {
    assert_not_linearizable(&[done(1, OpKind::Write, "k", "a", "b", 0, 10)]);
}

#[test]
fn reads_concurrent_with_a_write_may_see_either_value() {
    let history = |first: &str, second: &str| {
        vec![
            write(1, "a", 0, 10),
            write(2, "b", 20, 40),
            read(3, first, 25, 35),
            read(4, second, 30, 38),
        ]
    };
    assert_linearizable(&history("a", "a"));
    assert_linearizable(&history("a", "b"));
    assert_linearizable(&history("b", "b"));
    // Overlapping reads may also disagree the other way round.
    assert_linearizable(&history("b", "a"));
    // But once a read has returned the new value, a later read cannot see the old one.
    assert_not_linearizable(&[
        write(1, "a", 0, 10),
        write(2, "b", 20, 60),
        read(3, "b", 25, 35),
        read(4, "a", 36, 45),
    ]);
}

#[test]
fn operations_touching_at_one_instant_count_as_concurrent() {
    assert_linearizable(&[write(1, "a", 0, 10), read(2, "", 10, 20)]);
    assert_not_linearizable(&[write(1, "a", 0, 10), read(2, "", 11, 20)]);
}

#[test]
fn a_timed_out_write_may_take_effect_or_not() {
    let base = || vec![write(1, "a", 0, 10), timed_out(2, OpKind::Write, "b", 20)];
    let with = |extra: Vec<Operation>| base().into_iter().chain(extra).collect::<Vec<_>>();
    assert_linearizable(&with(vec![read(3, "b", 30, 40)]));
    assert_linearizable(&with(vec![read(3, "a", 30, 40)]));
    // Late effect: first the old value, then the new.
    assert_linearizable(&with(vec![read(3, "a", 30, 40), read(3, "b", 50, 60)]));
    // No undoing it once seen.
    assert_not_linearizable(&with(vec![read(3, "b", 30, 40), read(3, "a", 50, 60)]));
    // Nor any third value.
    assert_not_linearizable(&with(vec![read(3, "c", 30, 40)]));
}

#[test]
fn a_timed_out_operation_cannot_take_effect_before_its_call() {
    assert_not_linearizable(&[
        write(1, "a", 0, 10),
        read(2, "b", 20, 30),
        timed_out(3, OpKind::Write, "b", 40),
    ]);
}

#[test]
fn a_timed_out_write_hash_may_take_effect_or_not() {
    let hashed = toy_hash("a", "x");
    let base = || {
        vec![
            write(1, "a", 0, 10),
            timed_out(2, OpKind::WriteHash, "x", 20),
        ]
    };
    let with = |extra: Operation| base().into_iter().chain([extra]).collect::<Vec<_>>();
    assert_linearizable(&with(read(3, &hashed, 30, 40)));
    assert_linearizable(&with(read(3, "a", 30, 40)));
    assert_not_linearizable(&with(read(3, &toy_hash("", "x"), 30, 40)));
}

#[test]
fn timed_out_write_hashes_may_take_effect_back_to_back_in_any_order() {
    let (x, y, z) = ("x", "y", "z");
    let history = |seen: &str| {
        vec![
            write(1, "a", 0, 10),
            timed_out(2, OpKind::WriteHash, x, 20),
            timed_out(3, OpKind::WriteHash, y, 21),
            timed_out(4, OpKind::WriteHash, z, 22),
            read(5, seen, 30, 40),
        ]
    };
    let h = |prev: &str, v: &str| toy_hash(prev, v);
    assert_linearizable(&history(&h("a", y)));
    assert_linearizable(&history(&h(&h("a", y), x)));
    assert_linearizable(&history(&h(&h(&h("a", z), x), y)));
    // Each took effect at most once.
    assert_not_linearizable(&history(&h(&h("a", x), x)));
    // Not before its call: here the read returned before the write-hash of x was sent.
    let mut early = history(&h("a", x));
    early[1].call = 45;
    assert_not_linearizable(&early);
}

#[test]
fn a_timed_out_read_constrains_nothing() {
    assert_linearizable(&[
        write(1, "a", 0, 10),
        timed_out(2, OpKind::Read, "", 20),
        read(3, "a", 30, 40),
    ]);
}

#[test]
fn keys_are_checked_independently_and_the_failing_key_is_named() {
    let mut ops = vec![write(1, "a", 0, 10), read(2, "a", 20, 30)];
    let mut other = read(3, "a", 20, 30);
    other.key = "other".to_string();
    assert_linearizable(&ops);
    ops.push(other);
    match check(&ops) {
        CheckResult::NotLinearizable { key, .. } => assert_eq!(key, "other"),
        result => panic!("expected key \"other\" to fail, got {result}"),
    }
}

#[test]
fn results_display_as_their_lines() {
    assert_eq!(CheckResult::Linearizable.to_string(), "linearizable");
    let unknown = CheckResult::Unknown { key: "k".into() }.to_string();
    assert_eq!(unknown.lines().next(), Some("unknown"));
    let failed = check(&[
        write(1, "a", 0, 10),
        write(2, "b", 20, 30),
        read(3, "a", 40, 50),
    ])
    .to_string();
    let mut lines = failed.lines();
    assert_eq!(lines.next(), Some("not linearizable: key k"));
    assert!(
        failed.contains(&read(3, "a", 40, 50).to_json_line()),
        "{failed}"
    );
    assert!(
        failed.contains("\"b\""),
        "the value after the prefix is shown: {failed}"
    );
}

#[test]
fn an_operation_returning_before_its_call_is_rejected() {
    let bad = read(1, "", 10, 5);
    match check_history(&[bad], toy_hash, DEFAULT_STEP_BUDGET) {
        Err(CheckError::InvalidOperation { index: 0, .. }) => {}
        other => panic!("expected an invalid-operation error, got {other:?}"),
    }
}

/// A file in the temporary directory, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("paxoskv-checker-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("write a temporary file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn check_file_reads_json_lines() {
    let good = TempFile::new(
        "good.jsonl",
        concat!(
            r#"{"client":1,"op":"write","key":"k","value":"a","ok":true,"result":"a","call":0,"return":10}"#,
            "\n",
            r#"{"client":2,"op":"write","key":"k","value":"b","ok":false,"error":"timeout","call":20}"#,
            "\n",
            r#"{"client":3,"op":"read","key":"k","ok":true,"result":"b","call":30,"return":40}"#,
            "\n"
        ),
    );
    assert_eq!(
        check_file(&good.0, toy_hash, DEFAULT_STEP_BUDGET).unwrap(),
        CheckResult::Linearizable
    );

    let stale = TempFile::new(
        "stale.jsonl",
        concat!(
            r#"{"client":1,"op":"write","key":"k","value":"a","ok":true,"result":"a","call":0,"return":10}"#,
            "\n",
            r#"{"client":2,"op":"write","key":"k","value":"b","ok":true,"result":"b","call":20,"return":30}"#,
            "\n",
            r#"{"client":3,"op":"read","key":"k","ok":true,"result":"a","call":40,"return":50}"#,
            "\n"
        ),
    );
    assert!(matches!(
        check_file(&stale.0, toy_hash, DEFAULT_STEP_BUDGET).unwrap(),
        CheckResult::NotLinearizable { .. }
    ));
}

#[test]
fn check_file_reports_the_bad_line_and_a_missing_file() {
    let bad = TempFile::new(
        "bad.jsonl",
        concat!(
            r#"{"client":1,"op":"write","key":"k","value":"a","ok":true,"result":"a","call":0,"return":10}"#,
            "\n",
            r#"{"client":1,"op":"write","key":"k","ok":true,"result":"a","call":0,"return":10}"#,
            "\n"
        ),
    );
    let error = check_file(&bad.0, toy_hash, DEFAULT_STEP_BUDGET).unwrap_err();
    assert!(
        matches!(error, CheckError::Parse { line: 2, .. }),
        "{error}"
    );
    assert!(error.to_string().starts_with("history line 2: "), "{error}");

    let missing =
        std::env::temp_dir().join(format!("paxoskv-checker-{}-missing", std::process::id()));
    assert!(matches!(
        check_file(&missing, toy_hash, DEFAULT_STEP_BUDGET),
        Err(CheckError::Open { .. })
    ));
}

/// Many writes of distinct values, all concurrent with a read of a value none wrote:
/// not linearizable, but proving it means trying every subset of the writes.
fn adversarial(writes: usize) -> Vec<Operation> {
    let mut ops: Vec<Operation> = (0..writes)
        .map(|i| write(i as u64, &format!("v{i}"), 0, 1_000))
        .collect();
    ops.push(read(writes as u64, "nobody wrote this", 0, 1_000));
    ops
}

#[test]
fn the_step_budget_answers_unknown_quickly_on_a_huge_search() {
    let started = Instant::now();
    let result = check_history(&adversarial(40), toy_hash, 200_000).unwrap();
    assert_eq!(result, CheckResult::Unknown { key: "k".into() });
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    // The same shape, small enough to finish, gets a real answer.
    assert!(matches!(
        check(&adversarial(8)),
        CheckResult::NotLinearizable { .. }
    ));
}

/// 4,000 operations on one key from five concurrent clients, checked once with a budget
/// of `work_per_op` units per operation.
fn check_long_history(seed: u64, timeout_percent: u32, work_per_op: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let shape = Shape {
        keys: 1,
        clients: 5,
        ops_per_client: 800,
        timeout_percent,
    };
    let ops = generate(&mut rng, &shape);
    let started = Instant::now();
    let result = check_history(&ops, toy_hash, work_per_op * ops.len() as u64).unwrap();
    println!(
        "{} operations on one key, {timeout_percent}% timed out: {result} in {:?}",
        ops.len(),
        started.elapsed()
    );
    assert_eq!(result, CheckResult::Linearizable, "seed {seed}");
}

#[test]
fn a_long_history_checks_in_linear_work() {
    // About ten units per operation are needed; the exponential worst case is far away.
    check_long_history(base_seed() ^ 0x10ad, 0, 30);
}

#[test]
fn a_long_history_with_timeouts_checks_in_near_linear_work() {
    // Half the timed-out operations never take effect and stay pending to the end, some
    // twenty of them by then; about forty units per operation are needed.
    check_long_history(base_seed() ^ 0x71e0, 1, 120);
}

// ---- random histories --------------------------------------------------------------

fn base_seed() -> u64 {
    std::env::var("CHECKER_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(0x5eed_c0de)
}

struct Shape {
    keys: usize,
    clients: u64,
    ops_per_client: usize,
    timeout_percent: u32,
}

/// A history of a real linearizable store: each client runs operations one after another
/// at random times; each operation takes effect at a random instant inside its interval
/// (a timed-out one: half the time at some instant after its call, else never), and the
/// answers come from applying the operations in the order of those instants.
fn generate(rng: &mut ChaCha8Rng, shape: &Shape) -> Vec<Operation> {
    struct Planned {
        op: Operation,
        effect_at: Option<u64>,
        ret: u64,
        timed_out: bool,
    }
    let mut planned = Vec::new();
    for client in 0..shape.clients {
        let mut now = rng.random_range(0..20);
        for index in 0..shape.ops_per_client {
            let call = now + rng.random_range(0..10);
            let ret = call + rng.random_range(0..40);
            let kind = match rng.random_range(0..10) {
                0..4 => OpKind::Read,
                4..7 => OpKind::Write,
                _ => OpKind::WriteHash,
            };
            let timed_out = rng.random_range(0..100) < shape.timeout_percent;
            let effect_at = if !timed_out {
                Some(rng.random_range(call..=ret))
            } else if rng.random_bool(0.5) {
                Some(call + rng.random_range(0..200))
            } else {
                None
            };
            let key = format!("key{}", rng.random_range(0..shape.keys));
            let value = if kind == OpKind::Read {
                String::new()
            } else {
                format!("c{client}-{index}")
            };
            let op = Operation {
                client,
                kind,
                key,
                value,
                call,
                outcome: Outcome::Unknown {
                    error: "timeout".into(),
                    gave_up_at: Some(ret),
                },
            };
            planned.push(Planned {
                op,
                effect_at,
                ret,
                timed_out,
            });
            now = ret + 1;
        }
    }
    let mut order: Vec<usize> = (0..planned.len())
        .filter(|&i| planned[i].effect_at.is_some())
        .collect();
    order.sort_by_key(|&i| planned[i].effect_at);
    let mut store = std::collections::HashMap::<String, String>::new();
    for i in order {
        let p = &mut planned[i];
        let state = store.entry(p.op.key.clone()).or_default();
        let (result, next) = paxoskv::checker::apply(p.op.kind, state, &p.op.value, &toy_hash);
        *state = next;
        if !p.timed_out {
            p.op.outcome = Outcome::Returned { result, at: p.ret };
        }
    }
    planned.into_iter().map(|p| p.op).collect()
}

/// Ways to change one answer of a valid history so that it surely has no linearization.
/// Each relies on the values written being unique and no write producing a `#` hash.
#[derive(Debug, Clone, Copy)]
enum Corruption {
    /// A read or write-hash answers a value nobody wrote.
    ValueNeverWritten,
    /// A write answers something other than its value.
    WriteAnswersAnotherValue,
    /// A read or write-hash sees a value written only after it returned.
    ValueFromTheFuture,
    /// A read or write-hash sees a value overwritten before it was called: written by an
    /// answered write that returned before some answered write or write-hash began that
    /// itself returned before the reader began.
    ValueOverwritten,
}

impl Corruption {
    const ALL: [Corruption; 4] = [
        Corruption::ValueNeverWritten,
        Corruption::WriteAnswersAnotherValue,
        Corruption::ValueFromTheFuture,
        Corruption::ValueOverwritten,
    ];
}

/// Applies `kind` to one operation picked at random; `None` if no operation fits.
/// Returns the corrupted history and the key of the changed operation.
fn corrupt(
    ops: &[Operation],
    rng: &mut ChaCha8Rng,
    kind: Corruption,
) -> Option<(Vec<Operation>, String)> {
    let answered = |op: &Operation| op.return_time().is_some();
    let observer = |op: &Operation| answered(op) && op.kind != OpKind::Write;
    let mut candidates: Vec<(usize, String)> = Vec::new();
    match kind {
        Corruption::ValueNeverWritten => candidates.extend(
            (0..ops.len())
                .filter(|&i| observer(&ops[i]))
                .map(|i| (i, "nobody wrote this".to_string())),
        ),
        Corruption::WriteAnswersAnotherValue => candidates.extend(
            (0..ops.len())
                .filter(|&i| answered(&ops[i]) && ops[i].kind == OpKind::Write)
                .map(|i| (i, format!("not {}", ops[i].value))),
        ),
        Corruption::ValueFromTheFuture => {
            for (i, reader) in ops.iter().enumerate().filter(|(_, op)| observer(op)) {
                let returned = reader.return_time().unwrap_or(u64::MAX);
                candidates.extend(
                    ops.iter()
                        .filter(|w| {
                            w.key == reader.key && w.kind == OpKind::Write && w.call > returned
                        })
                        .map(|w| (i, w.value.clone())),
                );
            }
        }
        Corruption::ValueOverwritten => {
            for (i, reader) in ops.iter().enumerate().filter(|(_, op)| observer(op)) {
                for w in ops
                    .iter()
                    .filter(|w| w.key == reader.key && w.kind == OpKind::Write && answered(w))
                {
                    let w_ret = w.return_time().unwrap_or(u64::MAX);
                    let overwritten = ops.iter().any(|x| {
                        x.key == reader.key
                            && x.kind != OpKind::Read
                            && answered(x)
                            && x.call > w_ret
                            && x.return_time().unwrap_or(u64::MAX) < reader.call
                    });
                    if overwritten {
                        candidates.push((i, w.value.clone()));
                    }
                }
            }
        }
    }
    if candidates.is_empty() {
        return None;
    }
    let (index, new_result) = candidates.swap_remove(rng.random_range(0..candidates.len()));
    let mut corrupted = ops.to_vec();
    let op = &mut corrupted[index];
    let key = op.key.clone();
    if let Outcome::Returned { result, .. } = &mut op.outcome {
        *result = new_result;
    }
    Some((corrupted, key))
}

#[test]
fn random_linearizable_histories_pass_and_corrupted_copies_fail() {
    let base = base_seed();
    let mut corrupted_checked = [0usize; 4];
    for round in 0..300u64 {
        let seed = base.wrapping_add(round);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let shape = Shape {
            keys: rng.random_range(1..=3),
            clients: rng.random_range(1..=5),
            ops_per_client: rng.random_range(1..=25),
            timeout_percent: rng.random_range(0..=8),
        };
        let ops = generate(&mut rng, &shape);
        let result = check(&ops);
        assert_eq!(
            result,
            CheckResult::Linearizable,
            "seed {seed}: a valid history failed:\n{result}"
        );
        for (kind, checked) in Corruption::ALL.into_iter().zip(&mut corrupted_checked) {
            let Some((corrupted, key)) = corrupt(&ops, &mut rng, kind) else {
                continue;
            };
            match check(&corrupted) {
                CheckResult::NotLinearizable { key: failed, .. } => {
                    assert_eq!(failed, key, "seed {seed}, {kind:?}: wrong key")
                }
                other => {
                    panic!("seed {seed}, {kind:?}: expected not linearizable, got {other}")
                }
            }
            *checked += 1;
        }
    }
    // Every kind of corruption was exercised often enough to mean something.
    assert!(
        corrupted_checked.iter().all(|&n| n >= 50),
        "{corrupted_checked:?}"
    );
}

/// The definition, checked by brute force: some order of the operations, each answered
/// one after every operation that returned before it was called, and each unanswered one
/// anywhere after its call or nowhere, gives every answer.
fn brute_force_linearizable(ops: &[Operation]) -> bool {
    fn extend(ops: &[Operation], placed: &mut Vec<bool>, state: &str) -> bool {
        let answered_left = |placed: &[bool]| {
            ops.iter()
                .zip(placed)
                .any(|(op, &done)| !done && op.return_time().is_some())
        };
        if !answered_left(placed) {
            return true;
        }
        for i in 0..ops.len() {
            let op = &ops[i];
            let must_wait = ops.iter().zip(placed.iter()).any(|(other, &done)| {
                !done
                    && other
                        .return_time()
                        .is_some_and(|returned| returned < op.call)
            });
            if placed[i] || must_wait {
                continue;
            }
            let (result, next) = paxoskv::checker::apply(op.kind, state, &op.value, &toy_hash);
            if op.result().is_some_and(|expected| expected != result) {
                continue;
            }
            placed[i] = true;
            let found = extend(ops, placed, &next);
            placed[i] = false;
            if found {
                return true;
            }
        }
        false
    }
    extend(ops, &mut vec![false; ops.len()], "")
}

#[test]
fn small_random_histories_get_the_brute_force_verdict() {
    let base = base_seed() ^ 0xb407e;
    let mut verdicts = [0usize; 2];
    for round in 0..3_000u64 {
        let seed = base.wrapping_add(round);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let shape = Shape {
            keys: 1,
            clients: rng.random_range(1..=4),
            ops_per_client: rng.random_range(1..=2),
            timeout_percent: 25,
        };
        let mut ops = generate(&mut rng, &shape);
        // Few distinct values, so that values repeat and wrong answers are often right.
        for op in ops.iter_mut().filter(|op| op.kind != OpKind::Read) {
            op.value = ["a", "b"][rng.random_range(0..2)].to_string();
        }
        let mut pool: Vec<String> = vec![String::new(), "a".into(), "b".into()];
        for first in ["", "a", "b"] {
            for second in ["a", "b"] {
                let once = toy_hash(first, second);
                pool.push(toy_hash(&once, "a"));
                pool.push(once);
            }
        }
        // Recompute the answers for the new values, then spoil some of them.
        let valid = regenerate_answers(&ops, &mut rng);
        ops = valid;
        for op in ops.iter_mut() {
            if let Outcome::Returned { result, .. } = &mut op.outcome
                && rng.random_bool(0.25)
            {
                *result = pool[rng.random_range(0..pool.len())].clone();
            }
        }
        let expected = brute_force_linearizable(&ops);
        let result = check(&ops);
        let history: Vec<String> = ops.iter().map(Operation::to_json_line).collect();
        match (expected, &result) {
            (true, CheckResult::Linearizable) | (false, CheckResult::NotLinearizable { .. }) => {}
            _ => panic!(
                "seed {seed}: brute force says linearizable={expected}, checker says {result}\n{}",
                history.join("\n")
            ),
        }
        verdicts[usize::from(expected)] += 1;
    }
    // Both verdicts came up often enough for the comparison to mean something.
    assert!(verdicts.iter().all(|&n| n >= 300), "{verdicts:?}");
}

/// The answers a linearizable store could have given to `ops` (whose values may have been
/// changed): each operation takes effect at a random instant of its interval, a timed-out
/// one maybe never.
fn regenerate_answers(ops: &[Operation], rng: &mut ChaCha8Rng) -> Vec<Operation> {
    let mut effects: Vec<(u64, usize)> = Vec::new();
    for (index, op) in ops.iter().enumerate() {
        match op.return_time() {
            Some(returned) => effects.push((rng.random_range(op.call..=returned), index)),
            None if rng.random_bool(0.5) => {
                effects.push((op.call + rng.random_range(0..100), index))
            }
            None => {}
        }
    }
    effects.sort_unstable();
    let mut state = String::new();
    let mut out = ops.to_vec();
    for (_, index) in effects {
        let op = &mut out[index];
        let (result, next) = paxoskv::checker::apply(op.kind, &state, &op.value, &toy_hash);
        state = next;
        if let Outcome::Returned { result: answer, .. } = &mut op.outcome {
            *answer = result;
        }
    }
    out
}
