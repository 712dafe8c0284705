//! `keyward device …`: the device side of RAMoverHTTP — relays a back-end service's APDU
//! batches to the local secure element.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use keyward_card::{CardChannel, Hsm, open_transport};
use keyward_ram::client::{self, Card, ClientConfig, Notification};
use zeroize::Zeroizing;

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Connect the element to a RAMoverHTTP service (e.g. http://host:8080/rt/diag) and relay
    /// until the service is done.
    Connect(ConnectArgs),
}

#[derive(Args)]
pub struct ConnectArgs {
    /// The service URL.
    url: String,
    /// The element: pcsc:READER-PREFIX, t1:unix:PATH[?variant=…] or se:STATE-FILE.
    #[arg(long)]
    card: String,
    /// Verify the user PIN (read from this file) on the element before connecting, so it
    /// never crosses the network.
    #[arg(long)]
    pin_file: Option<PathBuf>,
    /// PEM bundle of CAs to trust for https:// instead of the system's.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Seconds per HTTP exchange.
    #[arg(long, default_value_t = 40)]
    timeout: u64,
}

/// The element behind any transport as the RAMoverHTTP client's card.
struct Element(Box<dyn CardChannel + Send>);

impl Card for Element {
    fn atr(&mut self) -> Vec<u8> {
        self.0.atr()
    }

    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, String> {
        self.0.transmit_raw(apdu).map_err(|e| e.to_string())
    }

    fn reset(&mut self) -> Result<Vec<u8>, String> {
        self.0.reset().map_err(|e| e.to_string())
    }
}

pub fn run(cmd: DeviceCommand) -> anyhow::Result<()> {
    match cmd {
        DeviceCommand::Connect(a) => connect(&a),
    }
}

fn connect(a: &ConnectArgs) -> anyhow::Result<()> {
    let mut channel = open_transport(&a.card).with_context(|| format!("opening {}", a.card))?;
    if let Some(path) = &a.pin_file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        );
        let pin = text.trim_end_matches(['\r', '\n']);
        if pin.is_empty() {
            bail!("{} holds no PIN", path.display());
        }
        let mut hsm = Hsm::new(&mut channel);
        hsm.select()?;
        hsm.verify_pin(pin.as_bytes())
            .context("local PIN verification")?;
        tracing::info!("PIN verified on the element");
    }
    let cfg = ClientConfig {
        timeout: Duration::from_secs(a.timeout),
        ca_file: a.ca_file.clone(),
        ..ClientConfig::new(&a.url)
    };
    let http = client::http_client(&cfg)?;
    let mut card = Element(channel);
    let terminal = std::io::stderr().is_terminal();
    let mut show = |n: &Notification| {
        if terminal {
            let eta = n
                .time_to_completion
                .map(|t| format!(" (about {t} s left)"))
                .unwrap_or_default();
            eprintln!("[{}] {}{eta}", n.id, n.text);
        } else {
            tracing::info!(id = n.id, "{}", n.text);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let summary = rt
        .block_on(client::connect(&http, &cfg, &mut card, &mut show))
        .with_context(|| format!("session with {}", a.url))?;
    println!(
        "session complete: {} round trips, {} APDUs, {} bytes sent, {} bytes received",
        summary.round_trips, summary.apdus, summary.bytes_sent, summary.bytes_received
    );
    Ok(())
}
