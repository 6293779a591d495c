//! The interactive shell of `paxoskv cluster`: operations through a client node in the
//! same process, and faults, status and kills aimed at a named node of the cluster.
//! On a terminal it edits lines with rustyline (history, completion); otherwise it
//! reads commands line by line, for scripts.

use crate::cli::op_line::{self, OpLine};
use kv_app::KvServer;
use kv_app::client::{Client, ClientError};
use kv_app::control::{self, ControlReply, ControlRequest};
use kv_app::ops::OpKind;
use runtime::Node;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};
use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::runtime::Handle;

/// The shell's help.
pub const HELP: &str = "\
operations (through the shell's own client node):
  read KEY                   the value of KEY (\"\" when never written)
  write KEY VALUE            stores VALUE (the rest of the line after KEY and one space)
  write-hash KEY VALUE       stores phash2(previous ++ VALUE); shows the previous value
faults, aimed at one node (NODE is s2 or s2@127.0.0.1):
  deaf NODE                  NODE drops every message from other nodes
  listen NODE                undoes deaf
  unreliable NODE [P]        NODE drops each message in or out with probability P (0.2)
  reliable NODE              undoes unreliable
  allow NODE NAME,...        NODE talks to these servers only (a partition)
  allow-all NODE             undoes allow
processes and state:
  kill NODE PROCESS          kills a registered process (kv_server, db_manager, kv_sup...)
  status [NODE]              one line per node, or NODE's full status as JSON
  nodes                      the nodes, their addresses, connections and faults
  timeout SECS               how long an operation may take (default 10)
  help                       this text
  quit                       stops the cluster (also Ctrl-D, Ctrl-C)";

/// The words the shell knows, for completion.
const COMMANDS: &[&str] = &[
    "read",
    "write",
    "write-hash",
    "deaf",
    "listen",
    "unreliable",
    "reliable",
    "allow",
    "allow-all",
    "kill",
    "status",
    "nodes",
    "timeout",
    "help",
    "quit",
];

/// One shell command.
#[derive(Clone, Debug, PartialEq)]
pub enum ShellCommand {
    Op(OpLine),
    /// A control request for the named node.
    Control {
        node: String,
        request: ControlRequest,
    },
    Status(Option<String>),
    Nodes,
    Timeout(Duration),
    Help,
    Quit,
}

/// Parses a line; `None` for an empty line or a `#` comment.
pub fn parse(line: &str) -> Result<Option<ShellCommand>, String> {
    let trimmed = line.trim_start();
    if trimmed.trim().is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let (word, rest) = trimmed.split_once(' ').unwrap_or((trimmed.trim_end(), ""));
    if let Some(kind) = op_line::kind_of(word) {
        return op_line::parse_args(kind, rest).map(|op| Some(ShellCommand::Op(op)));
    }
    let args: Vec<&str> = rest.split_whitespace().collect();
    let control = |request: ControlRequest, args: &[&str]| match args {
        [node] => Ok(ShellCommand::Control {
            node: node.to_string(),
            request,
        }),
        [] => Err(format!("{word} needs a NODE")),
        _ => Err(format!("{word} takes a NODE only")),
    };
    let command = match word {
        "deaf" => control(ControlRequest::Deaf, &args)?,
        "listen" => control(ControlRequest::Listen, &args)?,
        "reliable" => control(ControlRequest::Reliable, &args)?,
        "allow-all" => control(ControlRequest::AllowAll, &args)?,
        "unreliable" => {
            let p = match args.get(1) {
                None => 0.2,
                Some(p) => crate::cli::args::parse_probability(p)?,
            };
            match args.len() {
                1 | 2 => control(ControlRequest::Unreliable(p), &args[..1])?,
                0 => return Err("unreliable needs a NODE".into()),
                _ => return Err("unreliable takes a NODE and a probability".into()),
            }
        }
        "allow" => match args.as_slice() {
            [node, names] => {
                let names: Vec<String> = names
                    .split(',')
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
                    .collect();
                control(ControlRequest::Allow(names), &[node])?
            }
            _ => return Err("allow needs a NODE and a list NAME,...".into()),
        },
        "kill" => match args.as_slice() {
            [node, process] => control(ControlRequest::Kill(process.to_string()), &[node])?,
            _ => return Err("kill needs a NODE and a PROCESS".into()),
        },
        "status" => match args.as_slice() {
            [] => ShellCommand::Status(None),
            [node] => ShellCommand::Status(Some(node.to_string())),
            _ => return Err("status takes at most a NODE".into()),
        },
        "timeout" => match args.as_slice() {
            [secs] => ShellCommand::Timeout(crate::cli::args::parse_seconds(secs)?),
            _ => return Err("timeout needs SECS".into()),
        },
        "nodes" if args.is_empty() => ShellCommand::Nodes,
        "help" | "?" => ShellCommand::Help,
        "quit" | "exit" | "q" => ShellCommand::Quit,
        _ => return Err(format!("unknown command '{word}' (type help)")),
    };
    Ok(Some(command))
}

/// One server node of the cluster, as the shell sees it.
pub struct Member {
    pub name: String,
    pub addr: SocketAddr,
    pub node: Node,
    pub server: KvServer,
}

impl Member {
    fn short(&self) -> &str {
        self.name.split('@').next().unwrap_or(&self.name)
    }
}

/// What a command gives back.
#[derive(Debug, PartialEq)]
pub enum Reply {
    Text(String),
    Quit,
}

/// The shell's state: the cluster's nodes and the client.
pub struct Session {
    pub members: Vec<Member>,
    pub client: Client,
    pub op_timeout: Duration,
}

impl Session {
    fn member(&self, name: &str) -> Result<&Member, String> {
        self.members
            .iter()
            .find(|m| m.name == name || m.short() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.members.iter().map(Member::short).collect();
                format!("unknown node '{name}' (nodes: {})", known.join(", "))
            })
    }

    /// Qualifies bare names with the host of the cluster's nodes.
    fn full_name(&self, name: &str) -> String {
        match self.member(name) {
            Ok(m) => m.name.clone(),
            Err(_) => name.to_string(),
        }
    }

    /// Carries out one command.
    pub async fn execute(&mut self, command: ShellCommand) -> Reply {
        let text = match command {
            ShellCommand::Quit => return Reply::Quit,
            ShellCommand::Help => HELP.to_string(),
            ShellCommand::Timeout(t) => {
                self.op_timeout = t;
                format!("operations now time out after {t:?}")
            }
            ShellCommand::Op(op) => self.operation(op).await,
            ShellCommand::Control { node, request } => self.control(&node, request),
            ShellCommand::Status(None) => self
                .members
                .iter()
                .map(status_line)
                .collect::<Vec<_>>()
                .join("\n"),
            ShellCommand::Status(Some(name)) => match self.member(&name) {
                Ok(m) => serde_json::to_string_pretty(&m.server.status())
                    .unwrap_or_else(|e| format!("error: {e}")),
                Err(e) => format!("error: {e}"),
            },
            ShellCommand::Nodes => self
                .members
                .iter()
                .map(node_line)
                .collect::<Vec<_>>()
                .join("\n"),
        };
        Reply::Text(text)
    }

    async fn operation(&self, op: OpLine) -> String {
        let done = self
            .client
            .run(op.kind, &op.key, &op.value, Some(self.op_timeout))
            .await;
        match done {
            Ok(result) => {
                let shown = serde_json::to_string(&result).unwrap_or(result);
                match op.kind {
                    OpKind::WriteHash => format!("{shown} (previous value)"),
                    _ => shown,
                }
            }
            Err(ClientError::Timeout) => format!(
                "timeout: no result within {:?} (the operation may still take effect)",
                self.op_timeout
            ),
            Err(e) => format!("error: {e}"),
        }
    }

    fn control(&self, name: &str, request: ControlRequest) -> String {
        let member = match self.member(name) {
            Ok(m) => m,
            Err(e) => return format!("error: {e}"),
        };
        let request = match request {
            ControlRequest::Allow(names) => {
                ControlRequest::Allow(names.iter().map(|n| self.full_name(n)).collect())
            }
            other => other,
        };
        match control::apply(&member.node, request) {
            ControlReply::Done => "ok".to_string(),
            ControlReply::Refused(why) => format!("refused: {why}"),
            ControlReply::Status(_) | ControlReply::Paxos(_) => "ok".to_string(),
        }
    }
}

