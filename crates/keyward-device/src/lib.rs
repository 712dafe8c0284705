//! What a device does with the keys in its secure element: authenticates itself in TLS
//! (rustls, the handshake signature made by the element through PKCS#11), signs collected data
//! as COSE_Sign1 (RFC 9052) or detached CMS (RFC 5652), and — on the relying party's side —
//! verifies such signatures against the issuing CA's chain.
#![forbid(unsafe_code)]

pub mod cbor;
pub mod cms;
pub mod cose;
pub mod device_key;
pub mod tls;

pub use device_key::{DeviceError, DeviceKey};

/// Why a signature is not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("unsupported algorithm: {0}")]
    Algorithm(String),
    #[error("the signature does not verify (data or signature altered, or another key)")]
    BadSignature,
    #[error("the data's digest does not match the signed digest (data altered)")]
    DigestMismatch,
    #[error("the data differs from the payload the message carries (data altered)")]
    PayloadMismatch,
    #[error("no signer certificate in the message")]
    NoCertificate,
    #[error("signer's chain: {0}")]
    Chain(#[from] keyward_ca::x509_read::ChainError),
    #[error("{0}")]
    Ca(#[from] keyward_ca::CaError),
}

/// A verified signature: the signer's certificate path (subjects, signer first) and the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub signer: Vec<String>,
    pub payload: Vec<u8>,
}

/// What a relying party trusts: root certificates, plus intermediates it may use (DER).
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub roots: Vec<Vec<u8>>,
    pub intermediates: Vec<Vec<u8>>,
}

impl Trust {
    /// Validates `leaf` (with `carried` intermediates from the message) at `now`.
    pub fn validate(
        &self,
        leaf: &[u8],
        carried: &[Vec<u8>],
        now: i64,
    ) -> Result<Vec<String>, VerifyError> {
        let mut inter = carried.to_vec();
        inter.extend(self.intermediates.iter().cloned());
        Ok(keyward_ca::x509_read::validate_chain(
            leaf,
            &inter,
            &self.roots,
            now,
            &|_| false,
        )?)
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
