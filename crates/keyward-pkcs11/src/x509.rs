//! The few fields of an X.509 certificate a token shows as attributes: subject, issuer, serial
//! number and the subject public key. A DER walk, not a validator.

use keyward_apdu::tlv::{self, Tlv};
use keyward_crypto::Curve;

use crate::object::PublicKey;

/// Fields of a parsed certificate, each the complete DER encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFields {
    pub serial: Vec<u8>,
    pub issuer: Vec<u8>,
    pub subject: Vec<u8>,
    pub spki: Vec<u8>,
    pub public_key: Option<PublicKey>,
}

const RSA_ENCRYPTION: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];

/// Parses a DER certificate; `None` if it is not one.
pub fn parse(der: &[u8]) -> Option<CertFields> {
    let cert = Tlv::parse_exact(der).ok()?;
    let tbs = cert.children().next()?.ok()?;
    let mut fields = tbs.children().filter_map(Result::ok).peekable();
    if fields.peek()?.tag.0 == 0xA0 {
        fields.next();
    }
    let serial = fields.next().filter(|t| t.tag.0 == 0x02)?.raw.to_vec();
    let _signature_alg = fields.next()?;
    let issuer = fields.next()?.raw.to_vec();
    let _validity = fields.next()?;
    let subject = fields.next()?.raw.to_vec();
    let spki = fields.next().filter(|t| t.tag.0 == 0x30)?;
    Some(CertFields {
        serial,
        issuer,
        subject,
        public_key: parse_spki(spki.raw),
        spki: spki.raw.to_vec(),
    })
}

/// The public key of a SubjectPublicKeyInfo (RSA or a named EC curve).
pub fn parse_spki(der: &[u8]) -> Option<PublicKey> {
    let spki = Tlv::parse_exact(der).ok()?;
    let parts = tlv::parse_all(spki.value).ok()?;
    let [alg, key] = parts.as_slice() else {
        return None;
    };
    let alg = tlv::parse_all(alg.value).ok()?;
    let bits = key.value.strip_prefix(&[0])?;
    match alg.as_slice() {
        [oid, ..] if oid.value == RSA_ENCRYPTION => {
            let seq = Tlv::parse_exact(bits).ok()?;
            let ints = tlv::parse_all(seq.value).ok()?;
            let [n, e] = ints.as_slice() else {
                return None;
            };
            Some(PublicKey::Rsa {
                n: strip_zeros(n.value).to_vec(),
                e: strip_zeros(e.value).to_vec(),
            })
        }
        [oid, params] if oid.value == EC_PUBLIC_KEY => Some(PublicKey::Ec {
            curve: Curve::from_oid_der(params.raw)?,
            point: bits.to_vec(),
        }),
        _ => None,
    }
}

/// Encodes a SubjectPublicKeyInfo (for `CKA_PUBLIC_KEY_INFO`).
pub fn encode_spki(key: &PublicKey) -> Option<Vec<u8>> {
    let (alg, bits) = match key {
        PublicKey::Rsa { n, e } => {
            let mut ints = Vec::new();
            tlv::write(&mut ints, 0x02, &unsigned(n)).ok()?;
            tlv::write(&mut ints, 0x02, &unsigned(e)).ok()?;
            let mut alg = tlv::encode(0x06, RSA_ENCRYPTION).ok()?;
            alg.extend_from_slice(&[0x05, 0x00]);
            (alg, tlv::encode(0x30, &ints).ok()?)
        }
        PublicKey::Ec { curve, point } => {
            let mut alg = tlv::encode(0x06, EC_PUBLIC_KEY).ok()?;
            alg.extend_from_slice(curve.oid_der());
            (alg, point.clone())
        }
    };
    let mut v = tlv::encode(0x30, &alg).ok()?;
    v.extend_from_slice(&tlv::encode(0x03, &[&[0u8][..], &bits].concat()).ok()?);
    tlv::encode(0x30, &v).ok()
}

fn strip_zeros(v: &[u8]) -> &[u8] {
    let skip = v.iter().take_while(|b| **b == 0).count();
    &v[skip.min(v.len().saturating_sub(1))..]
}

/// A DER INTEGER value for a big-endian unsigned number.
fn unsigned(v: &[u8]) -> Vec<u8> {
    let v = strip_zeros(v);
    if v.first().is_some_and(|b| b & 0x80 != 0) {
        [&[0u8][..], v].concat()
    } else {
        v.to_vec()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn spki_round_trip() {
        let key = PublicKey::Ec {
            curve: Curve::Secp256r1,
            point: [&[4u8][..], &[7u8; 64]].concat(),
        };
        let spki = encode_spki(&key).unwrap();
        assert_eq!(parse_spki(&spki), Some(key));
        let rsa = PublicKey::Rsa {
            n: vec![0xC3; 256],
            e: vec![1, 0, 1],
        };
        assert_eq!(parse_spki(&encode_spki(&rsa).unwrap()), Some(rsa));
    }
}
