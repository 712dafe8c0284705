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
    /// Have a blank element produced by the Device Issuer CA (`…/rt/produce`), then replace
    /// its single-use transport PIN with the device's own PIN, kept in --pin-file.
    Produce(ProduceArgs),
    /// Have the back end provision a key and certificate per a profile (`…/rt/provision`):
    /// the element generates the key under end-to-end secure messaging and stores the
    /// certificate. The PIN (from --pin-file) is verified locally first.
    Provision(ProvisionArgs),
    /// TLS client authentication with a key in the element (through PKCS#11): GET a URL from a
    /// server that requires client certificates and print its answer.
    Tls(crate::device_apps::TlsArgs),
    /// Sign collected data in the element: COSE_Sign1 or detached CMS.
    Sign(crate::device_apps::SignArgs),
    /// Keep the device's certificates valid: renew each before it expires, through the
    /// provisioning service, retrying with jittered backoff while the back end is unreachable.
    Run(crate::renewal::RunArgs),
}

#[derive(Args)]
pub struct ProvisionArgs {
    /// The provisioning service URL, e.g. http://127.0.0.1:8080/rt/provision.
    #[arg(long)]
    url: String,
    /// The element: pcsc:READER-PREFIX, t1:unix:PATH[?variant=…] or se:STATE-FILE.
    #[arg(long)]
    card: String,
    /// Certificate profile (tls-client, eap-tls, data-signing, or one of the server's).
    #[arg(long)]
    profile: String,
    /// The device's PIN, verified on the element before connecting.
    #[arg(long, default_value = "keyward-device.pin")]
    pin_file: PathBuf,
    /// Renewal: the serial of the certificate the new one replaces (revoked once the new key
    /// and certificate are stored).
    #[arg(long)]
    renew: Option<String>,
    /// Key type to ask for, if the profile allows more than its default (e.g. ec-p384).
    #[arg(long)]
    key: Option<String>,
    /// A request parameter the profile's subject or alternative names use (NAME=VALUE;
    /// repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// PEM bundle of CAs to trust for https:// instead of the system's.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Seconds per HTTP exchange.
    #[arg(long, default_value_t = 40)]
    timeout: u64,
}

#[derive(Args)]
pub struct ProduceArgs {
    /// The production service URL, e.g. http://127.0.0.1:8080/rt/produce.
    #[arg(long)]
    url: String,
    /// The element: pcsc:READER-PREFIX, t1:unix:PATH[?variant=…] or se:STATE-FILE.
    #[arg(long)]
    card: String,
    /// The device's own PIN: read from this file if it exists, else made up and written there
    /// (mode 0600). It never leaves the device.
    #[arg(long, default_value = "keyward-device.pin")]
    pin_file: PathBuf,
    /// PEM bundle of CAs to trust for https:// instead of the system's.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Seconds per HTTP exchange.
    #[arg(long, default_value_t = 40)]
    timeout: u64,
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
    /// Relay through the device's firewall: only commands under secure messaging and the plain
    /// ones production and provisioning need reach the element (for services that work end to
    /// end under SM, like examples/device-config).
    #[arg(long)]
    firewall: bool,
}

/// The element behind any transport as the RAMoverHTTP client's card.
pub(crate) struct Element(pub(crate) Box<dyn CardChannel + Send>);

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

/// An element whose PIN the device verified: a reset (a restarted session) selects the applet
/// and verifies the PIN again, so the new session finds the element as the first did.
pub(crate) struct Unlocked<'a> {
    pub(crate) element: &'a mut Element,
    pub(crate) pin: &'a [u8],
}

impl Card for Unlocked<'_> {
    fn atr(&mut self) -> Vec<u8> {
        self.element.atr()
    }

    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, String> {
        self.element.transmit(apdu)
    }

    fn reset(&mut self) -> Result<Vec<u8>, String> {
        let atr = self.element.reset()?;
        let mut hsm = Hsm::new(&mut self.element.0);
        hsm.select().map_err(|e| e.to_string())?;
        hsm.verify_pin(self.pin).map_err(|e| e.to_string())?;
        Ok(atr)
    }
}

