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

/// The share in a share file.
pub fn decrypt(file: &[u8], password: &[u8]) -> Result<Zeroizing<[u8; 32]>, ShareError> {
    if file.len() != 64 || &file[..8] != MAGIC {
        return Err(ShareError::Format);
    }
    let (key, iv) = key_and_iv(password, &file[8..16]);
    let plain = Zeroizing::new(
        keyward_crypto::aes_cbc_decrypt_iv(&key, &iv, &file[16..])
            .map_err(|_| ShareError::Format)?,
    );
    if plain[32..] != [0x10; 16] {
        return Err(ShareError::Password);
    }
    let mut share = Zeroizing::new([0u8; 32]);
    share.copy_from_slice(&plain[..32]);
    Ok(share)
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
}
