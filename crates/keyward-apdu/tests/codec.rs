#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Test vectors and properties for the APDU and BER-TLV codecs.

use keyward_apdu::tlv::{self, Tag, Tlv};
use keyward_apdu::{ApduError, Command, CommandView, ResponseView, StatusWord};
use proptest::prelude::*;

/// Decodes spaced hex; leaked so that views of test vectors can outlive the statement.
fn hex(s: &str) -> &'static [u8] {
    let s: String = s.split_whitespace().collect();
    let v: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect();
    v.leak()
}

#[test]
fn command_cases() {
    let c1 = CommandView::parse(hex("00A40400")).unwrap();
    assert_eq!((c1.data.len(), c1.le, c1.extended), (0, None, false));

    let c2 = CommandView::parse(hex("0084000008")).unwrap();
    assert_eq!(c2.le, Some(8));
    assert_eq!(CommandView::parse(hex("0084000000")).unwrap().le, Some(256));

    let select = hex("00A404000BE82B0601040181C31F020100");
    let c4 = CommandView::parse(select).unwrap();
    assert_eq!(c4.data, hex("E82B0601040181C31F0201"));
    assert_eq!(c4.le, Some(256));
    assert_eq!(c4.to_owned().encode().unwrap(), select);

    let c3 = CommandView::parse(hex("002000810431323334")).unwrap();
    assert_eq!((c3.data, c3.le), (&b"1234"[..], None));

    // Extended: ENUMERATE OBJECTS as OpenSC sends it (case 2E, Le = 0000 = 65536).
    let c2e = CommandView::parse(hex("80580000000000")).unwrap();
    assert_eq!((c2e.le, c2e.extended), (Some(65536), true));
    assert_eq!(c2e.to_owned().encode().unwrap(), hex("80580000000000"));

    let c4e = CommandView::parse(hex("80680170 000003 AABBCC 0000")).unwrap();
    assert_eq!((c4e.data, c4e.le), (hex("AABBCC"), Some(65536)));
    let c3e = CommandView::parse(hex("80680170 000002 AABB")).unwrap();
    assert_eq!((c3e.data, c3e.le, c3e.extended), (hex("AABB"), None, true));
}

#[test]
fn command_rejects_malformed() {
    assert_eq!(CommandView::parse(hex("00A404")), Err(ApduError::TooShort));
    // Lc says 4, only 3 bytes follow.
    assert_eq!(
        CommandView::parse(hex("00200081 04 313233")),
        Err(ApduError::LengthMismatch)
    );
    // Trailing garbage after Le.
    assert_eq!(
        CommandView::parse(hex("00200081 02 3132 00 00")),
        Err(ApduError::LengthMismatch)
    );
    assert_eq!(
        CommandView::parse(hex("00200081 0000 00 00")),
        Err(ApduError::ZeroLc)
    );
    assert_eq!(
        CommandView::parse(hex("00200081 000002 31 32 00")),
        Err(ApduError::LengthMismatch)
    );
    assert_eq!(
        CommandView::parse(hex("00200081 00 31")),
        Err(ApduError::LengthMismatch)
    );
}

#[test]
fn encode_picks_short_or_extended() {
    let short = Command::new(0, 0xB1, 0x2F, 0x02)
        .with_data(vec![0x54, 2, 0, 0])
        .with_le(256);
    assert_eq!(short.encode().unwrap(), hex("00B12F02 04 54020000 00"));
    let long = Command::new(0, 0xB1, 0x2F, 0x02)
        .with_data(vec![0x54, 2, 0, 0])
        .with_le(65536);
    assert_eq!(
        long.encode().unwrap(),
        hex("00B12F02 00 0004 54020000 0000")
    );
    let big = Command::new(0x80, 0x68, 1, 0x20).with_data(vec![0xAB; 256]);
    assert_eq!(&big.encode().unwrap()[..7], hex("8068012000 0100"));
    assert!(matches!(
        Command::new(0, 0, 0, 0).with_le(0).encode(),
        Err(ApduError::LeOutOfRange(0))
    ));
}

#[test]
fn responses_and_status_words() {
    let r = ResponseView::parse(hex("0102 9000")).unwrap();
    assert_eq!((r.data, r.sw), (&[1u8, 2][..], StatusWord::SUCCESS));
    assert_eq!(ResponseView::parse(&[0x90]), Err(ApduError::NoStatusWord));
    assert_eq!(StatusWord::verify_failed(2), StatusWord(0x63C2));
    assert_eq!(StatusWord(0x63C2).retries_left(), Some(2));
    assert_eq!(StatusWord(0x6983).retries_left(), None);
}

