//! Chip authentication (TR-03110 CA version 2 with id-CA-ECDH-AES-CBC-CMAC-128, as the
//! SmartCard-HSM does it with PrK.DevAut) and ISO 7816-4 secure messaging with AES, for both the
//! host and the card role; GlobalPlatform SCP03 for both roles. Sans-io: APDUs in, APDUs out.
#![forbid(unsafe_code)]

mod ca;
mod error;
pub mod key_file;
mod messaging;
pub mod scp03;

pub use ca::{CA_OID, ChipAuthHost, card_chip_authentication, derive_keys, token};
pub use error::SmError;
pub use key_file::{KeyFile, KeyFileError};
pub use messaging::{SessionKeys, SmSession};
