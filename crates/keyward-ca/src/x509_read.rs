//! Reading X.509 certificates (RFC 5280) as relying parties do: the parts a signature check,
//! a chain check and a display need, parsed once; signatures checked for ECDSA (P-256, P-384,
//! P-521, brainpool) and RSA PKCS#1 v1.5 with SHA-256/384/512.

use keyward_apdu::tlv::Tlv;
use keyward_crypto::{Curve, HashAlg};

use crate::CaError;

/// A parsed DER certificate (borrowing its bytes).
#[derive(Debug, Clone)]
pub struct Certificate<'a> {
    pub der: &'a [u8],
    /// The signed part, `TBSCertificate`, as encoded.
    pub tbs: &'a [u8],
    /// The outer signature algorithm's OID (content bytes).
    pub signature_algorithm: &'a [u8],
    /// The signature value (the BIT STRING's content after its unused-bits byte).
    pub signature: &'a [u8],
    pub serial: &'a [u8],
    /// The issuer and subject Names, as encoded.
    pub issuer: &'a [u8],
    pub subject: &'a [u8],
    /// `SubjectPublicKeyInfo`, as encoded.
    pub spki: &'a [u8],
    /// Validity in seconds since the epoch.
    pub not_before: i64,
    pub not_after: i64,
}

fn bad() -> CaError {
    CaError::Malformed("certificate")
}

