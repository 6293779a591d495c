//! One simulated run: a cluster of kv servers and clients on the simulated network, on a
//! current-thread runtime with paused time, under the nemesis's schedule; then the heal,
//! a final read of every key, the replicas compared, and the linearizability check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kv_app::app::{allow, allow_all, deaf, listen, reliable, unreliable};
use kv_app::batcher::Forwarding;
use kv_app::{Client, ClientError, ClientTimeouts, KvServer, ServerOptions, start_server};
use paxoskv::checker::{DEFAULT_STEP_BUDGET, OpKind, Operation};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use runtime::clock;
use runtime::transport::sim::{SimNetwork, SimStats};
use runtime::{ExitReason, NodeName, NodeRole};

use super::params::SimParams;
use crate::nemesis_support::{
    Action, FaultApplier, FaultKind, HistoryRecorder, KV_PROCESSES, NemesisConfig, Problem,
    ReplicaState, Schedule, check_history_of_run, heal, key_name, plan_operation, play,
    replicas_agree,
};

/// The processes a kill may hit: the kv ones, the Paxos ones, and their supervisors
/// (every process of the node restarted at once, as a node restart that keeps its state
/// would). Their supervisors restart them; Paxos state lives in the node's tables and the
/// data in the shared store, which outlive them.
pub const SIM_PROCESSES: [&str; 8] = [
    "db_manager",
    "kv_batcher",
    "kv_server",
    "paxos_acceptor",
    "paxos_proposer",
    "paxos_learner",
    "kv_sup",
    "paxos_sup",
];

/// How long (simulated) the cluster may take to settle after the heal.
const SETTLE: Duration = Duration::from_secs(30);

/// What a run did and how it ended.
#[derive(Debug, Clone)]
pub struct SimOutcome {
    pub params: SimParams,
    /// The hash of every frame delivered, in order with its time, then of every
    /// replica's applied position and data and of the history.
    pub trace: u64,
    pub history: Vec<Operation>,
    /// Simulated time the run took, load and settling.
    pub simulated: Duration,
    pub net: SimStats,
    pub schedule: Schedule,
    /// Schedule steps that had nothing to act on (a process being restarted).
    pub fault_errors: usize,
    /// Processes killed (each restarted by its supervisor).
    pub kills: usize,
    /// Nodes crashed.
    pub crashes: usize,
    /// Each surviving server's Paxos figures at the end (`max`, `min`, held), for replays.
    pub paxos: Vec<String>,
    pub problem: Option<Problem>,
}

impl SimOutcome {
    /// Operations acknowledged with a result.
    pub fn acknowledged(&self) -> usize {
        self.history
            .iter()
            .filter(|op| op.result().is_some())
            .count()
    }
}

/// Runs `params` to the end, checks included.
pub fn run_seed(params: &SimParams) -> SimOutcome {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => panic!("building a simulation runtime: {error}"),
    };
    let mut outcome = runtime.block_on(simulate(params));
    // Every task (the nodes' processes, timers, the network) ends with the runtime.
    drop(runtime);
    if outcome.problem.is_none()
        && let Err(problem) = check_history_of_run(&outcome.history, DEFAULT_STEP_BUDGET)
    {
        outcome.problem = Some(problem);
    }
    outcome
}

async fn simulate(params: &SimParams) -> SimOutcome {
    let began = clock::now();
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed ^ 0x636c_7573_7465_7221);
    let net = SimNetwork::new(params.net, rng.random());
    let config = NemesisConfig {
        seed: params.seed,
        duration: params.duration,
        clients: params.clients,
        keys: params.keys,
        nodes: params.nodes,
        faults: FaultKind::ALL.into_iter().collect(),
        op_timeout: params.op_timeout,
    };
    let schedule = Schedule::generate_killing(&config, &SIM_PROCESSES);
    let mut run = SimCluster {
        net: net.clone(),
        names: (0..params.nodes)
            .map(|i| NodeName::new(format!("s{i}@sim")))
            .collect(),
        servers: Vec::new(),
        clients: 0,
        recorder: HistoryRecorder::new(),
    };
    let opts = ServerOptions {
        forwarding: Forwarding {
            enabled: params.forwarding,
            ..Forwarding::default()
        },
        deliberate: params.deliberate,
        ..ServerOptions::default()
    };
    let mut problem = None;
    for name in run.names.clone() {
        let node = net.start_node(name.clone(), NodeRole::Server, rng.random());
        match start_server(&node, run.names.clone(), opts).await {
            Ok(server) => run.servers.push(server),
            Err(error) => {
                problem = Some(Problem::Stuck(format!("starting {name}: {error}")));
                break;
            }
        }
    }
    let mut applier = SimApplier {
        servers: run.servers.clone(),
        names: run.names.clone(),
        kills: 0,
        crashes: 0,
    };
    let mut fault_errors = 0;
    if problem.is_none() {
        match run
            .execute(&config, &schedule, &mut applier, &mut rng)
            .await
        {
            Ok(errors) => fault_errors = errors,
            Err(p) => problem = Some(p),
        }
    }
    let history = run.recorder.operations();
    let paxos = schedule
        .survivors()
        .into_iter()
        .filter_map(|i| run.servers.get(i))
        .map(|server| {
            let status = server.status();
            format!(
                "{}: max {} min {} held {} alive {}, applied {}",
                status.node,
                status.paxos.max,
                status.paxos.min,
                status.paxos.held,
                status.paxos.alive,
                status.kv.applied
            )
        })
        .collect();
    for i in schedule.survivors() {
        if let Some(server) = run.servers.get(i) {
            net.note(&server.applied().to_le_bytes());
            for (key, value) in server.data() {
                net.note(key.as_bytes());
                net.note(value.as_bytes());
            }
        }
    }
    for op in &history {
        net.note(op.to_json_line().as_bytes());
    }
    SimOutcome {
        params: params.clone(),
        trace: net.trace(),
        history,
        simulated: clock::now().saturating_duration_since(began),
        net: net.stats(),
        schedule,
        fault_errors,
        kills: applier.kills,
        crashes: applier.crashes,
        paxos,
        problem,
    }
}

