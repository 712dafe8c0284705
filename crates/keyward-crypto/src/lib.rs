//! Keyward's cryptographic back end: EC keys on the SmartCard-HSM curves, RSA, AES, hashes.
//! Pure RustCrypto (the only Rust implementation with the brainpool curves); no curve arithmetic
//! is written here.
#![forbid(unsafe_code)]

mod ec;
mod fast;
mod hash;
mod rsa_key;
pub mod rsa_pad;
mod sym;

pub use ec::{
    Curve, EcDomain, EcKey, der_signature_to_plain, verify_prehash as ecdsa_verify_prehash,
};
pub use hash::{HashAlg, pbkdf2_sha256};
pub use rsa_key::{RSA_SIZES, RsaKey, RsaPublicKey, RsaScheme};

/// RSA modulus sizes the element generates.
pub fn rsa_sizes() -> &'static [usize] {
    &RSA_SIZES
}
pub use sym::{
    aes_cbc_decrypt, aes_cbc_decrypt_iv, aes_cbc_encrypt, aes_cbc_encrypt_iv, aes_cmac,
    aes_encrypt_block,
};

use zeroize::Zeroizing;

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

/// `MD5^count(data)`: MD5, then `count - 1` more MD5s of the result — OpenSSL's iterated
/// `EVP_BytesToKey` step, which DKEK share files use (MD5 for compatibility, not strength).
pub fn md5_iterated(data: &[u8], count: u32) -> Zeroizing<[u8; 16]> {
    use md5::Digest as _;
    let mut h: [u8; 16] = md5::Md5::digest(data).into();
    for _ in 1..count {
        h = md5::Md5::digest(h).into();
    }
    Zeroizing::new(h)
}

/// HMAC-SHA-256 (RFC 2104) of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit as _, Mac as _};
    // HMAC takes keys of any length: new_from_slice cannot fail for it.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key)
        .unwrap_or_else(|_| hmac::Hmac::<sha2::Sha256>::new(&Default::default()));
    mac.update(data);
    mac.finalize().into_bytes().into()
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
