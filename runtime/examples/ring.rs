//! Joe Armstrong's ring on the runtime: N processes, the token goes M times round (N*M
//! hops), R timed runs after a warm-up. Prints one line:
//! `runtime ring n=N m=M hops=H spawn_us=S median_ms=X per_hop_ns=Y`.
//! Compare with `../shared/bench/erlang/ring.erl` in the same session.

use runtime::{Node, NodeRole, Pid, Process};
use serde::{Deserialize, Serialize};
use std::time::Instant;

#[derive(Serialize, Deserialize)]
enum RingMsg {
    Next(Pid),
    Token(u64),
    Stop,
}

#[derive(Serialize, Deserialize)]
struct Done;

fn arg(args: &[String], i: usize, default: u64) -> u64 {
    match args.get(i) {
        None => default,
        Some(s) => s.parse().unwrap_or_else(|_| {
            eprintln!("ring: argument {i} must be a number, got {s:?}");
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
        let node = Node::new("ring@bench", NodeRole::Server);
        let mut parent = node.attach();
        let me = parent.pid().clone();
        let t = Instant::now();
        let pids: Vec<Pid> = (0..n)
            .map(|_| {
                let parent = me.clone();
                node.spawn(move |mut p: Process| async move {
                    let mut next: Option<Pid> = None;
                    loop {
                        let env = p.recv().await;
                        match env.downcast::<RingMsg>() {
                            Ok(RingMsg::Next(pid)) => next = Some(pid),
                            Ok(RingMsg::Token(0)) => p.send(&parent, Done),
                            Ok(RingMsg::Token(k)) => {
                                if let Some(nx) = &next {
                                    p.send(nx, RingMsg::Token(k - 1));
                                }
                            }
                            Ok(RingMsg::Stop) => return,
                            Err(_) => {}
                        }
                    }
                })
            })
            .collect();
        for (i, pid) in pids.iter().enumerate() {
            let next = pids[(i + 1) % pids.len()].clone();
            parent.send(pid, RingMsg::Next(next));
        }
        let spawn_us = t.elapsed().as_micros();
        let hops = n * m;
        let mut runs = Vec::new();
        for i in 0..=r {
            let t = Instant::now();
            parent.send(&pids[0], RingMsg::Token(hops));
            parent.receive_type::<Done>(None).await;
            if i > 0 {
                runs.push(t.elapsed());
            }
        }
        runs.sort();
        let median = runs[(runs.len() - 1) / 2];
        println!(
            "runtime ring n={n} m={m} hops={hops} spawn_us={spawn_us} median_ms={:.3} per_hop_ns={:.1}",
            median.as_secs_f64() * 1e3,
            median.as_nanos() as f64 / hops as f64
        );
        for pid in &pids {
            parent.send(pid, RingMsg::Stop);
        }
    });
}
