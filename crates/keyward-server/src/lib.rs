//! The Keyward back end: the device database (SQLite or PostgreSQL), secrets sealed at rest,
//! the server's data directory, and the RAMoverHTTP services — production (`/rt/produce`) and
//! provisioning (`/rt/provision`).
#![forbid(unsafe_code)]

pub mod api;
pub mod crl;
pub mod db;
pub mod ocsp;
pub mod produce;
pub mod profile;
pub mod provision;
pub mod seal;
pub mod sessions;
pub mod setup;
pub mod ui;
pub mod x509_ca;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use db::Db;
use produce::{Naming, Producer};
use profile::Profile;
use provision::Provisioner;
use setup::DataDir;

/// What the services are built from.
pub struct Settings<'a> {
    pub data_dir: &'a Path,
    pub db_url: Option<&'a str>,
    pub unlock: keyward_ca::ca_set::Unlock<'a>,
    pub naming: Naming,
    pub validity_days: u32,
    pub db_connections: u32,
    pub profiles: BTreeMap<String, Profile>,
    pub crl_url: Option<String>,
    pub ocsp_url: Option<String>,
    /// Roots of devices this server provisions without having produced them: CardContact's
    /// DESRCACC100001 for genuine SmartCard-HSMs, another production line's root.
    pub external_roots: Vec<keyward_cvc::Certificate>,
}

/// Opens the data directory and the database and builds the production and provisioning
/// services.
pub async fn services(
    s: Settings<'_>,
) -> Result<(Producer, Provisioner), Box<dyn std::error::Error + Send + Sync>> {
    let dd = DataDir::open_or_create(s.data_dir, &s.unlock)
        .map_err(|e| format!("data directory {}: {e}", s.data_dir.display()))?;
    let url = s
        .db_url
        .map_or_else(|| DataDir::default_db_url(s.data_dir), str::to_string);
    let db = Arc::new(
        Db::open(&url, s.db_connections)
            .await
            .map_err(|e| format!("database {}: {e}", redact(&url)))?
            .with_audit_key(dd.master.audit_key()),
    );
    let mut trust = keyward_cvc::TrustStore::new();
    trust.add_root(dd.root.clone())?;
    let mut external_roots = Vec::new();
    for root in s.external_roots {
        external_roots.push(String::from_utf8_lossy(&root.body.chr).into_owned());
        trust.add_root(root)?;
    }
    let provisioner = Provisioner {
        db: db.clone(),
        trust,
        external_roots,
        ca: Mutex::new(dd.x509),
        profiles: profile::profiles(&s.profiles)?,
        crl_url: s.crl_url,
        ocsp_url: s.ocsp_url,
    };
    let producer = Producer {
        db,
        dica: Mutex::new(dd.dica),
        root: dd.root,
        kst: dd.kst,
        kmc: dd.kmc,
        master: dd.master,
        naming: s.naming,
        validity_days: s.validity_days,
    };
    Ok((producer, provisioner))
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}
