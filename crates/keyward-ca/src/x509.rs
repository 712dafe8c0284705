//! The X.509 issuing CA: RFC 5280 certificates for keys born in secure elements, signed by an
//! ECDSA CA key (in memory from an encrypted file, in a PKCS#11 token or in an element), with
//! random 128-bit serials and an extension binding each certificate to its key attestation.

use keyward_apdu::tlv::Tlv;
use keyward_crypto::{Curve, HashAlg};

use crate::der;
use crate::{CaError, CaKey};

/// The attestation-binding extension: `SEQUENCE { deviceId UTF8String, requestHash OCTET
/// STRING }` — the device id (CHR of the device certificate) and SHA-256 of the authenticated
/// CV request by which the element attested the key. Under the UUID arc 2.25 (X.667), so it
/// needs no registration.
pub const ATTESTATION_OID: &str = "2.25.329800735698586629295641978511506172918";

pub mod eku {
    pub const SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
    pub const CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";
    pub const EMAIL_PROTECTION: &str = "1.3.6.1.5.5.7.3.4";
}

/// Key usage bits (RFC 5280 §4.2.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUsage {
    DigitalSignature = 0,
    NonRepudiation = 1,
    KeyEncipherment = 2,
    DataEncipherment = 3,
    KeyAgreement = 4,
    KeyCertSign = 5,
    CrlSign = 6,
}

/// A distinguished name, attributes in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Name(pub Vec<(NameAttr, String)>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameAttr {
    Country,
    Organization,
    OrganizationalUnit,
    CommonName,
    SerialNumber,
}

impl Name {
    pub fn common_name(cn: &str) -> Self {
        Self(vec![(NameAttr::CommonName, cn.to_string())])
    }

    pub fn with(mut self, attr: NameAttr, value: &str) -> Self {
        self.0.push((attr, value.to_string()));
        self
    }

    pub fn encode(&self) -> Vec<u8> {
        let rdns: Vec<Vec<u8>> = self
            .0
            .iter()
            .map(|(a, v)| {
                let (oid, value) = match a {
                    // Country and serial number are PrintableString (RFC 5280 Appendix A).
                    NameAttr::Country => ("2.5.4.6", der::printable(v)),
                    NameAttr::SerialNumber => ("2.5.4.5", der::printable(v)),
                    NameAttr::Organization => ("2.5.4.10", der::utf8(v)),
                    NameAttr::OrganizationalUnit => ("2.5.4.11", der::utf8(v)),
                    NameAttr::CommonName => ("2.5.4.3", der::utf8(v)),
                };
                der::set(&[&der::seq(&[&der::oid(oid), &value])])
            })
            .collect();
        let parts: Vec<&[u8]> = rdns.iter().map(Vec::as_slice).collect();
        der::seq(&parts)
    }
}

/// A subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AltName {
    Dns(String),
    Uri(String),
    Email(String),
}

/// The public key a certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectKey {
    Ec { curve: Curve, point: Vec<u8> },
    Rsa { modulus: Vec<u8>, exponent: Vec<u8> },
}

impl SubjectKey {
    /// The subjectPublicKey BIT STRING's content (EC point, or DER RSAPublicKey).
    pub fn subject_public_key(&self) -> Vec<u8> {
        match self {
            Self::Ec { point, .. } => point.clone(),
            Self::Rsa { modulus, exponent } => {
                der::seq(&[&der::uint(modulus), &der::uint(exponent)])
            }
        }
    }

    /// SubjectPublicKeyInfo.
    pub fn spki(&self) -> Vec<u8> {
        let alg = match self {
            Self::Ec { curve, .. } => der::seq(&[&der::oid("1.2.840.10045.2.1"), curve.oid_der()]),
            Self::Rsa { .. } => der::seq(&[&der::oid("1.2.840.113549.1.1.1"), &der::null()]),
        };
        der::seq(&[&alg, &der::bits(&self.subject_public_key())])
    }

    /// The key identifier: SHA-1 of the subjectPublicKey bits (RFC 5280 §4.2.1.2, method 1).
    pub fn key_identifier(&self) -> Vec<u8> {
        HashAlg::Sha1.digest(&self.subject_public_key())
    }
}

