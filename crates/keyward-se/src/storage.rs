//! The element's persistent state file: versioned, sealed under a master key kept in a separate
//! 0600 file, written atomically (temp file, fsync, rename, fsync of the directory) and locked by
//! the process that opens it.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::state::State;

/// Current version of the sealed state's schema.
pub const STATE_VERSION: u32 = 1;
const FORMAT: &str = "keyward-se-state";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: the state file is in use by another process")]
    Locked(PathBuf),
    #[error("{0}: already exists")]
    Exists(PathBuf),
    #[error("{0}: not a Keyward secure-element state file")]
    NotAStateFile(PathBuf),
    #[error(
        "{path}: state format version {version} is newer than this program supports ({STATE_VERSION})"
    )]
    TooNew { path: PathBuf, version: u32 },
    #[error("{0}: cannot be decrypted with this master key (wrong key file or corrupted state)")]
    Unseal(PathBuf),
    #[error("{0}: master key file must hold exactly 32 bytes")]
    BadMasterKey(PathBuf),
    #[error("state encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error("random number generator failed")]
    Rng,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The on-disk envelope: plain header, sealed body.
#[derive(Serialize, Deserialize)]
struct Envelope {
    format: String,
    version: u32,
    #[serde(with = "hex::serde")]
    nonce: Vec<u8>,
    #[serde(with = "hex::serde")]
    sealed: Vec<u8>,
}

/// An open, locked state file.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    master_key: Zeroizing<[u8; 32]>,
    // Held for the lifetime of the handle; the OS lock is released when it is dropped.
    _lock: File,
}

impl StateFile {
    /// Default master-key file beside a state file: `FILE.key`.
    pub fn default_key_path(state: &Path) -> PathBuf {
        let mut p = state.as_os_str().to_owned();
        p.push(".key");
        PathBuf::from(p)
    }

    fn lock_path(state: &Path) -> PathBuf {
        let mut p = state.as_os_str().to_owned();
        p.push(".lock");
        PathBuf::from(p)
    }

    fn lock(state: &Path) -> Result<File, StorageError> {
        let path = Self::lock_path(state);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        // A lock just released can stay held for a moment by a process forked meanwhile (its
        // copy of the descriptor lives until it execs), so a busy lock is tried a few times.
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(250);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(StorageError::Locked(state.to_path_buf()));
                }
                Err(TryLockError::Error(e)) => return Err(io(&path)(e)),
            }
        }
    }

    /// Creates a new state file (and a new master key file if `key` does not exist yet).
    pub fn create(path: &Path, key: &Path, state: &State) -> Result<Self, StorageError> {
        if path.exists() {
            return Err(StorageError::Exists(path.to_path_buf()));
        }
        let lock = Self::lock(path)?;
        let master_key = if key.exists() {
            read_key(key)?
        } else {
            create_key(key)?
        };
        let file = Self {
            path: path.to_path_buf(),
            master_key,
            _lock: lock,
        };
        file.save(state)?;
        Ok(file)
    }

    /// Opens and locks an existing state file, returning the handle and the decrypted state.
    pub fn open(path: &Path, key: &Path) -> Result<(Self, State), StorageError> {
        let lock = Self::lock(path)?;
        let master_key = read_key(key)?;
        let file = Self {
            path: path.to_path_buf(),
            master_key,
            _lock: lock,
        };
        let state = file.load()?;
        Ok((file, state))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self) -> Result<State, StorageError> {
        unseal(&self.path, &self.master_key)
    }

    /// Seals `state` and atomically replaces the file.
    pub fn save(&self, state: &State) -> Result<(), StorageError> {
        let plain = Zeroizing::new(serde_json::to_vec(state)?);
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|_| StorageError::Rng)?;
        let cipher =
            Aes256Gcm::new_from_slice(&self.master_key[..]).map_err(|_| StorageError::Rng)?;
        let aad = aad(STATE_VERSION);
        let sealed = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .map_err(|_| StorageError::Rng)?;
        let env = Envelope {
            format: FORMAT.into(),
            version: STATE_VERSION,
            nonce: nonce.to_vec(),
            sealed,
        };
        write_atomically(&self.path, &serde_json::to_vec_pretty(&env)?, 0o600)
    }
}

/// Reads and decrypts a state file.
fn unseal(path: &Path, master_key: &[u8; 32]) -> Result<State, StorageError> {
    let bytes = fs::read(path).map_err(io(path))?;
    let env: Envelope = serde_json::from_slice(&bytes)
        .map_err(|_| StorageError::NotAStateFile(path.to_path_buf()))?;
    if env.format != FORMAT {
        return Err(StorageError::NotAStateFile(path.to_path_buf()));
    }
    if env.version > STATE_VERSION {
        return Err(StorageError::TooNew {
            path: path.to_path_buf(),
            version: env.version,
        });
    }
    let cipher = Aes256Gcm::new_from_slice(master_key).map_err(|_| StorageError::Rng)?;
    let nonce =
        Nonce::try_from(&env.nonce[..]).map_err(|_| StorageError::Unseal(path.to_path_buf()))?;
    let plain = Zeroizing::new(
        cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &env.sealed,
                    aad: &aad(env.version),
                },
            )
            .map_err(|_| StorageError::Unseal(path.to_path_buf()))?,
    );
    Ok(State::from_versioned_json(env.version, &plain)?)
}

fn aad(version: u32) -> Vec<u8> {
    format!("{FORMAT}/v{version}").into_bytes()
}

fn read_key(path: &Path) -> Result<Zeroizing<[u8; 32]>, StorageError> {
    let bytes = Zeroizing::new(fs::read(path).map_err(io(path))?);
    let key: [u8; 32] = bytes[..]
        .try_into()
        .map_err(|_| StorageError::BadMasterKey(path.to_path_buf()))?;
    Ok(Zeroizing::new(key))
}

fn create_key(path: &Path) -> Result<Zeroizing<[u8; 32]>, StorageError> {
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut key[..]).map_err(|_| StorageError::Rng)?;
    write_atomically(path, &key[..], 0o600)?;
    Ok(key)
}

/// Writes `data` to `path` so that a crash at any instant leaves either the old or the new file.
pub fn write_atomically(path: &Path, data: &[u8], mode: u32) -> Result<(), StorageError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = path.as_os_str().to_owned();
    // Unique per writer, so threads of one process never share a temporary file.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tmp.push(format!(".tmp{}.{n}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(data).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io(path))?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io(&dir))?;
    Ok(())
}

/// Reads a state file without taking its lock (for inspection while another process serves it;
/// safe because every write is an atomic rename).
pub fn read_snapshot(path: &Path, key: &Path) -> Result<State, StorageError> {
    unseal(path, &*read_key(key)?)
}