/// One node's status in a line.
fn status_line(m: &Member) -> String {
    let s = m.server.status();
    let restarts: u32 = s.processes.iter().map(|p| p.restarts).sum();
    format!(
        "{}: paxos max {} min {} held {} | kv keys {} applied {} | {} | {} processes, {} restarts",
        s.node,
        s.paxos.max,
        s.paxos.min,
        s.paxos.held,
        s.kv.keys,
        s.kv.applied,
        faults_text(&s.faults),
        s.processes.len(),
        restarts
    )
}

/// One node's address, connections and faults in a line.
fn node_line(m: &Member) -> String {
    let connected: Vec<String> = m
        .node
        .connected_nodes()
        .iter()
        .map(|n| n.to_string())
        .collect();
    format!(
        "{} at {} | connected: {} | {}",
        m.name,
        m.addr,
        if connected.is_empty() {
            "none".to_string()
        } else {
            connected.join(", ")
        },
        faults_text(&m.node.fault_state())
    )
}

fn faults_text(f: &runtime::FaultState) -> String {
    let mut parts = Vec::new();
    if f.deaf {
        parts.push("deaf".to_string());
    }
    if f.drop > 0.0 {
        parts.push(format!("unreliable {} ({})", f.drop, f.model));
    }
    if let Some(allow) = &f.allow {
        parts.push(format!("allow {}", allow.join(",")));
    }
    if parts.is_empty() {
        "no faults".to_string()
    } else {
        parts.join(", ")
    }
}

