//! PEM (RFC 7468) for certificates and CRLs: written with 64-column lines, read leniently
//! (any whitespace inside the base64, text between blocks ignored).

use base64::Engine as _;

use crate::CaError;

/// `-----BEGIN {label}-----` … `-----END {label}-----` around `der`.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A certificate as PEM.
pub fn certificate(der: &[u8]) -> String {
    encode("CERTIFICATE", der)
}

/// Every block labelled `label` in `text`, decoded, in order.
pub fn decode_all(label: &str, text: &str) -> Result<Vec<Vec<u8>>, CaError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let body = &rest[start + begin.len()..];
        let stop = body
            .find(&end)
            .ok_or(CaError::Malformed("PEM block without its end"))?;
        let b64: String = body[..stop].split_whitespace().collect();
        out.push(
            base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|_| CaError::Malformed("PEM base64"))?,
        );
        rest = &body[stop + end.len()..];
    }
    Ok(out)
}

/// Certificates from a file's content: PEM blocks, or else one DER certificate.
pub fn certificates(content: &[u8]) -> Result<Vec<Vec<u8>>, CaError> {
    match std::str::from_utf8(content) {
        Ok(text) if text.contains("-----BEGIN") => decode_all("CERTIFICATE", text),
        _ => Ok(vec![content.to_vec()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_bundles() {
        let a: Vec<u8> = (0..200u8).collect();
        let b = vec![0x30, 0x03, 1, 2, 3];
        let bundle = format!("junk\n{}between\n{}", certificate(&a), certificate(&b));
        assert_eq!(decode_all("CERTIFICATE", &bundle).unwrap(), [a.clone(), b]);
        assert_eq!(certificates(&a).unwrap(), [a]);
        assert!(decode_all("CERTIFICATE", "-----BEGIN CERTIFICATE-----\nAAAA").is_err());
        assert!(
            decode_all(
                "CERTIFICATE",
                "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----"
            )
            .is_err()
        );
    }

    proptest! {
        #[test]
        fn never_panics(text in ".{0,300}", der in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_all("CERTIFICATE", &text);
            let _ = certificates(text.as_bytes());
            prop_assert_eq!(decode_all("X", &encode("X", &der)).unwrap(), vec![der]);
        }
    }
}
