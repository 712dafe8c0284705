#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A root and a Device Issuer CA whose keys live in (virtual) secure elements certify a device
//! key; the chain validates like a genuine SmartCard-HSM's, and defects are caught.

use keyward_ca::{CaError, CvcCa, ElementKey, device_chr, role};
use keyward_card::{Hsm, InProcess, InitConfig};
use keyward_crypto::{Curve, EcKey};
use keyward_cvc::{Certificate, ChainError, TrustStore};
use keyward_se::dev_pki::{DevCa, today};
use keyward_se::{Applet, MemoryStore};

const PIN: &[u8] = b"648219";

fn element(ca: &DevCa) -> InProcess<MemoryStore> {
    let mut hsm = Hsm::new(InProcess(Applet::new(
        ca.new_element().unwrap(),
        MemoryStore,
    )));
    hsm.select().unwrap();
    hsm.initialize(&InitConfig {
        options: 1,
        pin: PIN,
        so_pin: *b"12345678",
        retries: 3,
        dkek_shares: None,
    })
    .unwrap();
    hsm.into_channel()
}

#[test]
fn root_and_issuer_in_elements_certify_a_device() {
    let dir = std::env::temp_dir().join(format!("keyward-ca-test-{}", std::process::id()));
    let dev = DevCa::open_or_create(&dir).unwrap();
    let from = today();
    let root_key =
        ElementKey::generate(element(&dev), PIN, Curve::BrainpoolP256r1, "root").unwrap();
    let mut root = CvcCa::root(root_key, "UTSRCA00001", from, 20 * 365).unwrap();
    let issuer_key =
        ElementKey::generate(element(&dev), PIN, Curve::BrainpoolP256r1, "issuer").unwrap();
    let mut issuer = root
        .certify_ca(issuer_key, "UTDICA00001", from, 10 * 365)
        .unwrap();
    let device = EcKey::generate(Curve::BrainpoolP256r1).unwrap();
    let chr = device_chr("UT", "KWD", 42).unwrap();
    assert_eq!(chr, "UTKWD00042");
    let cert = issuer
        .certify(device.public_point(), &chr, role::DEVICE, from, 5 * 365)
        .unwrap();

    let mut trust = TrustStore::new();
    trust.add_root(root.certificate.clone()).unwrap();
    let c_devaut = [cert.raw.clone(), issuer.certificate.raw.clone()].concat();
    let id = trust.validate_c_devaut(&c_devaut, from).unwrap();
    assert_eq!(id.device_id, "UTKWD00042");
    assert_eq!(id.public_point, device.public_point());

    // A certificate whose signature was tampered with does not validate.
    let mut bad = cert.raw.clone();
    let n = bad.len();
    bad[n - 5] ^= 1;
    let bad = Certificate::parse(&bad).unwrap();
    let r = trust.validate(&bad, &issuer.certificate, from);
    assert!(matches!(r, Err(ChainError::BadSignature { .. })), "{r:?}");
    // Expired by the time it is checked.
    let late = from.add_days(6 * 365);
    assert!(trust.validate(&cert, &issuer.certificate, late).is_err());
}

#[test]
fn reopened_keys_sign_the_same_and_a_wrong_pin_is_refused() {
    let dir = std::env::temp_dir().join(format!("keyward-ca-reopen-{}", std::process::id()));
    let dev = DevCa::open_or_create(&dir).unwrap();
    let from = today();
    let key = ElementKey::generate(element(&dev), PIN, Curve::BrainpoolP256r1, "root").unwrap();
    let kid = key.kid();
    let root = CvcCa::root(key, "UTSRCA00002", from, 365).unwrap();
    let certificate = root.certificate.clone();
    let InProcess(applet) = root.into_key().into_channel();
    // The same element, opened again: the key and the certificate match.
    let again = ElementKey::open(InProcess(applet), PIN, kid).unwrap();
    let mut root = CvcCa::new(again, certificate.clone()).unwrap();
    let dica = root
        .certify(
            EcKey::generate(Curve::BrainpoolP256r1)
                .unwrap()
                .public_point(),
            "UTDICA00002",
            role::DEVICE_ISSUER,
            from,
            30,
        )
        .unwrap();
    let mut trust = TrustStore::new();
    trust.add_root(certificate).unwrap();
    let device_cert = dica.clone(); // role 80 is not a device certificate
    assert!(trust.validate(&device_cert, &dica, from).is_err());
    let r = ElementKey::open(element(&dev), b"000000", 1);
    assert!(matches!(r, Err(CaError::Element(_))));
    assert!(device_chr("U", "KWD", 1).is_err());
    assert!(device_chr("UT", "kwd", 1).is_err());
    assert!(device_chr("UT", "KWD", 100_000).is_err());
}
