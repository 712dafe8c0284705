//! The mechanisms the module offers, their parameters, and which hash each one uses.

use cryptoki_sys::*;
use keyward_crypto::HashAlg;

use crate::error::{Result, Rv};

/// A mechanism with its parameter, copied out of the caller's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mechanism {
    pub ty: CK_MECHANISM_TYPE,
    pub param: Param,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    None,
    Pss {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        salt_len: CK_ULONG,
    },
    Oaep {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_RSA_PKCS_MGF_TYPE,
        label: Vec<u8>,
    },
    Iv(Vec<u8>),
    Ecdh {
        kdf: CK_EC_KDF_TYPE,
        shared: Vec<u8>,
        public: Vec<u8>,
    },
    /// A parameter of a mechanism that takes none (or of an unknown shape).
    Other(Vec<u8>),
}

const SIGN: CK_FLAGS = CKF_SIGN | CKF_VERIFY;
const CRYPT: CK_FLAGS = CKF_ENCRYPT | CKF_DECRYPT;
const EC: CK_FLAGS = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;

/// Every mechanism with its key-size range (bits; bytes for AES) and flags.
pub const MECHANISMS: &[(CK_MECHANISM_TYPE, CK_ULONG, CK_ULONG, CK_FLAGS)] = &[
    (
        CKM_RSA_PKCS_KEY_PAIR_GEN,
        1024,
        4096,
        CKF_GENERATE_KEY_PAIR | CKF_HW,
    ),
    (CKM_RSA_PKCS, 1024, 4096, SIGN | CRYPT | CKF_HW),
    (CKM_RSA_X_509, 1024, 4096, SIGN | CRYPT | CKF_HW),
    (CKM_RSA_PKCS_OAEP, 1024, 4096, CRYPT | CKF_HW),
    (CKM_RSA_PKCS_PSS, 1024, 4096, SIGN | CKF_HW),
    (CKM_SHA1_RSA_PKCS, 1024, 4096, SIGN | CKF_HW),
    (CKM_SHA224_RSA_PKCS, 1024, 4096, SIGN | CKF_HW),
    (CKM_SHA256_RSA_PKCS, 1024, 4096, SIGN | CKF_HW),
    (CKM_SHA384_RSA_PKCS, 1024, 4096, SIGN | CKF_HW),
    (CKM_SHA512_RSA_PKCS, 1024, 4096, SIGN | CKF_HW),
    (CKM_SHA1_RSA_PKCS_PSS, 1024, 4096, SIGN | CKF_HW),
    (CKM_SHA224_RSA_PKCS_PSS, 1024, 4096, SIGN | CKF_HW),
    (CKM_SHA256_RSA_PKCS_PSS, 1024, 4096, SIGN | CKF_HW),
    (CKM_SHA384_RSA_PKCS_PSS, 1024, 4096, SIGN | CKF_HW),
    (CKM_SHA512_RSA_PKCS_PSS, 1024, 4096, SIGN | CKF_HW),
    (
        CKM_EC_KEY_PAIR_GEN,
        256,
        521,
        CKF_GENERATE_KEY_PAIR | EC | CKF_HW,
    ),
    (CKM_ECDSA, 256, 521, SIGN | EC | CKF_HW),
    (CKM_ECDSA_SHA1, 256, 521, SIGN | EC | CKF_HW),
    (CKM_ECDSA_SHA224, 256, 521, SIGN | EC | CKF_HW),
    (CKM_ECDSA_SHA256, 256, 521, SIGN | EC | CKF_HW),
    (CKM_ECDSA_SHA384, 256, 521, SIGN | EC | CKF_HW),
    (CKM_ECDSA_SHA512, 256, 521, SIGN | EC | CKF_HW),
    (CKM_ECDH1_DERIVE, 256, 521, CKF_DERIVE | EC | CKF_HW),
    (CKM_AES_KEY_GEN, 16, 32, CKF_GENERATE | CKF_HW),
    (CKM_AES_CBC, 16, 32, CRYPT | CKF_HW),
    (CKM_AES_CBC_PAD, 16, 32, CRYPT | CKF_HW),
    (CKM_AES_CMAC, 16, 32, SIGN | CKF_HW),
    (CKM_SHA_1, 0, 0, CKF_DIGEST),
    (CKM_SHA224, 0, 0, CKF_DIGEST),
    (CKM_SHA256, 0, 0, CKF_DIGEST),
    (CKM_SHA384, 0, 0, CKF_DIGEST),
    (CKM_SHA512, 0, 0, CKF_DIGEST),
];

