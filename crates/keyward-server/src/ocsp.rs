//! The OCSP responder (RFC 6960) at `/ocsp`: POST with `application/ocsp-request`, or GET with
//! the base64 request in the path; answers signed by the issuing CA, valid for an hour.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use keyward_ca::ocsp::{Request, Status, refusal, refused};
use keyward_ca::x509::Reason;

use crate::provision::Provisioner;

pub const PATH: &str = "/ocsp";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub fn router(p: Arc<Provisioner>) -> Router {
    Router::new()
        .route(PATH, post(by_post))
        .route("/ocsp/{request}", get(by_get))
        .with_state(p)
}

fn reply(der: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/ocsp-response")], der).into_response()
}

/// Answers a DER request.
pub async fn answer(p: &Provisioner, body: &[u8]) -> Vec<u8> {
    let Ok(req) = Request::parse(body) else {
        return refused(refusal::MALFORMED_REQUEST);
    };
    let mut statuses = Vec::with_capacity(req.ids.len());
    for id in &req.ids {
        let serial = hex::encode_upper(&id.serial);
        let st = match p.db.certificate(&serial).await {
            Ok(Some(c)) if c.state == "revoked" => Status::Revoked {
                at: c.revoked_at.unwrap_or(0),
                reason: Reason::from_name(c.revocation_reason.as_deref().unwrap_or_default()),
            },
            Ok(Some(_)) => Status::Good,
            Ok(None) => Status::Unknown,
            Err(e) => {
                tracing::error!(error = %e, "OCSP lookup");
                return refused(refusal::INTERNAL_ERROR);
            }
        };
        statuses.push((id.clone(), st));
    }
    let t = now();
    let Ok(mut ca) = p.ca.lock() else {
        return refused(refusal::INTERNAL_ERROR);
    };
    let status = |id: &keyward_ca::ocsp::CertId| {
        statuses
            .iter()
            .find(|(i, _)| i == id)
            .map_or(Status::Unknown, |(_, s)| *s)
    };
    ca.ocsp_response(&req, status, t, t + 3600)
        .unwrap_or_else(|_| refused(refusal::INTERNAL_ERROR))
}

async fn by_post(State(p): State<Arc<Provisioner>>, body: Bytes) -> Response {
    reply(answer(&p, &body).await)
}

async fn by_get(State(p): State<Arc<Provisioner>>, Path(request): Path<String>) -> Response {
    match base64::engine::general_purpose::STANDARD.decode(request.as_bytes()) {
        Ok(body) => reply(answer(&p, &body).await),
        Err(_) => reply(refused(refusal::MALFORMED_REQUEST)),
    }
}
