//! The web UI at `/ui`, served by the server itself: a dashboard, devices and their
//! certificates, certificate details with the key attestation, revocation (operators), the
//! audit log and the CRL's contents. Plain HTML forms, no scripts. Login with an API token;
//! the session lives in server memory behind an HttpOnly, SameSite=Strict cookie, and every
//! state-changing form carries the session's CSRF token.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::provision::Provisioner;

const COOKIE: &str = "kw_ui";
const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);

struct UiSession {
    name: String,
    operator: bool,
    csrf: String,
    expires: Instant,
}

pub struct Ui {
    p: Arc<Provisioner>,
    /// The session cookie is marked `Secure` (the UI is served over HTTPS, or behind a proxy
    /// that terminates it).
    secure_cookie: bool,
    /// The RAMoverHTTP engine whose recent sessions the dashboard shows.
    engine: Option<Arc<keyward_ram::server::Engine>>,
    sessions: Mutex<HashMap<String, UiSession>>,
}

type Shared = Arc<Ui>;

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn time(t: i64) -> String {
    let (y, mo, d, h, mi, s) = keyward_ca::der::civil(t);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}Z")
}

fn page(title: &str, user: Option<&UiSession>, body: &str) -> Html<String> {
    let nav = match user {
        Some(u) => format!(
            r#"<nav><a href="/ui">Dashboard</a> <a href="/ui/devices">Devices</a> <a href="/ui/audit">Audit log</a> <a href="/ui/crl">CRL</a>
<span class="who">{} ({})</span> <form class="inline" method="post" action="/ui/logout"><input type="hidden" name="csrf" value="{}"><button>Log out</button></form></nav>"#,
            esc(&u.name),
            if u.operator { "operator" } else { "auditor" },
            esc(&u.csrf)
        ),
        None => String::new(),
    };
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{t} — Keyward</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;color:#222}}nav{{margin-bottom:1.5rem}}nav a{{margin-right:1rem}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}th{{background:#f3f3f3}}
.who{{margin-left:2rem;color:#555}}.inline{{display:inline}}.revoked{{color:#a00;font-weight:bold}}.active,.good{{color:#070}}
.cards div{{display:inline-block;border:1px solid #ccc;border-radius:6px;padding:.8rem 1.2rem;margin:0 1rem 1rem 0}}
.cards b{{display:block;font-size:1.8rem}}code{{word-break:break-all}}</style></head>
<body>{nav}<h1>{t}</h1>{body}</body></html>"#,
        t = esc(title)
    ))
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

impl Ui {
    /// The logged-in session of the request (its name, role, CSRF token).
    fn session(&self, headers: &HeaderMap) -> Option<(String, bool, String)> {
        let id = cookie(headers)?;
        let mut sessions = self.sessions.lock().ok()?;
        let s = sessions.get(&id)?;
        if s.expires < Instant::now() {
            sessions.remove(&id);
            return None;
        }
        Some((s.name.clone(), s.operator, s.csrf.clone()))
    }

    fn user(&self, headers: &HeaderMap) -> Option<UiSession> {
        let (name, operator, csrf) = self.session(headers)?;
        Some(UiSession {
            name,
            operator,
            csrf,
            expires: Instant::now(),
        })
    }
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "web UI");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

async fn login_form() -> Html<String> {
    page(
        "Log in",
        None,
        r#"<form method="post" action="/ui/login"><label>API token <input name="token" type="password" size="70" autofocus></label> <button id="login">Log in</button></form>
<p>Create a token with <code>keyward token create --name NAME --role operator|auditor</code>.</p>"#,
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(ui): State<Shared>, Form(f): Form<LoginForm>) -> Response {
    let hash = hex::encode(keyward_crypto::HashAlg::Sha256.digest(f.token.trim().as_bytes()));
    let found = match ui.p.db.token_by_hash(&hash).await {
        Ok(f) => f,
        Err(e) => return internal(e),
    };
    let Some((name, role)) = found else {
        return (
            StatusCode::UNAUTHORIZED,
            page(
                "Log in",
                None,
                r#"<p class="revoked">Unknown token.</p><p><a href="/ui/login">Try again</a></p>"#,
            ),
        )
            .into_response();
    };
    let (Ok(id), Ok(csrf)) = (keyward_crypto::random(32), keyward_crypto::random(16)) else {
        return internal("no random numbers");
    };
    let (id, csrf) = (hex::encode(&id[..]), hex::encode(&csrf[..]));
    if let Ok(mut s) = ui.sessions.lock() {
        let now = Instant::now();
        s.retain(|_, v| v.expires > now);
        s.insert(
            id.clone(),
            UiSession {
                name,
                operator: role == "operator",
                csrf,
                expires: now + SESSION_LIFETIME,
            },
        );
    }
    let mut r = Redirect::to("/ui").into_response();
    let secure = if ui.secure_cookie { "; Secure" } else { "" };
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict{secure}"
    )) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(State(ui): State<Shared>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    if let (Some(id), Some((_, _, csrf))) = (cookie(&headers), ui.session(&headers))
        && bool::from(csrf.as_bytes().ct_eq(f.csrf.as_bytes()))
        && let Ok(mut s) = ui.sessions.lock()
    {
        s.remove(&id);
    }
    Redirect::to("/ui/login").into_response()
}

async fn dashboard(State(ui): State<Shared>, headers: HeaderMap) -> Response {
    let Some(u) = ui.user(&headers) else {
        return Redirect::to("/ui/login").into_response();
    };
    let db = &ui.p.db;
    let (devices, certs, audit) = match (
        db.devices().await,
        db.certificates().await,
        db.audit_events().await,
    ) {
        (Ok(d), Ok(c), Ok(a)) => (d, c, a),
        _ => return internal("database"),
    };
    let produced = devices.iter().filter(|d| d.produced_at.is_some()).count();
    let active = certs.iter().filter(|c| c.state == "active").count();
    let revoked = certs.iter().filter(|c| c.state == "revoked").count();
    let failures: Vec<_> = audit
        .iter()
        .rev()
        .filter(|e| e.event.ends_with(".refused"))
        .take(10)
        .collect();
    let mut body = format!(
        r#"<div class="cards"><div>Devices produced<b id="produced">{produced}</b></div><div>Certificates active<b id="active">{active}</b></div><div>Certificates revoked<b id="revoked">{revoked}</b></div><div>Refusals<b>{}</b></div></div>"#,
        audit
            .iter()
            .filter(|e| e.event.ends_with(".refused"))
            .count()
    );
    body.push_str("<h2>Recent events</h2><table><tr><th>#</th><th>Time</th><th>Event</th><th>Device</th><th>Detail</th></tr>");
    for e in audit.iter().rev().take(15) {
        audit_row(&mut body, e);
    }
    body.push_str("</table>");
    if let Some(engine) = &ui.engine {
        body.push_str(
            "<h2>Recent sessions</h2><table id=\"sessions\"><tr><th>Reference</th><th>Service</th><th>Started</th><th>Batches</th><th>State</th></tr>",
        );
        let recent = match crate::sessions::list(engine, &ui.p.db, 15).await {
            Ok(r) => r,
            Err(e) => return internal(e),
        };
        for s in recent.into_iter().take(15) {
            let state = match &s.outcome {
                None => "running".to_string(),
                Some(Ok(())) => "completed".to_string(),
                Some(Err(e)) => format!("failed: {e}"),
            };
            body.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&s.reference),
                esc(&s.service),
                time(s.started_at),
                s.batches,
                esc(&state)
            ));
        }
        body.push_str("</table>");
    }
    body.push_str("<h2>Recent failures</h2>");
    if failures.is_empty() {
        body.push_str("<p>None.</p>");
    } else {
        body.push_str(
            "<table><tr><th>#</th><th>Time</th><th>Event</th><th>Device</th><th>Detail</th></tr>",
        );
        for e in failures {
            audit_row(&mut body, e);
        }
        body.push_str("</table>");
    }
    page("Dashboard", Some(&u), &body).into_response()
}

