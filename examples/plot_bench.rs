//! Draws the benchmark plots of `docs/benchmarks.md` from a JSON-lines results file.
//!
//! `cargo run --release --example plot_bench -- RESULTS.jsonl OUTDIR` reads one object per
//! line: the `paxoskv bench --json` report plus `nodes`, and optionally `system`
//! (`"paxoskv"` when absent, `"etcd"` for rows converted from etcd's load generator) and
//! `latencies` (a `bench --latencies` file, relative to the results file). It writes:
//!
//! - `OUTDIR/throughput.svg`: operations per second against clients; left, mixed loads
//!   with one line per node count; right, write-only and read-only loads, paxoskv beside
//!   etcd;
//! - `OUTDIR/latency-cdf.svg`: the latency distribution (CDF) of reads and of writes, one
//!   line per client count, from the rows that have a latencies file (the smallest node
//!   count with mixed loads; the last run of each client count).

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};

/// One line of the results file (the fields the plots need).
#[derive(Debug, Deserialize)]
struct Row {
    #[serde(default = "paxoskv")]
    system: String,
    #[serde(default = "three")]
    nodes: u32,
    clients: u32,
    read_ratio: f64,
    throughput: f64,
    #[serde(default)]
    latencies: Option<PathBuf>,
    /// etcd's serializable (local, not linearizable) reads: left out of the plots.
    #[serde(default)]
    serializable: bool,
}

fn paxoskv() -> String {
    "paxoskv".into()
}

fn three() -> u32 {
    3
}

impl Row {
    fn is_mixed(&self) -> bool {
        self.read_ratio > 0.0 && self.read_ratio < 1.0
    }

    fn load_name(&self) -> &'static str {
        if self.read_ratio <= 0.0 {
            "writes"
        } else if self.read_ratio >= 1.0 {
            "reads"
        } else {
            "mixed"
        }
    }
}

/// One line of a plot: its label and its points.
struct Line {
    label: String,
    points: Vec<(f64, f64)>,
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::combinators::LogCoord<f64>, RangedCoordf64>,
>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, results, outdir] = args.as_slice() else {
        eprintln!("usage: plot_bench RESULTS.jsonl OUTDIR");
        std::process::exit(2);
    };
    if let Err(e) = run(Path::new(results), Path::new(outdir)) {
        eprintln!("plot_bench: {e}");
        std::process::exit(1);
    }
}

fn run(results: &Path, outdir: &Path) -> Result<(), Box<dyn Error>> {
    let rows = read_rows(results)?;
    let rows: Vec<Row> = rows.into_iter().filter(|r| !r.serializable).collect();
    if rows.is_empty() {
        return Err(format!("{}: no result rows", results.display()).into());
    }
    let base = results.parent().unwrap_or(Path::new("."));
    let throughput = outdir.join("throughput.svg");
    draw_throughput(&rows, &throughput)?;
    println!("wrote {}", throughput.display());
    let cdf = outdir.join("latency-cdf.svg");
    draw_cdf(&rows, base, &cdf)?;
    println!("wrote {}", cdf.display());
    Ok(())
}

/// Reads the JSON lines, skipping (with a warning) lines that are not result rows.
fn read_rows(path: &Path) -> Result<Vec<Row>, Box<dyn Error>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Row>(line) {
            Ok(row) => rows.push(row),
            Err(e) => eprintln!("plot_bench: {}:{}: skipped: {e}", path.display(), i + 1),
        }
    }
    Ok(rows)
}

/// Throughput against clients: mixed loads by node count (left), and single-kind
/// loads of each system on 3 nodes (right).
fn draw_throughput(rows: &[Row], path: &Path) -> Result<(), Box<dyn Error>> {
    let mut by_nodes: BTreeMap<u32, Vec<(f64, f64)>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.system == "paxoskv" && r.is_mixed())
    {
        by_nodes
            .entry(r.nodes)
            .or_default()
            .push((f64::from(r.clients), r.throughput));
    }
    let mixed: Vec<Line> = by_nodes
        .into_iter()
        .map(|(nodes, points)| Line {
            label: format!("paxoskv, {nodes} nodes"),
            points: median_per_x(&points),
        })
        .collect();

    let mut by_system: BTreeMap<(String, &str), Vec<(f64, f64)>> = BTreeMap::new();
    for r in rows.iter().filter(|r| !r.is_mixed() && r.nodes == 3) {
        by_system
            .entry((r.system.clone(), r.load_name()))
            .or_default()
            .push((f64::from(r.clients), r.throughput));
    }
    let single: Vec<Line> = by_system
        .into_iter()
        .map(|((system, load), points)| Line {
            label: format!("{system} {load}"),
            points: median_per_x(&points),
        })
        .collect();
    side_by_side(path, |left, right| {
        throughput_panel(left, "50% reads: scaling with node count", &mixed)?;
        throughput_panel(right, "3 nodes: writes only, reads only", &single)
    })
}

/// One panel of a plot.
type Panel<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// Writes an SVG of two panels side by side to `path`, drawn by `draw`.
fn side_by_side(
    path: &Path,
    draw: impl FnOnce(&Panel<'_>, &Panel<'_>) -> Result<(), Box<dyn Error>>,
) -> Result<(), Box<dyn Error>> {
    let root = SVGBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(600);
    draw(&left, &right)?;
    root.present()?;
    Ok(())
}

