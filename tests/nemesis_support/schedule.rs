//! The nemesis's plan: a seeded list of fault windows (what, on which nodes, from when to
//! when), overlapping and in random order, and the node-level actions that carry it out
//! (`deaf`, `listen`, `unreliable p`, `reliable`, `allow`, `allow-all`, `kill PROCESS`,
//! and the crash of a whole node). The plan knows nothing of how actions are applied:
//! an in-process cluster calls the node's fault functions, a cluster of OS processes runs
//! `paxoskv ctl` and `kill -9`.
//!
//! Windows may overlap freely; a node's state at any instant is the combination of the
//! windows active on it (deaf if any deaf window is, the highest drop probability, the
//! intersection of the allow lists). Generation keeps the cluster able to serve: at no
//! instant are more than a minority of the nodes out (crashed, deaf, or unable to reach a
//! majority directly), and at most one node crashes, so after the heal a majority serves.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::{FaultKind, NemesisConfig};

/// The kv processes a `Kill` may hit: each is restarted by the kv supervisor.
pub const KV_PROCESSES: [&str; 3] = ["db_manager", "kv_batcher", "kv_server"];

/// The shortest time between two kills on one node, so the kv supervisor (10 restarts in
/// 10 s) never reaches its restart intensity.
const KILL_SPACING: Duration = Duration::from_millis(1500);

/// One fault, on node indices `0..nodes`.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    Deaf {
        node: usize,
    },
    Unreliable {
        node: usize,
        p: f64,
    },
    /// Each group talks only within itself (a majority and a minority, or three groups).
    Partition {
        groups: Vec<Vec<usize>>,
    },
    /// `left` and `right` cannot talk to each other; `bridge` talks to everyone, and each
    /// side to itself and the bridge.
    Bridge {
        left: Vec<usize>,
        bridge: usize,
        right: Vec<usize>,
    },
    /// Kills one registered kv process (instantaneous: the window's end is its start).
    Kill {
        node: usize,
        process: &'static str,
    },
    /// Kills the whole node, which stays down (its window lasts to the end of the run).
    Crash {
        node: usize,
    },
}

impl Fault {
    /// The kind of fault, as `NEMESIS_FAULTS` names it.
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Deaf { .. } => FaultKind::Deaf,
            Fault::Unreliable { .. } => FaultKind::Unreliable,
            Fault::Partition { .. } => FaultKind::Partition,
            Fault::Bridge { .. } => FaultKind::Bridge,
            Fault::Kill { .. } => FaultKind::Kill,
            Fault::Crash { .. } => FaultKind::Crash,
        }
    }

    /// The nodes a partition-like fault lets `node` talk to (itself included), `None` when
    /// it does not restrict `node`.
    fn allowed_for(&self, node: usize) -> Option<BTreeSet<usize>> {
        match self {
            Fault::Partition { groups } => groups
                .iter()
                .find(|group| group.contains(&node))
                .map(|group| group.iter().copied().collect()),
            Fault::Bridge {
                left,
                bridge,
                right,
            } => [left, right]
                .into_iter()
                .find(|side| side.contains(&node))
                .map(|side| side.iter().copied().chain([*bridge]).collect()),
            _ => None,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Deaf { node } => write!(f, "deaf s{node}"),
            Fault::Unreliable { node, p } => write!(f, "unreliable s{node} p={p:.2}"),
            Fault::Partition { groups } => {
                let groups: Vec<String> = groups.iter().map(|g| node_list(g)).collect();
                write!(f, "partition {}", groups.join(" | "))
            }
            Fault::Bridge {
                left,
                bridge,
                right,
            } => write!(
                f,
                "bridge {} <- s{bridge} -> {}",
                node_list(left),
                node_list(right)
            ),
            Fault::Kill { node, process } => write!(f, "kill {process} on s{node}"),
            Fault::Crash { node } => write!(f, "crash s{node} (stays down)"),
        }
    }
}

fn node_list(nodes: &[usize]) -> String {
    let names: Vec<String> = nodes.iter().map(|n| format!("s{n}")).collect();
    format!("{{{}}}", names.join(","))
}

/// A fault active over `[start, end)`, times from the start of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultWindow {
    pub start: Duration,
    pub end: Duration,
    pub fault: Fault,
}

