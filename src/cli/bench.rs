//! `paxoskv bench`: closed-loop load. N kv clients share one client-only node; each
//! runs one operation at a time for the duration: a read with probability R, else a
//! write of B random bytes, on a key drawn uniformly from K. Reports throughput and
//! latency percentiles per kind, as a table or one JSON object.

use crate::cli::args::BenchArgs;
use crate::cli::cpu::CpuTime;
use crate::cli::error::CliError;
use crate::cli::latency::{Samples, Summary};
use crate::cli::{connect, cookie, output, probe};
use indicatif::{ProgressBar, ProgressStyle};
use kv_app::client::{self, Client, ClientTimeouts};
use kv_app::ops::OpKind;
use rand::distr::Alphanumeric;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// How long an operation still running at the end may take before it counts as an error.
const GRACE: Duration = Duration::from_secs(5);

/// What `bench --json` prints; the field names are a stable interface.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub clients: u32,
    /// The measured time from the first operation to the last answer, in seconds.
    pub duration_s: f64,
    pub read_ratio: f64,
    pub keys: u64,
    pub value_size: u32,
    /// Operations completed (reads and writes).
    pub ops: u64,
    /// Completed operations per second.
    pub throughput: f64,
    pub read: Summary,
    pub write: Summary,
    /// Operations that got no answer in time.
    pub errors: u64,
    /// CPU time of this (client) process during the run.
    pub cpu_user_s: f64,
    pub cpu_sys_s: f64,
}

/// The load's shape.
#[derive(Clone, Copy, Debug)]
struct Shape {
    read_ratio: f64,
    keys: u64,
    value_size: usize,
}

/// What one client measured.
#[derive(Default)]
struct Tally {
    reads: Samples,
    writes: Samples,
    errors: u64,
}

/// Runs the command.
pub async fn run(args: BenchArgs) -> Result<(), CliError> {
    connect::check_distinct(&args.servers)?;
    let cookie = cookie::from_args(&args.cookie)?;
    connect::use_tls(&args.tls)?;
    let report = probe::probe_all(&args.servers, &cookie).await;
    if !report.any_accepted() {
        return Err(CliError::Unreachable(format!(
            "no server to load: {}",
            report.summary()
        )));
    }
    let node = connect::client_node(&cookie, &args.servers).await?;
    let shape = Shape {
        read_ratio: args.read_ratio,
        keys: args.keys,
        value_size: usize::try_from(args.value_size).unwrap_or(usize::MAX),
    };
    let names = connect::names(&args.servers);
    let clients: Vec<Client> = (0..args.clients)
        .map(|i| {
            client::start_unregistered_at(
                &node,
                names.clone(),
                i as usize,
                ClientTimeouts::default(),
            )
        })
        .collect();
    let done = Arc::new(AtomicU64::new(0));
    let progress = progress_bar(args.duration);
    let cpu_before = CpuTime::now();
    let start = Instant::now();
    let end = start + args.duration;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|c| {
            let done = done.clone();
            tokio::spawn(async move { closed_loop(c, shape, end, done).await })
        })
        .collect();
    let ticker = progress.clone().map(|bar| {
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let elapsed = start.elapsed();
                bar.set_position(elapsed.as_millis().min(u128::from(u64::MAX)) as u64);
                bar.set_message(format!("{} ops", done.load(Ordering::Relaxed)));
            }
        })
    });
    let mut total = Tally::default();
    for t in tasks {
        match t.await {
            Ok(tally) => {
                total.reads.merge(tally.reads);
                total.writes.merge(tally.writes);
                total.errors += tally.errors;
            }
            Err(e) => log::error!("a bench client failed: {e}"),
        }
    }
    let elapsed = start.elapsed();
    let cpu = CpuTime::now().since(cpu_before);
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    node.stop();
    if let Some(path) = &args.latencies {
        write_latencies(path, &total)?;
    }
    let ops = (total.reads.len() + total.writes.len()) as u64;
    let secs = elapsed.as_secs_f64();
    let report = BenchReport {
        clients: args.clients,
        duration_s: secs,
        read_ratio: args.read_ratio,
        keys: args.keys,
        value_size: args.value_size,
        ops,
        throughput: if secs > 0.0 { ops as f64 / secs } else { 0.0 },
        read: total.reads.summary(elapsed),
        write: total.writes.summary(elapsed),
        errors: total.errors,
        cpu_user_s: cpu.user.as_secs_f64(),
        cpu_sys_s: cpu.system.as_secs_f64(),
    };
    let text = if args.json {
        serde_json::to_string(&report).map_err(|e| CliError::Io {
            what: "encoding the report".into(),
            source: e.into(),
        })?
    } else {
        table(&report)
    };
    output::line(&text).map_err(CliError::io("writing stdout"))
}

