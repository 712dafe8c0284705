//! `keyward bench pkcs11`: the same in-process C_Sign loop (ECDSA P-256, RSA-2048) through
//! `libkeyward_pkcs11.so` on an embedded token, over a T=1 link paced like I2C at 400 kHz, and
//! over PC/SC (pcscd + vpcd), beside SoftHSM2 measured in the same run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use keyward_se::StateFile;
use keyward_se::dev_pki::DevCa;
use keyward_t1::sim::BusTiming;

use crate::bench::{SO_PIN_HEX, run_sign_loop, softhsm_rates};

#[derive(Args)]
pub struct Pkcs11Args {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// The module under test (default: libkeyward_pkcs11.so next to this binary).
    #[arg(long)]
    module: Option<PathBuf>,
    #[arg(long, default_value = "/usr/lib/softhsm/libsofthsm2.so")]
    softhsm_module: PathBuf,
    /// vpcd address for the PC/SC measurement.
    #[arg(long, default_value = "127.0.0.1:35963")]
    vpcd: String,
    /// PC/SC reader name of that vpcd port.
    #[arg(long, default_value = "Virtual PCD 00 00")]
    reader: String,
    /// Skip the PC/SC measurement (no pcscd).
    #[arg(long)]
    no_pcsc: bool,
}

/// A `keyward se serve` child, stopped (by PID) when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(args: &[&str]) -> anyhow::Result<Server> {
    Ok(Server(
        Command::new(std::env::current_exe()?)
            .args(["se", "serve"])
            .args(args)
            .env("KEYWARD_LOG", "warn")
            .spawn()?,
    ))
}

fn element(ca: &DevCa, path: &Path) -> anyhow::Result<()> {
    StateFile::create(path, &StateFile::default_key_path(path), &ca.new_element()?)?;
    Ok(())
}

/// C_Sign/s on the token a configuration file describes (initialized through the module).
fn module_rates(
    module: &Path,
    conf: &Path,
    slot: &str,
    seconds: f64,
) -> anyhow::Result<(f64, f64)> {
    std::fs::write(conf, slot)?;
    run_sign_loop(
        module,
        seconds,
        Some(SO_PIN_HEX),
        &[("KEYWARD_PKCS11_CONF", conf.as_os_str())],
    )
}

/// Bit-time bound of one exchange on the bus: command and response as NXP T=1 I-blocks (3-byte
/// prologue, 2-byte CRC, IFS 254, chained with R-block acknowledgements), each frame paying the
/// bus's per-frame latency.
fn exchange_bound(bus: BusTiming, command: usize, response: usize) -> Duration {
    let frames = |len: usize| {
        let blocks = len.div_ceil(254).max(1);
        // I-blocks plus one R-block per chained block.
        (len + 5 * blocks + 5 * (blocks - 1), 2 * blocks - 1)
    };
    let (c, cf) = frames(command);
    let (r, rf) = frames(response);
    let bits = ((c + r) as u64) * bus.bits_per_byte;
    Duration::from_micros(bits * 1_000_000 / bus.bit_rate + (cf + rf) as u64 * bus.latency_us)
}

pub fn run(a: &Pkcs11Args) -> anyhow::Result<()> {
    let module = match &a.module {
        Some(m) => m.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("binary directory")?
            .join("libkeyward_pkcs11.so"),
    };
    if !module.exists() {
        bail!(
            "{} not found (cargo build -p keyward-pkcs11)",
            module.display()
        );
    }
    let work = std::env::temp_dir().join(format!("keyward-bench-p11-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = run_in(a, &module, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn run_in(a: &Pkcs11Args, module: &Path, work: &Path) -> anyhow::Result<()> {
    let ca = DevCa::open_or_create(&work.join("dev-ca"))?;
    let conf = work.join("pkcs11.toml");
    let softhsm = softhsm_rates(&a.softhsm_module, a.seconds)?;

    let state = work.join("embedded.se");
    element(&ca, &state)?;
    let embedded = module_rates(
        module,
        &conf,
        &format!(
            "[[slot]]\ntype = \"embedded\"\nstate = \"{}\"\n",
            state.display()
        ),
        a.seconds,
    )?;
    println!(
        "embedded token vs SoftHSM2 (same in-process C_Sign loop, goal >= 2x):\n  \
         ECDSA P-256 {:.0}/s vs {:.0}/s = {:.2}x\n  RSA-2048    {:.0}/s vs {:.0}/s = {:.2}x",
        embedded.0,
        softhsm.0,
        embedded.0 / softhsm.0,
        embedded.1,
        softhsm.1,
        embedded.1 / softhsm.1
    );

    let state = work.join("t1.se");
    element(&ca, &state)?;
    let sock = work.join("t1.sock");
    let endpoint = format!("unix:{}", sock.display());
    let server = serve(&[
        "--state",
        &state.to_string_lossy(),
        "--t1",
        &endpoint,
        "--variant",
        "nxp-i2c",
        "--bus",
        "i2c:400k",
    ])?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let t1 = module_rates(
        module,
        &conf,
        &format!(
            "[[slot]]\ntype = \"t1\"\npath = \"{}\"\nvariant = \"nxp-i2c\"\n",
            sock.display()
        ),
        a.seconds,
    )?;
    drop(server);
    // SIGN 80 68 with extended lengths (header, Lc, Le and status word around the data):
    // ECDSA takes the 32-byte hash and answers ~72 bytes of DER; RSA-2048 takes the 51-byte
    // SHA-256 DigestInfo (the element pads) and answers 256 bytes.
    let ec_bound = exchange_bound(BusTiming::I2C_400K, 4 + 3 + 32 + 2, 72 + 2);
    let rsa_bound = exchange_bound(BusTiming::I2C_400K, 4 + 3 + 51 + 2, 256 + 2);
    println!(
        "T=1 (NXP) at I2C 400 kHz vs the bus's bit-time bound for one SIGN exchange:\n  \
         ECDSA P-256 {:.0}/s vs {:.0}/s bound = {:.0} %\n  RSA-2048    {:.0}/s vs {:.0}/s bound = {:.0} %",
        t1.0,
        1.0 / ec_bound.as_secs_f64(),
        100.0 * t1.0 * ec_bound.as_secs_f64(),
        t1.1,
        1.0 / rsa_bound.as_secs_f64(),
        100.0 * t1.1 * rsa_bound.as_secs_f64(),
    );

    if a.no_pcsc {
        return Ok(());
    }
    let state = work.join("pcsc.se");
    element(&ca, &state)?;
    let server = serve(&["--state", &state.to_string_lossy(), "--vpcd", &a.vpcd])?;
    let pcsc = wait_for_reader(&a.reader).and_then(|()| {
        module_rates(
            module,
            &conf,
            &format!("[[slot]]\ntype = \"pcsc\"\nreader = \"{}\"\n", a.reader),
            a.seconds,
        )
    });
    drop(server);
    let pcsc = pcsc?;
    println!(
        "PC/SC (pcscd + vpcd) vs SoftHSM2:\n  ECDSA P-256 {:.0}/s ({:.2}x)\n  RSA-2048    {:.0}/s ({:.2}x)",
        pcsc.0,
        pcsc.0 / softhsm.0,
        pcsc.1,
        pcsc.1 / softhsm.1
    );
    Ok(())
}

/// Waits until a card is present in the reader (pcscd must be running).
fn wait_for_reader(reader: &str) -> anyhow::Result<()> {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).context("PC/SC (is pcscd running?)")?;
    let name = std::ffi::CString::new(reader)?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if ctx
            .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
            .is_ok()
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("no card in reader {reader:?}")
}
