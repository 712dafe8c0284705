use keyward_apdu::ApduError;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CvcError {
    #[error("malformed TLV: {0}")]
    Tlv(#[from] ApduError),
    #[error("expected tag {expected:04X}, found {found:04X}")]
    UnexpectedTag { expected: u32, found: u32 },
    #[error("missing data object {0:04X}")]
    Missing(u32),
    #[error("data object {0:04X} is malformed")]
    Malformed(u32),
    #[error("unexpected trailing data after the certificate")]
    TrailingData,
    #[error("invalid date")]
    InvalidDate,
    #[error("unknown public-key algorithm")]
    UnknownAlgorithm,
    #[error("the key does not fit the signature algorithm")]
    KeyMismatch,
    #[error("EC public key without domain parameters and none to inherit")]
    MissingDomainParameters,
    #[error("EC domain parameters of an unsupported curve")]
    UnknownCurve,
    #[error("signature does not verify")]
    BadSignature,
    #[error("signing failed")]
    SigningFailed,
}
