//! `keyward-device-config`: a Keyward back end with the standard services — `/rt/diag`,
//! production (`/rt/produce`), provisioning (`/rt/provision`), the CRL and OCSP — plus the
//! example service `/rt/device-config`.
//!
//! ```text
//! cargo run -p keyward-example-device-config -- --listen 127.0.0.1:8080 \
//!     --data-dir keyward-data --config device-config.toml
//! ```
//!
//! The configuration file is optional; its `[device_config]` table holds the service's
//! settings (`backend_url`, `ntp_servers`, `report_interval`, `min_report_interval`,
//! `max_report_interval`, `label`).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use keyward_example_device_config::{ConfigSettings, DeviceConfigService, DeviceConfigurator};
use keyward_ram::server::{Diag, Engine, EngineConfig};
use keyward_server::produce::{Naming, ProductionService};
use keyward_server::provision::ProvisioningService;
use keyward_server::{Settings, services};
use serde::Deserialize;

#[derive(Parser)]
#[command(
    name = "keyward-device-config",
    about = "Keyward back end with the example service /rt/device-config"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Data directory: CA set, key files, the default SQLite database.
    #[arg(long, default_value = "keyward-data")]
    data_dir: PathBuf,
    /// Database: sqlite://FILE (default: keyward.db in the data directory) or postgres://….
    #[arg(long, env = "KEYWARD_DB")]
    db: Option<String>,
    /// TOML file with a `[device_config]` table.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    device_config: Option<ConfigSettings>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEYWARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let file: FileConfig = match &args.config {
        Some(p) => toml::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("configuration {}", p.display()))?,
        None => FileConfig::default(),
    };
    let settings = file.device_config.unwrap_or_default();
    tokio::runtime::Runtime::new()?.block_on(serve(&args, settings))
}

async fn serve(args: &Args, settings: ConfigSettings) -> anyhow::Result<()> {
    let public = format!("http://{}", args.listen);
    let (producer, provisioner) = services(Settings {
        data_dir: &args.data_dir,
        db_url: args.db.as_deref(),
        unlock: keyward_ca::ca_set::Unlock::default(),
        naming: Naming {
            country: "ZZ".into(),
            mnemonic: "KWD".into(),
        },
        validity_days: 20 * 365,
        db_connections: 16,
        profiles: Default::default(),
        crl_url: Some(format!("{public}{}", keyward_server::crl::PATH)),
        ocsp_url: Some(format!("{public}{}", keyward_server::ocsp::PATH)),
        external_roots: Vec::new(),
    })
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    // The custom service shares provisioning's database and trust store.
    let configurator = DeviceConfigurator::new(&provisioner, settings)?;
    let provisioner = Arc::new(provisioner);
    let engine = Arc::new(
        Engine::new(EngineConfig::default())
            .service("diag", Diag)
            .service("produce", ProductionService(Arc::new(producer)))
            .service("provision", ProvisioningService(provisioner.clone()))
            .service("device-config", DeviceConfigService(Arc::new(configurator))),
    );
    let router = engine
        .router()
        .merge(keyward_server::crl::router(provisioner.clone()))
        .merge(keyward_server::ocsp::router(provisioner));
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(
        "serving http://{}/rt/produce, /rt/provision, /rt/device-config and /rt/diag",
        listener.local_addr()?
    );
    keyward_ram::server::serve_router(router, listener)
        .await
        .context("HTTP server")
}
