//! The aws-lc-rs back end for the signatures it does faster than RustCrypto: ECDSA on the NIST
//! curves and RSA PKCS#1 v1.5 / PSS with SHA-256/384/512. Everything else (brainpool, secp256k1,
//! other hash sizes, raw RSA, key generation, ECDH) stays on RustCrypto; both produce standard
//! signatures, so which one signed is invisible to a verifier.

use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::rsa::KeyPairComponents;
use aws_lc_rs::signature::{self, EcdsaKeyPair, RsaEncoding, RsaKeyPair};

use crate::{Curve, HashAlg};

/// An aws-lc-rs ECDSA key (fixed-width `r‖s` output), for one curve and its matching hash size.
pub(crate) struct FastEc {
    key: EcdsaKeyPair,
    hash_len: usize,
}

impl FastEc {
    /// `None` for curves aws-lc-rs does not offer here.
    pub(crate) fn new(curve: Curve, private: &[u8], public: &[u8]) -> Option<Self> {
        let (alg, hash_len) = match curve {
            Curve::Secp256r1 => (&signature::ECDSA_P256_SHA256_FIXED_SIGNING, 32),
            Curve::Secp384r1 => (&signature::ECDSA_P384_SHA384_FIXED_SIGNING, 48),
            Curve::Secp521r1 => (&signature::ECDSA_P521_SHA512_FIXED_SIGNING, 64),
            _ => return None,
        };
        let key = EcdsaKeyPair::from_private_key_and_public_key(alg, private, public).ok()?;
        Some(Self { key, hash_len })
    }

    /// Plain `r‖s` over a hash of the curve's matching size; `None` for other sizes.
    pub(crate) fn sign_prehash(&self, hash: &[u8]) -> Option<Vec<u8>> {
        if hash.len() != self.hash_len {
            return None;
        }
        let alg = digest_alg(HashAlg::from_output_len(hash.len())?)?;
        let d = Digest::import_less_safe(hash, alg).ok()?;
        Some(self.key.sign_digest(&d).ok()?.as_ref().to_vec())
    }
}

fn digest_alg(h: HashAlg) -> Option<&'static digest::Algorithm> {
    match h {
        HashAlg::Sha256 => Some(&digest::SHA256),
        HashAlg::Sha384 => Some(&digest::SHA384),
        HashAlg::Sha512 => Some(&digest::SHA512),
        HashAlg::Sha1 | HashAlg::Sha224 => None,
    }
}

/// An aws-lc-rs RSA key.
pub(crate) struct FastRsa(RsaKeyPair);

/// Big-endian RSA components, CRT values included.
pub(crate) struct RsaComponents<'a> {
    pub n: &'a [u8],
    pub e: &'a [u8],
    pub d: &'a [u8],
    pub p: &'a [u8],
    pub q: &'a [u8],
    pub dp: &'a [u8],
    pub dq: &'a [u8],
    pub qinv: &'a [u8],
}

impl FastRsa {
    pub(crate) fn new(c: &RsaComponents<'_>) -> Option<Self> {
        let components = KeyPairComponents {
            public_key: signature::RsaPublicKeyComponents { n: c.n, e: c.e },
            d: c.d,
            p: c.p,
            q: c.q,
            dP: c.dp,
            dQ: c.dq,
            qInv: c.qinv,
        };
        RsaKeyPair::from_components(&components).ok().map(Self)
    }

    /// PKCS#1 v1.5 (`pss` false) or PSS with salt = hash length over a supplied digest;
    /// `None` where aws-lc-rs has no such scheme.
    pub(crate) fn sign_digest(&self, hash: HashAlg, digest: &[u8], pss: bool) -> Option<Vec<u8>> {
        let encoding: &'static dyn RsaEncoding = match (hash, pss) {
            (HashAlg::Sha256, false) => &signature::RSA_PKCS1_SHA256,
            (HashAlg::Sha384, false) => &signature::RSA_PKCS1_SHA384,
            (HashAlg::Sha512, false) => &signature::RSA_PKCS1_SHA512,
            (HashAlg::Sha256, true) => &signature::RSA_PSS_SHA256,
            (HashAlg::Sha384, true) => &signature::RSA_PSS_SHA384,
            (HashAlg::Sha512, true) => &signature::RSA_PSS_SHA512,
            _ => return None,
        };
        let d = Digest::import_less_safe(digest, digest_alg(hash)?).ok()?;
        let mut sig = vec![0u8; self.0.public_modulus_len()];
        self.0.sign_digest(encoding, &d, &mut sig).ok()?;
        Some(sig)
    }
}
