//! The client side of a command: a client-only TCP node (`client-<hex>@127.0.0.1`,
//! role Client, no listener) that knows the servers' addresses and dials them; and the
//! command's TLS settings, set once at its start (one command per OS process) and used
//! by every node and probe it makes.

use crate::cli::endpoints::Endpoint;
use crate::cli::error::CliError;
use runtime::transport::tcp::tls::TlsSettings;
use runtime::transport::tcp::{TcpConfig, start_node};
use runtime::{Node, NodeName, NodeRole};

static TLS: std::sync::OnceLock<Option<TlsSettings>> = std::sync::OnceLock::new();

/// Sets the command's TLS settings from its flags (once; later calls change nothing).
pub fn use_tls(args: &crate::cli::args::TlsArgs) -> Result<(), CliError> {
    let settings = args.settings().map_err(CliError::BadInput)?;
    let _ = TLS.set(settings);
    Ok(())
}

/// The command's TLS settings, if TLS is on.
pub fn tls() -> Option<TlsSettings> {
    TLS.get().cloned().flatten()
}

/// A fresh client node name.
pub fn client_node_name() -> String {
    format!("client-{:016x}@127.0.0.1", rand::random::<u64>())
}

/// Starts a client-only node that can reach `servers`.
pub async fn client_node(cookie: &str, servers: &[Endpoint]) -> Result<Node, CliError> {
    let name = client_node_name();
    let base = TcpConfig {
        tls: tls(),
        ..TcpConfig::new(cookie)
    };
    let cfg = servers
        .iter()
        .fold(base, |cfg, s| cfg.peer(s.name.as_str(), s.addr));
    let (node, _) = start_node(name.as_str(), NodeRole::Client, cfg)
        .await
        .map_err(|e| CliError::Start {
            name,
            reason: e.to_string(),
        })?;
    Ok(node)
}

/// The servers' node names, in the order given.
pub fn names(servers: &[Endpoint]) -> Vec<NodeName> {
    servers.iter().map(|s| NodeName::new(&s.name)).collect()
}

/// Refuses a server list that names one node at two addresses.
pub fn check_distinct(servers: &[Endpoint]) -> Result<(), CliError> {
    for (i, a) in servers.iter().enumerate() {
        if let Some(b) = servers[..i]
            .iter()
            .find(|b| b.name == a.name && b.addr != a.addr)
        {
            return Err(CliError::BadInput(format!(
                "node {} is given two addresses: {} and {}",
                a.name, b.addr, a.addr
            )));
        }
    }
    Ok(())
}
