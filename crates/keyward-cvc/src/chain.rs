//! Device-PKI chain validation (root `C0` → DICA `80` → device `00`) against a local trust store,
//! and verification of key attestations (authenticated requests) against a validated device.

use keyward_crypto::{Curve, EcDomain};
use thiserror::Error;

use crate::signature::{self, curve_of};
use crate::{AuthenticatedRequest, Certificate, CvDate, CvcError, PublicKey, oid};

/// Roles in the SmartCard-HSM device PKI (CHAT relative authorization with the id-SC-HSM OID).
pub mod role {
    pub const ROOT: u8 = 0xC0;
    pub const DICA: u8 = 0x80;
    pub const DEVICE: u8 = 0x00;
}

/// Why a device chain or an attestation is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ChainError {
    #[error("malformed certificate")]
    Malformed(#[from] CvcError),
    #[error("EF.C_DevAut must hold a device and a DICA certificate, found {0} certificate(s)")]
    WrongCount(usize),
    #[error("{chr}: issued by {car}, which is not a trusted root")]
    UntrustedRoot { chr: String, car: String },
    #[error("{chr}: names {car} as its issuer, but the next certificate is {issuer}")]
    BrokenLink {
        chr: String,
        car: String,
        issuer: String,
    },
    #[error("{chr}: role {found} where the chain needs {expected:02X}")]
    WrongRole {
        chr: String,
        expected: u8,
        found: String,
    },
    #[error("{chr}: not valid before {from}")]
    NotYetValid { chr: String, from: String },
    #[error("{chr}: expired on {until}")]
    Expired { chr: String, until: String },
    #[error("{chr}: no validity period")]
    NoValidity { chr: String },
    #[error("{chr}: signature does not verify ({reason})")]
    BadSignature { chr: String, reason: CvcError },
    #[error("{chr}: a root must be self-signed with explicit domain parameters")]
    NotARoot { chr: String },
    #[error("attestation: signed by device {found}, expected {expected}")]
    OtherDevice { expected: String, found: String },
    #[error("attestation: the device signature does not verify ({0})")]
    BadOuterSignature(CvcError),
    #[error("attestation: the request's self-signature does not match its key ({0})")]
    BadInnerSignature(CvcError),
}

fn name(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fmt_date(d: CvDate) -> String {
    d.to_string()
}

fn check_role(cert: &Certificate, expected: u8) -> Result<(), ChainError> {
    let chat = cert.body.chat.as_ref();
    let found = match chat {
        Some(c) if c.role == oid::SC_HSM_ROLE && c.authorization.len() == 1 => c.authorization[0],
        Some(c) => {
            return Err(ChainError::WrongRole {
                chr: name(&cert.body.chr),
                expected,
                found: format!("{:02X?} under another role OID", c.authorization),
            });
        }
        None => {
            return Err(ChainError::WrongRole {
                chr: name(&cert.body.chr),
                expected,
                found: "none".into(),
            });
        }
    };
    if found == expected {
        Ok(())
    } else {
        Err(ChainError::WrongRole {
            chr: name(&cert.body.chr),
            expected,
            found: format!("{found:02X}"),
        })
    }
}

fn check_dates(cert: &Certificate, at: CvDate) -> Result<(), ChainError> {
    let chr = name(&cert.body.chr);
    let (Some(from), Some(until)) = (cert.body.effective, cert.body.expiration) else {
        return Err(ChainError::NoValidity { chr });
    };
    if at < from {
        return Err(ChainError::NotYetValid {
            chr,
            from: fmt_date(from),
        });
    }
    if at > until {
        return Err(ChainError::Expired {
            chr,
            until: fmt_date(until),
        });
    }
    Ok(())
}

fn check_signature(
    cert: &Certificate,
    issuer: &PublicKey,
    domain: Option<&EcDomain>,
) -> Result<(), ChainError> {
    signature::verify(issuer, domain, &cert.body_raw, &cert.signature).map_err(|reason| {
        ChainError::BadSignature {
            chr: name(&cert.body.chr),
            reason,
        }
    })
}

/// The trusted roots (scheme root CAs) of a verifier.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    roots: Vec<Certificate>,
}

/// A device whose certificate chain was validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// CHR of the device certificate.
    pub device_id: String,
    pub dica: String,
    pub root: String,
    pub curve: Curve,
    /// PrK.DevAut's public point.
    pub public_point: Vec<u8>,
    /// The device key with its (inherited) domain parameters made explicit.
    pub public_key: PublicKey,
}

/// A key whose attestation verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedKey {
    pub device_id: String,
    /// CHR the request names for the key.
    pub key_chr: String,
    pub public_key: PublicKey,
    /// The key's `id-TA-*` algorithm OID.
    pub algorithm: Vec<u8>,
}

