#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A CA set with password-encrypted keys: created once, opened with the password only, and its
//! DICA certifies devices whose chains validate against its root.

use keyward_ca::ca_set::{CaSet, CaSetError, KeyHome, Unlock};
use keyward_ca::role;
use keyward_crypto::{Curve, EcKey};
use keyward_cvc::TrustStore;
use keyward_se::dev_pki::today;

#[test]
fn encrypted_ca_set() {
    let dir = std::env::temp_dir().join(format!("keyward-caset-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let set = CaSet::init(
        &dir,
        &KeyHome::Encrypted {
            password: b"s3cret",
        },
        "UT",
        today(),
    )
    .unwrap();
    assert_eq!(set.root.body.chr, b"UTKWRCA00001");
    assert_eq!(set.dica.body.chr, b"UTKWDICA00001");
    assert!(matches!(
        CaSet::init(&dir, &KeyHome::Encrypted { password: b"x" }, "UT", today()),
        Err(CaSetError::Exists(_))
    ));
    let mode = |n: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(dir.join(n)).unwrap().permissions().mode() & 0o777
    };
    assert_eq!((mode("srca.key"), mode("dica.key")), (0o600, 0o600));

    let set = CaSet::open(&dir).unwrap();
    assert_eq!(set.dica_key_location(), "file:dica.key");
    assert!(matches!(
        set.dica(&Unlock::default()),
        Err(CaSetError::NoPassword(_))
    ));
    let wrong = Unlock {
        password: Some(b"wrong"),
        ..Unlock::default()
    };
    assert!(matches!(set.dica(&wrong), Err(CaSetError::KeyFile { .. })));
    let mut dica = set
        .dica(&Unlock {
            password: Some(b"s3cret"),
            ..Unlock::default()
        })
        .unwrap();
    let device = EcKey::generate(Curve::BrainpoolP256r1).unwrap();
    let cert = dica
        .certify(
            device.public_point(),
            "UTKWD00001",
            role::DEVICE,
            today(),
            365,
        )
        .unwrap();
    let mut trust = TrustStore::new();
    trust.add_root(set.root.clone()).unwrap();
    let id = trust
        .validate_c_devaut(&[cert.raw, set.dica.raw.clone()].concat(), today())
        .unwrap();
    assert_eq!(id.device_id, "UTKWD00001");
    let _ = std::fs::remove_dir_all(&dir);
}
