//! Linearizability under faults, in one OS process: five kv server nodes on the in-memory
//! network, clients each running one operation at a time on a few keys, and a seeded
//! nemesis that makes nodes deaf and unreliable, partitions them (majority/minority,
//! three groups, a bridge node), kills kv processes (their supervisor restarts them) and
//! crashes one whole node for good. After the heal: the history (with a final read of
//! every key) must be linearizable, no two acknowledged write-hashes may have seen the
//! same previous value, and the surviving replicas must hold the same data.
//!
//! `NEMESIS_SEED`, `NEMESIS_SECS`, `NEMESIS_CLIENTS`, `NEMESIS_KEYS`, `NEMESIS_FAULTS` and
//! `NEMESIS_OP_TIMEOUT_MS` set the run (see `docs/testing.md`); a failure prints the
//! seed, the command that replays it and the file holding the history.

mod nemesis_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kv_app::app::{allow, allow_all, deaf, listen, reliable, unreliable};
use kv_app::{Client, ClientError, ClientTimeouts, KvServer, ServerOptions, start_server};
use nemesis_support::{
    Action, Defaults, FaultApplier, HistoryRecorder, KV_PROCESSES, NemesisConfig, Problem,
    ReplicaState, Schedule, check_history_of_run, failure_report, heal, key_name, plan_operation,
    play, replicas_agree, summary,
};
use paxoskv::checker::{DEFAULT_STEP_BUDGET, OpKind};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use runtime::transport::memory::Network;
use runtime::{ExitReason, Node, NodeName, NodeRole};

/// How long the cluster may take to settle after the heal (2 shared cores, debug builds).
const SETTLE: Duration = Duration::from_secs(60);
/// The test target, for the replay command.
const TARGET: &str = "nemesis_inprocess";

/// One short run in the default suite: about 15 s of load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nemesis_short() {
    let defaults = Defaults {
        secs: 15,
        clients: 6,
        keys: 3,
    };
    run_from_env(defaults, "nemesis_short", false).await;
}

/// The soak: two minutes by default;
/// `cargo test --release --test nemesis_inprocess -- --ignored nemesis_soak --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 120-second soak; run with --ignored"]
async fn nemesis_soak() {
    let defaults = Defaults {
        secs: 120,
        clients: 6,
        keys: 6,
    };
    run_from_env(defaults, "nemesis_soak", true).await;
}

async fn run_from_env(defaults: Defaults, test: &str, ignored: bool) {
    let _ = env_logger::builder().is_test(true).try_init();
    let config = match NemesisConfig::from_env(defaults) {
        Ok(config) => config,
        Err(error) => panic!("{test}: {error}"),
    };
    let replay = config.replay_command(TARGET, test, ignored);
    let schedule = Schedule::generate(&config);
    eprintln!(
        "{test}: {config}\nreplay with NEMESIS_SEED={} ({replay})\n{schedule}",
        config.seed
    );
    let mut run = NemesisRun::start(&config, test).await;
    let outcome = run.execute(&config, &schedule).await;
    let history = run.recorder.operations();
    run.stop();
    eprintln!("{test}: {}", summary(&history));
    if let Err(problem) = outcome {
        panic!(
            "{}",
            failure_report(TARGET, &replay, &config, &schedule, &history, &problem)
        );
    }
}

/// A cluster under test and the record of what its clients saw.
struct NemesisRun {
    net: Network,
    names: Vec<NodeName>,
    servers: Vec<KvServer>,
    recorder: HistoryRecorder,
    client_nodes: Vec<Node>,
    prefix: String,
}

