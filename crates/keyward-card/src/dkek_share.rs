//! DKEK share files as OpenSC's `sc-hsm-tool --create-dkek-share` writes them (`.pbe`): 64 bytes,
//! `Salted__ ‖ salt(8) ‖ AES-256-CBC(key, iv, share(32) ‖ 16 × 10)`, key and IV from the password
//! and salt by OpenSSL's `EVP_BytesToKey` with MD5 and 10,000,000 iterations.

use keyward_crypto::md5_iterated;
use zeroize::Zeroizing;

const MAGIC: &[u8; 8] = b"Salted__";
const ITERATIONS: u32 = 10_000_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShareError {
    #[error("not a DKEK share file (64 bytes starting with \"Salted__\")")]
    Format,
    #[error("the share does not decrypt: wrong password, or not a share file")]
    Password,
    #[error("no random numbers")]
    Random,
}

/// OpenSSL's `EVP_BytesToKey(aes-256-cbc, md5, salt, password, count)`: key (32) and IV (16).
fn key_and_iv(password: &[u8], salt: &[u8]) -> (Zeroizing<Vec<u8>>, [u8; 16]) {
    let d1 = md5_iterated(&[password, salt].concat(), ITERATIONS);
    let d2 = md5_iterated(&[&d1[..], password, salt].concat(), ITERATIONS);
    let d3 = md5_iterated(&[&d2[..], password, salt].concat(), ITERATIONS);
    (Zeroizing::new([&d1[..], &d2[..]].concat()), *d3)
}

/// A share file for `share` under `password`, with a fresh salt.
pub fn encrypt(share: &[u8; 32], password: &[u8]) -> Result<Vec<u8>, ShareError> {
    let salt = keyward_crypto::random(8).map_err(|_| ShareError::Random)?;
    encrypt_with_salt(share, password, &salt)
}

fn encrypt_with_salt(
    share: &[u8; 32],
    password: &[u8],
    salt: &[u8],
) -> Result<Vec<u8>, ShareError> {
    let (key, iv) = key_and_iv(password, salt);
    let mut plain = Zeroizing::new(share.to_vec());
    plain.extend_from_slice(&[0x10; 16]);
    let ct =
        keyward_crypto::aes_cbc_encrypt_iv(&key, &iv, &plain).map_err(|_| ShareError::Format)?;
    Ok([&MAGIC[..], salt, &ct].concat())
}

/// A share file's parts: the salt and the encrypted share with its padding block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareFile<'a> {
    pub salt: &'a [u8; 8],
    pub ciphertext: &'a [u8; 48],
}

impl<'a> ShareFile<'a> {
    pub fn parse(file: &'a [u8]) -> Result<Self, ShareError> {
        if file.len() != 64 || !file.starts_with(MAGIC) {
            return Err(ShareError::Format);
        }
        let salt = file[8..16].try_into().map_err(|_| ShareError::Format)?;
        let ciphertext = file[16..].try_into().map_err(|_| ShareError::Format)?;
        Ok(Self { salt, ciphertext })
    }

    /// The share under a key and IV already derived from the password (the expensive step).
    pub fn open_with(&self, key: &[u8], iv: &[u8; 16]) -> Result<Zeroizing<[u8; 32]>, ShareError> {
        let plain = Zeroizing::new(
            keyward_crypto::aes_cbc_decrypt_iv(key, iv, self.ciphertext)
                .map_err(|_| ShareError::Format)?,
        );
        match plain.get(32..) {
            Some(pad) if pad == [0x10; 16] => {}
            _ => return Err(ShareError::Password),
        }
        let mut share = Zeroizing::new([0u8; 32]);
        share.copy_from_slice(&plain[..32]);
        Ok(share)
    }

    pub fn open(&self, password: &[u8]) -> Result<Zeroizing<[u8; 32]>, ShareError> {
        let (key, iv) = key_and_iv(password, self.salt);
        self.open_with(&key, &iv)
    }
}

/// The share in a share file.
pub fn decrypt(file: &[u8], password: &[u8]) -> Result<Zeroizing<[u8; 32]>, ShareError> {
    ShareFile::parse(file)?.open(password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// A share file published with its password and key check value (a test vector of an
    /// independent Nitrokey HSM tool set); checked against the definition here.
    #[test]
    fn a_published_share_file_decrypts_and_reencrypts_byte_for_byte() {
        let file = base64::engine::general_purpose::STANDARD
            .decode("U2FsdGVkX19svhSIBSqUH/GixQX4+9KdFKpErNW7MLzNCX9YBE7+eseQB6Vh7JgaFmhlWzIcqCgB39n9xXe6BA==")
            .unwrap();
        let share = decrypt(&file, b"passwordpassword").unwrap();
        assert_eq!(
            hex::encode(*share),
            "c955af6fb058ca963d270049de57b75b175d528b8993d7651dcc4650097caffb"
        );
        assert_eq!(
            hex::encode(&keyward_crypto::HashAlg::Sha256.digest(&*share)[..8]),
            "2afa121e8764a1e3"
        );
        assert_eq!(
            encrypt_with_salt(&share, b"passwordpassword", &file[8..16]).unwrap(),
            file
        );
        assert_eq!(decrypt(&file, b"wrong").unwrap_err(), ShareError::Password);
        assert_eq!(decrypt(&file[..63], b"x").unwrap_err(), ShareError::Format);
    }

    proptest::proptest! {
        /// Any bytes: a share file or a format error; any key: the share or a password error.
        #[test]
        fn parsing_and_opening_never_panic(
            file in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
            key in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            iv in proptest::prelude::any::<[u8; 16]>(),
        ) {
            let mut salted = MAGIC.to_vec();
            salted.extend_from_slice(&file);
            for f in [&file[..], &salted[..]] {
                if let Ok(parsed) = ShareFile::parse(f) {
                    proptest::prop_assert_eq!(f.len(), 64);
                    let _ = parsed.open_with(&key, &iv);
                }
            }
        }

        /// A share encrypted under a key and IV opens under them, and under no other key.
        #[test]
        fn a_share_opens_under_its_key_only(
            share in proptest::prelude::any::<[u8; 32]>(),
            key in proptest::prelude::any::<[u8; 32]>(),
            iv in proptest::prelude::any::<[u8; 16]>(),
            salt in proptest::prelude::any::<[u8; 8]>(),
            flip in 0usize..256,
        ) {
            let mut plain = share.to_vec();
            plain.extend_from_slice(&[0x10; 16]);
            let ct = keyward_crypto::aes_cbc_encrypt_iv(&key, &iv, &plain).unwrap();
            let file = [&MAGIC[..], &salt, &ct].concat();
            let parsed = ShareFile::parse(&file).unwrap();
            proptest::prop_assert_eq!(*parsed.open_with(&key, &iv).unwrap(), share);
            let mut other = key;
            other[flip / 8] ^= 1 << (flip % 8);
            proptest::prop_assert_eq!(parsed.open_with(&other, &iv).unwrap_err(), ShareError::Password);
        }
    }
}
