//! Linearizability under faults with real OS processes: five `paxoskv node` processes on
//! 127.0.0.1, clients that are long-running `paxoskv client --pipe` processes fed one
//! operation at a time, and a seeded nemesis that drives the nodes only through the
//! command line (`paxoskv ctl ... deaf/listen/unreliable/reliable/allow/allow-all/kill`)
//! and `kill -9` of one whole node, which stays down. After the heal: the history (the
//! clients' own JSON lines, plus a final read of every key through each survivor) must be
//! linearizable, no two acknowledged write-hashes may have seen the same previous value,
//! every survivor must return the same value for every key, and the survivors' `status`
//! must agree (applied instance, key count) with their kv processes all running.
//!
//! `NEMESIS_SEED`, `NEMESIS_SECS`, `NEMESIS_CLIENTS`, `NEMESIS_KEYS`, `NEMESIS_FAULTS` and
//! `NEMESIS_OP_TIMEOUT_MS` set the run (see `docs/testing.md`); a failure prints the
//! seed, the commands that replay it and the file holding the history.

mod cli_support;
mod nemesis_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use cli_support::{Cluster, Out, Proc, try_run_with};
use nemesis_support::{
    Action, Defaults, Fault, FaultApplier, HistoryRecorder, KV_PROCESSES, NemesisConfig, PlannedOp,
    Problem, ReplicaState, Schedule, check_history_of_run, failure_report, heal, key_name,
    plan_operation, play_blocking, replicas_agree, summary,
};
use paxoskv::checker::{DEFAULT_STEP_BUDGET, OpKind, Operation, Outcome, parse_line};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The test target, for the replay commands.
const TARGET: &str = "nemesis_processes";
/// How long the cluster may take to serve the final reads and to agree after the heal.
const SETTLE: Duration = Duration::from_secs(30);
/// How much longer than its own `--timeout` a pipe client may take to print the line of
/// an operation (process scheduling on 2 shared cores, the probe of a slow operation).
const ANSWER_GRACE: Duration = Duration::from_secs(20);
/// How long one `paxoskv ctl` command may take.
const CTL_WITHIN: Duration = Duration::from_secs(15);

/// One short run in the default suite: about 15 s of load, well under a minute in all.
#[test]
fn nemesis_short() {
    let defaults = Defaults {
        secs: 15,
        clients: 5,
        keys: 3,
    };
    run_from_env(defaults, "nemesis_short", false);
}

/// The soak: two minutes by default;
/// `cargo nextest run --release --test nemesis_processes --run-ignored only nemesis_soak`.
#[test]
#[ignore = "a 120-second soak; run with --ignored"]
fn nemesis_soak() {
    let defaults = Defaults {
        secs: 120,
        clients: 6,
        keys: 6,
    };
    run_from_env(defaults, "nemesis_soak", true);
}

fn run_from_env(defaults: Defaults, test: &str, ignored: bool) {
    let _ = env_logger::builder().is_test(true).try_init();
    let config = match NemesisConfig::from_env(defaults) {
        Ok(config) => config,
        Err(error) => panic!("{test}: {error}"),
    };
    let replay = format!(
        "{}\n  or: {}",
        nextest_replay_command(&config, test, ignored),
        config.replay_command(TARGET, test, ignored)
    );
    let schedule = Schedule::generate(&config);
    eprintln!(
        "{test}: {config}\nreplay with NEMESIS_SEED={} ({replay})\n{schedule}",
        config.seed
    );
    let started = Instant::now();
    // Every node process is killed when `cluster` is dropped, on every exit path.
    // Named s0, s1... as the schedule names them.
    let names: Vec<String> = (0..config.nodes).map(|i| format!("s{i}")).collect();
    let mut cluster = Cluster::start_named("nemesis-processes", &names);
    let recorder = HistoryRecorder::new();
    let outcome = execute(&mut cluster, &config, &schedule, &recorder);
    drop(cluster);
    let history = recorder.operations();
    eprintln!(
        "{test}: {} in {:.1} s",
        summary(&history),
        started.elapsed().as_secs_f64()
    );
    if let Err(problem) = outcome {
        panic!(
            "{}",
            failure_report(TARGET, &replay, &config, &schedule, &history, &problem)
        );
    }
}

/// `NEMESIS_...=... cargo nextest run --release --test nemesis_processes
/// [--run-ignored only] TEST --no-capture`.
fn nextest_replay_command(config: &NemesisConfig, test: &str, ignored: bool) -> String {
    let ignored = if ignored { "--run-ignored only " } else { "" };
    format!(
        "{} cargo nextest run --release --test {TARGET} {ignored}{test} --no-capture",
        config.env_assignments()
    )
}

