//! TLS under the cookie handshake, for traffic between machines: rustls (with the ring
//! provider), certificates and keys from PEM files, the peers' certificates checked
//! against a CA file, and optionally mutual authentication (a node accepts only
//! connections that show a certificate from that CA).
//!
//! A dialer checks the listener's certificate against the IP address it dialed (the
//! certificate needs it as a subject alternative name). The cookie handshake runs on top
//! of TLS unchanged. Once both are through, the socket goes back to the connection's
//! non-blocking direct writes: the connection seals what it sends and opens what it
//! reads with the rustls state kept from the handshake.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Where a node's TLS material is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// This node's certificate chain (PEM).
    pub cert: PathBuf,
    /// This node's private key (PEM).
    pub key: PathBuf,
    /// The CA certificates that sign the peers' certificates (PEM).
    pub ca: PathBuf,
    /// Whether a listener requires a certificate from connecting nodes and clients.
    pub require_client_cert: bool,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} from {path}: {reason}")]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{0}")]
    Config(String),
}

/// A node's TLS configuration, both ways.
#[derive(Clone)]
pub struct TlsSettings {
    pub(crate) server: Arc<rustls::ServerConfig>,
    pub(crate) client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsSettings")
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn file_error(what: &'static str, path: &Path) -> impl FnOnce(String) -> TlsError {
    let path = path.to_path_buf();
    move |reason| TlsError::File { what, path, reason }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |e: rustls::pki_types::pem::Error| e.to_string();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(bad)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>().map_err(bad))
        .map_err(file_error("certificates", path))?;
    if certs.is_empty() {
        return Err(file_error("certificates", path)(
            "no certificate in it".into(),
        ));
    }
    Ok(certs)
}

impl TlsSettings {
    /// Reads the files and builds both sides' configurations.
    pub fn from_files(files: &TlsFiles) -> Result<TlsSettings, TlsError> {
        let chain = certs(&files.cert)?;
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(|e| file_error("a private key", &files.key)(e.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        for ca in certs(&files.ca)? {
            roots
                .add(ca)
                .map_err(|e| file_error("CA certificates", &files.ca)(e.to_string()))?;
        }
        let roots = Arc::new(roots);
        let config = |e: rustls::Error| TlsError::Config(e.to_string());
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(config)?;
        let server = if files.require_client_cert {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots.clone(),
                provider(),
            )
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
            server.with_client_cert_verifier(verifier)
        } else {
            server.with_no_client_auth()
        };
        let server = server
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(config)?;
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(config)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(config)?;
        Ok(TlsSettings {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    /// Opens TLS as the dialer towards `addr`'s IP.
    pub async fn connect(
        &self,
        stream: TcpStream,
        addr: std::net::SocketAddr,
    ) -> io::Result<Secured> {
        let connector = tokio_rustls::TlsConnector::from(self.client.clone());
        let name = ServerName::IpAddress(addr.ip().into());
        let tls = connector.connect(name, stream).await?;
        Ok(Secured::Tls(Box::new(tokio_rustls::TlsStream::Client(tls))))
    }

    /// Opens TLS as the listener.
    pub(crate) async fn accept(&self, stream: TcpStream) -> io::Result<Secured> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.server.clone());
        let tls = acceptor.accept(stream).await?;
        Ok(Secured::Tls(Box::new(tokio_rustls::TlsStream::Server(tls))))
    }
}

/// Names a handshake failure that TLS caused as such: under TLS 1.3 a dialer learns
/// that the listener refused its certificate only from an alert read during the cookie
/// handshake.
pub fn tls_failure(e: super::handshake::HandshakeError) -> super::handshake::HandshakeError {
    use super::frame::FrameError;
    use super::handshake::HandshakeError;
    match e {
        HandshakeError::Frame(FrameError::Io(io))
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) =>
        {
            HandshakeError::Tls(io.to_string())
        }
        other => other,
    }
}

/// A connection during the handshake: plain, or inside TLS.
pub enum Secured {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl Secured {
    /// The socket and, under TLS, the session state to go on with.
    pub fn into_parts(self) -> (TcpStream, Option<rustls::Connection>) {
        match self {
            Secured::Plain(s) => (s, None),
            Secured::Tls(tls) => match *tls {
                tokio_rustls::TlsStream::Client(c) => {
                    let (s, conn) = c.into_inner();
                    (s, Some(rustls::Connection::Client(conn)))
                }
                tokio_rustls::TlsStream::Server(c) => {
                    let (s, conn) = c.into_inner();
                    (s, Some(rustls::Connection::Server(conn)))
                }
            },
        }
    }
}

impl AsyncRead for Secured {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Secured::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Secured::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Secured {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Secured::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Secured::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Secured::Plain(s) => Pin::new(s).poll_flush(cx),
            Secured::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Secured::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Secured::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The sealing and opening of a live connection's bytes.
pub(crate) struct Session(parking_lot::Mutex<rustls::Connection>);

impl Session {
    pub(crate) fn new(mut conn: rustls::Connection) -> Session {
        // The connection bounds what waits to be written; rustls need not.
        conn.set_buffer_limit(None);
        Session(parking_lot::Mutex::new(conn))
    }

    /// Encrypts `plain` and returns the bytes to put on the socket (with anything else
    /// rustls has to send).
    pub(crate) fn seal(&self, plain: &[u8]) -> io::Result<Vec<u8>> {
        let mut conn = self.0.lock();
        if !plain.is_empty() {
            io::Write::write_all(&mut conn.writer(), plain)?;
        }
        let mut out = Vec::with_capacity(plain.len() + 64);
        while conn.wants_write() {
            conn.write_tls(&mut out)?;
        }
        Ok(out)
    }

    /// Decrypts the socket bytes `cipher`, handing the plain bytes to `sink` as they
    /// come. Returns false once the peer closed the TLS session.
    pub(crate) fn open(
        &self,
        mut cipher: &[u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<bool, super::frame::FrameError> {
        let mut conn = self.0.lock();
        let mut plain = [0u8; 16 * 1024];
        let mut drain = |conn: &mut rustls::Connection| -> io::Result<()> {
            loop {
                match io::Read::read(&mut conn.reader(), &mut plain) {
                    Ok(0) => return Ok(()),
                    Ok(n) => sink(&plain[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        };
        // Plain bytes may wait from the handshake, read along with its last message.
        drain(&mut conn)?;
        while !cipher.is_empty() {
            conn.read_tls(&mut cipher)?;
            let state = conn
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            drain(&mut conn)?;
            if state.peer_has_closed() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
