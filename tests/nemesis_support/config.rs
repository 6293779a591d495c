//! The parameters of a nemesis run (seed, length, clients, keys, which faults, how long a
//! client waits for one operation), read from
//! the `NEMESIS_*` environment variables with per-test defaults, and the command line
//! that replays a run.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

/// The kinds of fault a nemesis can inject, named as in `NEMESIS_FAULTS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// A node drops every message from other nodes for a while.
    Deaf,
    /// A node drops each message crossing its boundary with probability 0.1-0.3.
    Unreliable,
    /// Servers split into a majority and a minority, or into three groups.
    Partition,
    /// Two sides that cannot talk, and one node that talks to both.
    Bridge,
    /// A kv process (`db_manager`, `kv_batcher`, `kv_server`) is killed; its supervisor
    /// restarts it.
    Kill,
    /// A whole node dies (`kill -9`) and stays down.
    Crash,
}

impl FaultKind {
    /// Every kind, in the order they are listed.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Deaf,
        FaultKind::Unreliable,
        FaultKind::Partition,
        FaultKind::Bridge,
        FaultKind::Kill,
        FaultKind::Crash,
    ];

    /// The name used in `NEMESIS_FAULTS`.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Deaf => "deaf",
            FaultKind::Unreliable => "unreliable",
            FaultKind::Partition => "partition",
            FaultKind::Bridge => "bridge",
            FaultKind::Kill => "kill",
            FaultKind::Crash => "crash",
        }
    }

    /// The kind named `name` (as `name()` spells it).
    pub fn parse(name: &str) -> Result<FaultKind, ConfigError> {
        FaultKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| ConfigError::UnknownFault(name.to_string()))
    }

    /// A comma list of kinds, e.g. `deaf,kill`; empty items are skipped.
    pub fn parse_list(list: &str) -> Result<BTreeSet<FaultKind>, ConfigError> {
        list.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(FaultKind::parse)
            .collect()
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A bad `NEMESIS_*` variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{variable}={value:?} is not a whole number")]
    NotANumber {
        variable: &'static str,
        value: String,
    },
    #[error("{variable} must be at least 1")]
    Zero { variable: &'static str },
    #[error(
        "unknown fault kind {0:?} in NEMESIS_FAULTS (known: deaf, unreliable, partition, bridge, kill, crash)"
    )]
    UnknownFault(String),
}

/// What a test uses when a variable is not set.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    /// Seconds of load under the nemesis.
    pub secs: u64,
    pub clients: usize,
    pub keys: usize,
}

/// How long a client waits for one operation unless `NEMESIS_OP_TIMEOUT_MS` says.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything that decides a run: the same values replay the same schedule and the same
/// client choices (thread timing still varies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NemesisConfig {
    pub seed: u64,
    /// How long clients run under the nemesis; faults all end by then.
    pub duration: Duration,
    pub clients: usize,
    pub keys: usize,
    /// Server nodes in the cluster.
    pub nodes: usize,
    pub faults: BTreeSet<FaultKind>,
    /// How long a client waits for an operation before recording it as unknown.
    pub op_timeout: Duration,
}

/// The server nodes of every nemesis cluster.
pub const NODES: usize = 5;

impl NemesisConfig {
    /// Reads `NEMESIS_SEED` (default: from the clock), `NEMESIS_SECS`, `NEMESIS_CLIENTS`,
    /// `NEMESIS_KEYS`, `NEMESIS_FAULTS` (default: every kind) and `NEMESIS_OP_TIMEOUT_MS`
    /// (default 5000).
    pub fn from_env(defaults: Defaults) -> Result<NemesisConfig, ConfigError> {
        let seed = match number("NEMESIS_SEED")? {
            Some(seed) => seed,
            None => clock_seed(),
        };
        let secs = number("NEMESIS_SECS")?.unwrap_or(defaults.secs);
        let clients = positive("NEMESIS_CLIENTS", defaults.clients)?;
        let keys = positive("NEMESIS_KEYS", defaults.keys)?;
        let faults = match std::env::var("NEMESIS_FAULTS") {
            Ok(list) => FaultKind::parse_list(&list)?,
            Err(_) => FaultKind::ALL.into_iter().collect(),
        };
        let op_timeout = match number("NEMESIS_OP_TIMEOUT_MS")? {
            Some(0) => {
                return Err(ConfigError::Zero {
                    variable: "NEMESIS_OP_TIMEOUT_MS",
                });
            }
            Some(ms) => Duration::from_millis(ms),
            None => DEFAULT_OP_TIMEOUT,
        };
        Ok(NemesisConfig {
            seed,
            duration: Duration::from_secs(secs),
            clients,
            keys,
            nodes: NODES,
            faults,
            op_timeout,
        })
    }

