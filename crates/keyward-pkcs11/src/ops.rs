//! The cryptographic operations: private-key work on the element (SIGN 80 68, DECIPHER 80 62,
//! CIPHER 80 78), public-key work and paddings on the host.

use cryptoki_sys::*;
use keyward_crypto::{HashAlg, RsaPublicKey, RsaScheme, rsa_pad};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Result, Rv};
use crate::mechanism::{Mechanism, Param, digest_hash, mgf_of, sign_hash};
use crate::object::{CardKeyKind, Material, Object, PublicKey};
use crate::token::Token;

const AES_BLOCK: usize = 16;

/// Which kind of key a mechanism needs, checked at *Init.
pub fn check_key(mech: &Mechanism, key: &Object, usage: CK_ATTRIBUTE_TYPE) -> Result<()> {
    if !key.bool(usage) {
        return Err(Rv(CKR_KEY_FUNCTION_NOT_PERMITTED));
    }
    let kt = key
        .ulong(CKA_KEY_TYPE)
        .ok_or(Rv(CKR_KEY_TYPE_INCONSISTENT))?;
    let ok = match mech.ty {
        CKM_ECDSA | CKM_ECDSA_SHA1 | CKM_ECDSA_SHA224 | CKM_ECDSA_SHA256 | CKM_ECDSA_SHA384
        | CKM_ECDSA_SHA512 | CKM_ECDH1_DERIVE => kt == CKK_EC,
        CKM_AES_CBC | CKM_AES_CBC_PAD | CKM_AES_CMAC => kt == CKK_AES,
        _ => kt == CKK_RSA,
    };
    if !ok {
        return Err(Rv(CKR_KEY_TYPE_INCONSISTENT));
    }
    match (&mech.param, mech.ty) {
        (Param::Iv(iv), CKM_AES_CBC | CKM_AES_CBC_PAD) if iv.len() == AES_BLOCK => Ok(()),
        (_, CKM_AES_CBC | CKM_AES_CBC_PAD) => Err(Rv(CKR_MECHANISM_PARAM_INVALID)),
        (Param::Pss { .. }, _) => pss_hash(mech).map(drop),
        (Param::Oaep { .. }, _) => oaep_hash(mech).map(drop),
        (Param::None | Param::Other(_), CKM_RSA_PKCS_OAEP) => Err(Rv(CKR_MECHANISM_PARAM_INVALID)),
        _ if is_pss(mech.ty) => pss_hash(mech).map(drop),
        _ => Ok(()),
    }
}

fn is_pss(ty: CK_MECHANISM_TYPE) -> bool {
    matches!(
        ty,
        CKM_RSA_PKCS_PSS
            | CKM_SHA1_RSA_PKCS_PSS
            | CKM_SHA224_RSA_PKCS_PSS
            | CKM_SHA256_RSA_PKCS_PSS
            | CKM_SHA384_RSA_PKCS_PSS
            | CKM_SHA512_RSA_PKCS_PSS
    )
}

/// The PSS hash; the element signs with MGF1 over the same hash and a salt of hash length.
fn pss_hash(mech: &Mechanism) -> Result<HashAlg> {
    let Param::Pss {
        hash,
        mgf,
        salt_len,
    } = &mech.param
    else {
        return Err(Rv(CKR_MECHANISM_PARAM_INVALID));
    };
    let h = digest_hash(*hash).ok_or(Rv(CKR_MECHANISM_PARAM_INVALID))?;
    let bound = sign_hash(mech.ty);
    if bound.is_some_and(|b| b != h) || *mgf != mgf_of(h) || *salt_len as usize != h.output_len() {
        return Err(Rv(CKR_MECHANISM_PARAM_INVALID));
    }
    Ok(h)
}

