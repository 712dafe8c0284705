//! The server's X.509 CAs in its data directory (`x509/`): a root and an issuing CA, ECDSA
//! P-256, created on first start; the private keys sealed under the server's master key, the
//! certificates as DER and PEM (`root.pem`, `issuing.pem` for relying parties).

use std::path::Path;

use base64::Engine as _;
use keyward_ca::SoftwareKey;
use keyward_ca::x509::{Name, NameAttr, X509Ca, X509Key};
use keyward_crypto::{Curve, EcKey};

use crate::seal::MasterKey;
use crate::setup::SetupError;

/// PEM of a DER certificate.
pub fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SetupError + '_ {
    move |source| SetupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), SetupError> {
    keyward_se::storage::write_atomically(path, data, 0o600).map_err(|e| SetupError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// `x509/ca.toml`, written by `keyward ca init-x509`: the issuing CA's key is in a PKCS#11 token.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCa {
    /// The issuing CA's key: a `pkcs11:` URI (without its PIN).
    pub key: String,
}

/// The description file of a token-held CA.
pub const TOKEN_CA: &str = "ca.toml";

/// Writes the certificates of a new root/issuing pair into `dir`.
pub fn write_certificates(dir: &Path, root: &[u8], issuing: &[u8]) -> Result<(), SetupError> {
    for (name, data) in [
        ("root.der", root.to_vec()),
        ("root.pem", pem(root).into_bytes()),
        ("issuing.der", issuing.to_vec()),
        ("issuing.pem", pem(issuing).into_bytes()),
    ] {
        std::fs::write(dir.join(name), data).map_err(io(&dir.join(name)))?;
    }
    Ok(())
}

fn names() -> (Name, Name) {
    (
        Name::common_name("Keyward Device Root CA").with(NameAttr::Organization, "Keyward"),
        Name::common_name("Keyward Device Issuing CA").with(NameAttr::Organization, "Keyward"),
    )
}

/// A root and an issuing CA from two keys (e.g. in a token); the certificates go to `dir`.
pub fn create(
    dir: &Path,
    root_key: Box<dyn X509Key>,
    issuing_key: Box<dyn X509Key>,
) -> Result<X509Ca, SetupError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let (root_name, issuing_name) = names();
    let (issuing, root) = X509Ca::root_and_issuing(
        root_key,
        issuing_key,
        &root_name,
        &issuing_name,
        now() - 3600,
    )?;
    write_certificates(dir, &root, &issuing.certificate)?;
    Ok(issuing)
}

/// Opens the issuing CA in `dir`: the token-held one `keyward ca init-x509` made, or else the
/// one kept under the master key, created on first use.
pub fn open_or_create(
    dir: &Path,
    master: &MasterKey,
    unlock: &keyward_ca::ca_set::Unlock<'_>,
) -> Result<(X509Ca, Vec<u8>), SetupError> {
    let key_path = dir.join("issuing.key");
    let cert_path = dir.join("issuing.der");
    let root_path = dir.join("root.der");
    let read = |p: &Path| std::fs::read(p).map_err(io(p));
    let token = dir.join(TOKEN_CA);
    if token.exists() {
        let text = std::fs::read_to_string(&token).map_err(io(&token))?;
        let cfg: TokenCa = toml::from_str(&text).map_err(|e| SetupError::Io {
            path: token.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let mut uri = keyward_ca::pkcs11_uri::Pkcs11Uri::parse(&cfg.key)
            .map_err(|e| SetupError::Token(e.to_string()))?;
        if uri.pin_value.is_none() && uri.pin_source.is_none() {
            uri.pin_value = unlock.pin.map(|p| zeroize::Zeroizing::new(p.to_string()));
        }
        let key = keyward_ca::pkcs11_key::open_x509(&uri, unlock.module)
            .map_err(|e| SetupError::Token(e.to_string()))?;
        return Ok((X509Ca::new(key, read(&cert_path)?)?, read(&root_path)?));
    }
    if !key_path.exists() {
        let root_key = EcKey::generate(Curve::Secp256r1)?;
        let issuing_key = EcKey::generate(Curve::Secp256r1)?;
        let root_sealed = master.seal("x509-root", "ca-key", root_key.private_bytes())?;
        let issuing_sealed = master.seal("x509-issuing", "ca-key", issuing_key.private_bytes())?;
        create(
            dir,
            Box::new(SoftwareKey::new(root_key)),
            Box::new(SoftwareKey::new(issuing_key)),
        )?;
        write_private(&dir.join("root.key"), root_sealed.as_bytes())?;
        // The issuing key last: its presence says the set is complete.
        write_private(&key_path, issuing_sealed.as_bytes())?;
    }
    let sealed = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
    let private = master.open("x509-issuing", "ca-key", sealed.trim())?;
    let key: Box<dyn X509Key> = Box::new(SoftwareKey::new(EcKey::from_private(
        Curve::Secp256r1,
        &private,
    )?));
    Ok((X509Ca::new(key, read(&cert_path)?)?, read(&root_path)?))
}
