//! Whole paxoskv clusters in a deterministic simulation (see `tests/sim_support`): 3 and
//! 5 kv server nodes and their clients on one thread in simulated time, a simulated
//! network that loses, duplicates, delays and reorders, and the nemesis's partitions,
//! deaf and unreliable nodes, process kills and a node crash. Every run ends with the
//! linearizability check and the replicas compared; a failing seed prints the one line
//! that replays it. Figures and commands: `docs/testing.md`, "Deterministic simulation".

mod nemesis_support;
mod sim_support;

use sim_support::{Report, SimParams, SoakReport, progress_bar, run_seed, run_seeds, threads};

/// Seeds of the default suite, per cluster size (`SIM_DEFAULT_SEEDS` overrides).
const DEFAULT_SEEDS: u64 = 150;
/// Where the default suite's seeds start (`SIM_BASE` overrides): fixed, so the suite is
/// the same on every machine; the soak draws new ones.
const DEFAULT_BASE: u64 = 0x5eed_0000;
/// Seeds within which the deliberate duplicate-apply bug must be caught.
const BUG_SEEDS: u64 = 40;

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Runs `count` seeds from the base on `nodes` servers and fails with every failing
/// seed's replay line.
fn run_default(nodes: usize) -> SoakReport {
    let _ = env_logger::builder().is_test(true).try_init();
    let count = env_number("SIM_DEFAULT_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let base = env_number("SIM_BASE").unwrap_or(DEFAULT_BASE) + (nodes as u64) * 1_000_000;
    let params: Vec<SimParams> = (base..base + count)
        .map(|seed| SimParams::from_seed(seed, nodes))
        .collect();
    let threads = threads();
    let report = run_seeds(&params, threads, Report::Failures);
    eprintln!("{nodes} nodes: {}", report.summary(threads));
    let failures: Vec<String> = report
        .failures
        .iter()
        .map(|f| format!("{}\n  {}\n  replay: {}", f.params, f.problem, f.replay))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed:\n{}",
        failures.len(),
        report.seeds,
        failures.join("\n")
    );
    // The runs went through what they claim: faults, losses, duplicates, load.
    assert!(
        report.acknowledged > report.seeds,
        "{}",
        report.summary(threads)
    );
    assert!(report.frames_lost > 0 && report.frames_duplicated > 0);
    assert!(report.kills_and_faults > report.seeds);
    assert!(report.kills > 0 && report.crashes > 0);
    report
}

#[test]
fn sim_3_nodes() {
    run_default(3);
}

#[test]
fn sim_5_nodes() {
    run_default(5);
}

/// The same seed twice gives the same trace (every frame delivered, in order, at the
/// same simulated time; the replicas' data; the history); another seed another trace.
#[test]
fn same_seed_same_trace() {
    for (seed, nodes) in [(7, 3), (11, 5)] {
        let params = SimParams::from_seed(seed, nodes);
        let first = run_seed(&params);
        let second = run_seed(&params);
        assert!(first.problem.is_none(), "{params}: {:?}", first.problem);
        assert!(first.net.delivered > 1_000, "{:?}", first.net);
        assert_eq!(
            (first.trace, &first.history),
            (second.trace, &second.history),
            "{params} did not replay: {}",
            params.replay_line()
        );
        let other = run_seed(&SimParams::from_seed(seed + 1, nodes));
        assert_ne!(first.trace, other.trace);
    }
}

/// Replays the run `SIM_SEED` (with `SIM_NODES`, `SIM_BUG`) names, printing what it did;
/// without `SIM_SEED`, runs seed 1 on 3 nodes.
#[test]
fn replay() {
    let _ = env_logger::builder().is_test(true).try_init();
    let params = match SimParams::from_env() {
        Ok(Some(params)) => params,
        Ok(None) => SimParams::from_seed(1, 3),
        Err(error) => panic!("{error}"),
    };
    eprintln!("{params}");
    let outcome = run_seed(&params);
    eprintln!(
        "{}\ntrace {:016x}, {:?}, simulated {:?}",
        outcome.schedule, outcome.trace, outcome.net, outcome.simulated
    );
    eprintln!("paxos at the end:\n  {}", outcome.paxos.join("\n  "));
    if let Some(problem) = &outcome.problem {
        panic!("{params}\n{problem}\nreplay: {}", params.replay_line());
    }
}

/// Proof that the simulation bites at the kv level: with the DB manager applying a
/// duplicate (client, seq) again, some seed among the first `BUG_SEEDS` fails the
/// checks.
#[test]
fn duplicate_apply_is_caught() {
    let params: Vec<SimParams> = (1..=BUG_SEEDS)
        .map(|seed| {
            let mut p = SimParams::from_seed(seed, 3);
            p.deliberate.apply_duplicates = true;
            p
        })
        .collect();
    let report = run_seeds(&params, threads(), Report::Quiet);
    eprintln!("apply_duplicates: {}", report.summary(threads()));
    let first = report.failures.iter().min_by_key(|f| f.params.seed);
    match first {
        Some(f) => eprintln!(
            "caught by {}: {}\n  replay: {}",
            f.params, f.problem, f.replay
        ),
        None => panic!(
            "the deliberate duplicate apply went unnoticed in {BUG_SEEDS} seeds: {}",
            report.summary(threads())
        ),
    }
}

/// The soak: `SIM_SEEDS` seeds (default 10,000) from `SIM_BASE` (default: from the
/// clock), 3 and 5 nodes in turn, on every core, with a progress bar:
/// `SIM_SEEDS=10000 cargo test --release --test sim_cluster -- --ignored soak --nocapture`.
#[test]
#[ignore = "a long soak; run with --ignored"]
fn soak() {
    let count = env_number("SIM_SEEDS").unwrap_or(10_000);
    let base = env_number("SIM_BASE").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() << 20)
            .unwrap_or(1)
    });
    eprintln!("soak: {count} seeds from SIM_BASE={base}");
    let params: Vec<SimParams> = (base..base + count)
        .map(|seed| SimParams::from_seed(seed, if seed % 2 == 0 { 3 } else { 5 }))
        .collect();
    let threads = threads();
    let bar = progress_bar(params.len());
    let report = run_seeds(&params, threads, Report::Progress(&bar));
    bar.finish();
    eprintln!("soak (SIM_BASE={base}): {}", report.summary(threads));
    let failures: Vec<String> = report
        .failures
        .iter()
        .map(|f| format!("{}\n  {}\n  replay: {}", f.params, f.problem, f.replay))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