fn children<'a>(t: &Tlv<'a>) -> Result<Vec<Tlv<'a>>, CaError> {
    t.children().map(|c| c.map_err(|_| bad())).collect()
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as seconds since the epoch.
pub fn parse_time(tag: u32, value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?;
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| digits.get(r)?.parse::<i64>().ok();
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy = num(0..2)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        (0x18, 14) => (num(0..4)?, 4),
        _ => return None,
    };
    let (month, day) = (num(rest..rest + 2)?, num(rest + 2..rest + 4)?);
    let (h, m, s) = (
        num(rest + 4..rest + 6)?,
        num(rest + 6..rest + 8)?,
        num(rest + 8..rest + 10)?,
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days from the civil date (proleptic Gregorian calendar).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

impl<'a> Certificate<'a> {
    pub fn parse(der: &'a [u8]) -> Result<Self, CaError> {
        let outer = Tlv::parse_exact(der).map_err(|_| bad())?;
        let [tbs, alg, sig] = <[Tlv<'a>; 3]>::try_from(children(&outer)?).map_err(|_| bad())?;
        let alg_oid = children(&alg)?.into_iter().next().ok_or_else(bad)?;
        if alg_oid.tag.0 != 0x06 || sig.tag.0 != 0x03 || sig.value.first() != Some(&0) {
            return Err(bad());
        }
        let fields = children(&tbs)?;
        let off = usize::from(fields.first().is_some_and(|f| f.tag.0 == 0xA0));
        let field = |i: usize| fields.get(off + i).ok_or_else(bad);
        let validity = children(field(3)?)?;
        let [nb, na] = validity.as_slice() else {
            return Err(bad());
        };
        let time = |t: &Tlv<'_>| parse_time(t.tag.0, t.value).ok_or_else(bad);
        let serial = field(0)?;
        if serial.tag.0 != 0x02 {
            return Err(bad());
        }
        Ok(Self {
            der,
            tbs: tbs.raw,
            signature_algorithm: alg_oid.value,
            signature: sig.value.get(1..).ok_or_else(bad)?,
            serial: serial.value,
            issuer: field(2)?.raw,
            subject: field(4)?.raw,
            spki: field(5)?.raw,
            not_before: time(nb)?,
            not_after: time(na)?,
        })
    }

    /// Whether this certificate's signature verifies with `issuer`'s public key.
    pub fn signed_by(&self, issuer: &Certificate<'_>) -> Result<bool, CaError> {
        verify_signature(
            issuer.spki,
            self.signature_algorithm,
            self.tbs,
            self.signature,
        )
    }

    /// The subject as text, e.g. `CN=ZZKWD00001, O=Keyward`.
    pub fn subject_text(&self) -> String {
        name_text(self.subject)
    }

    pub fn issuer_text(&self) -> String {
        name_text(self.issuer)
    }
}

/// A Name as `ATTR=value, …` (C, O, OU, CN, serialNumber, L, ST by name; others by OID).
pub fn name_text(name: &[u8]) -> String {
    let Ok(seq) = Tlv::parse_exact(name) else {
        return String::from("?");
    };
    let mut parts = Vec::new();
    for rdn in seq.children().filter_map(Result::ok) {
        for atv in rdn.children().filter_map(Result::ok) {
            let kids: Vec<Tlv<'_>> = atv.children().filter_map(Result::ok).collect();
            let [oid, value] = kids.as_slice() else {
                continue;
            };
            let label = match oid.value {
                [0x55, 0x04, 0x06] => "C".to_string(),
                [0x55, 0x04, 0x0A] => "O".to_string(),
                [0x55, 0x04, 0x0B] => "OU".to_string(),
                [0x55, 0x04, 0x03] => "CN".to_string(),
                [0x55, 0x04, 0x05] => "serialNumber".to_string(),
                [0x55, 0x04, 0x07] => "L".to_string(),
                [0x55, 0x04, 0x08] => "ST".to_string(),
                other => format!("OID:{}", hex_of(other)),
            };
            parts.push(format!("{label}={}", String::from_utf8_lossy(value.value)));
        }
    }
    parts.join(", ")
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The public key in a `SubjectPublicKeyInfo`: an EC point with its curve, or an RSA key.
pub enum PublicKeyInfo<'a> {
    Ec {
        curve: Curve,
        point: &'a [u8],
    },
    Rsa {
        modulus: &'a [u8],
        exponent: &'a [u8],
    },
}

/// Parses a DER `SubjectPublicKeyInfo`.
pub fn public_key_info(spki: &[u8]) -> Result<PublicKeyInfo<'_>, CaError> {
    let spki = Tlv::parse_exact(spki).map_err(|_| bad())?;
    let [alg, bits] = <[Tlv<'_>; 2]>::try_from(children(&spki)?).map_err(|_| bad())?;
    let alg = children(&alg)?;
    let key = bits.value.get(1..).ok_or_else(bad)?;
    match alg.first().map(|o| o.value) {
        // id-ecPublicKey
        Some([0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]) => {
            let curve = alg
                .get(1)
                .and_then(|p| Curve::from_oid_der(p.raw))
                .ok_or_else(bad)?;
            Ok(PublicKeyInfo::Ec { curve, point: key })
        }
        // rsaEncryption
        Some([0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]) => {
            let rsa = Tlv::parse_exact(key).map_err(|_| bad())?;
            let [n, e] = <[Tlv<'_>; 2]>::try_from(children(&rsa)?).map_err(|_| bad())?;
            Ok(PublicKeyInfo::Rsa {
                modulus: n.value,
                exponent: e.value,
            })
        }
        _ => Err(CaError::Malformed("public key algorithm")),
    }
}

/// Whether `signature` over `data` verifies with the key in `spki` under the signature
/// algorithm `algorithm` (OID content bytes): ecdsa-with-SHA256/384/512 (DER `ECDSA-Sig-Value`)
/// or sha256/384/512WithRSAEncryption. An algorithm that does not fit the key is `false`.
pub fn verify_signature(
    spki: &[u8],
    algorithm: &[u8],
    data: &[u8],
    signature: &[u8],
) -> Result<bool, CaError> {
    const ECDSA: [u8; 7] = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03];
    const RSA: [u8; 8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01];
    let (family, last) = algorithm.split_at(algorithm.len().saturating_sub(1));
    let rsa_hash = |b: u8| match b {
        0x0B => Some(HashAlg::Sha256),
        0x0C => Some(HashAlg::Sha384),
        0x0D => Some(HashAlg::Sha512),
        _ => None,
    };
    let ec_hash = |b: u8| match b {
        0x02 => Some(HashAlg::Sha256),
        0x03 => Some(HashAlg::Sha384),
        0x04 => Some(HashAlg::Sha512),
        _ => None,
    };
    match (public_key_info(spki)?, last.first()) {
        (PublicKeyInfo::Ec { curve, point }, Some(&b)) if family == ECDSA => {
            let Some(hash) = ec_hash(b) else {
                return Ok(false);
            };
            let Ok(plain) = keyward_crypto::der_signature_to_plain(signature, curve.field_len())
            else {
                return Ok(false);
            };
            Ok(keyward_crypto::ecdsa_verify_prehash(
                curve,
                point,
                &hash.digest(data),
                &plain,
            ))
        }
        (PublicKeyInfo::Rsa { modulus, exponent }, Some(&b)) if family == RSA => {
            let Some(hash) = rsa_hash(b) else {
                return Ok(false);
            };
            let key = keyward_crypto::RsaPublicKey::new(modulus, exponent).map_err(|_| bad())?;
            Ok(key.verify(
                keyward_crypto::RsaScheme::Pkcs1(hash),
                &hash.digest(data),
                signature,
            ))
        }
        _ => Ok(false),
    }
}

/// Why a chain does not validate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainError {
    #[error("certificate {0} is malformed")]
    Malformed(usize),
    #[error("{0} is not valid at this time")]
    Expired(String),
    #[error("{0} is not signed by any trusted or given issuer")]
    Untrusted(String),
    #[error("{0} is revoked")]
    Revoked(String),
}

fn parse_all(list: &[Vec<u8>], base: usize) -> Result<Vec<Certificate<'_>>, ChainError> {
    list.iter()
        .enumerate()
        .map(|(i, d)| Certificate::parse(d).map_err(|_| ChainError::Malformed(base + i)))
        .collect()
}

