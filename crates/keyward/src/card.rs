//! `keyward card …`: talk to a SmartCard-HSM-compatible element through a transport and check
//! what it proves about itself.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use keyward_apdu::{Command, StatusWord};
use keyward_card::{CardChannel, open_transport, read_attestation, read_c_devaut, verify_device};
use keyward_cvc::signature::{TaAlgorithm, curve_of};
use keyward_cvc::{Certificate, PublicKey, TrustStore};
use keyward_se::dev_pki::DevCa;

#[derive(Subcommand)]
pub enum CardCommand {
    /// Device id, certificate chain and applet version.
    Info(CardArgs),
    /// Validate the device chain against the trust store and authenticate the chip.
    VerifyChain(CardArgs),
    /// Verify the attestation of a key (CE<kid>) over the secure channel.
    Attest(AttestArgs),
}

#[derive(Args)]
pub struct CardArgs {
    /// Transport: pcsc:READER-NAME-PREFIX or se:STATE-FILE.
    #[arg(long)]
    card: String,
    /// Extra trusted root CV certificates (default: CardContact's DESRCACC100001 and this
    /// installation's development root).
    #[arg(long)]
    trust: Vec<PathBuf>,
}

#[derive(Args)]
pub struct AttestArgs {
    #[command(flatten)]
    card: CardArgs,
    /// Key id (1..255).
    #[arg(long)]
    key_id: u8,
}

pub fn run(cmd: CardCommand) -> anyhow::Result<()> {
    match cmd {
        CardCommand::Info(a) => info(&a),
        CardCommand::VerifyChain(a) => verify_chain(&a),
        CardCommand::Attest(a) => attest(&a),
    }
}

fn trust_store(a: &CardArgs) -> anyhow::Result<TrustStore> {
    let mut t = TrustStore::new();
    t.add_root(Certificate::parse(keyward_cvc::CARDCONTACT_SRCA)?)?;
    if let Some(dev) = DevCa::root_in(&DevCa::default_dir()) {
        t.add_root(dev)?;
    }
    for path in &a.trust {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        t.add_root(Certificate::parse(&bytes).with_context(|| format!("{}", path.display()))?)
            .with_context(|| format!("{}", path.display()))?;
    }
    Ok(t)
}

fn describe_key(key: &PublicKey) -> String {
    match key {
        PublicKey::Ec { .. } => match curve_of(key, None) {
            Ok(c) => format!("EC {}", c.name()),
            Err(_) => "EC (unknown curve)".into(),
        },
        PublicKey::Rsa { modulus, .. } => {
            let bytes = modulus.iter().skip_while(|b| **b == 0).count();
            format!("RSA {}", bytes * 8)
        }
    }
}

fn info(a: &CardArgs) -> anyhow::Result<()> {
    let mut ch = open_transport(&a.card)?;
    let r = ch.transmit(
        &Command::new(0, 0xA4, 0x04, 0x00)
            .with_data(keyward_se::AID.to_vec())
            .with_le(256),
    )?;
    anyhow::ensure!(r.sw == StatusWord::SUCCESS, "SELECT answered {}", r.sw);
    let prop = keyward_apdu::tlv::Tlv::parse_exact(&r.data)
        .ok()
        .and_then(|fcp| fcp.find(0x85).ok().flatten())
        .map(|t| t.value.to_vec())
        .unwrap_or_default();
    if let [.., major, minor] = prop[..] {
        println!("applet version: {major}.{minor}");
    }
    let chain = Certificate::parse_chain(&read_c_devaut(&mut ch)?)?;
    if let Some(device) = chain.first() {
        println!(
            "device id:      {}",
            String::from_utf8_lossy(&device.body.chr)
        );
    }
    for c in &chain {
        println!(
            "certificate:    CHR {} CAR {}",
            String::from_utf8_lossy(&c.body.chr),
            String::from_utf8_lossy(c.body.car.as_deref().unwrap_or_default())
        );
    }
    Ok(())
}

fn verify_chain(a: &CardArgs) -> anyhow::Result<()> {
    let trust = trust_store(a)?;
    let ch = open_transport(&a.card)?;
    let (id, _) = verify_device(ch, &trust, keyward_se::dev_pki::today())?;
    println!("device id:           {}", id.device_id);
    println!(
        "chain:               {} <- {} <- {} (trusted root)",
        id.device_id, id.dica, id.root
    );
    println!("device key:          {}", describe_key(&id.public_key));
    println!("chip authentication: OK, secure messaging established");
    Ok(())
}

fn attest(a: &AttestArgs) -> anyhow::Result<()> {
    let trust = trust_store(&a.card)?;
    let ch = open_transport(&a.card.card)?;
    let (id, mut sc) = verify_device(ch, &trust, keyward_se::dev_pki::today())?;
    let key = read_attestation(&mut sc, &id, a.key_id)?;
    let alg = TaAlgorithm::from_oid(&key.algorithm)
        .map(|a| format!("{a:?}"))
        .unwrap_or_else(|_| "unknown".into());
    println!("key {}: attestation verified", a.key_id);
    println!("  device:    {} (chain to {})", key.device_id, id.root);
    println!("  key:       {}", describe_key(&key.public_key));
    println!("  algorithm: {alg}");
    println!("  holder:    {}", key.key_chr);
    Ok(())
}
