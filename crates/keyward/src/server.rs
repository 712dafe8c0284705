//! `keyward server`: the back end's RAMoverHTTP endpoint (`POST /rt/{service}`, `/metrics`):
//! production (`/rt/produce`) and the diagnostic service (`/rt/diag`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use keyward_ram::server::{Diag, Engine, EngineConfig};
use keyward_server::produce::{Naming, ProductionService};
use keyward_server::profile::Profile;
use keyward_server::provision::ProvisioningService;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long)]
    listen: Option<String>,
    /// Database: sqlite://FILE (default: keyward.db in the data directory) or postgres://….
    #[arg(long, env = "KEYWARD_DB")]
    db: Option<String>,
    /// Data directory: CA set, key files, the default SQLite database (default ./keyward-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// TOML configuration: listen, db, data_dir, country, mnemonic, device_validity_days,
    /// db_connections (flags override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Password of the CA set's encrypted key files (`keyward ca init --password-file`).
    #[arg(long, env = "KEYWARD_CA_PASSWORD_FILE")]
    ca_password_file: Option<PathBuf>,
    /// PIN of the token holding the CA key, when its URI names none.
    #[arg(long, env = "KEYWARD_CA_PIN_FILE")]
    ca_pin_file: Option<PathBuf>,
    /// PKCS#11 module for CA keys whose URI has no module-path.
    #[arg(long)]
    pkcs11_module: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Sessions open at once (beyond: 503 with Retry-After).
    #[arg(long, default_value_t = 10_000)]
    max_sessions: usize,
    /// Seconds a session waits for its device's next POST.
    #[arg(long, default_value_t = 60)]
    idle_timeout: u64,
    /// Longest a session may run, in seconds.
    #[arg(long, default_value_t = 600)]
    session_timeout: u64,
}

/// The configuration file's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    db: Option<String>,
    data_dir: Option<PathBuf>,
    country: Option<String>,
    mnemonic: Option<String>,
    device_validity_days: Option<u32>,
    db_connections: Option<u32>,
    /// The CRL distribution point written into certificates (default: this server's
    /// /crl/issuing.crl at the --listen address).
    crl_url: Option<String>,
    /// The OCSP responder named in certificates (default: this server's /ocsp).
    ocsp_url: Option<String>,
    /// Also provision genuine SmartCard-HSMs (device chains to CardContact's DESRCACC100001).
    #[serde(default)]
    trust_cardcontact: bool,
    /// Further CVC roots (files) whose devices this server provisions without having produced
    /// them (e.g. another production line's).
    #[serde(default)]
    external_roots: Vec<PathBuf>,
    /// Mark the web UI's session cookie `Secure` although this server speaks HTTP (behind a
    /// proxy that terminates TLS); with --tls-cert it always is.
    #[serde(default)]
    ui_secure_cookie: bool,
    /// Certificate profiles (`[profiles.NAME]`), beside the built-in ones.
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// A secret from the first line of a file.
/// CardContact's root (`trust_cardcontact`) and the configured root files.
fn external_roots(file: &FileConfig) -> anyhow::Result<Vec<keyward_cvc::Certificate>> {
    use anyhow::Context as _;
    let mut roots = Vec::new();
    if file.trust_cardcontact {
        roots.push(keyward_cvc::Certificate::parse(
            keyward_cvc::CARDCONTACT_SRCA,
        )?);
    }
    for path in &file.external_roots {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        roots.push(
            keyward_cvc::Certificate::parse(&bytes)
                .with_context(|| format!("{}: not a CV certificate", path.display()))?,
        );
    }
    Ok(roots)
}

fn secret_line(path: Option<&PathBuf>) -> anyhow::Result<Option<zeroize::Zeroizing<String>>> {
    let Some(path) = path else { return Ok(None) };
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    Ok(Some(zeroize::Zeroizing::new(
        text.lines().next().unwrap_or_default().to_string(),
    )))
}

pub use keyward_server::{Settings, services};

