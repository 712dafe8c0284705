//! The device side: a [`Card`] (the secure element behind whatever transport), the execution of
//! command scripts against it (sans-io), and the POST loop over HTTP(S).

use std::path::PathBuf;
use std::time::Duration;

use crate::codec::{Command, Initiation, Response, ResponseScript, decode_commands};
use crate::{ADMIN_PROTOCOL, CONTENT_TYPE, RamError};

/// The secure element as the client drives it.
pub trait Card {
    /// The ATR the initiation carries.
    fn atr(&mut self) -> Vec<u8>;
    /// One C-APDU in, its R-APDU (data ‖ SW1 SW2) out.
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, String>;
    /// Resets the card, returning its ATR.
    fn reset(&mut self) -> Result<Vec<u8>, String>;
}

/// A server message for the device's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: i64,
    pub text: String,
    pub time_to_completion: Option<u32>,
}

/// What running one command script produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    pub response: ResponseScript,
    /// A notification with a negative id: the server ends the session, nothing is sent back.
    pub stop: Option<Notification>,
}

/// Runs a command script in order, as the reference client does: R-APDUs and ATRs are collected;
/// a card error ends the batch with `E1 { reason }` (the loop goes on); a negative notify stops.
pub fn execute(
    commands: &[Command],
    card: &mut dyn Card,
    on_notify: &mut dyn FnMut(&Notification),
) -> Executed {
    let mut response = ResponseScript::default();
    for c in commands {
        match c {
            Command::Apdu(apdu) => match card.transmit(apdu) {
                Ok(r) => {
                    response.items.push(Response::Apdu(r));
                    response.executed += 1;
                }
                Err(reason) => {
                    response.items.push(Response::Close(reason));
                    break;
                }
            },
            Command::Reset => match card.reset() {
                Ok(atr) => response.items.push(Response::Atr(atr)),
                Err(reason) => {
                    response.items.push(Response::Close(reason));
                    break;
                }
            },
            Command::Notify {
                id,
                text,
                time_to_completion,
            } => {
                let n = Notification {
                    id: *id,
                    text: text.clone(),
                    time_to_completion: *time_to_completion,
                };
                on_notify(&n);
                if n.id < 0 {
                    return Executed {
                        response,
                        stop: Some(n),
                    };
                }
            }
        }
    }
    Executed {
        response,
        stop: None,
    }
}

/// Why a session failed, with the reference client's distinctions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("server did not initiate connection to card (HTTP 504 before any request)")]
    NoConnect,
    #[error("server aborted connection to card (HTTP 504)")]
    ServerAbort,
    #[error("invalid URL (HTTP 404)")]
    InvalidUrl,
    #[error("the card: {0}")]
    Card(String),
    #[error("the server lost the session (HTTP 410) and restarting did not help")]
    SessionLost,
    #[error("unexpected HTTP status {0}")]
    HttpStatus(u16),
    #[error("server ended the session: {text} ({id})")]
    ServerStopped { id: i64, text: String },
    #[error("empty command script from the server")]
    EmptyRequest,
    #[error("malformed command script: {0}")]
    Protocol(#[from] RamError),
    #[error("timeout waiting for the server")]
    Timeout,
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("CA bundle {0}: {1}")]
    CaBundle(PathBuf, String),
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub url: String,
    /// Per HTTP exchange (the reference client's 40 s).
    pub timeout: Duration,
    /// PEM bundle of CAs to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Restarts after the server lost the session (its replica went away).
    pub max_restarts: u32,
}

impl ClientConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout: Duration::from_secs(40),
            ca_file: None,
            max_restarts: 3,
        }
    }
}

/// Counts of a completed session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub round_trips: u64,
    pub apdus: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// An HTTP client set up as the reference client is (cookies on, no redirects, the timeout);
/// `HTTPS_PROXY`/`HTTP_PROXY` from the environment are honoured.
pub fn http_client(cfg: &ClientConfig) -> Result<reqwest::Client, ClientError> {
    let mut b = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(cfg.timeout);
    if let Some(path) = &cfg.ca_file {
        let pem =
            std::fs::read(path).map_err(|e| ClientError::CaBundle(path.clone(), e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| ClientError::CaBundle(path.clone(), e.to_string()))?;
        if certs.is_empty() {
            return Err(ClientError::CaBundle(path.clone(), "no certificate".into()));
        }
        b = b.tls_certs_only(certs);
    }
    b.build().map_err(|e| ClientError::Http(e.to_string()))
}

/// Runs a whole session: initiation, then POST after POST until the server answers 204.
pub async fn connect(
    http: &reqwest::Client,
    cfg: &ClientConfig,
    card: &mut (dyn Card + Send),
    on_notify: &mut (dyn FnMut(&Notification) + Send),
) -> Result<Summary, ClientError> {
    let mut summary = Summary::default();
    let mut restarts = 0;
    let mut body = Initiation::new(card.atr()).encode()?;
    let mut processed = 0u64;
    loop {
        summary.bytes_sent += body.len() as u64;
        let resp = http
            .post(&cfg.url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(reqwest::header::ACCEPT, "*/*")
            .header("X-Admin-Protocol", ADMIN_PROTOCOL)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    return ClientError::Timeout;
                }
                // The causes say what went wrong (refused, TLS verification, …).
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    text.push_str(&format!(": {s}"));
                    source = s.source();
                }
                if e.is_connect() {
                    ClientError::Connect(text)
                } else {
                    ClientError::Http(text)
                }
            })?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        summary.round_trips += 1;
        summary.bytes_received += bytes.len() as u64;
        match status {
            200 => {
                if bytes.is_empty() {
                    return Err(ClientError::EmptyRequest);
                }
                let commands = decode_commands(&bytes)?;
                let done = execute(&commands, card, on_notify);
                processed += 1;
                summary.apdus += u64::from(done.response.executed);
                if let Some(n) = done.stop {
                    return Err(ClientError::ServerStopped {
                        id: n.id,
                        text: n.text,
                    });
                }
                body = done.response.encode()?;
            }
            204 => return Ok(summary),
            504 if processed > 0 => return Err(ClientError::ServerAbort),
            504 => return Err(ClientError::NoConnect),
            404 => return Err(ClientError::InvalidUrl),
            410 if restarts < cfg.max_restarts => {
                restarts += 1;
                processed = 0;
                tracing::warn!("server lost the session; starting a new one");
                // A new session begins as the first did: from a freshly reset card (whose
                // `reset` restores what the device prepared, e.g. a verified PIN).
                let atr = card.reset().map_err(ClientError::Card)?;
                body = Initiation::new(atr).encode()?;
            }
            410 => return Err(ClientError::SessionLost),
            other => return Err(ClientError::HttpStatus(other)),
        }
    }
}
