//! `keyward bench …`: measurements printed beside a named peer measured in the same run.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use keyward_apdu::{Command, ResponseView, StatusWord};
use keyward_se::dev_pki::DevCa;
use keyward_se::{AID, Applet, StateFile};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// APDU round trips through pcscd + vpcd, and C_Sign rates through OpenSC's PKCS#11 module
    /// → pcscd → element, beside SoftHSM2's rates for the same loop.
    Apdu(ApduArgs),
    /// Device-PKI costs: chain validations/s, attestation verifications/s, chip-authentication
    /// handshakes/s (host and element in one process), secure-messaging overhead per APDU.
    Pki(PkiArgs),
    /// T=1 on the simulated bus: throughput vs raw capacity, SIGN latency vs the bit-time bound,
    /// throughput under bit errors, engine CPU per block.
    T1(T1Args),
    /// C_Sign/s through libkeyward_pkcs11.so: embedded token vs SoftHSM2, over T=1 at I2C
    /// 400 kHz vs the bus bound, and over PC/SC.
    Pkcs11(crate::bench_pkcs11::Pkcs11Args),
    /// RAMoverHTTP on loopback: sessions/s, APDUs/s, memory per idle session, wire bytes per
    /// APDU.
    Ram(crate::bench_ram::RamArgs),
    /// A production line against a running server (`keyward server`): blank virtual
    /// elements produced through /rt/produce; devices/s, latency, round trips, bytes.
    Produce(crate::bench_produce::ProduceArgs),
    /// Provisioning against a running server: devices produced first (not measured), then
    /// provisioned through /rt/provision; provisionings/s, latency, round trips, bytes.
    Provision(crate::bench_produce::ProvisionArgs),
    /// The X.509 CA's CRL generation and OCSP answers/s, beside OpenSSL (`ca -gencrl`, the
    /// `ocsp` responder) doing the same in the same run.
    X509(crate::bench_x509::X509Args),
    /// (internal) One PKCS#11 C_Sign loop in this process; prints `ec=<per s> rsa=<per s>`.
    #[command(hide = true)]
    SignLoop(SignLoopArgs),
}

#[derive(Args)]
pub struct ApduArgs {
    /// vpcd address the benchmark element attaches to.
    #[arg(long, default_value = "127.0.0.1:35963")]
    vpcd: String,
    /// PC/SC reader name of that vpcd port.
    #[arg(long, default_value = "Virtual PCD 00 00")]
    reader: String,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    #[arg(long, default_value = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so")]
    opensc_module: PathBuf,
    #[arg(long, default_value = "/usr/lib/softhsm/libsofthsm2.so")]
    softhsm_module: PathBuf,
}

#[derive(Args)]
pub struct PkiArgs {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
}

#[derive(Args)]
pub struct T1Args {
    /// Exchanges per bit-error-rate measurement.
    #[arg(long, default_value_t = 200)]
    exchanges: u32,
}

#[derive(Args)]
pub struct SignLoopArgs {
    #[arg(long)]
    module: PathBuf,
    #[arg(long)]
    pin: String,
    /// Initialize the first slot's token first (SoftHSM) with this SO-PIN.
    #[arg(long)]
    init_token_so_pin: Option<String>,
    #[arg(long)]
    seconds: f64,
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Apdu(a) => apdu(&a),
        BenchCommand::Pki(a) => pki(&a),
        BenchCommand::T1(a) => t1(&a),
        BenchCommand::Pkcs11(a) => crate::bench_pkcs11::run(&a),
        BenchCommand::Ram(a) => crate::bench_ram::run(&a),
        BenchCommand::Produce(a) => crate::bench_produce::run(&a),
        BenchCommand::Provision(a) => crate::bench_produce::run_provision(&a),
        BenchCommand::X509(a) => crate::bench_x509::run(&a),
        BenchCommand::SignLoop(a) => {
            let (ec, rsa) = sign_loop(&a)?;
            println!("ec={ec:.1} rsa={rsa:.1}");
            Ok(())
        }
    }
}

