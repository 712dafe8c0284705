//! `keyward card …`: talk to a SmartCard-HSM-compatible element through a transport and check
//! what it proves about itself.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use keyward_apdu::{Command, StatusWord};
use keyward_card::pkcs15::KeyKind;
use keyward_card::{
    CardChannel, Hsm, KeySpec, open_transport, read_attestation, read_c_devaut, verify_device,
};
use keyward_crypto::Curve;
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
    /// List the keys with their PKCS#15 descriptions (as OpenSC shows them).
    Keys(PinArgs),
    /// Generate a key on the element, described for PKCS#15 like OpenSC does.
    Keygen(KeygenArgs),
}

#[derive(Args)]
pub struct PinArgs {
    #[command(flatten)]
    card: CardArgs,
    /// User PIN (or the KEYWARD_PIN environment variable).
    #[arg(long, env = "KEYWARD_PIN", hide_env_values = true)]
    pin: String,
}

#[derive(Args)]
pub struct KeygenArgs {
    #[command(flatten)]
    pin: PinArgs,
    /// ec:CURVE (prime256v1, secp384r1, secp521r1, brainpoolP256r1, brainpoolP384r1, secp256k1),
    /// rsa:BITS (1024..4096) or aes:BITS (128, 192, 256).
    #[arg(long)]
    key_type: String,
    /// PKCS#15 / PKCS#11 id in hex (default: the key id).
    #[arg(long)]
    id: Option<String>,
    #[arg(long, default_value = "")]
    label: String,
    /// Key slot on the element (default: the first free one).
    #[arg(long)]
    key_id: Option<u8>,
    /// Allowed algorithm ids in hex (tag 91, e.g. 7392: ECDSA-SHA-256 and key wrap); default:
    /// every algorithm of the key type.
    #[arg(long)]
    algorithms: Option<String>,
    /// Key domain (tag 92): the DKEK the key is backed up under (default 0).
    #[arg(long)]
    domain: Option<u8>,
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
        CardCommand::Keys(a) => keys(&a),
        CardCommand::Keygen(a) => keygen(&a),
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

fn logged_in(a: &PinArgs) -> anyhow::Result<Hsm<Box<dyn CardChannel + Send>>> {
    let mut hsm = Hsm::new(open_transport(&a.card.card)?);
    hsm.select()?;
    hsm.verify_pin(a.pin.as_bytes())?;
    Ok(hsm)
}

fn keys(a: &PinArgs) -> anyhow::Result<()> {
    let mut hsm = logged_in(a)?;
    for kid in hsm.key_ids()? {
        match hsm.key_description(kid)? {
            Some(d) => {
                let kind = match d.kind {
                    KeyKind::Ec { field_bits } => format!("EC {field_bits}"),
                    KeyKind::Rsa { modulus_bits } => format!("RSA {modulus_bits}"),
                    KeyKind::Aes { key_bits } => format!("AES {key_bits}"),
                };
                println!(
                    "key {kid:3}: {kind:9} id {} label {:?}",
                    hex::encode(&d.id),
                    d.label
                );
            }
            None => println!("key {kid:3}: (no PKCS#15 description)"),
        }
    }
    Ok(())
}

fn parse_key_spec(s: &str) -> anyhow::Result<KeySpec> {
    let (kind, param) = s
        .split_once(':')
        .with_context(|| format!("key type {s:?}: expected KIND:PARAM"))?;
    Ok(match kind.to_ascii_lowercase().as_str() {
        "ec" => KeySpec::Ec(match param {
            "prime256v1" | "secp256r1" | "P-256" => Curve::Secp256r1,
            "secp384r1" | "P-384" => Curve::Secp384r1,
            "secp521r1" | "P-521" => Curve::Secp521r1,
            "brainpoolP256r1" => Curve::BrainpoolP256r1,
            "brainpoolP384r1" => Curve::BrainpoolP384r1,
            "secp256k1" => Curve::Secp256k1,
            other => anyhow::bail!("unsupported curve {other:?}"),
        }),
        "rsa" => KeySpec::Rsa(param.parse().context("RSA size")?),
        "aes" => KeySpec::Aes(param.parse().context("AES size")?),
        other => anyhow::bail!("unknown key kind {other:?}"),
    })
}

fn keygen(a: &KeygenArgs) -> anyhow::Result<()> {
    let spec = parse_key_spec(&a.key_type)?;
    let mut hsm = logged_in(&a.pin)?;
    let kid = match a.key_id {
        Some(k) => k,
        None => hsm.free_key_id()?,
    };
    let id = match &a.id {
        Some(h) => hex::decode(h).context("--id must be hex")?,
        None => vec![kid],
    };
    let algorithms = match &a.algorithms {
        Some(h) => Some(hex::decode(h).context("--algorithms must be hex")?),
        None => None,
    };
    let attestation = hsm
        .generate_key(
            kid,
            spec,
            &keyward_card::KeyOptions {
                label: &a.label,
                id: Some(&id),
                algorithms: algorithms.as_deref(),
                domain: a.domain,
            },
        )?
        .attestation;
    println!(
        "generated key {kid} (id {}) {}",
        hex::encode(&id),
        a.key_type
    );
    if let Some(ar) = attestation {
        println!(
            "  public key: {}",
            describe_key(&ar.request.body.public_key)
        );
        println!(
            "  attested by device {}",
            String::from_utf8_lossy(&ar.outer_car)
        );
    }
    Ok(())
}