/// Load and nemesis, heal, final reads and every check.
fn execute(
    cluster: &mut Cluster,
    config: &NemesisConfig,
    schedule: &Schedule,
    recorder: &HistoryRecorder,
) -> Result<(), Problem> {
    let nemesis = load_under_nemesis(cluster, config, schedule, recorder)?;
    let survivors = schedule.survivors();
    let mut read_back = Vec::new();
    for (reader, &node) in survivors.iter().enumerate() {
        let id = (config.clients + 1 + reader) as u64;
        read_back.push(final_reads(cluster, node, id, config.keys, recorder)?);
    }
    let history = recorder.operations();
    if !history
        .iter()
        .any(|op| op.client <= config.clients as u64 && op.result().is_some())
    {
        return Err(Problem::Stuck(
            "no client operation was acknowledged".to_string(),
        ));
    }
    let checking = Instant::now();
    check_history_of_run(&history, DEFAULT_STEP_BUDGET)?;
    eprintln!(
        "{} operations checked in {:.1} s: linearizable",
        history.len(),
        checking.elapsed().as_secs_f64()
    );
    let statuses = wait_survivors_agree(cluster, &survivors)?;
    nemesis.check_took_effect(schedule, &statuses)?;
    survivors_hold_the_same_data(&statuses, read_back)
}

/// The clients' load while the nemesis plays the schedule, then the heal; returns when
/// every client has stopped, with what the nemesis did.
fn load_under_nemesis(
    cluster: &mut Cluster,
    config: &NemesisConfig,
    schedule: &Schedule,
    recorder: &HistoryRecorder,
) -> Result<NemesisEffect, Problem> {
    let servers = cluster.all();
    let timeout = seconds_arg(config.op_timeout);
    // Each pipe process is owned by its client thread and killed when that ends.
    let pipes: Vec<Proc> = (0..config.clients)
        .map(|_| cluster.pipe_proc(&servers, &timeout))
        .collect();
    let stop = AtomicBool::new(false);
    let origin = Instant::now();
    let (clients, errors, nemesis) = thread::scope(|scope| {
        // Stops the clients even if the nemesis below panics, so the scope can end.
        let _stop_clients = StopOnDrop(&stop);
        let handles: Vec<_> = pipes
            .into_iter()
            .enumerate()
            .map(|(index, pipe)| {
                let client = PipeClient {
                    id: index as u64 + 1,
                    pipe,
                    recorder: recorder.clone(),
                    answer_within: config.op_timeout + ANSWER_GRACE,
                };
                let seed = config
                    .seed
                    .wrapping_add(client.id.wrapping_mul(0x9e37_79b9));
                let (keys, stop) = (config.keys, &stop);
                scope.spawn(move || client.run(seed, keys, stop))
            })
            .collect();
        let mut applier = ProcessApplier {
            cluster: &mut *cluster,
            failed: Vec::new(),
            kills: BTreeMap::new(),
        };
        let mut errors = play_blocking(schedule, origin, &mut applier);
        thread::sleep((origin + config.duration).saturating_duration_since(Instant::now()));
        errors.extend(heal(schedule, &mut applier));
        stop.store(true, Ordering::SeqCst);
        let clients: Vec<Result<u64, Problem>> = handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(Problem::Stuck("a client thread panicked".to_string())))
            })
            .collect();
        let nemesis = NemesisEffect {
            failed: applier.failed,
            kills: applier.kills,
        };
        (clients, errors, nemesis)
    });
    eprintln!(
        "nemesis done, healed; {} action(s) had nothing to act on: {errors:?}",
        errors.len()
    );
    survivors_still_run(cluster, schedule)?;
    if !nemesis.failed.is_empty() {
        return Err(Problem::Stuck(format!(
            "the nemesis could not act: {}",
            nemesis.failed.join("; ")
        )));
    }
    for (index, ran) in clients.into_iter().enumerate() {
        let ops = ran?;
        log::info!("client {} ran {ops} operations", index + 1);
    }
    Ok(nemesis)
}

/// No node process but the crashed one has exited (a panic, an abort, a signal).
fn survivors_still_run(cluster: &mut Cluster, schedule: &Schedule) -> Result<(), Problem> {
    let exited: Vec<String> = schedule
        .survivors()
        .into_iter()
        .filter_map(|node| {
            let name = cluster.members.get(node)?.0.clone();
            let status = cluster.nodes.get_mut(node)?.try_exit_status()?;
            Some(format!("{name} ({status})"))
        })
        .collect();
    if exited.is_empty() {
        Ok(())
    } else {
        Err(Problem::Stuck(format!(
            "node processes exited though the nemesis never crashed them: {}",
            exited.join(", ")
        )))
    }
}

