//! TR-03110 signatures over CV structures: the algorithm comes from the signer's `id-TA-*` OID;
//! ECDSA signatures are plain `r‖s`, RSA ones PKCS#1 v1.5 or PSS.

use keyward_crypto::{
    Curve, EcDomain, HashAlg, PrivateKey, RsaPublicKey, RsaScheme, ecdsa_verify_prehash,
};

use crate::{CvcError, PublicKey, oid};

/// A TR-03110 signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaAlgorithm {
    Ecdsa(HashAlg),
    RsaV15(HashAlg),
    RsaPss(HashAlg),
}

impl TaAlgorithm {
    const TABLE: [(&'static [u8], Self); 11] = [
        (oid::TA_ECDSA_SHA1, Self::Ecdsa(HashAlg::Sha1)),
        (oid::TA_ECDSA_SHA224, Self::Ecdsa(HashAlg::Sha224)),
        (oid::TA_ECDSA_SHA256, Self::Ecdsa(HashAlg::Sha256)),
        (oid::TA_ECDSA_SHA384, Self::Ecdsa(HashAlg::Sha384)),
        (oid::TA_ECDSA_SHA512, Self::Ecdsa(HashAlg::Sha512)),
        (oid::TA_RSA_V15_SHA1, Self::RsaV15(HashAlg::Sha1)),
        (oid::TA_RSA_V15_SHA256, Self::RsaV15(HashAlg::Sha256)),
        (oid::TA_RSA_V15_SHA512, Self::RsaV15(HashAlg::Sha512)),
        (oid::TA_RSA_PSS_SHA1, Self::RsaPss(HashAlg::Sha1)),
        (oid::TA_RSA_PSS_SHA256, Self::RsaPss(HashAlg::Sha256)),
        (oid::TA_RSA_PSS_SHA512, Self::RsaPss(HashAlg::Sha512)),
    ];

    pub fn from_oid(algorithm: &[u8]) -> Result<Self, CvcError> {
        Self::TABLE
            .iter()
            .find(|(o, _)| *o == algorithm)
            .map(|(_, a)| *a)
            .ok_or(CvcError::UnknownAlgorithm)
    }

    pub fn oid(self) -> &'static [u8] {
        Self::TABLE
            .iter()
            .find(|(_, a)| *a == self)
            .map_or(&[], |(o, _)| *o)
    }

    pub fn hash(self) -> HashAlg {
        match self {
            Self::Ecdsa(h) | Self::RsaV15(h) | Self::RsaPss(h) => h,
        }
    }

    /// All algorithms of the reference.
    pub fn all() -> impl Iterator<Item = Self> {
        Self::TABLE.into_iter().map(|(_, a)| a)
    }
}

/// Signs `data` (an encoded `7F4E`, or `7F21‖42` for an outer signature) with `algorithm`.
pub fn sign(key: &PrivateKey, algorithm: &[u8], data: &[u8]) -> Result<Vec<u8>, CvcError> {
    let alg = TaAlgorithm::from_oid(algorithm)?;
    let digest = alg.hash().digest(data);
    match (alg, key) {
        (TaAlgorithm::Ecdsa(_), PrivateKey::Ec(k)) => k.sign_prehash_plain(&digest),
        (TaAlgorithm::RsaV15(h), PrivateKey::Rsa(k)) => k.sign_pkcs1(h, &digest),
        (TaAlgorithm::RsaPss(h), PrivateKey::Rsa(k)) => k.sign_pss(h, &digest),
        _ => return Err(CvcError::KeyMismatch),
    }
    .map_err(|_| CvcError::SigningFailed)
}

/// The curve of an EC public key, from its own or inherited domain parameters.
pub fn curve_of(key: &PublicKey, inherited: Option<&EcDomain>) -> Result<Curve, CvcError> {
    match key {
        PublicKey::Ec { domain, .. } => {
            let d = domain
                .as_ref()
                .or(inherited)
                .ok_or(CvcError::MissingDomainParameters)?;
            Curve::from_domain(d).ok_or(CvcError::UnknownCurve)
        }
        PublicKey::Rsa { .. } => Err(CvcError::KeyMismatch),
    }
}

/// Verifies `signature` over `data` with a signer's public key (whose OID names the algorithm);
/// `inherited` supplies EC domain parameters the key does not carry itself.
pub fn verify(
    key: &PublicKey,
    inherited: Option<&EcDomain>,
    data: &[u8],
    signature: &[u8],
) -> Result<(), CvcError> {
    let alg = TaAlgorithm::from_oid(key.algorithm())?;
    let digest = alg.hash().digest(data);
    let ok = match (alg, key) {
        (TaAlgorithm::Ecdsa(_), PublicKey::Ec { point, .. }) => {
            let curve = curve_of(key, inherited)?;
            signature.len() == 2 * curve.field_len()
                && ecdsa_verify_prehash(curve, point, &digest, signature)
        }
        (
            TaAlgorithm::RsaV15(h),
            PublicKey::Rsa {
                modulus, exponent, ..
            },
        ) => RsaPublicKey::new(modulus, exponent)
            .map_err(|_| CvcError::Malformed(crate::tag::PUBLIC_KEY))?
            .verify(RsaScheme::Pkcs1(h), &digest, signature),
        (
            TaAlgorithm::RsaPss(h),
            PublicKey::Rsa {
                modulus, exponent, ..
            },
        ) => RsaPublicKey::new(modulus, exponent)
            .map_err(|_| CvcError::Malformed(crate::tag::PUBLIC_KEY))?
            .verify(RsaScheme::Pss(h), &digest, signature),
        _ => return Err(CvcError::KeyMismatch),
    };
    if ok {
        Ok(())
    } else {
        Err(CvcError::BadSignature)
    }
}
