//! TLS under the cookie handshake, with certificates made at test time (rcgen) and read
//! from files as a node reads them: nodes with certificates from the cluster's CA talk;
//! a node whose certificate another CA signed is refused on both sides; with mutual
//! authentication required, a node without a certificate the CA signed is refused.

use runtime::transport::tcp::tls::{TlsFiles, TlsSettings};
use runtime::transport::tcp::{TcpConfig, TcpTransport};
use runtime::{Node, NodeName, NodeRole, Process};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

const COOKIE: &str = "tcp-tls-test-cookie";
const WAIT: Duration = Duration::from_secs(20);

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Note(u64);

/// A directory of its own under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("paxoskv-tls-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CA that signs certificates for 127.0.0.1.
struct Ca {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("key");
        Ca {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).expect("CA"),
        }
    }

    /// Writes a certificate for 127.0.0.1 signed by this CA, its key and the CA
    /// certificate under `dir/prefix.*`; returns the files.
    fn issue(&self, dir: &Path, prefix: &str, trusted_ca: &Ca, mutual: bool) -> TlsFiles {
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        let files = TlsFiles {
            cert: dir.join(format!("{prefix}.crt")),
            key: dir.join(format!("{prefix}.key")),
            ca: dir.join(format!("{prefix}-ca.crt")),
            require_client_cert: mutual,
        };
        std::fs::write(&files.cert, cert.pem()).expect("write cert");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        std::fs::write(&files.ca, trusted_ca.issuer.pem()).expect("write CA");
        files
    }
}

async fn start(name: &str, files: &TlsFiles) -> (Node, TcpTransport) {
    let tls = TlsSettings::from_files(files).expect("TLS from files");
    let cfg = TcpConfig {
        tls: Some(tls),
        ..TcpConfig::new(COOKIE).listen(SocketAddr::from(([127, 0, 0, 1], 0)))
    };
    TcpTransport::start(name, NodeRole::Server, cfg)
        .await
        .expect("node starts")
}

/// Sends notes from `from` to `to`'s inbox until one arrives; false if none did.
async fn reach(from: &Node, to: &NodeName, inbox: &mut Process, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        from.send(None, ("inbox", to.clone()), Note(n));
        if inbox
            .receive_match::<Note>(Some(Duration::from_millis(200)), |x| x.0 == n)
            .await
            .is_some()
        {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_the_cas_certificates_talk_and_a_wrong_certificate_is_refused() {
    let _ = env_logger::builder().is_test(true).try_init();
    let dir = TempDir::new();
    let (ca, other_ca) = (Ca::new("cluster CA"), Ca::new("someone else's CA"));
    let (na, ta) = start("a@127.0.0.1", &ca.issue(&dir.0, "a", &ca, true)).await;
    let (nb, tb) = start("b@127.0.0.1", &ca.issue(&dir.0, "b", &ca, true)).await;
    let a_addr = ta.local_addr().expect("listening");
    tb.add_peer("a@127.0.0.1", a_addr);
    let mut inbox = na.attach();
    inbox.register("inbox").expect("register");
    assert!(
        reach(&nb, na.name(), &mut inbox, WAIT).await,
        "b never reached a"
    );
    // Both ways, and a big frame across many TLS records.
    let mut b_inbox = nb.attach();
    b_inbox.register("inbox").expect("register");
    assert!(
        reach(&na, nb.name(), &mut b_inbox, WAIT).await,
        "a never reached b"
    );
    let big = vec![7u8; 3 * 1024 * 1024];
    na.send(None, ("inbox", nb.name().clone()), big.clone());
    let got = b_inbox
        .receive_type::<Vec<u8>>(Some(WAIT))
        .await
        .expect("the big frame");
    assert!(got == big);

    // c's certificate is signed by another CA (it trusts the cluster's): refused.
    let (nc, tc) = start("c@127.0.0.1", &other_ca.issue(&dir.0, "c", &ca, false)).await;
    tc.add_peer("a@127.0.0.1", a_addr);
    let refused_before = ta.stats().refused;
    assert!(!reach(&nc, na.name(), &mut inbox, Duration::from_secs(2)).await);
    assert!(ta.stats().refused > refused_before, "{:?}", ta.stats());
    assert!(tc.stats().dropped > 0, "{:?}", tc.stats());
    assert!(!na.connected_nodes().contains(nc.name()));

    // d trusts another CA: it refuses a's certificate.
    let (nd, td) = start("d@127.0.0.1", &ca.issue(&dir.0, "d", &other_ca, false)).await;
    td.add_peer("a@127.0.0.1", a_addr);
    assert!(!reach(&nd, na.name(), &mut inbox, Duration::from_secs(2)).await);
    assert!(!na.connected_nodes().contains(nd.name()));

    for n in [na, nb, nc, nd] {
        n.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_peer_is_refused_by_a_tls_node() {
    let _ = env_logger::builder().is_test(true).try_init();
    let dir = TempDir::new();
    let ca = Ca::new("cluster CA");
    let (na, ta) = start("a@127.0.0.1", &ca.issue(&dir.0, "a", &ca, true)).await;
    let cfg = TcpConfig::new(COOKIE).peer("a@127.0.0.1", ta.local_addr().expect("listening"));
    let (plain, _) = TcpTransport::start("p@127.0.0.1", NodeRole::Client, cfg)
        .await
        .expect("starts");
    let mut inbox = na.attach();
    inbox.register("inbox").expect("register");
    let refused_before = ta.stats().refused;
    assert!(!reach(&plain, na.name(), &mut inbox, Duration::from_secs(2)).await);
    assert!(ta.stats().refused > refused_before, "{:?}", ta.stats());
    plain.stop();
    na.stop();
}