/// What to certify.
#[derive(Debug, Clone)]
pub struct Template {
    pub subject: Name,
    pub not_before: i64,
    pub not_after: i64,
    pub key_usage: Vec<KeyUsage>,
    pub extended_key_usage: Vec<&'static str>,
    pub alt_names: Vec<AltName>,
    /// `Some(path length)` for a CA certificate.
    pub ca: Option<Option<u32>>,
    pub crl_url: Option<String>,
    /// The OCSP responder (Authority Information Access).
    pub ocsp_url: Option<String>,
    /// Device id and SHA-256 of the authenticated request (the key's attestation).
    pub attestation: Option<(String, Vec<u8>)>,
}

impl Template {
    /// An end-entity certificate for `subject` valid in the given time: digital signatures, no
    /// extended key usage, no alternative names (set the fields for more).
    pub fn end_entity(subject: Name, not_before: i64, not_after: i64) -> Self {
        Self {
            subject,
            not_before,
            not_after,
            key_usage: vec![KeyUsage::DigitalSignature],
            extended_key_usage: Vec::new(),
            alt_names: Vec::new(),
            ca: None,
            crl_url: None,
            ocsp_url: None,
            attestation: None,
        }
    }
}

/// An issued certificate.
#[derive(Debug, Clone)]
pub struct Issued {
    pub der: Vec<u8>,
    /// The serial number's magnitude (16 bytes).
    pub serial: Vec<u8>,
}

/// CRL reason codes (RFC 5280 §5.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Unspecified = 0,
    KeyCompromise = 1,
    CaCompromise = 2,
    AffiliationChanged = 3,
    Superseded = 4,
    CessationOfOperation = 5,
    CertificateHold = 6,
    PrivilegeWithdrawn = 9,
}

impl Reason {
    /// From RFC 5280's name (`keyCompromise`, …); anything else is `unspecified`.
    pub fn from_name(name: &str) -> Self {
        match name {
            "keyCompromise" => Self::KeyCompromise,
            "cACompromise" => Self::CaCompromise,
            "affiliationChanged" => Self::AffiliationChanged,
            "superseded" => Self::Superseded,
            "cessationOfOperation" => Self::CessationOfOperation,
            "certificateHold" => Self::CertificateHold,
            "privilegeWithdrawn" => Self::PrivilegeWithdrawn,
            _ => Self::Unspecified,
        }
    }
}

/// A revoked certificate on a CRL.
#[derive(Debug, Clone)]
pub struct RevokedEntry {
    pub serial: Vec<u8>,
    pub revoked_at: i64,
    pub reason: Reason,
}

/// A key an X.509 CA signs with: ECDSA (any [`CaKey`]) or RSA.
pub trait X509Key: Send {
    /// The public key.
    fn subject_key(&self) -> SubjectKey;
    /// The signature's AlgorithmIdentifier (DER).
    fn signature_algorithm(&self) -> Result<Vec<u8>, CaError>;
    /// The signature value over `data` (DER `ECDSA-Sig-Value`, or the RSA signature).
    fn sign_x509(&mut self, data: &[u8]) -> Result<Vec<u8>, CaError>;
}

impl<K: CaKey + Send> X509Key for K {
    fn subject_key(&self) -> SubjectKey {
        SubjectKey::Ec {
            curve: self.curve(),
            point: self.point().to_vec(),
        }
    }

    fn signature_algorithm(&self) -> Result<Vec<u8>, CaError> {
        let (alg, _) = sig_alg(self.curve())?;
        Ok(der::seq(&[&der::oid(alg)]))
    }

    fn sign_x509(&mut self, data: &[u8]) -> Result<Vec<u8>, CaError> {
        let (_, hash) = sig_alg(self.curve())?;
        let plain = self.sign_digest(&hash.digest(data))?;
        let (r, s) = plain.split_at(plain.len() / 2);
        Ok(der::seq(&[&der::uint(r), &der::uint(s)]))
    }
}