pub fn info(ty: CK_MECHANISM_TYPE) -> Result<CK_MECHANISM_INFO> {
    MECHANISMS
        .iter()
        .find(|m| m.0 == ty)
        .map(|m| CK_MECHANISM_INFO {
            ulMinKeySize: m.1,
            ulMaxKeySize: m.2,
            flags: m.3,
        })
        .ok_or(Rv(CKR_MECHANISM_INVALID))
}

/// Whether the mechanism supports `flag` (CKF_SIGN, CKF_ENCRYPT…).
pub fn supports(ty: CK_MECHANISM_TYPE, flag: CK_FLAGS) -> Result<()> {
    if info(ty)?.flags & flag != 0 {
        Ok(())
    } else {
        Err(Rv(CKR_MECHANISM_INVALID))
    }
}

/// The hash of a digest mechanism (CKM_SHA256…), as used in PSS/OAEP parameters.
pub fn digest_hash(ty: CK_MECHANISM_TYPE) -> Option<HashAlg> {
    Some(match ty {
        CKM_SHA_1 => HashAlg::Sha1,
        CKM_SHA224 => HashAlg::Sha224,
        CKM_SHA256 => HashAlg::Sha256,
        CKM_SHA384 => HashAlg::Sha384,
        CKM_SHA512 => HashAlg::Sha512,
        _ => return None,
    })
}

/// The MGF1 variant matching a hash.
pub fn mgf_of(hash: HashAlg) -> CK_RSA_PKCS_MGF_TYPE {
    match hash {
        HashAlg::Sha1 => CKG_MGF1_SHA1,
        HashAlg::Sha224 => CKG_MGF1_SHA224,
        HashAlg::Sha256 => CKG_MGF1_SHA256,
        HashAlg::Sha384 => CKG_MGF1_SHA384,
        HashAlg::Sha512 => CKG_MGF1_SHA512,
    }
}

/// The hash a sign mechanism applies to the data on the host before the element signs.
pub fn sign_hash(ty: CK_MECHANISM_TYPE) -> Option<HashAlg> {
    Some(match ty {
        CKM_ECDSA_SHA1 | CKM_SHA1_RSA_PKCS | CKM_SHA1_RSA_PKCS_PSS => HashAlg::Sha1,
        CKM_ECDSA_SHA224 | CKM_SHA224_RSA_PKCS | CKM_SHA224_RSA_PKCS_PSS => HashAlg::Sha224,
        CKM_ECDSA_SHA256 | CKM_SHA256_RSA_PKCS | CKM_SHA256_RSA_PKCS_PSS => HashAlg::Sha256,
        CKM_ECDSA_SHA384 | CKM_SHA384_RSA_PKCS | CKM_SHA384_RSA_PKCS_PSS => HashAlg::Sha384,
        CKM_ECDSA_SHA512 | CKM_SHA512_RSA_PKCS | CKM_SHA512_RSA_PKCS_PSS => HashAlg::Sha512,
        _ => return None,
    })
}

/// Element algorithm lists for generated keys: everything the key type can do, plus WRAP
/// (export under a DKEK) only when the key is to be extractable.
pub fn algorithm_list(rsa: bool, extractable: bool) -> Vec<u8> {
    let mut list: Vec<u8> = if rsa {
        [0x20, 0x21]
            .into_iter()
            .chain(0x30..=0x35)
            .chain(0x40..=0x45)
            .collect()
    } else {
        (0x70..=0x75).chain([0x80]).collect()
    };
    if extractable {
        list.push(keyward_card::ALG_WRAP);
    }
    list
}
