//! The part of CBOR (RFC 8949) COSE needs: unsigned and negative integers, byte and text
//! strings, arrays, maps, tags, `false`/`true`/`null`; definite lengths only, written in the
//! preferred (shortest) form. Decoding is exact, bounded in depth and never trusts a length
//! beyond the input.

/// A CBOR data item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Unsigned(u64),
    /// `-1 - n`.
    Negative(u64),
    Bytes(Vec<u8>),
    Text(String),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Tag(u64, Box<Value>),
    Bool(bool),
    Null,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CborError {
    #[error("CBOR ends early")]
    Truncated,
    #[error("CBOR: {0} is not supported")]
    Unsupported(&'static str),
    #[error("CBOR nests deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("CBOR text is not UTF-8")]
    Utf8,
    #[error("bytes after the CBOR item")]
    Trailing,
}

const MAX_DEPTH: usize = 16;

impl Value {
    /// An integer (negative ones as major type 1).
    pub fn int(v: i64) -> Self {
        if v >= 0 {
            Self::Unsigned(v.unsigned_abs())
        } else {
            Self::Negative((-1 - v).unsigned_abs())
        }
    }

    /// The value as an integer, if it is one that fits.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Unsigned(v) => i64::try_from(*v).ok(),
            Self::Negative(n) => i64::try_from(*n).ok().map(|n| -1 - n),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The entry for an integer key in a map.
    pub fn get(&self, key: i64) -> Option<&Value> {
        match self {
            Self::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_int() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Self::Unsigned(v) => head(out, 0, *v),
            Self::Negative(n) => head(out, 1, *n),
            Self::Bytes(b) => {
                head(out, 2, b.len() as u64);
                out.extend_from_slice(b);
            }
            Self::Text(t) => {
                head(out, 3, t.len() as u64);
                out.extend_from_slice(t.as_bytes());
            }
            Self::Array(items) => {
                head(out, 4, items.len() as u64);
                for i in items {
                    i.write(out);
                }
            }
            Self::Map(entries) => {
                head(out, 5, entries.len() as u64);
                for (k, v) in entries {
                    k.write(out);
                    v.write(out);
                }
            }
            Self::Tag(t, v) => {
                head(out, 6, *t);
                v.write(out);
            }
            Self::Bool(false) => out.push(0xF4),
            Self::Bool(true) => out.push(0xF5),
            Self::Null => out.push(0xF6),
        }
    }

    /// Decodes exactly one item filling `data`.
    pub fn decode(data: &[u8]) -> Result<Self, CborError> {
        let mut r = Reader { data, pos: 0 };
        let v = r.item(0)?;
        if r.pos != data.len() {
            return Err(CborError::Trailing);
        }
        Ok(v)
    }
}

fn head(out: &mut Vec<u8>, major: u8, v: u64) {
    let m = major << 5;
    match v {
        0..=23 => out.push(m | v as u8),
        24..=0xFF => out.extend_from_slice(&[m | 24, v as u8]),
        0x100..=0xFFFF => {
            out.push(m | 25);
            out.extend_from_slice(&(v as u16).to_be_bytes());
        }
        0x1_0000..=0xFFFF_FFFF => {
            out.push(m | 26);
            out.extend_from_slice(&(v as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CborError> {
        let end = self.pos.checked_add(n).ok_or(CborError::Truncated)?;
        let s = self.data.get(self.pos..end).ok_or(CborError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn argument(&mut self, info: u8) -> Result<u64, CborError> {
        let n = match info {
            0..=23 => return Ok(u64::from(info)),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            _ => return Err(CborError::Unsupported("indefinite length")),
        };
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// A count of items that each take at least one byte: never more than what is left.
    fn count(&mut self, n: u64) -> Result<usize, CborError> {
        let left = self.data.len() - self.pos;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= left)
            .ok_or(CborError::Truncated)
    }

    fn item(&mut self, depth: usize) -> Result<Value, CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError::TooDeep);
        }
        let first = *self.take(1)?.first().ok_or(CborError::Truncated)?;
        let (major, info) = (first >> 5, first & 0x1F);
        if major == 7 {
            return match info {
                20 => Ok(Value::Bool(false)),
                21 => Ok(Value::Bool(true)),
                22 => Ok(Value::Null),
                _ => Err(CborError::Unsupported("floating-point or simple value")),
            };
        }
        let arg = self.argument(info)?;
        Ok(match major {
            0 => Value::Unsigned(arg),
            1 => Value::Negative(arg),
            2 => {
                let n = self.count(arg)?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            3 => {
                let n = self.count(arg)?;
                let t = std::str::from_utf8(self.take(n)?).map_err(|_| CborError::Utf8)?;
                Value::Text(t.to_string())
            }
            4 => {
                let n = self.count(arg)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.item(depth + 1)?);
                }
                Value::Array(items)
            }
            5 => {
                let n = self.count(arg)?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = self.item(depth + 1)?;
                    let v = self.item(depth + 1)?;
                    entries.push((k, v));
                }
                Value::Map(entries)
            }
            _ => Value::Tag(arg, Box::new(self.item(depth + 1)?)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 8949 Appendix A examples.
    #[test]
    fn rfc_8949_examples() {
        let cases: [(Value, &str); 12] = [
            (Value::int(0), "00"),
            (Value::int(23), "17"),
            (Value::int(24), "1818"),
            (Value::int(1000), "1903e8"),
            (Value::int(1_000_000), "1a000f4240"),
            (
                Value::Unsigned(18_446_744_073_709_551_615),
                "1bffffffffffffffff",
            ),
            (Value::int(-1), "20"),
            (Value::int(-1000), "3903e7"),
            (Value::Bytes(vec![1, 2, 3, 4]), "4401020304"),
            (Value::Text("IETF".into()), "6449455446"),
            (
                Value::Array(vec![
                    Value::int(1),
                    Value::Array(vec![Value::int(2), Value::int(3)]),
                ]),
                "8201820203",
            ),
            (
                Value::Tag(1, Box::new(Value::int(1_363_896_240))),
                "c11a514b67b0",
            ),
        ];
        for (v, h) in cases {
            let bytes = hex_decode(h);
            assert_eq!(v.encode(), bytes, "{h}");
            assert_eq!(Value::decode(&bytes).unwrap(), v, "{h}");
        }
        assert_eq!(Value::decode(&hex_decode("f6")).unwrap(), Value::Null);
        assert_eq!(
            Value::decode(&hex_decode("5f42010243030405ff")),
            Err(CborError::Unsupported("indefinite length"))
        );
        assert_eq!(
            Value::decode(&hex_decode("f93c00")),
            Err(CborError::Unsupported("floating-point or simple value"))
        );
        assert_eq!(Value::decode(&hex_decode("0000")), Err(CborError::Trailing));
        assert_eq!(
            Value::decode(&hex_decode("5affffffff")),
            Err(CborError::Truncated)
        );
        assert_eq!(Value::decode(&[0x81; 40]), Err(CborError::TooDeep));
    }

    fn hex_decode(h: &str) -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<u64>().prop_map(Value::Unsigned),
            any::<u64>().prop_map(Value::Negative),
            prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
            ".{0,20}".prop_map(Value::Text),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((inner.clone(), inner.clone()), 0..4).prop_map(Value::Map),
                (any::<u64>(), inner).prop_map(|(t, v)| Value::Tag(t, Box::new(v))),
            ]
        })
    }

    proptest! {
        #[test]
        fn round_trip(v in value()) {
            prop_assert_eq!(Value::decode(&v.encode()).unwrap(), v);
        }

        #[test]
        fn never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = Value::decode(&data);
        }
    }
}
