//! OCSP (RFC 6960): parsing requests and signing responses for the issuing CA's certificates.
//! The CA signs its responses itself (responder id by key hash) and includes its certificate.

use keyward_apdu::tlv::Tlv;
use keyward_crypto::HashAlg;

use crate::CaError;
use crate::der;
use crate::x509::{Reason, X509Ca};

const ID_PKIX_OCSP_BASIC: &str = "1.3.6.1.5.5.7.48.1.1";
const ID_PKIX_OCSP_NONCE: &str = "1.3.6.1.5.5.7.48.1.2";

/// One certificate asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertId {
    pub hash: HashAlg,
    pub issuer_name_hash: Vec<u8>,
    pub issuer_key_hash: Vec<u8>,
    /// The serial number's magnitude (no sign byte).
    pub serial: Vec<u8>,
    /// The CertID as received, echoed in the response.
    raw: Vec<u8>,
}

/// A parsed OCSP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub ids: Vec<CertId>,
    /// The nonce extension as received (echoed).
    nonce: Option<Vec<u8>>,
}

/// What the CA says about a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Good,
    Revoked { at: i64, reason: Reason },
    Unknown,
}

/// OCSPResponseStatus values for refusals.
pub mod refusal {
    pub const MALFORMED_REQUEST: u8 = 1;
    pub const INTERNAL_ERROR: u8 = 2;
}

fn malformed() -> CaError {
    CaError::Malformed("OCSP request")
}

fn hash_of(alg_oid: &[u8]) -> Option<HashAlg> {
    Some(match alg_oid {
        [0x2B, 0x0E, 0x03, 0x02, 0x1A] => HashAlg::Sha1,
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01] => HashAlg::Sha256,
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02] => HashAlg::Sha384,
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03] => HashAlg::Sha512,
        _ => return None,
    })
}

fn children<'a>(t: &Tlv<'a>) -> Result<Vec<Tlv<'a>>, CaError> {
    t.children().map(|c| c.map_err(|_| malformed())).collect()
}

impl Request {
    /// Parses a DER OCSPRequest. Signed requests are accepted (the signature is not needed).
    pub fn parse(der_bytes: &[u8]) -> Result<Self, CaError> {
        let outer = Tlv::parse_exact(der_bytes).map_err(|_| malformed())?;
        if outer.tag.0 != 0x30 {
            return Err(malformed());
        }
        let parts = children(&outer)?;
        let tbs = parts
            .first()
            .filter(|t| t.tag.0 == 0x30)
            .ok_or_else(malformed)?;
        let mut ids = Vec::new();
        let mut nonce = None;
        for field in children(tbs)? {
            match field.tag.0 {
                // version [0], requestorName [1]
                0xA0 | 0xA1 => {}
                0x30 => {
                    for req in children(&field)? {
                        let items = children(&req)?;
                        let cert_id = items
                            .first()
                            .filter(|t| t.tag.0 == 0x30)
                            .ok_or_else(malformed)?;
                        let f = children(cert_id)?;
                        let [alg, name_hash, key_hash, serial] = f.as_slice() else {
                            return Err(malformed());
                        };
                        let alg_oid = children(alg)?.into_iter().next().ok_or_else(malformed)?;
                        let Some(hash) = hash_of(alg_oid.value) else {
                            return Err(malformed());
                        };
                        if name_hash.tag.0 != 0x04 || key_hash.tag.0 != 0x04 || serial.tag.0 != 0x02
                        {
                            return Err(malformed());
                        }
                        let skip = serial.value.iter().take_while(|b| **b == 0).count();
                        ids.push(CertId {
                            hash,
                            issuer_name_hash: name_hash.value.to_vec(),
                            issuer_key_hash: key_hash.value.to_vec(),
                            serial: serial.value[skip..].to_vec(),
                            raw: cert_id.raw.to_vec(),
                        });
                    }
                }
                // requestExtensions [2]: keep the nonce.
                0xA2 => {
                    let exts = children(&field)?.into_iter().next().ok_or_else(malformed)?;
                    for ext in children(&exts)? {
                        let oid = children(&ext)?.into_iter().next().ok_or_else(malformed)?;
                        if oid.raw == der::oid(ID_PKIX_OCSP_NONCE) {
                            nonce = Some(ext.raw.to_vec());
                        }
                    }
                }
                _ => return Err(malformed()),
            }
        }
        if ids.is_empty() {
            return Err(malformed());
        }
        Ok(Self { ids, nonce })
    }
}

/// An unsuccessful OCSPResponse (no responseBytes).
pub fn refused(status: u8) -> Vec<u8> {
    der::seq(&[&der::tlv(0x0A, &[status])])
}

impl X509Ca {
    /// Whether `id` names a certificate of this CA (issuer name and key hashes match).
    pub fn issued(&self, id: &CertId) -> bool {
        id.hash.digest(self.subject()) == id.issuer_name_hash
            && id.hash.digest(&self.public_key_bits()) == id.issuer_key_hash
    }

    /// A signed, successful OCSPResponse with `status(id)` for every certificate asked about
    /// (`unknown` for other CAs' certificates), valid until `next_update`.
    pub fn ocsp_response(
        &mut self,
        req: &Request,
        status: impl Fn(&CertId) -> Status,
        now: i64,
        next_update: i64,
    ) -> Result<Vec<u8>, CaError> {
        let mut singles = Vec::new();
        for id in &req.ids {
            let st = if self.issued(id) {
                status(id)
            } else {
                Status::Unknown
            };
            let cert_status = match st {
                Status::Good => der::implicit(0, &[]),
                Status::Unknown => der::implicit(2, &[]),
                Status::Revoked { at, reason } => {
                    let mut info = der::generalized_time(at);
                    if reason != Reason::Unspecified {
                        info.extend(der::explicit(0, &der::tlv(0x0A, &[reason as u8])));
                    }
                    der::tlv(0xA1, &info)
                }
            };
            singles.extend(der::seq(&[
                &id.raw,
                &cert_status,
                &der::generalized_time(now),
                &der::explicit(0, &der::generalized_time(next_update)),
            ]));
        }
        let mut data = vec![
            der::tlv(0xA2, &der::octets(self.key_id())),
            der::generalized_time(now),
            der::tlv(0x30, &singles),
        ];
        if let Some(nonce) = &req.nonce {
            data.push(der::tlv(0xA1, &der::seq(&[nonce])));
        }
        let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let tbs = der::seq(&refs);
        let (alg, signature) = self.sign(&tbs)?;
        let certs = der::explicit(0, &der::seq(&[&self.certificate]));
        let basic = der::seq(&[&tbs, &alg, &der::bits(&signature), &certs]);
        let bytes = der::seq(&[&der::oid(ID_PKIX_OCSP_BASIC), &der::octets(&basic)]);
        Ok(der::seq(&[
            &der::tlv(0x0A, &[0]),
            &der::explicit(0, &bytes),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_bytes_parse_or_are_refused(b in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = Request::parse(&b);
        }
    }
}
