//! The command line's grammar (clap derive): every command, flag and default of the
//! stable contract in the design brief, with the help text users read.

use crate::cli::endpoints::{self, Endpoint};
use clap::{Args, Parser, Subcommand};
use kv_app::PaxosMode;
use runtime::faults::LossModel;
use std::net::SocketAddr;
use std::time::Duration;

/// A replicated key-value service on multi-instance Paxos (a Rust port of an Erlang/OTP
/// design). Start server nodes, run clients, inject faults, benchmark.
#[derive(Debug, Parser)]
#[command(name = "paxoskv", version, propagate_version = true)]
#[command(
    after_help = "The cookie comes from --cookie-file, else PAXOSKV_COOKIE, else \
    ~/.paxoskv.cookie (created with mode 0600 on first use); --cookie still works but \
    shows the secret in ps. Logs go to stderr; set RUST_LOG (default: warn)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs N server nodes s1..sN@127.0.0.1 in this process, node i on 127.0.0.1:P+i.
    ///
    /// Prints "ready NAME HOST:PORT" per node, then "cluster ready", then "observer URL"
    /// (the live web page, on 127.0.0.1:P unless --http says otherwise; the URL carries
    /// the control token). On a terminal it then opens an interactive shell (type help);
    /// otherwise it serves until SIGINT or SIGTERM.
    Cluster(ClusterArgs),
    /// Runs one server node (Paxos peer, KV server, DB manager under the kv supervisor).
    ///
    /// Prints "ready NAME HOST:PORT" on stdout once it accepts connections (then
    /// "observer URL" with --http); exits 0 on SIGINT or SIGTERM after an orderly
    /// shutdown.
    Node(NodeArgs),
    /// Runs one operation (read, write, write-hash), or many with --pipe.
    ///
    /// Prints the result on stdout: read the value, write the value written, write-hash
    /// the previous value. Exits 1 with a message on stderr when the operation is not
    /// done within --timeout (it may still take effect).
    Client(ClientArgs),
    /// Injects a fault into a node, lifts it, reads its status or kills one of its
    /// processes.
    ///
    /// status prints one JSON object; the other commands print "ok". A refusal prints
    /// its reason on stderr and exits 1.
    Ctl(CtlArgs),
    /// Closed-loop load: N clients, each one operation at a time, for a while.
    ///
    /// Prints throughput and p50/p90/p99/p999 latency per operation kind, or one JSON
    /// object with --json (its fields are described in docs/operations.md).
    Bench(BenchArgs),
    /// Checks a recorded history for linearizability (the key-value model, write_hash as
    /// Erlang's phash2).
    ///
    /// FILE holds one JSON object per operation, the `client --pipe` output with the
    /// client, call and return fields (docs/history-format.md). Prints "linearizable"
    /// (exit 0), "not linearizable: key K" with the smallest excerpt it can show (exit 1),
    /// or "unknown" when the step budget ran out (exit 3). A file that cannot be read or
    /// parsed exits 2.
    Check(CheckArgs),
}

/// Arguments of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The history file (JSON lines).
    pub file: std::path::PathBuf,
    /// Search steps allowed per key before answering "unknown".
    #[arg(long, default_value_t = paxoskv::checker::DEFAULT_STEP_BUDGET)]
    pub budget: u64,
    /// Also draws the history into OUT, an HTML page: per key a timeline of the
    /// operations with the linearization found, or the part that cannot be linearized.
    #[arg(long, value_name = "OUT")]
    pub html: Option<std::path::PathBuf>,
}

/// Where the observer page is served.
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Serves the observer (the live page, /api/status, /metrics) on HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", value_parser = endpoints::parse_addr)]
    pub http: Option<SocketAddr>,
    /// Lets --http name an address beyond loopback (the page and its token then cross
    /// the network in clear).
    #[arg(long)]
    pub http_public: bool,
}

/// Where the shared secret comes from.
#[derive(Debug, Args)]
pub struct CookieArg {
    /// Deprecated: the secret on the command line shows in ps to every user of the
    /// machine. Use --cookie-file or PAXOSKV_COOKIE.
    #[arg(long, value_name = "COOKIE", conflicts_with = "cookie_file")]
    pub cookie: Option<String>,
    /// Reads the shared secret every node and client of a cluster must know from FILE
    /// (keep it mode 0600) [default: PAXOSKV_COOKIE, else ~/.paxoskv.cookie]
    #[arg(long, value_name = "FILE")]
    pub cookie_file: Option<std::path::PathBuf>,
}