/// One client's loop: one operation at a time until `end`.
async fn closed_loop(client: Client, shape: Shape, end: Instant, done: Arc<AtomicU64>) -> Tally {
    let mut rng = StdRng::seed_from_u64(rand::random());
    let mut tally = Tally::default();
    while Instant::now() < end {
        let key = format!("k{}", rng.random_range(0..shape.keys));
        let (kind, value) = if rng.random_bool(shape.read_ratio) {
            (OpKind::Read, String::new())
        } else {
            let value: String = (&mut rng)
                .sample_iter(Alphanumeric)
                .take(shape.value_size)
                .map(char::from)
                .collect();
            (OpKind::Write, value)
        };
        let began = Instant::now();
        let deadline = (end + GRACE).saturating_duration_since(began);
        match client.run(kind, &key, &value, Some(deadline)).await {
            Ok(_) => {
                let took = began.elapsed();
                match kind {
                    OpKind::Read => tally.reads.record(took),
                    _ => tally.writes.record(took),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                log::debug!("bench: {kind} {key}: {e}");
                tally.errors += 1;
            }
        }
    }
    client.stop();
    tally
}

/// Writes every latency to `path`, one per line: `read US` or `write US`.
fn write_latencies(path: &Path, tally: &Tally) -> Result<(), CliError> {
    let what = format!("writing latencies to {}", path.display());
    let file = File::create(path).map_err(CliError::io(what.clone()))?;
    let mut out = BufWriter::new(file);
    latency_lines(&mut out, tally)
        .and_then(|()| out.flush())
        .map_err(CliError::io(what))
}

/// The lines of the `--latencies` file.
fn latency_lines(out: &mut impl Write, tally: &Tally) -> std::io::Result<()> {
    for (kind, samples) in [("read", &tally.reads), ("write", &tally.writes)] {
        for us in samples.micros() {
            writeln!(out, "{kind} {us}")?;
        }
    }
    Ok(())
}

/// A progress bar over the duration, only when stderr is a terminal.
fn progress_bar(duration: Duration) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(duration.as_millis().min(u128::from(u64::MAX)) as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {elapsed}/{duration} {msg}") {
        bar.set_style(style);
    }
    Some(bar)
}

/// The report for people.
fn table(r: &BenchReport) -> String {
    let row = |name: &str, s: &Summary| {
        format!(
            "{name:<6} {:>9} {:>11.1} {:>9} {:>9} {:>9} {:>9}",
            s.count, s.throughput, s.p50_us, s.p90_us, s.p99_us, s.p999_us
        )
    };
    [
        format!(
            "{} clients, {:.1} s, read ratio {}, {} keys, {}-byte values",
            r.clients, r.duration_s, r.read_ratio, r.keys, r.value_size
        ),
        format!(
            "{} ops, {:.1} ops/s, {} errors; client CPU user {:.2} s, system {:.2} s",
            r.ops, r.throughput, r.errors, r.cpu_user_s, r.cpu_sys_s
        ),
        format!(
            "{:<6} {:>9} {:>11} {:>9} {:>9} {:>9} {:>9}",
            "kind", "count", "ops/s", "p50 µs", "p90 µs", "p99 µs", "p999 µs"
        ),
        row("read", &r.read),
        row("write", &r.write),
    ]
    .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(count: u64) -> Summary {
        Summary {
            count,
            throughput: count as f64,
            p50_us: 1,
            p90_us: 2,
            p99_us: 3,
            p999_us: 4,
        }
    }

    #[test]
    fn the_json_report_has_the_documented_fields() {
        let r = BenchReport {
            clients: 2,
            duration_s: 1.0,
            read_ratio: 0.5,
            keys: 10,
            value_size: 16,
            ops: 3,
            throughput: 3.0,
            read: summary(1),
            write: summary(2),
            errors: 0,
            cpu_user_s: 0.1,
            cpu_sys_s: 0.2,
        };
        let v: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&r).expect("encodes")).expect("json");
        for field in [
            "clients",
            "duration_s",
            "read_ratio",
            "keys",
            "value_size",
            "ops",
            "throughput",
            "read",
            "write",
            "errors",
            "cpu_user_s",
            "cpu_sys_s",
        ] {
            assert!(v.get(field).is_some(), "{field} missing");
        }
        for field in [
            "count",
            "throughput",
            "p50_us",
            "p90_us",
            "p99_us",
            "p999_us",
        ] {
            assert!(v["read"].get(field).is_some(), "read.{field} missing");
        }
        assert!(table(&r).contains("write"));
    }

    #[test]
    fn the_latencies_file_has_one_line_per_operation_with_its_kind() {
        let mut tally = Tally::default();
        tally.reads.record(Duration::from_micros(120));
        tally.writes.record(Duration::from_micros(456));
        tally.writes.record(Duration::from_millis(2));
        let mut out = Vec::new();
        latency_lines(&mut out, &tally).expect("writes to memory");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "read 120\nwrite 456\nwrite 2000\n"
        );
    }
}
