use core::ops::Add;

use ecdsa::der::{MaxOverhead, MaxSize};
use ecdsa::signature::hazmat::{PrehashVerifier, RandomizedPrehashSigner};
use ecdsa::{DigestAlgorithm, EcdsaCurve, Signature, SigningKey, VerifyingKey};
use elliptic_curve::array::ArraySize;
use elliptic_curve::ops::Invert;
use elliptic_curve::sec1::{FromSec1Point, ModulusSize, ToSec1Point};
use elliptic_curve::subtle::CtOption;
use elliptic_curve::{
    AffinePoint, CurveArithmetic, FieldBytesSize, ProjectivePoint, PublicKey, Scalar,
};
use getrandom::SysRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::CryptoError;

/// Explicit elliptic-curve domain parameters (big-endian; as in a CVC `7F49`, tags 81–85 and 87).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EcDomain {
    pub p: Vec<u8>,
    pub a: Vec<u8>,
    pub b: Vec<u8>,
    /// Base point, uncompressed `04‖X‖Y`.
    pub g: Vec<u8>,
    pub n: Vec<u8>,
    pub h: Vec<u8>,
}

/// The elliptic curves the element supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Curve {
    Secp256r1,
    Secp384r1,
    Secp521r1,
    BrainpoolP256r1,
    BrainpoolP384r1,
    Secp256k1,
}

/// Domain parameters (hex): p, a, b, G (uncompressed), n. Cofactor is 1 for all of them.
struct Params {
    p: &'static str,
    a: &'static str,
    b: &'static str,
    g: &'static str,
    n: &'static str,
}

const SECP256R1: Params = Params {
    p: "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
    a: "ffffffff00000001000000000000000000000000fffffffffffffffffffffffc",
    b: "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b",
    g: "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
    n: "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
};
const SECP384R1: Params = Params {
    p: "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff",
    a: "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000fffffffc",
    b: "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef",
    g: "04aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab73617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f",
    n: "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
};
const SECP521R1: Params = Params {
    p: "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    a: "01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffc",
    b: "0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00",
    g: "0400c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3dbaa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66011839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e662c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd16650",
    n: "01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409",
};
const BRAINPOOLP256R1: Params = Params {
    p: "a9fb57dba1eea9bc3e660a909d838d726e3bf623d52620282013481d1f6e5377",
    a: "7d5a0975fc2c3057eef67530417affe7fb8055c126dc5c6ce94a4b44f330b5d9",
    b: "26dc5c6ce94a4b44f330b5d9bbd77cbf958416295cf7e1ce6bccdc18ff8c07b6",
    g: "048bd2aeb9cb7e57cb2c4b482ffc81b7afb9de27e1e3bd23c23a4453bd9ace3262547ef835c3dac4fd97f8461a14611dc9c27745132ded8e545c1d54c72f046997",
    n: "a9fb57dba1eea9bc3e660a909d838d718c397aa3b561a6f7901e0e82974856a7",
};
const BRAINPOOLP384R1: Params = Params {
    p: "8cb91e82a3386d280f5d6f7e50e641df152f7109ed5456b412b1da197fb71123acd3a729901d1a71874700133107ec53",
    a: "7bc382c63d8c150c3c72080ace05afa0c2bea28e4fb22787139165efba91f90f8aa5814a503ad4eb04a8c7dd22ce2826",
    b: "04a8c7dd22ce28268b39b55416f0447c2fb77de107dcd2a62e880ea53eeb62d57cb4390295dbc9943ab78696fa504c11",
    g: "041d1c64f068cf45ffa2a63a81b7c13f6b8847a3e77ef14fe3db7fcafe0cbd10e8e826e03436d646aaef87b2e247d4af1e8abe1d7520f9c2a45cb1eb8e95cfd55262b70b29feec5864e19c054ff99129280e4646217791811142820341263c5315",
    n: "8cb91e82a3386d280f5d6f7e50e641df152f7109ed5456b31f166e6cac0425a7cf3ab6af6b7fc3103b883202e9046565",
};
const SECP256K1: Params = Params {
    p: "fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f",
    a: "0000000000000000000000000000000000000000000000000000000000000000",
    b: "0000000000000000000000000000000000000000000000000000000000000007",
    g: "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8",
    n: "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
};