/// The cluster of one run.
struct SimCluster {
    net: SimNetwork,
    names: Vec<NodeName>,
    servers: Vec<KvServer>,
    clients: usize,
    recorder: HistoryRecorder,
}

impl SimCluster {
    /// A client on a node of its own that knows `servers` (indices).
    fn client(&mut self, servers: &[usize], seed: u64) -> Result<Client, Problem> {
        let name = NodeName::new(format!("c{}@sim", self.clients));
        self.clients += 1;
        let node = self.net.start_node(name, NodeRole::Client, seed);
        let known = servers.iter().map(|&i| self.names[i].clone()).collect();
        kv_app::client::start(&node, known, ClientTimeouts::default())
            .map_err(|error| Problem::Stuck(format!("starting a client: {error}")))
    }

    /// Load and nemesis, heal, final reads and replicas compared; returns how many
    /// schedule steps had nothing to act on.
    async fn execute(
        &mut self,
        config: &NemesisConfig,
        schedule: &Schedule,
        applier: &mut SimApplier,
        rng: &mut ChaCha8Rng,
    ) -> Result<usize, Problem> {
        let stop = Arc::new(AtomicBool::new(false));
        let everyone: Vec<usize> = (0..config.nodes).collect();
        let mut tasks = Vec::new();
        for id in 1..=config.clients as u64 {
            let client = self.client(&everyone, rng.random())?;
            let recorder = self.recorder.clone();
            let stop = stop.clone();
            let seed = rng.random();
            let (keys, op_timeout) = (config.keys, config.op_timeout);
            tasks.push(tokio::spawn(async move {
                client_loop(id, client, recorder, seed, keys, op_timeout, stop).await
            }));
        }
        let origin = self.recorder.origin();
        let errors = play(schedule, origin, applier).await;
        tokio::time::sleep_until(origin + config.duration).await;
        let heal_errors = heal(schedule, applier);
        stop.store(true, Ordering::SeqCst);
        for (i, task) in tasks.into_iter().enumerate() {
            let within = config.op_timeout + SETTLE;
            match tokio::time::timeout(within, task).await {
                Ok(Ok(Ok(_))) => {}
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
        self.final_reads(config, schedule, rng.random()).await?;
        self.wait_replicas_agree(schedule).await?;
        Ok(errors.len() + heal_errors.len())
    }

    /// One read of every key through a fresh client that knows the survivors, recorded
    /// after every other operation.
    async fn final_reads(
        &mut self,
        config: &NemesisConfig,
        schedule: &Schedule,
        seed: u64,
    ) -> Result<(), Problem> {
        let reader = self.client(&schedule.survivors(), seed)?;
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
    /// still runs its kv processes.
    async fn wait_replicas_agree(&self, schedule: &Schedule) -> Result<(), Problem> {
        let deadline = clock::now() + SETTLE;
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
            if clock::now() >= deadline {
                agreement?;
                return Err(Problem::Stuck(format!(
                    "not running: {}",
                    missing.join(", ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
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

/// Applies the nemesis's actions to simulated nodes: the kv app's fault calls,
/// `exit(kill)` of a registered process (its supervisor restarts it), and `Node::stop`
/// for a crash.
struct SimApplier {
    servers: Vec<KvServer>,
    names: Vec<NodeName>,
    kills: usize,
    crashes: usize,
}

impl FaultApplier for SimApplier {
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
                Some(pid) => {
                    node.exit(None, &pid, ExitReason::Kill);
                    self.kills += 1;
                }
                None => return Err(format!("{process} is not registered (being restarted)")),
            },
            // The node dies for good: its state is memory only, and a node that came
            // back under its name without its acceptor's promises could break agreement.
            // TODO(durability, issue 12): restart the node with its data here
            // (`SimNetwork::start_node` under the same name, a fresh seed, and the
            // simulated disk's synced contents), and let the schedule bring it back.
            Action::Crash { .. } => {
                node.stop();
                self.crashes += 1;
            }
        }
        Ok(())
    }
}
