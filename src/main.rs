//! `paxoskv`: the command line of the replicated key-value service (see `paxoskv --help`
//! and docs/operations.md).

mod cli;

fn main() {
    let code = cli::main();
    std::process::exit(code);
}
