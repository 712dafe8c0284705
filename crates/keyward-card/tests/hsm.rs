#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The typed SmartCard-HSM API against the in-process element.

use keyward_card::pkcs15::KeyKind;
use keyward_card::{Hsm, HsmError, InProcess, InitConfig, KeySpec, PinStatus};
use keyward_crypto::{Curve, EcKey, HashAlg, der_signature_to_plain, ecdsa_verify_prehash};
use keyward_cvc::PublicKey;
use keyward_se::dev_pki::DevCa;
use keyward_se::{Applet, MemoryStore};

#[test]
fn typed_api_end_to_end() {
    let dir = std::env::temp_dir().join(format!("keyward-hsm-test-{}", std::process::id()));
    let ca = DevCa::open_or_create(&dir).unwrap();
    let mut hsm = Hsm::new(InProcess(Applet::new(
        ca.new_element().unwrap(),
        MemoryStore,
    )));
    hsm.select().unwrap();
    assert_eq!(hsm.pin_status().unwrap(), PinStatus::NotInitialized);
    assert_eq!(hsm.so_pin_tries().unwrap(), None);
    let r = hsm.verify_pin(b"648219");
    assert!(matches!(r, Err(HsmError::NotInitialized)), "{r:?}");
    let so = *b"12345678";
    hsm.initialize(&InitConfig {
        options: 1,
        pin: b"648219",
        so_pin: so,
        retries: 3,
        dkek_shares: None,
    })
    .unwrap();
    assert_eq!(hsm.pin_status().unwrap(), PinStatus::TriesLeft(3));
    assert_eq!(hsm.so_pin_tries().unwrap(), Some(15));
    assert!(matches!(
        hsm.verify_pin(b"000000"),
        Err(HsmError::PinIncorrect(2))
    ));
    assert!(matches!(
        hsm.generate(1, KeySpec::Ec(Curve::Secp256r1), "k", &[1]),
        Err(HsmError::NotLoggedIn)
    ));
    hsm.verify_pin(b"648219").unwrap();
    assert_eq!(hsm.pin_status().unwrap(), PinStatus::Verified);

    let kid = hsm.free_key_id().unwrap();
    assert_eq!(kid, 1);
    let ar = hsm
        .generate(kid, KeySpec::Ec(Curve::BrainpoolP256r1), "ec key", &[0xAA])
        .unwrap()
        .unwrap();
    let d = hsm.key_description(kid).unwrap().unwrap();
    assert_eq!(
        (d.label.as_str(), d.id.as_slice(), d.kind),
        ("ec key", &[0xAA][..], KeyKind::Ec { field_bits: 256 })
    );
    let PublicKey::Ec { point, .. } = &ar.request.body.public_key else {
        panic!()
    };
    let sig = hsm.sign(kid, 0x73, b"msg").unwrap();
    let sig = der_signature_to_plain(&sig, 32).unwrap();
    assert!(ecdsa_verify_prehash(
        Curve::BrainpoolP256r1,
        point,
        &HashAlg::Sha256.digest(b"msg"),
        &sig
    ));
    let peer = EcKey::generate(Curve::BrainpoolP256r1).unwrap();
    assert_eq!(
        hsm.ecdh(kid, peer.public_point()).unwrap(),
        peer.ecdh(point).unwrap().to_vec()
    );

    hsm.generate(2, KeySpec::Rsa(1024), "rsa", &[2])
        .unwrap()
        .unwrap();
    assert_eq!(
        hsm.key_description(2).unwrap().unwrap().kind,
        KeyKind::Rsa { modulus_bits: 1024 }
    );
    assert!(
        hsm.generate(3, KeySpec::Aes(256), "aes", &[3])
            .unwrap()
            .is_none()
    );
    let ct = hsm.cipher(3, 0x10, &[1; 32]).unwrap();
    assert_eq!(hsm.cipher(3, 0x11, &ct).unwrap(), vec![1; 32]);
    assert_eq!(hsm.key_ids().unwrap(), vec![1, 2, 3]);
    assert_eq!(hsm.free_key_id().unwrap(), 4);
    assert!(matches!(
        hsm.sign(3, 0x70, &[0; 32]),
        Err(HsmError::AlgorithmNotAllowed)
    ));

    hsm.delete_key(2).unwrap();
    assert_eq!(hsm.key_ids().unwrap(), vec![1, 3]);
    assert_eq!(hsm.key_description(2).unwrap(), None);
    assert_eq!(hsm.random(16).unwrap().len(), 16);

    hsm.change_pin(b"648219", b"271828").unwrap();
    hsm.select().unwrap();
    for _ in 0..3 {
        let _ = hsm.verify_pin(b"000000");
    }
    assert_eq!(hsm.pin_status().unwrap(), PinStatus::Blocked);
    assert!(matches!(
        hsm.verify_pin(b"271828"),
        Err(HsmError::PinBlocked)
    ));
    hsm.unblock_pin(&so, Some(b"648219")).unwrap();
    hsm.verify_pin(b"648219").unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