    /// The faults as `NEMESIS_FAULTS` spells them.
    pub fn fault_list(&self) -> String {
        let names: Vec<&str> = self.faults.iter().map(|kind| kind.name()).collect();
        names.join(",")
    }

    /// The environment that reproduces this run.
    pub fn env_assignments(&self) -> String {
        format!(
            "NEMESIS_SEED={} NEMESIS_SECS={} NEMESIS_CLIENTS={} NEMESIS_KEYS={} \
             NEMESIS_FAULTS={} NEMESIS_OP_TIMEOUT_MS={}",
            self.seed,
            self.duration.as_secs(),
            self.clients,
            self.keys,
            self.fault_list(),
            self.op_timeout.as_millis()
        )
    }

    /// The command that replays this run of `test` in the test target `target`
    /// (`ignored`: the test is a soak, run only with `--ignored`).
    pub fn replay_command(&self, target: &str, test: &str, ignored: bool) -> String {
        let ignored = if ignored { "--ignored " } else { "" };
        format!(
            "{} cargo test --release --test {target} -- {ignored}--exact {test} --nocapture",
            self.env_assignments()
        )
    }
}

impl fmt::Display for NemesisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}, {} s, {} clients, {} keys, {} nodes, faults [{}], {} ms per operation",
            self.seed,
            self.duration.as_secs(),
            self.clients,
            self.keys,
            self.nodes,
            self.fault_list(),
            self.op_timeout.as_millis()
        )
    }
}

fn number(variable: &'static str) -> Result<Option<u64>, ConfigError> {
    match std::env::var(variable) {
        Ok(value) => value
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ConfigError::NotANumber { variable, value }),
        Err(_) => Ok(None),
    }
}

fn positive(variable: &'static str, default: usize) -> Result<usize, ConfigError> {
    match number(variable)? {
        Some(0) => Err(ConfigError::Zero { variable }),
        Some(n) => usize::try_from(n).map_err(|_| ConfigError::NotANumber {
            variable,
            value: n.to_string(),
        }),
        None => Ok(default),
    }
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_parse_and_reject_unknown_names() {
        let kinds = FaultKind::parse_list("deaf, kill,,crash").expect("valid list");
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            vec![FaultKind::Deaf, FaultKind::Kill, FaultKind::Crash]
        );
        assert!(FaultKind::parse_list("").expect("empty list").is_empty());
        assert!(matches!(
            FaultKind::parse_list("deaf,flood"),
            Err(ConfigError::UnknownFault(name)) if name == "flood"
        ));
        for kind in FaultKind::ALL {
            assert_eq!(FaultKind::parse(kind.name()).expect("own name"), kind);
        }
    }

    #[test]
    fn the_replay_command_carries_every_parameter() {
        let config = NemesisConfig {
            seed: 42,
            duration: Duration::from_secs(7),
            clients: 3,
            keys: 2,
            nodes: NODES,
            faults: [FaultKind::Bridge, FaultKind::Deaf].into_iter().collect(),
            op_timeout: Duration::from_millis(800),
        };
        assert_eq!(
            config.replay_command("nemesis_inprocess", "soak", true),
            "NEMESIS_SEED=42 NEMESIS_SECS=7 NEMESIS_CLIENTS=3 NEMESIS_KEYS=2 \
             NEMESIS_FAULTS=deaf,bridge NEMESIS_OP_TIMEOUT_MS=800 cargo test --release --test nemesis_inprocess -- \
             --ignored --exact soak --nocapture"
        );
    }
}
