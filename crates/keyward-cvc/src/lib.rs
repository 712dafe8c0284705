//! BSI TR-03110 card-verifiable certificates (CVC) in the profile the SmartCard-HSM uses:
//! certificates `7F21 { 7F4E body, 5F37 signature }`, self-signed requests of the same shape and
//! authenticated requests `67 { 7F21, 42 outer CAR, 5F37 outer signature }`.
//!
//! Parsing keeps the raw encodings, so the signed data (the encoded `7F4E`) is exactly what was
//! received. [`signature`] signs and verifies with every TR-03110 algorithm; [`chain`] validates
//! device chains against a trust store and verifies key attestations.
#![forbid(unsafe_code)]

mod body;
mod cert;
pub mod chain;
mod date;
mod error;
mod key;
pub mod oid;
pub mod signature;

pub use body::{Body, Chat};
pub use cert::{AuthenticatedRequest, Certificate};
pub use chain::{AttestedKey, ChainError, DeviceIdentity, TrustStore};
pub use date::CvDate;
pub use error::CvcError;
pub use key::{EcDomain, PublicKey, ec_key_template};

/// Tags of the data objects in a CV certificate.
pub mod tag {
    pub const CERTIFICATE: u32 = 0x7F21;
    pub const BODY: u32 = 0x7F4E;
    pub const SIGNATURE: u32 = 0x5F37;
    pub const AUTHENTICATED_REQUEST: u32 = 0x67;
    pub const CPI: u32 = 0x5F29;
    pub const CAR: u32 = 0x42;
    pub const PUBLIC_KEY: u32 = 0x7F49;
    pub const CHR: u32 = 0x5F20;
    pub const CHAT: u32 = 0x7F4C;
    pub const CED: u32 = 0x5F25;
    pub const CXD: u32 = 0x5F24;
    pub const EXTENSIONS: u32 = 0x65;
    pub const OID: u32 = 0x06;
    pub const DISCRETIONARY: u32 = 0x53;
}

/// CardContact's SmartCard-HSM scheme root CA certificate (DESRCACC100001, brainpoolP256r1,
/// 2012-11-09..2032-11-08), to which genuine SmartCard-HSMs and Nitrokey HSM 2 chain.
pub const CARDCONTACT_SRCA: &[u8] = include_bytes!("../data/DESRCACC100001.cvc");
