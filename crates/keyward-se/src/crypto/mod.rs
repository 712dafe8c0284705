//! Key material and the operations the applet performs with it. Pure RustCrypto (the only Rust
//! implementation with the brainpool curves); no curve arithmetic is written here.

mod ec;
mod hash;
mod rsa_key;
mod sym;

pub use ec::{Curve, EcKey, der_signature_to_plain, verify_prehash as ecdsa_verify_prehash};
pub use hash::HashAlg;
pub use rsa_key::{RSA_SIZES, RsaKey};

/// RSA modulus sizes the element generates.
pub fn rsa_sizes() -> &'static [usize] {
    &RSA_SIZES
}
pub use sym::{aes_cbc_decrypt, aes_cbc_encrypt, aes_cmac};

use zeroize::Zeroizing;

use crate::state::KeyMaterial;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    #[error("invalid key material")]
    InvalidKey,
    #[error("invalid input for this operation")]
    InvalidInput,
    #[error("key size not supported")]
    UnsupportedSize,
    #[error("random number generator failed")]
    Rng,
    #[error("operation failed")]
    Failed,
}

/// Fills a buffer from the operating system's RNG.
pub fn random(len: usize) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let mut buf = Zeroizing::new(vec![0u8; len]);
    getrandom::fill(&mut buf).map_err(|_| CryptoError::Rng)?;
    Ok(buf)
}

/// A private or secret key ready for use.
pub enum PrivateKey {
    Rsa(Box<RsaKey>),
    Ec(EcKey),
    Aes(Zeroizing<Vec<u8>>),
}

impl PrivateKey {
    pub fn from_material(m: &KeyMaterial) -> Result<Self, CryptoError> {
        Ok(match m {
            KeyMaterial::Rsa { n, e, d, p, q } => {
                Self::Rsa(Box::new(RsaKey::from_parts(&n.0, &e.0, &d.0, &p.0, &q.0)?))
            }
            KeyMaterial::Ec { curve, private, .. } => {
                Self::Ec(EcKey::from_private(*curve, &private.0)?)
            }
            KeyMaterial::Aes { key } => {
                if !matches!(key.0.len(), 16 | 24 | 32) {
                    return Err(CryptoError::InvalidKey);
                }
                Self::Aes(Zeroizing::new(key.0.clone()))
            }
        })
    }
}

impl PrivateKey {
    /// Signs `data` with a TR-03110 signature algorithm (`id-TA-*` OID), as CV certificates and
    /// requests are signed: ECDSA as plain `r‖s`, RSA as PKCS#1 v1.5 or PSS.
    pub fn sign_ta(&self, algorithm: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        use keyward_cvc::oid;
        let (hash, pss) = match algorithm {
            a if a == oid::TA_ECDSA_SHA1 || a == oid::TA_RSA_V15_SHA1 => (HashAlg::Sha1, false),
            a if a == oid::TA_ECDSA_SHA224 => (HashAlg::Sha224, false),
            a if a == oid::TA_ECDSA_SHA256 || a == oid::TA_RSA_V15_SHA256 => {
                (HashAlg::Sha256, false)
            }
            a if a == oid::TA_ECDSA_SHA384 => (HashAlg::Sha384, false),
            a if a == oid::TA_ECDSA_SHA512 || a == oid::TA_RSA_V15_SHA512 => {
                (HashAlg::Sha512, false)
            }
            a if a == oid::TA_RSA_PSS_SHA1 => (HashAlg::Sha1, true),
            a if a == oid::TA_RSA_PSS_SHA256 => (HashAlg::Sha256, true),
            a if a == oid::TA_RSA_PSS_SHA512 => (HashAlg::Sha512, true),
            _ => return Err(CryptoError::InvalidInput),
        };
        let digest = hash.digest(data);
        match self {
            Self::Ec(k) if oid::is_ecdsa(algorithm) => k.sign_prehash_plain(&digest),
            Self::Rsa(k) if oid::is_rsa(algorithm) && pss => k.sign_pss(hash, &digest),
            Self::Rsa(k) if oid::is_rsa(algorithm) => k.sign_pkcs1(hash, &digest),
            _ => Err(CryptoError::InvalidInput),
        }
    }
}
