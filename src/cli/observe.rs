//! Starts the observer page for `node --http` and `cluster`, and prints its address with
//! the control token ("observer URL").

use crate::cli::args::HttpArgs;
use crate::cli::error::CliError;
use crate::cli::output;
use paxoskv::observer::reading::{Cluster, Member};
use paxoskv::observer::{self, Observer, ObserverConfig, ObserverError};
use runtime::Node;
use std::net::SocketAddr;

/// Serves the observer for `members`, asking them from `caller`, on `http.http` (or
/// `fallback`, and a free port if that one is taken). `None` when there is nowhere to
/// serve it.
pub async fn start(
    http: &HttpArgs,
    fallback: Option<SocketAddr>,
    caller: &Node,
    members: Vec<Member>,
    cookie: &str,
) -> Result<Option<Observer>, CliError> {
    let Some(listen) = http.http.or(fallback) else {
        return Ok(None);
    };
    let cluster = Cluster {
        caller: caller.clone(),
        members,
    };
    let config = |listen| ObserverConfig {
        listen,
        public: http.http_public,
        cluster: cluster.clone(),
        cookie: cookie.to_string(),
    };
    let started = match observer::start(config(listen)).await {
        Err(ObserverError::Bind { addr, source }) if http.http.is_none() => {
            log::warn!("the observer cannot use {addr} ({source}): it takes a free port");
            let mut any = addr;
            any.set_port(0);
            observer::start(config(any)).await
        }
        other => other,
    };
    let observer = started.map_err(|e| match e {
        ObserverError::NotLoopback(_) => CliError::BadInput(e.to_string()),
        other => CliError::Start {
            name: "observer".into(),
            reason: other.to_string(),
        },
    })?;
    Ok(Some(observer))
}

/// Prints "observer URL" (the URL with the token in its fragment).
pub fn announce(observer: &Observer) -> Result<(), CliError> {
    output::line(&format!("observer {}", observer.url_with_token()))
        .map_err(CliError::io("writing stdout"))
}
