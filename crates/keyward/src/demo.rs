//! `keyward demo`: the whole system as an IoT device meets it, on embedded defaults, in a
//! temporary directory. The CAs are created (CVC root and Device Issuer CA in password-encrypted
//! key files, X.509 root and issuing CA sealed under the server's master key); the back end
//! serves production and provisioning on loopback (SQLite); a blank virtual secure element sits
//! behind an NXP T=1 link on a simulated 1 MHz I2C bus. The device is produced, replaces its
//! transport PIN locally, gets `tls-client` and `data-signing` keys and certificates — and then
//! uses them through the PKCS#11 module like a device application: TLS client authentication
//! against a rustls server and `openssl s_server`, COSE_Sign1 and CMS signatures verified by
//! Keyward and `openssl cms`, and (where hostapd and eapol_test are installed and this runs as
//! root) WPA-Enterprise EAP-TLS against hostapd's RADIUS server.

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Args;
use keyward_ca::x509::{AltName, KeyUsage, Name, SubjectKey, Template, X509Ca, eku};
use keyward_ca::x509_read::Certificate;
use keyward_card::{CardChannel, Hsm, T1Channel};
use keyward_crypto::{Curve, EcKey};
use keyward_ram::server::{Engine, EngineConfig};
use keyward_se::{Applet, StateFile};
use keyward_server::produce::{Naming, ProductionService};
use keyward_server::provision::ProvisioningService;
use keyward_t1::params::{LinkParams, nxp_atr};
use keyward_t1::sim::BusTiming;
use keyward_t1::{CardEngine, Profile, Variant};

#[derive(Args)]
pub struct DemoArgs {
    /// Keep everything (data directory, element, certificates, logs) in this directory.
    #[arg(long, alias = "dir")]
    keep: Option<PathBuf>,
    /// The element behind pcscd + vsmartcard's vpcd (reader "Virtual PCD 00 00") instead of
    /// the simulated I2C bus; a running pcscd is reused, or one is started and stopped.
    #[arg(long)]
    pcsc: bool,
    /// Every phase must run: a phase skipped for a missing peer (EAP-TLS without hostapd,
    /// eapol_test or root) fails the demo instead.
    #[arg(long)]
    strict: bool,
}

/// The reader vpcd offers (its first slot).
const VPCD_READER: &str = "Virtual PCD 00 00";
const VPCD_ADDR: &str = "127.0.0.1:35963";

/// How the device reaches its element.
#[derive(Clone, Copy)]
enum Link {
    I2c,
    Pcsc,
}

/// What the demo reports at the end.
#[derive(Default)]
struct Report {
    device_id: String,
    certificates: Vec<(String, String, String)>,
    round_trips: u64,
    bytes: u64,
    phases: Vec<(String, Duration)>,
    checks: Vec<String>,
    /// Phases that could not run here, with the reason.
    skipped: Vec<String>,
    /// The X.509 chain the certificates were validated along.
    chain: String,
    /// A phase that cannot run here fails the demo (`--strict`).
    strict: bool,
}

/// Runs one phase: prints it, times it, names it in a failure.
fn phase<T>(
    report: &mut Report,
    name: &str,
    f: impl FnOnce(&mut Report) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let n = report.phases.len() + 1;
    println!("[{n:>2}] {name} …");
    let start = Instant::now();
    let r = f(report).with_context(|| format!("phase {n} ({name}) failed"));
    let took = start.elapsed();
    if r.is_ok() {
        println!("     done in {:.2} s", took.as_secs_f64());
    }
    report.phases.push((name.to_string(), took));
    r
}

fn check(report: &mut Report, what: String) {
    println!("     ✓ {what}");
    report.checks.push(what);
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let (dir, temporary) = match args.keep {
        Some(d) => (d, false),
        None => (
            std::env::temp_dir().join(format!("keyward-demo-{}", std::process::id())),
            true,
        ),
    };
    let link = if args.pcsc { Link::Pcsc } else { Link::I2c };
    let result = run_in(&dir, link, args.strict);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("everything is kept in {}", dir.display());
    }
    result
}