/// `sha256WithRSAEncryption` with its NULL parameters.
pub fn rsa_sha256_algorithm() -> Vec<u8> {
    der::seq(&[&der::oid("1.2.840.113549.1.1.11"), &der::null()])
}

/// An RSA CA key in this process's memory (kept sealed at rest), PKCS#1 v1.5 with SHA-256.
pub struct RsaSoftwareKey(pub keyward_crypto::RsaKey);

impl X509Key for RsaSoftwareKey {
    fn subject_key(&self) -> SubjectKey {
        SubjectKey::Rsa {
            modulus: self.0.modulus(),
            exponent: self.0.exponent(),
        }
    }

    fn signature_algorithm(&self) -> Result<Vec<u8>, CaError> {
        Ok(rsa_sha256_algorithm())
    }

    fn sign_x509(&mut self, data: &[u8]) -> Result<Vec<u8>, CaError> {
        Ok(self
            .0
            .sign_pkcs1(HashAlg::Sha256, &HashAlg::Sha256.digest(data))?)
    }
}

/// An X.509 CA: its key, its certificate, the parts of it certificates refer to.
pub struct X509Ca {
    key: Box<dyn X509Key>,
    pub certificate: Vec<u8>,
    subject: Vec<u8>,
    key_id: Vec<u8>,
}

fn sig_alg(curve: Curve) -> Result<(&'static str, HashAlg), CaError> {
    match curve {
        Curve::Secp256r1 | Curve::BrainpoolP256r1 => Ok(("1.2.840.10045.4.3.2", HashAlg::Sha256)),
        Curve::Secp384r1 | Curve::BrainpoolP384r1 => Ok(("1.2.840.10045.4.3.3", HashAlg::Sha384)),
        Curve::Secp521r1 => Ok(("1.2.840.10045.4.3.4", HashAlg::Sha512)),
        Curve::Secp256k1 => Err(CaError::UnsupportedKey(0)),
    }
}

/// A random, positive 128-bit serial number.
fn serial() -> Result<Vec<u8>, CaError> {
    let mut s = keyward_crypto::random(16)?.to_vec();
    // Top bit clear (positive), next bit set (always 16 bytes long).
    s[0] = (s[0] & 0x7F) | 0x40;
    Ok(s)
}

fn extension(oid: &str, critical: bool, value: &[u8]) -> Vec<u8> {
    if critical {
        der::seq(&[&der::oid(oid), &der::boolean(true), &der::octets(value)])
    } else {
        der::seq(&[&der::oid(oid), &der::octets(value)])
    }
}

/// The subject Name and SPKI of a DER certificate.
fn subject_and_spki(cert: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let outer = Tlv::parse_exact(cert).ok()?;
    let tbs = outer.children().next()?.ok()?;
    let fields: Vec<Tlv<'_>> = tbs.children().filter_map(Result::ok).collect();
    // [0] version, serial, signature, issuer, validity, subject, spki
    let off = usize::from(fields.first()?.tag.0 == 0xA0);
    Some((
        fields.get(off + 4)?.raw.to_vec(),
        fields.get(off + 5)?.raw.to_vec(),
    ))
}

/// Whether the DER certificate `cert` carries a valid signature by the key of the DER
/// certificate `issuer`.
pub fn verify_issued(cert: &[u8], issuer: &[u8]) -> Result<bool, CaError> {
    let cert = crate::x509_read::Certificate::parse(cert)?;
    let issuer = crate::x509_read::Certificate::parse(issuer)?;
    cert.signed_by(&issuer)
}

impl X509Ca {
    /// A CA with its existing certificate (which must be for this key).
    pub fn new(key: Box<dyn X509Key>, certificate: Vec<u8>) -> Result<Self, CaError> {
        let (subject, spki) = subject_and_spki(&certificate).ok_or(CaError::CertificateMismatch)?;
        let own = key.subject_key();
        if spki != own.spki() {
            return Err(CaError::CertificateMismatch);
        }
        Ok(Self {
            key,
            certificate,
            subject,
            key_id: own.key_identifier(),
        })
    }

