//! The `paxoskv` command line: parses the arguments, starts logging and the tokio
//! runtime, runs one command, and turns its outcome into an exit code (0 done, 1 failed,
//! 2 bad input) with a one-line message on stderr.

mod args;
mod bench;
mod check;
mod client;
mod cluster;
mod connect;
mod cookie;
mod cpu;
mod ctl;
mod data_dir;
mod endpoints;
mod error;
mod latency;
mod logging;
mod node;
mod observe;
mod op_line;
mod output;
mod probe;
mod shell;
mod signals;

use args::{Cli, Command};
use clap::Parser;
use clap::error::ErrorKind;
use error::CliError;

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return parse_failure(&e),
    };
    if let Command::Check(args) = cli.command {
        // No runtime needed: a pure computation on a file.
        return match check::run(args) {
            Ok(check::Verdict::Linearizable) => 0,
            Ok(check::Verdict::NotLinearizable) => 1,
            Ok(check::Verdict::Unknown) => 3,
            Err(e) => {
                eprintln!("paxoskv: {e}");
                e.exit_code()
            }
        };
    }
    logging::init(match cli.command {
        Command::Cluster(_) | Command::Node(_) => logging::SERVER_DEFAULT,
        _ => logging::CLIENT_DEFAULT,
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("paxoskv: cannot start the tokio runtime: {e}");
            return 1;
        }
    };
    let outcome = runtime.block_on(run(cli.command));
    // The runtime is not dropped: a blocking read of stdin (the pipe, the shell) would
    // make that wait; the caller exits the process right away.
    std::mem::forget(runtime);
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("paxoskv: {e}");
            e.exit_code()
        }
    }
}

async fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Cluster(a) => cluster::run(a).await,
        Command::Node(a) => node::run(a).await,
        Command::Client(a) => client::run(a).await,
        Command::Ctl(a) => ctl::run(a).await,
        Command::Bench(a) => bench::run(a).await,
        Command::Check(_) => Err(CliError::BadInput("check runs outside the runtime".into())),
    }
}

/// Help and version go to stdout (exit 0); errors become one line on stderr (exit 2).
fn parse_failure(e: &clap::Error) -> i32 {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            0
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            2
        }
        _ => {
            eprintln!("paxoskv: {}", args::one_line_error(e));
            2
        }
    }
}
