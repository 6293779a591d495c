//! `paxoskv`: the command line (filled in by the command-line issue).

fn main() {
    env_logger::init();
    println!("paxoskv: not yet implemented");
}
