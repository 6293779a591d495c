//! Helpers for the command-line tests: free ports, `paxoskv` child processes that are
//! killed when dropped (even when a test fails), clusters of `paxoskv node` processes,
//! and one-shot commands run with a deadline.

#![allow(dead_code)] // each test file uses its own part of the helpers

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_paxoskv");

/// How long a node may take to say it is ready (tests run in parallel on 2 cores).
pub const READY_WITHIN: Duration = Duration::from_secs(30);

/// A cookie of its own for each test, so that tests never talk to each other's nodes.
pub fn unique_cookie(test: &str) -> String {
    format!("{test}-{:016x}", rand::random::<u64>())
}

/// `n` distinct free ports on 127.0.0.1 (bound at once, then released).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("bound address").port())
        .collect()
}

/// A base port P such that P+1..=P+n are free now.
pub fn free_port_block(n: u16) -> u16 {
    for _ in 0..100 {
        let first = free_ports(1)[0];
        if first < 1024 || u32::from(first) + u32::from(n) > 65535 {
            continue;
        }
        let held: Vec<_> = (first..first + n)
            .map(|p| TcpListener::bind(("127.0.0.1", p)))
            .collect();
        if held.iter().all(Result::is_ok) {
            return first - 1;
        }
    }
    panic!("no block of {n} free ports found");
}

/// A fresh directory under cargo's temp dir for tests (on the real disk), removed on drop.
pub struct FreshDir(pub std::path::PathBuf);

impl FreshDir {
    pub fn new(what: &str) -> FreshDir {
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "{what}-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&path).expect("create a test dir");
        FreshDir(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    pub fn join(&self, part: &str) -> std::path::PathBuf {
        self.0.join(part)
    }
}

impl Drop for FreshDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The environment variable that moves the default data dirs of server nodes.
pub const DATA_ROOT_ENV: &str = "PAXOSKV_DATA_ROOT";

/// Gives a command a fresh default data root (unless the test chose one), so no node
/// writes into the working directory and no test sees another's data.
fn fresh_data_root(cmd: &mut Command, env: &[(&str, &str)]) -> Option<FreshDir> {
    if env.iter().any(|(k, _)| *k == DATA_ROOT_ENV) {
        return None;
    }
    let root = FreshDir::new("paxoskv-data");
    cmd.env(DATA_ROOT_ENV, root.path());
    Some(root)
}

/// A running `paxoskv` process whose stdout is read line by line; killed on drop.
pub struct Proc {
    child: Child,
    /// Its default data root, removed after the process is gone.
    _data_root: Option<FreshDir>,
    lines: Receiver<String>,
    stdin: Option<ChildStdin>,
    /// What was read from stdout so far, for failure messages.
    seen: Vec<String>,
}

impl Proc {
    /// Starts `paxoskv ARGS` with stdout piped (and stdin piped if `with_stdin`); stderr
    /// goes to the test's own stderr, shown when a test fails.
    pub fn spawn(args: &[&str], with_stdin: bool) -> Proc {
        Self::spawn_with(args, with_stdin, &[])
    }

    /// As `spawn`, with extra environment variables.
    pub fn spawn_with(args: &[&str], with_stdin: bool, env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_remove("PAXOSKV_COOKIE")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .stdin(if with_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        for (k, v) in env {
            cmd.env(k, v);
        }
        let data_root = fresh_data_root(&mut cmd, env);
        let mut child = cmd.spawn().expect("start paxoskv");
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            _data_root: data_root,
            lines,
            stdin,
            seen: Vec::new(),
        }
    }

    /// As `spawn_with`, with stderr written to `stderr` (a log to read back).
    pub fn spawn_logging(args: &[&str], env: &[(&str, &str)], stderr: &std::path::Path) -> Proc {
        let log = std::fs::File::create(stderr).expect("create the stderr file");
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_remove("PAXOSKV_COOKIE")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let data_root = fresh_data_root(&mut cmd, env);
        let mut child = cmd.spawn().expect("start paxoskv");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines,
            stdin: None,
            seen: Vec::new(),
            _data_root: data_root,
        }
    }

    /// The next stdout line, waiting at most `within`; `None` on timeout or end.
    pub fn next_line(&mut self, within: Duration) -> Option<String> {
        match self.lines.recv_timeout(within) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Waits for a stdout line satisfying `wanted`, at most `within`; panics otherwise.
    pub fn wait_for_line(&mut self, within: Duration, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left) {
                Some(line) if wanted(&line) => return line,
                Some(_) => {}
                None => panic!(
                    "no expected line within {within:?}; stdout so far: {:?}",
                    self.seen
                ),
            }
        }
    }

