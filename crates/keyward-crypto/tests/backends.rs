#![allow(clippy::unwrap_used)]
//! Signatures from either back end (aws-lc-rs for NIST curves and SHA-2 RSA, RustCrypto for
//! the rest) verify with the RustCrypto verifiers, for every curve and hash size.

use keyward_crypto::{
    Curve, EcKey, HashAlg, RsaKey, RsaPublicKey, RsaScheme, ecdsa_verify_prehash,
};

#[test]
fn ecdsa_every_curve_and_hash_size() {
    for curve in Curve::ALL {
        let key = EcKey::generate(curve).unwrap();
        for h in HashAlg::ALL {
            let hash = h.digest(b"message");
            let sig = key.sign_prehash_plain(&hash).unwrap();
            assert_eq!(sig.len(), 2 * curve.field_len(), "{curve:?} {h:?}");
            assert!(
                ecdsa_verify_prehash(curve, key.public_point(), &hash, &sig),
                "{curve:?} {h:?}"
            );
            let der = key.sign_prehash_der(&hash).unwrap();
            assert!(
                ecdsa_verify_prehash(curve, key.public_point(), &hash, &der),
                "{curve:?} {h:?}"
            );
        }
    }
}

#[test]
fn rsa_pkcs1_and_pss_every_hash() {
    let key = RsaKey::generate(2048).unwrap();
    let public = RsaPublicKey::new(&key.modulus(), &key.exponent()).unwrap();
    for h in HashAlg::ALL {
        let digest = h.digest(b"message");
        let sig = key.sign_pkcs1(h, &digest).unwrap();
        assert!(public.verify(RsaScheme::Pkcs1(h), &digest, &sig), "{h:?}");
        let di = [h.digest_info_prefix(), &digest].concat();
        assert_eq!(
            key.sign_pkcs1_digest_info(&di).unwrap(),
            sig,
            "deterministic: {h:?}"
        );
        let sig = key.sign_pss(h, &digest).unwrap();
        assert!(public.verify(RsaScheme::Pss(h), &digest, &sig), "{h:?}");
    }
}

/// RFC 4231 test cases 2 (short key) and 6 (key longer than the block).
#[test]
fn hmac_sha256_matches_rfc_4231() {
    assert_eq!(
        hex::encode(keyward_crypto::hmac_sha256(
            b"Jefe",
            b"what do ya want for nothing?"
        )),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        hex::encode(keyward_crypto::hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}
