//! The observer: a live web page for a running cluster (in the spirit of Erlang's
//! `observer`), with the metrics operators scrape. It looks at every node through its
//! control process twice a second, shows nodes, supervision trees, Paxos and kv figures,
//! a chart and an event log, and lets whoever holds the control token set faults and
//! kill processes. `paxoskv check --html` shares its report renderer ([`report`]).
//!
//! Modules: [`reading`] (one look at the cluster), [`tree`] (supervision trees),
//! [`events`] (what changed between looks), [`rates`] (per-second figures and their
//! history), [`view`] (what the page gets), [`poller`] (the loop), [`metrics`]
//! (`/metrics`), [`token`] (the control token), [`http`] (the routes), [`assets`] (files
//! built into the binary), [`report`] (history timelines).

pub mod assets;
pub mod events;
pub mod http;
pub mod metrics;
pub mod poller;
pub mod rates;
pub mod reading;
pub mod report;
pub mod token;
pub mod tree;
pub mod view;

use reading::Cluster;
use std::net::SocketAddr;
use std::sync::Arc;
use token::ControlToken;
use tokio::sync::watch;

/// Why the observer could not start.
#[derive(Debug, thiserror::Error)]
pub enum ObserverError {
    #[error("the observer would listen on {0}, beyond this machine: give --http-public to mean it")]
    NotLoopback(SocketAddr),
    #[error("the observer cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Where and for whom the observer serves.
pub struct ObserverConfig {
    pub listen: SocketAddr,
    /// Allow an address other than loopback.
    pub public: bool,
    pub cluster: Cluster,
    /// The cluster's cookie, from which the control token is derived.
    pub cookie: String,
}

/// A running observer.
#[derive(Debug)]
pub struct Observer {
    pub addr: SocketAddr,
    token: ControlToken,
}

impl Observer {
    /// The page's address with the control token in its fragment (which browsers keep to
    /// themselves: it never reaches a server or its logs).
    pub fn url_with_token(&self) -> String {
        format!("http://{}/#token={}", self.addr, self.token.hex())
    }
}

/// Binds the address and serves until the process ends.
pub async fn start(cfg: ObserverConfig) -> Result<Observer, ObserverError> {
    if !cfg.listen.ip().is_loopback() && !cfg.public {
        return Err(ObserverError::NotLoopback(cfg.listen));
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ObserverError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ObserverError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let token = ControlToken::new(&cfg.cookie);
    let (tx, rx) = watch::channel(Arc::new(poller::Published::default()));
    let nudge = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(poller::run(cfg.cluster.clone(), tx, nudge.clone()));
    let state = http::AppState {
        cluster: cfg.cluster,
        token: token.clone(),
        latest: rx,
        nudge,
        port: addr.port(),
        any_host: !addr.ip().is_loopback(),
    };
    let app = http::router(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            log::warn!("observer: the HTTP server stopped: {e}");
        }
    });
    log::info!("observer: serving on http://{addr}/");
    Ok(Observer { addr, token })
}
