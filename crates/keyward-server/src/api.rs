//! The REST API (`/api/v1`, JSON; `docs/openapi.yaml`): devices, certificates, profiles, audit
//! events, revocation. Every request carries `Authorization: Bearer TOKEN`; tokens are stored
//! as SHA-256 hashes with a role — `auditor` reads, `operator` reads and revokes.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::db::{CertificateRow, DeviceRow, DeviceState};
use crate::provision::Provisioner;

/// A caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Auditor,
    Operator,
}

pub const ROLES: &[&str] = &["operator", "auditor"];

struct Caller {
    name: String,
    role: Role,
}

#[derive(Debug)]
enum ApiError {
    Unauthorized,
    Forbidden,
    NotFound(String),
    BadRequest(String),
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, msg) = match self {
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "a valid API token is needed".into(),
            ),
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                "this token's role may not do that".into(),
            ),
            Self::NotFound(m) => (StatusCode::NOT_FOUND, m),
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            Self::Internal(m) => {
                tracing::error!(error = %m, "API");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
            }
        };
        let mut r = (code, Json(serde_json::json!({ "error": msg }))).into_response();
        if code == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        Self::Internal(e.to_string())
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

async fn caller(p: &Provisioner, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    let hash = hex::encode(keyward_crypto::HashAlg::Sha256.digest(token.trim().as_bytes()));
    let (name, role) =
        p.db.token_by_hash(&hash)
            .await?
            .ok_or(ApiError::Unauthorized)?;
    let role = match role.as_str() {
        "operator" => Role::Operator,
        _ => Role::Auditor,
    };
    Ok(Caller { name, role })
}

async fn operator(p: &Provisioner, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let c = caller(p, headers).await?;
    if c.role == Role::Operator {
        Ok(c)
    } else {
        Err(ApiError::Forbidden)
    }
}

#[derive(Serialize)]
struct Device {
    device_id: String,
    serial: String,
    state: &'static str,
    created_at: i64,
    produced_at: Option<i64>,
    revoked: Option<String>,
}

#[derive(Serialize)]
struct Certificate {
    serial: String,
    device_id: String,
    profile: String,
    key_ref: i64,
    state: String,
    not_before: i64,
    not_after: i64,
    created_at: i64,
    revoked_at: Option<i64>,
    revocation_reason: Option<String>,
    /// DER, hex.
    der: String,
    /// The key's attestation (authenticated CV request), hex.
    attestation: String,
}

impl From<CertificateRow> for Certificate {
    fn from(c: CertificateRow) -> Self {
        Self {
            serial: c.serial,
            device_id: c.device_id,
            profile: c.profile,
            key_ref: c.key_ref,
            state: c.state,
            not_before: c.not_before,
            not_after: c.not_after,
            created_at: c.created_at,
            revoked_at: c.revoked_at,
            revocation_reason: c.revocation_reason,
            der: c.der,
            attestation: c.attestation,
        }
    }
}

async fn device_view(p: &Provisioner, d: DeviceRow) -> Result<Device, ApiError> {
    let revoked = p.db.device_revocation(&d.device_id).await?;
    Ok(Device {
        device_id: d.device_id,
        serial: d.serial,
        state: match d.state {
            DeviceState::Producing => "producing",
            DeviceState::Produced => "produced",
        },
        created_at: d.created_at,
        produced_at: d.produced_at,
        revoked,
    })
}

async fn devices(State(p): State<Arc<Provisioner>>, headers: HeaderMap) -> ApiResult<Vec<Device>> {
    caller(&p, &headers).await?;
    let mut out = Vec::new();
    for d in p.db.devices().await? {
        out.push(device_view(&p, d).await?);
    }
    Ok(Json(out))
}

#[derive(Serialize)]
struct DeviceDetail {
    #[serde(flatten)]
    device: Device,
    certificates: Vec<Certificate>,
}

async fn device(
    State(p): State<Arc<Provisioner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<DeviceDetail> {
    caller(&p, &headers).await?;
    let d =
        p.db.device_by_id(&id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no device {id}")))?;
    let certificates =
        p.db.device_certificates(&id)
            .await?
            .into_iter()
            .map(Certificate::from)
            .collect();
    Ok(Json(DeviceDetail {
        device: device_view(&p, d).await?,
        certificates,
    }))
}

#[derive(Deserialize)]
struct RevokeBody {
    reason: String,
}

/// RFC 5280 reason names the API accepts.
const REASONS: &[&str] = &[
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "privilegeWithdrawn",
];

fn check_reason(r: &str) -> Result<(), ApiError> {
    if REASONS.contains(&r) {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "reason must be one of {}",
            REASONS.join(", ")
        )))
    }
}

async fn revoke_device(
    State(p): State<Arc<Provisioner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<RevokeBody>,
) -> ApiResult<serde_json::Value> {
    let c = operator(&p, &headers).await?;
    check_reason(&body.reason)?;
    if p.db.device_by_id(&id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no device {id}")));
    }
    if p.db.device_revocation(&id).await?.is_some() {
        return Err(ApiError::BadRequest(format!(
            "device {id} is revoked already"
        )));
    }
    p.db.revoke_device(&id, &body.reason).await?;
    tracing::info!(device = %id, by = %c.name, reason = %body.reason, "device revoked");
    Ok(Json(
        serde_json::json!({ "device_id": id, "revoked": body.reason }),
    ))
}

#[derive(Deserialize)]
struct CertQuery {
    device: Option<String>,
}

