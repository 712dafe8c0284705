//! The TLV dialect of RAMoverHTTP: one-byte tags, definite lengths up to `82 xx xx`, minimal
//! big-endian two's-complement INTEGERs of 1–4 bytes (the C client's rules).

use crate::RamError;

/// One TLV: tag and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    pub tag: u8,
    pub value: &'a [u8],
}

/// Splits `input` into TLVs; every byte must belong to one.
pub fn parse_all(mut input: &[u8]) -> Result<Vec<Item<'_>>, RamError> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (item, rest) = parse(input)?;
        out.push(item);
        input = rest;
    }
    Ok(out)
}

/// Parses one TLV from the front of `input`.
pub fn parse(input: &[u8]) -> Result<(Item<'_>, &[u8]), RamError> {
    let [tag, rest @ ..] = input else {
        return Err(RamError::Truncated);
    };
    let (len, rest) = match rest {
        [n @ 0..=0x7F, rest @ ..] => (usize::from(*n), rest),
        [0x81, n, rest @ ..] => (usize::from(*n), rest),
        [0x82, hi, lo, rest @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), rest),
        [0x80 | 0x83..=0xFF, ..] => return Err(RamError::BadLength),
        _ => return Err(RamError::Truncated),
    };
    if rest.len() < len {
        return Err(RamError::Truncated);
    }
    let (value, rest) = rest.split_at(len);
    Ok((Item { tag: *tag, value }, rest))
}

/// Appends `tag len value` with the minimal length form (values over 65,535 bytes are refused).
pub fn write(out: &mut Vec<u8>, tag: u8, value: &[u8]) -> Result<(), RamError> {
    out.push(tag);
    match value.len() {
        n @ 0..=0x7F => out.push(n as u8),
        n @ 0x80..=0xFF => out.extend_from_slice(&[0x81, n as u8]),
        n @ 0x100..=0xFFFF => {
            out.push(0x82);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => return Err(RamError::TooLong),
    }
    out.extend_from_slice(value);
    Ok(())
}

/// Minimal two's-complement encoding of an INTEGER (1–4 bytes for the values used here).
pub fn encode_int(v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    bytes[start..].to_vec()
}

/// Decodes a two's-complement INTEGER of 1–8 bytes.
pub fn decode_int(v: &[u8]) -> Result<i64, RamError> {
    let Some(first) = v.first() else {
        return Err(RamError::BadInteger);
    };
    if v.len() > 8 {
        return Err(RamError::BadInteger);
    }
    let init: i64 = if first & 0x80 != 0 { -1 } else { 0 };
    Ok(v.iter().fold(init, |acc, b| (acc << 8) | i64::from(*b)))
}