/// Runs `$body` with `$c` bound to the RustCrypto curve type of `$curve`.
macro_rules! with_curve {
    ($curve:expr, $c:ident => $body:expr) => {
        match $curve {
            Curve::Secp256r1 => {
                type $c = p256::NistP256;
                $body
            }
            Curve::Secp384r1 => {
                type $c = p384::NistP384;
                $body
            }
            Curve::Secp521r1 => {
                type $c = p521::NistP521;
                $body
            }
            Curve::BrainpoolP256r1 => {
                type $c = bp256::BrainpoolP256r1;
                $body
            }
            Curve::BrainpoolP384r1 => {
                type $c = bp384::BrainpoolP384r1;
                $body
            }
            Curve::Secp256k1 => {
                type $c = k256::Secp256k1;
                $body
            }
        }
    };
}

fn strip_zeros(v: &[u8]) -> &[u8] {
    let i = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    &v[i..]
}

impl Curve {
    pub const ALL: [Self; 6] = [
        Self::Secp256r1,
        Self::Secp384r1,
        Self::Secp521r1,
        Self::BrainpoolP256r1,
        Self::BrainpoolP384r1,
        Self::Secp256k1,
    ];

    fn params(self) -> &'static Params {
        match self {
            Self::Secp256r1 => &SECP256R1,
            Self::Secp384r1 => &SECP384R1,
            Self::Secp521r1 => &SECP521R1,
            Self::BrainpoolP256r1 => &BRAINPOOLP256R1,
            Self::BrainpoolP384r1 => &BRAINPOOLP384R1,
            Self::Secp256k1 => &SECP256K1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Secp256r1 => "secp256r1",
            Self::Secp384r1 => "secp384r1",
            Self::Secp521r1 => "secp521r1",
            Self::BrainpoolP256r1 => "brainpoolP256r1",
            Self::BrainpoolP384r1 => "brainpoolP384r1",
            Self::Secp256k1 => "secp256k1",
        }
    }

    /// The DER-encoded named-curve OID (what PKCS#11 keeps in `CKA_EC_PARAMS`).
    pub fn oid_der(self) -> &'static [u8] {
        match self {
            Self::Secp256r1 => &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07],
            Self::Secp384r1 => &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22],
            Self::Secp521r1 => &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x23],
            Self::BrainpoolP256r1 => &[
                0x06, 0x09, 0x2B, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x07,
            ],
            Self::BrainpoolP384r1 => &[
                0x06, 0x09, 0x2B, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x0B,
            ],
            Self::Secp256k1 => &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x0A],
        }
    }

    /// The curve of a DER-encoded named-curve OID, or of a PKCS#11 printable curve name.
    pub fn from_oid_der(der: &[u8]) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.oid_der() == der)
            .or_else(|| {
                // PKCS#11 also allows a PrintableString (13) with the curve name.
                let name = der.strip_prefix(&[0x13])?.get(1..)?;
                Self::ALL
                    .into_iter()
                    .find(|c| c.name().as_bytes() == name || c.alias().as_bytes() == name)
            })
    }

    /// The curve named `name` (its name or alias, as [`Self::name`] and [`Self::alias`] spell them).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == name || c.alias() == name)
    }

    /// The NIST / common alias of the curve name.
    pub fn alias(self) -> &'static str {
        match self {
            Self::Secp256r1 => "prime256v1",
            Self::Secp384r1 => "P-384",
            Self::Secp521r1 => "P-521",
            other => other.name(),
        }
    }

    /// Field element length in bytes.
    pub fn field_len(self) -> usize {
        self.params().p.len() / 2
    }

    /// Size of the prime field in bits (what a PRKD records as the key size).
    pub fn bits(self) -> usize {
        match self {
            Self::Secp521r1 => 521,
            other => other.field_len() * 8,
        }
    }

    /// Explicit domain parameters as they appear in a `7F49` template.
    pub fn domain(self) -> EcDomain {
        let p = self.params();
        let h = |s: &str| hex::decode(s).unwrap_or_default();
        EcDomain {
            p: h(p.p),
            a: h(p.a),
            b: h(p.b),
            g: h(p.g),
            n: h(p.n),
            h: vec![1],
        }
    }

    /// Identifies a curve by its explicit domain parameters (numerically, ignoring leading zeros).
    pub fn from_domain(d: &EcDomain) -> Option<Self> {
        Self::ALL.into_iter().find(|c| {
            let ours = c.domain();
            [
                (&ours.p, &d.p),
                (&ours.a, &d.a),
                (&ours.b, &d.b),
                (&ours.g, &d.g),
                (&ours.n, &d.n),
                (&ours.h, &d.h),
            ]
            .iter()
            .all(|(x, y)| strip_zeros(x) == strip_zeros(y))
        })
    }
}

/// An EC private key with its public point.
pub struct EcKey {
    curve: Curve,
    private: Zeroizing<Vec<u8>>,
    public: Vec<u8>,
    /// The aws-lc-rs form (NIST curves), built on first signature.
    fast: std::sync::OnceLock<Option<crate::fast::FastEc>>,
}

