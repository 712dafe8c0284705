//! The server's data directory. With no configuration the server makes what it needs there on
//! first start, so it runs out of the box: a development CVC CA set (`ca/`), the Key for Secure
//! Transport shared with the chip maker (`kst.key`), the producer's master key for card-unique
//! SCP03 keys (`kmc.key`), the master key sealing secrets in the database (`master.key`), all
//! key files mode 0600, and the SQLite database (`keyward.db`).

use std::path::{Path, PathBuf};

use keyward_sm::KeyFile;
use keyward_sm::scp03::StaticKeys;
use zeroize::Zeroizing;

use crate::seal::{AuditKey, MasterKey};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    KeyFile {
        path: PathBuf,
        source: keyward_sm::KeyFileError,
    },
    #[error("development CA: {0}")]
    DevCa(#[from] keyward_se::dev_pki::DevPkiError),
    #[error("CA set: {0}")]
    CaSet(#[from] keyward_ca::ca_set::CaSetError),
    #[error("CA: {0}")]
    Ca(#[from] keyward_ca::CaError),
    #[error("{0}")]
    Seal(#[from] crate::seal::SealError),
    #[error("no random numbers")]
    Random,
    #[error("key: {0}")]
    Crypto(#[from] keyward_crypto::CryptoError),
    #[error("CA key in a token: {0}")]
    Token(String),
}

/// The Device Issuer CA a server signs with.
pub type Dica = keyward_ca::CvcCa<Box<dyn keyward_ca::CaKey + Send>>;

/// The secrets and CA material of a server.
pub struct DataDir {
    pub dir: PathBuf,
    /// The root devices' chains lead to.
    pub root: keyward_cvc::Certificate,
    pub dica: Dica,
    /// Key version and keys of the Key for Secure Transport.
    pub kst: (u8, StaticKeys),
    pub kmc: Zeroizing<Vec<u8>>,
    pub master: MasterKey,
    /// The X.509 issuing CA (`x509/`) and the root certificate above it (DER).
    pub x509: keyward_ca::x509::X509Ca,
    pub x509_root: Vec<u8>,
}

impl DataDir {
    pub fn kst_path(dir: &Path) -> PathBuf {
        dir.join("kst.key")
    }

    /// The master key of the data directory `dir` (`master.key`), created when missing.
    pub fn master_key(dir: &Path) -> Result<MasterKey, SetupError> {
        std::fs::create_dir_all(dir).map_err(|source| SetupError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let master = key_file(&dir.join("master.key"), &[("key", 32)])?;
        Ok(MasterKey::new(master.get("key").unwrap_or_default())?)
    }

    /// The audit chain's key of the data directory `dir`, if it has a master key (never
    /// creates one: a tool that only reads or appends must not invent a key).
    pub fn audit_key(dir: &Path) -> Result<Option<AuditKey>, SetupError> {
        if !dir.join("master.key").exists() {
            return Ok(None);
        }
        Ok(Some(Self::master_key(dir)?.audit_key()))
    }

    /// The default SQLite database in `dir`.
    pub fn default_db_url(dir: &Path) -> String {
        format!("sqlite://{}", dir.join("keyward.db").display())
    }

    /// Opens `dir`, creating whatever is missing. The CA is the set `keyward ca init` made in
    /// `dir/ca` (its keys opened with `unlock`), or else a development CA created there.
    pub fn open_or_create(
        dir: &Path,
        unlock: &keyward_ca::ca_set::Unlock<'_>,
    ) -> Result<Self, SetupError> {
        std::fs::create_dir_all(dir).map_err(|source| SetupError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let ca_dir = dir.join("ca");
        let (root, dica) = if keyward_ca::ca_set::CaSet::exists(&ca_dir) {
            let set = keyward_ca::ca_set::CaSet::open(&ca_dir)?;
            let dica = set.dica(unlock)?;
            (set.root, dica)
        } else {
            let dev = keyward_se::dev_pki::DevCa::open_or_create(&ca_dir)?;
            let key: Box<dyn keyward_ca::CaKey + Send> =
                Box::new(keyward_ca::SoftwareKey::new(dev.dica_key()?));
            (
                dev.srca.clone(),
                keyward_ca::CvcCa::new(key, dev.dica.clone())?,
            )
        };
        let kst = key_file(&Self::kst_path(dir), &[("kvn", 1), ("key", 16)])?;
        let kst = kst.scp03_key_set().map_err(|source| SetupError::KeyFile {
            path: Self::kst_path(dir),
            source,
        })?;
        let kmc_path = dir.join("kmc.key");
        let kmc = key_file(&kmc_path, &[("kmc", 16)])?
            .aes_key("kmc")
            .map_err(|source| SetupError::KeyFile {
                path: kmc_path,
                source,
            })?;
        let master = Self::master_key(dir)?;
        let (x509, x509_root) = crate::x509_ca::open_or_create(&dir.join("x509"), &master, unlock)?;
        Ok(Self {
            x509,
            x509_root,
            dir: dir.to_path_buf(),
            root,
            dica,
            kst,
            kmc,
            master,
        })
    }
}

/// Reads the key file at `path`, first creating it with random entries of the given lengths
/// (a `kvn` entry of length 1 is written as `FF`, the initial key set's version).
fn key_file(path: &Path, fresh: &[(&str, usize)]) -> Result<KeyFile, SetupError> {
    let io = |source| SetupError::Io {
        path: path.to_path_buf(),
        source,
    };
    if !path.exists() {
        let mut values = Vec::new();
        for (name, len) in fresh {
            let v = if *name == "kvn" {
                Zeroizing::new(vec![0xFF])
            } else {
                keyward_crypto::random(*len).map_err(|_| SetupError::Random)?
            };
            values.push((*name, v));
        }
        let entries: Vec<(&str, &[u8])> = values.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        let text = KeyFile::encode(&entries);
        // Written privately, then linked into place: of two processes racing, one wins and the
        // other reads the winner's file.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        keyward_se::storage::write_atomically(&tmp, text.as_bytes(), 0o600).map_err(|e| {
            SetupError::Io {
                path: tmp.clone(),
                source: std::io::Error::other(e.to_string()),
            }
        })?;
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(io(e)),
            _ => {}
        }
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
    KeyFile::parse(&text).map_err(|source| SetupError::KeyFile {
        path: path.to_path_buf(),
        source,
    })
}
