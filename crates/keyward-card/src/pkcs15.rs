//! The PKCS#15 descriptions the SmartCard-HSM keeps beside its keys, in the encoding OpenSC
//! writes and reads: private-key descriptions (PRKD, EF `C4<kid>`) and certificate descriptions
//! (CD, EF `C8<id>`) and data-object descriptions (DCOD, EF `C9<id>`). Keys, certificates and
//! data objects created by OpenSC show up here and vice versa.

use keyward_apdu::tlv::{self, Tlv};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Pkcs15Error {
    #[error("malformed PKCS#15 object: {0}")]
    Malformed(&'static str),
    #[error(transparent)]
    Tlv(#[from] keyward_apdu::ApduError),
}

/// The kind of key a PRKD describes, with its size in bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa { modulus_bits: u32 },
    Ec { field_bits: u32 },
    Aes { key_bits: u32 },
}

/// A private (or secret) key description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateKeyDescription {
    pub label: String,
    /// PKCS#15 iD (CKA_ID).
    pub id: Vec<u8>,
    /// Key usage flags as a bit string value (first byte = unused bits).
    pub usage: Vec<u8>,
    /// The key reference = key id on the element.
    pub key_ref: u8,
    pub kind: KeyKind,
}

/// Common object attributes: label, flags (private, modifiable), auth id 01 (the user PIN).
fn common_object(label: &str) -> Result<Vec<u8>, Pkcs15Error> {
    let mut v = Vec::new();
    tlv::write(&mut v, 0x0C, label.as_bytes())?;
    tlv::write(&mut v, 0x03, &[0x06, 0xC0])?;
    tlv::write(&mut v, 0x04, &[0x01])?;
    Ok(tlv::encode(0x30, &v)?)
}

fn integer(value: u32) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take(3).take_while(|b| **b == 0).count();
    let mut v = bytes[skip..].to_vec();
    if v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    v
}

fn parse_integer(v: &[u8]) -> Result<u32, Pkcs15Error> {
    if v.is_empty() || v.len() > 5 {
        return Err(Pkcs15Error::Malformed("integer"));
    }
    v.iter()
        .fold(0u64, |a, b| (a << 8) | u64::from(*b))
        .try_into()
        .map_err(|_| Pkcs15Error::Malformed("integer"))
}

impl PrivateKeyDescription {
    /// Usage OpenSC gives EC keys (sign, signRecover(no), derive…): `07 30 80`.
    pub const EC_USAGE: [u8; 3] = [0x07, 0x30, 0x80];
    /// Usage OpenSC gives RSA keys (decrypt, sign, signRecover, unwrap): `04 70`.
    pub const RSA_USAGE: [u8; 2] = [0x04, 0x70];
    /// Usage of AES keys (encrypt, decrypt): `07 C0 10`.
    pub const AES_USAGE: [u8; 3] = [0x07, 0xC0, 0x10];

    pub fn encode(&self) -> Result<Vec<u8>, Pkcs15Error> {
        let mut key = Vec::new();
        tlv::write(&mut key, 0x04, &self.id)?;
        tlv::write(&mut key, 0x03, &self.usage)?;
        tlv::write(&mut key, 0x02, &integer(u32::from(self.key_ref)))?;
        let (outer, type_attrs) = match self.kind {
            KeyKind::Rsa { modulus_bits } => (0x30, (true, modulus_bits)),
            KeyKind::Ec { field_bits } => (0xA0, (true, field_bits)),
            KeyKind::Aes { key_bits } => (0xA8, (false, key_bits)),
        };
        let mut v = common_object(&self.label)?;
        v.extend_from_slice(&tlv::encode(0x30, &key)?);
        let path = tlv::encode(0x30, &tlv::encode(0x04, &[])?)?;
        let mut attrs = Vec::new();
        if type_attrs.0 {
            attrs.extend_from_slice(&path);
            attrs.extend_from_slice(&tlv::encode(0x02, &integer(type_attrs.1))?);
            v.extend_from_slice(&tlv::encode(0xA1, &tlv::encode(0x30, &attrs)?)?);
        } else {
            // Secret keys: [0] { keyLen }, [1] { path }.
            v.extend_from_slice(&tlv::encode(
                0xA0,
                &tlv::encode(0x30, &tlv::encode(0x02, &integer(type_attrs.1))?)?,
            )?);
            v.extend_from_slice(&tlv::encode(0xA1, &tlv::encode(0x30, &path)?)?);
        }
        Ok(tlv::encode(outer, &v)?)
    }

    pub fn parse(data: &[u8]) -> Result<Self, Pkcs15Error> {
        let outer = Tlv::parse(data)?.0;
        let parts = tlv::parse_all(outer.value)?;
        let [common, key, rest @ ..] = parts.as_slice() else {
            return Err(Pkcs15Error::Malformed("PRKD"));
        };
        let label = label_of(common);
        let key_attrs = tlv::parse_all(key.value)?;
        let id = key_attrs
            .iter()
            .find(|t| t.tag.0 == 0x04)
            .ok_or(Pkcs15Error::Malformed("iD"))?
            .value
            .to_vec();
        let usage = key_attrs
            .iter()
            .find(|t| t.tag.0 == 0x03)
            .map(|t| t.value.to_vec())
            .unwrap_or_default();
        let key_ref = key_attrs
            .iter()
            .find(|t| t.tag.0 == 0x02)
            .map(|t| parse_integer(t.value))
            .transpose()?
            .unwrap_or(0);
        let key_ref = u8::try_from(key_ref).map_err(|_| Pkcs15Error::Malformed("key reference"))?;
        // The size: the first INTEGER anywhere inside the type attributes.
        let size = rest
            .iter()
            .find_map(|t| first_integer(t.value))
            .transpose()?
            .unwrap_or(0);
        let kind = match outer.tag.0 {
            0x30 => KeyKind::Rsa { modulus_bits: size },
            0xA0 => KeyKind::Ec { field_bits: size },
            0xA8 => KeyKind::Aes { key_bits: size },
            _ => return Err(Pkcs15Error::Malformed("key type")),
        };
        Ok(Self {
            label,
            id,
            usage,
            key_ref,
            kind,
        })
    }
}

