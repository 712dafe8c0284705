//! A session and the operations active in it.

use cryptoki_sys::*;
use keyward_crypto::HashAlg;
use zeroize::Zeroizing;

use crate::mechanism::Mechanism;
use crate::object::Object;

/// Multi-part input is collected up to this size (then CKR_DATA_LEN_RANGE).
pub const MAX_INPUT: usize = 16 << 20;

/// A sign, verify, encrypt or decrypt operation: its key, input so far, and a result computed
/// for a caller whose buffer was too small (handed out on the next call, not computed again).
pub struct Operation {
    pub mech: Mechanism,
    pub key: Object,
    pub data: Zeroizing<Vec<u8>>,
    pub result: Option<Zeroizing<Vec<u8>>>,
    /// Whether C_*Update was used (single-part calls are then refused).
    pub multi: bool,
}

impl Operation {
    pub fn new(mech: Mechanism, key: Object) -> Self {
        Self {
            mech,
            key,
            data: Zeroizing::new(Vec::new()),
            result: None,
            multi: false,
        }
    }
}

pub struct DigestOp {
    pub hash: HashAlg,
    pub data: Vec<u8>,
    pub multi: bool,
}

pub struct Session {
    pub slot: CK_SLOT_ID,
    pub rw: bool,
    pub find: Option<Vec<CK_OBJECT_HANDLE>>,
    pub sign: Option<Operation>,
    pub verify: Option<Operation>,
    pub encrypt: Option<Operation>,
    pub decrypt: Option<Operation>,
    pub digest: Option<DigestOp>,
}

impl Session {
    pub fn new(slot: CK_SLOT_ID, rw: bool) -> Self {
        Self {
            slot,
            rw,
            find: None,
            sign: None,
            verify: None,
            encrypt: None,
            decrypt: None,
            digest: None,
        }
    }
}
