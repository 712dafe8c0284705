use getrandom::SysRng;
use rsa::hazmat::{rsa_decrypt_and_check, rsa_encrypt};
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BoxedUint, Pkcs1v15Sign, PrivateKey, Pss};
use std::sync::OnceLock;

use zeroize::Zeroizing;

use super::{CryptoError, HashAlg};
use crate::fast::{FastRsa, RsaComponents};

/// An RSA private key.
pub struct RsaKey(PrivateKey, OnceLock<Option<FastRsa>>);

/// The RSA sizes the SmartCard-HSM generates.
pub const RSA_SIZES: [usize; 5] = [1024, 1536, 2048, 3072, 4096];

/// Private parts of a key as big-endian bytes: `(n, e, d, p, q)`.
pub type RsaParts = (
    Vec<u8>,
    Vec<u8>,
    Zeroizing<Vec<u8>>,
    Zeroizing<Vec<u8>>,
    Zeroizing<Vec<u8>>,
);

impl RsaKey {
    pub fn generate(bits: usize) -> Result<Self, CryptoError> {
        if !RSA_SIZES.contains(&bits) {
            return Err(CryptoError::UnsupportedSize);
        }
        PrivateKey::new(&mut SysRng, bits)
            .map(|k| Self(k, OnceLock::new()))
            .map_err(|_| CryptoError::Failed)
    }

    pub fn from_parts(
        n: &[u8],
        e: &[u8],
        d: &[u8],
        p: &[u8],
        q: &[u8],
    ) -> Result<Self, CryptoError> {
        let nb = BoxedUint::from_be_slice_vartime;
        let mut key = PrivateKey::from_components(nb(n), nb(e), nb(d), vec![nb(p), nb(q)])
            .map_err(|_| CryptoError::InvalidKey)?;
        key.precompute().map_err(|_| CryptoError::InvalidKey)?;
        Ok(Self(key, OnceLock::new()))
    }

    /// A key from modulus and exponents, its primes recovered (NIST SP 800-56B rev. 2, C.2).
    pub fn from_exponents(n: &[u8], e: &[u8], d: &[u8]) -> Result<Self, CryptoError> {
        let nb = BoxedUint::from_be_slice_vartime;
        let mut key = PrivateKey::from_components(nb(n), nb(e), nb(d), Vec::new())
            .map_err(|_| CryptoError::InvalidKey)?;
        key.precompute().map_err(|_| CryptoError::InvalidKey)?;
        Ok(Self(key, OnceLock::new()))
    }

    /// A key from its primes and public exponent (d computed).
    pub fn from_primes(p: &[u8], q: &[u8], e: &[u8]) -> Result<Self, CryptoError> {
        let nb = BoxedUint::from_be_slice_vartime;
        let mut key =
            PrivateKey::from_p_q(nb(p), nb(q), nb(e)).map_err(|_| CryptoError::InvalidKey)?;
        key.precompute().map_err(|_| CryptoError::InvalidKey)?;
        Ok(Self(key, OnceLock::new()))
    }

    /// The CRT exponents and coefficient: `(d mod (p-1), d mod (q-1), q^-1 mod p)`.
    pub fn crt(&self) -> Result<[Zeroizing<Vec<u8>>; 3], CryptoError> {
        let be = |v: &BoxedUint| Zeroizing::new(v.to_be_bytes_trimmed_vartime().to_vec());
        let dp = self.0.dp().ok_or(CryptoError::InvalidKey)?;
        let dq = self.0.dq().ok_or(CryptoError::InvalidKey)?;
        let qinv = self.0.qinv().ok_or(CryptoError::InvalidKey)?.retrieve();
        Ok([be(dp), be(dq), be(&qinv)])
    }

    pub fn parts(&self) -> Result<RsaParts, CryptoError> {
        let [p, q] = self.0.primes() else {
            return Err(CryptoError::InvalidKey);
        };
        Ok((
            self.0.n_bytes().to_vec(),
            self.0.e_bytes().to_vec(),
            Zeroizing::new(self.0.d().to_be_bytes_trimmed_vartime().to_vec()),
            Zeroizing::new(p.to_be_bytes_trimmed_vartime().to_vec()),
            Zeroizing::new(q.to_be_bytes_trimmed_vartime().to_vec()),
        ))
    }