fn oaep_hash(mech: &Mechanism) -> Result<(HashAlg, &[u8])> {
    let Param::Oaep { hash, mgf, label } = &mech.param else {
        return Err(Rv(CKR_MECHANISM_PARAM_INVALID));
    };
    let h = digest_hash(*hash).ok_or(Rv(CKR_MECHANISM_PARAM_INVALID))?;
    if *mgf != mgf_of(h) {
        return Err(Rv(CKR_MECHANISM_PARAM_INVALID));
    }
    Ok((h, label))
}

fn rsa_len(key: &Object) -> usize {
    key.attrs
        .get(&CKA_MODULUS)
        .map_or(0, |n| n.iter().skip_while(|b| **b == 0).count())
}

fn ec_field_len(key: &Object) -> usize {
    key.attrs
        .get(&CKA_EC_PARAMS)
        .and_then(|p| keyward_crypto::Curve::from_oid_der(p))
        .map_or(66, |c| c.field_len())
}

/// Upper bound of a signature's length (the answer to a length query).
pub fn signature_len(mech: &Mechanism, key: &Object) -> usize {
    match mech.ty {
        CKM_AES_CMAC => AES_BLOCK,
        CKM_ECDSA | CKM_ECDSA_SHA1 | CKM_ECDSA_SHA224 | CKM_ECDSA_SHA256 | CKM_ECDSA_SHA384
        | CKM_ECDSA_SHA512 => 2 * ec_field_len(key),
        _ => rsa_len(key),
    }
}

/// Upper bound of an encryption/decryption result's length.
pub fn crypt_len(mech: &Mechanism, key: &Object, input: usize, encrypt: bool) -> usize {
    match mech.ty {
        CKM_AES_CBC => input,
        CKM_AES_CBC_PAD if encrypt => (input / AES_BLOCK + 1) * AES_BLOCK,
        CKM_AES_CBC_PAD => input,
        _ => rsa_len(key),
    }
}

fn card_key(key: &Object) -> Result<(u8, CardKeyKind)> {
    match key.material {
        Material::Card { kid, kind, .. } => Ok((kid, kind)),
        _ => Err(Rv(CKR_KEY_TYPE_INCONSISTENT)),
    }
}

/// Whether the element lets the key use algorithm `alg`.
fn allows(key: &Object, alg: u8) -> bool {
    match &key.material {
        Material::Card { algorithms, .. } => algorithms.as_ref().is_none_or(|l| l.contains(&alg)),
        _ => false,
    }
}

/// What the element signs or the host verifies: the data's hash for the hashing mechanisms,
/// else the data as given.
fn hashed_input<'a>(mech: &Mechanism, data: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
    match sign_hash(mech.ty) {
        Some(h) => h.digest(data).into(),
        None => data.into(),
    }
}

/// Signs `data` (all of it: multi-part data is collected first).
pub fn sign(token: &mut Token, mech: &Mechanism, key: &Object, data: &[u8]) -> Result<Vec<u8>> {
    let (kid, _) = card_key(key)?;
    let input = &*hashed_input(mech, data);
    match mech.ty {
        CKM_AES_CMAC => token.run(|h| h.cipher(kid, 0x18, data)),
        CKM_ECDSA | CKM_ECDSA_SHA1 | CKM_ECDSA_SHA224 | CKM_ECDSA_SHA256 | CKM_ECDSA_SHA384
        | CKM_ECDSA_SHA512 => {
            if input.is_empty() {
                return Err(Rv(CKR_DATA_LEN_RANGE));
            }
            let der = token.run(|h| h.sign(kid, 0x70, input))?;
            keyward_crypto::der_signature_to_plain(&der, ec_field_len(key))
                .map_err(|_| Rv(CKR_DEVICE_ERROR))
        }
        CKM_RSA_PKCS | CKM_RSA_X_509 | CKM_SHA1_RSA_PKCS | CKM_SHA224_RSA_PKCS
        | CKM_SHA256_RSA_PKCS | CKM_SHA384_RSA_PKCS | CKM_SHA512_RSA_PKCS => {
            let k = rsa_len(key);
            let digest_info = match sign_hash(mech.ty) {
                Some(h) => [h.digest_info_prefix(), input].concat(),
                None => input.to_vec(),
            };
            // A DigestInfo the element knows is padded there (algorithm 30); anything else is
            // padded here for the raw operation (algorithm 20), as OpenSC does.
            if mech.ty != CKM_RSA_X_509
                && HashAlg::split_digest_info(&digest_info).is_some()
                && allows(key, 0x30)
            {
                return token.run(|h| h.sign(kid, 0x30, &digest_info));
            }
            let block = match mech.ty {
                CKM_RSA_X_509 => left_pad(input, k)?,
                _ => {
                    rsa_pad::pkcs1_type1_pad(&digest_info, k).map_err(|_| Rv(CKR_DATA_LEN_RANGE))?
                }
            };
            token.run(|h| h.sign(kid, 0x20, &block))
        }
        _ if is_pss(mech.ty) => {
            let h = pss_hash(mech)?;
            if input.len() != h.output_len() {
                return Err(Rv(CKR_DATA_LEN_RANGE));
            }
            token.run(|hsm| hsm.sign(kid, 0x40, input))
        }
        _ => Err(Rv(CKR_MECHANISM_INVALID)),
    }
}

