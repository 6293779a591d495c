//! Many seeds on every core: one thread per core, each taking the next seed and running
//! it on a runtime of its own, with an optional progress bar; and the figures a run of
//! seeds gives (simulated seconds per wall second, seeds per minute).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::cluster::{SimOutcome, run_seed};
use super::params::SimParams;

/// A seed that failed, with the line that replays it.
#[derive(Debug, Clone)]
pub struct SeedFailure {
    pub params: SimParams,
    pub problem: String,
    pub replay: String,
}

/// What a batch of seeds did.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    pub seeds: usize,
    pub failures: Vec<SeedFailure>,
    /// Total simulated time over every seed.
    pub simulated: Duration,
    pub wall: Duration,
    pub operations: usize,
    pub acknowledged: usize,
    pub frames_delivered: u64,
    pub frames_lost: u64,
    pub frames_duplicated: u64,
    pub kills_and_faults: usize,
    /// Processes killed and restarted by their supervisors.
    pub kills: usize,
    /// Nodes crashed.
    pub crashes: usize,
}

impl SoakReport {
    fn add(&mut self, outcome: &SimOutcome) {
        self.seeds += 1;
        self.simulated += outcome.simulated;
        self.operations += outcome.history.len();
        self.acknowledged += outcome.acknowledged();
        self.frames_delivered += outcome.net.delivered;
        self.frames_lost += outcome.net.lost;
        self.frames_duplicated += outcome.net.duplicated;
        self.kills_and_faults += outcome.schedule.windows.len();
        self.kills += outcome.kills;
        self.crashes += outcome.crashes;
        if let Some(problem) = &outcome.problem {
            self.failures.push(SeedFailure {
                params: outcome.params.clone(),
                problem: problem.to_string(),
                replay: outcome.params.replay_line(),
            });
        }
    }

    /// Simulated seconds per wall second, over every thread.
    pub fn speedup(&self) -> f64 {
        self.simulated.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }

    pub fn seeds_per_minute(&self) -> f64 {
        self.seeds as f64 * 60.0 / self.wall.as_secs_f64().max(1e-9)
    }

    /// One paragraph: seeds, failures, speed and what the runs went through.
    pub fn summary(&self, threads: usize) -> String {
        format!(
            "{} seed(s), {} failed, on {threads} thread(s): {:.1} s wall, {:.0} s simulated \
             ({:.1} simulated s per wall s, {:.0} seeds per minute); {} operations ({} \
             acknowledged), {} frames delivered, {} lost, {} duplicated, {} fault windows, \
             {} processes killed, {} nodes crashed",
            self.seeds,
            self.failures.len(),
            self.wall.as_secs_f64(),
            self.simulated.as_secs_f64(),
            self.speedup(),
            self.seeds_per_minute(),
            self.operations,
            self.acknowledged,
            self.frames_delivered,
            self.frames_lost,
            self.frames_duplicated,
            self.kills_and_faults,
            self.kills,
            self.crashes
        )
    }
}

/// The number of threads a batch uses: `SIM_THREADS`, else every core.
pub fn threads() -> usize {
    std::env::var("SIM_THREADS")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .filter(|&t| t >= 1)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
}

/// How a batch reports failing seeds as they happen.
#[derive(Clone, Copy, Debug)]
pub enum Report<'a> {
    /// Each failure on stderr, with its replay line.
    Failures,
    /// Nothing (failures are expected: a deliberate bug is on).
    Quiet,
    /// Each failure above a progress bar ticked once per seed.
    Progress(&'a ProgressBar),
}

/// Runs every run of `params` on `threads` threads (one runtime per seed).
pub fn run_seeds(params: &[SimParams], threads: usize, report_as: Report<'_>) -> SoakReport {
    let next = AtomicUsize::new(0);
    let report = Mutex::new(SoakReport::default());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = params.get(i) else { break };
                    let outcome = run_seed(p);
                    if let Some(problem) = &outcome.problem {
                        let line = format!(
                            "seed failed: {p}\n  {problem}\n  replay: {}",
                            p.replay_line()
                        );
                        match report_as {
                            // A hidden bar (no terminal) prints nothing.
                            Report::Progress(bar) if !bar.is_hidden() => bar.println(line),
                            Report::Progress(_) => eprintln!("{line}"),
                            Report::Failures => eprintln!("{line}"),
                            Report::Quiet => {}
                        }
                    }
                    report
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .add(&outcome);
                    if let Report::Progress(bar) = report_as {
                        bar.inc(1);
                        // Without a terminal the bar is hidden: a line now and then.
                        if bar.is_hidden() && bar.position() % 500 == 0 {
                            eprintln!("{}/{} seeds", bar.position(), params.len());
                        }
                    }
                }
            });
        }
    });
    let mut report = report
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    report.wall = started.elapsed();
    report
}

/// A progress bar for `seeds` seeds.
pub fn progress_bar(seeds: usize) -> ProgressBar {
    let bar = ProgressBar::new(seeds as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] {pos}/{len} seeds ({per_sec}, eta {eta}) {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