impl FaultWindow {
    fn is_active_at(&self, t: Duration) -> bool {
        match self.fault {
            Fault::Crash { .. } => self.start <= t,
            Fault::Kill { .. } => false,
            _ => self.start <= t && t < self.end,
        }
    }
}

/// One node-level command, as `paxoskv ctl` offers them (plus the crash).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Deaf {
        node: usize,
    },
    Listen {
        node: usize,
    },
    Unreliable {
        node: usize,
        p: f64,
    },
    Reliable {
        node: usize,
    },
    /// Server-to-server traffic only with `peers` (which include the node itself).
    Allow {
        node: usize,
        peers: Vec<usize>,
    },
    AllowAll {
        node: usize,
    },
    Kill {
        node: usize,
        process: &'static str,
    },
    Crash {
        node: usize,
    },
}

impl Action {
    /// The node the action is taken on.
    pub fn node(&self) -> usize {
        match self {
            Action::Deaf { node }
            | Action::Listen { node }
            | Action::Unreliable { node, .. }
            | Action::Reliable { node }
            | Action::Allow { node, .. }
            | Action::AllowAll { node }
            | Action::Kill { node, .. }
            | Action::Crash { node } => *node,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Deaf { node } => write!(f, "s{node}: deaf"),
            Action::Listen { node } => write!(f, "s{node}: listen"),
            Action::Unreliable { node, p } => write!(f, "s{node}: unreliable {p:.2}"),
            Action::Reliable { node } => write!(f, "s{node}: reliable"),
            Action::Allow { node, peers } => write!(f, "s{node}: allow {}", node_list(peers)),
            Action::AllowAll { node } => write!(f, "s{node}: allow-all"),
            Action::Kill { node, process } => write!(f, "s{node}: kill {process}"),
            Action::Crash { node } => write!(f, "s{node}: crash"),
        }
    }
}

/// An action and when to take it, from the start of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub at: Duration,
    pub action: Action,
}

/// The kinds of drop a run's faults must show in the survivors' counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpectedDrops {
    pub deaf: bool,
    pub lost: bool,
    pub cut: bool,
}

impl ExpectedDrops {
    /// An error naming each expected kind of drop that `got` (summed over the survivors)
    /// does not show: a fault that only thinks it acts.
    pub fn check(&self, got: runtime::FaultCounts) -> Result<(), String> {
        let mut missing = Vec::new();
        if self.deaf && got.deaf == 0 {
            missing.push("deaf windows dropped nothing");
        }
        if self.lost && got.lost_in + got.lost_out == 0 {
            missing.push("unreliable windows lost nothing");
        }
        if self.cut && got.cut == 0 {
            missing.push("partitions cut nothing");
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("{} ({got:?})", missing.join("; ")))
        }
    }
}

/// The whole plan of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub nodes: usize,
    pub duration: Duration,
    /// In start order.
    pub windows: Vec<FaultWindow>,
    /// In time order; every fault is undone by `duration` (except a crash).
    pub steps: Vec<Step>,
}

/// The fault settings of one node.
#[derive(Debug, Clone, PartialEq)]
struct NodeState {
    deaf: bool,
    drop: f64,
    /// Nodes it may talk to; every node when not partitioned.
    allowed: BTreeSet<usize>,
}

impl Schedule {
    /// A random schedule for `config`: faults of the enabled kinds, starting every
    /// 0.15-0.9 s, each lasting 0.3-3 s, all over by `config.duration` (the crash, if
    /// any, somewhere after the first tenth of the run); a candidate that would leave too
    /// few nodes able to serve is skipped.
    pub fn generate(config: &NemesisConfig) -> Schedule {
        Schedule::generate_killing(config, &KV_PROCESSES)
    }

