//! Evidence that the nemesis pipeline can fail: clients recorded exactly as in a nemesis
//! run, against an in-memory fake of the kv service that is either correct or buggy in
//! the ways the real one must never be (stale reads, a write-hash applied twice). The
//! correct fake must pass every final check; each buggy one must be caught.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kv_app::phash2::write_hash_value;
use paxoskv::checker::{DEFAULT_STEP_BUDGET, OpKind, parse_history};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::config::{FaultKind, NemesisConfig};
use super::history::{HistoryRecorder, history_path, key_name, plan_operation};
use super::schedule::Schedule;
use super::verdict::{Problem, check_history_of_run, failure_report};

/// How the fake misbehaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Bug {
    None,
    /// Every 5th read of a key answers the value from before the key's last write.
    StaleReads,
    /// The 10th write-hash is applied twice (what a lost reply and a retry without
    /// exactly-once would do).
    DoubleWriteHash,
}

/// The state of the fake service.
#[derive(Default)]
struct FakeState {
    current: HashMap<String, String>,
    /// The value before each key's last change.
    previous: HashMap<String, String>,
    reads: HashMap<String, u64>,
    write_hashes: u64,
    operations: u64,
}

/// An in-memory key-value "service" that answers at once.
#[derive(Clone)]
struct FakeStore {
    bug: Bug,
    state: Arc<Mutex<FakeState>>,
}

/// What the fake did with one operation.
enum Answer {
    Result(String),
    /// Applied, but the reply is lost: the client times out.
    ReplyLost,
    /// Never applied: the client times out.
    Dropped,
}

impl FakeStore {
    fn new(bug: Bug) -> Self {
        FakeStore {
            bug,
            state: Arc::default(),
        }
    }

    fn run(&self, kind: OpKind, key: &str, value: &str) -> Answer {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.operations += 1;
        // A correct service may still time out: every 13th operation is dropped, every
        // 11th applied with its reply lost.
        if state.operations.is_multiple_of(13) {
            return Answer::Dropped;
        }
        let reply_lost = state.operations.is_multiple_of(11);
        let current = state.current.get(key).cloned().unwrap_or_default();
        let result = match kind {
            OpKind::Read => {
                let reads = state.reads.entry(key.to_string()).or_default();
                *reads += 1;
                if self.bug == Bug::StaleReads && reads.is_multiple_of(5) {
                    state.previous.get(key).cloned().unwrap_or_default()
                } else {
                    current
                }
            }
            OpKind::Write => {
                set(&mut state, key, value.to_string());
                value.to_string()
            }
            OpKind::WriteHash => {
                state.write_hashes += 1;
                let mut stored = write_hash_value(&current, value);
                if self.bug == Bug::DoubleWriteHash && state.write_hashes == 10 {
                    stored = write_hash_value(&stored, value);
                }
                set(&mut state, key, stored);
                current
            }
        };
        if reply_lost {
            Answer::ReplyLost
        } else {
            Answer::Result(result)
        }
    }
}

fn set(state: &mut FakeState, key: &str, value: String) {
    if let Some(old) = state.current.insert(key.to_string(), value) {
        state.previous.insert(key.to_string(), old);
    }
}