/// TLS between machines: every connection of the command (to and from its nodes) runs
/// under TLS with these files; the cookie handshake runs inside.
#[derive(Debug, Args, Clone, Default)]
pub struct TlsArgs {
    /// This node's or client's certificate chain (PEM); turns TLS on. Its subject
    /// alternative names must hold the IP address peers dial.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// The CA certificates that sign the peers' certificates (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Mutual authentication: a listening node accepts only peers and clients whose
    /// certificate the CA signed.
    #[arg(long, requires = "tls_cert")]
    pub tls_require_client_cert: bool,
}

impl TlsArgs {
    /// The TLS settings, read from the files; `None` without --tls-cert.
    pub fn settings(&self) -> Result<Option<runtime::transport::tcp::tls::TlsSettings>, String> {
        let (Some(cert), Some(key), Some(ca)) = (&self.tls_cert, &self.tls_key, &self.tls_ca)
        else {
            return Ok(None);
        };
        let files = runtime::transport::tcp::tls::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            ca: ca.clone(),
            require_client_cert: self.tls_require_client_cert,
        };
        runtime::transport::tcp::tls::TlsSettings::from_files(&files)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

/// Limits on what one operation may carry.
#[derive(Debug, Args, Clone, Copy)]
pub struct LimitArgs {
    /// The largest key, in bytes; a longer one is refused at once.
    #[arg(long, value_name = "BYTES", default_value_t = kv_app::limits::DEFAULT_MAX_KEY)]
    pub max_key: usize,
    /// The largest value, in bytes; a longer one is refused at once. With the key it must
    /// fit in a 16 MiB frame with 64 KiB to spare.
    #[arg(long, value_name = "BYTES", default_value_t = kv_app::limits::DEFAULT_MAX_VALUE)]
    pub max_value: usize,
}

impl LimitArgs {
    /// The limits, checked against the transport's frame size.
    pub fn limits(&self) -> Result<kv_app::Limits, String> {
        let limits = kv_app::Limits {
            max_key: self.max_key,
            max_value: self.max_value,
        };
        limits
            .fit(runtime::transport::tcp::DEFAULT_MAX_FRAME)
            .map_err(|e| e.to_string())?;
        Ok(limits)
    }
}

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// How many server nodes.
    #[arg(long, default_value_t = 3, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=100))]
    pub nodes: u16,
    /// Node i listens on 127.0.0.1:P+i.
    #[arg(long, default_value_t = 7100, value_name = "P")]
    pub base_port: u16,
    #[command(flatten)]
    pub cookie: CookieArg,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Opens the shell even when stdin is not a terminal (reads commands line by line).
    #[arg(long, conflicts_with = "no_shell")]
    pub shell: bool,
    /// Never opens the shell, even on a terminal: serves until SIGINT or SIGTERM.
    #[arg(long)]
    pub no_shell: bool,
    /// The observer listens on --http [default: 127.0.0.1:P, else a free port].
    #[command(flatten)]
    pub http: HttpArgs,
    /// Serves no observer page.
    #[arg(long, conflicts_with_all = ["http", "http_public"])]
    pub no_http: bool,
    #[command(flatten)]
    pub paxos: PaxosArg,
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// Where server nodes keep their state.
#[derive(Debug, Args)]
pub struct StorageArgs {
    /// node: this node's data dir [default: ./paxoskv-data/NAME]; cluster: the parent of
    /// one sub-dir per node [default: ./paxoskv-data]. Given here, it must exist. The
    /// default's parent is $PAXOSKV_DATA_ROOT when set.
    #[arg(long, value_name = "DIR", conflicts_with = "memory")]
    pub data_dir: Option<std::path::PathBuf>,
    /// Keeps nothing on disk, as the original: a restarted node has forgotten its
    /// promises, and a restarted cluster every write.
    #[arg(long)]
    pub memory: bool,
}

/// Which Paxos the server nodes run.
#[derive(Debug, Args)]
pub struct PaxosArg {
    /// basic: every server proposes for itself with two-phase Paxos (the original);
    /// distinguished: a leader (the first node by name) holds a Multi-Paxos lease and the
    /// others forward to it. Every node of a cluster must run the same.
    #[arg(long = "paxos", default_value = "distinguished", value_name = "MODE",
          value_parser = parse_paxos_mode)]
    pub mode: PaxosMode,
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// This node's name, NAME@HOST (a bare NAME gets "@" and the --listen address's IP).
    #[arg(long, value_name = "NAME", value_parser = endpoints::parse_name)]
    pub name: String,
    /// Where to accept connections (port 0 picks a free one).
    #[arg(long, value_name = "HOST:PORT", value_parser = endpoints::parse_addr)]
    pub listen: SocketAddr,
    /// The other server nodes (listing this node too is accepted).
    #[arg(long, value_name = "NAME=HOST:PORT,...", value_delimiter = ',',
          value_parser = endpoints::parse_endpoint)]
    pub peers: Vec<Endpoint>,
    #[command(flatten)]
    pub cookie: CookieArg,
    #[command(flatten)]
    pub paxos: PaxosArg,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub storage: StorageArgs,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The server nodes to send operations to.
    #[arg(long, required = true, value_name = "NAME=HOST:PORT,...", value_delimiter = ',',
          value_parser = endpoints::parse_endpoint)]
    pub servers: Vec<Endpoint>,
    #[command(flatten)]
    pub cookie: CookieArg,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Give up on an operation after this many seconds.
    #[arg(long, default_value = "30", value_name = "SECS", value_parser = parse_seconds)]
    pub timeout: Duration,
    /// Reads one operation per line on stdin ("read KEY", "write KEY VALUE",
    /// "write-hash KEY VALUE"; VALUE is the rest of the line after KEY and one space) and
    /// prints one JSON object per line.
    #[arg(long)]
    pub pipe: bool,
    #[command(subcommand)]
    pub op: Option<OpCommand>,
}

