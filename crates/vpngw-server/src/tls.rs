//! HTTPS for the API, with rustls.
//!
//! The certificate comes from `tls_cert` / `tls_key` (PEM files), or with `tls = "self-signed"`
//! (`--tls self-signed`) from a CA that vpngw makes at its first start in `<data_dir>/tls/`:
//! `ca.pem` is what a client trusts, `server.pem` / `server.key` what the server presents
//! (remade when missing, when its names change, or a month before it expires).
//!
//! One port serves both protocols: a connection whose first byte opens a TLS handshake record
//! is TLS, any other is plain HTTP. Once TLS is on, plain HTTP is served to loopback peers
//! only (local scripts and tests); any other peer gets `InvalidProtocol.NeedSsl`, so that no
//! answer carrying a pre-shared key crosses a network in the clear.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;

/// How long a new connection may take to send its first byte and finish a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE: u8 = 0x16;

/// The TLS side of the API listener.
pub struct Tls {
    acceptor: TlsAcceptor,
    /// The CA a client should trust, when vpngw made the certificate.
    pub ca: Option<PathBuf>,
    /// The certificate the server presents.
    pub cert: PathBuf,
}

/// The configured TLS, or `None` for plain HTTP only.
pub fn load(cfg: &Config, listen: &str) -> anyhow::Result<Option<Tls>> {
    let (cert, key, ca) = match (cfg.tls.as_deref(), &cfg.tls_cert, &cfg.tls_key) {
        (None | Some("off") | Some(""), None, None) => return Ok(None),
        (None | Some("files"), Some(c), Some(k)) => (c.clone(), k.clone(), None),
        (Some("self-signed"), None, None) => {
            let dir = cfg.data_dir.join("tls");
            let names = alt_names(listen);
            self_signed(&dir, &names)?;
            (dir.join("server.pem"), dir.join("server.key"), Some(dir.join("ca.pem")))
        }
        (Some("self-signed"), _, _) => bail!("tls = \"self-signed\" makes its own certificate: leave tls_cert and tls_key out"),
        (None | Some("files"), _, _) => bail!("tls_cert and tls_key go together: set both, or neither"),
        (Some(other), _, _) => bail!("tls = {other:?} is not one of \"off\", \"files\", \"self-signed\""),
    };
    let acceptor = acceptor(&cert, &key)?;
    Ok(Some(Tls { acceptor, ca, cert }))
}

fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(cert).with_context(|| format!("read tls_cert {}", cert.display()))?.collect::<Result<_, _>>().with_context(|| format!("parse tls_cert {}", cert.display()))?;
    if chain.is_empty() {
        bail!("tls_cert {} holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("read tls_key {} (PEM: PKCS#8, PKCS#1 or SEC1)", key.display()))?;
    // ring rather than aws-lc-rs: no C build beyond `cc` on a fresh machine. rustls 0.23.48
    // marks ring's provider deprecated for its lack of post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("tls_key is not the key of tls_cert")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The names a self-signed certificate carries: localhost, the loopback addresses, this host's
/// name, and the listen address when it is a specific one.
fn alt_names(listen: &str) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            names.push(h.to_string());
        }
    }
    if let Ok(addr) = listen.parse::<SocketAddr>() {
        if !addr.ip().is_unspecified() {
            names.push(addr.ip().to_string());
        }
    }
    names.sort();
    names.dedup();
    names
}

