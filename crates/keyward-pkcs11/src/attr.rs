//! Attribute values as the C API carries them, and templates copied out of the caller's memory.

use cryptoki_sys::*;

use crate::error::{Result, Rv};

/// Encodes a `CK_BBOOL`.
pub fn bool_bytes(b: bool) -> Vec<u8> {
    vec![if b { CK_TRUE } else { CK_FALSE }]
}

/// Encodes a `CK_ULONG` (native width and byte order, as the caller reads it).
pub fn ulong_bytes(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

/// A template: attribute types with their value bytes, owned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Template(pub Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>);

impl Template {
    pub fn get(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        self.0
            .iter()
            .rev()
            .find(|(t, _)| *t == ty)
            .map(|(_, v)| v.as_slice())
    }

    pub fn bool(&self, ty: CK_ATTRIBUTE_TYPE) -> Result<Option<bool>> {
        match self.get(ty) {
            None => Ok(None),
            Some([b]) => Ok(Some(*b != CK_FALSE)),
            Some(_) => Err(Rv(CKR_ATTRIBUTE_VALUE_INVALID)),
        }
    }

    pub fn ulong(&self, ty: CK_ATTRIBUTE_TYPE) -> Result<Option<CK_ULONG>> {
        match self.get(ty) {
            None => Ok(None),
            Some(v) => <[u8; size_of::<CK_ULONG>()]>::try_from(v)
                .map(|b| Some(CK_ULONG::from_ne_bytes(b)))
                .map_err(|_| Rv(CKR_ATTRIBUTE_VALUE_INVALID)),
        }
    }

    pub fn string(&self, ty: CK_ATTRIBUTE_TYPE) -> Result<Option<String>> {
        self.get(ty)
            .map(|v| String::from_utf8(v.to_vec()).map_err(|_| Rv(CKR_ATTRIBUTE_VALUE_INVALID)))
            .transpose()
    }
}
