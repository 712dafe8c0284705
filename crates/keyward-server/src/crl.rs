//! The issuing CA's CRL at `/crl/issuing.crl` (DER, `application/pkix-crl`): every revoked
//! certificate with its reason, valid for a day, numbered by its time of issue.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use keyward_ca::x509::{Reason, RevokedEntry};

use crate::provision::Provisioner;

pub const PATH: &str = "/crl/issuing.crl";

/// How long a CRL is valid (nextUpdate − thisUpdate).
const VALIDITY: i64 = 86_400;

pub fn router(p: Arc<Provisioner>) -> Router {
    Router::new().route(PATH, get(crl)).with_state(p)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Builds the current CRL.
pub async fn current(p: &Provisioner) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    let revoked = p.db.revoked_certificates().await?;
    let entries: Vec<RevokedEntry> = revoked
        .into_iter()
        .filter_map(|(serial, at, reason)| {
            Some(RevokedEntry {
                serial: hex::decode(serial).ok()?,
                revoked_at: at,
                reason: Reason::from_name(&reason),
            })
        })
        .collect();
    let t = now();
    let mut ca = p.ca.lock().map_err(|_| "CA lock")?;
    Ok(ca.crl(&entries, t, t + VALIDITY, u64::try_from(t).unwrap_or(0))?)
}

async fn crl(State(p): State<Arc<Provisioner>>) -> Response {
    match current(&p).await {
        Ok(der) => ([(header::CONTENT_TYPE, "application/pkix-crl")], der).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "CRL");
            (StatusCode::INTERNAL_SERVER_ERROR, "CRL unavailable").into_response()
        }
    }
}
