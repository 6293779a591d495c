//! Finds out why servers do not answer: each is dialed afresh under a throwaway name and
//! the handshake's outcome tells whether it is down, refuses our cookie, or is up (so
//! the cluster itself is stuck, e.g. cut off from its majority). Used only when an
//! operation is slow, so the normal path opens no extra connection.

use crate::cli::endpoints::Endpoint;
use runtime::NodeName;
use runtime::NodeRole;
use runtime::transport::tcp::handshake::{self, HandshakeError, Identity, Refusal};
use runtime::transport::tcp::tls::Secured;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpStream;

/// How long an operation may take before its servers are probed.
pub const PROBE_AFTER: Duration = Duration::from_secs(1);
const CONNECT_LIMIT: Duration = Duration::from_secs(2);
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(3);

/// What one dial found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reachability {
    /// The server took the connection and our cookie.
    Accepted,
    WrongCookie,
    /// Something listens there, but it is another node.
    WrongNode(String),
    /// The handshake failed otherwise.
    Handshake(String),
    /// No connection could be opened.
    Unreachable(String),
}

/// What the probe found for every server.
#[derive(Clone, Debug)]
pub struct Report(pub Vec<(Endpoint, Reachability)>);

impl Report {
    /// Every server refused our cookie: nothing can ever succeed.
    pub fn all_wrong_cookie(&self) -> bool {
        !self.0.is_empty() && self.0.iter().all(|(_, r)| *r == Reachability::WrongCookie)
    }

    /// Some server accepted us.
    pub fn any_accepted(&self) -> bool {
        self.0.iter().any(|(_, r)| *r == Reachability::Accepted)
    }

    /// One line for a user: "connection refused by s1@h, s2@h: wrong cookie?" when every
    /// server refused the cookie, else each server's state.
    pub fn summary(&self) -> String {
        if self.all_wrong_cookie() {
            let names: Vec<&str> = self.0.iter().map(|(e, _)| e.name.as_str()).collect();
            return format!("connection refused by {}: wrong cookie?", names.join(", "));
        }
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(e, r)| {
                let state = match r {
                    Reachability::Accepted => "reachable".to_string(),
                    Reachability::WrongCookie => "refused the connection: wrong cookie?".into(),
                    Reachability::WrongNode(found) => format!("is another node ({found})"),
                    Reachability::Handshake(why) => format!("handshake failed: {why}"),
                    Reachability::Unreachable(why) => format!("unreachable: {why}"),
                };
                format!("{} at {} {state}", e.name, e.addr)
            })
            .collect();
        parts.join("; ")
    }
}

/// Probes every server at once.
pub async fn probe_all(servers: &[Endpoint], cookie: &str) -> Report {
    let probes = servers.iter().map(|s| {
        let (server, cookie) = (s.clone(), cookie.to_string());
        tokio::spawn(async move {
            let r = probe(&server, &cookie).await;
            (server, r)
        })
    });
    let mut found = Vec::with_capacity(servers.len());
    for (probe, server) in probes.collect::<Vec<_>>().into_iter().zip(servers) {
        match probe.await {
            Ok(result) => found.push(result),
            Err(e) => found.push((server.clone(), Reachability::Handshake(e.to_string()))),
        }
    }
    Report(found)
}

/// Dials one server and runs the handshake under a throwaway client name.
pub async fn probe(server: &Endpoint, cookie: &str) -> Reachability {
    let stream = match tokio::time::timeout(CONNECT_LIMIT, TcpStream::connect(server.addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Reachability::Unreachable(e.to_string()),
        Err(_) => return Reachability::Unreachable("timed out connecting".into()),
    };
    let me = Identity::new(
        format!("probe-{:08x}@127.0.0.1", rand::random::<u32>()),
        NodeRole::Client,
        runtime::pid::next_creation(),
    );
    let expected = NodeName::new(&server.name);
    let dialed = async {
        let mut secured = match crate::cli::connect::tls() {
            Some(tls) => tls
                .connect(stream, server.addr)
                .await
                .map_err(|e| HandshakeError::Tls(e.to_string()))?,
            None => Secured::Plain(stream),
        };
        handshake::dial(&mut secured, &me, cookie.as_bytes(), Some(&expected))
            .await
            .map_err(runtime::transport::tcp::tls::tls_failure)
    };
    match tokio::time::timeout(HANDSHAKE_LIMIT, dialed).await {
        Ok(Ok(_)) => Reachability::Accepted,
        Ok(Err(HandshakeError::WrongCookie))
        | Ok(Err(HandshakeError::Refused(Refusal::WrongCookie))) => Reachability::WrongCookie,
        Ok(Err(HandshakeError::WrongPeer { found, .. })) => {
            Reachability::WrongNode(found.to_string())
        }
        Ok(Err(e)) => Reachability::Handshake(e.to_string()),
        Err(_) => Reachability::Handshake("timed out".into()),
    }
}

/// Runs `work`; if it is not done after [`PROBE_AFTER`], probes the servers meanwhile
/// and gives up early (with the report) when every one refuses our cookie.
pub async fn unless_refused<T>(
    work: impl Future<Output = T>,
    servers: &[Endpoint],
    cookie: &str,
) -> Result<T, Report> {
    tokio::pin!(work);
    tokio::select! {
        done = &mut work => return Ok(done),
        () = tokio::time::sleep(PROBE_AFTER) => {}
    }
    let probing = probe_all(servers, cookie);
    tokio::pin!(probing);
    tokio::select! {
        done = &mut work => return Ok(done),
        report = &mut probing => {
            if report.all_wrong_cookie() {
                return Err(report);
            }
        }
    }
    Ok(work.await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_name_every_server() {
        let all_bad = Report(vec![
            (Endpoint::loopback("s1@h", 1), Reachability::WrongCookie),
            (Endpoint::loopback("s2@h", 2), Reachability::WrongCookie),
        ]);
        assert!(all_bad.all_wrong_cookie());
        assert_eq!(
            all_bad.summary(),
            "connection refused by s1@h, s2@h: wrong cookie?"
        );
        let mixed = Report(vec![
            (Endpoint::loopback("s1@h", 1), Reachability::Accepted),
            (
                Endpoint::loopback("s2@h", 2),
                Reachability::Unreachable("refused".into()),
            ),
        ]);
        assert!(!mixed.all_wrong_cookie() && mixed.any_accepted());
        let s = mixed.summary();
        assert!(s.contains("s1@h at 127.0.0.1:1 reachable"), "{s}");
        assert!(
            s.contains("s2@h at 127.0.0.1:2 unreachable: refused"),
            "{s}"
        );
        assert!(!Report(vec![]).all_wrong_cookie());
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let r = probe(&Endpoint::loopback("s1@127.0.0.1", port), "c").await;
        assert!(matches!(r, Reachability::Unreachable(_)), "{r:?}");
    }
}