impl EcKey {
    pub fn generate(curve: Curve) -> Result<Self, CryptoError> {
        let private = with_curve!(curve, C => generate::<C>())?;
        Self::from_private(curve, &private)
    }

    pub fn from_private(curve: Curve, private: &[u8]) -> Result<Self, CryptoError> {
        let public = with_curve!(curve, C => public_point::<C>(private))?;
        Ok(Self {
            curve,
            private: Zeroizing::new(private.to_vec()),
            public,
            fast: std::sync::OnceLock::new(),
        })
    }

    pub fn curve(&self) -> Curve {
        self.curve
    }

    pub fn private_bytes(&self) -> &[u8] {
        &self.private
    }

    /// Uncompressed public point `04‖X‖Y`.
    pub fn public_point(&self) -> &[u8] {
        &self.public
    }

    /// ECDSA over a supplied hash; DER `SEQUENCE { r, s }` with both integers at full field
    /// length (plus a `00` where the sign bit is set), as the SmartCard-HSM answers. OpenSC infers
    /// the field size from this length, which minimal DER would make ambiguous.
    pub fn sign_prehash_der(&self, hash: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let plain = self.sign_prehash_plain(hash)?;
        let (r, s) = plain.split_at(plain.len() / 2);
        let mut seq = Vec::with_capacity(plain.len() + 8);
        for half in [r, s] {
            let mut int = Vec::with_capacity(half.len() + 1);
            if half.first().is_some_and(|b| b & 0x80 != 0) {
                int.push(0);
            }
            int.extend_from_slice(half);
            keyward_apdu::tlv::write(&mut seq, 0x02, &int).map_err(|_| CryptoError::Failed)?;
        }
        keyward_apdu::tlv::encode(0x30, &seq).map_err(|_| CryptoError::Failed)
    }

    /// ECDSA over a supplied hash; plain `r‖s` (TR-03111) signature.
    pub fn sign_prehash_plain(&self, hash: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let fast = self
            .fast
            .get_or_init(|| crate::fast::FastEc::new(self.curve, &self.private, &self.public));
        if let Some(sig) = fast.as_ref().and_then(|f| f.sign_prehash(hash)) {
            return Ok(sig);
        }
        with_curve!(self.curve, C => sign::<C>(&self.private, hash).map(|s| s.to_bytes().to_vec()))
    }

    /// ECDH with a peer's uncompressed point, returning the full shared point `04‖X‖Y`.
    pub fn ecdh(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if peer.first() != Some(&0x04) || peer.len() != 1 + 2 * self.curve.field_len() {
            return Err(CryptoError::InvalidInput);
        }
        with_curve!(self.curve, C => ecdh::<C>(&self.private, peer))
    }
}

/// Verifies an ECDSA signature (DER or plain `r‖s`) over a hash with an uncompressed public point.
/// Verifies ECDSA over a hash; the signature is plain `r‖s` or DER (minimal or, as the
/// SmartCard-HSM answers, with fixed-width integers).
pub fn verify_prehash(curve: Curve, public: &[u8], hash: &[u8], signature: &[u8]) -> bool {
    let plain;
    let signature = if signature.len() != 2 * curve.field_len() {
        match der_signature_to_plain(signature, curve.field_len()) {
            Ok(p) => {
                plain = p;
                &plain[..]
            }
            Err(_) => return false,
        }
    } else {
        signature
    };
    with_curve!(curve, C => verify::<C>(public, hash, signature))
}

/// Converts a DER `SEQUENCE { r, s }` (minimal or fixed-width integers) to plain `r‖s`.
pub fn der_signature_to_plain(sig: &[u8], field_len: usize) -> Result<Vec<u8>, CryptoError> {
    let seq = keyward_apdu::tlv::Tlv::parse_exact(sig).map_err(|_| CryptoError::InvalidInput)?;
    let ints = keyward_apdu::tlv::parse_all(seq.value).map_err(|_| CryptoError::InvalidInput)?;
    let [r, s] = ints.as_slice() else {
        return Err(CryptoError::InvalidInput);
    };
    if seq.tag.0 != 0x30 || r.tag.0 != 0x02 || s.tag.0 != 0x02 {
        return Err(CryptoError::InvalidInput);
    }
    let mut out = Vec::with_capacity(2 * field_len);
    for int in [r, s] {
        let v = strip_zeros(int.value);
        if v.len() > field_len {
            return Err(CryptoError::InvalidInput);
        }
        out.resize(out.len() + field_len - v.len(), 0);
        out.extend_from_slice(v);
    }
    Ok(out)
}

