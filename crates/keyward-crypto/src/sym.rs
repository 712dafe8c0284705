use aes::{Aes128, Aes192, Aes256};
use cbc::cipher::{Block, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use cmac::{Cmac, Mac};

use super::CryptoError;

const ZERO_IV: [u8; 16] = [0; 16];

fn blocks(data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if data.is_empty() || !data.len().is_multiple_of(16) {
        return Err(CryptoError::InvalidInput);
    }
    Ok(data.to_vec())
}

macro_rules! by_key_size {
    ($key:expr, $aes:ident => $body:expr) => {
        match $key.len() {
            16 => {
                type $aes = Aes128;
                $body
            }
            24 => {
                type $aes = Aes192;
                $body
            }
            32 => {
                type $aes = Aes256;
                $body
            }
            _ => Err(CryptoError::InvalidKey),
        }
    };
}

/// AES-CBC encryption with a zero IV and no padding (the SmartCard-HSM CIPHER `10`).
pub fn aes_cbc_encrypt(key: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    aes_cbc_encrypt_iv(key, &ZERO_IV, data)
}

/// AES-CBC decryption with a zero IV and no padding (CIPHER `11`).
pub fn aes_cbc_decrypt(key: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    aes_cbc_decrypt_iv(key, &ZERO_IV, data)
}

/// AES-CBC encryption of whole blocks with an explicit IV.
pub fn aes_cbc_encrypt_iv(key: &[u8], iv: &[u8; 16], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut out = blocks(data)?;
    by_key_size!(key, A => {
        let mut enc = cbc::Encryptor::<A>::new_from_slices(key, iv).map_err(|_| CryptoError::InvalidKey)?;
        let (chunks, _) = Block::<A>::slice_as_chunks_mut(&mut out);
        enc.encrypt_blocks(chunks);
        Ok(out)
    })
}

/// AES-CBC decryption of whole blocks with an explicit IV.
pub fn aes_cbc_decrypt_iv(key: &[u8], iv: &[u8; 16], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut out = blocks(data)?;
    by_key_size!(key, A => {
        let mut dec = cbc::Decryptor::<A>::new_from_slices(key, iv).map_err(|_| CryptoError::InvalidKey)?;
        let (chunks, _) = Block::<A>::slice_as_chunks_mut(&mut out);
        dec.decrypt_blocks(chunks);
        Ok(out)
    })
}

/// One AES block encryption (ECB), e.g. secure messaging's IV = E(K_enc, SSC).
pub fn aes_encrypt_block(key: &[u8], block: &[u8; 16]) -> Result<[u8; 16], CryptoError> {
    // CBC over a single block with a zero IV is the raw block cipher.
    let out = aes_cbc_encrypt_iv(key, &ZERO_IV, block)?;
    out.try_into().map_err(|_| CryptoError::Failed)
}

/// AES-CMAC (CIPHER `18`).
pub fn aes_cmac(key: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    by_key_size!(key, A => {
        let mut m = <Cmac<A> as cmac::digest::KeyInit>::new_from_slice(key).map_err(|_| CryptoError::InvalidKey)?;
        m.update(data);
        Ok(m.finalize().into_bytes().to_vec())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmac_rfc4493_and_cbc_round_trip() {
        let key = hex::decode("2b7e151628aed2a6abf7158809cf4f3c").unwrap();
        let msg = hex::decode("6bc1bee22e409f96e93d7e117393172a").unwrap();
        assert_eq!(
            hex::encode(aes_cmac(&key, &msg).unwrap()),
            "070a16b46b4d4144f79bdd9dd04a287c"
        );
        assert_eq!(
            hex::encode(aes_cmac(&key, &[]).unwrap()),
            "bb1d6929e95937287fa37d129b756746"
        );
        // SP 800-38A F.2.1 with a zero IV changes only the first block's input; check the round trip.
        for k in [16, 24, 32] {
            let key = vec![7u8; k];
            let data = vec![0x5A; 48];
            let ct = aes_cbc_encrypt(&key, &data).unwrap();
            assert_ne!(ct, data);
            assert_eq!(aes_cbc_decrypt(&key, &ct).unwrap(), data);
        }
        assert!(aes_cbc_encrypt(&key, &[0; 15]).is_err());
        // FIPS-197 appendix C.1.
        let k = hex::decode("000102030405060708090a0b0c0d0e0f").unwrap();
        let pt: [u8; 16] = hex::decode("00112233445566778899aabbccddeeff")
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            hex::encode(aes_encrypt_block(&k, &pt).unwrap()),
            "69c4e0d86a7b0430d8cdb78070b4c55a"
        );
        assert!(aes_cmac(&[0; 17], &[]).is_err());
    }
}
