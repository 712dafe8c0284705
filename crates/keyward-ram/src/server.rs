//! The server's session engine. A service is an async script over a [`Session`]; the engine maps
//! HTTP onto it: the initiation POST starts a session (new random 128-bit cookie) and runs the
//! service's script in its own task; every batch the script hands to `exchange` becomes a `200`
//! command script, every following POST its answer; the script's end becomes `204` (or, on
//! failure, a negative notify that stops the device).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::mpsc;

use crate::codec::{self, Command, Initiation, ResponseScript};
use crate::{COOKIE, RamError, SCRIPT_CONTENT_TYPE};

/// Why a script's session call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    #[error("the device did not come back within {0:?} (gone)")]
    DeviceGone(Duration),
    #[error("the device closed the session: {0}")]
    DeviceClosed(String),
    #[error("the device answered {got} of {sent} commands")]
    Incomplete { sent: usize, got: usize },
    #[error("the session ended")]
    Ended,
    #[error(transparent)]
    Encoding(#[from] RamError),
}

/// A script's failure, shown to the device as the text of a negative notify.
pub type ScriptError = Box<dyn std::error::Error + Send + Sync>;

/// A service: the script run for every session started on `/rt/{name}`.
pub trait Service: Send + Sync + 'static {
    fn run<'a>(
        &'a self,
        session: &'a mut Session,
    ) -> Pin<Box<dyn Future<Output = Result<(), ScriptError>> + Send + 'a>>;
}

enum Outgoing {
    Batch(Vec<u8>),
    Done,
    /// Script failed: a negative notify, then nothing more.
    Failed(Vec<u8>),
}

/// The script's end of a session.
pub struct Session {
    id: String,
    initiation: Initiation,
    /// The query parameters of the initiation's URL (e.g. `?profile=tls-client`).
    params: HashMap<String, String>,
    tx: mpsc::Sender<Outgoing>,
    rx: mpsc::Receiver<ResponseScript>,
    idle: Duration,
    pending: Vec<Command>,
    metrics: Arc<Metrics>,
}

impl Session {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn initiation(&self) -> &Initiation {
        &self.initiation
    }

    /// A query parameter of the URL the device started the session with.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// Sends a batch (after any queued notifications) and waits for the device's answer.
    pub async fn exchange(&mut self, batch: Vec<Command>) -> Result<ResponseScript, SessionError> {
        let mut items = std::mem::take(&mut self.pending);
        items.extend(batch);
        let body = codec::encode_commands(&items)?;
        self.tx
            .send(Outgoing::Batch(body))
            .await
            .map_err(|_| SessionError::Ended)?;
        let answer = tokio::time::timeout(self.idle, self.rx.recv())
            .await
            .map_err(|_| SessionError::DeviceGone(self.idle))?
            .ok_or(SessionError::Ended)?;
        self.metrics.round_trips.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .apdus
            .fetch_add(u64::from(answer.executed), Ordering::Relaxed);
        if let Some(reason) = answer.close_reason() {
            return Err(SessionError::DeviceClosed(reason.to_string()));
        }
        Ok(answer)
    }

