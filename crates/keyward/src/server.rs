//! `keyward server`: the back end's RAMoverHTTP endpoint (`POST /rt/{service}`, `/metrics`).
//! This stage serves the diagnostic service `/rt/diag`; production and provisioning join it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use keyward_ram::server::{Diag, Engine, EngineConfig};

#[derive(Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
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

pub fn run(a: &ServerArgs) -> anyhow::Result<()> {
    let cfg = EngineConfig {
        max_sessions: a.max_sessions,
        idle_timeout: Duration::from_secs(a.idle_timeout),
        session_timeout: Duration::from_secs(a.session_timeout),
        secure_cookie: a.tls_cert.is_some(),
        ..EngineConfig::default()
    };
    let engine = Arc::new(Engine::new(cfg).service("diag", Diag));
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let addr: std::net::SocketAddr = tokio::net::lookup_host(&a.listen)
            .await?
            .next()
            .with_context(|| format!("no address for {}", a.listen))?;
        match (&a.tls_cert, &a.tls_key) {
            (Some(cert), Some(key)) => {
                tracing::info!("serving https://{addr}/rt/diag");
                keyward_ram::server::serve_tls(engine, addr, cert, key)
                    .await
                    .context("HTTPS server")
            }
            (None, None) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listening on {addr}"))?;
                tracing::info!("serving http://{}/rt/diag", listener.local_addr()?);
                keyward_ram::server::serve(engine, listener)
                    .await
                    .context("HTTP server")
            }
            _ => bail!("--tls-cert and --tls-key go together"),
        }
    })
}
