//! `paxoskv client`: one operation from the command line, or many from stdin with
//! `--pipe` (one JSON line each), through a kv client on a client-only node.

use crate::cli::args::{ClientArgs, OpCommand};
use crate::cli::endpoints::Endpoint;
use crate::cli::error::CliError;
use crate::cli::op_line::{self, OpLine};
use crate::cli::output::{self, PipeOutcome};
use crate::cli::{connect, cookie, probe};
use kv_app::client::{self, Client, ClientError, ClientTimeouts};
use kv_app::ops::OpKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Runs the command.
pub async fn run(args: ClientArgs) -> Result<(), CliError> {
    let op = match (args.pipe, args.op) {
        (true, Some(_)) => {
            return Err(CliError::BadInput(
                "--pipe reads operations from stdin: give no operation on the command line".into(),
            ));
        }
        (false, None) => {
            return Err(CliError::BadInput(
                "missing operation: read KEY, write KEY VALUE or write-hash KEY VALUE (or --pipe)"
                    .into(),
            ));
        }
        (_, op) => op,
    };
    connect::check_distinct(&args.servers)?;
    let limits = args.limits.limits().map_err(CliError::BadInput)?;
    let cookie = cookie::from_args(&args.cookie)?;
    connect::use_tls(&args.tls)?;
    let node = connect::client_node(&cookie, &args.servers).await?;
    let client = client::start(
        &node,
        connect::names(&args.servers),
        ClientTimeouts::default(),
    )
    .map_err(|e| CliError::Start {
        name: node.name().to_string(),
        reason: e.to_string(),
    })?
    .with_limits(limits);
    let session = Session {
        client,
        servers: args.servers,
        cookie,
        timeout: args.timeout,
        cookie_proven: AtomicBool::new(false),
    };
    let outcome = match op {
        Some(op) => session.single(op).await,
        None => session.pipe().await,
    };
    node.stop();
    outcome
}

/// What every operation of this command needs.
struct Session {
    client: Client,
    servers: Vec<Endpoint>,
    cookie: String,
    timeout: Duration,
    cookie_proven: AtomicBool,
}

impl Session {
    /// Runs one operation with the deadline; gives up early when no server takes our
    /// cookie.
    /// Once an operation succeeded the cookie is known to be good and slow operations
    /// are no longer probed.
    async fn perform(&self, op: &OpLine) -> Result<Result<String, ClientError>, probe::Report> {
        let work = self
            .client
            .run(op.kind, &op.key, &op.value, Some(self.timeout));
        let done = if self.cookie_proven.load(Ordering::Relaxed) {
            Ok(work.await)
        } else {
            probe::unless_refused(work, &self.servers, &self.cookie).await
        };
        if matches!(done, Ok(Ok(_))) {
            self.cookie_proven.store(true, Ordering::Relaxed);
        }
        done
    }

    /// The one-line message for an operation that timed out, with what a probe found.
    async fn timeout_message(&self) -> String {
        let names: Vec<&str> = self.servers.iter().map(|s| s.name.as_str()).collect();
        let report = probe::probe_all(&self.servers, &self.cookie).await;
        format!(
            "timeout: no result within {:?} from {} ({}); the operation may still take effect",
            self.timeout,
            names.join(", "),
            report.summary()
        )
    }

    async fn single(&self, op: OpCommand) -> Result<(), CliError> {
        let op = match op {
            OpCommand::Read { key } => OpLine {
                kind: OpKind::Read,
                key,
                value: String::new(),
            },
            OpCommand::Write { key, value } => OpLine {
                kind: OpKind::Write,
                key,
                value,
            },
            OpCommand::WriteHash { key, value } => OpLine {
                kind: OpKind::WriteHash,
                key,
                value,
            },
        };
        match self.perform(&op).await {
            Ok(Ok(result)) => output::line(&result).map_err(CliError::io("writing stdout")),
            Ok(Err(ClientError::Timeout)) => Err(CliError::Timeout(self.timeout_message().await)),
            Ok(Err(e @ ClientError::TooLarge(_))) => Err(CliError::BadInput(e.to_string())),
            Ok(Err(e)) => Err(CliError::Unreachable(e.to_string())),
            Err(report) => Err(CliError::Unreachable(report.summary())),
        }
    }

    /// One operation per stdin line, in order; one JSON line each. Stops (with an error)
    /// after the line of an operation no server would take because of our cookie.
    async fn pipe(&self) -> Result<(), CliError> {
        let client_id = rand::random::<u64>() >> 11; // fits a JSON number exactly
        let mut stdin = BufReader::new(tokio::io::stdin());
        let mut raw = Vec::new();
        let mut warned = false;
        loop {
            raw.clear();
            let n = stdin
                .read_until(b'\n', &mut raw)
                .await
                .map_err(CliError::io("reading stdin"))?;
            if n == 0 {
                return Ok(());
            }
            let line = strip_line_end(&raw);
            let (record, refused) = match std::str::from_utf8(line) {
                Err(_) => (
                    output::malformed_record(
                        "the line is not UTF-8",
                        &String::from_utf8_lossy(line),
                    ),
                    None,
                ),
                Ok(text) => match op_line::parse(text) {
                    Err(why) => (output::malformed_record(&why, text), None),
                    Ok(op) => self.piped(client_id, &op, &mut warned).await,
                },
            };
            output::line(&record).map_err(CliError::io("writing stdout"))?;
            if let Some(report) = refused {
                return Err(CliError::Unreachable(report.summary()));
            }
        }
    }

    /// Runs one piped operation; returns its JSON line, and the probe's report when every
    /// server refused our cookie. The first timeout is explained once in a warning.
    async fn piped(
        &self,
        client_id: u64,
        op: &OpLine,
        warned: &mut bool,
    ) -> (String, Option<probe::Report>) {
        let call = output::now_micros();
        let done = self.perform(op).await;
        let ret = output::now_micros();
        let (outcome, refused) = match done {
            Ok(Ok(result)) => (PipeOutcome::Done(result), None),
            Ok(Err(ClientError::Timeout)) => {
                if !*warned {
                    *warned = true;
                    log::warn!("{}", self.timeout_message().await);
                }
                (PipeOutcome::Failed("timeout".into()), None)
            }
            Ok(Err(e)) => (PipeOutcome::Failed(e.to_string()), None),
            Err(report) => (
                PipeOutcome::Failed("connection refused: wrong cookie?".into()),
                Some(report),
            ),
        };
        let record =
            output::pipe_record(client_id, op.kind, &op.key, &op.value, &outcome, call, ret);
        (record, refused)
    }
}

/// The line without its `\n` or `\r\n`.
fn strip_line_end(raw: &[u8]) -> &[u8] {
    let line = raw.strip_suffix(b"\n").unwrap_or(raw);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::strip_line_end;

    #[test]
    fn line_ends_are_stripped_but_nothing_else() {
        assert_eq!(strip_line_end(b"write k v\n"), b"write k v");
        assert_eq!(strip_line_end(b"write k v\r\n"), b"write k v");
        assert_eq!(strip_line_end(b"write k \n"), b"write k ");
        assert_eq!(strip_line_end(b"read k"), b"read k");
    }
}
