//! The floor under `ring`: the same ring of N tasks passing a token M times round, with
//! plain tokio tasks and unbounded channels (no pids, no process table, no selective
//! receive), on the same 2-worker runtime. Prints one line:
//! `tokio ring n=N m=M hops=H median_ms=X per_hop_ns=Y`. docs/benchmarks.md compares the
//! two, in instructions per hop under callgrind and in time on a quiet machine.

use std::time::Instant;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

fn arg(args: &[String], i: usize, default: u64) -> u64 {
    match args.get(i) {
        None => default,
        Some(s) => s.parse().unwrap_or_else(|_| {
            eprintln!("tokio_ring: argument {i} must be a number, got {s:?}");
            std::process::exit(2)
        }),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (n, m, r) = (arg(&args, 0, 1000), arg(&args, 1, 1000), arg(&args, 2, 5));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let (done_tx, mut done_rx) = unbounded_channel::<()>();
        let mut senders: Vec<UnboundedSender<u64>> = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..n {
            let (tx, rx) = unbounded_channel::<u64>();
            senders.push(tx);
            receivers.push(rx);
        }
        for (i, mut rx) in receivers.into_iter().enumerate() {
            let next = senders[(i + 1) % senders.len()].clone();
            let done = done_tx.clone();
            tokio::spawn(async move {
                while let Some(k) = rx.recv().await {
                    if k == 0 {
                        let _ = done.send(());
                    } else {
                        let _ = next.send(k - 1);
                    }
                }
            });
        }
        let hops = n * m;
        let mut runs = Vec::new();
        for i in 0..=r {
            let t = Instant::now();
            let _ = senders[0].send(hops);
            done_rx.recv().await;
            if i > 0 {
                runs.push(t.elapsed());
            }
        }
        runs.sort();
        let median = runs[(runs.len() - 1) / 2];
        println!(
            "tokio ring n={n} m={m} hops={hops} median_ms={:.3} per_hop_ns={:.1}",
            median.as_secs_f64() * 1e3,
            median.as_nanos() as f64 / hops as f64
        );
    });
}