fn left_pad(data: &[u8], k: usize) -> Result<Vec<u8>> {
    if data.len() > k {
        return Err(Rv(CKR_DATA_LEN_RANGE));
    }
    let mut v = vec![0u8; k - data.len()];
    v.extend_from_slice(data);
    Ok(v)
}

fn public_of(key: &Object) -> Result<&PublicKey> {
    match &key.material {
        Material::Public(p) => Ok(p),
        Material::Card {
            public: Some(p), ..
        } => Ok(p),
        _ => Err(Rv(CKR_KEY_TYPE_INCONSISTENT)),
    }
}

/// Verifies a signature: with a public key on the host, or a CMAC on the element.
pub fn verify(
    token: &mut Token,
    mech: &Mechanism,
    key: &Object,
    data: &[u8],
    signature: &[u8],
) -> Result<()> {
    if mech.ty == CKM_AES_CMAC {
        let mac = sign(token, mech, key, data)?;
        if signature.len() != mac.len() {
            return Err(Rv(CKR_SIGNATURE_LEN_RANGE));
        }
        return if bool::from(mac.ct_eq(signature)) {
            Ok(())
        } else {
            Err(Rv(CKR_SIGNATURE_INVALID))
        };
    }
    let input = &*hashed_input(mech, data);
    let ok = match public_of(key)? {
        PublicKey::Ec { curve, point } => {
            if signature.len() != 2 * curve.field_len() {
                return Err(Rv(CKR_SIGNATURE_LEN_RANGE));
            }
            keyward_crypto::ecdsa_verify_prehash(*curve, point, input, signature)
        }
        PublicKey::Rsa { n, e } => {
            let public = RsaPublicKey::new(n, e).map_err(|_| Rv(CKR_KEY_TYPE_INCONSISTENT))?;
            if signature.len() != public.size() {
                return Err(Rv(CKR_SIGNATURE_LEN_RANGE));
            }
            if is_pss(mech.ty) {
                public.verify(RsaScheme::Pss(pss_hash(mech)?), input, signature)
            } else {
                let Ok(em) = public.raw_public(signature) else {
                    return Err(Rv(CKR_SIGNATURE_INVALID));
                };
                let expected = match (mech.ty, sign_hash(mech.ty)) {
                    (CKM_RSA_X_509, _) => left_pad(input, public.size())?,
                    (_, Some(h)) => rsa_pad::pkcs1_type1_pad(
                        &[h.digest_info_prefix(), input].concat(),
                        public.size(),
                    )
                    .map_err(|_| Rv(CKR_KEY_SIZE_RANGE))?,
                    _ => rsa_pad::pkcs1_type1_pad(input, public.size())
                        .map_err(|_| Rv(CKR_DATA_LEN_RANGE))?,
                };
                bool::from(em.ct_eq(&expected))
            }
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Rv(CKR_SIGNATURE_INVALID))
    }
}

