//! Ping-pong between two processes on one node: N round trips, R timed runs after a
//! warm-up. Prints one line: `runtime pingpong n=N median_ms=X per_roundtrip_ns=Y`.
//! Compare with `../shared/bench/erlang/pingpong.erl` in the same session.

use runtime::{Node, NodeRole, Pid, Process};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

#[derive(Serialize, Deserialize)]
enum PongMsg {
    Ping(Pid, u64),
    Stop,
}

#[derive(Serialize, Deserialize)]
struct PongReply(u64);

#[derive(Serialize, Deserialize)]
struct RunTime(Duration);

fn arg(args: &[String], i: usize, default: u64) -> u64 {
    match args.get(i) {
        None => default,
        Some(s) => s.parse().unwrap_or_else(|_| {
            eprintln!("pingpong: argument {i} must be a number, got {s:?}");
            std::process::exit(2)
        }),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (n, r) = (arg(&args, 0, 100_000), arg(&args, 1, 5));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let node = Node::new("pingpong@bench", NodeRole::Server);
        let pong = node.spawn(|mut p: Process| async move {
            loop {
                match p.recv().await.downcast::<PongMsg>() {
                    Ok(PongMsg::Ping(from, k)) => p.send(&from, PongReply(k)),
                    Ok(PongMsg::Stop) => return,
                    Err(_) => {}
                }
            }
        });
        let mut me = node.attach();
        let mut runs = Vec::new();
        for i in 0..=r {
            // Each run in its own process, as the Erlang program does.
            let pong = pong.clone();
            let parent = me.pid().clone();
            node.spawn(move |mut p: Process| async move {
                let t = Instant::now();
                for k in (1..=n).rev() {
                    p.send(&pong, PongMsg::Ping(p.pid().clone(), k));
                    p.receive_type::<PongReply>(None).await;
                }
                p.send(&parent, RunTime(t.elapsed()));
            });
            let took = me.receive_type::<RunTime>(None).await.map(|t| t.0);
            if i > 0 {
                runs.extend(took);
            }
        }
        runs.sort();
        let median = runs[(runs.len() - 1) / 2];
        println!(
            "runtime pingpong n={n} median_ms={:.3} per_roundtrip_ns={:.1}",
            median.as_secs_f64() * 1e3,
            median.as_nanos() as f64 / n as f64
        );
        me.send(&pong, PongMsg::Stop);
    });
}