    /// Sends C-APDUs and returns their R-APDUs (all of them, or an error).
    pub async fn transmit(&mut self, apdus: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, SessionError> {
        let sent = apdus.len();
        let answer = self
            .exchange(apdus.into_iter().map(Command::Apdu).collect())
            .await?;
        let r: Vec<Vec<u8>> = answer.apdus().map(<[u8]>::to_vec).collect();
        if r.len() != sent {
            return Err(SessionError::Incomplete { sent, got: r.len() });
        }
        Ok(r)
    }

    /// Resets the card; returns its ATR.
    pub async fn reset(&mut self) -> Result<Vec<u8>, SessionError> {
        let answer = self.exchange(vec![Command::Reset]).await?;
        answer
            .items
            .into_iter()
            .find_map(|r| match r {
                codec::Response::Atr(a) => Some(a),
                _ => None,
            })
            .ok_or(SessionError::Incomplete { sent: 1, got: 0 })
    }

    /// Queues a message for the device's user; it travels with the next batch (or before the
    /// session ends).
    pub fn notify(&mut self, id: i64, text: impl Into<String>) {
        self.pending.push(Command::Notify {
            id,
            text: text.into(),
            time_to_completion: None,
        });
    }

    /// Delivers queued notifications before the end.
    async fn flush(&mut self) -> Result<(), SessionError> {
        if !self.pending.is_empty() {
            self.exchange(Vec::new()).await?;
        }
        Ok(())
    }
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Sessions open at once; beyond: `503` with `Retry-After`.
    pub max_sessions: usize,
    /// How long a script waits for the device's next POST before the session is dropped.
    pub idle_timeout: Duration,
    /// The longest a session may run.
    pub session_timeout: Duration,
    /// How long a POST waits for the script's next batch before the device gets an empty
    /// command script (`AA 00`, answered with `AB 03 80 01 00`) to keep within its 40 s timeout.
    pub poll_timeout: Duration,
    /// Largest request body.
    pub max_body: usize,
    /// Mark the cookie `Secure` (the server runs HTTPS).
    pub secure_cookie: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_sessions: 10_000,
            idle_timeout: Duration::from_secs(60),
            session_timeout: Duration::from_secs(600),
            poll_timeout: Duration::from_secs(30),
            max_body: 256 * 1024,
            secure_cookie: false,
        }
    }
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Metrics {
    pub sessions_started: AtomicU64,
    pub sessions_completed: AtomicU64,
    pub sessions_failed: AtomicU64,
    pub sessions_rejected: AtomicU64,
    pub round_trips: AtomicU64,
    pub apdus: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub bad_requests: AtomicU64,
    pub duration_us_sum: AtomicU64,
}

/// What the engine remembers of a session for operators: never its cookie (a bearer secret),
/// but a separate random reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub reference: String,
    pub service: String,
    /// Unix seconds.
    pub started_at: i64,
    pub ended_at: Option<i64>,
    /// Batches sent to the device so far.
    pub batches: u64,
    /// `None` while running; `Some(Ok)` completed; `Some(Err(reason))` failed.
    pub outcome: Option<Result<(), String>>,
}

/// Where ended sessions go beyond the engine's memory (a database shared by replicas). Called
/// once per session as it ends, and awaited before the device hears the outcome.
pub trait SessionSink: Send + Sync + 'static {
    fn ended(
        &self,
        record: SessionRecord,
    ) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;
}

/// How many ended sessions the journal keeps (the running ones are always in it).
const JOURNAL_ENDED: usize = 200;

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The HTTP side of one session.
struct Slot {
    record: Arc<Mutex<SessionRecord>>,
    to_script: mpsc::Sender<ResponseScript>,
    from_script: tokio::sync::Mutex<mpsc::Receiver<Outgoing>>,
    /// A batch went out and its answer has not come yet.
    awaiting: AtomicBool,
    /// The last batch was an `AA 00` keep-alive; its `AB` is not the script's.
    keepalive: AtomicBool,
}

