//! `keyward demo`: the end-to-end job on embedded defaults. A virtual secure element (state file,
//! development device PKI) sits behind an NXP-style T=1 link on a simulated I2C bus (a Unix
//! socket, paced at 1 MHz); the host initializes it and verifies the PIN locally, validates the
//! device chain, opens the end-to-end secure channel by chip authentication, generates a key,
//! verifies its attestation, and checks a signature made inside the element.

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use clap::Args;
use keyward_card::{Hsm, InitConfig, KeySpec, T1Channel, authenticate_device};
use keyward_cvc::{PublicKey, TrustStore};
use keyward_se::crypto::{Curve, HashAlg, der_signature_to_plain, ecdsa_verify_prehash};
use keyward_se::dev_pki::DevCa;
use keyward_se::{Applet, StateFile};
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

/// Serves the element on `socket` for one connection (one power cycle), like a secure element
/// on an I2C bus.
fn spawn_element(
    state_path: &Path,
    socket: &Path,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<()>>> {
    let (file, state) = StateFile::open(state_path, &StateFile::default_key_path(state_path))?;
    let listener =
        UnixListener::bind(socket).with_context(|| format!("binding {}", socket.display()))?;
    Ok(std::thread::spawn(move || {
        let (stream, _) = listener.accept()?;
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
        let mut applet = Applet::new(state, file);
        let mut app = |apdu: &[u8]| applet.transmit(apdu);
        keyward_t1::bus::serve_card(&mut bus, &mut engine, &mut app, Duration::from_millis(300))?;
        Ok(())
    }))
}

fn run_in(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca = DevCa::open_or_create(&dir.join("dev-ca"))?;
    let state_path = dir.join("element.json");
    let socket = dir.join("element.sock");
    for stale in [
        state_path.clone(),
        StateFile::default_key_path(&state_path),
        socket.clone(),
    ] {
        let _ = std::fs::remove_file(stale);
    }
    let state = ca.new_element()?;
    println!(
        "1. created secure element {} ({})",
        state.device_chr(),
        state_path.display()
    );
    drop(StateFile::create(
        &state_path,
        &StateFile::default_key_path(&state_path),
        &state,
    )?);

    let element = spawn_element(&state_path, &socket)?;
    let link = T1Channel::connect_unix(socket.to_str().context("socket path")?, Variant::NxpI2c)?;
    println!("2. host attached over NXP T=1 on a simulated 1 MHz I2C bus");

    let mut hsm = Hsm::new(link);
    hsm.select()?;
    let pin = hex::encode(&keyward_se::crypto::random(4)?[..]).into_bytes();
    let so_pin: [u8; 8] = keyward_se::crypto::random(8)?[..]
        .try_into()
        .context("SO-PIN")?;
    hsm.initialize(&InitConfig {
        options: 0x0001,
        pin: &pin,
        so_pin,
        retries: 3,
        dkek_shares: None,
    })?;
    hsm.verify_pin(&pin)?;
    println!(
        "3. initialized with a random SO-PIN and user PIN; PIN verified locally (it never leaves the device)"
    );

    let mut trust = TrustStore::new();
    trust.add_root(ca.srca.clone())?;
    let (device, secure) =
        authenticate_device(hsm.into_channel(), &trust, keyward_se::dev_pki::today())?;
    println!(
        "4. device chain {} <- {} <- {} verified; chip authentication done, secure messaging up",
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
        "5. generated EC P-256 key {kid} under secure messaging; attestation by {} (device signature + proof of possession) verified",
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
        "6. signed data with ECDSA-SHA256 inside the element; signature verified with the attested key"
    );

    drop(hsm);
    element
        .join()
        .map_err(|_| anyhow::anyhow!("element thread panicked"))??;
    println!("demo: OK");
    Ok(())
}
