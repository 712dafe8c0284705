//! Secrets at rest in the database (SO-PINs, transport PINs) are sealed with AES-256-GCM under
//! the server's master key; the device id and the field name are bound in as associated data,
//! so a sealed value copied to another row or column does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    #[error("the master key must be 32 bytes")]
    KeyLength,
    #[error("a sealed {0} does not open with this master key (wrong key or tampered record)")]
    Open(&'static str),
    #[error("no random numbers")]
    Random,
}

/// The key of the audit log's HMAC chain.
#[derive(Clone)]
pub struct AuditKey(Zeroizing<[u8; 32]>);

impl AuditKey {
    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        keyward_crypto::hmac_sha256(&*self.0, data)
    }
}

/// The server's master key.
pub struct MasterKey(Aes256Gcm, AuditKey);

impl MasterKey {
    pub fn new(key: &[u8]) -> Result<Self, SealError> {
        if key.len() != 32 {
            return Err(SealError::KeyLength);
        }
        Ok(Self(
            Aes256Gcm::new_from_slice(key).map_err(|_| SealError::KeyLength)?,
            AuditKey(Zeroizing::new(keyward_crypto::hmac_sha256(
                key,
                b"keyward audit chain v1",
            ))),
        ))
    }

    /// The key the audit log's chain is computed under (derived from the master key, so whoever
    /// writes to the database without the data directory cannot recompute the chain).
    pub fn audit_key(&self) -> AuditKey {
        self.1.clone()
    }

    fn aad(device_id: &str, field: &str) -> Vec<u8> {
        [device_id.as_bytes(), &[0], field.as_bytes()].concat()
    }

    /// `hex(nonce ‖ ciphertext ‖ tag)`.
    pub fn seal(
        &self,
        device_id: &str,
        field: &'static str,
        secret: &[u8],
    ) -> Result<String, SealError> {
        let nonce: [u8; 12] = keyward_crypto::random(12)
            .map_err(|_| SealError::Random)?
            .as_slice()
            .try_into()
            .map_err(|_| SealError::Random)?;
        let aad = Self::aad(device_id, field);
        let ct = self
            .0
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Random)?;
        Ok(hex::encode([&nonce[..], &ct].concat()))
    }

    pub fn open(
        &self,
        device_id: &str,
        field: &'static str,
        sealed: &str,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let raw = hex::decode(sealed).map_err(|_| SealError::Open(field))?;
        if raw.len() < 12 + 16 {
            return Err(SealError::Open(field));
        }
        let (nonce, ct) = raw.split_at(12);
        let nonce = Nonce::try_from(nonce).map_err(|_| SealError::Open(field))?;
        let aad = Self::aad(device_id, field);
        self.0
            .decrypt(&nonce, Payload { msg: ct, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| SealError::Open(field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_where_they_were_sealed() {
        let k = MasterKey::new(&[9; 32]).unwrap();
        let s = k.seal("ZZKWD00001", "so-pin", b"12345678").unwrap();
        assert_eq!(
            &k.open("ZZKWD00001", "so-pin", &s).unwrap()[..],
            b"12345678"
        );
        assert!(k.open("ZZKWD00002", "so-pin", &s).is_err());
        assert!(k.open("ZZKWD00001", "transport-pin", &s).is_err());
        let other = MasterKey::new(&[8; 32]).unwrap();
        assert!(other.open("ZZKWD00001", "so-pin", &s).is_err());
        let mut t = s.into_bytes();
        t[30] = if t[30] == b'0' { b'1' } else { b'0' };
        assert!(
            k.open("ZZKWD00001", "so-pin", &String::from_utf8(t).unwrap())
                .is_err()
        );
        assert!(MasterKey::new(&[0; 16]).is_err());
    }
}