    /// Modulus length in bytes.
    pub fn size(&self) -> usize {
        self.0.size()
    }

    pub fn bits(&self) -> usize {
        self.size() * 8
    }

    pub fn modulus(&self) -> Vec<u8> {
        self.0.n_bytes().to_vec()
    }

    pub fn exponent(&self) -> Vec<u8> {
        self.0.e_bytes().to_vec()
    }

    /// The raw private operation `c^d mod n` on a block of modulus length (shorter input is
    /// taken as a left-padded number), with blinding and a fault check.
    pub fn raw_private(&self, block: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if block.len() > self.size() {
            return Err(CryptoError::InvalidInput);
        }
        let c = BoxedUint::from_be_slice(block, self.0.n_bits_precision())
            .map_err(|_| CryptoError::InvalidInput)?;
        let m = rsa_decrypt_and_check(&self.0, Some(&mut SysRng), &c)
            .map_err(|_| CryptoError::InvalidInput)?;
        let bytes = Zeroizing::new(m.to_be_bytes().to_vec());
        let len = self.size();
        let tail = &bytes[bytes.len().saturating_sub(len)..];
        let mut out = Zeroizing::new(vec![0u8; len - tail.len()]);
        out.extend_from_slice(tail);
        Ok(out)
    }

    /// The aws-lc-rs form of this key, built on first use.
    fn fast(&self) -> Option<&FastRsa> {
        self.1
            .get_or_init(|| {
                let [p, q] = self.0.primes() else {
                    return None;
                };
                let be = |v: &BoxedUint| Zeroizing::new(v.to_be_bytes_trimmed_vartime().to_vec());
                let (n, e) = (self.0.n_bytes(), self.0.e_bytes());
                let (d, p, q) = (be(self.0.d()), be(p), be(q));
                let (dp, dq) = (be(self.0.dp()?), be(self.0.dq()?));
                let qinv = be(&self.0.qinv()?.retrieve());
                FastRsa::new(&RsaComponents {
                    n: &n,
                    e: &e,
                    d: &d,
                    p: &p,
                    q: &q,
                    dp: &dp,
                    dq: &dq,
                    qinv: &qinv,
                })
            })
            .as_ref()
    }

    /// PKCS#1 v1.5 signature over a complete DigestInfo (or any short prefix-free input).
    pub fn sign_pkcs1_digest_info(&self, digest_info: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if let Some((hash, digest)) = HashAlg::split_digest_info(digest_info)
            && let Some(sig) = self.fast().and_then(|f| f.sign_digest(hash, digest, false))
        {
            return Ok(sig);
        }
        self.0
            .sign_with_rng(&mut SysRng, Pkcs1v15Sign::new_unprefixed(), digest_info)
            .map_err(|_| CryptoError::InvalidInput)
    }

    /// PKCS#1 v1.5 signature over a hash, adding the DigestInfo prefix of `hash`.
    pub fn sign_pkcs1(&self, hash: HashAlg, digest: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if digest.len() == hash.output_len()
            && let Some(sig) = self.fast().and_then(|f| f.sign_digest(hash, digest, false))
        {
            return Ok(sig);
        }
        let scheme = match hash {
            HashAlg::Sha1 => Pkcs1v15Sign::new::<sha1::Sha1>(),
            HashAlg::Sha224 => Pkcs1v15Sign::new::<sha2::Sha224>(),
            HashAlg::Sha256 => Pkcs1v15Sign::new::<sha2::Sha256>(),
            HashAlg::Sha384 => Pkcs1v15Sign::new::<sha2::Sha384>(),
            HashAlg::Sha512 => Pkcs1v15Sign::new::<sha2::Sha512>(),
        };
        self.0
            .sign_with_rng(&mut SysRng, scheme, digest)
            .map_err(|_| CryptoError::InvalidInput)
    }