/// The label (UTF8String) of common object attributes; empty when there is none.
fn label_of(common: &Tlv<'_>) -> String {
    common
        .children()
        .filter_map(Result::ok)
        .find(|t| t.tag.0 == 0x0C)
        .map(|t| String::from_utf8_lossy(t.value).into_owned())
        .unwrap_or_default()
}

fn first_integer(data: &[u8]) -> Option<Result<u32, Pkcs15Error>> {
    for t in tlv::TlvIter::new(data) {
        let t = t.ok()?;
        if t.tag.0 == 0x02 {
            return Some(parse_integer(t.value));
        }
        if t.tag.is_constructed()
            && let Some(v) = first_integer(t.value)
        {
            return Some(v);
        }
    }
    None
}

/// A certificate description (CD) pointing at a certificate EF (`CA<id>` / `CE<kid>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateDescription {
    pub label: String,
    pub id: Vec<u8>,
    /// FID of the EF holding the DER certificate.
    pub fid: u16,
}

impl CertificateDescription {
    pub fn encode(&self) -> Result<Vec<u8>, Pkcs15Error> {
        let mut common = Vec::new();
        tlv::write(&mut common, 0x0C, self.label.as_bytes())?;
        tlv::write(&mut common, 0x03, &[0x06, 0x40])?;
        let mut v = tlv::encode(0x30, &common)?;
        v.extend_from_slice(&tlv::encode(0x30, &tlv::encode(0x04, &self.id)?)?);
        let path = tlv::encode(0x30, &tlv::encode(0x04, &self.fid.to_be_bytes())?)?;
        v.extend_from_slice(&tlv::encode(0xA1, &tlv::encode(0x30, &path)?)?);
        Ok(tlv::encode(0x30, &v)?)
    }

    pub fn parse(data: &[u8]) -> Result<Self, Pkcs15Error> {
        let outer = Tlv::parse(data)?.0;
        let parts = tlv::parse_all(outer.value)?;
        let [common, attrs, typed, ..] = parts.as_slice() else {
            return Err(Pkcs15Error::Malformed("CD"));
        };
        let label = label_of(common);
        let id = attrs
            .find(0x04)?
            .ok_or(Pkcs15Error::Malformed("iD"))?
            .value
            .to_vec();
        let fid = find_path(typed.value).ok_or(Pkcs15Error::Malformed("path"))?;
        Ok(Self { label, id, fid })
    }
}

fn find_path(data: &[u8]) -> Option<u16> {
    for t in tlv::TlvIter::new(data) {
        let t = t.ok()?;
        if t.tag.0 == 0x04 && t.value.len() >= 2 {
            let n = t.value.len();
            return Some(u16::from_be_bytes([t.value[n - 2], t.value[n - 1]]));
        }
        if t.tag.is_constructed()
            && let Some(p) = find_path(t.value)
        {
            return Some(p);
        }
    }
    None
}

/// A data-object description (DCOD) pointing at a data EF (`CF<id>` public, `CD<id>` PIN-protected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataObjectDescription {
    pub label: String,
    pub application: String,
    /// DER value (without tag and length) of the application OID, if any.
    pub app_oid: Option<Vec<u8>>,
    /// Readable only after PIN verification.
    pub private: bool,
    pub fid: u16,
}

impl DataObjectDescription {
    pub fn encode(&self) -> Result<Vec<u8>, Pkcs15Error> {
        let mut common = Vec::new();
        tlv::write(&mut common, 0x0C, self.label.as_bytes())?;
        if self.private {
            tlv::write(&mut common, 0x03, &[0x06, 0xC0])?;
            tlv::write(&mut common, 0x04, &[0x01])?;
        } else {
            tlv::write(&mut common, 0x03, &[0x06, 0x40])?;
        }
        let mut v = tlv::encode(0x30, &common)?;
        let mut app = Vec::new();
        tlv::write(&mut app, 0x0C, self.application.as_bytes())?;
        if let Some(oid) = &self.app_oid {
            tlv::write(&mut app, 0x06, oid)?;
        }
        v.extend_from_slice(&tlv::encode(0x30, &app)?);
        let path = tlv::encode(0x30, &tlv::encode(0x04, &self.fid.to_be_bytes())?)?;
        v.extend_from_slice(&tlv::encode(0xA1, &path)?);
        Ok(tlv::encode(0x30, &v)?)
    }

    pub fn parse(data: &[u8]) -> Result<Self, Pkcs15Error> {
        let outer = Tlv::parse(data)?.0;
        let parts = tlv::parse_all(outer.value)?;
        let [common, app, typed, ..] = parts.as_slice() else {
            return Err(Pkcs15Error::Malformed("DCOD"));
        };
        let label = label_of(common);
        let private = common
            .find(0x03)?
            .is_some_and(|f| f.value.get(1).is_some_and(|b| b & 0x80 != 0));
        let application = label_of(app);
        let app_oid = app.find(0x06)?.map(|t| t.value.to_vec());
        let fid = find_path(typed.value).ok_or(Pkcs15Error::Malformed("path"))?;
        Ok(Self {
            label,
            application,
            app_oid,
            private,
            fid,
        })
    }
}
