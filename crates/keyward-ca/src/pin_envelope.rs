//! The transport PIN's way from the back end to the device, never in the clear: the device
//! brings a fresh P-256 public key (`pin_key` on the production URL), the server seals the PIN
//! to it — ephemeral-static ECDH, a SHA-256 key derivation bound to both public keys, AES-256-GCM
//! with the device id as associated data — and only the device, holding the private key for
//! this one session, opens it.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use keyward_crypto::{Curve, EcKey, HashAlg};
use zeroize::Zeroizing;

const LABEL: &[u8] = b"keyward transport PIN v1";
const POINT: usize = 65;
const NONCE: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeError {
    #[error("the device's PIN key is not a P-256 point (hex, uncompressed)")]
    BadKey,
    #[error("the sealed transport PIN does not open (altered, or for another key or device)")]
    Open,
    #[error("no random numbers")]
    Random,
}

fn key(shared: &[u8], recipient: &[u8], ephemeral: &[u8]) -> Zeroizing<Vec<u8>> {
    // The x coordinate of the shared point, then the context.
    let x = shared.get(1..1 + 32).unwrap_or_default();
    Zeroizing::new(HashAlg::Sha256.digest(&[x, LABEL, recipient, ephemeral].concat()))
}

/// The device's side: a key pair for one production session.
pub struct Recipient(EcKey);

impl Recipient {
    pub fn new() -> Result<Self, EnvelopeError> {
        EcKey::generate(Curve::Secp256r1)
            .map(Self)
            .map_err(|_| EnvelopeError::Random)
    }

    /// The public key as the URL parameter carries it (hex).
    pub fn public_hex(&self) -> String {
        hex::encode(self.0.public_point())
    }

    /// Opens a sealed PIN for `device_id`.
    pub fn open(
        &self,
        sealed_hex: &str,
        device_id: &str,
    ) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        let raw = unhex(sealed_hex).ok_or(EnvelopeError::Open)?;
        if raw.len() < POINT + NONCE + 16 {
            return Err(EnvelopeError::Open);
        }
        let (ephemeral, rest) = raw.split_at(POINT);
        let (nonce, ct) = rest.split_at(NONCE);
        let shared = self.0.ecdh(ephemeral).map_err(|_| EnvelopeError::Open)?;
        let k = key(&shared, self.0.public_point(), ephemeral);
        let cipher = Aes256Gcm::new_from_slice(&k).map_err(|_| EnvelopeError::Open)?;
        let nonce = Nonce::try_from(nonce).map_err(|_| EnvelopeError::Open)?;
        cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ct,
                    aad: device_id.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| EnvelopeError::Open)
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    hex::decode(s).ok()
}

/// The server's side: `pin` sealed for the device key `recipient_hex`, bound to `device_id`.
pub fn seal(recipient_hex: &str, pin: &[u8], device_id: &str) -> Result<String, EnvelopeError> {
    let recipient = unhex(recipient_hex).ok_or(EnvelopeError::BadKey)?;
    let ephemeral = EcKey::generate(Curve::Secp256r1).map_err(|_| EnvelopeError::Random)?;
    let shared = ephemeral
        .ecdh(&recipient)
        .map_err(|_| EnvelopeError::BadKey)?;
    let k = key(&shared, &recipient, ephemeral.public_point());
    let cipher = Aes256Gcm::new_from_slice(&k).map_err(|_| EnvelopeError::Random)?;
    let nonce_bytes = keyward_crypto::random(NONCE).map_err(|_| EnvelopeError::Random)?;
    let nonce = Nonce::try_from(&nonce_bytes[..]).map_err(|_| EnvelopeError::Random)?;
    let ct = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: pin,
                aad: device_id.as_bytes(),
            },
        )
        .map_err(|_| EnvelopeError::Random)?;
    Ok(hex::encode(
        [ephemeral.public_point(), &nonce_bytes[..], &ct].concat(),
    ))
}

/// Checks a device's PIN key before production starts.
pub fn check_key(recipient_hex: &str) -> Result<(), EnvelopeError> {
    let point = unhex(recipient_hex).ok_or(EnvelopeError::BadKey)?;
    EcKey::generate(Curve::Secp256r1)
        .map_err(|_| EnvelopeError::Random)?
        .ecdh(&point)
        .map(|_| ())
        .map_err(|_| EnvelopeError::BadKey)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_the_recipient_opens_it_for_that_device() {
        let r = Recipient::new().unwrap();
        let sealed = seal(&r.public_hex(), b"57392018", "ZZKWD00001").unwrap();
        assert!(!sealed.contains(&hex::encode(b"57392018")));
        assert_eq!(&r.open(&sealed, "ZZKWD00001").unwrap()[..], b"57392018");
        assert_eq!(r.open(&sealed, "ZZKWD00002"), Err(EnvelopeError::Open));
        let other = Recipient::new().unwrap();
        assert_eq!(other.open(&sealed, "ZZKWD00001"), Err(EnvelopeError::Open));
        let mut t = sealed.clone().into_bytes();
        let n = t.len();
        t[n - 1] = if t[n - 1] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            r.open(&String::from_utf8(t).unwrap(), "ZZKWD00001"),
            Err(EnvelopeError::Open)
        );
        assert_eq!(check_key(&r.public_hex()), Ok(()));
        for bad in ["", "04", "zz", &"04".repeat(65)] {
            assert_eq!(check_key(bad), Err(EnvelopeError::BadKey), "{bad}");
            assert!(seal(bad, b"1", "x").is_err());
        }
    }

    proptest! {
        #[test]
        fn arbitrary_envelopes_never_panic(s in "[0-9a-f]{0,300}", t in ".{0,100}") {
            let r = Recipient::new().unwrap();
            prop_assert!(r.open(&s, "x").is_err());
            let _ = r.open(&t, "x");
            let _ = check_key(&s);
        }
    }
}