    /// Writes to the process's stdin.
    pub fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin was piped");
        stdin.write_all(text.as_bytes()).expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Writes to the process's stdin, reporting a failure (e.g. the process is gone)
    /// instead of panicking.
    pub fn try_send(&mut self, text: &str) -> std::io::Result<()> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(std::io::Error::other("stdin was not piped or is closed"));
        };
        stdin.write_all(text.as_bytes())?;
        stdin.flush()
    }

    /// Closes the process's stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Sends SIGTERM (or another signal by name, e.g. "INT").
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Kills the process at once (SIGKILL) and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// How the process ended, if it has (without waiting, without panicking).
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for the process to exit, at most `within`; panics (the drop kills it) if
    /// it does not.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the process did not exit within {within:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a finished one-shot command gave.
#[derive(Debug)]
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// The exit code (-1 when killed by a signal).
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    /// Asserts success and returns stdout without its line end.
    pub fn ok(&self) -> String {
        assert!(
            self.status.success(),
            "command failed ({:?}): stderr: {}",
            self.status,
            self.stderr
        );
        self.stdout.trim_end_matches('\n').to_string()
    }
}

/// Runs `paxoskv ARGS` to its end, feeding `stdin`; panics if it takes longer than
/// `within` (after killing it).
pub fn run(args: &[&str], stdin: Option<&str>, within: Duration) -> Out {
    run_with(args, stdin, within, &[])
}

/// As `run`, with extra environment variables.
pub fn run_with(args: &[&str], stdin: Option<&str>, within: Duration, env: &[(&str, &str)]) -> Out {
    try_run_with(args, stdin, within, env).unwrap_or_else(|error| panic!("{error}"))
}

/// As `run`, but a command that takes longer than `within` is killed and reported as an
/// error instead of a panic (for callers that must go on, e.g. a nemesis).
pub fn try_run(args: &[&str], stdin: Option<&str>, within: Duration) -> Result<Out, String> {
    try_run_with(args, stdin, within, &[])
}