/// Every survivor read back the same value for every key, and stores as many keys as it
/// read written (`statuses` agree already: one applied instance, one key count).
fn survivors_hold_the_same_data(
    statuses: &[SurvivorStatus],
    read_back: Vec<(String, BTreeMap<String, String>)>,
) -> Result<(), Problem> {
    let Some(status) = statuses.first() else {
        return Err(Problem::Stuck("no survivor".to_string()));
    };
    let (applied, stored_keys) = (status.applied, status.keys);
    // Values are never empty, so the keys a survivor stores are those it reads non-empty.
    for (name, data) in &read_back {
        let written = data.values().filter(|value| !value.is_empty()).count();
        if written as u64 != stored_keys {
            return Err(Problem::ReplicasDiffer(format!(
                "{name} stores {stored_keys} keys but reads {written} written ones: {data:?}"
            )));
        }
    }
    let replicas: Vec<ReplicaState> = read_back
        .into_iter()
        .map(|(name, data)| ReplicaState {
            name,
            applied,
            data,
        })
        .collect();
    replicas_agree(&replicas)
}

/// What the nemesis did, beyond the schedule: actions that failed though they should
/// not, and the kills carried out.
struct NemesisEffect {
    failed: Vec<String>,
    /// Kills that succeeded, per node index.
    kills: BTreeMap<usize, u64>,
}

impl NemesisEffect {
    /// The faults left traces on the survivors: dropped messages when any partition,
    /// bridge, or deaf or unreliable window touched a survivor, and at least one restart
    /// per kill on each survivor. Guards against a nemesis that only thinks it acts.
    fn check_took_effect(
        &self,
        schedule: &Schedule,
        statuses: &[SurvivorStatus],
    ) -> Result<(), Problem> {
        let survivors = schedule.survivors();
        let drops_expected = schedule.windows.iter().any(|w| match w.fault {
            Fault::Partition { .. } | Fault::Bridge { .. } => true,
            Fault::Deaf { node } | Fault::Unreliable { node, .. } => survivors.contains(&node),
            Fault::Kill { .. } | Fault::Crash { .. } => false,
        });
        let dropped: u64 = statuses.iter().map(|s| s.dropped).sum();
        if drops_expected && dropped == 0 {
            return Err(Problem::Stuck(format!(
                "the faults dropped no message on any survivor: {statuses:?}"
            )));
        }
        let mut by_cause = runtime::FaultCounts::default();
        for s in statuses {
            by_cause.deaf += s.by_cause.deaf;
            by_cause.cut += s.by_cause.cut;
            by_cause.lost_in += s.by_cause.lost_in;
            by_cause.lost_out += s.by_cause.lost_out;
        }
        schedule
            .expected_drops()
            .check(by_cause)
            .map_err(Problem::Stuck)?;
        for status in statuses {
            let kills = self.kills.get(&status.node).copied().unwrap_or(0);
            if status.restarts < kills {
                return Err(Problem::Stuck(format!(
                    "{} counts {} restart(s) after {kills} kill(s)",
                    status.name, status.restarts
                )));
            }
        }
        Ok(())
    }
}

/// Sets the flag when dropped, whatever the exit path.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// `--timeout` for a duration (fractions allowed).
fn seconds_arg(duration: Duration) -> String {
    format!("{}", duration.as_secs_f64())
}

/// One nemesis client: a `paxoskv client --pipe` process given one operation at a time.
struct PipeClient {
    /// The client's number in the run (1-based); replaces the pipe's random id so that
    /// reports stay readable.
    id: u64,
    pipe: Proc,
    recorder: HistoryRecorder,
    /// How long the pipe may take to print one operation's line.
    answer_within: Duration,
}