/// One client operation.
#[derive(Debug, Subcommand)]
pub enum OpCommand {
    /// Prints the value of KEY ("" when never written).
    Read {
        #[arg(allow_hyphen_values = true)]
        key: String,
    },
    /// Stores VALUE under KEY; prints VALUE.
    Write {
        #[arg(allow_hyphen_values = true)]
        key: String,
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Stores phash2(previous ++ VALUE) under KEY; prints the previous value.
    WriteHash {
        #[arg(allow_hyphen_values = true)]
        key: String,
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
}

#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The node to talk to.
    #[arg(long, value_name = "NAME=HOST:PORT", value_parser = endpoints::parse_endpoint)]
    pub node: Endpoint,
    #[command(flatten)]
    pub cookie: CookieArg,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Give up after this many seconds without an answer.
    #[arg(long, default_value = "10", value_name = "SECS", value_parser = parse_seconds)]
    pub timeout: Duration,
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// What `ctl` asks of a node.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// The node drops every message arriving from other nodes (it can still send).
    Deaf,
    /// Undoes deaf.
    Listen,
    /// Undoes unreliable.
    Reliable,
    /// Drops messages at random, by a loss model (docs/operations.md says exactly what
    /// each drops).
    ///
    /// boundary (the default): each message crossing the node's boundary, in or out, is
    /// dropped with probability P. original: each message the node receives is dropped
    /// with probability P (the Erlang original's). mit: a tenth of the requests the node
    /// receives, and a fifth of the replies it sends after running the request (MIT
    /// 6.824's; takes no P).
    Unreliable {
        #[arg(value_name = "P", value_parser = parse_probability)]
        probability: Option<f64>,
        /// The loss model.
        #[arg(long, default_value = "boundary", value_name = "MODEL",
              value_parser = parse_loss_model)]
        model: LossModel,
    },
    /// Server-to-server traffic only with these nodes (a partition); clients are never
    /// cut. A bare NAME gets the @HOST of the --node name.
    Allow {
        #[arg(required = true, value_name = "NAME,...", value_delimiter = ',',
              value_parser = endpoints::parse_name)]
        names: Vec<String>,
    },
    /// Undoes allow.
    AllowAll,
    /// Prints the node's status as one JSON object.
    Status,
    /// Kills the process registered as PROCESS (e.g. kv_server, db_manager, kv_sup); its
    /// supervisor restarts it. Killing node_sup stops the node (it exits with 1).
    Kill {
        #[arg(value_name = "PROCESS")]
        process: String,
    },
    /// Asks the node's Paxos peer (the original's estado, max, min, n_mensajes); prints
    /// one JSON object.
    #[command(subcommand)]
    Paxos(PaxosCommand),
}

