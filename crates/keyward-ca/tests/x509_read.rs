#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Reading certificates as a relying party: fields against OpenSSL's view of the same
//! certificate, signatures (EC and RSA issuers), chain validation with each way it can fail, and
//! a parser that never panics on mutated input.

use std::process::Command;

use keyward_ca::SoftwareKey;
use keyward_ca::x509::{Name, NameAttr, RsaSoftwareKey, SubjectKey, Template, X509Ca};
use keyward_ca::x509_read::{Certificate, ChainError, validate_chain};
use keyward_crypto::{Curve, EcKey, RsaKey};
use proptest::prelude::*;

const T0: i64 = 1_790_000_000;

fn leaf_template(cn: &str) -> Template {
    Template::end_entity(
        Name::common_name(cn).with(NameAttr::Organization, "Acme"),
        T0,
        T0 + 86_400,
    )
}

fn ec_subject() -> SubjectKey {
    let k = EcKey::generate(Curve::Secp256r1).unwrap();
    SubjectKey::Ec {
        curve: Curve::Secp256r1,
        point: k.public_point().to_vec(),
    }
}

/// (leaf, issuing, root) from a CA pair with the given keys.
fn chain(rsa: bool) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let key = || -> Box<dyn keyward_ca::x509::X509Key> {
        if rsa {
            Box::new(RsaSoftwareKey(RsaKey::generate(2048).unwrap()))
        } else {
            Box::new(SoftwareKey::new(EcKey::generate(Curve::Secp384r1).unwrap()))
        }
    };
    let (mut issuing, root) = X509Ca::root_and_issuing(
        key(),
        key(),
        &Name::common_name("Test Root"),
        &Name::common_name("Test Issuing"),
        T0 - 86_400,
    )
    .unwrap();
    let leaf = issuing
        .issue(&leaf_template("ZZKWD00001"), &ec_subject())
        .unwrap()
        .der;
    (leaf, issuing.certificate.clone(), root)
}

#[test]
fn fields_match_openssls_reading() {
    let (leaf, _, _) = chain(false);
    let c = Certificate::parse(&leaf).unwrap();
    assert_eq!(c.subject_text(), "CN=ZZKWD00001, O=Acme");
    assert_eq!(c.issuer_text(), "CN=Test Issuing");
    assert_eq!((c.not_before, c.not_after), (T0, T0 + 86_400));
    let dir = std::env::temp_dir().join(format!("keyward-x509-read-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("leaf.der");
    std::fs::write(&path, &leaf).unwrap();
    let o = Command::new("openssl")
        .args([
            "x509", "-inform", "DER", "-noout", "-serial", "-dates", "-in",
        ])
        .arg(&path)
        .args(["-dateopt", "iso_8601"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let serial = hex::encode_upper(c.serial.strip_prefix(&[0][..]).unwrap_or(c.serial));
    assert!(text.contains(&format!("serial={serial}")), "{text}");
    // 1790000000 = 2026-09-21T14:13:20Z
    assert!(text.contains("notBefore=2026-09-21 14:13:20Z"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn chains_validate_and_each_defect_is_named() {
    for rsa in [false, true] {
        let (leaf, issuing, root) = chain(rsa);
        let inter = vec![issuing.clone()];
        let roots = vec![root.clone()];
        let never = |_: &Certificate<'_>| false;
        let path = validate_chain(&leaf, &inter, &roots, T0 + 60, &never).unwrap();
        assert_eq!(
            path,
            ["CN=ZZKWD00001, O=Acme", "CN=Test Issuing", "CN=Test Root"]
        );
        assert!(matches!(
            validate_chain(&leaf, &inter, &roots, T0 + 2 * 86_400, &never),
            Err(ChainError::Expired(_))
        ));
        assert!(matches!(
            validate_chain(&leaf, &[], &roots, T0 + 60, &never),
            Err(ChainError::Untrusted(_))
        ));
        let (_, _, other_root) = chain(rsa);
        assert!(matches!(
            validate_chain(&leaf, &inter, &[other_root], T0 + 60, &never),
            Err(ChainError::Untrusted(_))
        ));
        let revoked = |c: &Certificate<'_>| c.subject_text().starts_with("CN=ZZKWD");
        assert!(matches!(
            validate_chain(&leaf, &inter, &roots, T0 + 60, &revoked),
            Err(ChainError::Revoked(_))
        ));
        // A flipped bit in the leaf's signature.
        let mut forged = leaf.clone();
        let n = forged.len();
        forged[n - 3] ^= 1;
        assert!(validate_chain(&forged, &inter, &roots, T0 + 60, &never).is_err());
    }
}

proptest! {
    #[test]
    fn mutated_certificates_never_panic(pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        static LEAF: std::sync::OnceLock<(Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
        let (leaf, issuing) = LEAF.get_or_init(|| {
            let (l, i, _) = chain(false);
            (l, i)
        });
        let mut m = leaf.clone();
        let i = pos.index(m.len());
        m[i] = byte;
        m.truncate(cut.index(m.len() + 1));
        if let Ok(c) = Certificate::parse(&m) {
            let _ = c.subject_text();
            let issuer = Certificate::parse(issuing).unwrap();
            let _ = c.signed_by(&issuer);
        }
        let _ = validate_chain(&m, std::slice::from_ref(issuing), &[], T0, &|_| false);
    }
}
