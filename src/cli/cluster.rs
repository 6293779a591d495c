//! `paxoskv cluster`: N server nodes `s1..sN@127.0.0.1` in this process, each on its own
//! TCP port, then the shell (on a terminal) or serving until SIGINT or SIGTERM.

use crate::cli::args::ClusterArgs;
use crate::cli::endpoints::Endpoint;
use crate::cli::error::CliError;
use crate::cli::shell::{self, Member, Session};
use crate::cli::signals::ShutdownSignals;
use crate::cli::{connect, cookie, data_dir, node, observe, output};
use kv_app::client::{self, ClientTimeouts};
use paxoskv::observer::reading::Member as Watched;
use std::io::IsTerminal;
use std::time::Duration;

/// How long a shell operation may take unless the user says otherwise.
const SHELL_OP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the command.
pub async fn run(args: ClusterArgs) -> Result<(), CliError> {
    let layout = layout(args.nodes, args.base_port)?;
    let limits = args.limits.limits().map_err(CliError::BadInput)?;
    let cookie = cookie::from_args(&args.cookie)?;
    connect::use_tls(&args.tls)?;
    let mut signals =
        ShutdownSignals::install().map_err(CliError::io("installing signal handlers"))?;
    let mut members: Vec<Member> = Vec::with_capacity(layout.len());
    let mut watchers = Vec::with_capacity(layout.len());
    let cluster = data_dir::cluster_identity(layout.iter().map(|e| e.name.as_str()));
    for me in &layout {
        let others: Vec<Endpoint> = layout.iter().filter(|e| *e != me).cloned().collect();
        let storage = match data_dir::storage_for(&args.storage, &me.name, false, &cluster) {
            Ok(storage) => storage,
            Err(e) => {
                stop(&members);
                return Err(e);
            }
        };
        let started = node::start_server(
            &me.name,
            me.addr,
            &others,
            &cookie,
            args.paxos.mode,
            limits,
            storage,
        )
        .await;
        if let Ok(started) = &started {
            data_dir::announce(&started.server);
        }
        match started {
            Ok(started) => {
                watchers.push(watch_supervisor(&started));
                members.push(Member {
                    name: me.name.clone(),
                    addr: started.addr,
                    node: started.node,
                    server: started.server,
                })
            }
            Err(e) => {
                stop(&members);
                return Err(e);
            }
        }
    }
    let observer = if args.no_http {
        None
    } else {
        let watched = members
            .iter()
            .map(|m| Watched {
                name: m.name.clone(),
                addr: m.addr,
            })
            .collect();
        let fallback: std::net::SocketAddr = ([127, 0, 0, 1], args.base_port).into();
        match observe::start(
            &args.http,
            Some(fallback),
            &members[0].node,
            watched,
            &cookie,
        )
        .await
        {
            Ok(o) => o,
            Err(e) => {
                stop(&members);
                return Err(e);
            }
        }
    };
    let announce = || -> std::io::Result<()> {
        for m in &members {
            output::line(&format!("ready {} {}", m.name, m.addr))?;
        }
        output::line("cluster ready")?;
        if let Some(o) = &observer {
            output::line(&format!("observer {}", o.url_with_token()))?;
        }
        Ok(())
    };
    if let Err(e) = announce() {
        stop(&members);
        return Err(CliError::io("writing stdout")(e));
    }
    let terminal = std::io::stdin().is_terminal();
    let shell = args.shell || (terminal && !args.no_shell);
    if !shell {
        let why = signals.wait().await;
        log::info!("{why}: stopping the cluster");
        stop(&members);
        return Ok(());
    }
    let client_node = match connect::client_node(&cookie, &layout).await {
        Ok(n) => n,
        Err(e) => {
            stop(&members);
            return Err(e);
        }
    };
    let client = client::start_unregistered(
        &client_node,
        connect::names(&layout),
        ClientTimeouts::default(),
    );
    let servers: Vec<kv_app::KvServer> = members.iter().map(|m| m.server.clone()).collect();
    let session = Session {
        members,
        client,
        op_timeout: SHELL_OP_TIMEOUT,
    };
    let handle = tokio::runtime::Handle::current();
    let shell_task =
        tokio::task::spawn_blocking(move || shell::run_blocking(handle, session, terminal));
    tokio::select! {
        _ = shell_task => log::info!("the shell ended: stopping the cluster"),
        why = signals.wait() => log::info!("{why}: stopping the cluster"),
    }
    client_node.stop();
    // An orderly shutdown ends each node_sup: that is not a crash to report.
    for w in &watchers {
        w.abort();
    }
    for s in &servers {
        s.shutdown().await;
    }
    Ok(())
}

/// Names and addresses: `s<i>@127.0.0.1` on `127.0.0.1:<base + i>`, i = 1..=n.
pub fn layout(nodes: u16, base_port: u16) -> Result<Vec<Endpoint>, CliError> {
    (1..=nodes)
        .map(|i| {
            let port = base_port.checked_add(i).ok_or_else(|| {
                CliError::BadInput(format!(
                    "--base-port {base_port} leaves no port for node s{i} (ports go up to 65535)"
                ))
            })?;
            Ok(Endpoint {
                name: format!("s{i}@127.0.0.1"),
                addr: ([127, 0, 0, 1], port).into(),
            })
        })
        .collect()
}

/// Stops a node of the cluster whose top supervisor ends, with a log line: the other
/// nodes of the cluster go on, as other OTP nodes do.
fn watch_supervisor(started: &node::Started) -> tokio::task::JoinHandle<()> {
    let (n, sup) = (started.node.clone(), started.server.supervisor().clone());
    tokio::spawn(async move {
        let reason = node::supervisor_ended(&n, &sup).await;
        if !n.is_stopped() {
            log::error!(
                "{}: its top supervisor node_sup ended ({reason}): the node stops",
                n.name()
            );
            n.stop();
        }
    })
}

fn stop(members: &[Member]) {
    for m in members {
        m.node.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_numbered_from_one_above_the_base_port() {
        let l = layout(3, 7100).expect("fits");
        let shown: Vec<String> = l.iter().map(|e| format!("{} {}", e.name, e.addr)).collect();
        assert_eq!(
            shown,
            [
                "s1@127.0.0.1 127.0.0.1:7101",
                "s2@127.0.0.1 127.0.0.1:7102",
                "s3@127.0.0.1 127.0.0.1:7103"
            ]
        );
        assert!(matches!(layout(3, 65534), Err(CliError::BadInput(_))));
    }
}
