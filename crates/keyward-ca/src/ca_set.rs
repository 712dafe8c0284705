//! A CA set on disk: the root (role C0, self-signed) and one Device Issuer CA (role 80) as
//! `srca.cvc` / `dica.cvc`, their keys in password-encrypted key files or in PKCS#11 tokens,
//! and `ca.json` saying where each key is (`file:NAME` or a `pkcs11:` URI).

use std::path::{Path, PathBuf};

use keyward_crypto::{Curve, EcKey};
use keyward_cvc::{Certificate, CvDate};
use serde::{Deserialize, Serialize};

use crate::pkcs11_key::Pkcs11Key;
use crate::pkcs11_uri::Pkcs11Uri;
use crate::{CaError, CaKey, CvcCa, SoftwareKey, device_chr, encrypted_key};

const DESCRIPTION: &str = "ca.json";
/// CA keys are brainpoolP256r1, like the SmartCard-HSM device PKI.
pub const CA_CURVE: Curve = Curve::BrainpoolP256r1;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaSetError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: not a CA set description")]
    Description(PathBuf),
    #[error("{0} exists already: a CA set is never overwritten")]
    Exists(PathBuf),
    #[error("key {0}: a password is needed (--password-file)")]
    NoPassword(String),
    #[error("key {name}: {source}")]
    KeyFile {
        name: String,
        source: encrypted_key::KeyFileError,
    },
    #[error("key {name}: {source}")]
    Uri {
        name: String,
        source: crate::pkcs11_uri::UriError,
    },
    #[error("key {name}: {source}")]
    Token {
        name: String,
        source: crate::pkcs11_key::Pkcs11KeyError,
    },
    #[error("key location {0:?}: use file:NAME or a pkcs11: URI")]
    Location(String),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    Cvc(#[from] keyward_cvc::CvcError),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Description {
    root: String,
    dica: String,
    root_key: String,
    dica_key: String,
}

/// Where a new CA set keeps its keys.
pub enum KeyHome<'a> {
    /// `srca.key` and `dica.key`, encrypted under a password.
    Encrypted { password: &'a [u8] },
    /// Generated in PKCS#11 tokens.
    Pkcs11 {
        root: &'a str,
        dica: &'a str,
        module: Option<&'a Path>,
    },
}

/// How to open the keys of an existing set.
#[derive(Default)]
pub struct Unlock<'a> {
    pub password: Option<&'a [u8]>,
    pub module: Option<&'a Path>,
    /// The token PIN, when the recorded URI names none (`pin-source`).
    pub pin: Option<&'a str>,
}

/// A CA set's certificates.
pub struct CaSet {
    pub root: Certificate,
    pub dica: Certificate,
    dir: PathBuf,
    description: Description,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CaSetError + '_ {
    move |source| CaSetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), CaSetError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io(path))?;
    f.write_all(data).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

impl CaSet {
    /// Whether `dir` holds a CA set.
    pub fn exists(dir: &Path) -> bool {
        dir.join(DESCRIPTION).exists()
    }