fn device_link(id: &str) -> String {
    format!(r#"<a href="/ui/devices/{0}">{0}</a>"#, esc(id))
}

fn audit_row(body: &mut String, e: &crate::db::AuditEvent) {
    let _ = write!(
        body,
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        e.seq,
        time(e.at),
        esc(&e.event),
        e.device_id.as_deref().map(device_link).unwrap_or_default(),
        esc(&e.detail)
    );
}

#[derive(Deserialize)]
struct Search {
    q: Option<String>,
}

async fn devices(
    State(ui): State<Shared>,
    headers: HeaderMap,
    Query(s): Query<Search>,
) -> Response {
    let Some(u) = ui.user(&headers) else {
        return Redirect::to("/ui/login").into_response();
    };
    let all = match ui.p.db.devices().await {
        Ok(d) => d,
        Err(e) => return internal(e),
    };
    let q = s.q.unwrap_or_default();
    let mut body = format!(
        r#"<form method="get" action="/ui/devices"><input name="q" id="q" value="{}" placeholder="device id or serial"> <button id="search">Search</button></form><table><tr><th>Device</th><th>Serial</th><th>State</th><th>Produced</th></tr>"#,
        esc(&q)
    );
    for d in all.iter().filter(|d| {
        q.is_empty() || d.device_id.contains(&q) || d.serial.contains(&q.to_ascii_uppercase())
    }) {
        let _ = write!(
            body,
            "<tr><td>{}</td><td><code>{}</code></td><td>{:?}</td><td>{}</td></tr>",
            device_link(&d.device_id),
            esc(&d.serial),
            d.state,
            d.produced_at.map(time).unwrap_or_default()
        );
    }
    body.push_str("</table>");
    page("Devices", Some(&u), &body).into_response()
}

fn state_class(state: &str) -> &'static str {
    match state {
        "revoked" => "revoked",
        "active" => "active",
        _ => "",
    }
}