#[test]
fn tlv_vectors() {
    // A CV-certificate-like nesting with a 2-byte tag and an 0x81 length form.
    let mut value = vec![0x5F, 0x29, 0x01, 0x00];
    value.extend_from_slice(hex("42 03 414243"));
    value.extend_from_slice(&[0x53, 0x81, 0x80]);
    value.extend_from_slice(&[0xEE; 0x80]);
    let encoded = tlv::encode(0x7F4E, &value).unwrap();
    assert_eq!(&encoded[..4], hex("7F4E 81 8C"));
    let outer = Tlv::parse_exact(&encoded).unwrap();
    assert_eq!(outer.tag, Tag(0x7F4E));
    assert!(outer.tag.is_constructed());
    let kids = tlv::parse_all(outer.value).unwrap();
    assert_eq!(
        kids.iter().map(|t| t.tag.0).collect::<Vec<_>>(),
        vec![0x5F29, 0x42, 0x53]
    );
    assert_eq!(kids[2].value.len(), 0x80);
    assert_eq!(outer.find(0x42).unwrap().unwrap().value, b"ABC");
    assert_eq!(outer.find(0x99).unwrap(), None);

    // Three-byte tag, 82 and 83 length forms.
    let t = Tlv::parse_exact(hex("5F8101 82 0002 AABB")).unwrap();
    assert_eq!((t.tag, t.value), (Tag(0x5F8101), hex("AABB")));
    let t = Tlv::parse_exact(hex("04 83 000001 AA")).unwrap();
    assert_eq!(t.value, &[0xAA]);
}

#[test]
fn tlv_rejects_malformed() {
    assert_eq!(
        Tlv::parse_exact(hex("53 03 0102")),
        Err(ApduError::TlvTruncated)
    );
    assert_eq!(
        Tlv::parse_exact(hex("53 01 01 00")),
        Err(ApduError::TlvTrailingData)
    );
    assert_eq!(
        Tlv::parse_exact(hex("53 80 00 00")),
        Err(ApduError::TlvBadLength(0x80))
    );
    assert_eq!(
        Tlv::parse_exact(hex("53 84 00000001 00")),
        Err(ApduError::TlvBadLength(0x84))
    );
    assert_eq!(
        Tlv::parse_exact(hex("5F 81 81 81 01 00")),
        Err(ApduError::TlvTagTooLong)
    );
    assert_eq!(Tlv::parse_exact(hex("5F")), Err(ApduError::TlvTruncated));
    assert_eq!(
        tlv::parse_all(hex("8001AA 81")),
        Err(ApduError::TlvTruncated)
    );
}

fn arb_tag() -> impl Strategy<Value = u32> {
    prop_oneof![
        // One byte, not the multi-byte marker.
        any::<u8>()
            .prop_filter("not 1F", |b| b & 0x1F != 0x1F)
            .prop_map(u32::from),
        (any::<u8>(), 0u8..0x80).prop_map(|(a, b)| (u32::from(a | 0x1F) << 8) | u32::from(b)),
        (any::<u8>(), 0x80u8..=0xFF, 0u8..0x80).prop_map(|(a, b, c)| {
            (u32::from(a | 0x1F) << 16) | (u32::from(b) << 8) | u32::from(c)
        }),
    ]
}

proptest! {
    #[test]
    fn command_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(cmd) = CommandView::parse(&bytes) {
            // Anything that parses re-encodes to the same bytes.
            prop_assert_eq!(cmd.to_owned().encode().unwrap(), bytes);
        }
    }

    #[test]
    fn command_roundtrip(
        header in any::<[u8; 4]>(),
        data in proptest::collection::vec(any::<u8>(), 0..700),
        le in proptest::option::of(1u32..=65536),
        ext in any::<bool>(),
    ) {
        let mut cmd = Command::new(header[0], header[1], header[2], header[3]).with_data(data);
        cmd.le = le;
        cmd.force_extended = ext;
        let bytes = cmd.encode().unwrap();
        let view = CommandView::parse(&bytes).unwrap();
        prop_assert_eq!(view.data, &cmd.data[..]);
        prop_assert_eq!(view.le, cmd.le);
        prop_assert_eq!((view.cla, view.ins, view.p1, view.p2), (header[0], header[1], header[2], header[3]));
    }

    #[test]
    fn tlv_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut rest = &bytes[..];
        while let Ok((tlv, tail)) = Tlv::parse(rest) {
            let mut again = Vec::new();
            tlv::write(&mut again, tlv.tag.0, tlv.value).unwrap();
            // Re-encoding equals the raw bytes unless the input used a non-minimal length.
            prop_assert_eq!(Tlv::parse_exact(&again).unwrap().value, tlv.value);
            for child in tlv.children() { let _ = child; }
            if tail.len() == rest.len() { break; }
            rest = tail;
        }
    }

    #[test]
    fn tlv_roundtrip(tag in arb_tag(), value in proptest::collection::vec(any::<u8>(), 0..70000)) {
        let encoded = tlv::encode(tag, &value).unwrap();
        let parsed = Tlv::parse_exact(&encoded).unwrap();
        prop_assert_eq!(parsed.tag, Tag(tag));
        prop_assert_eq!(parsed.value, &value[..]);
        prop_assert_eq!(parsed.raw, &encoded[..]);
    }
}