impl TrustStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a root after checking it: self-signed, role `C0`, explicit domain parameters.
    pub fn add_root(&mut self, root: Certificate) -> Result<(), ChainError> {
        let chr = name(&root.body.chr);
        if root.body.car.as_deref() != Some(&root.body.chr[..]) {
            return Err(ChainError::NotARoot { chr });
        }
        if let PublicKey::Ec { domain: None, .. } = &root.body.public_key {
            return Err(ChainError::NotARoot { chr });
        }
        check_role(&root, role::ROOT)?;
        check_signature(&root, &root.body.public_key, None)?;
        self.roots.push(root);
        Ok(())
    }

    pub fn roots(&self) -> &[Certificate] {
        &self.roots
    }

    /// Validates EF.C_DevAut (device certificate ‖ DICA certificate) at date `at`.
    pub fn validate_c_devaut(
        &self,
        c_devaut: &[u8],
        at: CvDate,
    ) -> Result<DeviceIdentity, ChainError> {
        match Certificate::parse_chain(c_devaut)?.as_slice() {
            [device, dica] => self.validate(device, dica, at),
            other => Err(ChainError::WrongCount(other.len())),
        }
    }

    /// Validates device ← DICA ← trusted root at date `at`.
    pub fn validate(
        &self,
        device: &Certificate,
        dica: &Certificate,
        at: CvDate,
    ) -> Result<DeviceIdentity, ChainError> {
        let dica_car = dica.body.car.as_deref().unwrap_or_default();
        let root = self
            .roots
            .iter()
            .find(|r| r.body.chr == dica_car)
            .ok_or_else(|| ChainError::UntrustedRoot {
                chr: name(&dica.body.chr),
                car: name(dica_car),
            })?;
        let device_car = device.body.car.as_deref().unwrap_or_default();
        if device_car != dica.body.chr {
            return Err(ChainError::BrokenLink {
                chr: name(&device.body.chr),
                car: name(device_car),
                issuer: name(&dica.body.chr),
            });
        }
        check_role(root, role::ROOT)?;
        check_role(dica, role::DICA)?;
        check_role(device, role::DEVICE)?;
        for cert in [root, dica, device] {
            check_dates(cert, at)?;
        }
        // Domain parameters are inherited down the chain unless a certificate carries its own.
        let root_domain = match &root.body.public_key {
            PublicKey::Ec { domain, .. } => domain.clone(),
            PublicKey::Rsa { .. } => None,
        };
        check_signature(dica, &root.body.public_key, root_domain.as_ref())?;
        let dica_domain = match &dica.body.public_key {
            PublicKey::Ec {
                domain: Some(d), ..
            } => Some(d.clone()),
            _ => root_domain,
        };
        check_signature(device, &dica.body.public_key, dica_domain.as_ref())?;
        let PublicKey::Ec {
            algorithm,
            domain,
            point,
        } = &device.body.public_key
        else {
            return Err(ChainError::Malformed(CvcError::KeyMismatch));
        };
        let domain = domain
            .clone()
            .or(dica_domain)
            .ok_or(CvcError::MissingDomainParameters)?;
        let curve = curve_of(&device.body.public_key, Some(&domain))?;
        Ok(DeviceIdentity {
            device_id: name(&device.body.chr),
            dica: name(&dica.body.chr),
            root: name(&root.body.chr),
            curve,
            public_point: point.clone(),
            public_key: PublicKey::Ec {
                algorithm: algorithm.clone(),
                domain: Some(domain),
                point: point.clone(),
            },
        })
    }
}

impl DeviceIdentity {
    /// Verifies a key attestation: outer signature by this device over `7F21‖42`, outer CAR =
    /// device id, and the request's self-signature with the key it contains.
    pub fn verify_attestation(
        &self,
        request: &AuthenticatedRequest,
    ) -> Result<AttestedKey, ChainError> {
        if request.outer_car != self.device_id.as_bytes() {
            return Err(ChainError::OtherDevice {
                expected: self.device_id.clone(),
                found: name(&request.outer_car),
            });
        }
        let outer = AuthenticatedRequest::outer_signed_data(&request.request, &request.outer_car)?;
        signature::verify(&self.public_key, None, &outer, &request.outer_signature)
            .map_err(ChainError::BadOuterSignature)?;
        let inner = &request.request;
        signature::verify(
            &inner.body.public_key,
            None,
            &inner.body_raw,
            &inner.signature,
        )
        .map_err(ChainError::BadInnerSignature)?;
        Ok(AttestedKey {
            device_id: self.device_id.clone(),
            key_chr: name(&inner.body.chr),
            public_key: inner.body.public_key.clone(),
            algorithm: inner.body.public_key.algorithm().to_vec(),
        })
    }
}