impl PipeClient {
    /// Random operations until told to stop, each sent only after the previous one's
    /// line was read. A timeout is an unknown outcome; any other failure ends the run.
    fn run(mut self, seed: u64, keys: usize, stop: &AtomicBool) -> Result<u64, Problem> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            let op = plan_operation(&mut rng, self.id, n, keys);
            let operation = self.perform(&op)?;
            let failure = match &operation.outcome {
                Outcome::Unknown { error, .. } if error != "timeout" => Some(error.clone()),
                _ => None,
            };
            self.recorder.push(operation);
            if let Some(error) = failure {
                return Err(Problem::Stuck(format!(
                    "client {}: {} {} failed: {error}",
                    self.id, op.kind, op.key
                )));
            }
            n += 1;
        }
        // End of input: the pipe exits (and is killed on drop in any case).
        self.pipe.close_stdin();
        Ok(n)
    }

    /// Sends `op` and parses the line the pipe prints for it.
    fn perform(&mut self, op: &PlannedOp) -> Result<Operation, Problem> {
        let line = pipe_line(op);
        let id = self.id;
        self.pipe.try_send(&line).map_err(|error| {
            Problem::Stuck(format!("client {id}: cannot send {line:?}: {error}"))
        })?;
        let answer = self.pipe.next_line(self.answer_within).ok_or_else(|| {
            Problem::Stuck(format!(
                "client {id}: no line for {line:?} within {:?} (the pipe died or hangs)",
                self.answer_within
            ))
        })?;
        let mut operation = parse_line(&answer)
            .map_err(|error| Problem::Invalid(format!("client {id}: {error}: {answer}")))?;
        if operation.kind != op.kind || operation.key != op.key || operation.value != op.value {
            return Err(Problem::Invalid(format!(
                "client {id}: sent {line:?}, the pipe answered {answer}"
            )));
        }
        operation.client = id;
        Ok(operation)
    }
}

/// The stdin line of `paxoskv client --pipe` for `op`.
fn pipe_line(op: &PlannedOp) -> String {
    match op.kind {
        OpKind::Read => format!("read {}\n", op.key),
        kind => format!("{kind} {} {}\n", op.key, op.value),
    }
}

/// Reads every key through a fresh pipe client that knows only survivor `s<node>`,
/// records the reads as client `id` (they come after every other operation), and returns
/// the survivor's name and what it holds.
fn final_reads(
    cluster: &Cluster,
    node: usize,
    id: u64,
    keys: usize,
    recorder: &HistoryRecorder,
) -> Result<(String, BTreeMap<String, String>), Problem> {
    let server = cluster.some(&[node + 1]);
    let input: String = (0..keys)
        .map(|k| format!("read {}\n", key_name(k)))
        .collect();
    let timeout = seconds_arg(SETTLE);
    let args = [
        "client",
        "--servers",
        &server,
        "--timeout",
        &timeout,
        "--pipe",
    ];
    let out = try_run_with(
        &args,
        Some(&input),
        SETTLE + ANSWER_GRACE,
        &cluster.cookie_env(),
    )
    .map_err(|error| Problem::Stuck(format!("the final reads through {server}: {error}")))?;
    let mut data = BTreeMap::new();
    for answer in out.stdout.lines() {
        let mut operation = parse_line(answer)
            .map_err(|error| Problem::Invalid(format!("a final read: {error}: {answer}")))?;
        operation.client = id;
        let key = operation.key.clone();
        let result = operation.result().map(str::to_string);
        recorder.push(operation);
        match result {
            Some(value) => {
                data.insert(key, value);
            }
            None => {
                return Err(Problem::Stuck(format!(
                    "the final read of {key} through {server}: {answer}"
                )));
            }
        }
    }
    if data.len() != keys || !out.status.success() {
        return Err(Problem::Stuck(format!(
            "the final reads through {server} gave {} of {keys} keys ({:?}): {}",
            data.len(),
            out.status,
            out.stderr.trim_end()
        )));
    }
    let name = cluster.members[node].0.clone();
    Ok((name, data))
}

/// What `ctl status` says of one survivor.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SurvivorStatus {
    /// Its index in the cluster.
    node: usize,
    name: String,
    applied: u64,
    keys: u64,
    /// Messages its faults dropped, in and out.
    dropped: u64,
    /// The same, by cause.
    by_cause: runtime::FaultCounts,
    /// Restarts of its processes, summed.
    restarts: u64,
    /// kv processes not registered (being restarted, or given up on).
    missing: Vec<&'static str>,
}

