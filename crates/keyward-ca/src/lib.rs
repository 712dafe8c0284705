//! Card-verifiable-certificate CAs: a root (SRCA-like, self-signed, role `C0`) and Device Issuer
//! CAs (role `80`) that certify device keys (role `00`). A CA's private key never leaves a secure
//! element — a SmartCard-HSM (or this project's virtual one) reached through any card transport —
//! as CardContact runs its own CAs; signatures are made with SIGN `73` (ECDSA-SHA-256) there.
#![forbid(unsafe_code)]

pub mod batch;
pub mod ca_set;
pub mod der;
pub mod encrypted_key;
pub mod ocsp;
pub mod pem;
pub mod pin_envelope;
pub mod pkcs11_key;
pub mod pkcs11_uri;
pub mod production;
pub mod provisioning;
pub mod x509;
pub mod x509_read;

use keyward_card::{CardChannel, Hsm, HsmError, KeyOptions, KeySpec};
use keyward_crypto::Curve;
use keyward_cvc::{AuthenticatedRequest, Body, Certificate, Chat, CvDate, PublicKey, oid};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    #[error("CA key: {0}")]
    Element(#[from] HsmError),
    #[error("CA key {0} has no public key on the element (no request in CE{0:02X})")]
    NoPublicKey(u8),
    #[error("CA key {0} is not an EC key on a supported curve")]
    UnsupportedKey(u8),
    #[error(transparent)]
    Cvc(#[from] keyward_cvc::CvcError),
    #[error("signature from the element: {0}")]
    Signature(#[from] keyward_crypto::CryptoError),
    #[error("invalid holder reference {0:?}: {1}")]
    Chr(String, &'static str),
    #[error("the CA certificate is not for this key")]
    CertificateMismatch,
    #[error("CA key in a PKCS#11 token: {0}")]
    Token(String),
    #[error("not a well-formed {0}")]
    Malformed(&'static str),
}

/// A CA's signing key: ECDSA with SHA-256, signatures in TR-03111 plain form.
pub trait CaKey {
    fn curve(&self) -> Curve;
    /// The uncompressed public point.
    fn point(&self) -> &[u8];
    /// Signs a message digest (ECDSA); returns `r‖s`.
    fn sign_digest(&mut self, digest: &[u8]) -> Result<Vec<u8>, CaError>;

    /// Signs SHA-256 of `data`; returns `r‖s`.
    fn sign(&mut self, data: &[u8]) -> Result<Vec<u8>, CaError> {
        self.sign_digest(&keyward_crypto::HashAlg::Sha256.digest(data))
    }

    /// The public key as it appears in a certificate (`with_domain` for self-signed roots).
    fn public_key(&self, with_domain: bool) -> PublicKey {
        PublicKey::Ec {
            algorithm: oid::TA_ECDSA_SHA256.to_vec(),
            domain: with_domain.then(|| self.curve().domain()),
            point: self.point().to_vec(),
        }
    }
}

impl<K: CaKey + ?Sized> CaKey for Box<K> {
    fn curve(&self) -> Curve {
        (**self).curve()
    }

    fn point(&self) -> &[u8] {
        (**self).point()
    }

    fn sign_digest(&mut self, digest: &[u8]) -> Result<Vec<u8>, CaError> {
        (**self).sign_digest(digest)
    }
}

/// A CA key held in this process's memory (loaded from an encrypted key file).
pub struct SoftwareKey {
    key: keyward_crypto::PrivateKey,
    curve: Curve,
    point: Vec<u8>,
}

impl SoftwareKey {
    pub fn new(key: keyward_crypto::EcKey) -> Self {
        let (curve, point) = (key.curve(), key.public_point().to_vec());
        Self {
            key: keyward_crypto::PrivateKey::Ec(key),
            curve,
            point,
        }
    }
}

impl CaKey for SoftwareKey {
    fn curve(&self) -> Curve {
        self.curve
    }

    fn point(&self) -> &[u8] {
        &self.point
    }

    fn sign_digest(&mut self, digest: &[u8]) -> Result<Vec<u8>, CaError> {
        match &self.key {
            keyward_crypto::PrivateKey::Ec(k) => Ok(k.sign_prehash_plain(digest)?),
            _ => Err(CaError::UnsupportedKey(0)),
        }
    }
}

/// Roles in the certificate holder authorization (SmartCard-HSM CHAT).
pub mod role {
    pub const ROOT: u8 = 0xC0;
    pub const DEVICE_ISSUER: u8 = 0x80;
    pub const DEVICE: u8 = 0x00;
}

/// A device id (CHR): 2-letter country code, a mnemonic of 1–9 upper-case letters or digits,
/// and a 5-digit sequence number, e.g. `DEKWD00042`.
pub fn device_chr(country: &str, mnemonic: &str, sequence: u32) -> Result<String, CaError> {
    let chr = format!("{country}{mnemonic}{sequence:05}");
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(CaError::Chr(
            chr,
            "country code must be 2 upper-case letters",
        ));
    }
    if mnemonic.is_empty()
        || mnemonic.len() > 9
        || !mnemonic
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err(CaError::Chr(
            chr,
            "mnemonic must be 1-9 upper-case letters or digits",
        ));
    }
    if sequence > 99_999 {
        return Err(CaError::Chr(
            chr,
            "sequence number must have at most 5 digits",
        ));
    }
    Ok(chr)
}

/// A CA key in a secure element: key `kid` behind `C`, with the user PIN verified.
pub struct ElementKey<C: CardChannel> {
    hsm: Hsm<C>,
    kid: u8,
    curve: Curve,
    point: Vec<u8>,
}

impl<C: CardChannel> ElementKey<C> {
    /// Generates a new CA key (brainpoolP256r1 unless given) in the first free key slot.
    pub fn generate(channel: C, pin: &[u8], curve: Curve, label: &str) -> Result<Self, CaError> {
        let mut hsm = Hsm::new(channel);
        hsm.select()?;
        hsm.verify_pin(pin)?;
        let kid = hsm.free_key_id()?;
        let key = hsm.generate_key(
            kid,
            KeySpec::Ec(curve),
            &KeyOptions {
                label,
                id: None,
                // Signing only (ECDSA on a digest, ECDSA-SHA-256): a CA key is never exported
                // nor used for ECDH.
                algorithms: Some(&[0x70, 0x73]),
                domain: None,
            },
        )?;
        let request = key.attestation.ok_or(CaError::NoPublicKey(kid))?;
        Self::from_request(hsm, kid, &request)
    }

    /// Opens the existing CA key `kid`.
    pub fn open(channel: C, pin: &[u8], kid: u8) -> Result<Self, CaError> {
        let mut hsm = Hsm::new(channel);
        hsm.select()?;
        hsm.verify_pin(pin)?;
        let raw = hsm
            .read_file(u16::from_be_bytes([0xCE, kid]))
            .map_err(|_| CaError::NoPublicKey(kid))?;
        let request = AuthenticatedRequest::parse(&raw).map_err(|_| CaError::NoPublicKey(kid))?;
        Self::from_request(hsm, kid, &request)
    }

    fn from_request(hsm: Hsm<C>, kid: u8, request: &AuthenticatedRequest) -> Result<Self, CaError> {
        match &request.request.body.public_key {
            PublicKey::Ec {
                domain: Some(d),
                point,
                ..
            } => Ok(Self {
                hsm,
                kid,
                curve: Curve::from_domain(d).ok_or(CaError::UnsupportedKey(kid))?,
                point: point.clone(),
            }),
            _ => Err(CaError::UnsupportedKey(kid)),
        }
    }

    pub fn kid(&self) -> u8 {
        self.kid
    }

    /// Gives the card channel back (ending the use of the key).
    pub fn into_channel(self) -> C {
        self.hsm.into_channel()
    }
}

impl<C: CardChannel> CaKey for ElementKey<C> {
    fn curve(&self) -> Curve {
        self.curve
    }

    fn point(&self) -> &[u8] {
        &self.point
    }

    /// ECDSA over a digest computed here (SIGN `70`), plain `r‖s`.
    fn sign_digest(&mut self, digest: &[u8]) -> Result<Vec<u8>, CaError> {
        let der = self.hsm.sign(self.kid, 0x70, digest)?;
        Ok(keyward_crypto::der_signature_to_plain(
            &der,
            self.curve.field_len(),
        )?)
    }

    /// TR-03111 signature (plain `r‖s`) over SHA-256 of `data`, hashed by the element (SIGN `73`).
    fn sign(&mut self, data: &[u8]) -> Result<Vec<u8>, CaError> {
        let der = self.hsm.sign(self.kid, 0x73, data)?;
        Ok(keyward_crypto::der_signature_to_plain(
            &der,
            self.curve.field_len(),
        )?)
    }
}

/// A CV certificate authority: its key and its own certificate.
pub struct CvcCa<K: CaKey> {
    key: K,
    pub certificate: Certificate,
}

impl<K: CaKey> CvcCa<K> {
    /// A CA with its certificate (which must be for this key).
    pub fn new(key: K, certificate: Certificate) -> Result<Self, CaError> {
        if certificate.body.public_key != key.public_key(true)
            && certificate.body.public_key != key.public_key(false)
        {
            return Err(CaError::CertificateMismatch);
        }
        Ok(Self { key, certificate })
    }

    /// The CA's key, e.g. to close its element.
    pub fn into_key(self) -> K {
        self.key
    }

    /// A self-signed root (role `C0`, domain parameters included) valid from `from` for `days`.
    pub fn root(mut key: K, chr: &str, from: CvDate, days: u32) -> Result<Self, CaError> {
        let body = Body {
            cpi: 0,
            car: Some(chr.as_bytes().to_vec()),
            public_key: key.public_key(true),
            chr: chr.as_bytes().to_vec(),
            chat: chat(role::ROOT),
            effective: Some(from),
            expiration: Some(from.add_days(days)),
            extensions: None,
        };
        let sig = key.sign(&body.encode()?)?;
        let certificate = Certificate::assemble(body, sig)?;
        Ok(Self { key, certificate })
    }

    /// Certifies an EC public key on this CA's curve (domain parameters inherited) as `chr` with
    /// `role`, valid from `from` for `days`.
    pub fn certify(
        &mut self,
        point: &[u8],
        chr: &str,
        role: u8,
        from: CvDate,
        days: u32,
    ) -> Result<Certificate, CaError> {
        let body = Body {
            cpi: 0,
            car: Some(self.certificate.body.chr.clone()),
            public_key: PublicKey::Ec {
                algorithm: oid::TA_ECDSA_SHA256.to_vec(),
                domain: None,
                point: point.to_vec(),
            },
            chr: chr.as_bytes().to_vec(),
            chat: chat(role),
            effective: Some(from),
            expiration: Some(from.add_days(days)),
            extensions: None,
        };
        let sig = self.key.sign(&body.encode()?)?;
        Ok(Certificate::assemble(body, sig)?)
    }

    /// Certifies another CA's key (e.g. a Device Issuer CA under the root).
    pub fn certify_ca<D: CaKey>(
        &mut self,
        key: D,
        chr: &str,
        from: CvDate,
        days: u32,
    ) -> Result<CvcCa<D>, CaError> {
        let point = key.point().to_vec();
        let certificate = self.certify(&point, chr, role::DEVICE_ISSUER, from, days)?;
        Ok(CvcCa { key, certificate })
    }
}

fn chat(role: u8) -> Option<Chat> {
    Some(Chat {
        role: oid::SC_HSM_ROLE.to_vec(),
        authorization: vec![role],
    })
}
