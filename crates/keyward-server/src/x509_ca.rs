//! The server's X.509 CAs in its data directory (`x509/`): a root and an issuing CA, their keys
//! either in files sealed under the server's master key (ECDSA P-256 created on first start, or
//! any type `keyward ca init-x509` chose) or in a PKCS#11 token; the certificates as DER and PEM
//! (`root.pem`, `issuing.pem` for relying parties).

use std::path::Path;

use keyward_ca::SoftwareKey;
use keyward_ca::x509::{Name, NameAttr, RsaSoftwareKey, X509Ca, X509Key};
use keyward_crypto::{Curve, EcKey, RsaKey};
use zeroize::Zeroizing;

use crate::seal::MasterKey;
use crate::setup::SetupError;

/// PEM of a DER certificate.
pub fn pem(der: &[u8]) -> String {
    keyward_ca::pem::certificate(der)
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

/// The type of an X.509 CA key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Ec(Curve),
    Rsa(usize),
}

impl KeyType {
    /// `p256`, `p384`, `rsa2048`, `rsa3072` or `rsa4096`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "p256" => Self::Ec(Curve::Secp256r1),
            "p384" => Self::Ec(Curve::Secp384r1),
            "rsa2048" => Self::Rsa(2048),
            "rsa3072" => Self::Rsa(3072),
            "rsa4096" => Self::Rsa(4096),
            _ => return None,
        })
    }
}

/// A CA key held in a file of the data directory, sealed under the master key. The file reads
/// `TYPE:SEALED` (`p256`, `p384`, `rsa`); a bare sealed value is the first layout, P-256. The
/// type is also the sealing's field name, so a file whose prefix was edited does not open.
enum FileKey {
    Ec(EcKey),
    Rsa(RsaKey),
}

impl FileKey {
    fn generate(kind: KeyType) -> Result<Self, SetupError> {
        Ok(match kind {
            KeyType::Ec(curve) => Self::Ec(EcKey::generate(curve)?),
            KeyType::Rsa(bits) => Self::Rsa(RsaKey::generate(bits)?),
        })
    }

    fn field(prefix: &str) -> Option<(&'static str, Option<Curve>)> {
        match prefix {
            "p256" => Some(("ca-key", Some(Curve::Secp256r1))),
            "p384" => Some(("ca-key-p384", Some(Curve::Secp384r1))),
            "rsa" => Some(("ca-key-rsa", None)),
            _ => None,
        }
    }

    fn seal(&self, master: &MasterKey, who: &str) -> Result<String, SetupError> {
        let (prefix, secret) = match self {
            Self::Ec(k) if k.curve() == Curve::Secp384r1 => {
                ("p384", Zeroizing::new(k.private_bytes().to_vec()))
            }
            Self::Ec(k) => ("p256", Zeroizing::new(k.private_bytes().to_vec())),
            Self::Rsa(k) => {
                let (n, e, d, p, q) = k.parts()?;
                let mut out = Zeroizing::new(Vec::new());
                for part in [&n[..], &e[..], &d[..], &p[..], &q[..]] {
                    let len = u16::try_from(part.len()).map_err(|_| SetupError::Random)?;
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(part);
                }
                ("rsa", out)
            }
        };
        let (field, _) = Self::field(prefix).ok_or(SetupError::Random)?;
        Ok(format!("{prefix}:{}", master.seal(who, field, &secret)?))
    }

    fn open(master: &MasterKey, who: &str, text: &str) -> Result<Self, SetupError> {
        let (prefix, sealed) = text.trim().split_once(':').unwrap_or(("p256", text.trim()));
        let unknown = || crate::seal::SealError::Open("CA key (unknown key type)");
        let (field, curve) = Self::field(prefix).ok_or_else(unknown)?;
        let secret = master.open(who, field, sealed)?;
        if let Some(curve) = curve {
            return Ok(Self::Ec(EcKey::from_private(curve, &secret)?));
        }
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut rest = &secret[..];
        while let [hi, lo, tail @ ..] = rest {
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            let (part, next) = tail.split_at_checked(len).ok_or_else(unknown)?;
            parts.push(part);
            rest = next;
        }
        let [n, e, d, p, q] = parts[..] else {
            return Err(unknown().into());
        };
        Ok(Self::Rsa(RsaKey::from_parts(n, e, d, p, q)?))
    }

    fn into_x509(self) -> Box<dyn X509Key> {
        match self {
            Self::Ec(k) => Box::new(SoftwareKey::new(k)),
            Self::Rsa(k) => Box::new(RsaSoftwareKey(k)),
        }
    }
}