    /// RSASSA-PSS over a hash, MGF1 with the same hash, salt length = hash length.
    pub fn sign_pss(&self, hash: HashAlg, digest: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if digest.len() != hash.output_len() {
            return Err(CryptoError::InvalidInput);
        }
        if let Some(sig) = self.fast().and_then(|f| f.sign_digest(hash, digest, true)) {
            return Ok(sig);
        }
        let r = match hash {
            HashAlg::Sha1 => self
                .0
                .sign_with_rng(&mut SysRng, Pss::<sha1::Sha1>::new(), digest),
            HashAlg::Sha224 => {
                self.0
                    .sign_with_rng(&mut SysRng, Pss::<sha2::Sha224>::new(), digest)
            }
            HashAlg::Sha256 => {
                self.0
                    .sign_with_rng(&mut SysRng, Pss::<sha2::Sha256>::new(), digest)
            }
            HashAlg::Sha384 => {
                self.0
                    .sign_with_rng(&mut SysRng, Pss::<sha2::Sha384>::new(), digest)
            }
            HashAlg::Sha512 => {
                self.0
                    .sign_with_rng(&mut SysRng, Pss::<sha2::Sha512>::new(), digest)
            }
        };
        r.map_err(|_| CryptoError::InvalidInput)
    }
}

/// RSA signature schemes with their hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaScheme {
    Pkcs1(HashAlg),
    /// MGF1 with the same hash, salt length = hash length.
    Pss(HashAlg),
}

/// An RSA public key.
pub struct RsaPublicKey(rsa::PublicKey);

impl RsaPublicKey {
    pub fn new(modulus: &[u8], exponent: &[u8]) -> Result<Self, CryptoError> {
        rsa::PublicKey::new(
            BoxedUint::from_be_slice_vartime(modulus),
            BoxedUint::from_be_slice_vartime(exponent),
        )
        .map(Self)
        .map_err(|_| CryptoError::InvalidKey)
    }

    /// Modulus length in bytes.
    pub fn size(&self) -> usize {
        self.0.size()
    }

    /// The raw public operation `m^e mod n` on a block of at most modulus length, returning a
    /// modulus-length block.
    pub fn raw_public(&self, block: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if block.len() > self.size() {
            return Err(CryptoError::InvalidInput);
        }
        let m = BoxedUint::from_be_slice(block, self.0.n_bits_precision())
            .map_err(|_| CryptoError::InvalidInput)?;
        if m >= *self.0.n().as_ref() {
            return Err(CryptoError::InvalidInput);
        }
        let c = rsa_encrypt(&self.0, &m).map_err(|_| CryptoError::InvalidInput)?;
        let bytes = c.to_be_bytes();
        let tail = &bytes[bytes.len().saturating_sub(self.size())..];
        let mut out = vec![0u8; self.size() - tail.len()];
        out.extend_from_slice(tail);
        Ok(out)
    }

    /// Verifies a signature over a hash.
    pub fn verify(&self, scheme: RsaScheme, digest: &[u8], signature: &[u8]) -> bool {
        macro_rules! with_hash {
            ($h:expr, $d:ident => $body:expr) => {
                match $h {
                    HashAlg::Sha1 => {
                        type $d = sha1::Sha1;
                        $body
                    }
                    HashAlg::Sha224 => {
                        type $d = sha2::Sha224;
                        $body
                    }
                    HashAlg::Sha256 => {
                        type $d = sha2::Sha256;
                        $body
                    }
                    HashAlg::Sha384 => {
                        type $d = sha2::Sha384;
                        $body
                    }
                    HashAlg::Sha512 => {
                        type $d = sha2::Sha512;
                        $body
                    }
                }
            };
        }
        match scheme {
            RsaScheme::Pkcs1(h) => {
                with_hash!(h, D => self.0.verify(Pkcs1v15Sign::new::<D>(), digest, signature).is_ok())
            }
            RsaScheme::Pss(h) => {
                with_hash!(h, D => self.0.verify(Pss::<D>::new(), digest, signature).is_ok())
            }
        }
    }
}
