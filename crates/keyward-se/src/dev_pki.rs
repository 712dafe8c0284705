//! The development device PKI: a per-installation root (SRCA-like, role `C0`) and Device Issuer
//! CA (role `80`) in the SmartCard-HSM CVC format, which certify the device key of every element
//! created here. Production elements get their identity from a real Device Issuer CA instead.

use std::fs;
use std::path::{Path, PathBuf};

use keyward_cvc::{Body, Certificate, Chat, CvDate, PublicKey, oid};
use serde::{Deserialize, Serialize};

use crate::state::{DeviceKey, SecretBytes, State};
use crate::storage::{StorageError, write_atomically};
use keyward_crypto::{self as crypto, Curve, EcKey, PrivateKey};

/// All device-PKI keys live on brainpoolP256r1 with ECDSA-SHA-256, like CardContact's.
pub const DEVICE_CURVE: Curve = Curve::BrainpoolP256r1;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevPkiError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: corrupt development CA file")]
    Corrupt(PathBuf),
    #[error("development CA: {0}")]
    Crypto(#[from] crypto::CryptoError),
    #[error("development CA: {0}")]
    Cvc(#[from] keyward_cvc::CvcError),
}

#[derive(Serialize, Deserialize)]
struct CaFile {
    srca_key: SecretBytes,
    #[serde(with = "hex::serde")]
    srca_cert: Vec<u8>,
    dica_key: SecretBytes,
    #[serde(with = "hex::serde")]
    dica_cert: Vec<u8>,
}

/// The development root and DICA of this installation.
pub struct DevCa {
    dica_key: EcKey,
    pub srca: Certificate,
    pub dica: Certificate,
}

/// Today's date as a CVC date.
pub fn today() -> CvDate {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CvDate::from_unix(secs)
}

fn random_hex(bytes: usize) -> Result<String, DevPkiError> {
    Ok(hex::encode_upper(&crypto::random(bytes)?[..]))
}

fn sign_body(key: &EcKey, body: Body) -> Result<Certificate, DevPkiError> {
    let signer = PrivateKey::Ec(EcKey::from_private(key.curve(), key.private_bytes())?);
    let sig = keyward_cvc::signature::sign(&signer, oid::TA_ECDSA_SHA256, &body.encode()?)?;
    Ok(Certificate::assemble(body, sig)?)
}

fn role(r: u8) -> Option<Chat> {
    Some(Chat {
        role: oid::SC_HSM_ROLE.to_vec(),
        authorization: vec![r],
    })
}

impl DevCa {
    /// Default location: `$KEYWARD_DEV_CA`, else `~/.local/share/keyward/dev-ca`.
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("KEYWARD_DEV_CA") {
            return PathBuf::from(dir);
        }
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        home.join(".local/share/keyward/dev-ca")
    }

    /// The development root certificate in `dir`, if a development CA exists there.
    pub fn root_in(dir: &Path) -> Option<Certificate> {
        let bytes = fs::read(dir.join("srca.cvc")).ok()?;
        Certificate::parse(&bytes).ok()
    }

    /// Loads the development CA in `dir`, creating it on first use.
    pub fn open_or_create(dir: &Path) -> Result<Self, DevPkiError> {
        let path = dir.join("dev-ca.json");
        if !path.exists() {
            fs::create_dir_all(dir).map_err(|source| DevPkiError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            let file = Self::generate()?;
            let json =
                serde_json::to_vec_pretty(&file).map_err(|_| DevPkiError::Corrupt(path.clone()))?;
            // Two processes (or threads) may race to create it: write privately, then link; the
            // loser loads the winner's.
            let tmp = dir.join(format!(
                ".dev-ca.{}.{}.tmp",
                std::process::id(),
                random_hex(8)?
            ));
            write_atomically(&tmp, &json, 0o600)?;
            let linked = fs::hard_link(&tmp, &path);
            let _ = fs::remove_file(&tmp);
            match linked {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    return Err(DevPkiError::Io { path, source: e });
                }
                _ => {}
            }
        }
        let bytes = fs::read(&path).map_err(|source| DevPkiError::Io {
            path: path.clone(),
            source,
        })?;
        let file: CaFile =
            serde_json::from_slice(&bytes).map_err(|_| DevPkiError::Corrupt(path.clone()))?;
        // The certificates also as plain files, for verifiers' trust stores.
        for (name, der) in [("srca.cvc", &file.srca_cert), ("dica.cvc", &file.dica_cert)] {
            let p = dir.join(name);
            if fs::read(&p).ok().as_ref() != Some(der) {
                write_atomically(&p, der, 0o644)?;
            }
        }
        Ok(Self {
            dica_key: EcKey::from_private(DEVICE_CURVE, &file.dica_key.0)?,
            srca: Certificate::parse(&file.srca_cert)?,
            dica: Certificate::parse(&file.dica_cert)?,
        })
    }

    /// A copy of the DICA's private key, for a CA that signs in this process.
    pub fn dica_key(&self) -> Result<EcKey, DevPkiError> {
        Ok(EcKey::from_private(
            self.dica_key.curve(),
            self.dica_key.private_bytes(),
        )?)
    }

    fn generate() -> Result<CaFile, DevPkiError> {
        let inst = random_hex(2)?;
        let srca_chr = format!("KWSRCA{inst}00001").into_bytes();
        let dica_chr = format!("KWDICA{inst}00001").into_bytes();
        let today = today();
        let srca_key = EcKey::generate(DEVICE_CURVE)?;
        let srca = sign_body(
            &srca_key,
            Body {
                cpi: 0,
                car: Some(srca_chr.clone()),
                public_key: PublicKey::Ec {
                    algorithm: oid::TA_ECDSA_SHA256.to_vec(),
                    domain: Some(DEVICE_CURVE.domain()),
                    point: srca_key.public_point().to_vec(),
                },
                chr: srca_chr.clone(),
                chat: role(0xC0),
                effective: Some(today),
                expiration: Some(today.add_days(20 * 365)),
                extensions: None,
            },
        )?;
        let dica_key = EcKey::generate(DEVICE_CURVE)?;
        let dica = sign_body(
            &srca_key,
            Body {
                cpi: 0,
                car: Some(srca_chr),
                public_key: PublicKey::Ec {
                    algorithm: oid::TA_ECDSA_SHA256.to_vec(),
                    domain: None,
                    point: dica_key.public_point().to_vec(),
                },
                chr: dica_chr,
                chat: role(0x80),
                effective: Some(today),
                expiration: Some(today.add_days(15 * 365)),
                extensions: None,
            },
        )?;
        Ok(CaFile {
            srca_key: SecretBytes::new(srca_key.private_bytes().to_vec()),
            srca_cert: srca.raw,
            dica_key: SecretBytes::new(dica_key.private_bytes().to_vec()),
            dica_cert: dica.raw,
        })
    }

    /// Creates the state of a new element: a fresh PrK.DevAut certified by this DICA, with
    /// EF.C_DevAut = device certificate ‖ DICA certificate.
    pub fn new_element(&self) -> Result<State, DevPkiError> {
        let device_key = EcKey::generate(DEVICE_CURVE)?;
        let chr = format!("KWD{}00001", random_hex(4)?);
        let today = today();
        let cert = sign_body(
            &self.dica_key,
            Body {
                cpi: 0,
                car: Some(self.dica.body.chr.clone()),
                public_key: PublicKey::Ec {
                    algorithm: oid::TA_ECDSA_SHA256.to_vec(),
                    domain: None,
                    point: device_key.public_point().to_vec(),
                },
                chr: chr.clone().into_bytes(),
                chat: role(0x00),
                effective: Some(today),
                expiration: Some(today.add_days(10 * 365)),
                extensions: None,
            },
        )?;
        let mut c_devaut = cert.raw;
        c_devaut.extend_from_slice(&self.dica.raw);
        let mut files = std::collections::BTreeMap::new();
        files.insert(
            crate::applet::fid::C_DEVAUT,
            crate::state::HexBytes(c_devaut),
        );
        Ok(State {
            device: Some(DeviceKey {
                curve: DEVICE_CURVE,
                private: SecretBytes::new(device_key.private_bytes().to_vec()),
                chr,
            }),
            config: None,
            keys: std::collections::BTreeMap::new(),
            files,
            roots: vec![crate::state::HexBytes(self.srca.raw.clone())],
            card: None,
        })
    }
}

/// PrK.DevAut of an element.
pub fn device_key(state: &State) -> Result<PrivateKey, crypto::CryptoError> {
    let device = state
        .device
        .as_ref()
        .ok_or(crypto::CryptoError::InvalidKey)?;
    Ok(PrivateKey::Ec(EcKey::from_private(
        device.curve,
        &device.private.0,
    )?))
}