async fn device(State(ui): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let Some(u) = ui.user(&headers) else {
        return Redirect::to("/ui/login").into_response();
    };
    let db = &ui.p.db;
    let d = match db.device_by_id(&id).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                page("Not found", Some(&u), "<p>No such device.</p>"),
            )
                .into_response();
        }
        Err(e) => return internal(e),
    };
    let (certs, revocation) = match (
        db.device_certificates(&id).await,
        db.device_revocation(&id).await,
    ) {
        (Ok(c), Ok(r)) => (c, r),
        _ => return internal("database"),
    };
    let mut body = format!(
        "<p>Serial <code>{}</code> — {:?}{}</p><h2>Certificates</h2><table><tr><th>Serial</th><th>Profile</th><th>Key</th><th>State</th><th>Valid until</th></tr>",
        esc(&d.serial),
        d.state,
        revocation
            .map(|r| format!(
                r#" — <span class="revoked">device revoked: {}</span>"#,
                esc(&r)
            ))
            .unwrap_or_default()
    );
    for c in &certs {
        let _ = write!(
            body,
            r#"<tr><td><a class="cert" href="/ui/certificates/{s}">{s}</a></td><td>{}</td><td>{}</td><td class="{}">{}</td><td>{}</td></tr>"#,
            esc(&c.profile),
            c.key_ref,
            state_class(&c.state),
            esc(&c.state),
            time(c.not_after),
            s = esc(&c.serial)
        );
    }
    body.push_str("</table>");
    page(&format!("Device {id}"), Some(&u), &body).into_response()
}

async fn certificate(
    State(ui): State<Shared>,
    headers: HeaderMap,
    Path(serial): Path<String>,
) -> Response {
    let Some(u) = ui.user(&headers) else {
        return Redirect::to("/ui/login").into_response();
    };
    let c = match ui.p.db.certificate(&serial.to_ascii_uppercase()).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                page("Not found", Some(&u), "<p>No such certificate.</p>"),
            )
                .into_response();
        }
        Err(e) => return internal(e),
    };
    let attestation = hex::decode(&c.attestation).unwrap_or_default();
    let request_hash = hex::encode(keyward_crypto::HashAlg::Sha256.digest(&attestation));
    let key_chr = keyward_cvc::AuthenticatedRequest::parse(&attestation)
        .map(|ar| String::from_utf8_lossy(&ar.request.body.chr).into_owned())
        .unwrap_or_default();
    let der = hex::decode(&c.der).unwrap_or_default();
    let mut body = format!(
        r#"<table>
<tr><th>Serial</th><td><code>{}</code></td></tr><tr><th>Device</th><td>{}</td></tr><tr><th>Profile</th><td>{}</td></tr>
<tr><th>Key on the element</th><td>{}</td></tr><tr><th>State</th><td id="state" class="{}">{}</td></tr>
<tr><th>Valid</th><td>{} – {}</td></tr>{}
<tr><th>Key attestation</th><td>authenticated request for key <code>{}</code> signed by device {}; SHA-256 <code>{}</code> (bound into the certificate's extension 2.25.329800735698586629295641978511506172918)</td></tr>
</table><h2>Certificate</h2><pre>{}</pre>"#,
        esc(&c.serial),
        device_link(&c.device_id),
        esc(&c.profile),
        c.key_ref,
        state_class(&c.state),
        esc(&c.state),
        time(c.not_before),
        time(c.not_after),
        c.revoked_at
            .map(|t| format!(
                "<tr><th>Revoked</th><td class=\"revoked\">{} ({})</td></tr>",
                time(t),
                esc(c.revocation_reason.as_deref().unwrap_or_default())
            ))
            .unwrap_or_default(),
        esc(&key_chr),
        esc(&c.device_id),
        request_hash,
        esc(&crate::x509_ca::pem(&der))
    );
    if u.operator && c.state != "revoked" {
        let _ = write!(
            body,
            r#"<h2>Revoke</h2><form method="post" action="/ui/certificates/{}/revoke"><input type="hidden" name="csrf" value="{}">
<select name="reason" id="reason">{}</select> <button id="revoke">Revoke certificate</button></form>"#,
            esc(&c.serial),
            esc(&u.csrf),
            [
                "keyCompromise",
                "superseded",
                "cessationOfOperation",
                "affiliationChanged",
                "privilegeWithdrawn",
                "unspecified"
            ]
            .iter()
            .map(|r| format!("<option>{r}</option>"))
            .collect::<String>()
        );
    }
    page(&format!("Certificate {}", c.serial), Some(&u), &body).into_response()
}