/// What `ctl paxos` asks of a node's Paxos peer.
#[derive(Debug, Subcommand)]
pub enum PaxosCommand {
    /// What the peer knows of instance N: decided (with the value), pending or forgotten.
    Status {
        #[arg(value_name = "N")]
        seq: u64,
    },
    /// The highest instance the peer has seen.
    Max,
    /// One more than the lowest done over all peers (instances below are forgotten).
    Min,
    /// How many messages the peer's node has received (and the Paxos requests among them).
    Messages,
}

/// The probability `unreliable` uses when none is given: the original's rate.
pub const DEFAULT_LOSS: f64 = 0.2;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The server nodes to load; client i starts at the i-th in turn (so one client talks
    /// to the first).
    #[arg(long, required = true, value_name = "NAME=HOST:PORT,...", value_delimiter = ',',
          value_parser = endpoints::parse_endpoint)]
    pub servers: Vec<Endpoint>,
    #[command(flatten)]
    pub cookie: CookieArg,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Concurrent clients, each one operation at a time.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub clients: u32,
    /// How long to issue operations, in seconds.
    #[arg(long, default_value = "10", value_name = "SECS", value_parser = parse_seconds)]
    pub duration: Duration,
    /// The probability that an operation is a read (else a write).
    #[arg(long, default_value = "0.5", value_name = "R", value_parser = parse_probability)]
    pub read_ratio: f64,
    /// Keys are chosen uniformly among this many.
    #[arg(long, default_value_t = 10_000, value_name = "K",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub keys: u64,
    /// Bytes per written value.
    #[arg(long, default_value_t = 16, value_name = "B",
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub value_size: u32,
    /// Prints one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also writes every completed operation's latency to FILE, one per line: its kind
    /// and microseconds ("read 123", "write 456").
    #[arg(long, value_name = "FILE")]
    pub latencies: Option<std::path::PathBuf>,
}

/// A positive number of seconds, fractions allowed.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if secs.is_nan() || secs <= 0.0 {
        return Err(format!("{s} seconds: must be more than 0"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s} seconds: {e}"))
}

/// A Paxos mode: basic or distinguished.
pub fn parse_paxos_mode(s: &str) -> Result<PaxosMode, String> {
    s.trim().parse()
}

/// A loss model: boundary, original or mit.
pub fn parse_loss_model(s: &str) -> Result<LossModel, String> {
    s.trim().parse()
}

/// A probability, 0 to 1.
pub fn parse_probability(s: &str) -> Result<f64, String> {
    let p: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{s} is not within 0..1"))
    }
}