    /// A self-signed root CA certificate for `key`.
    pub fn self_signed(
        key: Box<dyn X509Key>,
        subject: &Name,
        not_before: i64,
        not_after: i64,
    ) -> Result<Self, CaError> {
        let own = key.subject_key();
        let mut ca = Self {
            key,
            certificate: Vec::new(),
            subject: subject.encode(),
            key_id: own.key_identifier(),
        };
        let template = Template {
            subject: subject.clone(),
            not_before,
            not_after,
            key_usage: vec![KeyUsage::KeyCertSign, KeyUsage::CrlSign],
            extended_key_usage: Vec::new(),
            alt_names: Vec::new(),
            ca: Some(None),
            crl_url: None,
            ocsp_url: None,
            attestation: None,
        };
        ca.certificate = ca.issue(&template, &own)?.der;
        Ok(ca)
    }

    /// A root (self-signed, 20 years) and an issuing CA under it (path length 0, 10 years) from
    /// two keys; returns the issuing CA and the root's certificate.
    pub fn root_and_issuing(
        root_key: Box<dyn X509Key>,
        issuing_key: Box<dyn X509Key>,
        root_name: &Name,
        issuing_name: &Name,
        start: i64,
    ) -> Result<(Self, Vec<u8>), CaError> {
        let issuing_subject = issuing_key.subject_key();
        let mut root = Self::self_signed(root_key, root_name, start, start + 20 * 365 * 86_400)?;
        let issuing = root.issue(
            &Template {
                subject: issuing_name.clone(),
                not_before: start,
                not_after: start + 10 * 365 * 86_400,
                key_usage: vec![KeyUsage::KeyCertSign, KeyUsage::CrlSign],
                extended_key_usage: Vec::new(),
                alt_names: Vec::new(),
                ca: Some(Some(0)),
                crl_url: None,
                ocsp_url: None,
                attestation: None,
            },
            &issuing_subject,
        )?;
        Ok((Self::new(issuing_key, issuing.der)?, root.certificate))
    }

    /// The CA's subject Name (DER), the issuer of what it signs.
    pub fn subject(&self) -> &[u8] {
        &self.subject
    }

    /// The CA's public key as it appears in its certificate's BIT STRING.
    pub fn public_key_bits(&self) -> Vec<u8> {
        self.key.subject_key().subject_public_key()
    }

    /// SHA-1 of the CA's public key (its key identifier, and its OCSP responder id).
    pub fn key_id(&self) -> &[u8] {
        &self.key_id
    }

    /// Signs `data` as this CA: AlgorithmIdentifier and the DER signature value.
    pub fn sign(&mut self, data: &[u8]) -> Result<(Vec<u8>, Vec<u8>), CaError> {
        Ok((self.key.signature_algorithm()?, self.key.sign_x509(data)?))
    }