    /// As [`generate`](Self::generate), with kills chosen among `processes` (registered
    /// names whose supervisor restarts them).
    pub fn generate_killing(config: &NemesisConfig, processes: &[&'static str]) -> Schedule {
        // A stream of its own, so that the clients' choices do not shift the faults.
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x6e65_6d65_7369_7321);
        let kinds: Vec<FaultKind> = config.faults.iter().copied().collect();
        let nodes = config.nodes;
        let duration = config.duration;
        let mut windows: Vec<FaultWindow> = Vec::new();
        let mut t = millis(rng.random_range(200..800));
        // The crash comes at a random point of the run, not at the first chance.
        let crash_not_before = duration.mul_f64(rng.random_range(0.1..0.8));
        while !kinds.is_empty() && t + millis(300) < duration {
            let Some(kind) = kinds.choose(&mut rng).copied() else {
                break;
            };
            if kind == FaultKind::Crash && t < crash_not_before {
                t += millis(rng.random_range(150..900));
                continue;
            }
            let length = millis(rng.random_range(300..3000));
            let end = (t + length).min(duration);
            let candidate = random_window(&mut rng, kind, nodes, t, end, duration, processes);
            if admissible(&windows, &candidate, nodes) {
                windows.push(candidate);
            }
            t += millis(rng.random_range(150..900));
        }
        Schedule::from_windows(nodes, duration, windows)
    }

    /// The schedule that carries out `windows` (any order; sorted here by start).
    pub fn from_windows(
        nodes: usize,
        duration: Duration,
        mut windows: Vec<FaultWindow>,
    ) -> Schedule {
        windows.sort_by_key(|w| w.start);
        let steps = steps_for(nodes, &windows);
        Schedule {
            nodes,
            duration,
            windows,
            steps,
        }
    }

    /// The node that crashes, if one does.
    pub fn crashed(&self) -> Option<usize> {
        self.windows.iter().find_map(|w| match w.fault {
            Fault::Crash { node } => Some(node),
            _ => None,
        })
    }

    /// The nodes still up after the run.
    pub fn survivors(&self) -> Vec<usize> {
        let crashed = self.crashed();
        (0..self.nodes).filter(|&n| Some(n) != crashed).collect()
    }

    /// Which kinds of drop the faults must have left on the survivors' counters: a deaf
    /// or unreliable window on a survivor, and any partition or bridge (which cut the
    /// survivors too), under load cannot pass without dropping something.
    pub fn expected_drops(&self) -> ExpectedDrops {
        let survivors = self.survivors();
        let mut expected = ExpectedDrops::default();
        for w in &self.windows {
            match w.fault {
                Fault::Deaf { node } if survivors.contains(&node) => expected.deaf = true,
                Fault::Unreliable { node, .. } if survivors.contains(&node) => expected.lost = true,
                Fault::Partition { .. } | Fault::Bridge { .. } => expected.cut = true,
                _ => {}
            }
        }
        expected
    }

    /// Undoes every fault on every surviving node, whatever its state.
    pub fn heal(&self) -> Vec<Action> {
        self.survivors()
            .into_iter()
            .flat_map(|node| {
                [
                    Action::AllowAll { node },
                    Action::Listen { node },
                    Action::Reliable { node },
                ]
            })
            .collect()
    }

    /// How many windows of `kind` there are.
    pub fn count(&self, kind: FaultKind) -> usize {
        self.windows
            .iter()
            .filter(|w| w.fault.kind() == kind)
            .count()
    }

    /// The nodes that cannot serve at `t` (crashed, deaf, or unable to reach a majority).
    pub fn out_at(&self, t: Duration) -> BTreeSet<usize> {
        out_nodes(
            self.nodes,
            self.windows.iter().filter(|w| w.is_active_at(t)),
        )
    }
}