async fn certificates(
    State(p): State<Arc<Provisioner>>,
    Query(q): Query<CertQuery>,
    headers: HeaderMap,
) -> ApiResult<Vec<Certificate>> {
    caller(&p, &headers).await?;
    let rows = match q.device {
        Some(d) => p.db.device_certificates(&d).await?,
        None => p.db.certificates().await?,
    };
    Ok(Json(rows.into_iter().map(Certificate::from).collect()))
}

async fn certificate(
    State(p): State<Arc<Provisioner>>,
    Path(serial): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Certificate> {
    caller(&p, &headers).await?;
    let c =
        p.db.certificate(&serial.to_ascii_uppercase())
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no certificate {serial}")))?;
    Ok(Json(c.into()))
}

async fn revoke_certificate(
    State(p): State<Arc<Provisioner>>,
    Path(serial): Path<String>,
    headers: HeaderMap,
    Json(body): Json<RevokeBody>,
) -> ApiResult<serde_json::Value> {
    let c = operator(&p, &headers).await?;
    check_reason(&body.reason)?;
    let serial = serial.to_ascii_uppercase();
    if !p.db.revoke_certificate(&serial, &body.reason).await? {
        return Err(ApiError::NotFound(format!(
            "no unrevoked certificate {serial}"
        )));
    }
    tracing::info!(%serial, by = %c.name, reason = %body.reason, "certificate revoked");
    Ok(Json(
        serde_json::json!({ "serial": serial, "revoked": body.reason }),
    ))
}

#[derive(Serialize)]
struct AuditEvent {
    seq: i64,
    at: i64,
    event: String,
    device_id: Option<String>,
    detail: String,
    hash: Option<String>,
}

async fn audit(
    State(p): State<Arc<Provisioner>>,
    headers: HeaderMap,
) -> ApiResult<Vec<AuditEvent>> {
    caller(&p, &headers).await?;
    Ok(Json(
        p.db.audit_events()
            .await?
            .into_iter()
            .map(|e| AuditEvent {
                seq: e.seq,
                at: e.at,
                event: e.event,
                device_id: e.device_id,
                detail: e.detail,
                hash: e.hash,
            })
            .collect(),
    ))
}

#[derive(Serialize)]
struct ProfileView {
    name: String,
    key: String,
    /// Every key type the policy allows, the default first.
    keys: Vec<String>,
    usage: String,
    validity_days: u32,
    exportable: bool,
    /// Request parameters the profile's subject and alternative names use.
    parameters: Vec<String>,
}

async fn profiles(
    State(p): State<Arc<Provisioner>>,
    headers: HeaderMap,
) -> ApiResult<Vec<ProfileView>> {
    caller(&p, &headers).await?;
    Ok(Json(
        p.profiles
            .iter()
            .map(|(name, pr)| ProfileView {
                name: name.clone(),
                key: pr.key.clone(),
                keys: pr.allowed_keys().into_iter().map(str::to_string).collect(),
                usage: format!("{:?}", pr.usage),
                validity_days: pr.validity_days,
                exportable: pr.exportable,
                parameters: pr.parameters.clone(),
            })
            .collect(),
    ))
}

/// The API's paths below `/api/v1` (each documented in `docs/openapi.yaml`).
const PATHS: &[&str] = &[
    "/devices",
    "/devices/{id}",
    "/devices/{id}/revoke",
    "/certificates",
    "/certificates/{serial}",
    "/certificates/{serial}/revoke",
    "/audit",
    "/profiles",
    "/sessions",
];

pub fn router(p: Arc<Provisioner>) -> Router {
    let path = |i: usize| format!("/api/v1{}", PATHS[i]);
    Router::new()
        .route(&path(0), get(devices))
        .route(&path(1), get(device))
        .route(&path(2), post(revoke_device))
        .route(&path(3), get(certificates))
        .route(&path(4), get(certificate))
        .route(&path(5), post(revoke_certificate))
        .route(&path(6), get(audit))
        .route(&path(7), get(profiles))
        .with_state(p)
}

#[derive(Serialize)]
struct SessionView {
    reference: String,
    service: String,
    started_at: i64,
    ended_at: Option<i64>,
    batches: u64,
    /// `running`, `completed` or `failed`.
    state: &'static str,
    failure: Option<String>,
}

async fn sessions(
    State((p, engine)): State<(Arc<Provisioner>, Arc<keyward_ram::server::Engine>)>,
    headers: HeaderMap,
) -> ApiResult<Vec<SessionView>> {
    caller(&p, &headers).await?;
    let records = crate::sessions::list(&engine, &p.db, 200).await?;
    Ok(Json(
        records
            .into_iter()
            .map(|r| SessionView {
                reference: r.reference,
                service: r.service,
                started_at: r.started_at,
                ended_at: r.ended_at,
                batches: r.batches,
                state: match &r.outcome {
                    None => "running",
                    Some(Ok(())) => "completed",
                    Some(Err(_)) => "failed",
                },
                failure: r.outcome.and_then(Result::err),
            })
            .collect(),
    ))
}

/// `/api/v1/sessions`: this replica's running RAMoverHTTP sessions and the recently ended ones
/// of every replica.
pub fn sessions_router(p: Arc<Provisioner>, engine: Arc<keyward_ram::server::Engine>) -> Router {
    Router::new()
        .route(&format!("/api/v1{}", PATHS[8]), get(sessions))
        .with_state((p, engine))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_path_is_documented_in_the_openapi_file() {
        let doc = include_str!("../../../docs/openapi.yaml");
        for p in super::PATHS {
            assert!(
                doc.contains(&format!("\n  {p}:\n")),
                "{p} is not in docs/openapi.yaml"
            );
        }
        assert_eq!(
            doc.matches("\n  /").count(),
            super::PATHS.len(),
            "no extra paths"
        );
    }
}