/// Serves the element on `socket` until `stop`, one host at a time, like a secure element on
/// an I2C bus (each connection is a power cycle).
fn spawn_element(
    state_path: &Path,
    socket: &Path,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<()>>> {
    let (file, state) = StateFile::open(state_path, &StateFile::default_key_path(state_path))?;
    let listener =
        UnixListener::bind(socket).with_context(|| format!("binding {}", socket.display()))?;
    listener.set_nonblocking(true)?;
    Ok(std::thread::spawn(move || {
        let mut applet = Applet::new(state, file);
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false)?;
                    applet.reset();
                    serve_connection(stream, &mut applet)?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }))
}

fn serve_connection(
    stream: std::os::unix::net::UnixStream,
    applet: &mut Applet<StateFile>,
) -> anyhow::Result<()> {
    let profile = Profile::NXP_I2C;
    let mut bus = keyward_t1::bus::UnixBus::new(stream, profile).paced(BusTiming::I2C_1M);
    let mut engine = CardEngine::new(
        profile,
        254,
        nxp_atr(
            LinkParams {
                bwt_ms: 1000,
                ifsc: 254,
            },
            b"KEYWARD",
        ),
    );
    let mut app = |apdu: &[u8]| applet.transmit(apdu);
    keyward_t1::bus::serve_card(&mut bus, &mut engine, &mut app, Duration::from_millis(300))?;
    Ok(())
}