impl fmt::Display for Schedule {
    /// One window per line: `  1.200s-3.400s  deaf s2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} fault window(s) over {:.1} s:",
            self.windows.len(),
            self.duration.as_secs_f64()
        )?;
        for w in &self.windows {
            write!(
                f,
                "\n  {:>7.3}s-{:>7.3}s  {}",
                w.start.as_secs_f64(),
                w.end.as_secs_f64(),
                w.fault
            )?;
        }
        Ok(())
    }
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// A window of `kind` over `[start, end)` on random nodes.
fn random_window(
    rng: &mut ChaCha8Rng,
    kind: FaultKind,
    nodes: usize,
    start: Duration,
    end: Duration,
    duration: Duration,
    processes: &[&'static str],
) -> FaultWindow {
    let node = rng.random_range(0..nodes);
    let mut shuffled: Vec<usize> = (0..nodes).collect();
    shuffled.shuffle(rng);
    let majority = nodes / 2 + 1;
    let (end, fault) = match kind {
        FaultKind::Deaf => (end, Fault::Deaf { node }),
        FaultKind::Unreliable => {
            let p = f64::from(rng.random_range(10u32..=30)) / 100.0;
            (end, Fault::Unreliable { node, p })
        }
        FaultKind::Partition => {
            let minority = shuffled.split_off(rng.random_range(majority..nodes.max(majority + 1)));
            let mut groups = vec![shuffled];
            if minority.len() >= 2 && rng.random_bool(0.5) {
                // Three groups: the minority split in two.
                let cut = rng.random_range(1..minority.len());
                groups.push(minority[..cut].to_vec());
                groups.push(minority[cut..].to_vec());
            } else {
                groups.push(minority);
            }
            (end, Fault::Partition { groups })
        }
        FaultKind::Bridge => {
            let bridge = shuffled.pop().unwrap_or_default();
            let right = shuffled.split_off(shuffled.len() / 2);
            let fault = Fault::Bridge {
                left: shuffled,
                bridge,
                right,
            };
            (end, fault)
        }
        FaultKind::Kill => {
            let process = processes.choose(rng).copied().unwrap_or("kv_server");
            (start, Fault::Kill { node, process })
        }
        FaultKind::Crash => (duration, Fault::Crash { node }),
    };
    FaultWindow { start, end, fault }
}

/// Whether `candidate` can join `windows`: a crash at most once, kills spaced out on a
/// node and never on a crashed node, and never more than a minority of nodes out.
fn admissible(windows: &[FaultWindow], candidate: &FaultWindow, nodes: usize) -> bool {
    let crash = windows.iter().find_map(|w| match w.fault {
        Fault::Crash { node } => Some((node, w.start)),
        _ => None,
    });
    // A crashed node stays down: nothing more happens to it.
    let on_crashed = |node: usize| crash.is_some_and(|(n, at)| n == node && at <= candidate.start);
    match candidate.fault {
        Fault::Crash { .. } if crash.is_some() => return false,
        Fault::Deaf { node } | Fault::Unreliable { node, .. } if on_crashed(node) => {
            return false;
        }
        Fault::Kill { node, .. } => {
            let too_soon = windows.iter().any(|w| {
                matches!(w.fault, Fault::Kill { node: n, .. } if n == node)
                    && candidate.start.abs_diff(w.start) < KILL_SPACING
            });
            return !on_crashed(node) && !too_soon;
        }
        _ => {}
    }
    // The set of active windows changes only at starts and ends: checking there covers
    // every instant of the candidate.
    let mut instants = vec![candidate.start];
    for w in windows {
        for t in [w.start, w.end] {
            if candidate.start < t && t < candidate.end {
                instants.push(t);
            }
        }
    }
    let max_out = (nodes - 1) / 2;
    instants.into_iter().all(|t| {
        let active = windows
            .iter()
            .chain([candidate])
            .filter(|w| w.is_active_at(t));
        out_nodes(nodes, active).len() <= max_out
    })
}

/// The nodes that cannot serve under `active` windows: crashed or deaf ones, and those
/// that cannot reach a majority of live, hearing nodes directly (both ways allowed).
fn out_nodes<'a>(
    nodes: usize,
    active: impl IntoIterator<Item = &'a FaultWindow>,
) -> BTreeSet<usize> {
    let states = node_states(nodes, active);
    let majority = nodes / 2 + 1;
    let usable = |n: usize| !states.crashed.contains(&n) && !states.per_node[n].deaf;
    (0..nodes)
        .filter(|&n| {
            if !usable(n) {
                return true;
            }
            let reachable = (0..nodes)
                .filter(|&m| usable(m))
                .filter(|&m| {
                    m == n
                        || (states.per_node[n].allowed.contains(&m)
                            && states.per_node[m].allowed.contains(&n))
                })
                .count();
            reachable < majority
        })
        .collect()
}

/// The cluster's fault settings under a set of active windows.
struct ClusterState {
    per_node: Vec<NodeState>,
    crashed: BTreeSet<usize>,
}