impl NemesisRun {
    async fn start(config: &NemesisConfig, test: &str) -> NemesisRun {
        let net = Network::new();
        let prefix = format!("{test}-{}", config.seed % 100_000);
        let names: Vec<NodeName> = (0..config.nodes)
            .map(|i| NodeName::new(format!("{prefix}-s{i}@mem")))
            .collect();
        let mut servers = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let node = net.start_node(name.clone(), NodeRole::Server);
            // Drop decisions drawn from the run's seed.
            node.faults().reseed(config.seed.wrapping_add(i as u64));
            match start_server(&node, names.clone(), ServerOptions::default()).await {
                Ok(server) => servers.push(server),
                Err(error) => panic!("starting {name}: {error}"),
            }
        }
        NemesisRun {
            net,
            names,
            servers,
            recorder: HistoryRecorder::new(),
            client_nodes: Vec::new(),
            prefix,
        }
    }

    /// A client on a node of its own that knows `servers` (indices).
    fn client(&mut self, servers: &[usize]) -> Client {
        let name = format!("{}-c{}@mem", self.prefix, self.client_nodes.len());
        let node = self.net.start_node(NodeName::new(name), NodeRole::Client);
        let known = servers.iter().map(|&i| self.names[i].clone()).collect();
        self.client_nodes.push(node.clone());
        match kv_app::client::start(&node, known, ClientTimeouts::default()) {
            Ok(client) => client,
            Err(error) => panic!("starting a client: {error}"),
        }
    }

    /// Load and nemesis, heal, final reads and checks.
    async fn execute(
        &mut self,
        config: &NemesisConfig,
        schedule: &Schedule,
    ) -> Result<(), Problem> {
        let stop = Arc::new(AtomicBool::new(false));
        let everyone: Vec<usize> = (0..config.nodes).collect();
        let mut clients = Vec::new();
        for id in 1..=config.clients as u64 {
            let client = self.client(&everyone);
            let recorder = self.recorder.clone();
            let stop = stop.clone();
            let seed = config.seed.wrapping_add(id.wrapping_mul(0x9e37_79b9));
            let (keys, op_timeout) = (config.keys, config.op_timeout);
            clients.push(tokio::spawn(async move {
                client_loop(id, client, recorder, seed, keys, op_timeout, stop).await
            }));
        }
        let origin = self.recorder.origin();
        let mut applier = InProcessApplier {
            servers: self.servers.clone(),
            names: self.names.clone(),
        };
        let errors = play(schedule, origin, &mut applier).await;
        tokio::time::sleep_until(origin + config.duration).await;
        let heal_errors = heal(schedule, &mut applier);
        eprintln!(
            "nemesis done, healed; {} action(s) had nothing to act on: {errors:?} {heal_errors:?}",
            errors.len() + heal_errors.len()
        );
        stop.store(true, Ordering::SeqCst);
        for (i, task) in clients.into_iter().enumerate() {
            let within = config.op_timeout + SETTLE;
            match tokio::time::timeout(within, task).await {
                Ok(Ok(Ok(ops))) => log::info!("client {} ran {ops} operations", i + 1),
                Ok(Ok(Err(error))) => return Err(Problem::Stuck(error)),
                Ok(Err(join)) => return Err(Problem::Stuck(format!("client {}: {join}", i + 1))),
                Err(_) => {
                    return Err(Problem::Stuck(format!(
                        "client {} did not stop within {within:?}",
                        i + 1
                    )));
                }
            }
        }
        self.faults_took_effect(schedule)?;
        self.final_reads(config, schedule).await?;
        let history = self.recorder.operations();
        if !history.iter().any(|op| op.result().is_some()) {
            return Err(Problem::Stuck("no operation was acknowledged".to_string()));
        }
        let checked = tokio::task::spawn_blocking(move || {
            check_history_of_run(&history, DEFAULT_STEP_BUDGET)
        })
        .await;
        match checked {
            Ok(verdict) => verdict?,
            Err(join) => return Err(Problem::Invalid(format!("the checker panicked: {join}"))),
        }
        self.wait_replicas_agree(schedule).await
    }

    /// One read of every key through a fresh client that knows the survivors, recorded
    /// after every other operation: the checker then proves that no acknowledged write
    /// was lost and that every write-hash was applied exactly once.
    async fn final_reads(
        &mut self,
        config: &NemesisConfig,
        schedule: &Schedule,
    ) -> Result<(), Problem> {
        let reader = self.client(&schedule.survivors());
        let reader_id = config.clients as u64 + 1;
        for key in (0..config.keys).map(key_name) {
            let pending = self.recorder.call(reader_id, OpKind::Read, &key, "");
            match reader
                .run(kv_app::ops::OpKind::Read, &key, "", Some(SETTLE))
                .await
            {
                Ok(value) => pending.returned(value),
                Err(error) => {
                    pending.gave_up(error.to_string());
                    return Err(Problem::Stuck(format!("the final read of {key}: {error}")));
                }
            }
        }
        Ok(())
    }

    /// Every surviving replica applies the same log prefix, holds the same data, and
    /// still runs its kv processes (the supervisors never gave up).
    async fn wait_replicas_agree(&self, schedule: &Schedule) -> Result<(), Problem> {
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            let replicas: Vec<ReplicaState> = schedule
                .survivors()
                .into_iter()
                .map(|i| ReplicaState {
                    name: self.names[i].to_string(),
                    applied: self.servers[i].applied(),
                    data: self.servers[i].data(),
                })
                .collect();
            let missing: Vec<String> = schedule
                .survivors()
                .into_iter()
                .flat_map(|i| {
                    let node = self.servers[i].node().clone();
                    let name = self.names[i].to_string();
                    KV_PROCESSES
                        .into_iter()
                        .filter(move |process| node.whereis(process).is_none())
                        .map(move |process| format!("{process} on {name}"))
                })
                .collect();
            let agreement = replicas_agree(&replicas);
            if agreement.is_ok() && missing.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                agreement?;
                return Err(Problem::Stuck(format!(
                    "not running: {}",
                    missing.join(", ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Each kind of fault the schedule applied to the survivors left drops in their
    /// counters (a nemesis that only thinks it acts fails here).
    fn faults_took_effect(&self, schedule: &Schedule) -> Result<(), Problem> {
        let mut got = runtime::FaultCounts::default();
        for i in schedule.survivors() {
            let c = self.servers[i].node().faults().counts();
            got.deaf += c.deaf;
            got.cut += c.cut;
            got.lost_in += c.lost_in;
            got.lost_out += c.lost_out;
        }
        schedule.expected_drops().check(got).map_err(Problem::Stuck)
    }

    fn stop(&self) {
        for node in &self.client_nodes {
            node.stop();
        }
        for server in &self.servers {
            server.node().stop();
        }
    }
}

/// One client: random operations, one at a time, until told to stop. A timeout is an
/// unknown outcome; any other error ends the run.
async fn client_loop(
    id: u64,
    client: Client,
    recorder: HistoryRecorder,
    seed: u64,
    keys: usize,
    op_timeout: Duration,
    stop: Arc<AtomicBool>,
) -> Result<u64, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let op = plan_operation(&mut rng, id, n, keys);
        let pending = recorder.call(id, op.kind, &op.key, &op.value);
        match client
            .run(op.kind, &op.key, &op.value, Some(op_timeout))
            .await
        {
            Ok(result) => pending.returned(result),
            Err(ClientError::Timeout) => pending.gave_up("timeout"),
            Err(error) => {
                pending.gave_up(error.to_string());
                return Err(format!("client {id}: {error}"));
            }
        }
        n += 1;
    }
    client.stop();
    Ok(n)
}

/// Applies the nemesis's actions to in-memory nodes with the kv app's fault calls,
/// `exit(kill)` of a registered process, and `Node::stop` for a crash.
struct InProcessApplier {
    servers: Vec<KvServer>,
    names: Vec<NodeName>,
}

impl FaultApplier for InProcessApplier {
    fn apply(&mut self, action: &Action) -> Result<(), String> {
        let index = action.node();
        let node = self
            .servers
            .get(index)
            .map(|server| server.node())
            .ok_or_else(|| format!("no server s{index}"))?;
        match action {
            Action::Deaf { .. } => deaf(node),
            Action::Listen { .. } => listen(node),
            Action::Unreliable { p, .. } => unreliable(node, *p),
            Action::Reliable { .. } => reliable(node),
            Action::Allow { peers, .. } => {
                let names: Vec<NodeName> = peers
                    .iter()
                    .filter_map(|&peer| self.names.get(peer).cloned())
                    .collect();
                allow(node, &names);
            }
            Action::AllowAll { .. } => allow_all(node),
            Action::Kill { process, .. } => match node.whereis(process) {
                Some(pid) => node.exit(None, &pid, ExitReason::Kill),
                None => return Err(format!("{process} is not registered (being restarted)")),
            },
            Action::Crash { .. } => node.stop(),
        }
        Ok(())
    }
}