/// As `try_run`, with extra environment variables.
pub fn try_run_with(
    args: &[&str],
    stdin: Option<&str>,
    within: Duration,
    env: &[(&str, &str)],
) -> Result<Out, String> {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("PAXOSKV_COOKIE")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let _data_root = fresh_data_root(&mut cmd, env);
    let mut child = cmd
        .spawn()
        .map_err(|error| format!("cannot start paxoskv {args:?}: {error}"))?;
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let text = text.to_string();
        thread::spawn(move || {
            let _ = pipe.write_all(text.as_bytes());
        });
    }
    let out = child.stdout.take().expect("piped stdout");
    let err = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || std::io::read_to_string(out).unwrap_or_default());
    let err = thread::spawn(move || std::io::read_to_string(err).unwrap_or_default());
    let deadline = Instant::now() + within;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("waiting for paxoskv {args:?}: {error}"));
            }
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("paxoskv {args:?} did not finish within {within:?}"));
        }
        thread::sleep(Duration::from_millis(10));
    };
    Ok(Out {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// A cluster of `paxoskv node` processes on 127.0.0.1, killed on drop.
pub struct Cluster {
    pub cookie: String,
    /// Short names (s1, s2...) and ports.
    pub members: Vec<(String, u16)>,
    pub nodes: Vec<Proc>,
}

impl Cluster {
    /// Starts `n` nodes and waits for each one's ready line.
    pub fn start(test: &str, n: usize) -> Cluster {
        let names: Vec<String> = (1..=n).map(|i| format!("s{i}")).collect();
        Cluster::start_named(test, &names)
    }

    /// Starts `n` nodes running `--paxos MODE` (basic or distinguished).
    pub fn start_in(test: &str, n: usize, mode: &str) -> Cluster {
        let names: Vec<String> = (1..=n).map(|i| format!("s{i}")).collect();
        Cluster::start_named_in(test, &names, mode)
    }

    /// Starts one node per short name in `names` (e.g. `s0`...`s4`) and waits for each
    /// one's ready line.
    pub fn start_named(test: &str, names: &[String]) -> Cluster {
        Cluster::start_named_in(test, names, "distinguished")
    }

    /// [`Cluster::start_named`] with `--paxos MODE`.
    pub fn start_named_in(test: &str, names: &[String], mode: &str) -> Cluster {
        let n = names.len();
        let cookie = unique_cookie(test);
        let ports = free_ports(n);
        let members: Vec<(String, u16)> = names.iter().cloned().zip(ports).collect();
        let peers = endpoints(&members);
        let nodes: Vec<Proc> = members
            .iter()
            .map(|(name, port)| {
                let listen = format!("127.0.0.1:{port}");
                Proc::spawn_with(
                    &[
                        "node", "--name", name, "--listen", &listen, "--peers", &peers, "--paxos",
                        mode,
                    ],
                    false,
                    &[("PAXOSKV_COOKIE", &cookie)],
                )
            })
            .collect();
        let mut cluster = Cluster {
            cookie,
            members,
            nodes,
        };
        for i in 0..n {
            let (name, port) = cluster.members[i].clone();
            let expected = format!("ready {name}@127.0.0.1 127.0.0.1:{port}");
            let line = cluster.nodes[i].wait_for_line(READY_WITHIN, |l| l.starts_with("ready"));
            assert_eq!(line, expected);
        }
        cluster
    }

    /// `NAME=HOST:PORT,...` for every node.
    pub fn all(&self) -> String {
        endpoints(&self.members)
    }

    /// `NAME=HOST:PORT,...` for the nodes numbered (1-based) in `which`.
    pub fn some(&self, which: &[usize]) -> String {
        let chosen: Vec<(String, u16)> =
            which.iter().map(|i| self.members[i - 1].clone()).collect();
        endpoints(&chosen)
    }

    /// The environment that gives a command this cluster's cookie (never argv, which
    /// `ps` shows).
    pub fn cookie_env(&self) -> [(&str, &str); 1] {
        [("PAXOSKV_COOKIE", &self.cookie)]
    }

    /// `paxoskv client --servers SERVERS ARGS...` with the cluster's cookie.
    pub fn client(&self, servers: &str, args: &[&str], within: Duration) -> Out {
        let mut all = vec!["client", "--servers", servers];
        all.extend_from_slice(args);
        run_with(&all, None, within, &self.cookie_env())
    }

    /// A `paxoskv client --pipe` left running, fed through `Proc::send`.
    pub fn pipe_proc(&self, servers: &str, timeout_secs: &str) -> Proc {
        Proc::spawn_with(
            &[
                "client",
                "--servers",
                servers,
                "--timeout",
                timeout_secs,
                "--pipe",
            ],
            true,
            &self.cookie_env(),
        )
    }

    /// `paxoskv ctl --node <node i> ARGS...` with the cluster's cookie (i is 1-based).
    pub fn ctl(&self, i: usize, args: &[&str]) -> Out {
        let node = self.some(&[i]);
        let mut all = vec!["ctl", "--node", &node];
        all.extend_from_slice(args);
        run_with(&all, None, Duration::from_secs(30), &self.cookie_env())
    }

    /// `ctl status` of node i, parsed.
    pub fn status(&self, i: usize) -> serde_json::Value {
        let out = self.ctl(i, &["status"]).ok();
        serde_json::from_str(&out).expect("status is JSON")
    }
}

/// `s1=127.0.0.1:P1,s2=...`.
pub fn endpoints(members: &[(String, u16)]) -> String {
    members
        .iter()
        .map(|(n, p)| format!("{n}=127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses `--pipe` output: one JSON object per line.
pub fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The write-hash chain from "" with these values: the previous value each call returns.
pub fn hash_chain(values: &[&str]) -> Vec<String> {
    let mut previous = String::new();
    values
        .iter()
        .map(|v| {
            let returned = previous.clone();
            previous = kv_app::phash2::write_hash_value(&previous, v);
            returned
        })
        .collect()
}

/// Polls `check` until it gives `Some`, at most `within`.
pub fn wait_until<T>(within: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        thread::sleep(Duration::from_millis(100));
    }
}
