//! TLS client authentication with a key in the element: a rustls `SigningKey` whose every
//! handshake signature is made by the element (through PKCS#11), a client configuration
//! around it, a small HTTPS GET, and — for demonstrations and tests — a rustls server that
//! requires client certificates (chain to given roots, optional CRLs) and answers with the
//! identity it saw.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keyward_ca::x509_read::Certificate;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivateSec1KeyDer, ServerName,
};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection,
    SignatureAlgorithm, SignatureScheme, StreamOwned,
};

use crate::device_key::{DeviceError, DeviceKey, KeyKind};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The TLS signature scheme a device key signs with (as [`DeviceKey::sign`] does).
fn scheme_of(key: &DeviceKey) -> Option<SignatureScheme> {
    use keyward_crypto::Curve;
    Some(match key.kind() {
        KeyKind::Ec(Curve::Secp256r1) => SignatureScheme::ECDSA_NISTP256_SHA256,
        KeyKind::Ec(Curve::Secp384r1) => SignatureScheme::ECDSA_NISTP384_SHA384,
        KeyKind::Ec(Curve::Secp521r1) => SignatureScheme::ECDSA_NISTP521_SHA512,
        KeyKind::Ec(_) => return None,
        KeyKind::Rsa => SignatureScheme::RSA_PKCS1_SHA256,
    })
}

/// The element's key as rustls sees it.
#[derive(Debug)]
struct ElementKey {
    key: Arc<DeviceKey>,
    scheme: SignatureScheme,
}

impl SigningKey for ElementKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered.contains(&self.scheme).then(|| {
            Box::new(ElementSigner {
                key: self.key.clone(),
                scheme: self.scheme,
            }) as Box<dyn Signer>
        })
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self.key.kind() {
            KeyKind::Ec(_) => SignatureAlgorithm::ECDSA,
            KeyKind::Rsa => SignatureAlgorithm::RSA,
        }
    }
}

#[derive(Debug)]
struct ElementSigner {
    key: Arc<DeviceKey>,
    scheme: SignatureScheme,
}

impl Signer for ElementSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.key
            .sign(message)
            .map_err(|e| rustls::Error::General(format!("the element did not sign: {e}")))
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

#[derive(Debug)]
struct Resolver(Arc<CertifiedKey>);

impl ResolvesClientCert for Resolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0
            .key
            .choose_scheme(sigschemes)
            .is_some()
            .then(|| self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn root_store(roots: &[Vec<u8>]) -> Result<RootCertStore, DeviceError> {
    let mut store = RootCertStore::empty();
    for r in roots {
        store.add(CertificateDer::from(r.clone()))?;
    }
    Ok(store)
}

/// A client configuration that authenticates with `key` (its chain as the certificate list)
/// and trusts servers whose chains lead to `server_roots`. An RSA key signs PKCS#1 v1.5, which
/// TLS 1.3 does not allow: such a client speaks TLS 1.2.
pub fn client_config(
    key: Arc<DeviceKey>,
    server_roots: &[Vec<u8>],
) -> Result<Arc<ClientConfig>, DeviceError> {
    let scheme =
        scheme_of(&key).ok_or_else(|| DeviceError::Unsupported(format!("{:?}", key.kind())))?;
    let chain = key
        .chain
        .iter()
        .cloned()
        .map(CertificateDer::from)
        .collect();
    let versions: &[&rustls::SupportedProtocolVersion] = match key.kind() {
        KeyKind::Rsa => &[&rustls::version::TLS12],
        KeyKind::Ec(_) => rustls::DEFAULT_VERSIONS,
    };
    let certified = CertifiedKey::new(chain, Arc::new(ElementKey { key, scheme }));
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)?
        .with_root_certificates(root_store(server_roots)?)
        .with_client_cert_resolver(Arc::new(Resolver(Arc::new(certified))));
    Ok(Arc::new(config))
}

/// `GET` over HTTPS (HTTP/1.1, `Connection: close`): the status code and the body.
pub fn https_get(
    url: &str,
    config: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<(u16, String), DeviceError> {
    let http = |m: &str| DeviceError::Http(m.to_string());
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| http("the URL must start with https://"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']'),
            p.parse::<u16>().map_err(|_| http("bad port"))?,
        ),
        _ => (authority, 443),
    };
    let name = ServerName::try_from(host.to_string()).map_err(|_| http("bad host name"))?;
    let tcp = TcpStream::connect((host, port))?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    let conn = ClientConnection::new(config, name)?;
    let mut tls = StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: keyward\r\n\r\n"
    )?;
    tls.flush()?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        // Peers that close without close_notify: what arrived is the response.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e.into()),
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| http("no HTTP status line"))?;
    Ok((status, body.to_string()))
}

/// A server configuration with `chain` and its SEC1 EC key that requires client certificates
/// leading to `client_roots`, checked against `crls` (the end entity's status).
pub fn server_config(
    chain: &[Vec<u8>],
    key_sec1: &[u8],
    client_roots: &[Vec<u8>],
    crls: &[Vec<u8>],
) -> Result<Arc<ServerConfig>, DeviceError> {
    let mut verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(root_store(client_roots)?),
        provider(),
    );
    if !crls.is_empty() {
        verifier = verifier
            .with_crls(crls.iter().cloned().map(CertificateRevocationListDer::from))
            .only_check_end_entity_revocation();
    }
    let verifier = verifier
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            chain.iter().cloned().map(CertificateDer::from).collect(),
            PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(key_sec1.to_vec())),
        )?;
    Ok(Arc::new(config))
}

/// A TLS server that requires a client certificate and answers any HTTP request with the
/// identity it authenticated (`client: SUBJECT`, `issuer: …`, `serial: …`).
pub struct IdentityServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn answer(conn: ServerConnection, tcp: TcpStream) -> Result<(), DeviceError> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = StreamOwned::new(conn, tcp);
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        let n = tls.read(&mut buf)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let identity = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| {
            Certificate::parse(c).ok().map(|p| {
                let serial: String = p.serial.iter().map(|b| format!("{b:02X}")).collect();
                format!(
                    "client: {}\nissuer: {}\nserial: {}\n",
                    p.subject_text(),
                    p.issuer_text(),
                    serial.trim_start_matches("00")
                )
            })
        })
        .unwrap_or_else(|| "client: (none)\n".to_string());
    write!(
        tls,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{identity}",
        identity.len()
    )?;
    tls.conn.send_close_notify();
    tls.flush()?;
    Ok(())
}

impl IdentityServer {
    /// Serves on a free loopback port until stopped.
    pub fn start(config: Arc<ServerConfig>) -> Result<Self, DeviceError> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(tcp) = stream else { continue };
                match ServerConnection::new(config.clone()) {
                    // A refused client certificate ends that connection only.
                    Ok(conn) => {
                        let _ = answer(conn, tcp);
                    }
                    Err(_) => continue,
                }
            }
        });
        Ok(Self {
            port,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the server and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for IdentityServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