/// Runs `clients` concurrent clients of `ops_each` operations on `keys` keys against the
/// fake (plus one client alone on its own key, which alternates writes and reads), then
/// one final read per key; returns the recorded history.
async fn recorded_run(
    store: FakeStore,
    seed: u64,
    clients: u64,
    keys: usize,
    write_hash_only: bool,
) -> Vec<paxoskv::checker::Operation> {
    let recorder = HistoryRecorder::new();
    let mut tasks = Vec::new();
    for client in 1..=clients {
        let (store, recorder) = (store.clone(), recorder.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(client));
            for n in 0..40 {
                let mut op = plan_operation(&mut rng, client, n, keys);
                if write_hash_only && op.kind == OpKind::Write {
                    op.kind = OpKind::WriteHash;
                }
                run_one(&store, &recorder, client, op.kind, &op.key, &op.value).await;
            }
        }));
    }
    let (solo_store, solo_recorder) = (store.clone(), recorder.clone());
    tasks.push(tokio::spawn(async move {
        let solo = clients + 1;
        for n in 0..20 {
            let value = format!("c{solo}-{n}");
            run_one(
                &solo_store,
                &solo_recorder,
                solo,
                OpKind::Write,
                "solo",
                &value,
            )
            .await;
            // The read must start strictly after the write returned at the recorder's
            // resolution (a microsecond), or the checker takes them for concurrent and
            // may explain a stale read.
            let written_at = solo_recorder.now();
            while solo_recorder.now() <= written_at {
                tokio::task::yield_now().await;
            }
            run_one(&solo_store, &solo_recorder, solo, OpKind::Read, "solo", "").await;
        }
    }));
    for task in tasks {
        task.await.expect("a fake client panicked");
    }
    // The final reads, after every other operation, as a nemesis run appends them.
    let final_reader = clients + 2;
    let final_keys = (0..keys).map(key_name).chain(["solo".to_string()]);
    for key in final_keys {
        let pending = recorder.call(final_reader, OpKind::Read, &key, "");
        let value = store.state.lock().map(|s| s.current.get(&key).cloned());
        pending.returned(value.ok().flatten().unwrap_or_default());
    }
    recorder.operations()
}

async fn run_one(
    store: &FakeStore,
    recorder: &HistoryRecorder,
    client: u64,
    kind: OpKind,
    key: &str,
    value: &str,
) {
    let pending = recorder.call(client, kind, key, value);
    // Let other clients in between the call, the effect and the reply.
    tokio::task::yield_now().await;
    let answer = store.run(kind, key, value);
    tokio::task::yield_now().await;
    match answer {
        Answer::Result(result) => pending.returned(result),
        Answer::ReplyLost | Answer::Dropped => pending.gave_up("timeout"),
    }
}

#[tokio::test]
async fn a_correct_fake_passes_every_final_check() {
    for seed in 0..5 {
        let history = recorded_run(FakeStore::new(Bug::None), seed, 4, 2, false).await;
        assert!(history.iter().any(|op| op.result().is_none()));
        assert_eq!(
            check_history_of_run(&history, DEFAULT_STEP_BUDGET),
            Ok(()),
            "seed {seed}"
        );
    }
}

#[tokio::test]
async fn a_fake_with_stale_reads_is_caught_and_reported_with_its_seed_and_history() {
    for seed in 0..5 {
        let history = recorded_run(FakeStore::new(Bug::StaleReads), seed, 4, 2, false).await;
        let problem = check_history_of_run(&history, DEFAULT_STEP_BUDGET)
            .expect_err("stale reads must fail the run");
        assert!(
            matches!(problem, Problem::NotLinearizable(_)),
            "seed {seed}: {problem}"
        );
        // The report names the seed and the replay, and the history file re-checks.
        // A seed of this process's own: several test binaries run this test at once.
        let report_seed = u64::from(std::process::id()) * 1000 + seed;
        let config = NemesisConfig {
            seed: report_seed,
            duration: std::time::Duration::from_secs(1),
            clients: 4,
            keys: 2,
            nodes: 5,
            faults: [FaultKind::Deaf].into_iter().collect(),
            op_timeout: std::time::Duration::from_secs(5),
        };
        let schedule = Schedule::generate(&config);
        let replay = config.replay_command("nemesis_fake", "fake", false);
        let report = failure_report("fake", &replay, &config, &schedule, &history, &problem);
        assert!(report.contains(&format!("replay with NEMESIS_SEED={report_seed}")));
        assert!(report.contains("not linearizable: key"), "{report}");
        let path = history_path("fake", config.seed);
        assert!(report.contains(&path.display().to_string()), "{report}");
        let text = std::fs::read(&path).expect("the report wrote the history");
        let _ = std::fs::remove_file(&path);
        assert_eq!(parse_history(&text[..]).expect("the file parses"), history);
    }
}

#[tokio::test]
async fn a_fake_that_applies_a_write_hash_twice_is_caught() {
    for seed in 0..5 {
        let history = recorded_run(FakeStore::new(Bug::DoubleWriteHash), seed, 4, 1, true).await;
        let problem = check_history_of_run(&history, DEFAULT_STEP_BUDGET)
            .expect_err("a double write-hash must fail the run");
        assert!(
            matches!(problem, Problem::NotLinearizable(_)),
            "seed {seed}: {problem}"
        );
    }
}