fn generate<C>() -> Result<Vec<u8>, CryptoError>
where
    C: CurveArithmetic,
{
    use elliptic_curve::Generate;
    let d = elliptic_curve::NonZeroScalar::<C>::try_generate_from_rng(&mut SysRng)
        .map_err(|_| CryptoError::Rng)?;
    Ok(elliptic_curve::SecretKey::<C>::from(d).to_bytes().to_vec())
}

fn public_point<C>(private: &[u8]) -> Result<Vec<u8>, CryptoError>
where
    C: CurveArithmetic,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
    FieldBytesSize<C>: ModulusSize,
{
    let sk =
        elliptic_curve::SecretKey::<C>::from_slice(private).map_err(|_| CryptoError::InvalidKey)?;
    Ok(sk.public_key().to_sec1_point(false).as_bytes().to_vec())
}

fn sign<C>(private: &[u8], hash: &[u8]) -> Result<Signature<C>, CryptoError>
where
    C: EcdsaCurve + CurveArithmetic + DigestAlgorithm,
    Scalar<C>: Invert<Output = CtOption<Scalar<C>>>,
    MaxSize<C>: ArraySize,
    <FieldBytesSize<C> as Add>::Output: Add<MaxOverhead> + ArraySize,
{
    if hash.is_empty() {
        return Err(CryptoError::InvalidInput);
    }
    let sk = SigningKey::<C>::from_slice(private).map_err(|_| CryptoError::InvalidKey)?;
    sk.sign_prehash_with_rng(&mut SysRng, hash)
        .map_err(|_| CryptoError::InvalidInput)
}

fn verify<C>(public: &[u8], hash: &[u8], signature: &[u8]) -> bool
where
    C: EcdsaCurve + CurveArithmetic + DigestAlgorithm,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
    FieldBytesSize<C>: ModulusSize,
    MaxSize<C>: ArraySize,
    <FieldBytesSize<C> as Add>::Output: Add<MaxOverhead> + ArraySize,
{
    let Ok(vk) = VerifyingKey::<C>::from_sec1_bytes(public) else {
        return false;
    };
    let Ok(sig) =
        Signature::<C>::from_der(signature).or_else(|_| Signature::<C>::from_slice(signature))
    else {
        return false;
    };
    vk.verify_prehash(hash, &sig).is_ok()
}

fn ecdh<C>(private: &[u8], peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError>
where
    C: CurveArithmetic,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
    FieldBytesSize<C>: ModulusSize,
{
    use elliptic_curve::group::Curve as _;
    let sk =
        elliptic_curve::SecretKey::<C>::from_slice(private).map_err(|_| CryptoError::InvalidKey)?;
    // Rejects points off the curve, the identity and malformed encodings.
    let peer = PublicKey::<C>::from_sec1_bytes(peer).map_err(|_| CryptoError::InvalidInput)?;
    let shared: ProjectivePoint<C> = peer.to_projective() * *sk.to_nonzero_scalar().as_ref();
    Ok(Zeroizing::new(
        shared.to_affine().to_sec1_point(false).as_bytes().to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_parameters_match_the_curve_implementations() {
        for curve in Curve::ALL {
            let key = EcKey::generate(curve).unwrap();
            let d = curve.domain();
            // The generator of our table times 1 is the crate's generator: compare via a known key.
            let one = {
                let mut v = vec![0u8; curve.field_len()];
                *v.last_mut().unwrap() = 1;
                v
            };
            assert_eq!(
                EcKey::from_private(curve, &one).unwrap().public_point(),
                &d.g[..],
                "{curve:?}"
            );
            assert_eq!(Curve::from_domain(&d), Some(curve));
            let hash = [0x5Au8; 32];
            let sig = key.sign_prehash_der(&hash).unwrap();
            let sig = der_signature_to_plain(&sig, curve.field_len()).unwrap();
            assert!(verify_prehash(curve, key.public_point(), &hash, &sig));
            let plain = key.sign_prehash_plain(&hash).unwrap();
            assert_eq!(plain.len(), 2 * curve.field_len());
            assert!(verify_prehash(curve, key.public_point(), &hash, &plain));
            // ECDH agrees from both sides and rejects an off-curve point.
            let other = EcKey::generate(curve).unwrap();
            assert_eq!(
                key.ecdh(other.public_point()).unwrap(),
                other.ecdh(key.public_point()).unwrap()
            );
            let mut bad = other.public_point().to_vec();
            *bad.last_mut().unwrap() ^= 1;
            assert!(key.ecdh(&bad).is_err());
        }
    }
}
