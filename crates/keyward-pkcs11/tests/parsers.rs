#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The module's parsers of outside data (certificates and public keys found on a card, the
//! configuration file) and the host-side RSA unpadding never panic, and encodings round-trip.

use keyward_crypto::{Curve, HashAlg, rsa_pad};
use keyward_pkcs11::config::Config;
use keyward_pkcs11::object::PublicKey;
use keyward_pkcs11::x509;
use proptest::prelude::*;

proptest! {
    #[test]
    fn certificate_and_spki_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = x509::parse(&bytes);
        let _ = x509::parse_spki(&bytes);
    }

    #[test]
    fn spki_round_trip(curve in 0usize..6, n in proptest::collection::vec(any::<u8>(), 1..300), rsa in any::<bool>()) {
        let key = if rsa {
            let mut n = n;
            n[0] |= 0x80;
            PublicKey::Rsa { n, e: vec![1, 0, 1] }
        } else {
            let curve = Curve::ALL[curve];
            PublicKey::Ec { curve, point: vec![4; 1 + 2 * curve.field_len()] }
        };
        prop_assert_eq!(x509::parse_spki(&x509::encode_spki(&key).unwrap()), Some(key));
    }

    #[test]
    fn config_parser_never_panics(text in "(\\PC|\n){0,300}") {
        let _ = Config::parse(&text, std::path::Path::new("fuzz.toml"));
    }

    #[test]
    fn rsa_unpadding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = rsa_pad::pkcs1_type1_unpad(&bytes);
        let _ = rsa_pad::pkcs1_type2_unpad(&bytes);
        for h in HashAlg::ALL {
            let _ = rsa_pad::oaep_unpad(h, b"", &bytes);
        }
    }
}