pub fn run(a: &ServerArgs) -> anyhow::Result<()> {
    let mut file: FileConfig = match &a.config {
        Some(p) => toml::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("configuration {}", p.display()))?,
        None => FileConfig::default(),
    };
    let external = external_roots(&file)?;
    let listen = a
        .listen
        .clone()
        .or(file.listen)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let data_dir = a
        .data_dir
        .clone()
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("keyward-data"));
    let db_url = a.db.clone().or(file.db);
    let naming = Naming {
        country: file.country.unwrap_or_else(|| "ZZ".to_string()),
        mnemonic: file.mnemonic.unwrap_or_else(|| "KWD".to_string()),
    };
    naming
        .device_id(1)
        .map_err(|e| anyhow::anyhow!("device naming: {e}"))?;
    let validity = file.device_validity_days.unwrap_or(20 * 365);
    let file_profiles = std::mem::take(&mut file.profiles);
    let connections = file.db_connections.unwrap_or(16);
    let cfg = EngineConfig {
        max_sessions: a.max_sessions,
        idle_timeout: Duration::from_secs(a.idle_timeout),
        session_timeout: Duration::from_secs(a.session_timeout),
        secure_cookie: a.tls_cert.is_some(),
        ..EngineConfig::default()
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let password = secret_line(a.ca_password_file.as_ref())?;
        let pin = secret_line(a.ca_pin_file.as_ref())?;
        let unlock = keyward_ca::ca_set::Unlock {
            password: password.as_ref().map(|p| p.as_bytes()),
            module: a.pkcs11_module.as_deref(),
            pin: pin.as_ref().map(|p| p.as_str()),
        };
        let public = format!(
            "{}://{listen}",
            if a.tls_cert.is_some() {
                "https"
            } else {
                "http"
            }
        );
        let (producer, provisioner) = services(Settings {
            data_dir: &data_dir,
            db_url: db_url.as_deref(),
            unlock,
            naming,
            validity_days: validity,
            db_connections: connections,
            profiles: file_profiles,
            external_roots: external,
            crl_url: Some(
                file.crl_url
                    .clone()
                    .unwrap_or_else(|| format!("{public}{}", keyward_server::crl::PATH)),
            ),
            ocsp_url: Some(
                file.ocsp_url
                    .clone()
                    .unwrap_or_else(|| format!("{public}{}", keyward_server::ocsp::PATH)),
            ),
        })
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
        let provisioner = Arc::new(provisioner);
        // Pending certificates older than the longest session belong to provisionings that
        // ended without the element's confirmation: revoked now and every minute, not only
        // when their device comes back.
        let db = provisioner.db.clone();
        let longest = i64::try_from(a.session_timeout).unwrap_or(i64::MAX);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let before = keyward_server::db::now().saturating_sub(longest);
                match db.revoke_interrupted(before).await {
                    Ok(serials) if !serials.is_empty() => {
                        tracing::warn!(
                            ?serials,
                            "revoked certificates of interrupted provisionings"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "revoking interrupted provisionings"),
                }
            }
        });
        let engine = Arc::new(
            Engine::new(cfg)
                .session_sink(Arc::new(keyward_server::sessions::DbSessions(
                    provisioner.db.clone(),
                )))
                .service("diag", Diag)
                .service("produce", ProductionService(Arc::new(producer)))
                .service("provision", ProvisioningService(provisioner.clone())),
        );
        let router = engine
            .clone()
            .router()
            .merge(keyward_server::api::sessions_router(
                provisioner.clone(),
                engine.clone(),
            ))
            .merge(keyward_server::crl::router(provisioner.clone()))
            .merge(keyward_server::ocsp::router(provisioner.clone()))
            .merge(keyward_server::ui::router(
                provisioner.clone(),
                Some(engine.clone()),
                a.tls_cert.is_some() || file.ui_secure_cookie,
            ))
            .merge(keyward_server::api::router(provisioner));
        let addr: std::net::SocketAddr = tokio::net::lookup_host(&listen)
            .await?
            .next()
            .with_context(|| format!("no address for {listen}"))?;
        match (&a.tls_cert, &a.tls_key) {
            (Some(cert), Some(key)) => {
                tracing::info!("serving https://{addr}/rt/produce, /rt/provision and /rt/diag");
                keyward_ram::server::serve_router_tls(router, addr, cert, key)
                    .await
                    .context("HTTPS server")
            }
            (None, None) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listening on {addr}"))?;
                tracing::info!(
                    "serving http://{}/rt/produce, /rt/provision and /rt/diag",
                    listener.local_addr()?
                );
                keyward_ram::server::serve_router(router, listener)
                    .await
                    .context("HTTP server")
            }
            _ => bail!("--tls-cert and --tls-key go together"),
        }
    })
}