#[derive(Deserialize)]
struct RevokeForm {
    csrf: String,
    reason: String,
}

async fn revoke(
    State(ui): State<Shared>,
    headers: HeaderMap,
    Path(serial): Path<String>,
    Form(f): Form<RevokeForm>,
) -> Response {
    let Some(u) = ui.user(&headers) else {
        return Redirect::to("/ui/login").into_response();
    };
    if !bool::from(u.csrf.as_bytes().ct_eq(f.csrf.as_bytes())) {
        return (StatusCode::FORBIDDEN, "stale form").into_response();
    }
    if !u.operator {
        return (
            StatusCode::FORBIDDEN,
            page("Forbidden", Some(&u), "<p>Auditors cannot revoke.</p>"),
        )
            .into_response();
    }
    let reason = match f.reason.as_str() {
        r @ ("keyCompromise"
        | "superseded"
        | "cessationOfOperation"
        | "affiliationChanged"
        | "privilegeWithdrawn"
        | "unspecified") => r,
        _ => return (StatusCode::BAD_REQUEST, "unknown reason").into_response(),
    };
    let serial = serial.to_ascii_uppercase();
    match ui.p.db.revoke_certificate(&serial, reason).await {
        Ok(_) => {
            tracing::info!(%serial, by = %u.name, reason, "certificate revoked (web UI)");
            Redirect::to(&format!("/ui/certificates/{serial}")).into_response()
        }
        Err(e) => internal(e),
    }
}

async fn audit(State(ui): State<Shared>, headers: HeaderMap) -> Response {
    let Some(u) = ui.user(&headers) else {
        return Redirect::to("/ui/login").into_response();
    };
    let (events, verified) = match (ui.p.db.audit_events().await, ui.p.db.verify_audit().await) {
        (Ok(e), v) => (e, v),
        (Err(e), _) => return internal(e),
    };
    let mut body = match verified {
        Ok(c) => format!(
            r#"<p class="good">Hash chain intact: {} events, head <code>{}</code>.</p>"#,
            c.events,
            esc(&c.head)
        ),
        Err(e) => format!(
            r#"<p class="revoked">Hash chain broken: {}</p>"#,
            esc(&e.to_string())
        ),
    };
    body.push_str(
        "<table><tr><th>#</th><th>Time</th><th>Event</th><th>Device</th><th>Detail</th></tr>",
    );
    for e in events.iter().rev() {
        audit_row(&mut body, e);
    }
    body.push_str("</table>");
    page("Audit log", Some(&u), &body).into_response()
}

async fn crl(State(ui): State<Shared>, headers: HeaderMap) -> Response {
    let Some(u) = ui.user(&headers) else {
        return Redirect::to("/ui/login").into_response();
    };
    let revoked = match ui.p.db.revoked_certificates().await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let mut body = format!(
        r#"<p>The CRL at <a href="{0}">{0}</a> lists <b id="crl-count">{1}</b> revoked certificates.</p><table><tr><th>Serial</th><th>Revoked</th><th>Reason</th></tr>"#,
        crate::crl::PATH,
        revoked.len()
    );
    for (serial, at, reason) in &revoked {
        let _ = write!(
            body,
            r#"<tr><td class="crl-serial"><a href="/ui/certificates/{s}">{s}</a></td><td>{}</td><td>{}</td></tr>"#,
            time(*at),
            esc(reason),
            s = esc(serial)
        );
    }
    body.push_str("</table>");
    page("Certificate revocation list", Some(&u), &body).into_response()
}

/// Headers every UI answer carries: no scripts, no framing, no sniffing, no referrer.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    r
}

pub fn router(
    p: Arc<Provisioner>,
    engine: Option<Arc<keyward_ram::server::Engine>>,
    secure_cookie: bool,
) -> Router {
    let ui = Arc::new(Ui {
        p,
        secure_cookie,
        engine,
        sessions: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/ui", get(dashboard))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/devices", get(devices))
        .route("/ui/devices/{id}", get(device))
        .route("/ui/certificates/{serial}", get(certificate))
        .route("/ui/certificates/{serial}/revoke", post(revoke))
        .route("/ui/audit", get(audit))
        .route("/ui/crl", get(crl))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(ui)
}
