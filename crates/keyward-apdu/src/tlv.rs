//! BER-TLV as used by ISO 7816-4 and TR-03110: tags of 1–3 bytes, definite lengths of up to
//! three length bytes (`81`, `82`, `83` forms). Parsed objects borrow from the input and keep
//! their raw encoding, so re-emitting a parsed object is byte-exact.

use alloc::vec::Vec;

use crate::ApduError;

/// A BER-TLV tag, its encoded bytes read as a big-endian number (e.g. `0x7F21`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub u32);

impl Tag {
    fn first_byte(self) -> u8 {
        let bytes = self.0.to_be_bytes();
        bytes.into_iter().find(|b| *b != 0).unwrap_or(0)
    }

    /// Whether the tag marks a constructed object (bit 6 of its first byte).
    pub fn is_constructed(self) -> bool {
        self.first_byte() & 0x20 != 0
    }

    pub fn encode(self, out: &mut Vec<u8>) {
        let bytes = self.0.to_be_bytes();
        let skip = bytes.iter().take(3).take_while(|b| **b == 0).count();
        out.extend_from_slice(&bytes[skip..]);
    }

    /// Reads one tag from the front of `input`.
    pub fn parse(input: &[u8]) -> Result<(Self, &[u8]), ApduError> {
        let (&first, mut rest) = input.split_first().ok_or(ApduError::TlvTruncated)?;
        let mut value = u32::from(first);
        if first & 0x1F == 0x1F {
            let mut count = 0;
            loop {
                let (&b, tail) = rest.split_first().ok_or(ApduError::TlvTruncated)?;
                rest = tail;
                count += 1;
                if count > 2 {
                    return Err(ApduError::TlvTagTooLong);
                }
                value = (value << 8) | u32::from(b);
                if b & 0x80 == 0 {
                    break;
                }
            }
        }
        Ok((Self(value), rest))
    }
}

impl From<u32> for Tag {
    fn from(v: u32) -> Self {
        Self(v)
    }
}

/// Reads a definite length from the front of `input`.
pub fn parse_length(input: &[u8]) -> Result<(usize, &[u8]), ApduError> {
    let (&first, rest) = input.split_first().ok_or(ApduError::TlvTruncated)?;
    if first < 0x80 {
        return Ok((usize::from(first), rest));
    }
    let n = usize::from(first & 0x7F);
    if !(1..=3).contains(&n) {
        return Err(ApduError::TlvBadLength(first));
    }
    if rest.len() < n {
        return Err(ApduError::TlvTruncated);
    }
    let (bytes, rest) = rest.split_at(n);
    let len = bytes
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    Ok((len, rest))
}

/// Appends the shortest definite-length encoding of `len`.
pub fn encode_length(len: usize, out: &mut Vec<u8>) -> Result<(), ApduError> {
    match len {
        0..=0x7F => out.push(len as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, len as u8]),
        0x100..=0xFFFF => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
        0x1_0000..=0xFF_FFFF => {
            out.extend_from_slice(&[0x83, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
        }
        _ => return Err(ApduError::TlvTooLong(len)),
    }
    Ok(())
}

/// One parsed BER-TLV object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: Tag,
    pub value: &'a [u8],
    /// The complete encoding (tag, length and value) as it appeared in the input.
    pub raw: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// Parses one object from the front of `input`, returning it and the rest.
    pub fn parse(input: &'a [u8]) -> Result<(Self, &'a [u8]), ApduError> {
        let (tag, rest) = Tag::parse(input)?;
        let (len, rest) = parse_length(rest)?;
        if rest.len() < len {
            return Err(ApduError::TlvTruncated);
        }
        let (value, rest) = rest.split_at(len);
        let raw = &input[..input.len() - rest.len()];
        Ok((Self { tag, value, raw }, rest))
    }

    /// Parses exactly one object spanning all of `input`.
    pub fn parse_exact(input: &'a [u8]) -> Result<Self, ApduError> {
        let (tlv, rest) = Self::parse(input)?;
        if rest.is_empty() {
            Ok(tlv)
        } else {
            Err(ApduError::TlvTrailingData)
        }
    }

    /// The objects inside a constructed object's value.
    pub fn children(&self) -> TlvIter<'a> {
        TlvIter::new(self.value)
    }

    /// The first child with `tag`, erroring on malformed content.
    pub fn find(&self, tag: u32) -> Result<Option<Tlv<'a>>, ApduError> {
        find(self.value, tag)
    }
}

/// Iterates over a concatenation of BER-TLV objects; yields an error (once) for malformed input.
#[derive(Debug, Clone)]
pub struct TlvIter<'a> {
    rest: &'a [u8],
}

impl<'a> TlvIter<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        Self { rest: input }
    }
}

impl<'a> Iterator for TlvIter<'a> {
    type Item = Result<Tlv<'a>, ApduError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match Tlv::parse(self.rest) {
            Ok((tlv, rest)) => {
                self.rest = rest;
                Some(Ok(tlv))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// Parses a whole concatenation of objects, failing on any malformed or trailing byte.
pub fn parse_all(input: &[u8]) -> Result<Vec<Tlv<'_>>, ApduError> {
    TlvIter::new(input).collect()
}

/// The first top-level object with `tag` in `input` (all objects before it must be well formed).
pub fn find(input: &[u8], tag: u32) -> Result<Option<Tlv<'_>>, ApduError> {
    for tlv in TlvIter::new(input) {
        let tlv = tlv?;
        if tlv.tag.0 == tag {
            return Ok(Some(tlv));
        }
    }
    Ok(None)
}

/// Appends `tag ‖ length ‖ value`.
pub fn write(out: &mut Vec<u8>, tag: u32, value: &[u8]) -> Result<(), ApduError> {
    Tag(tag).encode(out);
    encode_length(value.len(), out)?;
    out.extend_from_slice(value);
    Ok(())
}

/// Returns `tag ‖ length ‖ value` as a new vector.
pub fn encode(tag: u32, value: &[u8]) -> Result<Vec<u8>, ApduError> {
    let mut out = Vec::with_capacity(value.len() + 6);
    write(&mut out, tag, value)?;
    Ok(out)
}

/// Appends a constructed object whose value is produced by `f`.
pub fn write_nested(
    out: &mut Vec<u8>,
    tag: u32,
    f: impl FnOnce(&mut Vec<u8>) -> Result<(), ApduError>,
) -> Result<(), ApduError> {
    let mut inner = Vec::new();
    f(&mut inner)?;
    write(out, tag, &inner)
}