/// Creates a root and issuing CA with keys of `kind` sealed under `master` in `dir`; refuses a
/// directory that holds a CA already.
pub fn create_sealed(dir: &Path, master: &MasterKey, kind: KeyType) -> Result<X509Ca, SetupError> {
    let key_path = dir.join("issuing.key");
    if key_path.exists() || dir.join(TOKEN_CA).exists() {
        return Err(SetupError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "holds an X.509 CA already; it is never overwritten",
            ),
        });
    }
    let root_key = FileKey::generate(kind)?;
    let issuing_key = FileKey::generate(kind)?;
    let root_sealed = root_key.seal(master, "x509-root")?;
    let issuing_sealed = issuing_key.seal(master, "x509-issuing")?;
    let ca = create(dir, root_key.into_x509(), issuing_key.into_x509())?;
    write_private(&dir.join("root.key"), root_sealed.as_bytes())?;
    // The issuing key last: its presence says the set is complete.
    write_private(&key_path, issuing_sealed.as_bytes())?;
    Ok(ca)
}

/// Opens the issuing CA in `dir`: the token-held one `keyward ca init-x509` made, or else the
/// one kept under the master key, created (P-256) on first use.
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
            uri.pin_value = unlock.pin.map(|p| Zeroizing::new(p.to_string()));
        }
        let key = keyward_ca::pkcs11_key::open_x509(&uri, unlock.module)
            .map_err(|e| SetupError::Token(e.to_string()))?;
        return Ok((X509Ca::new(key, read(&cert_path)?)?, read(&root_path)?));
    }
    if !key_path.exists() {
        let ca = create_sealed(dir, master, KeyType::Ec(Curve::Secp256r1))?;
        return Ok((ca, read(&root_path)?));
    }
    let sealed = Zeroizing::new(std::fs::read_to_string(&key_path).map_err(io(&key_path))?);
    let key = FileKey::open(master, "x509-issuing", &sealed)?.into_x509();
    Ok((X509Ca::new(key, read(&cert_path)?)?, read(&root_path)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_ca::x509::{SubjectKey, verify_issued};

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "keyward-x509-ca-{}-{}",
            std::process::id(),
            keyward_crypto::random(8).map(hex::encode).unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn issue_one(ca: &mut X509Ca) -> Vec<u8> {
        let leaf = EcKey::generate(Curve::Secp256r1).unwrap();
        let template = keyward_ca::x509::Template::end_entity(
            Name::common_name("leaf"),
            now() - 60,
            now() + 3600,
        );
        let key = SubjectKey::Ec {
            curve: Curve::Secp256r1,
            point: leaf.public_point().to_vec(),
        };
        ca.issue(&template, &key).unwrap().der
    }

    #[test]
    fn file_held_cas_of_every_type_reopen_and_issue() {
        let master = MasterKey::new(&[7; 32]).unwrap();
        let unlock = keyward_ca::ca_set::Unlock::default();
        for kind in ["p384", "rsa2048"] {
            let tmp = tempdir();
            let dir = tmp.join("x509");
            create_sealed(&dir, &master, KeyType::parse(kind).unwrap()).unwrap();
            assert!(create_sealed(&dir, &master, KeyType::parse(kind).unwrap()).is_err());
            let text = std::fs::read_to_string(dir.join("issuing.key")).unwrap();
            assert!(text.starts_with(if kind == "p384" { "p384:" } else { "rsa:" }));
            let (mut ca, _root) = open_or_create(&dir, &master, &unlock).unwrap();
            let cert = issue_one(&mut ca);
            let issuer = std::fs::read(dir.join("issuing.der")).unwrap();
            assert!(verify_issued(&cert, &issuer).unwrap(), "{kind}");
            // Another master key, or an edited type prefix, does not open the key.
            let other = MasterKey::new(&[8; 32]).unwrap();
            assert!(open_or_create(&dir, &other, &unlock).is_err());
            let swapped = format!("p256:{}", text.split_once(':').unwrap().1);
            std::fs::write(dir.join("issuing.key"), swapped).unwrap();
            assert!(open_or_create(&dir, &master, &unlock).is_err());
            std::fs::remove_dir_all(&tmp).unwrap();
        }
    }

    #[test]
    fn the_first_layout_a_bare_p256_key_still_opens() {
        let master = MasterKey::new(&[7; 32]).unwrap();
        let tmp = tempdir();
        let dir = tmp.join("x509");
        create_sealed(&dir, &master, KeyType::Ec(Curve::Secp256r1)).unwrap();
        let text = std::fs::read_to_string(dir.join("issuing.key")).unwrap();
        let bare = text.strip_prefix("p256:").unwrap();
        std::fs::write(dir.join("issuing.key"), bare).unwrap();
        let (mut ca, _) =
            open_or_create(&dir, &master, &keyward_ca::ca_set::Unlock::default()).unwrap();
        let cert = issue_one(&mut ca);
        let issuer = std::fs::read(dir.join("issuing.der")).unwrap();
        assert!(verify_issued(&cert, &issuer).unwrap());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