fn node_states<'a>(
    nodes: usize,
    active: impl IntoIterator<Item = &'a FaultWindow>,
) -> ClusterState {
    let everyone: BTreeSet<usize> = (0..nodes).collect();
    let mut per_node: Vec<NodeState> = (0..nodes)
        .map(|_| NodeState {
            deaf: false,
            drop: 0.0,
            allowed: everyone.clone(),
        })
        .collect();
    let mut crashed = BTreeSet::new();
    for w in active {
        match &w.fault {
            Fault::Deaf { node } => per_node[*node].deaf = true,
            Fault::Unreliable { node, p } => {
                per_node[*node].drop = per_node[*node].drop.max(*p);
            }
            Fault::Crash { node } => {
                crashed.insert(*node);
            }
            Fault::Kill { .. } => {}
            fault @ (Fault::Partition { .. } | Fault::Bridge { .. }) => {
                for (node, state) in per_node.iter_mut().enumerate() {
                    if let Some(allowed) = fault.allowed_for(node) {
                        state.allowed = state.allowed.intersection(&allowed).copied().collect();
                    }
                }
            }
        }
    }
    ClusterState { per_node, crashed }
}

/// The actions that take every node through the states `windows` give it: at each start
/// or end, the crashes starting then, the difference between the old and the new settings
/// of each live node, then the kills starting then.
fn steps_for(nodes: usize, windows: &[FaultWindow]) -> Vec<Step> {
    let mut instants: Vec<Duration> = windows.iter().flat_map(|w| [w.start, w.end]).collect();
    instants.sort();
    instants.dedup();
    let everyone: BTreeSet<usize> = (0..nodes).collect();
    // No window active: every node healthy.
    let mut current = node_states(nodes, []).per_node;
    let mut crashed: BTreeSet<usize> = BTreeSet::new();
    let mut steps = Vec::new();
    for at in instants {
        let wanted = node_states(nodes, windows.iter().filter(|w| w.is_active_at(at)));
        let mut actions = Vec::new();
        for node in wanted.crashed.difference(&crashed) {
            actions.push(Action::Crash { node: *node });
        }
        crashed.extend(wanted.crashed.iter().copied());
        for node in (0..nodes).filter(|n| !crashed.contains(n)) {
            let (old, new) = (&current[node], &wanted.per_node[node]);
            if old.allowed != new.allowed {
                actions.push(if new.allowed == everyone {
                    Action::AllowAll { node }
                } else {
                    Action::Allow {
                        node,
                        peers: new.allowed.iter().copied().collect(),
                    }
                });
            }
            if old.deaf != new.deaf {
                actions.push(if new.deaf {
                    Action::Deaf { node }
                } else {
                    Action::Listen { node }
                });
            }
            if old.drop != new.drop {
                actions.push(if new.drop > 0.0 {
                    Action::Unreliable { node, p: new.drop }
                } else {
                    Action::Reliable { node }
                });
            }
        }
        current = wanted.per_node;
        for w in windows.iter().filter(|w| w.start == at) {
            if let Fault::Kill { node, process } = w.fault
                && !crashed.contains(&node)
            {
                actions.push(Action::Kill { node, process });
            }
        }
        steps.extend(actions.into_iter().map(|action| Step { at, action }));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(seed: u64, secs: u64, faults: &[FaultKind]) -> NemesisConfig {
        NemesisConfig {
            seed,
            duration: Duration::from_secs(secs),
            clients: 1,
            keys: 1,
            nodes: 5,
            faults: faults.iter().copied().collect(),
            op_timeout: Duration::from_secs(5),
        }
    }

    fn window(start_ms: u64, end_ms: u64, fault: Fault) -> FaultWindow {
        FaultWindow {
            start: millis(start_ms),
            end: millis(end_ms),
            fault,
        }
    }

    /// A node's settings as the steps leave them: deaf, drop probability, allow list.
    type Settings = (bool, f64, Option<Vec<usize>>);

    /// Replays the steps on a model of the nodes' settings, as an applier would.
    fn replay(schedule: &Schedule, until: Duration) -> (Vec<Settings>, Option<usize>) {
        let mut nodes = vec![(false, 0.0, None); schedule.nodes];
        let mut crashed = None;
        for step in schedule.steps.iter().filter(|s| s.at <= until) {
            match &step.action {
                Action::Deaf { node } => nodes[*node].0 = true,
                Action::Listen { node } => nodes[*node].0 = false,
                Action::Unreliable { node, p } => nodes[*node].1 = *p,
                Action::Reliable { node } => nodes[*node].1 = 0.0,
                Action::Allow { node, peers } => nodes[*node].2 = Some(peers.clone()),
                Action::AllowAll { node } => nodes[*node].2 = None,
                Action::Kill { .. } => {}
                Action::Crash { node } => crashed = Some(*node),
            }
        }
        (nodes, crashed)
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
        let all = FaultKind::ALL;
        assert_eq!(
            Schedule::generate(&config(7, 20, &all)),
            Schedule::generate(&config(7, 20, &all))
        );
        assert_ne!(
            Schedule::generate(&config(7, 20, &all)),
            Schedule::generate(&config(8, 20, &all))
        );
    }

    #[test]
    fn generated_schedules_keep_a_majority_serving_and_end_healed() {
        for seed in 0..200 {
            let schedule = Schedule::generate(&config(seed, 30, &FaultKind::ALL));
            let context = format!("seed {seed}\n{schedule}");
            assert!(schedule.count(FaultKind::Crash) <= 1, "{context}");
            for w in &schedule.windows {
                assert!(w.start <= w.end && w.end <= schedule.duration, "{context}");
            }
            // The set of active windows only changes at starts and ends.
            for w in &schedule.windows {
                for t in [w.start, w.end] {
                    let out = schedule.out_at(t);
                    assert!(out.len() <= 2, "{context}\nout at {t:?}: {out:?}");
                }
            }
            // Every fault but the crash is undone by the last step.
            let (nodes, crashed) = replay(&schedule, schedule.duration);
            assert_eq!(crashed, schedule.crashed(), "{context}");
            for (node, state) in nodes.iter().enumerate() {
                if Some(node) != crashed {
                    assert_eq!(*state, (false, 0.0, None), "{context}\ns{node}");
                }
            }
            // No window and no action for a node after it crashed.
            if let Some(node) = crashed {
                let crash_start = schedule
                    .windows
                    .iter()
                    .find(|w| w.fault == Fault::Crash { node })
                    .map(|w| w.start);
                let later = schedule.windows.iter().filter(|w| {
                    Some(w.start) > crash_start
                        && matches!(w.fault, Fault::Deaf { node: n } | Fault::Unreliable { node: n, .. } | Fault::Kill { node: n, .. } if n == node)
                });
                assert_eq!(later.count(), 0, "{context}");
            }
            if let Some(node) = crashed {
                let crash_at = schedule
                    .steps
                    .iter()
                    .find(|s| s.action == Action::Crash { node })
                    .map(|s| s.at);
                let after = schedule
                    .steps
                    .iter()
                    .filter(|s| Some(s.at) > crash_at && s.action.node() == node);
                assert_eq!(after.count(), 0, "{context}");
            }
        }
    }

    #[test]
    fn generated_schedules_use_every_enabled_kind_and_only_those() {
        let mut seen: BTreeMap<FaultKind, usize> = BTreeMap::new();
        for seed in 0..50 {
            let schedule = Schedule::generate(&config(seed, 20, &FaultKind::ALL));
            for w in &schedule.windows {
                *seen.entry(w.fault.kind()).or_default() += 1;
            }
            let only = Schedule::generate(&config(seed, 20, &[FaultKind::Deaf, FaultKind::Kill]));
            assert!(
                only.windows
                    .iter()
                    .all(|w| matches!(w.fault.kind(), FaultKind::Deaf | FaultKind::Kill)),
                "seed {seed}\n{only}"
            );
            // Kills on one node are spaced out.
            for a in &only.windows {
                for b in &only.windows {
                    if let (Fault::Kill { node: x, .. }, Fault::Kill { node: y, .. }) =
                        (&a.fault, &b.fault)
                        && x == y
                        && a != b
                    {
                        assert!(
                            a.start.abs_diff(b.start) >= KILL_SPACING,
                            "seed {seed}\n{only}"
                        );
                    }
                }
            }
        }
        for kind in FaultKind::ALL {
            assert!(
                seen.get(&kind).is_some_and(|&n| n > 0),
                "{kind} never generated: {seen:?}"
            );
        }
        let none = Schedule::generate(&config(1, 20, &[]));
        assert!(none.windows.is_empty() && none.steps.is_empty());
    }

    #[test]
    fn overlapping_windows_combine_per_node() {
        let schedule = Schedule::from_windows(
            5,
            millis(10_000),
            vec![
                window(
                    0,
                    4000,
                    Fault::Partition {
                        groups: vec![vec![0, 1, 2], vec![3, 4]],
                    },
                ),
                window(
                    1000,
                    3000,
                    Fault::Bridge {
                        left: vec![0, 3],
                        bridge: 1,
                        right: vec![2, 4],
                    },
                ),
                window(2000, 5000, Fault::Unreliable { node: 0, p: 0.1 }),
                window(2500, 2600, Fault::Unreliable { node: 0, p: 0.3 }),
                window(
                    2000,
                    2000,
                    Fault::Kill {
                        node: 3,
                        process: "db_manager",
                    },
                ),
                window(6000, 10_000, Fault::Crash { node: 4 }),
                window(7000, 8000, Fault::Deaf { node: 4 }),
            ],
        );
        let at = |ms| replay(&schedule, millis(ms));
        // Partition alone.
        let (nodes, _) = at(500);
        assert_eq!(nodes[0].2, Some(vec![0, 1, 2]));
        assert_eq!(nodes[4].2, Some(vec![3, 4]));
        // Partition and bridge: the intersection.
        let (nodes, _) = at(1500);
        assert_eq!(nodes[0].2, Some(vec![0, 1]));
        assert_eq!(nodes[1].2, Some(vec![0, 1, 2]));
        assert_eq!(nodes[3].2, Some(vec![3]));
        assert_eq!(nodes[4].2, Some(vec![4]));
        // The higher drop probability wins while both are active.
        assert_eq!(at(2550).0[0].1, 0.3);
        assert_eq!(at(2700).0[0].1, 0.1);
        // The bridge is gone, the partition stays.
        assert_eq!(at(3500).0[0].2, Some(vec![0, 1, 2]));
        let (nodes, crashed) = at(6500);
        assert_eq!(nodes[0], (false, 0.0, None));
        assert_eq!(crashed, Some(4));
        // The kill happens once, at its time; the crashed node gets no more actions.
        let kills: Vec<&Step> = schedule
            .steps
            .iter()
            .filter(|s| matches!(s.action, Action::Kill { .. }))
            .collect();
        assert_eq!(kills.len(), 1);
        assert_eq!(kills[0].at, millis(2000));
        assert!(
            !schedule
                .steps
                .iter()
                .any(|s| s.action == Action::Deaf { node: 4 })
        );
        assert_eq!(schedule.survivors(), vec![0, 1, 2, 3]);
        assert_eq!(schedule.heal().len(), 12);
    }

    #[test]
    fn out_counts_deaf_crashed_and_cut_off_nodes() {
        let at_zero = |windows: Vec<FaultWindow>| {
            Schedule::from_windows(5, millis(1000), windows).out_at(millis(0))
        };
        let bridge = || {
            window(
                0,
                100,
                Fault::Bridge {
                    left: vec![0, 1],
                    bridge: 2,
                    right: vec![3, 4],
                },
            )
        };
        // A bridge alone: both sides reach a majority through it.
        assert!(at_zero(vec![bridge()]).is_empty());
        // A deaf bridge cuts everyone off.
        let out = at_zero(vec![bridge(), window(0, 100, Fault::Deaf { node: 2 })]);
        assert_eq!(out.len(), 5);
        // Three groups: only the majority group serves.
        let out = at_zero(vec![window(
            0,
            100,
            Fault::Partition {
                groups: vec![vec![0, 1, 2], vec![3], vec![4]],
            },
        )]);
        assert_eq!(out, BTreeSet::from([3, 4]));
        // A crash and a deaf node: two out.
        let out = at_zero(vec![
            window(0, 1000, Fault::Crash { node: 1 }),
            window(0, 100, Fault::Deaf { node: 3 }),
        ]);
        assert_eq!(out, BTreeSet::from([1, 3]));
        // Admissibility refuses a third.
        let existing = vec![
            window(0, 1000, Fault::Crash { node: 1 }),
            window(0, 100, Fault::Deaf { node: 3 }),
        ];
        assert!(!admissible(
            &existing,
            &window(50, 200, Fault::Deaf { node: 0 }),
            5
        ));
        assert!(admissible(
            &existing,
            &window(100, 200, Fault::Deaf { node: 0 }),
            5
        ));
        assert!(!admissible(
            &existing,
            &window(500, 1000, Fault::Crash { node: 0 }),
            5
        ));
    }
}