    /// Creates a CA set: root `{country}KWRCA00001`, DICA `{country}KWDICA00001`.
    pub fn init(
        dir: &Path,
        keys: &KeyHome<'_>,
        country: &str,
        from: CvDate,
    ) -> Result<Self, CaSetError> {
        let desc_path = dir.join(DESCRIPTION);
        if desc_path.exists() {
            return Err(CaSetError::Exists(desc_path));
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let root_chr = device_chr(country, "KWRCA", 1)?;
        let dica_chr = device_chr(country, "KWDICA", 1)?;
        let (root_key, dica_key, root_loc, dica_loc): (
            Box<dyn CaKey + Send>,
            Box<dyn CaKey + Send>,
            String,
            String,
        ) = match keys {
            KeyHome::Encrypted { password } => {
                let mut made = Vec::new();
                for name in ["srca.key", "dica.key"] {
                    let key = EcKey::generate(CA_CURVE).map_err(CaError::from)?;
                    let sealed = encrypted_key::seal(&key, password).map_err(|source| {
                        CaSetError::KeyFile {
                            name: name.to_string(),
                            source,
                        }
                    })?;
                    write_new(&dir.join(name), &sealed, 0o600)?;
                    made.push(Box::new(SoftwareKey::new(key)) as Box<dyn CaKey + Send>);
                }
                let dica = made.pop().ok_or(CaSetError::Location(String::new()))?;
                let root = made.pop().ok_or(CaSetError::Location(String::new()))?;
                (root, dica, "file:srca.key".into(), "file:dica.key".into())
            }
            KeyHome::Pkcs11 { root, dica, module } => {
                let generate = |name: &str| -> Result<Box<dyn CaKey + Send>, CaSetError> {
                    let uri = Pkcs11Uri::parse(name).map_err(|source| CaSetError::Uri {
                        name: name.to_string(),
                        source,
                    })?;
                    let key = Pkcs11Key::generate(&uri, *module, CA_CURVE).map_err(|source| {
                        CaSetError::Token {
                            name: name.to_string(),
                            source,
                        }
                    })?;
                    Ok(Box::new(key))
                };
                (
                    generate(root)?,
                    generate(dica)?,
                    crate::pkcs11_uri::without_pin(root),
                    crate::pkcs11_uri::without_pin(dica),
                )
            }
        };
        let mut root = CvcCa::root(root_key, &root_chr, from, 20 * 365)?;
        let dica = root.certify_ca(dica_key, &dica_chr, from, 15 * 365)?;
        write_new(&dir.join("srca.cvc"), &root.certificate.raw, 0o644)?;
        write_new(&dir.join("dica.cvc"), &dica.certificate.raw, 0o644)?;
        let description = Description {
            root: "srca.cvc".into(),
            dica: "dica.cvc".into(),
            root_key: root_loc,
            dica_key: dica_loc,
        };
        let json = serde_json::to_vec_pretty(&description)
            .map_err(|_| CaSetError::Description(desc_path.clone()))?;
        write_new(&desc_path, &json, 0o644)?;
        Ok(Self {
            root: root.certificate,
            dica: dica.certificate,
            dir: dir.to_path_buf(),
            description,
        })
    }

    /// Reads a CA set's description and certificates.
    pub fn open(dir: &Path) -> Result<Self, CaSetError> {
        let desc_path = dir.join(DESCRIPTION);
        let raw = std::fs::read(&desc_path).map_err(io(&desc_path))?;
        let description: Description =
            serde_json::from_slice(&raw).map_err(|_| CaSetError::Description(desc_path))?;
        let cert = |name: &str| -> Result<Certificate, CaSetError> {
            let path = dir.join(name);
            Ok(Certificate::parse(
                &std::fs::read(&path).map_err(io(&path))?,
            )?)
        };
        Ok(Self {
            root: cert(&description.root)?,
            dica: cert(&description.dica)?,
            dir: dir.to_path_buf(),
            description,
        })
    }

    /// Where the DICA's key is (`file:NAME` or a `pkcs11:` URI without its PIN).
    pub fn dica_key_location(&self) -> &str {
        &self.description.dica_key
    }

    /// The Device Issuer CA, ready to sign.
    pub fn dica(&self, unlock: &Unlock<'_>) -> Result<CvcCa<Box<dyn CaKey + Send>>, CaSetError> {
        let key = self.open_key(&self.description.dica_key, unlock)?;
        Ok(CvcCa::new(key, self.dica.clone())?)
    }

    fn open_key(
        &self,
        location: &str,
        unlock: &Unlock<'_>,
    ) -> Result<Box<dyn CaKey + Send>, CaSetError> {
        if let Some(name) = location.strip_prefix("file:") {
            let password = unlock
                .password
                .ok_or_else(|| CaSetError::NoPassword(location.to_string()))?;
            let path = self.dir.join(name);
            let sealed = std::fs::read(&path).map_err(io(&path))?;
            let key =
                encrypted_key::open(&sealed, password).map_err(|source| CaSetError::KeyFile {
                    name: location.to_string(),
                    source,
                })?;
            return Ok(Box::new(key));
        }
        if location.starts_with("pkcs11:") {
            let mut uri = Pkcs11Uri::parse(location).map_err(|source| CaSetError::Uri {
                name: location.to_string(),
                source,
            })?;
            if uri.pin_value.is_none() && uri.pin_source.is_none() {
                uri.pin_value = unlock.pin.map(|p| zeroize::Zeroizing::new(p.to_string()));
            }
            let key = Pkcs11Key::open(&uri, unlock.module).map_err(|source| CaSetError::Token {
                name: location.to_string(),
                source,
            })?;
            return Ok(Box::new(key));
        }
        Err(CaSetError::Location(location.to_string()))
    }
}