pub fn run(cmd: DeviceCommand) -> anyhow::Result<()> {
    match cmd {
        DeviceCommand::Connect(a) => connect(&a),
        DeviceCommand::Produce(a) => produce(&a),
        DeviceCommand::Provision(a) => provision(&a),
        DeviceCommand::Tls(a) => {
            print!("{}", crate::device_apps::tls(&a)?);
            Ok(())
        }
        DeviceCommand::Sign(a) => {
            let n = crate::device_apps::sign(&a)?;
            println!("signed in the element: {n} bytes");
            Ok(())
        }
        DeviceCommand::Run(a) => crate::renewal::run(&a),
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
    let terminal = std::io::stderr().is_terminal();
    let mut show = |n: &Notification| {
        // A secret meant for the device's own use is never shown.
        let redacted;
        let n = if n.id == keyward_server::produce::NOTIFY_TRANSPORT_PIN {
            redacted = Notification {
                text: "sealed transport PIN received (`keyward device produce` opens and uses it)"
                    .into(),
                ..n.clone()
            };
            &redacted
        } else {
            n
        };
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
    let mut card = Element(channel);
    // A generic relay: without --firewall any service's plain commands pass (production and
    // provisioning use `keyward device produce|provision`, which always relay through it).
    let rules = a.firewall.then_some(keyward_ram::guard::BACK_END_SERVICES);
    let summary = match &a.pin_file {
        // A restarted session finds the PIN verified again, as the first did.
        Some(path) => {
            let text = Zeroizing::new(std::fs::read_to_string(path)?);
            let pin = text.trim_end_matches(['\r', '\n']).as_bytes();
            let mut unlocked = Unlocked {
                element: &mut card,
                pin,
            };
            relay(
                &mut unlocked,
                &a.url,
                a.ca_file.as_ref(),
                a.timeout,
                &mut show,
                rules,
            )?
        }
        None => relay(
            &mut card,
            &a.url,
            a.ca_file.as_ref(),
            a.timeout,
            &mut show,
            rules,
        )?,
    };
    println!(
        "session complete: {} round trips, {} APDUs, {} bytes sent, {} bytes received",
        summary.round_trips, summary.apdus, summary.bytes_sent, summary.bytes_received
    );
    Ok(())
}

/// Relays a service's batches to the element until the service is done.
/// Relays a session between `url` and the element; with `rules`, plain commands other than
/// those are refused on the device (`keyward_ram::guard`).
fn relay(
    card: &mut (dyn Card + Send),
    url: &str,
    ca_file: Option<&PathBuf>,
    timeout: u64,
    on_notify: &mut (dyn FnMut(&Notification) + Send),
    rules: Option<&[keyward_ram::guard::PlainRule]>,
) -> anyhow::Result<client::Summary> {
    let cfg = ClientConfig {
        timeout: Duration::from_secs(timeout),
        ca_file: ca_file.cloned(),
        ..ClientConfig::new(url)
    };
    let http = client::http_client(&cfg)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let Some(rules) = rules else {
        return rt
            .block_on(client::connect(&http, &cfg, card, on_notify))
            .with_context(|| format!("session with {url}"));
    };
    let mut guarded = keyward_ram::guard::Guarded::new(card, rules);
    let result = rt.block_on(client::connect(&http, &cfg, &mut guarded, on_notify));
    let refused: Vec<String> = guarded.refused.iter().map(hex::encode_upper).collect();
    match result {
        Ok(summary) if refused.is_empty() => Ok(summary),
        Ok(_) => bail!(
            "the back end sent plain commands the device refuses ({}): not trusted",
            refused.join(", ")
        ),
        Err(e) if !refused.is_empty() => Err(anyhow::anyhow!(e)).context(format!(
            "session with {url}; the device refused plain commands {}",
            refused.join(", ")
        )),
        Err(e) => Err(anyhow::anyhow!(e)).context(format!("session with {url}")),
    }
}

/// Relays a production session; returns the device id, the transport PIN and the summary.
pub(crate) fn produce_over(
    card: &mut Element,
    url: &str,
) -> anyhow::Result<(String, Zeroizing<String>, client::Summary)> {
    produce_session(card, url, None, 40)
}

fn produce_session(
    card: &mut Element,
    url: &str,
    ca_file: Option<&PathBuf>,
    timeout: u64,
) -> anyhow::Result<(String, Zeroizing<String>, client::Summary)> {
    // The transport PIN comes sealed to a key of this session's; it never crosses the network
    // in the clear.
    let mut receiver = keyward_server::produce::PinReceiver::new()?;
    let url = receiver.url(url);
    let mut on_notify = |n: &Notification| {
        if !receiver.notice(n) {
            eprintln!("[{}] {}", n.id, n.text);
        }
    };
    let summary = relay(
        card,
        &url,
        ca_file,
        timeout,
        &mut on_notify,
        Some(keyward_ram::guard::BACK_END_SERVICES),
    )?;
    let (device_id, transport) = receiver
        .finish()
        .context("the service ended without producing the element (or its PIN did not open)")?;
    Ok((device_id, transport, summary))
}

fn produce(a: &ProduceArgs) -> anyhow::Result<()> {
    let channel = open_transport(&a.card).with_context(|| format!("opening {}", a.card))?;
    let mut card = Element(channel);
    let (device_id, transport, summary) =
        produce_session(&mut card, &a.url, a.ca_file.as_ref(), a.timeout)?;
    // The transport PIN is single-use: replace it with the device's own PIN at once.
    let own = own_pin(&a.pin_file)?;
    let mut hsm = Hsm::new(&mut card.0);
    hsm.select()?;
    hsm.change_pin(transport.as_bytes(), own.as_bytes())
        .context("replacing the transport PIN")?;
    hsm.verify_pin(own.as_bytes())?;
    println!(
        "produced device {device_id} in {} round trips ({} APDUs, {} bytes sent, {} received); its PIN is in {}",
        summary.round_trips,
        summary.apdus,
        summary.bytes_sent,
        summary.bytes_received,
        a.pin_file.display()
    );
    Ok(())
}

/// The device's PIN from `path`, or a new random 8-digit PIN written there (0600).
fn own_pin(path: &std::path::Path) -> anyhow::Result<Zeroizing<String>> {
    if path.exists() {
        let text = Zeroizing::new(std::fs::read_to_string(path)?);
        let pin = text.trim_end_matches(['\r', '\n']);
        if !(6..=16).contains(&pin.len()) {
            bail!("{}: a PIN has 6 to 16 characters", path.display());
        }
        return Ok(Zeroizing::new(pin.to_string()));
    }
    let raw = keyward_crypto::random(8)?;
    let pin: String = raw.iter().map(|b| char::from(b'0' + b % 10)).collect();
    let pin = Zeroizing::new(pin);
    keyward_se::storage::write_atomically(path, format!("{}\n", pin.as_str()).as_bytes(), 0o600)?;
    Ok(pin)
}

/// The provisioning URL with the profile and further request parameters in its query.
pub(crate) fn provision_url(url: &str, query: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut u = reqwest::Url::parse(url).with_context(|| format!("URL {url}"))?;
    {
        let mut pairs = u.query_pairs_mut();
        for (k, v) in query {
            pairs.append_pair(k, v);
        }
    }
    Ok(u.into())
}

/// Relays a provisioning session for an element whose PIN is verified; returns the
/// certificate's serial and key id as the server announced them, and the summary.
pub(crate) fn provision_over(
    card: &mut Element,
    pin: &[u8],
    url: &str,
    ca_file: Option<&PathBuf>,
    timeout: u64,
) -> anyhow::Result<(String, client::Summary)> {
    let mut certificate = None;
    let mut on_notify = |n: &Notification| {
        if n.id == keyward_server::provision::NOTIFY_CERTIFICATE {
            certificate = Some(n.text.clone());
        } else {
            eprintln!("[{}] {}", n.id, n.text);
        }
    };
    let mut unlocked = Unlocked { element: card, pin };
    let summary = relay(
        &mut unlocked,
        url,
        ca_file,
        timeout,
        &mut on_notify,
        Some(keyward_ram::guard::BACK_END_SERVICES),
    );
    match (summary, certificate.take()) {
        (Ok(s), Some(c)) => Ok((c, s)),
        (Ok(_), None) => anyhow::bail!("the service ended without provisioning a certificate"),
        (Err(e), None) => Err(e),
        (Err(e), Some(c)) => Err(e.context(NotConfirmed(c))),
    }
}

/// A provisioning that failed after the back end announced its certificate (`certificate:SERIAL
/// key:KID`): the element may hold it, but the back end never recorded it as provisioned and
/// revokes it. Renewing it replaces it.
#[derive(Debug)]
pub(crate) struct NotConfirmed(pub String);

impl NotConfirmed {
    /// The announced certificate's serial.
    pub fn serial(&self) -> Option<&str> {
        self.0.strip_prefix("certificate:")?.split(' ').next()
    }
}

impl std::fmt::Display for NotConfirmed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the element may hold {}, which the back end did not confirm (it is revoked; provision again)",
            self.0
        )
    }
}

