//! Distribution ping-pong between two OS processes on loopback, the runtime's side of the
//! Erlang `dist` benchmark (`shared/bench/erlang/dist.erl`): a registered `pong` process
//! on one node answers `{ping, From, K}` with `{pong, K}`; a process on the other node
//! does N round trips to `{pong, Node}`, after 1,000 to warm up, five times.
//!
//! `cargo run --release -p runtime --example dist_pingpong -- [N]` starts the pong node
//! by running this same program with `pong` as argument, and prints one line:
//! `runtime dist_pingpong n=N per_roundtrip_us=Y` (the median of the five runs).
//! `... -- pong` runs only the pong side (it prints `ready NAME ADDR`), and
//! `... -- ping N NAME ADDR` only the ping side, against a pong node started by hand.
//!
//! Both sides run on tokio's default multi-thread runtime. For measuring, the
//! environment can change that: `DIST_PINGPONG_WORKERS=N` (0 for the current-thread
//! runtime), `DIST_PINGPONG_SPIN_US=US` (the readers' spin window, `Tuning::spin`), and
//! `DIST_PINGPONG_VERBOSE=1` prints the five run times on stderr.

use runtime::transport::tcp::{TcpConfig, TcpTransport, Tuning};
use runtime::{Down, NodeName, NodeRole, Pid};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const COOKIE: &str = "dist_pingpong";
const PONG_NODE: &str = "pong@127.0.0.1";

#[derive(Serialize, Deserialize, Debug)]
enum Bench {
    Ping(Pid, u64),
    Pong(u64),
    Stop,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    env_logger::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match std::env::var("DIST_PINGPONG_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(0) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
        None => tokio::runtime::Runtime::new()?,
    };
    match args.first().map(String::as_str) {
        Some("pong") => rt.block_on(pong()),
        Some("ping") => {
            let n = parse_n(args.get(1))?;
            let name = NodeName::new(args.get(2).ok_or("ping N NAME ADDR")?);
            let addr: SocketAddr = args.get(3).ok_or("ping N NAME ADDR")?.parse()?;
            let per_rt = rt.block_on(ping(n, name, addr))?;
            report(n, per_rt);
            Ok(())
        }
        _ => {
            let n = parse_n(args.first())?;
            let mut child = Command::new(std::env::current_exe()?)
                .arg("pong")
                .stdout(Stdio::piped())
                .spawn()?;
            let stdout = child.stdout.take().ok_or("no stdout from the pong node")?;
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line)?;
            let mut words = line.split_whitespace().skip(1);
            let name = NodeName::new(words.next().ok_or("pong node did not start")?);
            let addr: SocketAddr = words.next().ok_or("pong node did not start")?.parse()?;
            let result = rt.block_on(ping(n, name, addr));
            // The pong node halts on Stop; make sure it is gone whatever happened.
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait()?.is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
            report(n, result?);
            Ok(())
        }
    }
}

/// The transport's default timings; `DIST_PINGPONG_SPIN_US` overrides the reader's spin
/// window, to measure its effect.
fn tuning() -> Tuning {
    let mut t = Tuning::default();
    if let Some(us) = std::env::var("DIST_PINGPONG_SPIN_US")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        t.spin = Duration::from_micros(us);
    }
    t
}

fn parse_n(arg: Option<&String>) -> Result<u64, Error> {
    Ok(match arg {
        Some(s) => s.parse()?,
        None => 10_000,
    })
}

fn report(n: u64, per_roundtrip_us: f64) {
    println!("runtime dist_pingpong n={n} per_roundtrip_us={per_roundtrip_us:.1}");
}

/// The pong node: answers pings until told to stop.
async fn pong() -> Result<(), Error> {
    let cfg = TcpConfig::new(COOKIE).listen("127.0.0.1:0".parse()?);
    let (node, transport) =
        TcpTransport::start_tuned(PONG_NODE, NodeRole::Server, cfg, tuning()).await?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let pid = node.spawn(move |mut p| async move {
        loop {
            match p.recv().await.downcast::<Bench>() {
                Ok(Bench::Ping(from, k)) => p.send(&from, Bench::Pong(k)),
                Ok(Bench::Stop) => break,
                _ => {}
            }
        }
        let _ = done_tx.send(());
    });
    node.register("pong", &pid)?;
    let addr = transport.local_addr().ok_or("no listen address")?;
    println!("ready {PONG_NODE} {addr}");
    let _ = done_rx.await;
    node.stop();
    Ok(())
}

/// The ping node: the median time per round trip over five runs of `n`, in µs.
async fn ping(n: u64, pong_node: NodeName, addr: SocketAddr) -> Result<f64, Error> {
    let cfg = TcpConfig::new(COOKIE).peer(pong_node.clone(), addr);
    let (node, _transport) =
        TcpTransport::start_tuned("ping@127.0.0.1", NodeRole::Server, cfg, tuning()).await?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    node.spawn(move |mut p| async move {
        let dest = ("pong", pong_node);
        let me = p.pid().clone();
        let round_trips = async |p: &mut runtime::Process, n: u64| -> bool {
            for k in (1..=n).rev() {
                p.send(dest.clone(), Bench::Ping(me.clone(), k));
                match p.recv_timeout(Duration::from_secs(10)).await {
                    Some(env) => match env.downcast::<Bench>() {
                        Ok(Bench::Pong(j)) if j == k => {}
                        _ => return false,
                    },
                    None => return false,
                }
            }
            true
        };
        let mut runs = Vec::new();
        let mut ok = round_trips(&mut p, 1000).await;
        for _ in 0..5 {
            if !ok {
                break;
            }
            let start = Instant::now();
            ok = round_trips(&mut p, n).await;
            runs.push(start.elapsed());
        }
        // Stop the pong node and wait until its process is gone.
        p.monitor(dest.clone());
        p.send(dest.clone(), Bench::Stop);
        let _ = p.receive_type::<Down>(Some(Duration::from_secs(5))).await;
        let _ = tx.send(if ok { Some(runs) } else { None });
    });
    let runs = rx.await?;
    node.stop();
    let mut runs = runs.ok_or("a pong did not come back")?;
    if std::env::var_os("DIST_PINGPONG_VERBOSE").is_some() {
        eprintln!("runs: {runs:?}");
    }
    runs.sort();
    let median = runs.get(runs.len() / 2).ok_or("no run")?;
    Ok(median.as_secs_f64() * 1e6 / n.max(1) as f64)
}