/// A process the demo started, stopped (and its group) when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(port: u16) -> anyhow::Result<()> {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!("nothing listens on port {port}")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs this program with `args` (a device application), the PKCS#11 configuration in the
/// environment; returns its standard output.
fn keyward(p11_conf: &Path, args: &[&str]) -> anyhow::Result<String> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .args(args)
        .env("KEYWARD_PKCS11_CONF", p11_conf)
        .env("KEYWARD_LOG", "warn")
        .output()?;
    ensure!(
        out.status.success(),
        "keyward {}: {}",
        args.first().copied().unwrap_or_default(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn write_pem(path: &Path, certs: &[&[u8]]) -> anyhow::Result<()> {
    let text: String = certs
        .iter()
        .map(|c| keyward_ca::pem::certificate(c))
        .collect();
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A TLS server identity: its CA's certificate, its chain and its SEC1 key.
struct Identity {
    ca: Vec<u8>,
    chain: Vec<Vec<u8>>,
    key: Vec<u8>,
}

/// A TLS server identity for `name` from a CA of the back end's own.
fn backend_identity(name: &str) -> anyhow::Result<Identity> {
    let now = keyward_device::now();
    let mut ca = X509Ca::self_signed(
        Box::new(keyward_ca::SoftwareKey::new(EcKey::generate(
            Curve::Secp256r1,
        )?)),
        &Name::common_name("Demo Backend CA"),
        now - 3600,
        now + 86_400,
    )?;
    let key = EcKey::generate(Curve::Secp256r1)?;
    let issued = ca.issue(
        &Template {
            subject: Name::common_name(name),
            not_before: now - 60,
            not_after: now + 86_400,
            key_usage: vec![KeyUsage::DigitalSignature],
            extended_key_usage: vec![eku::SERVER_AUTH],
            alt_names: vec![AltName::Dns(name.into())],
            ca: None,
            crl_url: None,
            ocsp_url: None,
            attestation: None,
        },
        &SubjectKey::Ec {
            curve: Curve::Secp256r1,
            point: key.public_point().to_vec(),
        },
    )?;
    Ok(Identity {
        ca: ca.certificate.clone(),
        chain: vec![issued.der],
        key: keyward_ca::der::ec_private_key(&key),
    })
}

/// The element attached to vpcd until `stop`; a pcscd of the demo's own if none runs.
fn spawn_vpcd_element(
    state_path: &Path,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(std::thread::JoinHandle<anyhow::Result<()>>, Option<Child>)> {
    let running = Command::new("pgrep")
        .args(["-x", "pcscd"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let start_pcscd = || -> anyhow::Result<Child> {
        Ok(Child(
            Command::new("pcscd")
                .arg("-f")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context(
                    "starting pcscd (install pcscd and vsmartcard-vpcd: scripts/install-deps)",
                )?,
        ))
    };
    let mut pcscd = if running { None } else { Some(start_pcscd()?) };
    let (file, state) = StateFile::open(state_path, &StateFile::default_key_path(state_path))?;
    let serving = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut applet = Applet::new(state, file);
        keyward_se::vpcd::serve(&mut applet, VPCD_ADDR, &serving);
        Ok(())
    });
    let ready = || {
        keyward_card::open_transport(&format!("pcsc:{VPCD_READER}"))
            .ok()
            .is_some_and(|ch| {
                let mut hsm = Hsm::new(ch);
                let mut r = hsm.channel().transmit_raw(&[0x00, 0xA4, 0x04, 0x00, 0x00]);
                r.as_mut().is_ok_and(|r| r.len() >= 2)
            })
    };
    // vpcd binds a fixed port; while an earlier socket still holds it (TIME_WAIT lasts a
    // minute), pcscd comes up without the reader. A pcscd of our own is started again a little
    // later, for up to about 70 s; a running one is waited for.
    for _attempt in 0..12 {
        let deadline = Instant::now() + Duration::from_secs(6);
        while Instant::now() < deadline {
            if ready() {
                return Ok((thread, pcscd));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        if let Some(old) = pcscd.take() {
            // Stopped (dropped) before its successor starts.
            drop(old);
            std::thread::sleep(Duration::from_secs(3));
            pcscd = Some(start_pcscd()?);
        }
    }
    stop.store(true, Ordering::SeqCst);
    drop(pcscd);
    let _ = thread.join();
    bail!(
        "the element did not appear in PC/SC reader {VPCD_READER:?} (is vsmartcard-vpcd installed?)"
    )
}

fn run_in(dir: &Path, link: Link, strict: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let data = dir.join("keyward-data");
    let state_path = dir.join("element.state");
    let socket = dir.join("element.sock");
    for stale in [
        state_path.clone(),
        StateFile::default_key_path(&state_path),
        socket.clone(),
    ] {
        let _ = std::fs::remove_file(stale);
    }
    let mut report = Report {
        strict,
        ..Report::default()
    };
    println!("Keyward demo in {}", dir.display());

    // 1. The CAs.
    let password = zeroize::Zeroizing::new(hex::encode(&keyward_crypto::random(16)?[..]));
    phase(&mut report, "certification authorities", |r| {
        if !keyward_ca::ca_set::CaSet::exists(&data.join("ca")) {
            std::fs::create_dir_all(&data)?;
            keyward_se::storage::write_atomically(
                &data.join("ca-password"),
                password.as_bytes(),
                0o600,
            )?;
            keyward_ca::ca_set::CaSet::init(
                &data.join("ca"),
                &keyward_ca::ca_set::KeyHome::Encrypted {
                    password: password.as_bytes(),
                },
                "ZZ",
                keyward_se::dev_pki::today(),
            )?;
        }
        check(
            r,
            "CVC root (C0) and Device Issuer CA (80), brainpoolP256r1, keys in password-encrypted files".into(),
        );
        Ok(())
    })?;
    let password = zeroize::Zeroizing::new(
        std::fs::read_to_string(data.join("ca-password")).unwrap_or_default(),
    );

    // 2. The back end.
    let rt = tokio::runtime::Runtime::new()?;
    let (url, db, server) = phase(
        &mut report,
        "back end: production and provisioning services",
        |r| {
            let (producer, provisioner) = rt
                .block_on(crate::server::services(crate::server::Settings {
                    data_dir: &data,
                    db_url: None,
                    unlock: keyward_ca::ca_set::Unlock {
                        password: Some(password.as_bytes()),
                        ..Default::default()
                    },
                    naming: Naming {
                        country: "ZZ".into(),
                        mnemonic: "KWD".into(),
                    },
                    validity_days: 20 * 365,
                    db_connections: 4,
                    profiles: Default::default(),
                    crl_url: None,
                    ocsp_url: None,
                    external_roots: Vec::new(),
                }))
                .map_err(|e| anyhow::anyhow!(e))?;
            let db = producer.db.clone();
            let engine = Arc::new(
                Engine::new(EngineConfig::default())
                    .service("produce", ProductionService(Arc::new(producer)))
                    .service("provision", ProvisioningService(Arc::new(provisioner))),
            );
            let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
            let url = format!("http://{}/rt", listener.local_addr()?);
            let server = rt.spawn(keyward_ram::server::serve(engine, listener));
            check(
                r,
                format!(
                    "RAMoverHTTP at {url}/produce and /provision; SQLite {}; X.509 root and issuing CA (P-256) sealed in {}",
                    data.join("keyward.db").display(),
                    data.join("x509").display()
                ),
            );
            Ok((url, db, server))
        },
    )?;

    // 3. The element.
    let stop = Arc::new(AtomicBool::new(false));
    let title = match link {
        Link::I2c => "blank secure element on the I2C bus",
        Link::Pcsc => "blank secure element in a PC/SC reader (pcscd + vpcd)",
    };
    let (element, _pcscd) = phase(&mut report, title, |r| {
        let state = crate::se::blank_element(&keyward_server::setup::DataDir::kst_path(&data))?;
        drop(StateFile::create(
            &state_path,
            &StateFile::default_key_path(&state_path),
            &state,
        )?);
        let (element, pcscd, how) = match link {
            Link::I2c => (
                spawn_element(&state_path, &socket, stop.clone())?,
                None,
                "behind NXP T=1 on a simulated 1 MHz I2C bus".to_string(),
            ),
            Link::Pcsc => {
                let (e, p) = spawn_vpcd_element(&state_path, stop.clone())?;
                (
                    e,
                    p,
                    format!("in PC/SC reader {VPCD_READER:?} (pcscd + vsmartcard-vpcd)"),
                )
            }
        };
        check(
            r,
            format!("card manager with the Key for Secure Transport only, {how}"),
        );
        Ok((element, pcscd))
    })?;
    let sock = socket.to_str().unwrap_or_default().to_string();
    let connect = || -> Result<Box<dyn CardChannel + Send>, keyward_card::CardError> {
        match link {
            Link::I2c => Ok(Box::new(T1Channel::connect_unix(&sock, Variant::NxpI2c)?)),
            Link::Pcsc => keyward_card::open_transport(&format!("pcsc:{VPCD_READER}")),
        }
    };
    let slot = match link {
        Link::I2c => format!(
            "[[slot]]\ntype = \"t1\"\npath = \"{}\"\nvariant = \"nxp-i2c\"\n",
            socket.display()
        ),
        Link::Pcsc => format!("[[slot]]\ntype = \"pcsc\"\nreader = \"{VPCD_READER}\"\n"),
    };

    let access = Access {
        connect: &connect,
        slot: &slot,
    };
    let outcome = device_phases(&mut report, dir, &data, &url, &db, &rt, &access);
    stop.store(true, Ordering::SeqCst);
    let joined = element
        .join()
        .map_err(|_| anyhow::anyhow!("element thread panicked"));
    server.abort();
    outcome?;
    joined??;
    summary(&report);
    Ok(())
}

/// How the device and its applications reach the element: a link for the device's own
/// sessions, a PKCS#11 slot configuration for the applications.
#[derive(Clone, Copy)]
struct Access<'a> {
    connect: &'a dyn Fn() -> Result<Box<dyn CardChannel + Send>, keyward_card::CardError>,
    slot: &'a str,
}

fn device_phases(
    report: &mut Report,
    dir: &Path,
    data: &Path,
    url: &str,
    db: &Arc<keyward_server::db::Db>,
    rt: &tokio::runtime::Runtime,
    access: &Access<'_>,
) -> anyhow::Result<()> {
    let Access { connect, slot } = *access;
    // 4. Production.
    let (device_id, transport) = phase(
        report,
        "production over RAMoverHTTP (SCP03 end to end)",
        |r| {
            let mut device = crate::device::Element(connect()?);
            let (device_id, transport, summary) =
                crate::device::produce_over(&mut device, &format!("{url}/produce"))?;
            r.round_trips += summary.round_trips;
            r.bytes += summary.bytes_sent + summary.bytes_received;
            let record = rt
                .block_on(db.device_by_id(&device_id))?
                .context("no device record")?;
            ensure!(record.state == keyward_server::db::DeviceState::Produced);
            check(
                r,
                format!(
                    "produced as {device_id} in {} round trips ({} bytes): applet installed, device key certified, card-unique keys; transport PIN received sealed",
                    summary.round_trips,
                    summary.bytes_sent + summary.bytes_received
                ),
            );
            r.device_id = device_id.clone();
            Ok((device_id, transport))
        },
    )?;

    // 5. The device's own PIN.
    let pin = hex::encode(&keyward_crypto::random(4)?[..]);
    let pin_file = dir.join("device.pin");
    phase(report, "device PIN", |r| {
        let mut hsm = Hsm::new(connect()?);
        hsm.select()?;
        hsm.change_pin(transport.as_bytes(), pin.as_bytes())?;
        hsm.verify_pin(pin.as_bytes())?;
        keyward_se::storage::write_atomically(&pin_file, pin.as_bytes(), 0o600)?;
        check(
            r,
            "transport PIN replaced by the device's own, on the element (it never crosses the network)".into(),
        );
        Ok(())
    })?;

    // 6-7. Provisioning.
    let root = std::fs::read(data.join("x509/root.der"))?;
    let issuing = std::fs::read(data.join("x509/issuing.der"))?;
    for profile in ["tls-client", "data-signing"] {
        phase(report, &format!("provisioning {profile}"), |r| {
            let mut hsm = Hsm::new(connect()?);
            hsm.select()?;
            hsm.verify_pin(pin.as_bytes())?;
            let mut link = crate::device::Element(hsm.into_channel());
            let (certificate, summary) = crate::device::provision_over(
                &mut link,
                pin.as_bytes(),
                &crate::device::provision_url(
                    &format!("{url}/provision"),
                    &[("profile", profile)],
                )?,
                None,
                40,
            )?;
            r.round_trips += summary.round_trips;
            r.bytes += summary.bytes_sent + summary.bytes_received;
            let issued = rt
                .block_on(db.device_certificates(&device_id))?
                .into_iter()
                .find(|c| c.state == "active" && c.profile == profile)
                .context("no active certificate")?;
            let leaf = hex::decode(&issued.der)?;
            let path = keyward_ca::x509_read::validate_chain(
                &leaf,
                std::slice::from_ref(&issuing),
                std::slice::from_ref(&root),
                keyward_device::now(),
                &|_| false,
            )?;
            r.chain = path.join(" <- ");
            check(
                r,
                format!(
                    "{certificate} in {} round trips: key generated in the element under secure messaging, attestation verified, certificate stored; chain {}",
                    summary.round_trips, r.chain
                ),
            );
            let cert = Certificate::parse(&leaf)?;
            r.certificates.push((
                profile.to_string(),
                cert.subject_text(),
                hex::encode_upper(cert.serial),
            ));
            Ok(())
        })?;
    }

    // The device applications use the keys through the PKCS#11 module, over the same link.
    let p11 = dir.join("pkcs11.toml");
    std::fs::write(&p11, slot)?;
    let root_pem = dir.join("root.pem");
    let issuing_pem = dir.join("issuing.pem");
    write_pem(&root_pem, &[&root])?;
    write_pem(&issuing_pem, &[&issuing])?;
    let module = crate::device_apps::default_module().context(
        "libkeyward_pkcs11.so is not beside this program (cargo build -p keyward-pkcs11)",
    )?;
    let module_s = module.display().to_string();
    let pin_s = pin_file.display().to_string();
    let issuing_s = issuing_pem.display().to_string();

    // 8. TLS client authentication.
    phase(report, "TLS client authentication through PKCS#11", |r| {
        let Identity {
            ca: backend_ca,
            chain,
            key,
        } = backend_identity("localhost")?;
        let backend_ca_pem = dir.join("backend-ca.pem");
        write_pem(&backend_ca_pem, &[&backend_ca])?;
        let ca_s = backend_ca_pem.display().to_string();
        let tls = |port: u16| {
            keyward(
                &p11,
                &[
                    "device",
                    "tls",
                    "--url",
                    &format!("https://localhost:{port}/"),
                    "--key",
                    "pkcs11:object=tls-client",
                    "--pin-file",
                    &pin_s,
                    "--module",
                    &module_s,
                    "--chain",
                    &issuing_s,
                    "--ca-file",
                    &ca_s,
                ],
            )
        };
        // A rustls server that requires client certificates from the issuing CA's hierarchy.
        let server = keyward_device::tls::IdentityServer::start(
            keyward_device::tls::server_config(&chain, &key, std::slice::from_ref(&root), &[])?,
        )?;
        let answer = tls(server.port);
        server.stop();
        let answer = answer?;
        let seen = answer.lines().next().unwrap_or_default().to_string();
        ensure!(seen.contains(&device_id), "the rustls server saw {seen:?}");
        check(
            r,
            format!("rustls server (client certificate required) saw \"{seen}\""),
        );
        // openssl s_server -Verify 1 -verify_return_error.
        let cert_pem = dir.join("backend.pem");
        let key_pem = dir.join("backend.key");
        let clients_pem = dir.join("clients-ca.pem");
        write_pem(&cert_pem, &[&chain[0]])?;
        keyward_se::storage::write_atomically(
            &key_pem,
            keyward_ca::pem::encode("EC PRIVATE KEY", &key).as_bytes(),
            0o600,
        )?;
        write_pem(&clients_pem, &[&root, &issuing])?;
        let port = free_port()?;
        let s_server = Child(
            Command::new("openssl")
                .args([
                    "s_server",
                    "-accept",
                    &port.to_string(),
                    "-www",
                    "-Verify",
                    "1",
                ])
                .arg("-verify_return_error")
                .arg("-cert")
                .arg(&cert_pem)
                .arg("-key")
                .arg(&key_pem)
                .arg("-CAfile")
                .arg(&clients_pem)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting openssl s_server (is openssl installed?)")?,
        );
        wait_port(port)?;
        let page = tls(port);
        drop(s_server);
        let page = page?;
        let subject = page
            .lines()
            .find(|l| l.contains("Subject:") || l.contains("subject="))
            .map(str::trim)
            .unwrap_or_default()
            .to_string();
        ensure!(
            page.contains("Client certificate") && page.contains(&device_id),
            "openssl s_server did not report the device's certificate"
        );
        check(
            r,
            format!(
                "openssl s_server -Verify 1 -verify_return_error saw the client certificate {subject}"
            ),
        );
        Ok(())
    })?;

    // 9. Data authentication.
    phase(
        report,
        "signed data: COSE_Sign1 and CMS through PKCS#11",
        |r| {
            let readings = dir.join("readings.txt");
            let tampered = dir.join("tampered.txt");
            let text: String = (1..=24)
                .map(|h| {
                    format!(
                        "2026-11-25T{h:02}:00Z temperature={}.{} C\n",
                        18 + h % 5,
                        h % 10
                    )
                })
                .collect();
            std::fs::write(&readings, &text)?;
            std::fs::write(&tampered, text.replace("temperature=20", "temperature=29"))?;
            let (rs, ts) = (
                readings.display().to_string(),
                tampered.display().to_string(),
            );
            let root_s = root_pem.display().to_string();
            for (format, out) in [("cose", "readings.cose"), ("cms", "readings.p7s")] {
                let out = dir.join(out).display().to_string();
                keyward(
                    &p11,
                    &[
                        "device",
                        "sign",
                        "--key",
                        "pkcs11:object=data-signing",
                        "--pin-file",
                        &pin_s,
                        "--module",
                        &module_s,
                        "--chain",
                        &issuing_s,
                        "--format",
                        format,
                        "--in",
                        &rs,
                        "--out",
                        &out,
                    ],
                )?;
                let verified = keyward(
                    &p11,
                    &["verify", "--sig", &out, "--in", &rs, "--ca-file", &root_s],
                )?;
                ensure!(verified.contains(&device_id), "keyward verify: {verified}");
                let refused = keyward(
                    &p11,
                    &["verify", "--sig", &out, "--in", &ts, "--ca-file", &root_s],
                );
                ensure!(refused.is_err(), "tampered data must not verify");
                if format == "cms" {
                    let cms_verify = |content: &str| {
                        Command::new("openssl")
                            .args(["cms", "-verify", "-binary", "-inform", "DER"])
                            .args(["-purpose", "any", "-in", &out, "-content", content])
                            .args(["-CAfile", &root_s, "-out", "/dev/null"])
                            .output()
                    };
                    let ok = cms_verify(&rs)?;
                    ensure!(
                        ok.status.success(),
                        "openssl cms -verify: {}",
                        String::from_utf8_lossy(&ok.stderr)
                    );
                    let bad = cms_verify(&ts)?;
                    ensure!(!bad.status.success(), "openssl accepted tampered data");
                    check(r, "detached CMS: verified by Keyward and by openssl cms -verify; tampered data rejected by both".into());
                } else {
                    check(
                        r,
                        "COSE_Sign1 (ES256, x5chain): verified by Keyward; tampered data rejected"
                            .into(),
                    );
                }
            }
            Ok(())
        },
    )?;

    // 10. WPA-Enterprise.
    phase(
        report,
        "WPA-Enterprise / 802.1X: EAP-TLS through PKCS#11",
        |r| {
            match eap_tls(dir, &p11, &module, &pin, &root, &issuing, &device_id)? {
                Ok(line) => check(r, line),
                Err(why) if r.strict => anyhow::bail!("EAP-TLS cannot run here (--strict): {why}"),
                Err(why) => {
                    println!("     – skipped: {why}");
                    r.skipped.push(format!("EAP-TLS: {why}"));
                }
            }
            Ok(())
        },
    )?;
    Ok(())
}

/// EAP-TLS: hostapd's integrated RADIUS/EAP server trusts the X.509 root and issuing CA;
/// `eapol_test` authenticates with the tls-client key through OpenSSL's pkcs11 engine and
/// Keyward's module. Needs hostapd, eapol_test, pkcs11-tool and the engine (Debian hostapd,
/// eapoltest, opensc, libengine-pkcs11-openssl), and root: wpa_supplicant loads PKCS#11 modules
/// from /usr/lib only. `Ok(Err(why))`: not possible here.
fn eap_tls(
    dir: &Path,
    p11: &Path,
    module: &Path,
    pin: &str,
    root: &[u8],
    issuing: &[u8],
    device_id: &str,
) -> anyhow::Result<Result<String, String>> {
    // OpenSSL names its engine directory (`ENGINESDIR: "…"`); Debian's multiarch one otherwise.
    let engines = Command::new("openssl")
        .args(["version", "-e"])
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.split('"').nth(1).map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("/usr/lib/x86_64-linux-gnu/engines-3"));
    let Some(engine) = ["pkcs11.so", "libpkcs11.so"]
        .iter()
        .map(|e| engines.join(e))
        .find(|p| p.exists())
    else {
        return Ok(Err(
            "OpenSSL's pkcs11 engine is not installed (libengine-pkcs11-openssl)".into(),
        ));
    };
    for tool in ["hostapd", "eapol_test", "pkcs11-tool"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Ok(Err(format!(
                "{tool} is not installed (Debian hostapd, eapoltest, opensc)"
            )));
        }
    }
    let trusted = PathBuf::from(format!("/usr/lib/keyward-demo-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&trusted) {
        return Ok(Err(format!(
            "wpa_supplicant loads modules from /usr/lib only, and {} cannot be created ({e}); run as root",
            trusted.display()
        )));
    }
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _remove = Remove(trusted.clone());
    let trusted_module = trusted.join("libkeyward_pkcs11.so");
    std::fs::copy(module, &trusted_module)?;

    let radius = backend_identity("radius.keyward.demo")?;
    let eap = dir.join("eap");
    std::fs::create_dir_all(&eap)?;
    let e = |name: &str| eap.join(name).display().to_string();
    write_pem(&eap.join("radius.pem"), &[&radius.chain[0]])?;
    write_pem(&eap.join("radius-ca.pem"), &[&radius.ca])?;
    keyward_se::storage::write_atomically(
        &eap.join("radius.key"),
        keyward_ca::pem::encode("EC PRIVATE KEY", &radius.key).as_bytes(),
        0o600,
    )?;
    write_pem(&eap.join("trust.pem"), &[root, issuing])?;
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let secret = hex::encode(&keyward_crypto::random(12)?[..]);
    std::fs::write(eap.join("clients"), format!("127.0.0.1/32 {secret}\n"))?;
    std::fs::write(eap.join("users"), "* TLS\n")?;
    std::fs::write(
        eap.join("hostapd.conf"),
        format!(
            "driver=none\ninterface=keyward-demo\nlogger_stdout=-1\nlogger_stdout_level=1\n\
             eap_server=1\neap_user_file={}\nradius_server_clients={}\n\
             radius_server_auth_port={port}\nserver_cert={}\nprivate_key={}\nca_cert={}\n",
            e("users"),
            e("clients"),
            e("radius.pem"),
            e("radius.key"),
            e("trust.pem")
        ),
    )?;
    let log = std::fs::File::create(eap.join("hostapd.log"))?;
    let _hostapd = Child(
        Command::new("hostapd")
            .arg("-d")
            .arg(eap.join("hostapd.conf"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?,
    );
    let mut ready = false;
    for _ in 0..100 {
        let text = std::fs::read_to_string(eap.join("hostapd.log")).unwrap_or_default();
        if text.contains("Setup of interface done") {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    ensure!(
        ready,
        "hostapd (RADIUS server) did not start; see {}",
        e("hostapd.log")
    );
    // The device's certificate from the element (public; the key stays there).
    let read = Command::new("pkcs11-tool")
        .arg("--module")
        .arg(module)
        .args([
            "--read-object",
            "--type",
            "cert",
            "--label",
            "tls-client",
            "-o",
        ])
        .arg(eap.join("device.der"))
        .env("KEYWARD_PKCS11_CONF", p11)
        .output()?;
    ensure!(
        read.status.success(),
        "pkcs11-tool could not read the certificate: {}",
        String::from_utf8_lossy(&read.stderr)
    );
    let der = std::fs::read(eap.join("device.der"))?;
    write_pem(&eap.join("device.pem"), &[&der, issuing])?;
    std::fs::write(
        eap.join("eapol.conf"),
        format!(
            "pkcs11_engine_path={}\npkcs11_module_path={}\nnetwork={{\n\tkey_mgmt=IEEE8021X\n\
             \teap=TLS\n\tidentity=\"{device_id}\"\n\tca_cert=\"{}\"\n\
             \tdomain_match=\"radius.keyward.demo\"\n\tclient_cert=\"{}\"\n\tengine=1\n\
             \tengine_id=\"pkcs11\"\n\tkey_id=\"pkcs11:object=tls-client;type=private\"\n\
             \tpin=\"{pin}\"\n}}\n",
            engine.display(),
            trusted_module.display(),
            e("radius-ca.pem"),
            e("device.pem"),
        ),
    )?;
    let out = Command::new("eapol_test")
        .arg("-c")
        .arg(eap.join("eapol.conf"))
        .args([
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-s",
            &secret,
            "-t",
            "20",
        ])
        .env("KEYWARD_PKCS11_CONF", p11)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    std::fs::write(eap.join("eapol_test.log"), text.as_bytes())?;
    ensure!(
        out.status.success() && text.trim_end().ends_with("SUCCESS"),
        "eapol_test did not succeed (see {} and hostapd.log beside it): {}",
        e("eapol_test.log"),
        text.lines().last().unwrap_or_default()
    );
    ensure!(
        text.contains("Using private key from engine"),
        "eapol_test did not use the key through the pkcs11 engine"
    );
    Ok(Ok(
        "eapol_test authenticated to hostapd's RADIUS server with EAP-TLS, the tls-client key used in the element through OpenSSL's pkcs11 engine: SUCCESS"
            .into(),
    ))
}

fn summary(report: &Report) {
    println!();
    println!("Summary");
    println!("  device            {}", report.device_id);
    for (profile, subject, serial) in &report.certificates {
        println!("  {profile:<17} {subject} (serial {serial})");
    }
    println!("  chain             {}", report.chain);
    println!(
        "  network           {} HTTP round trips, {} bytes (production + 2 provisionings)",
        report.round_trips, report.bytes
    );
    let total: Duration = report.phases.iter().map(|(_, d)| *d).sum();
    for (name, d) in &report.phases {
        println!("  {:<50} {:>7.2} s", name, d.as_secs_f64());
    }
    println!("  {:<50} {:>7.2} s", "total", total.as_secs_f64());
    println!("  verified ({} checks):", report.checks.len());
    for c in &report.checks {
        println!("    ✓ {c}");
    }
    for s in &report.skipped {
        println!("    – skipped: {s}");
    }
    println!("demo: OK");
}
