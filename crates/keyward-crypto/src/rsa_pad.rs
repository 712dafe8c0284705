//! RSA paddings done on the host around the element's raw RSA operation (RFC 8017): PKCS#1 v1.5
//! (signature type 1, encryption type 2) and OAEP with MGF1. Decoding checks run without
//! data-dependent early exits so a padding oracle learns no more than "valid or not".

use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::{CryptoError, HashAlg};

/// EMSA-PKCS1-v1_5 block type 1 around `data` (usually a DigestInfo) for a `k`-byte modulus.
pub fn pkcs1_type1_pad(data: &[u8], k: usize) -> Result<Vec<u8>, CryptoError> {
    if data.len() + 11 > k {
        return Err(CryptoError::InvalidInput);
    }
    let mut em = vec![0xFF; k];
    em[0] = 0;
    em[1] = 1;
    em[k - data.len() - 1] = 0;
    em[k - data.len()..].copy_from_slice(data);
    Ok(em)
}

/// The data under a PKCS#1 v1.5 type 1 block (signature recovery), if well formed.
pub fn pkcs1_type1_unpad(em: &[u8]) -> Option<&[u8]> {
    let rest = em.strip_prefix(&[0, 1])?;
    let pad = rest.iter().take_while(|b| **b == 0xFF).count();
    (pad >= 8 && rest.get(pad) == Some(&0)).then(|| &rest[pad + 1..])
}

/// RSAES-PKCS1-v1_5 encryption block (type 2) with random non-zero padding.
pub fn pkcs1_type2_pad(msg: &[u8], k: usize) -> Result<Vec<u8>, CryptoError> {
    if msg.len() + 11 > k {
        return Err(CryptoError::InvalidInput);
    }
    let mut em = vec![0u8; k];
    em[1] = 2;
    let ps_end = k - msg.len() - 1;
    let mut i = 2;
    while i < ps_end {
        let fill = crate::random(ps_end - i)?;
        for b in fill.iter().filter(|b| **b != 0) {
            if i < ps_end {
                em[i] = *b;
                i += 1;
            }
        }
    }
    em[k - msg.len()..].copy_from_slice(msg);
    Ok(em)
}

/// Decodes a PKCS#1 v1.5 type 2 block; the position scan is constant-time in the block content.
pub fn pkcs1_type2_unpad(em: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if em.len() < 11 {
        return Err(CryptoError::InvalidInput);
    }
    let mut good = em[0].ct_eq(&0) & em[1].ct_eq(&2);
    let mut found = subtle::Choice::from(0);
    let mut index = 0u32;
    for (i, b) in em.iter().enumerate().skip(2) {
        let zero = b.ct_eq(&0);
        let first = zero & !found;
        index.conditional_assign(&(i as u32), first);
        found |= zero;
    }
    good &= found;
    // At least 8 bytes of padding string.
    good &= !subtle::Choice::from(u8::from(index < 10));
    if bool::from(good) {
        Ok(Zeroizing::new(em[index as usize + 1..].to_vec()))
    } else {
        Err(CryptoError::InvalidInput)
    }
}

fn mgf1_xor(hash: HashAlg, seed: &[u8], out: &mut [u8]) {
    let h_len = hash.output_len();
    for (counter, chunk) in out.chunks_mut(h_len).enumerate() {
        let mut input = Zeroizing::new(seed.to_vec());
        input.extend_from_slice(&(counter as u32).to_be_bytes());
        let mask = hash.digest(&input);
        for (o, m) in chunk.iter_mut().zip(mask) {
            *o ^= m;
        }
    }
}

/// EME-OAEP encoding with MGF1 over the same hash.
pub fn oaep_pad(hash: HashAlg, label: &[u8], msg: &[u8], k: usize) -> Result<Vec<u8>, CryptoError> {
    let h_len = hash.output_len();
    if k < 2 * h_len + 2 || msg.len() > k - 2 * h_len - 2 {
        return Err(CryptoError::InvalidInput);
    }
    let mut em = vec![0u8; k];
    let (seed, db) = em[1..].split_at_mut(h_len);
    let l_hash = hash.digest(label);
    db[..h_len].copy_from_slice(&l_hash);
    let db_len = db.len();
    db[db_len - msg.len() - 1] = 1;
    db[db_len - msg.len()..].copy_from_slice(msg);
    seed.copy_from_slice(&crate::random(h_len)?);
    mgf1_xor(hash, seed, db);
    mgf1_xor(hash, db, seed);
    Ok(em)
}

/// EME-OAEP decoding; every check runs before the single verdict.
pub fn oaep_unpad(
    hash: HashAlg,
    label: &[u8],
    em: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let h_len = hash.output_len();
    let k = em.len();
    if k < 2 * h_len + 2 {
        return Err(CryptoError::InvalidInput);
    }
    let mut buf = Zeroizing::new(em.to_vec());
    let (y, rest) = buf.split_at_mut(1);
    let (seed, db) = rest.split_at_mut(h_len);
    mgf1_xor(hash, db, seed);
    mgf1_xor(hash, seed, db);
    let l_hash = hash.digest(label);
    let mut good = y[0].ct_eq(&0) & db[..h_len].ct_eq(&l_hash);
    let mut found = subtle::Choice::from(0);
    let mut index = 0u32;
    let mut invalid = subtle::Choice::from(0);
    for (i, b) in db.iter().enumerate().skip(h_len) {
        let one = b.ct_eq(&1);
        let zero = b.ct_eq(&0);
        index.conditional_assign(&(i as u32), one & !found);
        invalid |= !found & !zero & !one;
        found |= one;
    }
    good &= found & !invalid;
    if bool::from(good) {
        Ok(Zeroizing::new(db[index as usize + 1..].to_vec()))
    } else {
        Err(CryptoError::InvalidInput)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn type1_round_trip() {
        let em = pkcs1_type1_pad(b"digest-info", 128).unwrap();
        assert_eq!(em.len(), 128);
        assert_eq!(pkcs1_type1_unpad(&em), Some(&b"digest-info"[..]));
        assert!(pkcs1_type1_pad(&[0; 118], 128).is_err());
    }

    #[test]
    fn type2_round_trip_and_rejects() {
        let em = pkcs1_type2_pad(b"secret", 128).unwrap();
        assert!(em[2..128 - 7].iter().all(|b| *b != 0));
        assert_eq!(&pkcs1_type2_unpad(&em).unwrap()[..], b"secret");
        let mut bad = em.clone();
        bad[1] = 1;
        assert!(pkcs1_type2_unpad(&bad).is_err());
        let mut short_ps = em;
        short_ps[5] = 0;
        assert!(pkcs1_type2_unpad(&short_ps).is_err());
    }

    #[test]
    fn oaep_round_trip_and_rejects() {
        for h in HashAlg::ALL {
            let em = oaep_pad(h, b"", b"message", 256).unwrap();
            assert_eq!(&oaep_unpad(h, b"", &em).unwrap()[..], b"message");
            assert!(oaep_unpad(h, b"other label", &em).is_err());
            let mut bad = em.clone();
            bad[200] ^= 1;
            assert!(oaep_unpad(h, b"", &bad).is_err());
        }
    }
}