    /// Issues a certificate for `key` per `t`.
    pub fn issue(&mut self, t: &Template, key: &SubjectKey) -> Result<Issued, CaError> {
        let serial = serial()?;
        let alg = self.key.signature_algorithm()?;
        let mut exts: Vec<Vec<u8>> = Vec::new();
        if let Some(path) = t.ca {
            let mut bc = der::boolean(true);
            if let Some(n) = path {
                bc.extend(der::small_int(n));
            }
            exts.push(extension("2.5.29.19", true, &der::seq(&[&bc])));
        }
        if !t.key_usage.is_empty() {
            let bits: Vec<u8> = t.key_usage.iter().map(|k| *k as u8).collect();
            exts.push(extension("2.5.29.15", true, &der::named_bits(&bits)));
        }
        if !t.extended_key_usage.is_empty() {
            let oids: Vec<Vec<u8>> = t.extended_key_usage.iter().map(|o| der::oid(o)).collect();
            let parts: Vec<&[u8]> = oids.iter().map(Vec::as_slice).collect();
            exts.push(extension("2.5.29.37", false, &der::seq(&parts)));
        }
        exts.push(extension(
            "2.5.29.14",
            false,
            &der::octets(&key.key_identifier()),
        ));
        let self_signed = t.subject.encode() == self.subject && key.key_identifier() == self.key_id;
        if !self_signed {
            exts.push(extension(
                "2.5.29.35",
                false,
                &der::seq(&[&der::implicit(0, &self.key_id)]),
            ));
        }
        if !t.alt_names.is_empty() {
            let names: Vec<Vec<u8>> = t
                .alt_names
                .iter()
                .map(|n| match n {
                    AltName::Email(v) => der::implicit(1, v.as_bytes()),
                    AltName::Dns(v) => der::implicit(2, v.as_bytes()),
                    AltName::Uri(v) => der::implicit(6, v.as_bytes()),
                })
                .collect();
            let parts: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
            // An empty subject makes the SAN critical (RFC 5280 §4.2.1.6).
            exts.push(extension(
                "2.5.29.17",
                t.subject.0.is_empty(),
                &der::seq(&parts),
            ));
        }
        if let Some(url) = &t.crl_url {
            // DistributionPoint { distributionPoint [0] { fullName [0] { URI } } }
            let uri = der::implicit(6, url.as_bytes());
            let full_name = der::tlv(0xA0, &uri);
            let dp_name = der::tlv(0xA0, &full_name);
            exts.push(extension(
                "2.5.29.31",
                false,
                &der::seq(&[&der::seq(&[&dp_name])]),
            ));
        }
        if let Some(url) = &t.ocsp_url {
            // AccessDescription { id-ad-ocsp, uniformResourceIdentifier }
            let ad = der::seq(&[
                &der::oid("1.3.6.1.5.5.7.48.1"),
                &der::implicit(6, url.as_bytes()),
            ]);
            exts.push(extension("1.3.6.1.5.5.7.1.1", false, &der::seq(&[&ad])));
        }
        if let Some((device, hash)) = &t.attestation {
            exts.push(extension(
                ATTESTATION_OID,
                false,
                &der::seq(&[&der::utf8(device), &der::octets(hash)]),
            ));
        }
        let ext_parts: Vec<&[u8]> = exts.iter().map(Vec::as_slice).collect();
        let tbs = der::seq(&[
            &der::explicit(0, &der::small_int(2)),
            &der::uint(&serial),
            &alg,
            &self.subject,
            &der::seq(&[&der::time(t.not_before), &der::time(t.not_after)]),
            &t.subject.encode(),
            &key.spki(),
            &der::explicit(3, &der::seq(&ext_parts)),
        ]);
        let (alg, signature) = self.sign(&tbs)?;
        Ok(Issued {
            der: der::seq(&[&tbs, &alg, &der::bits(&signature)]),
            serial,
        })
    }

    /// A CRL (RFC 5280 §5, v2) of `revoked`, with a CRL number and the authority key id.
    pub fn crl(
        &mut self,
        revoked: &[RevokedEntry],
        this_update: i64,
        next_update: i64,
        number: u64,
    ) -> Result<Vec<u8>, CaError> {
        let alg = self.key.signature_algorithm()?;
        let mut entries = Vec::new();
        for r in revoked {
            let mut entry = der::uint(&r.serial);
            entry.extend(der::time(r.revoked_at));
            if r.reason != Reason::Unspecified {
                let code = der::tlv(0x0A, &[r.reason as u8]);
                entry.extend(der::seq(&[&extension("2.5.29.21", false, &code)]));
            }
            entries.extend(der::tlv(0x30, &entry));
        }
        let exts = der::seq(&[
            &extension(
                "2.5.29.35",
                false,
                &der::seq(&[&der::implicit(0, &self.key_id)]),
            ),
            &extension("2.5.29.20", false, &der::uint(&number.to_be_bytes())),
        ]);
        let mut parts: Vec<Vec<u8>> = vec![
            der::small_int(1),
            alg.clone(),
            self.subject.clone(),
            der::time(this_update),
            der::time(next_update),
        ];
        if !revoked.is_empty() {
            parts.push(der::tlv(0x30, &entries));
        }
        parts.push(der::explicit(0, &exts));
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let tbs = der::seq(&refs);
        let (alg, signature) = self.sign(&tbs)?;
        Ok(der::seq(&[&tbs, &alg, &der::bits(&signature)]))
    }
}