const PIN: &str = "648219";
pub(crate) const SO_PIN_HEX: &str = "3537363231383830";

fn apdu(a: &ApduArgs) -> anyhow::Result<()> {
    let work = std::env::temp_dir().join(format!("keyward-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = apdu_in(a, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn apdu_in(a: &ApduArgs, work: &Path) -> anyhow::Result<()> {
    let ca = DevCa::open_or_create(&work.join("dev-ca"))?;
    let state_path = work.join("se.json");
    let file = StateFile::create(
        &state_path,
        &StateFile::default_key_path(&state_path),
        &ca.new_element()?,
    )?;
    let (file, state) = {
        drop(file);
        StateFile::open(&state_path, &StateFile::default_key_path(&state_path))?
    };
    let mut applet = Applet::new(state.clone(), file);
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let (stop, addr) = (stop.clone(), a.vpcd.clone());
        std::thread::spawn(move || keyward_se::vpcd::serve(&mut applet, &addr, &stop))
    };
    let result = measure_all(a, state);
    stop.store(true, Ordering::Relaxed);
    let _ = server.join();
    result
}

fn select_apdu() -> Vec<u8> {
    let mut v = vec![0x00, 0xA4, 0x04, 0x0C, AID.len() as u8];
    v.extend_from_slice(AID);
    v
}

fn measure_all(a: &ApduArgs, state: keyward_se::state::State) -> anyhow::Result<()> {
    let seconds = Duration::from_secs_f64(a.seconds);
    // Reference: the same APDU straight into an in-process element.
    let mut local = Applet::new(state, keyward_se::MemoryStore);
    let select = select_apdu();
    let local_rate = rate(seconds, || {
        local.transmit(&select);
        Ok(())
    })?;

    let ctx = pcsc::Context::establish(pcsc::Scope::User).context("PC/SC (is pcscd running?)")?;
    let reader = CString::new(a.reader.clone())?;
    let card = connect(&ctx, &reader)?;
    let mut buf = [0u8; 512];
    let pcsc_rate = rate(seconds, || {
        let r = card.transmit(&select, &mut buf)?;
        if r != [0x90, 0x00] {
            bail!("SELECT answered {r:02X?}");
        }
        Ok(())
    })?;
    println!(
        "APDU round trips/s: pcscd+vpcd {pcsc_rate:.0} (goal >= 10000), in-process {local_rate:.0}"
    );

    // Initialize for PKCS#11 use.
    let so_pin = hex::decode(SO_PIN_HEX)?;
    let mut init = vec![0x80, 2, 0, 1, 0x81, PIN.len() as u8];
    init.extend_from_slice(PIN.as_bytes());
    init.extend_from_slice(&[0x82, 8]);
    init.extend_from_slice(&so_pin);
    init.extend_from_slice(&[0x91, 1, 3]);
    let init = Command::new(0x80, 0x50, 0, 0).with_data(init).encode()?;
    let r = ResponseView::parse(card.transmit(&init, &mut buf)?)?;
    if r.sw != StatusWord::SUCCESS {
        bail!("INITIALIZE DEVICE answered {}", r.sw);
    }
    drop(card);

    let keyward = run_sign_loop(&a.opensc_module, a.seconds, None, &[])?;
    let softhsm = softhsm_rates(&a.softhsm_module, a.seconds)?;
    println!(
        "ECDSA P-256 C_Sign/s: keyward via OpenSC+pcscd {:.0}, SoftHSM2 {:.0}, ratio {:.2}",
        keyward.0,
        softhsm.0,
        keyward.0 / softhsm.0
    );
    println!(
        "RSA-2048 C_Sign/s: keyward via OpenSC+pcscd {:.0}, SoftHSM2 {:.0}, ratio {:.2}",
        keyward.1,
        softhsm.1,
        keyward.1 / softhsm.1
    );
    Ok(())
}

/// The C_Sign loop's rates on a fresh SoftHSM2 token (the peer every PKCS#11 rate is shown
/// against).
pub(crate) fn softhsm_rates(module: &Path, seconds: f64) -> anyhow::Result<(f64, f64)> {
    let dir = std::env::temp_dir().join(format!("keyward-bench-softhsm-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("tokens"))?;
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        ),
    )?;
    let rates = run_sign_loop(
        module,
        seconds,
        Some("1234567812345678"),
        &[("SOFTHSM2_CONF", conf.as_os_str())],
    );
    let _ = std::fs::remove_dir_all(&dir);
    rates
}

fn connect(ctx: &pcsc::Context, reader: &std::ffi::CStr) -> anyhow::Result<pcsc::Card> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match ctx.connect(reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY) {
            Ok(card) => {
                // Freshly attached: wait until the element answers.
                let mut buf = [0u8; 64];
                if card
                    .transmit(&select_apdu(), &mut buf)
                    .is_ok_and(|r| r == [0x90, 0x00])
                {
                    return Ok(card);
                }
            }
            Err(e) if Instant::now() > deadline => bail!("reader {reader:?}: {e}"),
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Calls `f` repeatedly for `d`, returning calls per second.
fn rate(d: Duration, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < d {
        f()?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Runs the C_Sign loop in a child process (so a module's environment, e.g. SOFTHSM2_CONF, is
/// set before it loads) and parses its `ec=… rsa=…` line.
pub(crate) fn run_sign_loop(
    module: &Path,
    seconds: f64,
    init_token_so_pin: Option<&str>,
    env: &[(&str, &std::ffi::OsStr)],
) -> anyhow::Result<(f64, f64)> {
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args([
        "bench",
        "sign-loop",
        "--pin",
        PIN,
        "--seconds",
        &seconds.to_string(),
        "--module",
    ])
    .arg(module);
    if let Some(so) = init_token_so_pin {
        cmd.args(["--init-token-so-pin", so]);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output()?;
    if !out.status.success() {
        bail!(
            "sign loop with {} failed: {}",
            module.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| -> anyhow::Result<f64> {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .context("sign loop printed no result")?
            .parse()
            .context("sign loop result")
    };
    Ok((field("ec=")?, field("rsa=")?))
}

fn sign_loop(a: &SignLoopArgs) -> anyhow::Result<(f64, f64)> {
    let p11 = Pkcs11::new(&a.module)?;
    p11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
    let pin = AuthPin::from(a.pin.clone());
    let slot = match &a.init_token_so_pin {
        Some(so) => {
            let slot = *p11.get_all_slots()?.first().context("no slot")?;
            let so = AuthPin::from(so.clone());
            p11.init_token(slot, &so, "bench")?;
            let s = p11.open_rw_session(slot)?;
            s.login(UserType::So, Some(&so))?;
            s.init_pin(&pin)?;
            s.logout()?;
            slot
        }
        None => *p11.get_slots_with_token()?.first().context("no token")?,
    };
    let session = p11.open_rw_session(slot)?;
    session.login(UserType::User, Some(&pin))?;
    let seconds = Duration::from_secs_f64(a.seconds);

    // P-256 (OID 1.2.840.10045.3.1.7) and RSA-2048 keys, generated inside the token.
    let ec_params = vec![0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
    let (_, ec_key) = session.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[
            Attribute::Token(true),
            Attribute::EcParams(ec_params),
            Attribute::Verify(true),
            Attribute::Id(vec![0x51]),
        ],
        &[
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sign(true),
            Attribute::Id(vec![0x51]),
        ],
    )?;
    let (_, rsa_key) = session.generate_key_pair(
        &Mechanism::RsaPkcsKeyPairGen,
        &[
            Attribute::Token(true),
            Attribute::ModulusBits(2048.into()),
            Attribute::PublicExponent(vec![1, 0, 1]),
            Attribute::Verify(true),
            Attribute::Id(vec![0x52]),
        ],
        &[
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sign(true),
            Attribute::Id(vec![0x52]),
        ],
    )?;
    let hash = [0x5Au8; 32];
    let mut digest_info = vec![
        0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    digest_info.extend_from_slice(&hash);
    let ec = rate(seconds, || {
        sign_once(&session, &Mechanism::Ecdsa, ec_key, &hash)
    })?;
    let rsa = rate(seconds, || {
        sign_once(&session, &Mechanism::RsaPkcs, rsa_key, &digest_info)
    })?;
    Ok((ec, rsa))
}

fn sign_once(
    session: &Session,
    mechanism: &Mechanism<'_>,
    key: ObjectHandle,
    data: &[u8],
) -> anyhow::Result<()> {
    session.sign(mechanism, key, data)?;
    Ok(())
}

fn pki(a: &PkiArgs) -> anyhow::Result<()> {
    use keyward_card::{CardChannel, InProcess, authenticate_device, read_c_devaut, select_applet};
    use keyward_cvc::{AuthenticatedRequest, TrustStore};
    use keyward_se::MemoryStore;

    let seconds = Duration::from_secs_f64(a.seconds);
    let work = std::env::temp_dir().join(format!("keyward-bench-pki-{}", std::process::id()));
    let ca = DevCa::open_or_create(&work);
    let _ = std::fs::remove_dir_all(&work);
    let ca = ca?;
    let mut trust = TrustStore::new();
    trust.add_root(ca.srca.clone())?;
    let today = keyward_se::dev_pki::today();

    // An initialized element with an attested P-256 key.
    let mut ch = InProcess(Applet::new(ca.new_element()?, MemoryStore));
    select_applet(&mut ch)?;
    let mut init = vec![0x80, 2, 0, 1, 0x81, 6];
    init.extend_from_slice(PIN.as_bytes());
    init.extend_from_slice(&[0x82, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0x91, 1, 3]);
    expect_ok(&mut ch, Command::new(0x80, 0x50, 0, 0).with_data(init))?;
    expect_ok(
        &mut ch,
        Command::new(0, 0x20, 0, 0x81).with_data(PIN.as_bytes().to_vec()),
    )?;
    let key = keyward_cvc::ec_key_template(
        &keyward_crypto::Curve::Secp256r1.domain(),
        keyward_cvc::oid::TA_ECDSA_SHA256,
    )?;
    let mut gakp = vec![0x5F, 0x29, 1, 0];
    keyward_apdu::tlv::write(&mut gakp, 0x7F49, &key)?;
    let attestation = expect_ok(
        &mut ch,
        Command::new(0, 0x46, 1, 0).with_data(gakp).with_le(65536),
    )?;
    let attestation = AuthenticatedRequest::parse(&attestation)?;
    let c_devaut = read_c_devaut(&mut ch)?;
    let device = trust.validate_c_devaut(&c_devaut, today)?;

    let chains = rate(seconds, || {
        trust.validate_c_devaut(&c_devaut, today)?;
        Ok(())
    })?;
    let attestations = rate(seconds, || {
        device.verify_attestation(&attestation)?;
        Ok(())
    })?;
    // Full handshakes: READ BINARY EF.C_DevAut, chain validation, MSE SET AT, GENERAL AUTHENTICATE.
    let mut slot = Some(ch);
    let handshakes = rate(seconds, || {
        let ch = slot.take().context("channel")?;
        let (_, sc) = authenticate_device(ch, &trust, today)?;
        let mut ch = sc.into_inner();
        select_applet(&mut ch)?;
        slot = Some(ch);
        Ok(())
    })?;
    let mut ch = slot.context("channel")?;
    // Plain vs secure messaging: READ BINARY of 32 bytes of EF.C_DevAut.
    let read = Command::new(0, 0xB1, 0x2F, 0x02)
        .with_data(vec![0x54, 2, 0, 0])
        .with_le(32);
    let plain = rate(seconds, || {
        ch.transmit(&read)?;
        Ok(())
    })?;
    let (_, mut sc) = authenticate_device(ch, &trust, today)?;
    let protected = rate(seconds, || {
        let r = sc.transmit(&read)?;
        anyhow::ensure!(r.data.len() == 32, "short read under SM");
        Ok(())
    })?;
    println!("chain validations/s (brainpoolP256r1, device <- DICA <- root): {chains:.0}");
    println!("attestation verifications/s (device brainpoolP256r1 + P-256 key): {attestations:.0}");
    println!("chip-authentication handshakes/s (host + element in one process): {handshakes:.0}");
    println!(
        "APDU (READ BINARY 32 bytes): plain {:.2} us, secure messaging {:.2} us, overhead {:.2} us ({:.1}x)",
        1e6 / plain,
        1e6 / protected,
        1e6 / protected - 1e6 / plain,
        plain / protected
    );
    Ok(())
}

fn expect_ok<C: keyward_card::CardChannel>(ch: &mut C, cmd: Command) -> anyhow::Result<Vec<u8>> {
    let r = ch.transmit(&cmd)?;
    anyhow::ensure!(
        r.sw == StatusWord::SUCCESS,
        "{:02X} {:02X} answered {}",
        cmd.cla,
        cmd.ins,
        r.sw
    );
    Ok(r.data)
}

fn t1(a: &T1Args) -> anyhow::Result<()> {
    use keyward_t1::sim::{BusTiming, Faults, SimBus, exchange};
    use keyward_t1::{CardEngine, HostConfig, HostEngine, Profile};

    let link = |profile: Profile| {
        let mut config = HostConfig::for_profile(&profile);
        config.ifsc = 254;
        config.ifsd = 254;
        let mut card = CardEngine::new(profile, 254, Vec::new());
        // As after the host's S(IFS 254) when it opened the link.
        card.set_ifsd(254);
        (HostEngine::new(profile, config), card)
    };
    let variants = [
        ("iso", Profile::ISO),
        ("nxp-i2c", Profile::NXP_I2C),
        ("gp", Profile::GP),
    ];
    let buses = [
        ("i2c:400k", BusTiming::I2C_400K),
        ("i2c:1m", BusTiming::I2C_1M),
        ("spi:10m", BusTiming::SPI_10M),
    ];
    let long: Vec<u8> = (0..65_535u32).map(|i| i as u8).collect();

    println!("Long APDUs (65,535-byte command, 2-byte response), IFSC = IFSD = 254, no faults:");
    for (vname, profile) in variants {
        for (bname, timing) in buses {
            let (mut host, mut card) = link(profile);
            let mut bus = SimBus::new(timing, Faults::default(), 1);
            let mut now = 0;
            let ex = exchange(&mut host, &mut card, &mut bus, &mut now, &long, &mut |_| {
                vec![0x90, 0x00]
            });
            ex.result.map_err(|e| anyhow::anyhow!("{e}"))?;
            let raw = timing.bit_rate as f64 / timing.bits_per_byte as f64;
            let effective = (long.len() + 2) as f64 / (ex.elapsed_us as f64 / 1e6);
            println!(
                "  {vname:8} {bname:9} {:>9.0} B/s of {:>9.0} B/s raw = {:.1} %",
                effective,
                raw,
                100.0 * effective / raw
            );
        }
    }

    println!("SIGN exchange (40 bytes in, 80 out) at I2C 400 kHz:");
    let timing = BusTiming::I2C_400K;
    let bound_us = (40 + 80) as f64 * timing.bits_per_byte as f64 * 1e6 / timing.bit_rate as f64;
    for (vname, profile) in variants {
        let elapsed_us = sign_exchange(link(profile), SimBus::new(timing, Faults::default(), 1))?;
        println!(
            "  {vname:8} {:.2} ms vs bit-time bound {:.2} ms ({:.2}x)",
            elapsed_us as f64 / 1000.0,
            bound_us / 1000.0,
            elapsed_us as f64 / bound_us
        );
    }

    println!(
        "The same SIGN with NXP polling (SEGT 100 us, MPOT 1 ms) and 20 ms of element processing:"
    );
    {
        use keyward_t1::sim::Polling;
        let polling = Polling {
            processing_us: 20_000,
            ..Polling::NXP
        };
        let bus = SimBus::new(timing, Faults::default(), 1).with_polling(polling);
        let elapsed_us = sign_exchange(link(Profile::NXP_I2C), bus)?;
        println!(
            "  nxp-i2c  {:.2} ms = bit-time bound {:.2} ms + processing 20 ms + framing, guard and polling {:.2} ms",
            elapsed_us as f64 / 1000.0,
            bound_us / 1000.0,
            elapsed_us as f64 / 1000.0 - bound_us / 1000.0 - 20.0
        );
    }
    println!(
        "Under bit errors (1,024-byte commands, I2C 400 kHz, NXP, {} exchanges per rate):",
        a.exchanges
    );
    let cmd = vec![0x33u8; 1024];
    let clean = {
        let (mut host, mut card) = link(Profile::NXP_I2C);
        let mut bus = SimBus::new(timing, Faults::default(), 1);
        let mut now = 0;
        exchange(&mut host, &mut card, &mut bus, &mut now, &cmd, &mut |_| {
            vec![0x90, 0x00]
        });
        (cmd.len() + 2) as f64 / (now as f64 / 1e6)
    };
    for ber in [1e-5, 1e-4, 1e-3] {
        let (mut host, mut card) = link(Profile::NXP_I2C);
        let mut bus = SimBus::new(
            timing,
            Faults {
                bit_error_rate: ber,
                ..Faults::default()
            },
            42,
        );
        let mut now = 0;
        let (mut ok, mut failed, mut executed_twice) = (0u32, 0u32, 0u32);
        for _ in 0..a.exchanges {
            let ex = exchange(&mut host, &mut card, &mut bus, &mut now, &cmd, &mut |_| {
                vec![0x90, 0x00]
            });
            if ex.executions > 1 {
                executed_twice += 1;
            }
            if ex.result.is_ok() {
                ok += 1
            } else {
                failed += 1
            }
        }
        let goodput = f64::from(ok) * (cmd.len() + 2) as f64 / (now as f64 / 1e6);
        println!(
            "  BER {ber:.0e}: {goodput:>7.0} B/s ({:.1} % of error-free), {ok} delivered, {failed} link errors, {executed_twice} executed twice",
            100.0 * goodput / clean
        );
    }

    // CPU: the engines and the simulated bus for a fault-free 65,535-byte exchange, wall clock.
    let (mut host, mut card) = link(Profile::NXP_I2C);
    let mut bus = SimBus::new(timing, Faults::default(), 1);
    let mut now = 0;
    let start = Instant::now();
    let rounds = 20;
    for _ in 0..rounds {
        exchange(&mut host, &mut card, &mut bus, &mut now, &long, &mut |_| {
            vec![0x90, 0x00]
        });
    }
    let blocks = host.frames_sent + host.frames_received;
    println!(
        "CPU per block (host + card engine + simulated bus, both directions counted): {:.2} us ({blocks} blocks)",
        start.elapsed().as_secs_f64() * 1e6 / blocks as f64
    );
    Ok(())
}

/// One SIGN-sized exchange (40 bytes in, 80 out) on the simulated bus; virtual µs taken.
fn sign_exchange(
    (mut host, mut card): (keyward_t1::HostEngine, keyward_t1::CardEngine),
    mut bus: keyward_t1::sim::SimBus,
) -> anyhow::Result<u64> {
    let mut now = 0;
    let ex = keyward_t1::sim::exchange(
        &mut host,
        &mut card,
        &mut bus,
        &mut now,
        &[0x5A; 40],
        &mut |_| vec![0xA5; 80],
    );
    ex.result.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(ex.elapsed_us)
}
