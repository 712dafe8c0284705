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
    /// Also provision genuine SmartCard-HSMs (chains to CardContact's DESRCACC100001).
    pub trust_cardcontact: bool,
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
            .map_err(|e| format!("database {}: {e}", redact(&url)))?,
    );
    let mut trust = keyward_cvc::TrustStore::new();
    trust.add_root(dd.root.clone())?;
    let external_root = if s.trust_cardcontact {
        let srca = keyward_cvc::Certificate::parse(keyward_cvc::CARDCONTACT_SRCA)?;
        let chr = String::from_utf8_lossy(&srca.body.chr).into_owned();
        trust.add_root(srca)?;
        Some(chr)
    } else {
        None
    };
    let provisioner = Provisioner {
        db: db.clone(),
        trust,
        external_root,
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