fn throughput_panel(area: &Panel<'_>, title: &str, lines: &[Line]) -> Result<(), Box<dyn Error>> {
    let (x_max, y_max) = lines
        .iter()
        .flat_map(|l| l.points.iter())
        .fold((1.0f64, 1.0f64), |(x, y), p| (x.max(p.0), y.max(p.1)));
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((0.8f64..x_max * 1.3).log_scale(), 0.0..y_max * 1.15)?;
    chart
        .configure_mesh()
        .x_desc("concurrent clients (log scale)")
        .y_desc("throughput, operations per second")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    draw_lines(&mut chart, lines, true, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}

/// The points with one y per x: the median of the rows measured at that x (repeated
/// rounds, or etcd's leader and follower runs with one client).
fn median_per_x(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut by_x: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for (x, y) in points {
        by_x.entry(x.to_bits()).or_default().push(*y);
    }
    let mut out: Vec<(f64, f64)> = by_x
        .into_iter()
        .map(|(x, mut ys)| {
            ys.sort_by(f64::total_cmp);
            let mid = ys.len() / 2;
            let y = if ys.len() % 2 == 1 {
                ys[mid]
            } else {
                (ys[mid - 1] + ys[mid]) / 2.0
            };
            (f64::from_bits(x), y)
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// Draws each line sorted by x with its markers, and the legend.
fn draw_lines<'a>(
    chart: &mut Chart<'a, 'a>,
    lines: &[Line],
    markers: bool,
    legend_at: SeriesLabelPosition,
) -> Result<(), Box<dyn Error>> {
    if lines.is_empty() {
        return Ok(());
    }
    for (i, line) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let mut points = line.points.clone();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(line.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        if markers {
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .position(legend_at)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Latency CDFs of reads (left) and writes (right), one line per client count.
fn draw_cdf(rows: &[Row], base: &Path, path: &Path) -> Result<(), Box<dyn Error>> {
    let with_samples: Vec<&Row> = rows
        .iter()
        .filter(|r| r.latencies.is_some() && r.system == "paxoskv")
        .collect();
    let mixed: Vec<&Row> = with_samples
        .iter()
        .copied()
        .filter(|r| r.is_mixed())
        .collect();
    let pool = if mixed.is_empty() {
        with_samples
    } else {
        mixed
    };
    let nodes = pool.iter().map(|r| r.nodes).min();
    // One run per client count: the last one recorded.
    let chosen: BTreeMap<u32, &Row> = pool
        .into_iter()
        .filter(|r| Some(r.nodes) == nodes)
        .map(|r| (r.clients, r))
        .collect();

    let mut reads = Vec::new();
    let mut writes = Vec::new();
    for r in chosen.values() {
        let Some(file) = &r.latencies else { continue };
        let file = if file.is_relative() {
            base.join(file)
        } else {
            file.clone()
        };
        let (r_us, w_us) = read_latencies(&file)?;
        let label = match r.clients {
            1 => "1 client".to_string(),
            n => format!("{n} clients"),
        };
        // In client order: `chosen` is sorted by client count.
        for (samples, lines) in [(r_us, &mut reads), (w_us, &mut writes)] {
            if !samples.is_empty() {
                lines.push(Line {
                    label: label.clone(),
                    points: cdf(samples),
                });
            }
        }
    }
    let title = |kind: &str| match nodes {
        Some(n) => format!("paxoskv {kind} latency CDF, {n} nodes"),
        None => format!("paxoskv {kind} latency CDF (no samples)"),
    };
    side_by_side(path, |left, right| {
        cdf_panel(left, &title("read"), &reads)?;
        cdf_panel(right, &title("write"), &writes)
    })
}

fn cdf_panel(area: &Panel<'_>, title: &str, lines: &[Line]) -> Result<(), Box<dyn Error>> {
    let (x_min, x_max) = lines
        .iter()
        .flat_map(|l| l.points.iter())
        .fold((f64::MAX, 1.0f64), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
    let x_min = if x_min == f64::MAX {
        1.0
    } else {
        x_min.max(1.0)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((x_min * 0.8..x_max * 1.25).log_scale(), 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("latency, microseconds (log scale)")
        .y_desc("fraction of operations at or below")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.2}"))
        .draw()?;
    draw_lines(&mut chart, lines, false, SeriesLabelPosition::LowerRight)?;
    Ok(())
}

/// The read and write latencies (µs) of a `bench --latencies` file.
fn read_latencies(path: &Path) -> Result<(Vec<u64>, Vec<u64>), Box<dyn Error>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let parsed = line
            .split_once(' ')
            .and_then(|(kind, us)| Some((kind, us.trim().parse::<u64>().ok()?)));
        match parsed {
            Some(("read", us)) => reads.push(us),
            Some(("write", us)) => writes.push(us),
            _ => eprintln!("plot_bench: {}:{}: skipped {line:?}", path.display(), i + 1),
        }
    }
    Ok((reads, writes))
}

/// The empirical CDF as at most about 1,000 points (latency, fraction at or below).
fn cdf(mut samples: Vec<u64>) -> Vec<(f64, f64)> {
    samples.sort_unstable();
    let n = samples.len();
    let step = (n / 1000).max(1);
    let mut points: Vec<(f64, f64)> = (0..n)
        .step_by(step)
        .map(|i| (samples[i].max(1) as f64, (i + 1) as f64 / n as f64))
        .collect();
    if let Some(&last) = samples.last() {
        points.push((last.max(1) as f64, 1.0));
    }
    points
}
