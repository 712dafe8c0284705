use core::fmt;

/// An ISO 7816-4 status word (SW1‖SW2).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusWord(pub u16);

impl StatusWord {
    pub const SUCCESS: Self = Self(0x9000);
    /// End of file reached before Le bytes were read.
    pub const END_OF_FILE: Self = Self(0x6282);
    pub const MEMORY_FAILURE: Self = Self(0x6581);
    pub const WRONG_LENGTH: Self = Self(0x6700);
    pub const SM_NOT_SUPPORTED: Self = Self(0x6882);
    pub const COMMAND_INCOMPATIBLE: Self = Self(0x6981);
    pub const SECURITY_STATUS_NOT_SATISFIED: Self = Self(0x6982);
    pub const AUTH_METHOD_BLOCKED: Self = Self(0x6983);
    pub const REFERENCE_DATA_NOT_USABLE: Self = Self(0x6984);
    pub const CONDITIONS_NOT_SATISFIED: Self = Self(0x6985);
    pub const COMMAND_NOT_ALLOWED: Self = Self(0x6986);
    pub const SM_DATA_MISSING: Self = Self(0x6987);
    pub const SM_DATA_INCORRECT: Self = Self(0x6988);
    pub const WRONG_DATA: Self = Self(0x6A80);
    pub const FUNCTION_NOT_SUPPORTED: Self = Self(0x6A81);
    pub const FILE_NOT_FOUND: Self = Self(0x6A82);
    pub const NOT_ENOUGH_MEMORY: Self = Self(0x6A84);
    pub const INCORRECT_P1P2: Self = Self(0x6A86);
    pub const REFERENCE_NOT_FOUND: Self = Self(0x6A88);
    pub const FILE_EXISTS: Self = Self(0x6A89);
    pub const WRONG_P1P2: Self = Self(0x6B00);
    pub const INS_NOT_SUPPORTED: Self = Self(0x6D00);
    pub const CLA_NOT_SUPPORTED: Self = Self(0x6E00);
    pub const UNKNOWN: Self = Self(0x6F00);

    /// `63Cx`: verification failed, `tries` (0..=15) attempts left.
    pub const fn verify_failed(tries: u8) -> Self {
        Self(0x63C0 | (tries & 0x0F) as u16)
    }

    pub const fn sw1(self) -> u8 {
        (self.0 >> 8) as u8
    }

    pub const fn sw2(self) -> u8 {
        self.0 as u8
    }

    pub const fn to_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }

    pub const fn is_success(self) -> bool {
        self.0 == 0x9000 || self.sw1() == 0x61
    }

    /// Retries left when this is a `63Cx` word.
    pub const fn retries_left(self) -> Option<u8> {
        if self.0 & 0xFFF0 == 0x63C0 {
            Some((self.0 & 0x0F) as u8)
        } else {
            None
        }
    }
}

impl fmt::Debug for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SW {:04X}", self.0)
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}", self.0)
    }
}
