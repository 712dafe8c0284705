use thiserror::Error;

/// Why a byte string is not a well-formed APDU or BER-TLV encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ApduError {
    #[error("APDU shorter than its 4-byte header")]
    TooShort,
    #[error("APDU length does not match its Lc/Le fields")]
    LengthMismatch,
    #[error("extended-length APDU with Lc = 0")]
    ZeroLc,
    #[error("response APDU shorter than its status word")]
    NoStatusWord,
    #[error("command data too long for an APDU ({0} bytes)")]
    DataTooLong(usize),
    #[error("Le out of range ({0})")]
    LeOutOfRange(u32),
    #[error("BER-TLV: truncated")]
    TlvTruncated,
    #[error("BER-TLV: tag longer than 3 bytes")]
    TlvTagTooLong,
    #[error("BER-TLV: unsupported length form 0x{0:02X}")]
    TlvBadLength(u8),
    #[error("BER-TLV: trailing data after the last object")]
    TlvTrailingData,
    #[error("BER-TLV: value too long to encode ({0} bytes)")]
    TlvTooLong(usize),
}