/// Turns a clap error into one line (clap's own are several: the error, a tip, the
/// usage).
pub fn one_line_error(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    format!("{message} (try --help)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("paxoskv").chain(args.iter().copied()))
    }

    #[test]
    fn the_grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_match_the_contract() {
        let Ok(Cli {
            command: Command::Cluster(c),
        }) = parse(&["cluster"])
        else {
            panic!("cluster did not parse");
        };
        assert_eq!((c.nodes, c.base_port), (3, 7100));
        let Ok(Cli {
            command: Command::Client(c),
        }) = parse(&["client", "--servers", "s1=127.0.0.1:1", "read", "k"])
        else {
            panic!("client did not parse");
        };
        assert_eq!(c.timeout, Duration::from_secs(30));
        let Ok(Cli {
            command: Command::Bench(b),
        }) = parse(&["bench", "--servers", "s1=127.0.0.1:1"])
        else {
            panic!("bench did not parse");
        };
        assert_eq!(b.duration, Duration::from_secs(10));
        assert_eq!((b.read_ratio, b.keys, b.value_size), (0.5, 10_000, 16));
        assert_eq!(b.latencies, None);
        let Ok(Cli {
            command: Command::Bench(b),
        }) = parse(&[
            "bench",
            "--servers",
            "s1=127.0.0.1:1",
            "--latencies",
            "/tmp/l",
        ])
        else {
            panic!("bench --latencies did not parse");
        };
        assert_eq!(b.latencies, Some(std::path::PathBuf::from("/tmp/l")));
    }

    #[test]
    fn values_may_start_with_a_hyphen() {
        let Ok(Cli {
            command: Command::Client(c),
        }) = parse(&["client", "--servers", "s1=127.0.0.1:1", "write", "k", "-5"])
        else {
            panic!("did not parse");
        };
        assert!(matches!(c.op, Some(OpCommand::Write { value, .. }) if value == "-5"));
    }

    #[test]
    fn ctl_unreliable_defaults_to_the_originals_rate_and_checks_the_range() {
        let Ok(Cli {
            command: Command::Ctl(c),
        }) = parse(&["ctl", "--node", "s1=127.0.0.1:1", "unreliable"])
        else {
            panic!("did not parse");
        };
        assert!(matches!(
            c.command,
            CtlCommand::Unreliable {
                probability: None,
                model: LossModel::Boundary
            }
        ));
        assert!(parse(&["ctl", "--node", "s1=127.0.0.1:1", "unreliable", "1.5"]).is_err());
        let Ok(Cli {
            command: Command::Ctl(c),
        }) = parse(&[
            "ctl",
            "--node",
            "s1=127.0.0.1:1",
            "unreliable",
            "--model",
            "original",
            "0.3",
        ])
        else {
            panic!("did not parse");
        };
        assert!(matches!(
            c.command,
            CtlCommand::Unreliable { probability: Some(p), model: LossModel::Original } if p == 0.3
        ));
        assert!(
            parse(&[
                "ctl",
                "--node",
                "s1=127.0.0.1:1",
                "unreliable",
                "--model",
                "x"
            ])
            .is_err()
        );
    }

    #[test]
    fn paxos_mode_defaults_to_distinguished() {
        let Ok(Cli {
            command: Command::Cluster(c),
        }) = parse(&["cluster"])
        else {
            panic!("cluster did not parse");
        };
        assert_eq!(c.paxos.mode, PaxosMode::Distinguished);
        let Ok(Cli {
            command: Command::Node(n),
        }) = parse(&[
            "node",
            "--name",
            "s1",
            "--listen",
            "127.0.0.1:1",
            "--peers",
            "s2=127.0.0.1:2",
            "--paxos",
            "basic",
        ])
        else {
            panic!("node did not parse");
        };
        assert_eq!(n.paxos.mode, PaxosMode::Basic);
        assert!(parse(&["cluster", "--paxos", "fast"]).is_err());
    }

    #[test]
    fn ctl_paxos_queries_parse() {
        let Ok(Cli {
            command: Command::Ctl(c),
        }) = parse(&["ctl", "--node", "s1=127.0.0.1:1", "paxos", "status", "7"])
        else {
            panic!("did not parse");
        };
        assert!(matches!(
            c.command,
            CtlCommand::Paxos(PaxosCommand::Status { seq: 7 })
        ));
        assert!(parse(&["ctl", "--node", "s1=127.0.0.1:1", "paxos", "status"]).is_err());
    }

    #[test]
    fn errors_become_one_line_naming_the_problem() {
        let err = parse(&["client", "read", "k"])
            .err()
            .map(|e| one_line_error(&e));
        let err = err.unwrap_or_default();
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains("--servers"), "{err}");
        let err = parse(&["frobnicate"]).err().map(|e| one_line_error(&e));
        assert!(err.is_some_and(|e| e.contains("frobnicate") && !e.contains('\n')));
    }

    #[test]
    fn seconds_and_probabilities_are_checked() {
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("NaN").is_err());
        assert!(parse_seconds("soon").is_err());
        assert_eq!(parse_probability("1"), Ok(1.0));
        assert!(parse_probability("-0.1").is_err());
    }
}
