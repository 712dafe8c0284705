//! The server's X.509 CAs in its data directory (`x509/`): a root and an issuing CA, ECDSA
//! P-256, created on first start; the private keys sealed under the server's master key, the
//! certificates as DER and PEM (`root.pem`, `issuing.pem` for relying parties).

use std::path::Path;

use base64::Engine as _;
use keyward_ca::x509::{KeyUsage, Name, NameAttr, SubjectKey, Template, X509Ca};
use keyward_ca::{CaKey, SoftwareKey};
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

/// Opens the issuing CA in `dir`, creating root and issuing CA on first use.
pub fn open_or_create(dir: &Path, master: &MasterKey) -> Result<(X509Ca, Vec<u8>), SetupError> {
    let key_path = dir.join("issuing.key");
    let cert_path = dir.join("issuing.der");
    let root_path = dir.join("root.der");
    if !key_path.exists() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let start = now() - 3600;
        let root_key = EcKey::generate(Curve::Secp256r1)?;
        let issuing_key = EcKey::generate(Curve::Secp256r1)?;
        let root_sealed = master.seal("x509-root", "ca-key", root_key.private_bytes())?;
        let issuing_sealed = master.seal("x509-issuing", "ca-key", issuing_key.private_bytes())?;
        let issuing_point = issuing_key.public_point().to_vec();
        let mut root = X509Ca::self_signed(
            Box::new(SoftwareKey::new(root_key)),
            &Name::common_name("Keyward Device Root CA").with(NameAttr::Organization, "Keyward"),
            start,
            start + 20 * 365 * 86_400,
        )?;
        let issuing = root.issue(
            &Template {
                subject: Name::common_name("Keyward Device Issuing CA")
                    .with(NameAttr::Organization, "Keyward"),
                not_before: start,
                not_after: start + 10 * 365 * 86_400,
                key_usage: vec![KeyUsage::KeyCertSign, KeyUsage::CrlSign],
                extended_key_usage: Vec::new(),
                alt_names: Vec::new(),
                ca: Some(Some(0)),
                crl_url: None,
                ocsp_url: None,
                attestation: None,
            },
            &SubjectKey::Ec {
                curve: Curve::Secp256r1,
                point: issuing_point,
            },
        )?;
        for (name, data) in [
            ("root.der", root.certificate.clone()),
            ("root.pem", pem(&root.certificate).into_bytes()),
            ("issuing.der", issuing.der.clone()),
            ("issuing.pem", pem(&issuing.der).into_bytes()),
        ] {
            std::fs::write(dir.join(name), data).map_err(io(&dir.join(name)))?;
        }
        write_private(&dir.join("root.key"), root_sealed.as_bytes())?;
        // The issuing key last: its presence says the set is complete.
        write_private(&key_path, issuing_sealed.as_bytes())?;
    }
    let sealed = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
    let private = master.open("x509-issuing", "ca-key", sealed.trim())?;
    let key: Box<dyn CaKey + Send> = Box::new(SoftwareKey::new(EcKey::from_private(
        Curve::Secp256r1,
        &private,
    )?));
    let cert = std::fs::read(&cert_path).map_err(io(&cert_path))?;
    let root = std::fs::read(&root_path).map_err(io(&root_path))?;
    Ok((X509Ca::new(key, cert)?, root))
}