/// Validates `leaf` by signatures and validity up to one of `roots` (DER), through any of
/// `intermediates`; `revoked` says whether an (issuer, serial) pair is revoked. Returns the
/// path's subjects, leaf first.
pub fn validate_chain(
    leaf: &[u8],
    intermediates: &[Vec<u8>],
    roots: &[Vec<u8>],
    now: i64,
    revoked: &dyn Fn(&Certificate<'_>) -> bool,
) -> Result<Vec<String>, ChainError> {
    let roots = parse_all(roots, 100)?;
    let inter = parse_all(intermediates, 1)?;
    let mut current = Certificate::parse(leaf).map_err(|_| ChainError::Malformed(0))?;
    let mut path = Vec::new();
    // Bounded: a path never needs more steps than there are certificates.
    for _ in 0..=inter.len() {
        let name = current.subject_text();
        if now < current.not_before || now > current.not_after {
            return Err(ChainError::Expired(name));
        }
        if revoked(&current) {
            return Err(ChainError::Revoked(name));
        }
        path.push(name.clone());
        let issued_by = |c: &&Certificate<'_>| {
            c.subject == current.issuer && current.signed_by(c).unwrap_or(false)
        };
        if let Some(root) = roots.iter().find(issued_by) {
            if now < root.not_before || now > root.not_after {
                return Err(ChainError::Expired(root.subject_text()));
            }
            path.push(root.subject_text());
            return Ok(path);
        }
        match inter.iter().find(issued_by) {
            Some(next) => current = next.clone(),
            None => return Err(ChainError::Untrusted(name)),
        }
    }
    Err(ChainError::Untrusted(current.subject_text()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(parse_time(0x18, b"20261125100000Z"), Some(1_795_600_800));
        assert_eq!(parse_time(0x17, b"491231235959Z"), Some(2_524_607_999));
        for bad in [&b"7001010000Z"[..], b"701301000000Z", b"70010100000aZ", b""] {
            assert_eq!(parse_time(0x17, bad), None);
        }
        assert_eq!(parse_time(0x18, b"700101000000Z"), None);
    }
}
