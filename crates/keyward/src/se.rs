//! `keyward se …`: create, serve and inspect virtual secure elements.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use keyward_cvc::Certificate;
use keyward_se::dev_pki::DevCa;
use keyward_se::{Applet, StateFile};

#[derive(Subcommand)]
pub enum SeCommand {
    /// Create a virtual secure element with a device key and a development certificate chain.
    New(NewArgs),
    /// Attach elements to vsmartcard's vpcd so PC/SC programs see them as cards.
    Serve(ServeArgs),
    /// Show an element's device id, certificate chain and version.
    Info(InfoArgs),
}

#[derive(Args)]
pub struct KeyArg {
    /// Master-key file (default: the state file's path with `.key` appended).
    #[arg(long)]
    master_key: Option<PathBuf>,
}

impl KeyArg {
    fn path(&self, state: &std::path::Path) -> PathBuf {
        self.master_key
            .clone()
            .unwrap_or_else(|| StateFile::default_key_path(state))
    }
}

#[derive(Args)]
pub struct NewArgs {
    #[arg(long)]
    state: PathBuf,
    #[command(flatten)]
    key: KeyArg,
    /// Directory of the development root and DICA (default: $KEYWARD_DEV_CA or ~/.local/share/keyward/dev-ca).
    #[arg(long, conflicts_with = "blank")]
    dev_ca: Option<PathBuf>,
    /// Create a blank element instead: a card manager holding only the Key for Secure
    /// Transport, no applet and no identity, waiting for production (`/rt/produce`).
    #[arg(long, requires = "kst")]
    blank: bool,
    /// The Key for Secure Transport (a key file: `kvn`, `enc`/`mac`/`dek` or one `key`).
    #[arg(long, requires = "blank")]
    kst: Option<PathBuf>,
}

#[derive(Args)]
pub struct ServeArgs {
    /// State file of an element; repeat to serve several, each paired with a --vpcd or --t1.
    #[arg(long, required = true)]
    state: Vec<PathBuf>,
    /// vpcd address (HOST:PORT, vsmartcard's default 127.0.0.1:35963), one per --state.
    #[arg(long, conflicts_with = "t1")]
    vpcd: Vec<String>,
    /// T=1 endpoint `unix:PATH` (a simulated I2C/SPI link), one per --state.
    #[arg(long)]
    t1: Vec<String>,
    /// T=1 variant: iso, nxp-i2c or gp.
    #[arg(long, default_value = "iso")]
    variant: String,
    /// Pace frames like a real bus: i2c:100k, i2c:400k, i2c:1m or spi:10m.
    #[arg(long)]
    bus: Option<String>,
    /// Master-key file for a single element (default: STATE.key).
    #[arg(long)]
    master_key: Option<PathBuf>,
}

#[derive(Args)]
pub struct InfoArgs {
    #[arg(long)]
    state: PathBuf,
    #[command(flatten)]
    key: KeyArg,
}

pub fn run(cmd: SeCommand) -> anyhow::Result<()> {
    match cmd {
        SeCommand::New(a) => new(&a),
        SeCommand::Serve(a) => serve(&a),
        SeCommand::Info(a) => info(&a),
    }
}

fn new(a: &NewArgs) -> anyhow::Result<()> {
    if let Some(kst) = &a.kst {
        let state = blank_element(kst)?;
        StateFile::create(&a.state, &a.key.path(&a.state), &state)?;
        println!("created blank secure element in {}", a.state.display());
        return Ok(());
    }
    let dir = a.dev_ca.clone().unwrap_or_else(DevCa::default_dir);
    let ca = DevCa::open_or_create(&dir)
        .with_context(|| format!("development CA in {}", dir.display()))?;
    let state = ca.new_element()?;
    let chr = state.device_chr().to_string();
    StateFile::create(&a.state, &a.key.path(&a.state), &state)?;
    println!("created secure element {chr} in {}", a.state.display());
    Ok(())
}

/// A blank element keyed with the KST from `path` and a random serial (its KDD).
pub fn blank_element(path: &std::path::Path) -> anyhow::Result<keyward_se::state::State> {
    let (kvn, keys) = read_key_file(path)?
        .scp03_key_set()
        .with_context(|| format!("KST file {}", path.display()))?;
    let mut kdd = [0u8; 10];
    kdd.copy_from_slice(&keyward_crypto::random(10)?);
    let set = keyward_se::state::ScpKeySet {
        enc: keyward_se::state::SecretBytes::new(keys.enc.to_vec()),
        mac: keyward_se::state::SecretBytes::new(keys.mac.to_vec()),
        dek: keyward_se::state::SecretBytes::new(keys.dek.to_vec()),
    };
    Ok(keyward_se::state::State::blank(set, kvn, kdd))
}

/// Reads a key file (see `keyward_sm::KeyFile`).
pub fn read_key_file(path: &std::path::Path) -> anyhow::Result<keyward_sm::KeyFile> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    keyward_sm::KeyFile::parse(&text).with_context(|| format!("key file {}", path.display()))
}