pub struct Engine {
    cfg: EngineConfig,
    services: HashMap<String, Arc<dyn Service>>,
    sessions: Mutex<HashMap<String, Arc<Slot>>>,
    /// Running and recently ended sessions, oldest first.
    journal: Mutex<std::collections::VecDeque<Arc<Mutex<SessionRecord>>>>,
    sink: Option<Arc<dyn SessionSink>>,
    pub metrics: Arc<Metrics>,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Self {
            cfg,
            services: HashMap::new(),
            sessions: Mutex::new(HashMap::new()),
            journal: Mutex::new(std::collections::VecDeque::new()),
            sink: None,
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// Hands every ended session to `sink` as well.
    #[must_use]
    pub fn session_sink(mut self, sink: Arc<dyn SessionSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Running and recently ended sessions, newest first.
    pub fn sessions(&self) -> Vec<SessionRecord> {
        let journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        journal
            .iter()
            .rev()
            .map(|r| r.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect()
    }

    fn journal(&self, record: Arc<Mutex<SessionRecord>>) {
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        journal.push_back(record);
        // Forget the oldest ended sessions beyond the bound; running ones stay.
        let ended = journal
            .iter()
            .filter(|r| {
                r.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .outcome
                    .is_some()
            })
            .count();
        let mut excess = ended.saturating_sub(JOURNAL_ENDED);
        journal.retain(|r| {
            let done = r
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .outcome
                .is_some();
            if done && excess > 0 {
                excess -= 1;
                false
            } else {
                true
            }
        });
    }

    /// Registers a service under `/rt/{name}`.
    pub fn service(mut self, name: &str, service: impl Service) -> Self {
        self.services.insert(name.to_string(), Arc::new(service));
        self
    }

    pub fn active_sessions(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Slot>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The router: `POST /rt/{service}` and `GET /metrics`.
    pub fn router(self: Arc<Self>) -> Router {
        let limit = self.cfg.max_body;
        Router::new()
            .route("/rt/{service}", post(handle))
            .route("/metrics", get(metrics))
            .layer(DefaultBodyLimit::max(limit))
            .with_state(self)
    }

    /// Starts a session: registers it and runs the script in its own task.
    fn start(
        self: &Arc<Self>,
        name: &str,
        service: Arc<dyn Service>,
        initiation: Initiation,
        params: HashMap<String, String>,
    ) -> Result<(String, Arc<Slot>), StatusCode> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        let id = hex::encode(id);
        let mut reference = [0u8; 6];
        getrandom::fill(&mut reference).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        let record = Arc::new(Mutex::new(SessionRecord {
            reference: hex::encode(reference),
            service: name.to_string(),
            started_at: unix_now(),
            ended_at: None,
            batches: 0,
            outcome: None,
        }));
        let (out_tx, out_rx) = mpsc::channel(1);
        let (in_tx, in_rx) = mpsc::channel(1);
        let slot = Arc::new(Slot {
            record: record.clone(),
            to_script: in_tx,
            from_script: tokio::sync::Mutex::new(out_rx),
            awaiting: AtomicBool::new(false),
            keepalive: AtomicBool::new(false),
        });
        {
            let mut sessions = self.lock();
            if sessions.len() >= self.cfg.max_sessions {
                self.metrics
                    .sessions_rejected
                    .fetch_add(1, Ordering::Relaxed);
                return Err(StatusCode::SERVICE_UNAVAILABLE);
            }
            sessions.insert(id.clone(), slot.clone());
        }
        self.journal(record.clone());
        self.metrics
            .sessions_started
            .fetch_add(1, Ordering::Relaxed);
        let mut session = Session {
            id: id.clone(),
            initiation,
            params,
            tx: out_tx.clone(),
            rx: in_rx,
            idle: self.cfg.idle_timeout,
            pending: Vec::new(),
            metrics: self.metrics.clone(),
        };
        let engine = self.clone();
        let sid = id.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let run = async {
                service.run(&mut session).await?;
                session.flush().await?;
                Ok::<(), ScriptError>(())
            };
            let result = match tokio::time::timeout(engine.cfg.session_timeout, run).await {
                Ok(r) => r,
                Err(_) => Err("the session took too long".into()),
            };
            drop(session);
            let m = &engine.metrics;
            m.duration_us_sum
                .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            let ended = {
                let mut r = record.lock().unwrap_or_else(|p| p.into_inner());
                r.ended_at = Some(unix_now());
                r.outcome = Some(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                r.clone()
            };
            if let Some(sink) = &engine.sink {
                sink.ended(ended).await;
            }
            match result {
                Ok(()) => {
                    m.sessions_completed.fetch_add(1, Ordering::Relaxed);
                    let _ = out_tx.try_send(Outgoing::Done);
                }
                Err(e) => {
                    m.sessions_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(session = %sid, "script failed: {e}");
                    let stop = codec::encode_commands(&[Command::Notify {
                        id: -1,
                        text: e.to_string(),
                        time_to_completion: None,
                    }])
                    .unwrap_or_default();
                    let _ = out_tx.try_send(Outgoing::Failed(stop));
                }
            }
            // A device that never comes back must not keep the session: it goes once the
            // script is done; a POST still waiting gets the last message from the channel.
            engine.lock().remove(&sid);
        });
        Ok((id, slot))
    }

    /// Waits for the script's next message and turns it into the HTTP answer.
    async fn next(&self, id: &str, slot: &Slot) -> Response {
        let Ok(mut rx) = slot.from_script.try_lock() else {
            return status(
                StatusCode::CONFLICT,
                "another request of this session is in progress",
            );
        };
        let out = match tokio::time::timeout(self.cfg.poll_timeout, rx.recv()).await {
            Err(_) => {
                slot.keepalive.store(true, Ordering::SeqCst);
                slot.awaiting.store(true, Ordering::SeqCst);
                return self.script_body(id, vec![0xAA, 0x00]);
            }
            Ok(None) => Outgoing::Done,
            Ok(Some(o)) => o,
        };
        match out {
            Outgoing::Batch(body) => {
                slot.awaiting.store(true, Ordering::SeqCst);
                slot.record
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .batches += 1;
                self.script_body(id, body)
            }
            Outgoing::Done => {
                self.lock().remove(id);
                StatusCode::NO_CONTENT.into_response()
            }
            Outgoing::Failed(body) => {
                self.lock().remove(id);
                self.script_body(id, body)
            }
        }
    }

    fn script_body(&self, id: &str, body: Vec<u8>) -> Response {
        self.metrics
            .bytes_out
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        let mut cookie = format!("{COOKIE}={id}; Path=/rt; HttpOnly");
        if self.cfg.secure_cookie {
            cookie.push_str("; Secure");
        }
        let mut r = (StatusCode::OK, body).into_response();
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(SCRIPT_CONTENT_TYPE),
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            h.insert(header::SET_COOKIE, v);
        }
        r
    }

    fn bad_request(&self, what: &str) -> Response {
        self.metrics.bad_requests.fetch_add(1, Ordering::Relaxed);
        tracing::info!("rejected request: {what}");
        status(StatusCode::BAD_REQUEST, what)
    }

    /// Prometheus text format.
    pub fn metrics_text(&self) -> String {
        let m = &self.metrics;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = String::new();
        let mut line = |name: &str, kind: &str, help: &str, v: u64| {
            s.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            ));
        };
        line(
            "keyward_ram_sessions_started_total",
            "counter",
            "Sessions started.",
            g(&m.sessions_started),
        );
        line(
            "keyward_ram_sessions_completed_total",
            "counter",
            "Sessions whose script completed.",
            g(&m.sessions_completed),
        );
        line(
            "keyward_ram_sessions_failed_total",
            "counter",
            "Sessions whose script failed or timed out.",
            g(&m.sessions_failed),
        );
        line(
            "keyward_ram_sessions_rejected_total",
            "counter",
            "Initiations refused at the session limit.",
            g(&m.sessions_rejected),
        );
        line(
            "keyward_ram_sessions_active",
            "gauge",
            "Sessions open now.",
            self.active_sessions() as u64,
        );
        line(
            "keyward_ram_round_trips_total",
            "counter",
            "Command/response script round trips.",
            g(&m.round_trips),
        );
        line(
            "keyward_ram_apdus_total",
            "counter",
            "APDUs executed by devices.",
            g(&m.apdus),
        );
        line(
            "keyward_ram_bytes_received_total",
            "counter",
            "Request body bytes.",
            g(&m.bytes_in),
        );
        line(
            "keyward_ram_bytes_sent_total",
            "counter",
            "Response body bytes.",
            g(&m.bytes_out),
        );
        line(
            "keyward_ram_bad_requests_total",
            "counter",
            "Malformed or misdirected requests.",
            g(&m.bad_requests),
        );
        let ended = g(&m.sessions_completed) + g(&m.sessions_failed);
        s.push_str(&format!(
            "# HELP keyward_ram_session_duration_seconds Duration of ended sessions.\n# TYPE keyward_ram_session_duration_seconds summary\nkeyward_ram_session_duration_seconds_sum {:.6}\nkeyward_ram_session_duration_seconds_count {ended}\n",
            g(&m.duration_us_sum) as f64 / 1e6
        ));
        s
    }
}

