//! `keyward demo`: the end-to-end job on embedded defaults. At this stage of the project it runs a
//! virtual secure element in-process: creation with a development device PKI, initialization,
//! on-card key generation with attestation, signing, and host-side verification of all of it.

use std::path::PathBuf;

use anyhow::{Context, bail, ensure};
use clap::Args;
use keyward_apdu::{Command, ResponseView, StatusWord, tlv};
use keyward_cvc::{AuthenticatedRequest, PublicKey, TrustStore, ec_key_template, oid};
use keyward_se::crypto::{Curve, HashAlg, der_signature_to_plain, ecdsa_verify_prehash};
use keyward_se::dev_pki::DevCa;
use keyward_se::{AID, Applet, StateFile};

#[derive(Args)]
pub struct DemoArgs {
    /// Working directory (default: a fresh temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
}

struct Card<P: keyward_se::Persist>(Applet<P>);

impl<P: keyward_se::Persist> Card<P> {
    fn send(&mut self, cmd: Command) -> anyhow::Result<Vec<u8>> {
        let raw = self.0.transmit(&cmd.encode()?);
        let r = ResponseView::parse(&raw)?;
        ensure!(
            r.sw == StatusWord::SUCCESS || r.sw == StatusWord::END_OF_FILE,
            "card answered {} to {:02X} {:02X}",
            r.sw,
            cmd.cla,
            cmd.ins
        );
        Ok(r.data.to_vec())
    }
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

fn run_in(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca = DevCa::open_or_create(&dir.join("dev-ca"))?;
    let state_path = dir.join("element.json");
    let _ = std::fs::remove_file(&state_path);
    let _ = std::fs::remove_file(StateFile::default_key_path(&state_path));
    let state = ca.new_element()?;
    let file = StateFile::create(
        &state_path,
        &StateFile::default_key_path(&state_path),
        &state,
    )?;
    println!(
        "1. created secure element {} ({})",
        state.device.chr,
        state_path.display()
    );
    let mut card = Card(Applet::new(state, file));

    card.send(
        Command::new(0, 0xA4, 0x04, 0x00)
            .with_data(AID.to_vec())
            .with_le(256),
    )?;
    let pin = hex::encode(&keyward_se::crypto::random(4)?[..]).into_bytes();
    let so_pin = keyward_se::crypto::random(8)?;
    let mut init = Vec::new();
    tlv::write(&mut init, 0x80, &[0x00, 0x01])?;
    tlv::write(&mut init, 0x81, &pin)?;
    tlv::write(&mut init, 0x82, &so_pin)?;
    tlv::write(&mut init, 0x91, &[3])?;
    card.send(Command::new(0x80, 0x50, 0, 0).with_data(init))?;
    card.send(Command::new(0, 0x20, 0, 0x81).with_data(pin.clone()))?;
    println!("2. initialized with a random SO-PIN and user PIN, PIN verified");

    // Device certificate chain, checked against the development root.
    let chain_bytes = card.send(
        Command::new(0, 0xB1, 0x2F, 0x02)
            .with_data(vec![0x54, 2, 0, 0])
            .with_le(65536),
    )?;
    let mut trust = TrustStore::new();
    trust.add_root(ca.srca.clone())?;
    let device = trust.validate_c_devaut(&chain_bytes, keyward_se::dev_pki::today())?;
    println!(
        "3. device chain {} <- {} <- {} verified",
        device.device_id, device.dica, device.root
    );

    // Key generation with attestation.
    let curve = Curve::Secp256r1;
    let key = ec_key_template(&curve.domain(), oid::TA_ECDSA_SHA256)?;
    let mut gakp = Vec::new();
    tlv::write(&mut gakp, 0x5F29, &[0])?;
    tlv::write(&mut gakp, 0x42, b"UTCA00001")?;
    tlv::write(&mut gakp, 0x7F49, &key)?;
    tlv::write(&mut gakp, 0x5F20, b"DEMOKEY00001")?;
    let ar = AuthenticatedRequest::parse(
        &card.send(Command::new(0, 0x46, 1, 0).with_data(gakp).with_le(65536))?,
    )?;
    let attested = device.verify_attestation(&ar)?;
    println!(
        "4. generated EC P-256 key 1 on the element; attestation by {} (device signature + proof of possession) verified",
        attested.device_id
    );

    let data = b"sensor reading 21.5C at 2026-11-25T10:00Z";
    let sig = card.send(
        Command::new(0x80, 0x68, 1, 0x73)
            .with_data(data.to_vec())
            .with_le(256),
    )?;
    let PublicKey::Ec { point, .. } = &attested.public_key else {
        bail!("expected an EC key")
    };
    let sig = der_signature_to_plain(&sig, curve.field_len())?;
    ensure!(
        ecdsa_verify_prehash(curve, point, &HashAlg::Sha256.digest(data), &sig),
        "data signature does not verify"
    );
    println!(
        "5. signed data with ECDSA-SHA256 inside the element; signature verified with the attested key"
    );
    println!("demo: OK");
    Ok(())
}