fn serve(a: &ServeArgs) -> anyhow::Result<()> {
    let endpoints = if a.t1.is_empty() { &a.vpcd } else { &a.t1 };
    if a.state.len() != endpoints.len() {
        bail!("give one --vpcd address or --t1 endpoint per --state file");
    }
    let variant = keyward_card::parse_variant(&a.variant)
        .with_context(|| format!("unknown variant {:?}", a.variant))?;
    let pace = a.bus.as_deref().map(parse_bus).transpose()?;
    if a.master_key.is_some() && a.state.len() > 1 {
        bail!("--master-key applies to a single element; use STATE.key files for several");
    }
    let stop = AtomicBool::new(false);
    let mut elements = Vec::new();
    for path in &a.state {
        let key = a
            .master_key
            .clone()
            .unwrap_or_else(|| StateFile::default_key_path(path));
        let (file, state) = StateFile::open(path, &key)?;
        tracing::info!(device = %state.device_chr(), state = %path.display(), "element loaded");
        elements.push(Applet::new(state, file));
    }
    std::thread::scope(|s| {
        for (applet, endpoint) in elements.iter_mut().zip(endpoints) {
            let stop = &stop;
            if a.t1.is_empty() {
                s.spawn(move || keyward_se::vpcd::serve(applet, endpoint, stop));
            } else {
                s.spawn(move || {
                    if let Err(e) = serve_t1(applet, endpoint, variant, pace) {
                        tracing::error!(endpoint, error = %e, "T=1 endpoint failed");
                    }
                });
            }
        }
    });
    Ok(())
}

fn parse_bus(s: &str) -> anyhow::Result<keyward_t1::sim::BusTiming> {
    use keyward_t1::sim::BusTiming;
    Ok(match s {
        "i2c:100k" => BusTiming::I2C_100K,
        "i2c:400k" => BusTiming::I2C_400K,
        "i2c:1m" => BusTiming::I2C_1M,
        "spi:10m" => BusTiming::SPI_10M,
        other => bail!("unknown bus {other:?} (i2c:100k, i2c:400k, i2c:1m, spi:10m)"),
    })
}

/// Serves one element on a Unix socket as a T=1 secure element; every connection is a power-on.
fn serve_t1(
    applet: &mut Applet<StateFile>,
    endpoint: &str,
    variant: keyward_t1::Variant,
    pace: Option<keyward_t1::sim::BusTiming>,
) -> anyhow::Result<()> {
    use keyward_t1::bus::CardRequest;
    let path = endpoint
        .strip_prefix("unix:")
        .with_context(|| format!("T=1 endpoint {endpoint:?} must be unix:PATH"))?;
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        bail!("{path}: another element is already serving there");
    }
    let _ = std::fs::remove_file(path);
    let listener =
        std::os::unix::net::UnixListener::bind(path).with_context(|| format!("binding {path}"))?;
    tracing::info!(path, ?variant, "serving T=1");
    keyward_t1::bus::serve_unix(&listener, variant, pace, |request| match request {
        CardRequest::PowerOn => {
            applet.reset();
            Vec::new()
        }
        CardRequest::Apdu(apdu) => applet.transmit(apdu),
        CardRequest::LinkError(e) => {
            tracing::warn!(error = %e, "T=1 connection ended");
            Vec::new()
        }
    })?;
    Ok(())
}

fn info(a: &InfoArgs) -> anyhow::Result<()> {
    let state = keyward_se::read_snapshot(&a.state, &a.key.path(&a.state))?;
    println!("device id:      {}", state.device_chr());
    if let Some(card) = &state.card {
        let kvns: Vec<String> = card.key_sets.keys().map(|k| format!("{k:02X}")).collect();
        println!("card life cycle: {:02X}", card.life_cycle);
        println!("card serial:    {}", hex::encode_upper(&card.kdd.0));
        println!("SCP03 key sets: {}", kvns.join(" "));
        match &card.applet {
            Some(a) => println!("applet state:   {:02X}", a.life_cycle),
            None => println!("applet state:   not installed"),
        }
    }
    println!(
        "applet version: {}.{}",
        keyward_se::VERSION.0,
        keyward_se::VERSION.1
    );
    println!(
        "initialized:    {}",
        if state.config.is_some() { "yes" } else { "no" }
    );
    if let Some(chain) = state.files.get(&0x2F02) {
        for cert in Certificate::parse_chain(&chain.0)? {
            let b = &cert.body;
            let role = b
                .chat
                .as_ref()
                .and_then(|c| c.authorization.first())
                .copied()
                .unwrap_or(0xFF);
            println!(
                "certificate:    CHR {} CAR {} role {role:02X} valid {}..{}",
                String::from_utf8_lossy(&b.chr),
                String::from_utf8_lossy(b.car.as_deref().unwrap_or_default()),
                b.effective.map(|d| d.to_string()).unwrap_or_default(),
                b.expiration.map(|d| d.to_string()).unwrap_or_default(),
            );
        }
    }
    println!("keys:           {}", state.keys.len());
    println!("files:          {}", state.files.len());
    Ok(())
}