fn status(code: StatusCode, text: &str) -> Response {
    (code, text.to_string()).into_response()
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .map(str::to_string)
}

async fn metrics(State(engine): State<Arc<Engine>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        engine.metrics_text(),
    )
        .into_response()
}

async fn handle(
    State(engine): State<Arc<Engine>>,
    Path(service): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    engine
        .metrics
        .bytes_in
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/org.openscdp-content-mgt-response") {
        engine.metrics.bad_requests.fetch_add(1, Ordering::Relaxed);
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected the RAMoverHTTP content type",
        );
    }
    let Some(svc) = engine.services.get(&service).cloned() else {
        return status(StatusCode::NOT_FOUND, "no such service");
    };
    match body.first() {
        Some(&codec::tag::INITIATION) => {
            let init = match Initiation::decode(&body) {
                Ok(i) => i,
                Err(e) => return engine.bad_request(&format!("initiation: {e}")),
            };
            // A device that starts over drops its previous session.
            if let Some(old) = session_cookie(&headers) {
                engine.lock().remove(&old);
            }
            match engine.start(&service, svc, init, params) {
                Ok((id, slot)) => engine.next(&id, &slot).await,
                Err(code) => {
                    let mut r = status(code, "too many sessions");
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    r
                }
            }
        }
        Some(&codec::tag::RESPONSE_SCRIPT) => {
            let script = match ResponseScript::decode(&body) {
                Ok(s) => s,
                Err(e) => return engine.bad_request(&format!("response script: {e}")),
            };
            let Some(id) = session_cookie(&headers) else {
                return engine.bad_request("response script without session cookie");
            };
            let Some(slot) = engine.lock().get(&id).cloned() else {
                return status(
                    StatusCode::GONE,
                    "unknown or ended session; start a new one",
                );
            };
            if !slot.awaiting.swap(false, Ordering::SeqCst) {
                return status(
                    StatusCode::CONFLICT,
                    "no command script is waiting for an answer",
                );
            }
            if !slot.keepalive.swap(false, Ordering::SeqCst)
                && slot.to_script.try_send(script).is_err()
            {
                return status(
                    StatusCode::CONFLICT,
                    "the session is not expecting an answer",
                );
            }
            engine.next(&id, &slot).await
        }
        _ => engine.bad_request("neither an initiation nor a response script"),
    }
}

