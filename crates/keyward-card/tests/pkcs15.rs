#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! PKCS#15 descriptions: the bytes OpenSC 0.23 wrote for keys it generated parse, and what we
//! encode has the same shape.

use keyward_card::pkcs15::{
    CertificateDescription, DataObjectDescription, KeyKind, PrivateKeyDescription,
};
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Written by `pkcs11-tool --keypairgen --key-type EC:prime256v1 --id 01 --label k01` (OpenSC 0.23).
const OPENSC_EC: &str = "A0 27 30 0C 0C 03 6B 30 31 03 02 06 C0 04 01 01 30 0B 04 01 01 03 03 07 30 80 02 01 01 A1 0A 30 08 30 02 04 00 02 02 01 00";
/// Written by `pkcs11-tool --keypairgen --key-type rsa:2048 --id 05 --label k05`.
const OPENSC_RSA: &str = "30 26 30 0C 0C 03 6B 30 35 03 02 06 C0 04 01 01 30 0A 04 01 05 03 02 04 70 02 01 05 A1 0A 30 08 30 02 04 00 02 02 08 00";

#[test]
fn opensc_descriptions_parse_and_re_encode_identically() {
    let ec = PrivateKeyDescription::parse(&hex(OPENSC_EC)).unwrap();
    assert_eq!(
        (ec.label.as_str(), ec.id.as_slice(), ec.key_ref),
        ("k01", &[1u8][..], 1)
    );
    assert_eq!(ec.kind, KeyKind::Ec { field_bits: 256 });
    assert_eq!(ec.usage, PrivateKeyDescription::EC_USAGE);
    assert_eq!(ec.encode().unwrap(), hex(OPENSC_EC));
    let rsa = PrivateKeyDescription::parse(&hex(OPENSC_RSA)).unwrap();
    assert_eq!(rsa.kind, KeyKind::Rsa { modulus_bits: 2048 });
    assert_eq!(rsa.encode().unwrap(), hex(OPENSC_RSA));
}

#[test]
fn certificate_and_secret_key_descriptions_round_trip() {
    let cd = CertificateDescription {
        label: "device".into(),
        id: vec![1, 2],
        fid: 0xCE01,
    };
    assert_eq!(
        CertificateDescription::parse(&cd.encode().unwrap()).unwrap(),
        cd
    );
    let aes = PrivateKeyDescription {
        label: "aes".into(),
        id: vec![9],
        usage: PrivateKeyDescription::AES_USAGE.to_vec(),
        key_ref: 9,
        kind: KeyKind::Aes { key_bits: 256 },
    };
    assert_eq!(
        PrivateKeyDescription::parse(&aes.encode().unwrap()).unwrap(),
        aes
    );
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = PrivateKeyDescription::parse(&bytes);
        let _ = CertificateDescription::parse(&bytes);
        let _ = DataObjectDescription::parse(&bytes);
    }

    #[test]
    fn dcod_round_trip(label in "[a-zA-Z0-9 ]{0,40}", app in "[a-z]{0,20}", oid in proptest::option::of(proptest::collection::vec(any::<u8>(), 1..12)), private in any::<bool>(), fid in any::<u16>()) {
        let d = DataObjectDescription { label, application: app, app_oid: oid, private, fid };
        prop_assert_eq!(DataObjectDescription::parse(&d.encode().unwrap()).unwrap(), d);
    }

    #[test]
    fn prkd_round_trip(label in "[a-zA-Z0-9 ]{0,40}", id in proptest::collection::vec(any::<u8>(), 1..21), key_ref in any::<u8>(), bits in 1u32..70000, kind in 0..3) {
        let kind = match kind { 0 => KeyKind::Rsa { modulus_bits: bits }, 1 => KeyKind::Ec { field_bits: bits }, _ => KeyKind::Aes { key_bits: bits } };
        let d = PrivateKeyDescription { label, id, usage: vec![0x07, 0x30, 0x80], key_ref, kind };
        prop_assert_eq!(PrivateKeyDescription::parse(&d.encode().unwrap()).unwrap(), d);
    }
}
