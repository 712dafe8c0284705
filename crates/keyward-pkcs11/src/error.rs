//! `CK_RV` results and the mapping of card errors onto them.

use cryptoki_sys::*;
use keyward_card::{CardError, HsmError};

/// A PKCS#11 return value other than `CKR_OK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("CK_RV 0x{0:08X}")]
pub struct Rv(pub CK_RV);

pub type Result<T> = std::result::Result<T, Rv>;

impl From<HsmError> for Rv {
    fn from(e: HsmError) -> Self {
        Rv(match e {
            HsmError::Card(CardError::Pcsc(
                pcsc::Error::RemovedCard | pcsc::Error::NoSmartcard,
            )) => CKR_DEVICE_REMOVED,
            HsmError::Card(_) => CKR_DEVICE_ERROR,
            HsmError::PinIncorrect(_) => CKR_PIN_INCORRECT,
            HsmError::PinBlocked => CKR_PIN_LOCKED,
            HsmError::TransportPin => CKR_PIN_EXPIRED,
            HsmError::NotLoggedIn => CKR_USER_NOT_LOGGED_IN,
            HsmError::NotInitialized => CKR_USER_PIN_NOT_INITIALIZED,
            HsmError::NotFound => CKR_OBJECT_HANDLE_INVALID,
            HsmError::AlgorithmNotAllowed => CKR_KEY_FUNCTION_NOT_PERMITTED,
            HsmError::UseCounterExhausted => CKR_KEY_FUNCTION_NOT_PERMITTED,
            HsmError::InvalidData => CKR_DATA_INVALID,
            HsmError::NoFreeKeyId => CKR_DEVICE_MEMORY,
            HsmError::Status { sw, .. } if sw == keyward_apdu::StatusWord::NOT_ENOUGH_MEMORY => {
                CKR_DEVICE_MEMORY
            }
            _ => CKR_DEVICE_ERROR,
        })
    }
}
