//! RFC 7512 `pkcs11:` URIs naming a key in a token: path attributes (`token`, `serial`,
//! `manufacturer`, `model`, `object`, `id`, `type`, `slot-id`, …) separated by `;`, query
//! attributes (`pin-value`, `pin-source`, `module-path`, `module-name`) after `?` separated by
//! `&`, values percent-encoded.

use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum UriError {
    #[error("not a pkcs11: URI")]
    Scheme,
    #[error("attribute {0:?} is not `name=value`")]
    Attribute(String),
    #[error("bad percent-encoding in {0:?}")]
    Encoding(String),
    #[error("attribute {0:?} appears twice")]
    Duplicate(String),
    #[error("slot-id {0:?} is not a number")]
    SlotId(String),
}

/// The parts of a `pkcs11:` URI a CA key needs.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct Pkcs11Uri {
    pub token: Option<String>,
    pub serial: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub slot_id: Option<u64>,
    /// The key's label (CKA_LABEL).
    pub object: Option<String>,
    /// The key's CKA_ID.
    pub id: Option<Vec<u8>>,
    pub object_type: Option<String>,
    pub pin_value: Option<Zeroizing<String>>,
    /// A file holding the PIN (`file:` prefix optional).
    pub pin_source: Option<String>,
    pub module_path: Option<String>,
}

impl std::fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Uri")
            .field("token", &self.token)
            .field("serial", &self.serial)
            .field("slot_id", &self.slot_id)
            .field("object", &self.object)
            .field("id", &self.id)
            .field("pin_value", &self.pin_value.as_ref().map(|_| "<secret>"))
            .field("pin_source", &self.pin_source)
            .field("module_path", &self.module_path)
            .finish_non_exhaustive()
    }
}

fn decode(raw: &str) -> Result<Vec<u8>, UriError> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = raw
                .get(i + 1..i + 3)
                .ok_or_else(|| UriError::Encoding(raw.to_string()))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UriError::Encoding(raw.to_string()))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn text(raw: &str) -> Result<String, UriError> {
    String::from_utf8(decode(raw)?).map_err(|_| UriError::Encoding(raw.to_string()))
}

fn set<T>(slot: &mut Option<T>, name: &str, v: T) -> Result<(), UriError> {
    if slot.is_some() {
        return Err(UriError::Duplicate(name.to_string()));
    }
    *slot = Some(v);
    Ok(())
}

impl Pkcs11Uri {
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        let rest = uri.strip_prefix("pkcs11:").ok_or(UriError::Scheme)?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut u = Self::default();
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| UriError::Attribute(attr.to_string()))?;
            match name {
                "token" => set(&mut u.token, name, text(value)?)?,
                "serial" => set(&mut u.serial, name, text(value)?)?,
                "manufacturer" => set(&mut u.manufacturer, name, text(value)?)?,
                "model" => set(&mut u.model, name, text(value)?)?,
                "object" => set(&mut u.object, name, text(value)?)?,
                "id" => set(&mut u.id, name, decode(value)?)?,
                "type" => set(&mut u.object_type, name, text(value)?)?,
                "slot-id" => {
                    let v = text(value)?;
                    let n = v.parse().map_err(|_| UriError::SlotId(v.clone()))?;
                    set(&mut u.slot_id, name, n)?;
                }
                // Library and slot description attributes narrow nothing we need.
                _ => {}
            }
        }
        for attr in query.split('&').filter(|a| !a.is_empty()) {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| UriError::Attribute(attr.to_string()))?;
            match name {
                "pin-value" => set(&mut u.pin_value, name, Zeroizing::new(text(value)?))?,
                "pin-source" => set(&mut u.pin_source, name, text(value)?)?,
                "module-path" => set(&mut u.module_path, name, text(value)?)?,
                _ => {}
            }
        }
        Ok(u)
    }

    /// The PIN: `pin-value`, or the first line of the `pin-source` file.
    pub fn pin(&self) -> std::io::Result<Option<Zeroizing<String>>> {
        if let Some(v) = &self.pin_value {
            return Ok(Some(v.clone()));
        }
        let Some(src) = &self.pin_source else {
            return Ok(None);
        };
        let path = src.strip_prefix("file:").unwrap_or(src);
        let content = Zeroizing::new(std::fs::read_to_string(path)?);
        Ok(Some(Zeroizing::new(
            content.lines().next().unwrap_or_default().to_string(),
        )))
    }
}

/// A URI as recorded: without `pin-value` (a `pin-source` file may stay).
pub fn without_pin(uri: &str) -> String {
    let Some((path, query)) = uri.split_once('?') else {
        return uri.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|a| !a.starts_with("pin-value="))
        .collect();
    if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc7512_examples() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("The Software PKCS#11 Softtoken"));
        assert_eq!(u.manufacturer.as_deref(), Some("Snake Oil, Inc."));
        assert_eq!(u.object.as_deref(), Some("my-certificate"));
        assert_eq!(
            u.id.as_deref(),
            Some(&[0x69, 0x95, 0x3E, 0x5C, 0xF4, 0xBD, 0xEC, 0x91][..])
        );
        assert_eq!(u.serial.as_deref(), Some(""));
        assert_eq!(u.pin_source.as_deref(), Some("file:/etc/token_pin"));
        let u = Pkcs11Uri::parse("pkcs11:slot-id=3;object=dica?pin-value=1234&module-path=/usr/lib/softhsm/libsofthsm2.so").unwrap();
        assert_eq!(u.slot_id, Some(3));
        assert_eq!(u.pin_value.as_deref().map(String::as_str), Some("1234"));
        assert_eq!(
            u.module_path.as_deref(),
            Some("/usr/lib/softhsm/libsofthsm2.so")
        );
        assert!(
            !format!("{u:?}").contains("1234"),
            "the PIN is never printed"
        );
        assert_eq!(Pkcs11Uri::parse("file:x").unwrap_err(), UriError::Scheme);
        assert_eq!(
            Pkcs11Uri::parse("pkcs11:object=a;object=b").unwrap_err(),
            UriError::Duplicate("object".into())
        );
        assert!(matches!(
            Pkcs11Uri::parse("pkcs11:id=%G1"),
            Err(UriError::Encoding(_))
        ));
        assert!(matches!(
            Pkcs11Uri::parse("pkcs11:token"),
            Err(UriError::Attribute(_))
        ));
    }

    proptest! {
        #[test]
        fn any_text_parses_or_is_refused(s in "pkcs11:.{0,120}") {
            let _ = Pkcs11Uri::parse(&s);
        }

        #[test]
        fn encoded_values_read_back(object in ".{0,30}", id in prop::collection::vec(any::<u8>(), 0..20)) {
            let enc = |b: &[u8]| b.iter().map(|x| format!("%{x:02X}")).collect::<String>();
            let uri = format!("pkcs11:object={};id={}", enc(object.as_bytes()), enc(&id));
            let u = Pkcs11Uri::parse(&uri).unwrap();
            prop_assert_eq!(u.object.as_deref(), Some(object.as_str()));
            prop_assert_eq!(u.id.as_deref(), Some(id.as_slice()));
        }
    }
}