/// Completes command words, then node names.
struct ShellHelper {
    nodes: Vec<String>,
}

impl Completer for ShellHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let before = line.get(..pos).unwrap_or(line);
        let start = before.rfind(' ').map(|i| i + 1).unwrap_or(0);
        let word = &before[start..];
        let words_before = before[..start].split_whitespace().count();
        let pool: Vec<&str> = match words_before {
            0 => COMMANDS.to_vec(),
            1 => self.nodes.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        let found = pool
            .into_iter()
            .filter(|c| c.starts_with(word))
            .map(str::to_string)
            .collect();
        Ok((start, found))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}
impl Highlighter for ShellHelper {}
impl Validator for ShellHelper {}
impl Helper for ShellHelper {}

/// Where command lines come from.
enum Lines {
    Terminal(Box<Editor<ShellHelper, DefaultHistory>>),
    Plain(io::StdinLock<'static>),
}

impl Lines {
    /// The next line; `None` at the end (Ctrl-D, Ctrl-C, end of input).
    fn next(&mut self) -> Option<String> {
        match self {
            Lines::Terminal(editor) => match editor.readline("paxoskv> ") {
                Ok(line) => {
                    let _ = editor.add_history_entry(line.as_str());
                    Some(line)
                }
                Err(ReadlineError::Interrupted | ReadlineError::Eof) => None,
                Err(e) => {
                    log::error!("reading the terminal: {e}");
                    None
                }
            },
            Lines::Plain(stdin) => {
                let mut line = String::new();
                match stdin.read_line(&mut line) {
                    Ok(0) => None,
                    Ok(_) => {
                        let line = line.strip_suffix('\n').unwrap_or(&line);
                        Some(line.strip_suffix('\r').unwrap_or(line).to_string())
                    }
                    Err(e) => {
                        log::error!("reading stdin: {e}");
                        None
                    }
                }
            }
        }
    }
}

fn history_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".paxoskv_history"))
}

