//! `paxoskv node`: one server node in this OS process (Paxos peer, kv server, DB manager
//! under the kv supervisor) on TCP, until SIGINT or SIGTERM, or until the node cannot go
//! on: its top supervisor `node_sup` ended (as an OTP node stops when its application's
//! top supervisor dies), or its cluster refused it (another member list, or a restart
//! under a name the members remember). Those exit 1 with the reason on stderr.

use crate::cli::args::NodeArgs;
use crate::cli::endpoints::{self, Endpoint};
use crate::cli::error::CliError;
use crate::cli::signals::ShutdownSignals;
use crate::cli::{connect, cookie, data_dir, observe, output};
use kv_app::{KvServer, Limits, PaxosMode, ServerOptions, StorageMode};
use paxoskv::observer::reading::Member;
use runtime::transport::tcp::{TcpConfig, TcpTransport};
use runtime::{Node, NodeName, NodeRole, Pid};
use std::collections::BTreeSet;
use std::net::SocketAddr;

/// Runs the command.
pub async fn run(args: NodeArgs) -> Result<(), CliError> {
    let name = endpoints::qualify(&args.name, &args.listen.ip().to_string());
    let others = other_peers(&name, args.listen, &args.peers)?;
    let limits = args.limits.limits().map_err(CliError::BadInput)?;
    let cookie = cookie::from_args(&args.cookie)?;
    connect::use_tls(&args.tls)?;
    let mut signals =
        ShutdownSignals::install().map_err(CliError::io("installing signal handlers"))?;
    let cluster = data_dir::cluster_identity(
        others
            .iter()
            .map(|p| p.name.as_str())
            .chain(std::iter::once(name.as_str())),
    );
    let storage = data_dir::storage_for(&args.storage, &name, true, &cluster)?;
    let started = start_server(
        &name,
        args.listen,
        &others,
        &cookie,
        args.paxos.mode,
        limits,
        storage,
    )
    .await?;
    data_dir::announce(&started.server);
    let addr = started.addr;
    let members: Vec<Member> = std::iter::once(Member {
        name: name.clone(),
        addr,
    })
    .chain(others.iter().map(|p| Member {
        name: p.name.clone(),
        addr: p.addr,
    }))
    .collect();
    let observer = match observe::start(&args.http, None, &started.node, members, &cookie).await {
        Ok(o) => o,
        Err(e) => {
            started.server.shutdown().await;
            return Err(e);
        }
    };
    output::line(&format!("ready {name} {addr}")).map_err(CliError::io("writing stdout"))?;
    if let Some(o) = &observer {
        observe::announce(o)?;
    }
    let stopped = |reason: String| CliError::Stopped {
        node: name.clone(),
        reason,
    };
    tokio::select! {
        why = signals.wait() => {
            log::info!("{name}: {why}: stopping");
            started.server.shutdown().await;
            Ok(())
        }
        reason = supervisor_ended(&started.node, started.server.supervisor()) => {
            let reason = format!("its top supervisor node_sup ended ({reason})");
            log::error!("{name}: {reason}: the node stops");
            started.node.stop();
            Err(stopped(reason))
        }
        why = started.transport.refused() => {
            started.node.stop();
            Err(stopped(format!("refused by the cluster: {why}")))
        }
    }
}

/// Waits until the supervisor `sup` ends, and says why.
pub async fn supervisor_ended(node: &Node, sup: &Pid) -> String {
    let mut watcher = node.attach();
    let mref = watcher.monitor(sup);
    match watcher
        .receive_match::<runtime::Down>(None, |d| d.mref == mref)
        .await
    {
        Some(down) => format!("{:?}", down.reason),
        None => "its watcher was stopped".to_string(),
    }
}

/// The peers other than `me`; `me` may be listed (at its own address, if given one).
pub fn other_peers(
    me: &str,
    listen: SocketAddr,
    peers: &[Endpoint],
) -> Result<Vec<Endpoint>, CliError> {
    connect::check_distinct(peers)?;
    let mut others: Vec<Endpoint> = Vec::new();
    for p in peers {
        if p.name == me {
            if p.addr != listen && listen.port() != 0 {
                log::warn!(
                    "{me} is listed in --peers at {} but listens on {listen}",
                    p.addr
                );
            }
        } else if !others.contains(p) {
            others.push(p.clone());
        }
    }
    Ok(others)
}

/// A server node started by [`start_server`].
pub struct Started {
    pub node: Node,
    pub server: KvServer,
    pub addr: SocketAddr,
    pub transport: TcpTransport,
}

/// Starts a server node named `name` listening on `listen`, that knows `others`, and the
/// kv application on it, running Paxos in `mode`, its state kept where `storage` says. The Paxos peer list is the sorted set of
/// every name, so every node computes the same order (and agrees on the leader, the
/// first); the transport is given the same list, so that a node started with another one
/// is refused.
pub async fn start_server(
    name: &str,
    listen: SocketAddr,
    others: &[Endpoint],
    cookie: &str,
    mode: PaxosMode,
    limits: Limits,
    storage: StorageMode,
) -> Result<Started, CliError> {
    let failed = |reason: String| CliError::Start {
        name: name.to_string(),
        reason,
    };
    let peers: BTreeSet<NodeName> = others
        .iter()
        .map(|p| NodeName::new(&p.name))
        .chain(std::iter::once(NodeName::new(name)))
        .collect();
    // A durable node whose data dir already holds its Paxos log comes back with its
    // promises: its peers may take it back under its old name.
    let recovered =
        matches!(&storage, StorageMode::Durable(dir) if dir.path.join("paxos").exists());
    let base = TcpConfig {
        tls: connect::tls(),
        recovered,
        ..TcpConfig::new(cookie)
            .listen(listen)
            .members(peers.iter().cloned())
    };
    let cfg = others
        .iter()
        .fold(base, |cfg, p| cfg.peer(p.name.as_str(), p.addr));
    let (node, transport) = TcpTransport::start(name, NodeRole::Server, cfg)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let addr = transport.local_addr().unwrap_or(listen);
    let opts = ServerOptions {
        limits,
        ..ServerOptions::with_paxos(mode)
    };
    match kv_app::start_server_with(&node, peers.into_iter().collect(), opts, storage).await {
        Ok(server) => Ok(Started {
            node,
            server,
            addr,
            transport,
        }),
        Err(e) => {
            node.stop();
            Err(failed(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_list_may_or_may_not_name_the_node_itself() {
        let listen: SocketAddr = ([127, 0, 0, 1], 1).into();
        let all = [
            Endpoint::loopback("s1@h", 1),
            Endpoint::loopback("s2@h", 2),
            Endpoint::loopback("s3@h", 3),
        ];
        let others = other_peers("s1@h", listen, &all).expect("valid");
        assert_eq!(others, all[1..].to_vec());
        let others = other_peers("s1@h", listen, &all[1..]).expect("valid");
        assert_eq!(others, all[1..].to_vec());
    }

    #[test]
    fn a_name_with_two_addresses_is_refused() {
        let listen: SocketAddr = ([127, 0, 0, 1], 1).into();
        let peers = [Endpoint::loopback("s2@h", 2), Endpoint::loopback("s2@h", 3)];
        assert!(matches!(
            other_peers("s1@h", listen, &peers),
            Err(CliError::BadInput(_))
        ));
    }
}