/// Makes (or keeps) the CA and the server certificate in `dir`.
fn self_signed(dir: &Path, names: &[String]) -> anyhow::Result<()> {
    use vpngw_model::pki;
    crate::config::private_dir(dir)?;
    let (ca_pem, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    if !ca_pem.exists() || !ca_key.exists() {
        let ca = pki::new_ca("vpngw API CA", Duration::from_secs(10 * 365 * 86400)).context("make the TLS CA")?;
        write_private(&ca_key, &ca.key_pem)?;
        std::fs::write(&ca_pem, &ca.cert_pem).with_context(|| format!("write {}", ca_pem.display()))?;
        let _ = std::fs::remove_file(dir.join("server.pem"));
    }
    let (cert, key, names_file) = (dir.join("server.pem"), dir.join("server.key"), dir.join("server.names"));
    let wanted = names.join("\n");
    let fresh = std::fs::read_to_string(&names_file).is_ok_and(|n| n == wanted) && cert_valid_for(&cert, Duration::from_secs(30 * 86400));
    if !fresh || !key.exists() {
        let ca_cert = std::fs::read_to_string(&ca_pem)?;
        let ca_key_pem = std::fs::read_to_string(&ca_key)?;
        let issued = pki::issue_for(&ca_cert, &ca_key_pem, "vpngw API", names, pki::Role::Server, Duration::from_secs(365 * 86400)).context("issue the TLS server certificate")?;
        write_private(&key, &issued.key_pem)?;
        std::fs::write(&cert, format!("{}{}", issued.cert_pem, ca_cert)).with_context(|| format!("write {}", cert.display()))?;
        std::fs::write(&names_file, wanted)?;
    }
    Ok(())
}

/// Whether the first certificate of a PEM file is still valid `margin` from now.
fn cert_valid_for(path: &Path, margin: Duration) -> bool {
    let Ok(text) = std::fs::read(path) else { return false };
    let Ok(block) = pem::parse(&text) else { return false };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(block.contents()) else { return false };
    let deadline = chrono::Utc::now().timestamp() + margin.as_secs() as i64;
    cert.validity().not_after.timestamp() > deadline
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).with_context(|| format!("write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// The API's listener: plain TCP, or TCP with TLS told apart by the first byte.
pub enum ApiListener {
    Plain(TcpListener),
    Tls(Listener),
}

/// A connection, plain or TLS.
pub trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// The API's listener with TLS on: accepts TCP, tells TLS from plain HTTP by the first byte,
/// and hands axum connections that finished their handshake. Handshakes run in their own tasks
/// under a deadline, so a slow or silent client holds up no one else.
pub struct Listener {
    rx: tokio::sync::mpsc::Receiver<(Box<dyn Conn>, SocketAddr)>,
    local: SocketAddr,
}

impl Listener {
    pub fn new(tcp: TcpListener, tls: &Tls, host_id: String) -> std::io::Result<Listener> {
        let local = tcp.local_addr()?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let acceptor = tls.acceptor.clone();
        let host_id: Arc<str> = host_id.into();
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "Accept failed.");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let (tx, acceptor, host_id) = (tx.clone(), acceptor.clone(), host_id.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, classify(stream, peer, &acceptor)).await {
                        Ok(Ok(Accepted::Conn(conn))) => {
                            let _ = tx.send((conn, peer)).await;
                        }
                        Ok(Ok(Accepted::NeedSsl(stream))) => need_ssl(stream, &host_id).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed."),
                        Err(_) => tracing::debug!(%peer, "Connection sent nothing in time."),
                    }
                });
            }
        });
        Ok(Listener { rx, local })
    }
}

enum Accepted {
    Conn(Box<dyn Conn>),
    NeedSsl(TcpStream),
}

async fn classify(stream: TcpStream, peer: SocketAddr, acceptor: &TlsAcceptor) -> std::io::Result<Accepted> {
    let _ = stream.set_nodelay(true);
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    if first[0] == TLS_HANDSHAKE {
        return Ok(Accepted::Conn(Box::new(acceptor.accept(stream).await?)));
    }
    if peer.ip().is_loopback() {
        return Ok(Accepted::Conn(Box::new(stream)));
    }
    Ok(Accepted::NeedSsl(stream))
}

/// Answers every plain-HTTP request of a non-loopback peer with `InvalidProtocol.NeedSsl`.
async fn need_ssl(stream: TcpStream, host_id: &str) {
    use http_body_util::Full;
    let host_id = host_id.to_string();
    let service = hyper::service::service_fn(move |_req| {
        let body = vpngw_api::render::render_error(vpngw_api::render::Format::Json, &vpngw_service::ids::request_id(), &host_id, &vpngw_api::ApiError::new(vpngw_api::Code::NeedSsl));
        async move { hyper::Response::builder().status(400).header("content-type", "application/json;charset=utf-8").body(Full::new(bytes::Bytes::from(body))) }
    });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn).await;
}

impl axum::serve::Listener for Listener {
    type Io = Box<dyn Conn>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The acceptor task ended: nothing will come again.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("vpngw-tls-{}", uuid::Uuid::new_v4()));
        let names = alt_names("127.0.0.1:8443");
        self_signed(&dir, &names).unwrap();
        let first = std::fs::read_to_string(dir.join("server.pem")).unwrap();
        acceptor(&dir.join("server.pem"), &dir.join("server.key")).unwrap();
        self_signed(&dir, &names).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("server.pem")).unwrap(), first, "kept across starts");
        let mut more = names.clone();
        more.push("10.9.8.7".into());
        self_signed(&dir, &more).unwrap();
        assert_ne!(std::fs::read_to_string(dir.join("server.pem")).unwrap(), first, "remade for new names");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Plain HTTP from a peer that is not loopback gets the error envelope, not the API.
    #[tokio::test]
    async fn plain_http_from_another_host_needs_ssl() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = std::env::temp_dir().join(format!("vpngw-tls-{}", uuid::Uuid::new_v4()));
        self_signed(&dir, &alt_names("")).unwrap();
        let acceptor = acceptor(&dir.join("server.pem"), &dir.join("server.key")).unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"GET /?Action=DescribeRegions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).await.unwrap();
            out
        });
        let (stream, _) = tcp.accept().await.unwrap();
        let other_host: SocketAddr = "203.0.113.9:40000".parse().unwrap();
        let Accepted::NeedSsl(stream) = classify(stream, other_host, &acceptor).await.unwrap() else { panic!("plain HTTP from another host was served") };
        need_ssl(stream, "h").await;
        let answer = client.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("\"Code\":\"InvalidProtocol.NeedSsl\""), "{answer}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("vpngw-tls-{}", uuid::Uuid::new_v4()));
        self_signed(&dir, &alt_names("")).unwrap();
        let e = acceptor(&dir.join("server.pem"), &dir.join("ca.key")).err().expect("mismatched key");
        assert!(format!("{e:#}").contains("not the key"), "{e:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