/// Encrypts: RSA with the public key on the host, AES on the element (or in memory for a
/// session secret).
pub fn encrypt(token: &mut Token, mech: &Mechanism, key: &Object, data: &[u8]) -> Result<Vec<u8>> {
    match mech.ty {
        CKM_AES_CBC | CKM_AES_CBC_PAD => {
            let iv = iv_of(mech)?;
            let mut plain = Zeroizing::new(data.to_vec());
            if mech.ty == CKM_AES_CBC_PAD {
                let pad = AES_BLOCK - plain.len() % AES_BLOCK;
                plain.extend(std::iter::repeat_n(pad as u8, pad));
            } else if !plain.len().is_multiple_of(AES_BLOCK) {
                return Err(Rv(CKR_DATA_LEN_RANGE));
            }
            aes_cbc(token, key, &iv, &plain, true)
        }
        _ => {
            let PublicKey::Rsa { n, e } = public_of(key)? else {
                return Err(Rv(CKR_KEY_TYPE_INCONSISTENT));
            };
            let public = RsaPublicKey::new(n, e).map_err(|_| Rv(CKR_KEY_TYPE_INCONSISTENT))?;
            let k = public.size();
            let block = match mech.ty {
                CKM_RSA_X_509 => left_pad(data, k)?,
                CKM_RSA_PKCS => {
                    rsa_pad::pkcs1_type2_pad(data, k).map_err(|_| Rv(CKR_DATA_LEN_RANGE))?
                }
                CKM_RSA_PKCS_OAEP => {
                    let (h, label) = oaep_hash(mech)?;
                    rsa_pad::oaep_pad(h, label, data, k).map_err(|_| Rv(CKR_DATA_LEN_RANGE))?
                }
                _ => return Err(Rv(CKR_MECHANISM_INVALID)),
            };
            public.raw_public(&block).map_err(|_| Rv(CKR_DATA_INVALID))
        }
    }
}

/// Decrypts with the private key on the element; paddings are removed on the host.
pub fn decrypt(
    token: &mut Token,
    mech: &Mechanism,
    key: &Object,
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    match mech.ty {
        CKM_AES_CBC | CKM_AES_CBC_PAD => {
            if data.is_empty() || !data.len().is_multiple_of(AES_BLOCK) {
                return Err(Rv(CKR_ENCRYPTED_DATA_LEN_RANGE));
            }
            let iv = iv_of(mech)?;
            let mut plain = Zeroizing::new(aes_cbc(token, key, &iv, data, false)?);
            if mech.ty == CKM_AES_CBC_PAD {
                let pad = usize::from(*plain.last().ok_or(Rv(CKR_ENCRYPTED_DATA_INVALID))?);
                if pad == 0
                    || pad > AES_BLOCK
                    || !plain[plain.len() - pad..]
                        .iter()
                        .all(|b| usize::from(*b) == pad)
                {
                    return Err(Rv(CKR_ENCRYPTED_DATA_INVALID));
                }
                let keep = plain.len() - pad;
                plain.truncate(keep);
            }
            Ok(plain)
        }
        _ => {
            let (kid, _) = card_key(key)?;
            let k = rsa_len(key);
            if data.len() != k {
                return Err(Rv(CKR_ENCRYPTED_DATA_LEN_RANGE));
            }
            let block = Zeroizing::new(token.run(|h| h.decipher(kid, data))?);
            match mech.ty {
                CKM_RSA_X_509 => Ok(block),
                CKM_RSA_PKCS => {
                    rsa_pad::pkcs1_type2_unpad(&block).map_err(|_| Rv(CKR_ENCRYPTED_DATA_INVALID))
                }
                CKM_RSA_PKCS_OAEP => {
                    let (h, label) = oaep_hash(mech)?;
                    rsa_pad::oaep_unpad(h, label, &block)
                        .map_err(|_| Rv(CKR_ENCRYPTED_DATA_INVALID))
                }
                _ => Err(Rv(CKR_MECHANISM_INVALID)),
            }
        }
    }
}

