//! A CA private key in a password-encrypted file: PBKDF2-HMAC-SHA-256 (600,000 iterations,
//! random salt) derives an AES-256-GCM key that seals the private scalar; the curve and the
//! public point travel in the clear but are bound to the ciphertext as associated data.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use keyward_crypto::{Curve, EcKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::SoftwareKey;

const FORMAT: &str = "keyward-ca-key/1";
const ITERATIONS: u32 = 600_000;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    #[error("not a keyward CA key file")]
    Format,
    #[error("wrong password, or the key file was tampered with")]
    Decrypt,
    #[error("the password is empty")]
    EmptyPassword,
    #[error("key: {0}")]
    Key(#[from] keyward_crypto::CryptoError),
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    format: String,
    curve: String,
    #[serde(with = "hex::serde")]
    public: Vec<u8>,
    iterations: u32,
    #[serde(with = "hex::serde")]
    salt: Vec<u8>,
    #[serde(with = "hex::serde")]
    nonce: Vec<u8>,
    #[serde(with = "hex::serde")]
    ciphertext: Vec<u8>,
}

fn cipher(password: &[u8], salt: &[u8], iterations: u32) -> Result<Aes256Gcm, KeyFileError> {
    let mut key = Zeroizing::new([0u8; 32]);
    keyward_crypto::pbkdf2_sha256(password, salt, iterations, &mut key[..]);
    Aes256Gcm::new_from_slice(&key[..]).map_err(|_| KeyFileError::Format)
}

fn aad(curve: &str, public: &[u8]) -> Vec<u8> {
    [FORMAT.as_bytes(), &[0], curve.as_bytes(), &[0], public].concat()
}

/// Encrypts `key` under `password`; returns the file's contents (JSON).
pub fn seal(key: &EcKey, password: &[u8]) -> Result<Vec<u8>, KeyFileError> {
    if password.is_empty() {
        return Err(KeyFileError::EmptyPassword);
    }
    let salt = keyward_crypto::random(16)?;
    let nonce = keyward_crypto::random(12)?;
    let curve = key.curve().name().to_string();
    let public = key.public_point().to_vec();
    let ciphertext = cipher(password, &salt, ITERATIONS)?
        .encrypt(
            &Nonce::try_from(&nonce[..]).map_err(|_| KeyFileError::Format)?,
            Payload {
                msg: key.private_bytes(),
                aad: &aad(&curve, &public),
            },
        )
        .map_err(|_| KeyFileError::Format)?;
    let env = Envelope {
        format: FORMAT.to_string(),
        curve,
        public,
        iterations: ITERATIONS,
        salt: salt.to_vec(),
        nonce: nonce.to_vec(),
        ciphertext,
    };
    serde_json::to_vec_pretty(&env).map_err(|_| KeyFileError::Format)
}

/// Decrypts a key file's contents with `password`.
pub fn open(contents: &[u8], password: &[u8]) -> Result<SoftwareKey, KeyFileError> {
    let env: Envelope = serde_json::from_slice(contents).map_err(|_| KeyFileError::Format)?;
    if env.format != FORMAT || env.iterations == 0 || env.salt.len() < 8 {
        return Err(KeyFileError::Format);
    }
    let curve = Curve::from_name(&env.curve).ok_or(KeyFileError::Format)?;
    let nonce = Nonce::try_from(&env.nonce[..]).map_err(|_| KeyFileError::Format)?;
    let private = Zeroizing::new(
        cipher(password, &env.salt, env.iterations)?
            .decrypt(
                &nonce,
                Payload {
                    msg: &env.ciphertext,
                    aad: &aad(&env.curve, &env.public),
                },
            )
            .map_err(|_| KeyFileError::Decrypt)?,
    );
    let key = EcKey::from_private(curve, &private)?;
    if key.public_point() != env.public.as_slice() {
        return Err(KeyFileError::Decrypt);
    }
    Ok(SoftwareKey::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CaKey;

    #[test]
    fn round_trip_and_refusals() {
        let key = EcKey::generate(Curve::BrainpoolP256r1).unwrap();
        let point = key.public_point().to_vec();
        let file = seal(&key, b"correct horse").unwrap();
        let text = String::from_utf8(file.clone()).unwrap();
        assert!(!text.contains(&hex::encode(key.private_bytes())));
        let opened = open(&file, b"correct horse").unwrap();
        assert_eq!(opened.point(), point.as_slice());
        assert!(matches!(open(&file, b"wrong"), Err(KeyFileError::Decrypt)));
        // Another public point in the clear part does not match the sealed key.
        let other = EcKey::generate(Curve::BrainpoolP256r1).unwrap();
        let swapped = text.replace(&hex::encode(&point), &hex::encode(other.public_point()));
        assert!(matches!(
            open(swapped.as_bytes(), b"correct horse"),
            Err(KeyFileError::Decrypt)
        ));
        assert!(matches!(open(b"{}", b"x"), Err(KeyFileError::Format)));
        assert!(matches!(seal(&key, b""), Err(KeyFileError::EmptyPassword)));
    }
}