/// Serves plain HTTP on a bound listener until the future completes.
pub async fn serve(engine: Arc<Engine>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    serve_router(engine.router(), listener).await
}

/// Serves a router (the engine's, merged with other routes) over HTTP.
pub async fn serve_router(
    router: Router,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    axum::serve(listener, router).await
}

/// Serves HTTPS with a certificate chain and key from PEM files.
pub async fn serve_tls(
    engine: Arc<Engine>,
    addr: std::net::SocketAddr,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> std::io::Result<()> {
    serve_router_tls(engine.router(), addr, cert, key).await
}

/// Serves a router over HTTPS with a certificate chain and key from PEM files.
pub async fn serve_router_tls(
    router: Router,
    addr: std::net::SocketAddr,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> std::io::Result<()> {
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await?;
    axum_server::bind_rustls(addr, tls)
        .serve(router.into_make_service())
        .await
}

/// `/rt/diag`: a device path check — SELECT of the SmartCard-HSM applet, GET CHALLENGE, and a
/// report of what came back (with the ATR) as a notification.
pub struct Diag;

impl Service for Diag {
    fn run<'a>(
        &'a self,
        session: &'a mut Session,
    ) -> Pin<Box<dyn Future<Output = Result<(), ScriptError>> + Send + 'a>> {
        Box::pin(async move {
            let atr = hex::encode_upper(&session.initiation().atr);
            let mut select = vec![0x00, 0xA4, 0x04, 0x00, 0x0B];
            select.extend_from_slice(&[
                0xE8, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x81, 0xC3, 0x1F, 0x02, 0x01,
            ]);
            select.push(0x00);
            let r = session
                .transmit(vec![select, vec![0x00, 0x84, 0x00, 0x00, 0x08]])
                .await?;
            let sw = |r: &[u8]| {
                r.len()
                    .checked_sub(2)
                    .map_or_else(|| "no status".into(), |n| hex::encode_upper(&r[n..]))
            };
            session.notify(
                1,
                format!(
                    "ATR {atr}; SELECT SmartCard-HSM: {}; GET CHALLENGE: {} ({} bytes)",
                    sw(&r[0]),
                    sw(&r[1]),
                    r[1].len().saturating_sub(2)
                ),
            );
            Ok(())
        })
    }
}
