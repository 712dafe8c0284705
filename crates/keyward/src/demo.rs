//! `keyward demo`: the end-to-end job on embedded defaults. A blank virtual secure element (a
//! card manager holding the Key for Secure Transport) sits behind an NXP-style T=1 link on a
//! simulated I2C bus (a Unix socket, paced at 1 MHz). The device connects it over RAMoverHTTP to
//! a production server on loopback (SQLite, development CA set in its data directory), which
//! installs the SmartCard-HSM applet, certifies the device key and replaces the KST; the device
//! replaces the transport PIN with its own and verifies it locally, validates the device chain,
//! opens the end-to-end secure channel by chip authentication, generates a key, verifies its
//! attestation, and checks a signature made inside the element.

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use clap::Args;
use keyward_card::{Hsm, KeySpec, T1Channel, authenticate_device};
use keyward_cvc::{PublicKey, TrustStore};
use keyward_ram::server::{Engine, EngineConfig};
use keyward_se::crypto::{Curve, HashAlg, der_signature_to_plain, ecdsa_verify_prehash};
use keyward_se::{Applet, StateFile};
use keyward_server::produce::{Naming, ProductionService};
use keyward_server::provision::ProvisioningService;
use keyward_t1::params::{LinkParams, nxp_atr};
use keyward_t1::sim::BusTiming;
use keyward_t1::{CardEngine, Profile, Variant};

#[derive(Args)]
pub struct DemoArgs {
    /// Working directory (default: a fresh temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let (dir, temporary) = match args.dir {
        Some(d) => (d, false),
        None => (
            std::env::temp_dir().join(format!("keyward-demo-{}", std::process::id())),
            true,
        ),
    };
    let result = run_in(&dir);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// Serves the element on `socket` for `connections` connections (power cycles), like a secure
