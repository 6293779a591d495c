//! A quick in-process load: 3 server nodes and C clients on the in-memory transport,
//! closed loop for S seconds, half reads, half writes. Prints one line:
//! `kv inproc clients=C ops=N throughput=X p50_us=Y p99_us=Z`.
//! `cargo run --release -p kv_app --example inproc_bench -- C S`

use kv_app::{ClientTimeouts, ServerOptions, start_server};
use runtime::transport::memory::Network;
use runtime::{NodeName, NodeRole};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap_or_else(|_| panic!("numbers, got {a:?}")))
        .collect();
    let clients = args.first().copied().unwrap_or(16) as usize;
    let secs = args.get(1).copied().unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let net = Network::new();
        let names: Vec<NodeName> = (1..=3).map(|i| NodeName::new(format!("s{i}@b"))).collect();
        let mut servers = Vec::new();
        for n in &names {
            let node = net.start_node(n.clone(), NodeRole::Server);
            servers.push(
                start_server(&node, names.clone(), ServerOptions::default())
                    .await
                    .expect("server"),
            );
        }
        let mut tasks = Vec::new();
        let until = Instant::now() + Duration::from_secs(secs);
        for c in 0..clients {
            let node = net.start_node(format!("c{c}@b"), NodeRole::Client);
            let ck = kv_app::client::start(&node, names.clone(), ClientTimeouts::default())
                .expect("client");
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = 0u64;
                while Instant::now() < until {
                    let t = Instant::now();
                    let key = format!("k{}", (i * 7919 + c as u64) % 10_000);
                    if i.is_multiple_of(2) {
                        ck.write(&key, "0123456789abcdef").await.expect("write");
                    } else {
                        ck.read(&key).await.expect("read");
                    }
                    lat.push(t.elapsed());
                    i += 1;
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("client"));
        }
        all.sort();
        let n = all.len();
        let p = |q: f64| all[((n as f64 * q) as usize).min(n - 1)].as_micros();
        println!(
            "kv inproc clients={clients} ops={n} throughput={:.0} p50_us={} p99_us={}",
            n as f64 / secs as f64,
            p(0.5),
            p(0.99)
        );
    });
}
