//! A small DER writer for the X.509 structures the issuing CA builds: definite minimal lengths,
//! the universal types RFC 5280 uses, context tags.

/// One DER element: tag byte(s) and content.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

pub fn set(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x31, &parts.concat())
}

/// An OBJECT IDENTIFIER from its dotted form (first arc 0–2; arcs up to 128 bits).
pub fn oid(dotted: &str) -> Vec<u8> {
    tlv(0x06, &oid_content(dotted))
}

pub fn oid_content(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u128> = dotted.split('.').filter_map(|a| a.parse().ok()).collect();
    let mut out = Vec::new();
    let (first, rest) = match arcs.as_slice() {
        [a, b, rest @ ..] => (a * 40 + b, rest),
        _ => return out,
    };
    for arc in std::iter::once(first).chain(rest.iter().copied()) {
        let mut chunk = vec![(arc & 0x7F) as u8];
        let mut v = arc >> 7;
        while v > 0 {
            chunk.push(0x80 | (v & 0x7F) as u8);
            v >>= 7;
        }
        chunk.reverse();
        out.extend(chunk);
    }
    out
}

/// A non-negative INTEGER from big-endian magnitude bytes.
pub fn uint(magnitude: &[u8]) -> Vec<u8> {
    let skip = magnitude.iter().take_while(|b| **b == 0).count();
    let mut v = magnitude[skip..].to_vec();
    if v.first().is_none_or(|b| b & 0x80 != 0) {
        v.insert(0, 0);
    }
    tlv(0x02, &v)
}

pub fn small_int(n: u32) -> Vec<u8> {
    uint(&n.to_be_bytes())
}

pub fn boolean(v: bool) -> Vec<u8> {
    tlv(0x01, &[if v { 0xFF } else { 0x00 }])
}

pub fn null() -> Vec<u8> {
    vec![0x05, 0x00]
}

pub fn octets(v: &[u8]) -> Vec<u8> {
    tlv(0x04, v)
}

/// A BIT STRING of whole bytes.
pub fn bits(v: &[u8]) -> Vec<u8> {
    tlv(0x03, &[&[0u8][..], v].concat())
}

/// A named-bit BIT STRING (bit 0 = the first bit), DER: trailing zero bits removed.
pub fn named_bits(set_bits: &[u8]) -> Vec<u8> {
    let Some(&max) = set_bits.iter().max() else {
        return tlv(0x03, &[0]);
    };
    let mut bytes = vec![0u8; usize::from(max / 8) + 1];
    for b in set_bits {
        bytes[usize::from(b / 8)] |= 0x80 >> (b % 8);
    }
    let last = bytes[bytes.len() - 1];
    let unused = last.trailing_zeros() as u8;
    tlv(0x03, &[&[unused][..], &bytes].concat())
}

pub fn utf8(s: &str) -> Vec<u8> {
    tlv(0x0C, s.as_bytes())
}

pub fn printable(s: &str) -> Vec<u8> {
    tlv(0x13, s.as_bytes())
}

/// `[n]` EXPLICIT around an encoded element.
pub fn explicit(n: u8, inner: &[u8]) -> Vec<u8> {
    tlv(0xA0 | n, inner)
}

/// `[n]` IMPLICIT primitive content.
pub fn implicit(n: u8, content: &[u8]) -> Vec<u8> {
    tlv(0x80 | n, content)
}

/// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050, seconds, `Z`.
pub fn time(unix: i64) -> Vec<u8> {
    let (y, mo, d, h, mi, s) = civil(unix);
    if (1950..2050).contains(&y) {
        tlv(
            0x17,
            format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100).as_bytes(),
        )
    } else {
        tlv(
            0x18,
            format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z").as_bytes(),
        )
    }
}

/// GeneralizedTime (OCSP uses it for every time).
pub fn generalized_time(unix: i64) -> Vec<u8> {
    let (y, mo, d, h, mi, s) = civil(unix);
    tlv(
        0x18,
        format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z").as_bytes(),
    )
}

/// Unix seconds → (year, month, day, hour, minute, second), UTC (Howard Hinnant's algorithm).
pub fn civil(unix: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (secs / 3600) as u32,
        ((secs % 3600) / 60) as u32,
        (secs % 60) as u32,
    )
}

/// An EC private key as SEC1 `ECPrivateKey` DER (RFC 5915), for TLS libraries and OpenSSL.
/// The result holds the secret: the caller keeps it in `Zeroizing`.
pub fn ec_private_key(key: &keyward_crypto::EcKey) -> Vec<u8> {
    seq(&[
        &small_int(1),
        &octets(key.private_bytes()),
        &explicit(0, key.curve().oid_der()),
        &explicit(1, &bits(key.public_point())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(
            oid("1.2.840.10045.4.3.2"),
            hex::decode("06082a8648ce3d040302").unwrap()
        );
        assert_eq!(oid("2.5.29.15"), [0x06, 0x03, 0x55, 0x1D, 0x0F]);
        assert_eq!(uint(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(uint(&[0, 0, 1]), [0x02, 0x01, 0x01]);
        assert_eq!(uint(&[]), [0x02, 0x01, 0x00]);
        // keyUsage digitalSignature (0) + keyCertSign (5) + cRLSign (6): 03 02 01 86.
        assert_eq!(named_bits(&[0, 5, 6]), [0x03, 0x02, 0x01, 0x86]);
        assert_eq!(named_bits(&[0]), [0x03, 0x02, 0x07, 0x80]);
        assert_eq!(tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2C]);
        assert_eq!(time(0), b"\x17\x0d700101000000Z");
        assert_eq!(time(2_524_608_000), b"\x18\x0f20500101000000Z");
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
    }
}
