//! What differs between the T=1 variants: node addresses, LEN width, error detection code.

/// The link variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// ISO/IEC 7816-3 T=1 (NAD 00, 1-byte LEN, LRC or CRC).
    Iso,
    /// NXP T=1 over I2C (SE05x): NAD 5A/A5, 1-byte LEN, CRC-16/X-25 LSB first.
    NxpI2c,
    /// GlobalPlatform T=1' over SPI/I2C: NAD 21/12, 2-byte LEN, CRC-16/X-25 MSB first.
    Gp,
}

/// Error detection code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edc {
    Lrc,
    /// CRC-16/X-25 transmitted least significant byte first.
    CrcLsbFirst,
    /// CRC-16/X-25 transmitted most significant byte first.
    CrcMsbFirst,
}

/// A complete link profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    pub variant: Variant,
    pub edc: Edc,
}

impl Profile {
    pub const ISO: Self = Self {
        variant: Variant::Iso,
        edc: Edc::Lrc,
    };
    pub const ISO_CRC: Self = Self {
        variant: Variant::Iso,
        edc: Edc::CrcLsbFirst,
    };
    pub const NXP_I2C: Self = Self {
        variant: Variant::NxpI2c,
        edc: Edc::CrcLsbFirst,
    };
    pub const GP: Self = Self {
        variant: Variant::Gp,
        edc: Edc::CrcMsbFirst,
    };

    pub fn for_variant(v: Variant) -> Self {
        match v {
            Variant::Iso => Self::ISO,
            Variant::NxpI2c => Self::NXP_I2C,
            Variant::Gp => Self::GP,
        }
    }

    /// NAD of blocks from the host to the card.
    pub fn nad_to_card(&self) -> u8 {
        match self.variant {
            Variant::Iso => 0x00,
            Variant::NxpI2c => 0x5A,
            Variant::Gp => 0x21,
        }
    }

    /// NAD of blocks from the card to the host.
    pub fn nad_to_host(&self) -> u8 {
        match self.variant {
            Variant::Iso => 0x00,
            Variant::NxpI2c => 0xA5,
            Variant::Gp => 0x12,
        }
    }

    pub fn len_width(&self) -> usize {
        match self.variant {
            Variant::Gp => 2,
            _ => 1,
        }
    }

    pub fn edc_len(&self) -> usize {
        match self.edc {
            Edc::Lrc => 1,
            _ => 2,
        }
    }

    /// Largest information field this profile can express.
    pub fn max_ifs(&self) -> usize {
        match self.variant {
            Variant::Gp => 0xFF9,
            _ => 0xFE,
        }
    }

    /// Computes the EDC over `data` in transmission order.
    pub fn edc(&self, data: &[u8]) -> [u8; 2] {
        match self.edc {
            Edc::Lrc => [data.iter().fold(0, |a, b| a ^ b), 0],
            Edc::CrcLsbFirst => crc16_x25(data).to_le_bytes(),
            Edc::CrcMsbFirst => crc16_x25(data).to_be_bytes(),
        }
    }
}

/// CRC-16/X-25: reflected polynomial 0x1021 (0x8408), init 0xFFFF, final XOR 0xFFFF.
pub fn crc16_x25(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x8408
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edc_vectors() {
        assert_eq!(crc16_x25(b"123456789"), 0x906E);
        // ISO example: 00 00 05 00A4040000 has LRC A5.
        assert_eq!(
            Profile::ISO.edc(&[0, 0, 5, 0x00, 0xA4, 0x04, 0x00, 0x00])[0],
            0xA5
        );
        // NXP: S(RESYNCH) 5A C0 00 FF FC, GP: 21 C0 0000 65 AC.
        assert_eq!(Profile::NXP_I2C.edc(&[0x5A, 0xC0, 0x00]), [0xFF, 0xFC]);
        assert_eq!(Profile::GP.edc(&[0x21, 0xC0, 0x00, 0x00]), [0x65, 0xAC]);
    }
}