/// Waits until every survivor has applied the same instance, holds as many keys, and
/// runs every kv process (its supervisors never gave up); returns their statuses (at
/// least one).
fn wait_survivors_agree(
    cluster: &Cluster,
    survivors: &[usize],
) -> Result<Vec<SurvivorStatus>, Problem> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let statuses: Result<Vec<SurvivorStatus>, String> = survivors
            .iter()
            .map(|&node| survivor_status(cluster, node))
            .collect();
        let last_problem = match statuses {
            Ok(statuses) => {
                let Some(first) = statuses.first() else {
                    return Err(Problem::Stuck("no survivor".to_string()));
                };
                let agree = statuses
                    .iter()
                    .all(|s| s.applied == first.applied && s.keys == first.keys);
                let all_running = statuses.iter().all(|s| s.missing.is_empty());
                if agree && all_running {
                    return Ok(statuses);
                }
                if agree {
                    Problem::Stuck(format!("kv processes not running: {statuses:?}"))
                } else {
                    Problem::ReplicasDiffer(format!("{statuses:?}"))
                }
            }
            Err(error) => Problem::Stuck(error),
        };
        if Instant::now() >= deadline {
            return Err(last_problem);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// `ctl status` of survivor `s<node>`, parsed.
fn survivor_status(cluster: &Cluster, node: usize) -> Result<SurvivorStatus, String> {
    let out = ctl(cluster, node, &["status"])?;
    let status: serde_json::Value = serde_json::from_str(&out.stdout)
        .map_err(|error| format!("status of s{node} is not JSON ({error}): {}", out.stdout))?;
    let number = |section: &str, field: &str| {
        status[section][field]
            .as_u64()
            .ok_or_else(|| format!("status of s{node} has no {section}.{field}"))
    };
    let processes: &[serde_json::Value] = status["processes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let registered: Vec<&str> = processes
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    Ok(SurvivorStatus {
        node,
        name: cluster.members[node].0.clone(),
        applied: number("kv", "applied")?,
        keys: number("kv", "keys")?,
        dropped: number("traffic", "dropped_in")? + number("traffic", "dropped_out")?,
        by_cause: serde_json::from_value(status["faults"]["dropped"].clone())
            .map_err(|error| format!("status of s{node} has no faults.dropped: {error}"))?,
        restarts: processes
            .iter()
            .filter_map(|p| p["restarts"].as_u64())
            .sum(),
        missing: KV_PROCESSES
            .into_iter()
            .filter(|process| !registered.contains(process))
            .collect(),
    })
}

/// `paxoskv ctl --node s<node>=ADDR ARGS` with the cluster's cookie; an error unless it
/// exits 0.
fn ctl(cluster: &Cluster, node: usize, args: &[&str]) -> Result<Out, String> {
    let target = cluster.some(&[node + 1]);
    let mut all = vec!["ctl", "--node", &target];
    all.extend_from_slice(args);
    let out = try_run_with(&all, None, CTL_WITHIN, &cluster.cookie_env())?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "ctl {args:?} exited {}: {}",
            out.code(),
            out.stderr.trim_end()
        ))
    }
}

/// Carries the nemesis's actions out on real node processes: `paxoskv ctl` for the
/// faults and process kills, `kill -9` for a crash. Node index i is member `s<i>`.
/// A kill may find its process not registered (still being restarted); any other
/// failure means the nemesis did not do what it planned, and is kept in `failed`.
struct ProcessApplier<'a> {
    cluster: &'a mut Cluster,
    failed: Vec<String>,
    kills: BTreeMap<usize, u64>,
}

impl FaultApplier for ProcessApplier<'_> {
    fn apply(&mut self, action: &Action) -> Result<(), String> {
        let node = action.node();
        if node >= self.cluster.nodes.len() {
            return Err(format!("no node s{node}"));
        }
        let peers;
        let probability;
        let args: Vec<&str> = match action {
            Action::Deaf { .. } => vec!["deaf"],
            Action::Listen { .. } => vec!["listen"],
            Action::Unreliable { p, .. } => {
                probability = p.to_string();
                vec!["unreliable", &probability]
            }
            Action::Reliable { .. } => vec!["reliable"],
            Action::Allow { peers: allowed, .. } => {
                let names: Vec<&str> = allowed
                    .iter()
                    .filter_map(|&peer| self.cluster.members.get(peer))
                    .map(|(name, _)| name.as_str())
                    .collect();
                peers = names.join(",");
                vec!["allow", &peers]
            }
            Action::AllowAll { .. } => vec!["allow-all"],
            Action::Kill { process, .. } => vec!["kill", process],
            Action::Crash { .. } => {
                // SIGKILL and reap: the node stays down for the rest of the run.
                self.cluster.nodes[node].kill9();
                return Ok(());
            }
        };
        let done = ctl(self.cluster, node, &args).map(|_| ());
        match (&done, action) {
            (Ok(()), Action::Kill { .. }) => *self.kills.entry(node).or_default() += 1,
            (Err(error), Action::Kill { .. }) if error.contains("no process registered") => {}
            (Err(error), _) => self.failed.push(format!("{action}: {error}")),
            (Ok(()), _) => {}
        }
        done
    }
}
