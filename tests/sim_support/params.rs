//! The shape of one simulated run, drawn from its seed: how long, how many clients and
//! keys, whether followers forward to the distinguished proposer, and how the network
//! behaves; plus the one line that replays it.

use std::fmt;
use std::time::Duration;

use kv_app::deliberate::DeliberateBugs;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use runtime::transport::sim::SimConfig;

/// The test target, for the replay line.
pub const TARGET: &str = "sim_cluster";

/// Everything that decides a simulated run.
#[derive(Debug, Clone, PartialEq)]
pub struct SimParams {
    pub seed: u64,
    /// Server nodes.
    pub nodes: usize,
    /// Simulated time under load and faults (then heal, final reads, checks).
    pub duration: Duration,
    pub clients: usize,
    pub keys: usize,
    /// Followers forward their batches to peer 0 (the product's default) or propose
    /// themselves.
    pub forwarding: bool,
    pub net: SimConfig,
    /// How long a client waits for one operation before recording it as unknown.
    pub op_timeout: Duration,
    pub deliberate: DeliberateBugs,
}

impl SimParams {
    /// The run of `seed` on `nodes` servers.
    pub fn from_seed(seed: u64, nodes: usize) -> SimParams {
        // A stream of its own, so that the run's other streams do not shift the shape.
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7368_6170_6521);
        SimParams {
            seed,
            nodes,
            duration: Duration::from_millis(rng.random_range(4_000..10_000)),
            clients: rng.random_range(2..=5),
            keys: rng.random_range(1..=3),
            forwarding: rng.random_bool(0.75),
            net: SimConfig::random(&mut rng),
            op_timeout: Duration::from_millis(rng.random_range(1_000..4_000)),
            deliberate: DeliberateBugs::default(),
        }
    }

    /// The environment that replays this run: `SIM_SEED`, `SIM_NODES` and, when a
    /// deliberate bug is on, `SIM_BUG`.
    pub fn env_assignments(&self) -> String {
        let bug = if self.deliberate.apply_duplicates {
            " SIM_BUG=apply_duplicates"
        } else {
            ""
        };
        format!("SIM_SEED={} SIM_NODES={}{bug}", self.seed, self.nodes)
    }

    /// The one line that replays this run.
    pub fn replay_line(&self) -> String {
        format!(
            "{} cargo test --release --test {TARGET} -- --exact replay --nocapture",
            self.env_assignments()
        )
    }

    /// The run `SIM_SEED`/`SIM_NODES`/`SIM_BUG` name, `None` without `SIM_SEED`.
    pub fn from_env() -> Result<Option<SimParams>, String> {
        let Ok(seed) = std::env::var("SIM_SEED") else {
            return Ok(None);
        };
        let seed = seed
            .trim()
            .parse()
            .map_err(|_| format!("SIM_SEED={seed:?} is not a whole number"))?;
        let nodes = match std::env::var("SIM_NODES") {
            Ok(n) => n
                .trim()
                .parse()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("SIM_NODES={n:?} is not a node count"))?,
            Err(_) => 3,
        };
        let mut params = SimParams::from_seed(seed, nodes);
        match std::env::var("SIM_BUG").as_deref() {
            Ok("apply_duplicates") => params.deliberate.apply_duplicates = true,
            Ok("") | Err(_) => {}
            Ok(other) => return Err(format!("SIM_BUG={other:?}: known bugs: apply_duplicates")),
        }
        Ok(Some(params))
    }
}

impl fmt::Display for SimParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: {} nodes, {:.1} s, {} clients, {} keys, forwarding {}, network: loss \
             {:.3} dup {:.3} straggle {:.3} delay {:?}..{:?}{}",
            self.seed,
            self.nodes,
            self.duration.as_secs_f64(),
            self.clients,
            self.keys,
            if self.forwarding { "on" } else { "off" },
            self.net.loss,
            self.net.duplicate,
            self.net.straggle,
            self.net.min_delay,
            self.net.max_delay,
            if self.deliberate.apply_duplicates {
                ", BUG apply_duplicates"
            } else {
                ""
            }
        )
    }
}
