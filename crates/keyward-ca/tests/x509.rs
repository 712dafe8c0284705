#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! X.509 certificates from the issuing CA, checked by OpenSSL as an independent verifier:
//! RFC 5280 strictness, the client-authentication purpose, the attestation extension, EC and
//! RSA subject keys, CA keys on P-256 and P-384.

use std::path::Path;
use std::process::Command;

use keyward_ca::x509::{
    ATTESTATION_OID, AltName, KeyUsage, Name, NameAttr, Reason, RevokedEntry, SubjectKey, Template,
    X509Ca, eku,
};
use keyward_ca::{CaKey, SoftwareKey};
use keyward_crypto::{Curve, EcKey, RsaKey};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn pem(dir: &Path, name: &str, der: &[u8]) -> String {
    let d = dir.join(format!("{name}.der"));
    std::fs::write(&d, der).unwrap();
    let p = dir.join(format!("{name}.pem"));
    let o = Command::new("openssl")
        .args(["x509", "-inform", "DER", "-in"])
        .arg(&d)
        .arg("-out")
        .arg(&p)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    p.display().to_string()
}

fn openssl(args: &[&str]) -> String {
    let o = Command::new("openssl").args(args).output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn client_template(cn: &str) -> Template {
    Template {
        subject: Name::common_name(cn).with(NameAttr::Organization, "Keyward test"),
        not_before: now() - 60,
        not_after: now() + 365 * 86_400,
        key_usage: vec![KeyUsage::DigitalSignature],
        extended_key_usage: vec![eku::CLIENT_AUTH],
        alt_names: vec![AltName::Uri(format!("urn:keyward:device:{cn}"))],
        ca: None,
        crl_url: Some("http://127.0.0.1:8080/crl/issuing.crl".into()),
        ocsp_url: None,
        attestation: Some((cn.to_string(), vec![0xAB; 32])),
    }
}

fn chain_checks(ca_curve: Curve) {
    let dir = std::env::temp_dir().join(format!(
        "keyward-x509-{}-{}",
        std::process::id(),
        ca_curve.name()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let root_key = Box::new(SoftwareKey::new(EcKey::generate(ca_curve).unwrap()));
    let root_name = Name::common_name("Keyward Test Root").with(NameAttr::Country, "ZZ");
    let mut root =
        X509Ca::self_signed(root_key, &root_name, now() - 60, now() + 3650 * 86_400).unwrap();
    let issuing_key = SoftwareKey::new(EcKey::generate(ca_curve).unwrap());
    let issuing_subject = SubjectKey::Ec {
        curve: ca_curve,
        point: issuing_key.point().to_vec(),
    };
    let issuing_cert = root
        .issue(
            &Template {
                subject: Name::common_name("Keyward Test Issuing CA"),
                not_before: now() - 60,
                not_after: now() + 1825 * 86_400,
                key_usage: vec![KeyUsage::KeyCertSign, KeyUsage::CrlSign],
                extended_key_usage: Vec::new(),
                alt_names: Vec::new(),
                ca: Some(Some(0)),
                crl_url: None,
                ocsp_url: None,
                attestation: None,
            },
            &issuing_subject,
        )
        .unwrap();
    let mut issuing = X509Ca::new(Box::new(issuing_key), issuing_cert.der.clone()).unwrap();
    let root_pem = pem(&dir, "root", &root.certificate);
    let issuing_pem = pem(&dir, "issuing", &issuing.certificate);

    let device = EcKey::generate(Curve::Secp256r1).unwrap();
    let ec_leaf = issuing
        .issue(
            &client_template("ZZKWD00001"),
            &SubjectKey::Ec {
                curve: Curve::Secp256r1,
                point: device.public_point().to_vec(),
            },
        )
        .unwrap();
    assert_eq!(ec_leaf.serial.len(), 16);
    let rsa = RsaKey::generate(2048).unwrap();
    let (n, e, ..) = rsa.parts().unwrap();
    let rsa_leaf = issuing
        .issue(
            &client_template("ZZKWD00002"),
            &SubjectKey::Rsa {
                modulus: n,
                exponent: e,
            },
        )
        .unwrap();
    assert_ne!(ec_leaf.serial, rsa_leaf.serial);
    for (name, leaf) in [("ec", &ec_leaf), ("rsa", &rsa_leaf)] {
        let leaf_pem = pem(&dir, name, &leaf.der);
        let out = openssl(&[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslclient",
            "-CAfile",
            &root_pem,
            "-untrusted",
            &issuing_pem,
            &leaf_pem,
        ]);
        assert!(out.contains(": OK"), "{name}: {out}");
        let text = openssl(&["x509", "-noout", "-text", "-in", &leaf_pem]);
        assert!(text.contains(ATTESTATION_OID), "{text}");
        assert!(text.contains("TLS Web Client Authentication"), "{text}");
        assert!(
            text.contains("URI:http://127.0.0.1:8080/crl/issuing.crl"),
            "{text}"
        );
        assert!(text.contains("URI:urn:keyward:device:"), "{text}");
    }
    // A CRL revoking the EC leaf: OpenSSL checks its signature and refuses that leaf only.
    let crl = issuing
        .crl(
            &[RevokedEntry {
                serial: ec_leaf.serial.clone(),
                revoked_at: now() - 10,
                reason: Reason::KeyCompromise,
            }],
            now() - 5,
            now() + 86_400,
            7,
        )
        .unwrap();
    std::fs::write(dir.join("crl.der"), &crl).unwrap();
    let crl_der = dir.join("crl.der").display().to_string();
    let crl_pem = dir.join("crl.pem").display().to_string();
    let out = openssl(&["crl", "-inform", "DER", "-in", &crl_der, "-out", &crl_pem]);
    assert!(out.is_empty(), "{out}");
    let out = openssl(&[
        "crl",
        "-in",
        &crl_pem,
        "-CAfile",
        &issuing_pem,
        "-noout",
        "-text",
    ]);
    assert!(
        out.contains("verify OK") || out.contains("Key Compromise"),
        "{out}"
    );
    assert!(out.contains("X509v3 CRL Number"), "{out}");
    let chain = |leaf: &str| {
        openssl(&[
            "verify",
            "-x509_strict",
            "-crl_check",
            "-CRLfile",
            &crl_pem,
            "-CAfile",
            &root_pem,
            "-untrusted",
            &issuing_pem,
            leaf,
        ])
    };
    let ec_pem = dir.join("ec.pem").display().to_string();
    let rsa_pem = dir.join("rsa.pem").display().to_string();
    assert!(
        chain(&ec_pem).contains("certificate revoked"),
        "{}",
        chain(&ec_pem)
    );
    assert!(chain(&rsa_pem).contains(": OK"), "{}", chain(&rsa_pem));

    // Our own verifier agrees with OpenSSL.
    assert!(keyward_ca::x509::verify_issued(&ec_leaf.der, &issuing.certificate).unwrap());
    assert!(keyward_ca::x509::verify_issued(&issuing.certificate, &root.certificate).unwrap());
    assert!(!keyward_ca::x509::verify_issued(&ec_leaf.der, &root.certificate).unwrap());

    // A certificate whose signature was tampered with is refused.
    let mut bad = ec_leaf.der.clone();
    let n = bad.len();
    bad[n - 5] ^= 1;
    assert!(!keyward_ca::x509::verify_issued(&bad, &issuing.certificate).unwrap_or(false));
    let bad_pem = pem(&dir, "bad", &bad);
    let out = openssl(&[
        "verify",
        "-CAfile",
        &root_pem,
        "-untrusted",
        &issuing_pem,
        &bad_pem,
    ]);
    assert!(!out.contains(": OK"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn p256_ca_chain_verifies_with_openssl() {
    chain_checks(Curve::Secp256r1);
}

#[test]
fn p384_ca_chain_verifies_with_openssl() {
    chain_checks(Curve::Secp384r1);
}

#[test]
fn a_certificate_for_another_key_is_not_this_cas() {
    let key = Box::new(SoftwareKey::new(EcKey::generate(Curve::Secp256r1).unwrap()));
    let ca = X509Ca::self_signed(key, &Name::common_name("A"), 0, 86_400).unwrap();
    let other = Box::new(SoftwareKey::new(EcKey::generate(Curve::Secp256r1).unwrap()));
    assert!(X509Ca::new(other, ca.certificate.clone()).is_err());
}

#[test]
fn rsa_ca_chain_verifies_with_openssl() {
    use keyward_ca::x509::RsaSoftwareKey;
    let dir = std::env::temp_dir().join(format!("keyward-x509-rsa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut issuing, root) = X509Ca::root_and_issuing(
        Box::new(RsaSoftwareKey(RsaKey::generate(2048).unwrap())),
        Box::new(RsaSoftwareKey(RsaKey::generate(2048).unwrap())),
        &Name::common_name("RSA Root"),
        &Name::common_name("RSA Issuing"),
        now() - 60,
    )
    .unwrap();
    let device = EcKey::generate(Curve::Secp256r1).unwrap();
    let leaf = issuing
        .issue(
            &client_template("ZZKWD00009"),
            &SubjectKey::Ec {
                curve: Curve::Secp256r1,
                point: device.public_point().to_vec(),
            },
        )
        .unwrap();
    assert!(keyward_ca::x509::verify_issued(&leaf.der, &issuing.certificate).unwrap());
    assert!(keyward_ca::x509::verify_issued(&issuing.certificate, &root).unwrap());
    let root_pem = pem(&dir, "root", &root);
    let issuing_pem = pem(&dir, "issuing", &issuing.certificate);
    let leaf_pem = pem(&dir, "leaf", &leaf.der);
    let out = openssl(&[
        "verify",
        "-x509_strict",
        "-purpose",
        "sslclient",
        "-CAfile",
        &root_pem,
        "-untrusted",
        &issuing_pem,
        &leaf_pem,
    ]);
    assert!(out.contains(": OK"), "{out}");
    let text = openssl(&["x509", "-noout", "-text", "-in", &leaf_pem]);
    assert!(text.contains("sha256WithRSAEncryption"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
