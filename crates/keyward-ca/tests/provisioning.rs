#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Provisioning batches against in-process elements: chain + chip authentication, key
//! generation under secure messaging with its attestation verified, an X.509 certificate issued
//! and stored with its PKCS#15 description; forgeries refused.

use keyward_ca::SoftwareKey;
use keyward_ca::batch::BatchError;
use keyward_ca::provisioning::{self, Device, ProvisionError};
use keyward_ca::x509::{KeyUsage, Name, SubjectKey, Template, X509Ca, eku};
use keyward_card::{CardChannel, Hsm, InProcess, InitConfig, KeySpec};
use keyward_crypto::{Curve, EcKey, HashAlg};
use keyward_cvc::{PublicKey, TrustStore};
use keyward_se::dev_pki::{DevCa, today};
use keyward_se::{Applet, MemoryStore};
use keyward_sm::{ChipAuthHost, SmError};

const PIN: &[u8] = b"648219";

fn dev_ca() -> &'static DevCa {
    static CA: std::sync::OnceLock<DevCa> = std::sync::OnceLock::new();
    CA.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("keyward-prov-test-{}", std::process::id()));
        DevCa::open_or_create(&dir).unwrap()
    })
}

/// An initialized element, applet selected and PIN verified (what the device does locally).
fn element() -> InProcess<MemoryStore> {
    let mut hsm = Hsm::new(InProcess(Applet::new(
        dev_ca().new_element().unwrap(),
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
    hsm.verify_pin(PIN).unwrap();
    hsm.into_channel()
}

fn trust() -> TrustStore {
    let mut t = TrustStore::new();
    t.add_root(dev_ca().srca.clone()).unwrap();
    t
}

fn run(card: &mut InProcess<MemoryStore>, apdus: &[Vec<u8>]) -> Vec<Vec<u8>> {
    apdus
        .iter()
        .map(|a| card.transmit_raw(a).unwrap())
        .collect()
}

fn open(card: &mut InProcess<MemoryStore>) -> Device {
    let chip = ChipAuthHost::new(Curve::BrainpoolP256r1).unwrap();
    let b = provisioning::opening(&chip).unwrap();
    let r = run(card, b.apdus());
    Device::read(&b, &r, &trust(), today(), chip).unwrap()
}

fn issuing_ca() -> X509Ca {
    let key = Box::new(SoftwareKey::new(EcKey::generate(Curve::Secp256r1).unwrap()));
    X509Ca::self_signed(key, &Name::common_name("Test Issuing CA"), 0, 4_000_000_000).unwrap()
}

#[test]
fn provisioned_key_and_certificate_are_on_the_element() {
    let mut card = element();
    let mut device = open(&mut card);
    let kid = device.free_key_id().unwrap();
    let spec = KeySpec::Ec(Curve::Secp256r1);
    let b2 = device.generate(kid, spec, None, None).unwrap();
    let r2 = run(&mut card, b2.apdus());
    let (key, ar) = device.read_key(&b2, &r2).unwrap();
    assert_eq!(key.device_id, device.identity.device_id);
    let PublicKey::Ec { point, .. } = &key.public_key else {
        panic!("EC key expected")
    };
    let mut ca = issuing_ca();
    let cert = ca
        .issue(
            &Template {
                subject: Name::common_name(&key.device_id),
                not_before: 0,
                not_after: 4_000_000_000,
                key_usage: vec![KeyUsage::DigitalSignature],
                extended_key_usage: vec![eku::CLIENT_AUTH],
                alt_names: Vec::new(),
                ca: None,
                crl_url: None,
                ocsp_url: None,
                attestation: Some((key.device_id.clone(), HashAlg::Sha256.digest(&ar.raw))),
            },
            &SubjectKey::Ec {
                curve: Curve::Secp256r1,
                point: point.clone(),
            },
        )
        .unwrap();
    let b3 = device
        .store(kid, spec, "tls-client", &cert.der, &ar)
        .unwrap();
    let r3 = run(&mut card, b3.apdus());
    device.check_store(&b3, &r3).unwrap();

    // The plain channel (no SM any more) shows the certificate and the description.
    let mut hsm = Hsm::new(&mut card);
    hsm.select().unwrap();
    hsm.verify_pin(PIN).unwrap();
    assert_eq!(
        hsm.read_file(u16::from_be_bytes([0xCE, kid])).unwrap(),
        cert.der
    );
    let desc = hsm.key_description(kid).unwrap().unwrap();
    assert_eq!(desc.label, "tls-client");
    // The key signs; the certified public key verifies.
    let data = b"collected data";
    let sig = hsm.sign(kid, 0x73, data).unwrap();
    let plain = keyward_crypto::der_signature_to_plain(&sig, 32).unwrap();
    assert!(keyward_crypto::ecdsa_verify_prehash(
        Curve::Secp256r1,
        point,
        &HashAlg::Sha256.digest(data),
        &plain
    ));
}

#[test]
fn forgeries_are_refused() {
    // A chain from an untrusted root.
    let mut card = element();
    let chip = ChipAuthHost::new(Curve::BrainpoolP256r1).unwrap();
    let b = provisioning::opening(&chip).unwrap();
    let r = run(&mut card, b.apdus());
    assert!(matches!(
        Device::read(&b, &r, &TrustStore::new(), today(), chip),
        Err(ProvisionError::Chain(_))
    ));

    // A replayed GENERAL AUTHENTICATE answer (from another session) fails chip authentication.
    let chip1 = ChipAuthHost::new(Curve::BrainpoolP256r1).unwrap();
    let b1 = provisioning::opening(&chip1).unwrap();
    let old = run(&mut card, b1.apdus());
    let chip2 = ChipAuthHost::new(Curve::BrainpoolP256r1).unwrap();
    let b2 = provisioning::opening(&chip2).unwrap();
    let mut replayed = run(&mut card, b2.apdus());
    let n = replayed.len();
    replayed[n - 1] = old[n - 1].clone();
    assert!(matches!(
        Device::read(&b2, &replayed, &trust(), today(), chip2),
        Err(ProvisionError::ChipAuthentication(SmError::BadToken))
    ));

    // A tampered SM MAC on the key generation's answer.
    let mut card = element();
    let mut device = open(&mut card);
    let b = device
        .generate(1, KeySpec::Ec(Curve::Secp256r1), None, None)
        .unwrap();
    let mut r = run(&mut card, b.apdus());
    let m = r[0].len();
    r[0][m - 4] ^= 1;
    assert!(matches!(
        device.read_key(&b, &r),
        Err(ProvisionError::Batch(BatchError::SecureChannel { .. }))
    ));

    // An authenticated request signed by another device.
    let mut other = element();
    let mut other_device = open(&mut other);
    let b = other_device
        .generate(1, KeySpec::Ec(Curve::Secp256r1), None, None)
        .unwrap();
    let r = run(&mut other, b.apdus());
    let (_, foreign) = other_device.read_key(&b, &r).unwrap();
    let mut card = element();
    let device = open(&mut card);
    assert!(device.identity.verify_attestation(&foreign).is_err());
}

#[test]
fn a_profile_use_counter_limits_the_key() {
    let mut card = element();
    let mut device = open(&mut card);
    let b = device
        .generate(1, KeySpec::Ec(Curve::Secp256r1), None, Some(2))
        .unwrap();
    let r = run(&mut card, b.apdus());
    device.read_key(&b, &r).unwrap();
    let mut hsm = Hsm::new(&mut card);
    hsm.select().unwrap();
    hsm.verify_pin(PIN).unwrap();
    hsm.sign(1, 0x73, b"one").unwrap();
    hsm.sign(1, 0x73, b"two").unwrap();
    assert!(
        hsm.sign(1, 0x73, b"three").is_err(),
        "the use counter is spent"
    );
}
