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
    #[arg(long)]
    dev_ca: Option<PathBuf>,
}

#[derive(Args)]
pub struct ServeArgs {
    /// State file of an element; repeat to serve several, each paired with a --vpcd address.
    #[arg(long, required = true)]
    state: Vec<PathBuf>,
    /// vpcd address (HOST:PORT, vsmartcard's default 127.0.0.1:35963), one per --state.
    #[arg(long, required = true)]
    vpcd: Vec<String>,
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
    let dir = a.dev_ca.clone().unwrap_or_else(DevCa::default_dir);
    let ca = DevCa::open_or_create(&dir)
        .with_context(|| format!("development CA in {}", dir.display()))?;
    let state = ca.new_element()?;
    let chr = state.device.chr.clone();
    StateFile::create(&a.state, &a.key.path(&a.state), &state)?;
    println!("created secure element {chr} in {}", a.state.display());
    Ok(())
}

fn serve(a: &ServeArgs) -> anyhow::Result<()> {
    if a.state.len() != a.vpcd.len() {
        bail!("give one --vpcd address per --state file");
    }
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
        tracing::info!(device = %state.device.chr, state = %path.display(), "element loaded");
        elements.push(Applet::new(state, file));
    }
    std::thread::scope(|s| {
        for (applet, addr) in elements.iter_mut().zip(&a.vpcd) {
            let stop = &stop;
            s.spawn(move || keyward_se::vpcd::serve(applet, addr, stop));
        }
    });
    Ok(())
}

fn info(a: &InfoArgs) -> anyhow::Result<()> {
    let state = keyward_se::read_snapshot(&a.state, &a.key.path(&a.state))?;
    println!("device id:      {}", state.device.chr);
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
                b.effective
                    .map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
                    .unwrap_or_default(),
                b.expiration
                    .map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
                    .unwrap_or_default(),
            );
        }
    }
    println!("keys:           {}", state.keys.len());
    println!("files:          {}", state.files.len());
    Ok(())
}