/// Runs the shell until quit or end of input. Blocking: call it from a blocking thread;
/// commands run on the tokio runtime behind `handle`.
pub fn run_blocking(handle: Handle, mut session: Session, terminal: bool) {
    let mut lines = if terminal {
        match Editor::<ShellHelper, DefaultHistory>::new() {
            Ok(mut editor) => {
                let nodes = session
                    .members
                    .iter()
                    .map(|m| m.short().to_string())
                    .collect();
                editor.set_helper(Some(ShellHelper { nodes }));
                if let Some(path) = history_file() {
                    let _ = editor.load_history(&path);
                }
                println!("paxoskv shell: type help for the commands, quit to stop the cluster");
                Lines::Terminal(Box::new(editor))
            }
            Err(e) => {
                log::warn!("no line editing ({e}); reading plain lines");
                Lines::Plain(io::stdin().lock())
            }
        }
    } else {
        Lines::Plain(io::stdin().lock())
    };
    while let Some(line) = lines.next() {
        let reply = match parse(&line) {
            Ok(None) => continue,
            Ok(Some(command)) => handle.block_on(session.execute(command)),
            Err(e) => Reply::Text(format!("error: {e}")),
        };
        match reply {
            Reply::Quit => break,
            Reply::Text(text) => {
                let mut out = io::stdout().lock();
                if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
                    break;
                }
            }
        }
    }
    if let (Lines::Terminal(editor), Some(path)) = (&mut lines, history_file()) {
        let _ = editor.save_history(&path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(node: &str, request: ControlRequest) -> Result<Option<ShellCommand>, String> {
        Ok(Some(ShellCommand::Control {
            node: node.into(),
            request,
        }))
    }

    #[test]
    fn commands_parse() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("  # a comment"), Ok(None));
        assert_eq!(
            parse("write k a b"),
            Ok(Some(ShellCommand::Op(OpLine {
                kind: OpKind::Write,
                key: "k".into(),
                value: "a b".into()
            })))
        );
        assert_eq!(parse("deaf s2"), control("s2", ControlRequest::Deaf));
        assert_eq!(parse("listen s2 "), control("s2", ControlRequest::Listen));
        assert_eq!(
            parse("unreliable s1"),
            control("s1", ControlRequest::Unreliable(0.2))
        );
        assert_eq!(
            parse("unreliable s1 0.5"),
            control("s1", ControlRequest::Unreliable(0.5))
        );
        assert_eq!(
            parse("allow s1 s1,s2"),
            control("s1", ControlRequest::Allow(vec!["s1".into(), "s2".into()]))
        );
        assert_eq!(
            parse("allow-all s3"),
            control("s3", ControlRequest::AllowAll)
        );
        assert_eq!(
            parse("kill s2 db_manager"),
            control("s2", ControlRequest::Kill("db_manager".into()))
        );
        assert_eq!(parse("status"), Ok(Some(ShellCommand::Status(None))));
        assert_eq!(
            parse("status s1"),
            Ok(Some(ShellCommand::Status(Some("s1".into()))))
        );
        assert_eq!(parse("nodes"), Ok(Some(ShellCommand::Nodes)));
        assert_eq!(parse("quit"), Ok(Some(ShellCommand::Quit)));
        assert_eq!(
            parse("timeout 2.5"),
            Ok(Some(ShellCommand::Timeout(Duration::from_millis(2500))))
        );
    }

    #[test]
    fn bad_commands_say_what_is_wrong() {
        let err = |l: &str| parse(l).err().unwrap_or_default();
        assert!(err("frobnicate").contains("unknown command 'frobnicate'"));
        assert!(err("deaf").contains("needs a NODE"));
        assert!(err("deaf s1 s2").contains("NODE only"));
        assert!(err("unreliable s1 2").contains("not within 0..1"));
        assert!(err("allow s1").contains("list"));
        assert!(err("kill s1").contains("PROCESS"));
        assert!(err("write k").contains("VALUE"));
        assert!(err("timeout soon").contains("not a number"));
    }

    #[test]
    fn completion_offers_commands_then_nodes() {
        let helper = ShellHelper {
            nodes: vec!["s1".into(), "s2".into()],
        };
        let history = DefaultHistory::new();
        let ctx = Context::new(&history);
        let (start, found) = helper.complete("wri", 3, &ctx).expect("completes");
        assert_eq!(
            (start, found),
            (0, vec!["write".to_string(), "write-hash".to_string()])
        );
        let (start, found) = helper.complete("deaf s", 6, &ctx).expect("completes");
        assert_eq!(
            (start, found),
            (5, vec!["s1".to_string(), "s2".to_string()])
        );
    }
}
