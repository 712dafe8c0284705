//! A device key: a signing key in the element (through any PKCS#11 module, normally Keyward's)
//! with its certificate chain. Every signature is made by the element; the key never leaves it.

use std::path::Path;
use std::sync::Mutex;

use keyward_ca::pkcs11_uri::Pkcs11Uri;
use keyward_ca::x509::{SubjectKey, X509Key};
use keyward_ca::x509_read::Certificate;
use keyward_crypto::{Curve, HashAlg};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    #[error("key {uri}: {source}")]
    Token {
        uri: String,
        source: keyward_ca::pkcs11_key::Pkcs11KeyError,
    },
    #[error("the URI: {0}")]
    Uri(String),
    #[error("the certificate is not for this key")]
    CertificateMismatch,
    #[error("signing in the element: {0}")]
    Sign(#[from] keyward_ca::CaError),
    #[error("{0} keys are not supported here")]
    Unsupported(String),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP: {0}")]
    Http(String),
}

/// The type of a device key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Ec(Curve),
    Rsa,
}

/// A signing key with its certificate (first) and issuers.
pub struct DeviceKey {
    key: Mutex<Box<dyn X509Key>>,
    kind: KeyKind,
    pub chain: Vec<Vec<u8>>,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceKey")
            .field("kind", &self.kind)
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl DeviceKey {
    /// A key and its chain (the first certificate must be for this key).
    pub fn new(key: Box<dyn X509Key>, chain: Vec<Vec<u8>>) -> Result<Self, DeviceError> {
        let subject = key.subject_key();
        let leaf = chain.first().ok_or(DeviceError::CertificateMismatch)?;
        let cert = Certificate::parse(leaf).map_err(|_| DeviceError::CertificateMismatch)?;
        if cert.spki != subject.spki() {
            return Err(DeviceError::CertificateMismatch);
        }
        let kind = match subject {
            SubjectKey::Ec { curve, .. } => KeyKind::Ec(curve),
            SubjectKey::Rsa { .. } => KeyKind::Rsa,
        };
        Ok(Self {
            key: Mutex::new(key),
            kind,
            chain,
        })
    }

    /// The key a `pkcs11:` URI names (object= and/or id=), its certificate from the same token
    /// (same label/id), followed by `issuers`. `pin_file` supplies the PIN when the URI has
    /// none; `module` the module when the URI names none.
    pub fn open(
        uri: &str,
        module: Option<&Path>,
        pin_file: Option<&Path>,
        issuers: Vec<Vec<u8>>,
    ) -> Result<Self, DeviceError> {
        let mut parsed = Pkcs11Uri::parse(uri).map_err(|e| DeviceError::Uri(e.to_string()))?;
        if parsed.pin_value.is_none() && parsed.pin_source.is_none() {
            parsed.pin_source = pin_file.map(|p| p.display().to_string());
        }
        let token = |source| DeviceError::Token {
            uri: keyward_ca::pkcs11_uri::without_pin(uri),
            source,
        };
        let leaf = keyward_ca::pkcs11_key::read_certificate(&parsed, module).map_err(token)?;
        let key = keyward_ca::pkcs11_key::open_x509(&parsed, module).map_err(token)?;
        let mut chain = vec![leaf];
        chain.extend(issuers);
        Self::new(key, chain)
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The hash this key signs with: the curve's (SHA-256 for P-256, SHA-384 for P-384,
    /// SHA-512 for P-521), SHA-256 for RSA.
    pub fn hash(&self) -> HashAlg {
        match self.kind {
            KeyKind::Ec(c) if c.field_len() > 48 => HashAlg::Sha512,
            KeyKind::Ec(c) if c.field_len() > 32 => HashAlg::Sha384,
            _ => HashAlg::Sha256,
        }
    }

    /// The signature's AlgorithmIdentifier (DER).
    pub fn signature_algorithm(&self) -> Result<Vec<u8>, DeviceError> {
        Ok(self.lock()?.signature_algorithm()?)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Box<dyn X509Key>>, DeviceError> {
        self.key
            .lock()
            .map_err(|_| DeviceError::Sign(keyward_ca::CaError::Token("key lock".into())))
    }

    /// Signs `data` in the element: DER `ECDSA-Sig-Value` with [`Self::hash`], or RSA PKCS#1
    /// v1.5 with SHA-256.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, DeviceError> {
        Ok(self.lock()?.sign_x509(data)?)
    }

    /// The signer's certificate.
    pub fn certificate(&self) -> &[u8] {
        self.chain.first().map_or(&[], Vec::as_slice)
    }
}