fn iv_of(mech: &Mechanism) -> Result<[u8; AES_BLOCK]> {
    match &mech.param {
        Param::Iv(iv) => iv
            .as_slice()
            .try_into()
            .map_err(|_| Rv(CKR_MECHANISM_PARAM_INVALID)),
        _ => Err(Rv(CKR_MECHANISM_PARAM_INVALID)),
    }
}

/// AES-CBC with any IV. The element's CIPHER uses a zero IV, so the IV is folded into the first
/// block (encrypt) or applied to the first output block (decrypt): one APDU for the whole input.
fn aes_cbc(
    token: &mut Token,
    key: &Object,
    iv: &[u8; AES_BLOCK],
    data: &[u8],
    encrypt: bool,
) -> Result<Vec<u8>> {
    if let Material::Secret(k) = &key.material {
        let r = if encrypt {
            keyward_crypto::aes_cbc_encrypt_iv(k, iv, data)
        } else {
            keyward_crypto::aes_cbc_decrypt_iv(k, iv, data)
        };
        return r.map_err(|_| Rv(CKR_DATA_INVALID));
    }
    let (kid, _) = card_key(key)?;
    if encrypt {
        let mut input = Zeroizing::new(data.to_vec());
        for (b, v) in input.iter_mut().zip(iv) {
            *b ^= v;
        }
        token.run(|h| h.cipher(kid, 0x10, &input))
    } else {
        let mut out = token.run(|h| h.cipher(kid, 0x11, data))?;
        for (b, v) in out.iter_mut().zip(iv) {
            *b ^= v;
        }
        Ok(out)
    }
}

/// ECDH on the element; returns the shared secret (the X coordinate), put through the KDF.
pub fn ecdh(token: &mut Token, mech: &Mechanism, key: &Object) -> Result<Zeroizing<Vec<u8>>> {
    let Param::Ecdh {
        kdf,
        shared,
        public,
    } = &mech.param
    else {
        return Err(Rv(CKR_MECHANISM_PARAM_INVALID));
    };
    let (kid, _) = card_key(key)?;
    let field = ec_field_len(key);
    let curve = key
        .attrs
        .get(&CKA_EC_PARAMS)
        .and_then(|p| keyward_crypto::Curve::from_oid_der(p))
        .ok_or(Rv(CKR_KEY_TYPE_INCONSISTENT))?;
    let peer = crate::object::ec_point(curve, public).ok_or(Rv(CKR_MECHANISM_PARAM_INVALID))?;
    let point = Zeroizing::new(token.run(|h| h.ecdh(kid, peer))?);
    let z = point
        .get(1..1 + field)
        .ok_or(Rv(CKR_DEVICE_ERROR))?
        .to_vec();
    let z = Zeroizing::new(z);
    let hash = match *kdf {
        CKD_NULL => {
            return if shared.is_empty() {
                Ok(z)
            } else {
                Err(Rv(CKR_MECHANISM_PARAM_INVALID))
            };
        }
        CKD_SHA1_KDF => HashAlg::Sha1,
        CKD_SHA224_KDF => HashAlg::Sha224,
        CKD_SHA256_KDF => HashAlg::Sha256,
        CKD_SHA384_KDF => HashAlg::Sha384,
        CKD_SHA512_KDF => HashAlg::Sha512,
        _ => return Err(Rv(CKR_MECHANISM_PARAM_INVALID)),
    };
    // ANSI X9.63 KDF: Hash(Z ‖ counter ‖ SharedInfo), counter from 1; long enough for any key.
    let mut out = Zeroizing::new(Vec::new());
    for counter in 1u32..=4 {
        let input = Zeroizing::new([&z[..], &counter.to_be_bytes(), shared].concat());
        out.extend_from_slice(&hash.digest(&input));
    }
    Ok(out)
}