/// element on an I2C bus.
fn spawn_element(
    state_path: &Path,
    socket: &Path,
    connections: usize,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<()>>> {
    let (file, state) = StateFile::open(state_path, &StateFile::default_key_path(state_path))?;
    let listener =
        UnixListener::bind(socket).with_context(|| format!("binding {}", socket.display()))?;
    Ok(std::thread::spawn(move || {
        let mut applet = Applet::new(state, file);
        for _ in 0..connections {
            let (stream, _) = listener.accept()?;
            applet.reset();
            serve_connection(stream, &mut applet)?;
        }
        Ok(())
    }))
}

fn serve_connection(
    stream: std::os::unix::net::UnixStream,
    applet: &mut Applet<StateFile>,
) -> anyhow::Result<()> {
    {
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
}

fn run_in(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let data = dir.join("keyward-data");
    let state_path = dir.join("element.json");
    let socket = dir.join("element.sock");
    for stale in [
        state_path.clone(),
        StateFile::default_key_path(&state_path),
        socket.clone(),
    ] {
        let _ = std::fs::remove_file(stale);
    }

    // The back end: the production service on loopback, SQLite in its data directory.
    let rt = tokio::runtime::Runtime::new()?;
    let (producer, provisioner) = rt
        .block_on(crate::server::services(crate::server::Settings {
            data_dir: &data,
            db_url: None,
            unlock: keyward_ca::ca_set::Unlock::default(),
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
    let root = producer.root.clone();
    let engine = Arc::new(
        Engine::new(EngineConfig::default())
            .service("produce", ProductionService(Arc::new(producer)))
            .service("provision", ProvisioningService(Arc::new(provisioner))),
    );
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!("http://{}/rt/produce", listener.local_addr()?);
    let server = rt.spawn(keyward_ram::server::serve(engine, listener));
    println!(
        "1. production server at {url} (SQLite, development CA in {})",
        data.display()
    );

    let state = crate::se::blank_element(&keyward_server::setup::DataDir::kst_path(&data))?;
    drop(StateFile::create(
        &state_path,
        &StateFile::default_key_path(&state_path),
        &state,
    )?);
    let element = spawn_element(&state_path, &socket, 2)?;
    let connect = || T1Channel::connect_unix(socket.to_str().unwrap_or_default(), Variant::NxpI2c);
    let mut device = crate::device::Element(Box::new(connect()?));
    println!(
        "2. blank secure element (card manager with the KST only) attached over NXP T=1 on a simulated 1 MHz I2C bus"
    );

    let (device_id, transport, summary) = crate::device::produce_over(&mut device, &url)?;
    println!(
        "3. produced as {device_id} over RAMoverHTTP in {} round trips: applet installed, device key certified, card-unique SCP03 keys, random SO-PIN kept by the back end",
        summary.round_trips
    );
    let record = rt
        .block_on(db.devices())?
        .into_iter()
        .find(|d| d.device_id == device_id)
        .context("no device record")?;
    ensure!(record.state == keyward_server::db::DeviceState::Produced);
    drop(device);
    let mut hsm = Hsm::new(connect()?);
    hsm.select()?;
    let pin = hex::encode(&keyward_se::crypto::random(4)?[..]).into_bytes();
    hsm.change_pin(transport.as_bytes(), &pin)?;
    hsm.verify_pin(&pin)?;
    println!(
        "4. transport PIN replaced by the device's own PIN, verified locally (it never leaves the device); record {} in SQLite",
        record.seq
    );

    // Provisioning: a tls-client key generated under SM, attested, certified, stored.
    let provision_url = url.replace("/rt/produce", "/rt/provision");
    let mut device_link = crate::device::Element(Box::new(hsm.into_channel()));
    let (certificate, summary) = crate::device::provision_over(
        &mut device_link,
        &crate::device::provision_url(&provision_url, &[("profile", "tls-client")])?,
        None,
        40,
    )?;
    let issued = rt
        .block_on(db.device_certificates(&device_id))?
        .into_iter()
        .find(|c| c.state == "active")
        .context("no active certificate")?;
    let leaf = hex::decode(&issued.der)?;
    let issuing = std::fs::read(data.join("x509/issuing.der"))?;
    let x509_root = std::fs::read(data.join("x509/root.der"))?;
    ensure!(
        keyward_ca::x509::verify_issued(&leaf, &issuing)?
            && keyward_ca::x509::verify_issued(&issuing, &x509_root)?,
        "the X.509 chain does not verify"
    );
    println!(
        "5. provisioned {certificate} (tls-client) in {} round trips: key generated under secure messaging, attestation verified, X.509 chain to the root verified",
        summary.round_trips
    );

    // The end of the provisioning's secure messaging also ended the PIN's validity.
    let mut hsm = Hsm::new(device_link.0);
    hsm.verify_pin(&pin)?;
    let mut trust = TrustStore::new();
    trust.add_root(root)?;
    let (device, secure) =
        authenticate_device(hsm.into_channel(), &trust, keyward_se::dev_pki::today())?;
    println!(
        "6. device chain {} <- {} <- {} verified; chip authentication done, secure messaging up",
        device.device_id, device.dica, device.root
    );

    let mut hsm = Hsm::new(secure);
    let kid = hsm.free_key_id()?;
    let curve = Curve::Secp256r1;
    let request = hsm
        .generate(kid, KeySpec::Ec(curve), "demo key", &[kid])?
        .context("no attestation")?;
    let attested = device.verify_attestation(&request)?;
    println!(
        "7. generated EC P-256 key {kid} under secure messaging; attestation by {} (device signature + proof of possession) verified",
        attested.device_id
    );

    let data = b"sensor reading 21.5C at 2026-11-25T10:00Z";
    let sig = hsm.sign(kid, 0x73, data)?;
    let PublicKey::Ec { point, .. } = &attested.public_key else {
        bail!("expected an EC key")
    };
    let sig = der_signature_to_plain(&sig, curve.field_len())?;
    ensure!(
        ecdsa_verify_prehash(curve, point, &HashAlg::Sha256.digest(data), &sig),
        "data signature does not verify"
    );
    println!(
        "8. signed data with ECDSA-SHA256 inside the element; signature verified with the attested key"
    );

    drop(hsm);
    element
        .join()
        .map_err(|_| anyhow::anyhow!("element thread panicked"))??;
    server.abort();
    println!("demo: OK");
    Ok(())
}
