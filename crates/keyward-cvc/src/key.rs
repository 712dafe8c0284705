use keyward_apdu::tlv::{self, Tlv};

pub use keyward_crypto::EcDomain;

use crate::{CvcError, oid, tag};

/// The value of a `7F49` key-generation template (GENERATE ASYMMETRIC KEY PAIR): the algorithm
/// and the explicit domain parameters, without a public point.
pub fn ec_key_template(domain: &EcDomain, algorithm: &[u8]) -> Result<Vec<u8>, CvcError> {
    let mut v = Vec::new();
    tlv::write(&mut v, tag::OID, algorithm)?;
    for (t, value) in [
        (0x81, &domain.p),
        (0x82, &domain.a),
        (0x83, &domain.b),
        (0x84, &domain.g),
        (0x85, &domain.n),
        (0x87, &domain.h),
    ] {
        tlv::write(&mut v, t, value)?;
    }
    Ok(v)
}

/// The public key of a CV certificate or request (`7F49`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    Ec {
        /// id-TA-ECDSA-* algorithm OID.
        algorithm: Vec<u8>,
        /// Present in roots and requests; inherited from the issuer otherwise.
        domain: Option<EcDomain>,
        /// Uncompressed public point `04‖X‖Y`.
        point: Vec<u8>,
    },
    Rsa {
        /// id-TA-RSA-* algorithm OID.
        algorithm: Vec<u8>,
        modulus: Vec<u8>,
        exponent: Vec<u8>,
    },
}

impl PublicKey {
    /// Parses the value of a `7F49` object.
    pub fn parse(value: &[u8]) -> Result<Self, CvcError> {
        let mut fields: [Option<&[u8]>; 8] = [None; 8];
        let mut algorithm = None;
        for item in tlv::TlvIter::new(value) {
            let item: Tlv<'_> = item?;
            match item.tag.0 {
                tag::OID if algorithm.is_none() => algorithm = Some(item.value),
                t @ 0x81..=0x87 => {
                    let slot = &mut fields[(t - 0x80) as usize];
                    if slot.is_some() {
                        return Err(CvcError::Malformed(tag::PUBLIC_KEY));
                    }
                    *slot = Some(item.value);
                }
                _ => return Err(CvcError::Malformed(tag::PUBLIC_KEY)),
            }
        }
        let algorithm = algorithm.ok_or(CvcError::Missing(tag::OID))?.to_vec();
        let get = |t: usize| {
            fields[t]
                .ok_or(CvcError::Missing(0x80 + t as u32))
                .map(<[u8]>::to_vec)
        };
        if oid::is_rsa(&algorithm) {
            if fields[3..].iter().any(Option::is_some) {
                return Err(CvcError::Malformed(tag::PUBLIC_KEY));
            }
            return Ok(Self::Rsa {
                algorithm,
                modulus: get(1)?,
                exponent: get(2)?,
            });
        }
        if !oid::is_ecdsa(&algorithm) {
            return Err(CvcError::UnknownAlgorithm);
        }
        let point = get(6)?;
        let domain_tags = [1, 2, 3, 4, 5, 7];
        let domain = if domain_tags.iter().all(|t| fields[*t].is_none()) {
            None
        } else {
            Some(EcDomain {
                p: get(1)?,
                a: get(2)?,
                b: get(3)?,
                g: get(4)?,
                n: get(5)?,
                h: get(7)?,
            })
        };
        Ok(Self::Ec {
            algorithm,
            domain,
            point,
        })
    }

    /// Encodes the complete `7F49` object.
    pub fn encode(&self) -> Result<Vec<u8>, CvcError> {
        let mut out = Vec::new();
        tlv::write_nested(&mut out, tag::PUBLIC_KEY, |v| {
            match self {
                Self::Ec {
                    algorithm,
                    domain,
                    point,
                } => {
                    tlv::write(v, tag::OID, algorithm)?;
                    if let Some(d) = domain {
                        tlv::write(v, 0x81, &d.p)?;
                        tlv::write(v, 0x82, &d.a)?;
                        tlv::write(v, 0x83, &d.b)?;
                        tlv::write(v, 0x84, &d.g)?;
                        tlv::write(v, 0x85, &d.n)?;
                        tlv::write(v, 0x86, point)?;
                        tlv::write(v, 0x87, &d.h)?;
                    } else {
                        tlv::write(v, 0x86, point)?;
                    }
                }
                Self::Rsa {
                    algorithm,
                    modulus,
                    exponent,
                } => {
                    tlv::write(v, tag::OID, algorithm)?;
                    tlv::write(v, 0x81, modulus)?;
                    tlv::write(v, 0x82, exponent)?;
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    pub fn algorithm(&self) -> &[u8] {
        match self {
            Self::Ec { algorithm, .. } | Self::Rsa { algorithm, .. } => algorithm,
        }
    }
}
