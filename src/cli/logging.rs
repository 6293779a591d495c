//! Logs on stderr through env_logger, filtered by `RUST_LOG` (default `warn`).

use env_logger::Env;

/// Default filter for server commands (`node`, `cluster`).
pub const SERVER_DEFAULT: &str = "warn";

/// Default filter for commands that only dial out (`client`, `ctl`, `bench`): the
/// transport's warnings about failed dials repeat at every retry, and these commands
/// report a failed connection themselves, in one line.
pub const CLIENT_DEFAULT: &str = "warn,runtime::transport::tcp=error";

/// Starts logging; `RUST_LOG` overrides `default_filter`.
pub fn init(default_filter: &str) {
    let _ = env_logger::Builder::from_env(Env::default().default_filter_or(default_filter))
        .format_timestamp_millis()
        .try_init();
}