fn provision(a: &ProvisionArgs) -> anyhow::Result<()> {
    let mut channel = open_transport(&a.card).with_context(|| format!("opening {}", a.card))?;
    let text = Zeroizing::new(
        std::fs::read_to_string(&a.pin_file)
            .with_context(|| format!("reading {}", a.pin_file.display()))?,
    );
    let pin = text.trim_end_matches(['\r', '\n']);
    let mut hsm = Hsm::new(&mut channel);
    hsm.select()?;
    hsm.verify_pin(pin.as_bytes())
        .context("local PIN verification")?;
    let mut card = Element(channel);
    let mut query = vec![("profile", a.profile.as_str())];
    query.extend(a.renew.as_deref().map(|old| ("renew", old)));
    query.extend(a.key.as_deref().map(|k| ("key", k)));
    for p in &a.params {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("--param {p}: NAME=VALUE"))?;
        if matches!(k, "profile" | "renew" | "key") {
            anyhow::bail!("--param {k}: reserved, use --{k}");
        }
        query.push((k, v));
    }
    let url = provision_url(&a.url, &query)?;
    let (certificate, summary) = provision_over(
        &mut card,
        pin.as_bytes(),
        &url,
        a.ca_file.as_ref(),
        a.timeout,
    )?;
    println!(
        "provisioned {certificate} (profile {}) in {} round trips ({} APDUs, {} bytes sent, {} received)",
        a.profile, summary.round_trips, summary.apdus, summary.bytes_sent, summary.bytes_received
    );
    Ok(())
}
