//! `keyward device tls|sign` and `keyward verify`: the uses of a provisioned key, through a
//! PKCS#11 module (Keyward's by default) — TLS client authentication, and COSE_Sign1 / detached
//! CMS signatures over collected data with their verification by a relying party.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use keyward_device::{DeviceKey, Trust, cms, cose};

/// Where the key is and how to reach it.
#[derive(Args, Clone)]
pub struct KeyArgs {
    /// The key: a pkcs11: URI (object= and/or id=; its certificate is found by the same label/id).
    #[arg(long)]
    key: String,
    /// The PIN, unless the URI has pin-value or pin-source.
    #[arg(long)]
    pin_file: Option<PathBuf>,
    /// The PKCS#11 module (default: libkeyward_pkcs11.so beside this program, or
    /// $KEYWARD_PKCS11_MODULE).
    #[arg(long)]
    module: Option<PathBuf>,
    /// PEM file of the issuing CA certificate(s) to send after the key's certificate.
    #[arg(long)]
    chain: Option<PathBuf>,
}

#[derive(Args)]
pub struct TlsArgs {
    /// e.g. https://backend.example:8443/whoami
    #[arg(long)]
    url: String,
    #[command(flatten)]
    key: KeyArgs,
    /// PEM file of the CA(s) the server's certificate must lead to.
    #[arg(long)]
    ca_file: PathBuf,
    #[arg(long, default_value_t = 20)]
    timeout: u64,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// COSE_Sign1 (RFC 9052), certificate chain in x5chain.
    Cose,
    /// Detached CMS SignedData (RFC 5652), DER.
    Cms,
}

#[derive(Args)]
pub struct SignArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The data to sign.
    #[arg(long = "in")]
    input: PathBuf,
    /// Where the signature goes.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "cose")]
    format: Format,
    /// COSE: leave the payload out of the message.
    #[arg(long)]
    detached: bool,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The COSE_Sign1 message or CMS signature.
    #[arg(long)]
    sig: PathBuf,
    /// The signed data (CMS and detached COSE).
    #[arg(long = "in")]
    input: Option<PathBuf>,
    /// PEM file of the trusted root(s), e.g. a Keyward server's x509/root.pem.
    #[arg(long)]
    ca_file: PathBuf,
    /// PEM file of intermediate CAs (if the signature does not carry them).
    #[arg(long)]
    chain: Option<PathBuf>,
    /// Default: recognised from the first byte.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// COSE with the payload inside: write it here.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn certificates(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let certs = keyward_ca::pem::certificates(&bytes)?;
    if certs.is_empty() {
        bail!("{}: no certificate", path.display());
    }
    Ok(certs)
}

/// The default module: Keyward's, beside this program.
pub fn default_module() -> Option<PathBuf> {
    if let Some(m) = std::env::var_os("KEYWARD_PKCS11_MODULE") {
        return Some(PathBuf::from(m));
    }
    let exe = std::env::current_exe().ok()?;
    let m = exe.parent()?.join("libkeyward_pkcs11.so");
    m.exists().then_some(m)
}

impl KeyArgs {
    pub fn open(&self) -> anyhow::Result<DeviceKey> {
        let issuers = match &self.chain {
            Some(p) => certificates(p)?,
            None => Vec::new(),
        };
        let module = self.module.clone().or_else(default_module);
        DeviceKey::open(
            &self.key,
            module.as_deref(),
            self.pin_file.as_deref(),
            issuers,
        )
        .with_context(|| format!("opening {}", keyward_ca::pkcs11_uri::without_pin(&self.key)))
    }
}

/// `keyward device tls`: what the server answered.
pub fn tls(a: &TlsArgs) -> anyhow::Result<String> {
    let key = Arc::new(a.key.open()?);
    let roots = certificates(&a.ca_file)?;
    let config = keyward_device::tls::client_config(key, &roots)?;
    let (status, body) =
        keyward_device::tls::https_get(&a.url, config, Duration::from_secs(a.timeout))
            .with_context(|| format!("TLS with client certificate to {}", a.url))?;
    if status != 200 {
        bail!("{} answered HTTP {status}: {body}", a.url);
    }
    Ok(body)
}

/// `keyward device sign`.
pub fn sign(a: &SignArgs) -> anyhow::Result<usize> {
    let key = a.key.open()?;
    let data = std::fs::read(&a.input).with_context(|| format!("reading {}", a.input.display()))?;
    let sig = match a.format {
        Format::Cose => cose::sign1(&key, &data, a.detached)?,
        Format::Cms => cms::sign_detached(&key, &data, keyward_device::now())?,
    };
    keyward_se::storage::write_atomically(&a.out, &sig, 0o644)?;
    Ok(sig.len())
}

/// `keyward verify`: the signer's path, signer first.
pub fn verify(a: &VerifyArgs) -> anyhow::Result<Vec<String>> {
    let sig = std::fs::read(&a.sig).with_context(|| format!("reading {}", a.sig.display()))?;
    let data = match &a.input {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
        None => None,
    };
    let trust = Trust {
        roots: certificates(&a.ca_file)?,
        intermediates: match &a.chain {
            Some(p) => certificates(p)?,
            None => Vec::new(),
        },
    };
    let format = a.format.unwrap_or(match sig.first() {
        Some(0x30) => Format::Cms,
        _ => Format::Cose,
    });
    let now = keyward_device::now();
    let verified = match format {
        Format::Cose => cose::verify1(&sig, data.as_deref(), &trust, now)?,
        Format::Cms => {
            let data = data.context("a CMS signature is detached: give the data with --in")?;
            cms::verify_detached(&sig, &data, &trust, now)?
        }
    };
    if let Some(out) = &a.out {
        std::fs::write(out, &verified.payload)?;
    }
    Ok(verified.signer)
}
