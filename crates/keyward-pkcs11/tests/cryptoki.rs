#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The built `libkeyward_pkcs11.so`, loaded through the `cryptoki` crate like any application
//! would, against embedded tokens and a token behind a T=1 link. Every result is checked
//! independently on the host (signatures verified, ciphertexts decrypted, ECDH recomputed).
//!
//! Runs without the libtest harness: the module reads its configuration from the environment
//! once, so `main` writes the configuration and sets the variable before any thread exists.

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use keyward_card::{Hsm, InProcess, InitConfig};
use keyward_crypto::{Curve, EcKey, HashAlg, RsaPublicKey, RsaScheme};
use keyward_cvc::{AuthenticatedRequest, TrustStore};
use keyward_pkcs11::CKA_KEYWARD_ATTESTATION;
use keyward_se::dev_pki::DevCa;
use keyward_se::{Applet, StateFile};

const PIN: &str = "648219";
const SO_PIN: &str = "3537363231383830";

struct Fixture {
    ctx: Pkcs11,
    main: Slot,
    stress: Slot,
    scratch: Slot,
    t1: Slot,
    ca: DevCa,
}

/// Creates an initialized element in a state file.
fn element(ca: &DevCa, path: &Path) {
    let state = ca.new_element().unwrap();
    let key = StateFile::default_key_path(path);
    StateFile::create(path, &key, &state).unwrap();
    let (file, state) = StateFile::open(path, &key).unwrap();
    let mut hsm = Hsm::new(InProcess(Applet::new(state, file)));
    hsm.select().unwrap();
    hsm.initialize(&InitConfig {
        options: 1,
        pin: PIN.as_bytes(),
        so_pin: *b"57621880",
        retries: 3,
        dkek_shares: None,
    })
    .unwrap();
}

/// Serves the element in `state` over a T=1 (NXP I2C) link on a Unix socket, one host at a time.
fn serve_t1(state: PathBuf, socket: &Path) {
    let listener = UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        let key = StateFile::default_key_path(&state);
        let (file, st) = StateFile::open(&state, &key).unwrap();
        let mut applet = Applet::new(st, file);
        let _ =
            keyward_t1::bus::serve_unix(
                &listener,
                keyward_t1::Variant::NxpI2c,
                None,
                |r| match r {
                    keyward_t1::bus::CardRequest::Apdu(apdu) => applet.transmit(apdu),
                    _ => Vec::new(),
                },
            );
    });
}

fn library() -> PathBuf {
    // The module cargo built for this test run sits next to the test binary
    // (target/<profile>/deps/), not yet copied up to target/<profile>/.
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().join("libkeyward_pkcs11.so")
}

fn setup() -> Fixture {
    let dir = std::env::temp_dir().join(format!("keyward-pkcs11-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = DevCa::open_or_create(&dir.join("ca")).unwrap();
    for name in ["main", "stress", "scratch", "t1"] {
        element(&ca, &dir.join(format!("{name}.se")));
    }
    let socket = dir.join("t1.sock");
    serve_t1(dir.join("t1.se"), &socket);
    let conf = dir.join("pkcs11.toml");
    std::fs::write(
        &conf,
        format!(
            "[[slot]]\ntype = \"embedded\"\nstate = \"{0}/main.se\"\n\n\
             [[slot]]\ntype = \"embedded\"\nstate = \"{0}/stress.se\"\n\n\
             [[slot]]\ntype = \"embedded\"\nstate = \"{0}/scratch.se\"\n\n\
             [[slot]]\ntype = \"t1\"\npath = \"{1}\"\nvariant = \"nxp-i2c\"\n",
            dir.display(),
            socket.display()
        ),
    )
    .unwrap();
    // SAFETY: called from `main` before any other thread of this process reads the environment
    // (the T=1 server thread above never touches it).
    unsafe { std::env::set_var("KEYWARD_PKCS11_CONF", &conf) };
    let ctx = Pkcs11::new(library()).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slots = ctx.get_slots_with_token().unwrap();
    assert_eq!(slots.len(), 4, "three embedded tokens and one over T=1");
    Fixture {
        ctx,
        main: slots[0],
        stress: slots[1],
        scratch: slots[2],
        t1: slots[3],
        ca,
    }
}

fn user_session(ctx: &Pkcs11, slot: Slot) -> Session {
    let s = ctx.open_rw_session(slot).unwrap();
    match s.login(UserType::User, Some(&AuthPin::from(PIN))) {
        Ok(()) | Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("login: {e}"),
    }
    s
}

fn rv<T: std::fmt::Debug>(r: cryptoki::error::Result<T>) -> RvError {
    match r {
        Err(Error::Pkcs11(rv, _)) => rv,
        other => panic!("expected a CK_RV error, got {other:?}"),
    }
}

fn bytes(s: &Session, h: ObjectHandle, ty: AttributeType) -> Vec<u8> {
    match s.get_attributes(h, &[ty]).unwrap().pop() {
        Some(Attribute::EcParams(v) | Attribute::EcPoint(v) | Attribute::Modulus(v))
        | Some(Attribute::PublicExponent(v) | Attribute::Value(v) | Attribute::Id(v))
        | Some(Attribute::Label(v) | Attribute::VendorDefined((_, v))) => v,
        other => panic!("{ty:?}: {other:?}"),
    }
}

fn flag(s: &Session, h: ObjectHandle, ty: AttributeType) -> bool {
    match s.get_attributes(h, &[ty]).unwrap().pop() {
        Some(
            Attribute::Sensitive(b)
            | Attribute::Extractable(b)
            | Attribute::NeverExtractable(b)
            | Attribute::AlwaysSensitive(b)
            | Attribute::Local(b)
            | Attribute::Private(b)
            | Attribute::Token(b),
        ) => b,
        other => panic!("{ty:?}: {other:?}"),
    }
}

fn ec_point(s: &Session, public: ObjectHandle) -> Vec<u8> {
    let der = bytes(s, public, AttributeType::EcPoint);
    // DER OCTET STRING around the uncompressed point.
    let t = keyward_apdu::tlv::Tlv::parse_exact(&der).unwrap();
    assert_eq!(t.tag.0, 0x04);
    t.value.to_vec()
}

fn ec_pair(s: &Session, curve: Curve, label: &str) -> (ObjectHandle, ObjectHandle) {
    s.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[
            Attribute::Token(true),
            Attribute::EcParams(curve.oid_der().to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
        ],
        &[
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Sign(true),
            Attribute::Label(label.as_bytes().to_vec()),
        ],
    )
    .unwrap()
}

// ---- the tests ----------------------------------------------------------------------------

fn token_and_mechanism_info(f: &Fixture) {
    let info = f.ctx.get_token_info(f.main).unwrap();
    assert!(
        info.serial_number().starts_with("KWD"),
        "{}",
        info.serial_number()
    );
    assert!(info.user_pin_initialized() && info.token_initialized() && info.login_required());
    let mechs = f.ctx.get_mechanism_list(f.main).unwrap();
    for m in [
        MechanismType::ECDSA,
        MechanismType::ECDSA_SHA256,
        MechanismType::RSA_PKCS_PSS,
        MechanismType::RSA_PKCS_OAEP,
        MechanismType::ECDH1_DERIVE,
        MechanismType::AES_CBC_PAD,
        MechanismType::AES_CMAC,
        MechanismType::SHA384,
    ] {
        assert!(mechs.contains(&m), "{m}");
    }
    let lib = f.ctx.get_library_info().unwrap();
    assert_eq!(lib.manufacturer_id(), "Keyward");
}

fn ec_keys_every_curve(f: &Fixture) {
    let s = user_session(&f.ctx, f.main);
    let mut trust = TrustStore::new();
    trust.add_root(f.ca.srca.clone()).unwrap();
    // The device chain as CVC certificate objects, validated like a back end would. A search
    // for every certificate shows X.509 only; the CVCs are found by their labels.
    let all_certs = s
        .find_objects(&[Attribute::Class(ObjectClass::CERTIFICATE)])
        .unwrap();
    for h in &all_certs {
        let v = s.get_attributes(*h, &[AttributeType::Value]).unwrap();
        assert!(
            !matches!(v.first(), Some(Attribute::Value(v)) if v.starts_with(&[0x7F, 0x21])),
            "a class-only search lists no card-verifiable certificate"
        );
    }
    let mut device_certs = Vec::new();
    for label in ["Device certificate", "Device issuer CA certificate"] {
        device_certs.extend(
            s.find_objects(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .unwrap(),
        );
    }
    assert_eq!(device_certs.len(), 2);
    let mut chain = Vec::new();
    for h in &device_certs {
        // cryptoki has no name for the vendor certificate type; read it as raw bytes.
        let ty = s.get_attributes(*h, &[AttributeType::Value]).unwrap();
        let Some(Attribute::Value(v)) = ty.first() else {
            panic!("certificate without value")
        };
        if v.starts_with(&[0x7F, 0x21]) {
            chain.extend_from_slice(v);
        }
    }
    assert!(!chain.is_empty(), "device chain objects");
    let identity = trust
        .validate_c_devaut(&chain, keyward_se::dev_pki::today())
        .unwrap();

    for curve in Curve::ALL {
        let (public, private) = ec_pair(&s, curve, curve.name());
        assert_eq!(bytes(&s, private, AttributeType::EcParams), curve.oid_der());
        assert!(flag(&s, private, AttributeType::Sensitive));
        assert!(!flag(&s, private, AttributeType::Extractable));
        assert!(flag(&s, private, AttributeType::NeverExtractable));
        assert!(flag(&s, private, AttributeType::AlwaysSensitive));
        assert!(flag(&s, private, AttributeType::Local));
        // cryptoki drops attributes the module answers CKR_ATTRIBUTE_SENSITIVE for.
        assert!(
            s.get_attributes(private, &[AttributeType::Value])
                .unwrap()
                .is_empty()
        );
        let point = ec_point(&s, public);
        // The attestation: an authenticated request by this device over exactly this key.
        let att = bytes(
            &s,
            private,
            AttributeType::VendorDefined(CKA_KEYWARD_ATTESTATION),
        );
        let attested = identity
            .verify_attestation(&AuthenticatedRequest::parse(&att).unwrap())
            .unwrap();
        let keyward_cvc::PublicKey::Ec { point: p, .. } = &attested.public_key else {
            panic!("EC attestation")
        };
        assert_eq!(p, &point);

        for (mech, hash) in [
            (Mechanism::Ecdsa, None),
            (Mechanism::EcdsaSha1, Some(HashAlg::Sha1)),
            (Mechanism::EcdsaSha224, Some(HashAlg::Sha224)),
            (Mechanism::EcdsaSha256, Some(HashAlg::Sha256)),
            (Mechanism::EcdsaSha384, Some(HashAlg::Sha384)),
            (Mechanism::EcdsaSha512, Some(HashAlg::Sha512)),
        ] {
            let data = b"data signed by the element";
            let input = match hash {
                Some(_) => data.to_vec(),
                None => HashAlg::Sha256.digest(data),
            };
            let sig = s.sign(&mech, private, &input).unwrap();
            assert_eq!(sig.len(), 2 * curve.field_len());
            let digest = hash.unwrap_or(HashAlg::Sha256).digest(data);
            assert!(
                keyward_crypto::ecdsa_verify_prehash(curve, &point, &digest, &sig),
                "{curve:?} {mech:?}"
            );
            s.verify(&mech, public, &input, &sig).unwrap();
            let mut bad = sig.clone();
            bad[5] ^= 1;
            assert_eq!(
                rv(s.verify(&mech, public, &input, &bad)),
                RvError::SignatureInvalid
            );
        }
        // Multi-part signing gives a valid signature over the concatenation.
        s.sign_init(&Mechanism::EcdsaSha256, private).unwrap();
        s.sign_update(b"data signed ").unwrap();
        s.sign_update(b"in parts").unwrap();
        let sig = s.sign_final().unwrap();
        let digest = HashAlg::Sha256.digest(b"data signed in parts");
        assert!(keyward_crypto::ecdsa_verify_prehash(
            curve, &point, &digest, &sig
        ));
    }
}

fn ecdh_derive(f: &Fixture) {
    let s = user_session(&f.ctx, f.main);
    let (public, private) = ec_pair(&s, Curve::Secp384r1, "ecdh");
    let card_point = ec_point(&s, public);
    let host = EcKey::generate(Curve::Secp384r1).unwrap();
    let params = Ecdh1DeriveParams::new(EcKdf::null(), host.public_point());
    let secret = s
        .derive_key(
            &Mechanism::Ecdh1Derive(params),
            private,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::Token(false),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
            ],
        )
        .unwrap();
    let z = bytes(&s, secret, AttributeType::Value);
    let expected = host.ecdh(&card_point).unwrap();
    assert_eq!(z, expected[1..1 + Curve::Secp384r1.field_len()]);
}

fn rsa_mechanisms(f: &Fixture) {
    let s = user_session(&f.ctx, f.main);
    let (public, private) = s
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
                Attribute::Label(b"rsa".to_vec()),
                Attribute::Id(vec![0x52, 0x53]),
            ],
            &[
                Attribute::Token(true),
                Attribute::Sign(true),
                Attribute::Decrypt(true),
            ],
        )
        .unwrap();
    assert_eq!(bytes(&s, private, AttributeType::Id), [0x52, 0x53]);
    let n = bytes(&s, public, AttributeType::Modulus);
    let e = bytes(&s, public, AttributeType::PublicExponent);
    assert_eq!(n.len(), 256);
    let host = RsaPublicKey::new(&n, &e).unwrap();
    let data = b"signed with RSA";
    let digest = HashAlg::Sha256.digest(data);
    let pss = |h: MechanismType, mgf: PkcsMgfType, len: u64| PkcsPssParams {
        hash_alg: h,
        mgf,
        s_len: len.into(),
    };

    let di = [HashAlg::Sha256.digest_info_prefix(), &digest].concat();
    let sig = s.sign(&Mechanism::RsaPkcs, private, &di).unwrap();
    assert!(host.verify(RsaScheme::Pkcs1(HashAlg::Sha256), &digest, &sig));
    s.verify(&Mechanism::RsaPkcs, public, &di, &sig).unwrap();

    for (mech, h) in [
        (Mechanism::Sha1RsaPkcs, HashAlg::Sha1),
        (Mechanism::Sha256RsaPkcs, HashAlg::Sha256),
        (Mechanism::Sha384RsaPkcs, HashAlg::Sha384),
        (Mechanism::Sha512RsaPkcs, HashAlg::Sha512),
    ] {
        let sig = s.sign(&mech, private, data).unwrap();
        assert!(host.verify(RsaScheme::Pkcs1(h), &h.digest(data), &sig));
        s.verify(&mech, public, data, &sig).unwrap();
    }

    let p = pss(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 32);
    let sig = s.sign(&Mechanism::RsaPkcsPss(p), private, &digest).unwrap();
    assert!(host.verify(RsaScheme::Pss(HashAlg::Sha256), &digest, &sig));
    s.verify(&Mechanism::RsaPkcsPss(p), public, &digest, &sig)
        .unwrap();
    let sig = s
        .sign(&Mechanism::Sha256RsaPkcsPss(p), private, data)
        .unwrap();
    assert!(host.verify(RsaScheme::Pss(HashAlg::Sha256), &digest, &sig));
    let p384 = pss(MechanismType::SHA384, PkcsMgfType::MGF1_SHA384, 48);
    let sig = s
        .sign(&Mechanism::Sha384RsaPkcsPss(p384), private, data)
        .unwrap();
    assert!(host.verify(
        RsaScheme::Pss(HashAlg::Sha384),
        &HashAlg::Sha384.digest(data),
        &sig
    ));
    // A PSS salt length the element does not use is refused up front.
    let odd = pss(MechanismType::SHA256, PkcsMgfType::MGF1_SHA256, 20);
    assert_eq!(
        rv(s.sign(&Mechanism::RsaPkcsPss(odd), private, &digest)),
        RvError::MechanismParamInvalid
    );

    // Raw RSA both ways.
    let mut block = vec![0u8; 256];
    block[255] = 7;
    let c = s.encrypt(&Mechanism::RsaX509, public, &block).unwrap();
    assert_eq!(s.decrypt(&Mechanism::RsaX509, private, &c).unwrap(), block);
    // PKCS#1 v1.5 and OAEP encryption: on the host with the public key, unpadded on the host
    // after the element's raw decryption.
    let c = s.encrypt(&Mechanism::RsaPkcs, public, b"secret").unwrap();
    assert_eq!(
        s.decrypt(&Mechanism::RsaPkcs, private, &c).unwrap(),
        b"secret"
    );
    for (h, mgf) in [
        (MechanismType::SHA1, PkcsMgfType::MGF1_SHA1),
        (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
    ] {
        let oaep = Mechanism::RsaPkcsOaep(PkcsOaepParams::new(h, mgf, PkcsOaepSource::empty()));
        let c = s.encrypt(&oaep, public, b"oaep secret").unwrap();
        assert_eq!(s.decrypt(&oaep, private, &c).unwrap(), b"oaep secret");
        let mut bad = c.clone();
        bad[10] ^= 0x40;
        assert_eq!(
            rv(s.decrypt(&oaep, private, &bad)),
            RvError::EncryptedDataInvalid
        );
    }
}

fn aes_on_the_element(f: &Fixture) {
    let s = user_session(&f.ctx, f.main);
    let key = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::ValueLen(32.into()),
                Attribute::Label(b"aes".to_vec()),
            ],
        )
        .unwrap();
    assert!(
        s.get_attributes(key, &[AttributeType::Value])
            .unwrap()
            .is_empty()
    );
    let iv = [0x42u8; 16];
    let plain: Vec<u8> = (0..64u8).collect();
    let c = s.encrypt(&Mechanism::AesCbc(iv), key, &plain).unwrap();
    assert_eq!(c.len(), 64);
    assert_eq!(s.decrypt(&Mechanism::AesCbc(iv), key, &c).unwrap(), plain);
    // CBC with an IV: the second half encrypted with the first half's last block as IV gives
    // the same blocks.
    let tail = s
        .encrypt(
            &Mechanism::AesCbc(c[16..32].try_into().unwrap()),
            key,
            &plain[32..],
        )
        .unwrap();
    assert_eq!(tail, c[32..]);
    let c = s
        .encrypt(&Mechanism::AesCbcPad(iv), key, b"odd length")
        .unwrap();
    assert_eq!(c.len(), 16);
    assert_eq!(
        s.decrypt(&Mechanism::AesCbcPad(iv), key, &c).unwrap(),
        b"odd length"
    );
    let mac = s.sign(&Mechanism::AesCMac, key, b"authenticated").unwrap();
    assert_eq!(mac.len(), 16);
    s.verify(&Mechanism::AesCMac, key, b"authenticated", &mac)
        .unwrap();
    assert_eq!(
        rv(s.verify(&Mechanism::AesCMac, key, b"tampered", &mac)),
        RvError::SignatureInvalid
    );
    assert_eq!(
        s.digest(&Mechanism::Sha384, b"abc").unwrap(),
        HashAlg::Sha384.digest(b"abc")
    );
    let r = s.generate_random_vec(300).unwrap();
    assert_eq!(r.len(), 300);
}

/// A syntactically valid X.509 certificate around a given SubjectPublicKeyInfo.
fn certificate(spki: &[u8], cn: &str) -> Vec<u8> {
    use keyward_apdu::tlv::encode;
    let name = encode(
        0x30,
        &encode(
            0x31,
            &encode(
                0x30,
                &[
                    encode(0x06, &[0x55, 4, 3]).unwrap(),
                    encode(0x0C, cn.as_bytes()).unwrap(),
                ]
                .concat(),
            )
            .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let alg = encode(
        0x30,
        &encode(0x06, &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 4, 3, 2]).unwrap(),
    )
    .unwrap();
    let validity = encode(
        0x30,
        &[
            encode(0x17, b"260101000000Z").unwrap(),
            encode(0x17, b"360101000000Z").unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    let tbs = encode(
        0x30,
        &[
            encode(0xA0, &encode(0x02, &[2]).unwrap()).unwrap(),
            encode(0x02, &[0x01, 0x23]).unwrap(),
            alg.clone(),
            name.clone(),
            validity,
            name,
            spki.to_vec(),
        ]
        .concat(),
    )
    .unwrap();
    encode(
        0x30,
        &[tbs, alg, encode(0x03, &[0, 0x30, 0]).unwrap()].concat(),
    )
    .unwrap()
}

fn objects(f: &Fixture) {
    let s = user_session(&f.ctx, f.main);
    let (public, private) = ec_pair(&s, Curve::Secp256r1, "with cert");
    let id = bytes(&s, private, AttributeType::Id);
    assert_eq!(
        id,
        HashAlg::Sha1.digest(&ec_point(&s, public)),
        "OpenSC-style intrinsic id"
    );
    let spki = match s
        .get_attributes(public, &[AttributeType::PublicKeyInfo])
        .unwrap()
        .pop()
    {
        Some(Attribute::PublicKeyInfo(v)) => v,
        other => panic!("{other:?}"),
    };
    let cert = certificate(&spki, "device 1");
    let ch = s
        .create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Id(id.clone()),
            Attribute::Label(b"device cert".to_vec()),
            Attribute::Value(cert.clone()),
        ])
        .unwrap();
    // Found by id, with the certificate's value, subject and serial.
    let found = s
        .find_objects(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Id(id.clone()),
        ])
        .unwrap();
    assert_eq!(found, vec![ch]);
    assert_eq!(bytes(&s, ch, AttributeType::Value), cert);
    // The public key is now the certificate's, and still there.
    let pubs = s
        .find_objects(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Id(id.clone()),
        ])
        .unwrap();
    assert_eq!(pubs.len(), 1);
    // A CA certificate (no key with its id) and data objects, public and private.
    let ca = s
        .create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Token(true),
            Attribute::Id(vec![0xCA]),
            Attribute::Label(b"issuer".to_vec()),
            Attribute::Value(certificate(&spki, "issuer")),
        ])
        .unwrap();
    s.update_attributes(ca, &[Attribute::Label(b"renamed issuer".to_vec())])
        .unwrap();
    assert_eq!(bytes(&s, ca, AttributeType::Label), b"renamed issuer");
    let public_data = s
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Label(b"config".to_vec()),
            Attribute::Application(b"keyward".to_vec()),
            Attribute::Value(b"endpoint=https://example.invalid".to_vec()),
        ])
        .unwrap();
    s.create_object(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Label(b"secret config".to_vec()),
        Attribute::Value(b"token=42".to_vec()),
    ])
    .unwrap();
    assert_eq!(
        bytes(&s, public_data, AttributeType::Value),
        b"endpoint=https://example.invalid"
    );
    // Labels of keys change through their PKCS#15 description.
    s.update_attributes(private, &[Attribute::Label(b"relabelled".to_vec())])
        .unwrap();
    assert_eq!(bytes(&s, private, AttributeType::Label), b"relabelled");
    assert_eq!(bytes(&s, public, AttributeType::Label), b"relabelled");
    assert_eq!(
        rv(s.update_attributes(private, &[Attribute::Sign(false)])),
        RvError::AttributeReadOnly
    );

    // A second application session without login sees public objects only.
    let ro = f.ctx.open_ro_session(f.main).unwrap();
    let data_label = |sess: &Session, l: &[u8]| {
        sess.find_objects(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Label(l.to_vec()),
        ])
        .unwrap()
        .len()
    };
    assert_eq!(
        data_label(&ro, b"secret config"),
        1,
        "still logged in (application-wide)"
    );
    s.logout().unwrap();
    assert_eq!(data_label(&ro, b"config"), 1);
    assert_eq!(data_label(&ro, b"secret config"), 0);
    assert!(
        ro.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        rv(ro.sign(&Mechanism::Ecdsa, private, &[0; 32])),
        RvError::KeyHandleInvalid
    );
    drop(ro);
    let s = user_session(&f.ctx, f.main);
    assert_eq!(
        rv(s.destroy_object(public)),
        RvError::ActionProhibited,
        "the public key goes with its private key"
    );
    s.destroy_object(ch).unwrap();
    s.destroy_object(ca).unwrap();
    s.destroy_object(public_data).unwrap();
    assert_eq!(data_label(&s, b"config"), 0);
    s.destroy_object(private).unwrap();
    assert!(
        s.find_objects(&[Attribute::Id(id)]).unwrap().is_empty(),
        "key, public key and certificate gone"
    );
}

fn misuse_answers(f: &Fixture) {
    // SAFETY: arbitrary handle values the module never issued; it must reject them.
    let (bogus_key, bogus_object) = unsafe {
        (
            ObjectHandle::new_from_raw(0xFFFF_FF00),
            ObjectHandle::new_from_raw(0xFFFF_FF01),
        )
    };
    let s = user_session(&f.ctx, f.main);
    let (_, private) = ec_pair(&s, Curve::Secp256r1, "misuse");
    assert_eq!(rv(s.sign_final()), RvError::OperationNotInitialized);
    s.sign_init(&Mechanism::Ecdsa, private).unwrap();
    assert_eq!(
        rv(s.sign_init(&Mechanism::Ecdsa, private)),
        RvError::OperationActive
    );
    assert_eq!(
        rv(s.sign_update(b"x")),
        RvError::FunctionNotSupported,
        "raw ECDSA is single-part"
    );
    assert_eq!(rv(s.sign_final()), RvError::OperationNotInitialized);
    assert_eq!(
        rv(s.sign(&Mechanism::RsaPkcs, private, b"x")),
        RvError::KeyTypeInconsistent
    );
    assert_eq!(
        rv(s.sign(&Mechanism::Ecdsa, bogus_key, b"x")),
        RvError::KeyHandleInvalid
    );
    assert_eq!(
        rv(s.get_attributes(bogus_object, &[AttributeType::Label])),
        RvError::ObjectHandleInvalid
    );
    assert_eq!(
        rv(s.login(UserType::User, Some(&AuthPin::from(PIN)))),
        RvError::UserAlreadyLoggedIn
    );
    assert_eq!(
        rv(s.encrypt(&Mechanism::AesCbc([0; 16]), private, b"0123456789abcdef")),
        RvError::KeyFunctionNotPermitted
    );
}

fn pins_and_reinitialization(f: &Fixture) {
    let slot = f.scratch;
    let s = f.ctx.open_rw_session(slot).unwrap();
    assert_eq!(
        rv(s.login(UserType::User, Some(&AuthPin::from("000000")))),
        RvError::PinIncorrect
    );
    assert!(f.ctx.get_token_info(slot).unwrap().user_pin_count_low());
    assert_eq!(
        rv(s.login(UserType::User, Some(&AuthPin::from("000000")))),
        RvError::PinIncorrect
    );
    assert!(f.ctx.get_token_info(slot).unwrap().user_pin_final_try());
    // The attempt that uses up the counter: the element answers "blocked" right away.
    assert!(matches!(
        rv(s.login(UserType::User, Some(&AuthPin::from("000000")))),
        RvError::PinIncorrect | RvError::PinLocked
    ));
    assert!(f.ctx.get_token_info(slot).unwrap().user_pin_locked());
    assert_eq!(
        rv(s.login(UserType::User, Some(&AuthPin::from(PIN)))),
        RvError::PinLocked
    );
    // The SO unblocks with C_InitPIN, then the user changes the PIN.
    s.login(UserType::So, Some(&AuthPin::from(SO_PIN))).unwrap();
    s.init_pin(&AuthPin::from("112233")).unwrap();
    s.logout().unwrap();
    s.login(UserType::User, Some(&AuthPin::from("112233")))
        .unwrap();
    s.set_pin(&AuthPin::from("112233"), &AuthPin::from(PIN))
        .unwrap();
    let (_, key) = ec_pair(&s, Curve::Secp256r1, "wiped");
    s.logout().unwrap();
    drop(s);
    // Re-initialization with the SO-PIN wipes the keys; the SO then sets a user PIN.
    assert_eq!(
        rv(f.ctx
            .init_token(slot, &AuthPin::from("0000000000000000"), "x")),
        RvError::PinIncorrect
    );
    f.ctx
        .init_token(slot, &AuthPin::from(SO_PIN), "fresh")
        .unwrap();
    let s = f.ctx.open_rw_session(slot).unwrap();
    s.login(UserType::So, Some(&AuthPin::from(SO_PIN))).unwrap();
    s.init_pin(&AuthPin::from(PIN)).unwrap();
    s.logout().unwrap();
    s.login(UserType::User, Some(&AuthPin::from(PIN))).unwrap();
    assert_eq!(
        rv(s.sign(&Mechanism::Ecdsa, key, &[1; 32])),
        RvError::KeyHandleInvalid
    );
    assert!(
        s.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
            .unwrap()
            .is_empty()
    );
}

fn t1_slot(f: &Fixture) {
    let s = user_session(&f.ctx, f.t1);
    let (public, private) = ec_pair(&s, Curve::BrainpoolP256r1, "over T=1");
    let point = ec_point(&s, public);
    let digest = HashAlg::Sha256.digest(b"over the bus");
    let sig = s.sign(&Mechanism::Ecdsa, private, &digest).unwrap();
    assert!(keyward_crypto::ecdsa_verify_prehash(
        Curve::BrainpoolP256r1,
        &point,
        &digest,
        &sig
    ));
}

/// 32 threads, each with its own session, sign for a bounded time on one token; every
/// signature is verified, so an interleaved APDU sequence would show as a failure.
fn stress_32_threads(f: &Fixture) {
    let setup = user_session(&f.ctx, f.stress);
    let (public, private) = ec_pair(&setup, Curve::Secp256r1, "stress");
    let point = ec_point(&setup, public);
    let threads = 32;
    let barrier = Arc::new(Barrier::new(threads));
    let total = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(3);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (barrier, total, point) = (barrier.clone(), total.clone(), point.clone());
            let ctx = &f.ctx;
            let slot = f.stress;
            scope.spawn(move || {
                let s = ctx.open_ro_session(slot).unwrap();
                barrier.wait();
                let mut n = 0u32;
                while Instant::now() < deadline {
                    let msg = format!("thread {t} message {n}");
                    let sig = s
                        .sign(&Mechanism::EcdsaSha256, private, msg.as_bytes())
                        .unwrap();
                    assert!(keyward_crypto::ecdsa_verify_prehash(
                        Curve::Secp256r1,
                        &point,
                        &HashAlg::Sha256.digest(msg.as_bytes()),
                        &sig
                    ));
                    n += 1;
                }
                total.fetch_add(n as usize, Ordering::Relaxed);
                assert!(n > 0, "thread {t} starved");
            });
        }
    });
    println!(
        "  32 threads: {} verified signatures in 3 s",
        total.load(Ordering::Relaxed)
    );
}

/// NULL pointers and bad handles at the C boundary (through the raw function list).
fn c_boundary(_: &Fixture) {
    use cryptoki_sys::*;
    // SAFETY: loading the module this process already loaded returns the same library.
    let lib = unsafe { libloading::Library::new(library()) }.unwrap();
    // SAFETY: C_GetFunctionList has this signature (PKCS#11).
    let get: libloading::Symbol<'_, unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV> =
        unsafe { lib.get(b"C_GetFunctionList") }.unwrap();
    let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
    // SAFETY: a valid out-pointer.
    assert_eq!(unsafe { get(&mut list) }, CKR_OK);
    // SAFETY: the module returned a pointer to its static function list.
    let fl = unsafe { &*list };
    // SAFETY (all calls below): arguments are valid or deliberately NULL, which the module
    // must answer with an error rather than dereference.
    unsafe {
        assert_eq!(
            fl.C_GetFunctionList.unwrap()(std::ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            fl.C_GetInfo.unwrap()(std::ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            fl.C_Initialize.unwrap()(std::ptr::null_mut()),
            CKR_CRYPTOKI_ALREADY_INITIALIZED
        );
        assert_eq!(
            fl.C_GetSlotList.unwrap()(CK_TRUE, std::ptr::null_mut(), std::ptr::null_mut()),
            CKR_ARGUMENTS_BAD
        );
        let mut n: CK_ULONG = 0;
        assert_eq!(
            fl.C_GetSlotList.unwrap()(CK_TRUE, std::ptr::null_mut(), &mut n),
            CKR_OK
        );
        assert_eq!(n, 4);
        let mut one = [0 as CK_SLOT_ID; 1];
        let mut cap: CK_ULONG = 1;
        assert_eq!(
            fl.C_GetSlotList.unwrap()(CK_TRUE, one.as_mut_ptr(), &mut cap),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(cap, 4);
        assert_eq!(
            fl.C_CloseSession.unwrap()(0xDEAD),
            CKR_SESSION_HANDLE_INVALID
        );
        let mut info = std::mem::zeroed::<CK_SLOT_INFO>();
        assert_eq!(
            fl.C_GetSlotInfo.unwrap()(99, &mut info),
            CKR_SLOT_ID_INVALID
        );
        let mut h: CK_SESSION_HANDLE = 0;
        assert_eq!(
            fl.C_OpenSession.unwrap()(0, 0, std::ptr::null_mut(), None, &mut h),
            CKR_SESSION_PARALLEL_NOT_SUPPORTED
        );
        assert_eq!(
            fl.C_OpenSession.unwrap()(
                0,
                CKF_SERIAL_SESSION,
                std::ptr::null_mut(),
                None,
                std::ptr::null_mut()
            ),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            fl.C_OpenSession.unwrap()(0, CKF_SERIAL_SESSION, std::ptr::null_mut(), None, &mut h),
            CKR_OK
        );
        assert_eq!(
            fl.C_SignInit.unwrap()(h, std::ptr::null_mut(), 1),
            CKR_ARGUMENTS_BAD
        );
        let mut sig_len: CK_ULONG = 0;
        assert_eq!(
            fl.C_Sign.unwrap()(
                h,
                std::ptr::null_mut(),
                0,
                std::ptr::null_mut(),
                &mut sig_len
            ),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            fl.C_FindObjectsInit.unwrap()(h, std::ptr::null_mut(), 3),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(
            fl.C_FindObjectsInit.unwrap()(h, std::ptr::null_mut(), 0),
            CKR_OK
        );
        assert_eq!(
            fl.C_FindObjects.unwrap()(h, std::ptr::null_mut(), 5, &mut n),
            CKR_ARGUMENTS_BAD
        );
        assert_eq!(fl.C_FindObjectsFinal.unwrap()(h), CKR_OK);
        assert_eq!(
            fl.C_FindObjectsFinal.unwrap()(h),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(
            fl.C_Login.unwrap()(h, CKU_USER, std::ptr::null_mut(), 6),
            CKR_ARGUMENTS_BAD
        );
        let mut digest_mech = CK_MECHANISM {
            mechanism: CKM_SHA256,
            pParameter: std::ptr::null_mut(),
            ulParameterLen: 0,
        };
        assert_eq!(fl.C_DigestInit.unwrap()(h, &mut digest_mech), CKR_OK);
        let mut data = *b"abc";
        let mut out = [0u8; 8];
        let mut out_len: CK_ULONG = out.len() as CK_ULONG;
        assert_eq!(
            fl.C_Digest.unwrap()(h, data.as_mut_ptr(), 3, out.as_mut_ptr(), &mut out_len),
            CKR_BUFFER_TOO_SMALL
        );
        assert_eq!(out_len, 32, "the length needed");
        let mut full = [0u8; 32];
        out_len = 32;
        assert_eq!(
            fl.C_Digest.unwrap()(h, data.as_mut_ptr(), 3, full.as_mut_ptr(), &mut out_len),
            CKR_OK
        );
        assert_eq!(full.to_vec(), HashAlg::Sha256.digest(b"abc"));
        assert_eq!(fl.C_CloseSession.unwrap()(h), CKR_OK);
        assert_eq!(fl.C_CloseSession.unwrap()(h), CKR_SESSION_HANDLE_INVALID);
        assert_eq!(
            fl.C_WrapKey.unwrap()(
                h,
                std::ptr::null_mut(),
                0,
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut()
            ),
            CKR_FUNCTION_NOT_SUPPORTED
        );
        // PKCS#11 3.0: the interface list and C_GetInterface by name and version.
        type GetInterface = unsafe extern "C" fn(
            *mut CK_UTF8CHAR,
            *mut CK_VERSION,
            *mut *mut CK_INTERFACE,
            CK_FLAGS,
        ) -> CK_RV;
        let get_if: libloading::Symbol<'_, GetInterface> = lib.get(b"C_GetInterface").unwrap();
        let mut iface: *mut CK_INTERFACE = std::ptr::null_mut();
        let mut v30 = CK_VERSION { major: 3, minor: 0 };
        let mut name = *b"PKCS 11\0";
        assert_eq!(get_if(name.as_mut_ptr(), &mut v30, &mut iface, 0), CKR_OK);
        let list30 = &*((*iface).pFunctionList as *const CK_FUNCTION_LIST_3_0);
        assert_eq!((list30.version.major, list30.version.minor), (3, 0));
        assert!(list30.C_LoginUser.is_some() && list30.C_GetInterface.is_some());
        let mut v240 = CK_VERSION {
            major: 2,
            minor: 40,
        };
        assert_eq!(
            get_if(std::ptr::null_mut(), &mut v240, &mut iface, 0),
            CKR_OK
        );
        assert_eq!((*((*iface).pFunctionList as *const CK_VERSION)).minor, 40);
        let mut other = *b"Vendor\0";
        assert_eq!(
            get_if(other.as_mut_ptr(), std::ptr::null_mut(), &mut iface, 0),
            CKR_ARGUMENTS_BAD
        );
        type GetList = unsafe extern "C" fn(*mut CK_INTERFACE, *mut CK_ULONG) -> CK_RV;
        let get_list: libloading::Symbol<'_, GetList> = lib.get(b"C_GetInterfaceList").unwrap();
        let mut count: CK_ULONG = 0;
        assert_eq!(get_list(std::ptr::null_mut(), &mut count), CKR_OK);
        assert_eq!(count, 2);
    }
}

fn main() {
    let f = setup();
    type Test = (&'static str, fn(&Fixture));
    let tests: &[Test] = &[
        ("token_and_mechanism_info", token_and_mechanism_info),
        ("ec_keys_every_curve", ec_keys_every_curve),
        ("ecdh_derive", ecdh_derive),
        ("rsa_mechanisms", rsa_mechanisms),
        ("aes_on_the_element", aes_on_the_element),
        ("objects", objects),
        ("misuse_answers", misuse_answers),
        ("pins_and_reinitialization", pins_and_reinitialization),
        ("t1_slot", t1_slot),
        ("stress_32_threads", stress_32_threads),
        ("c_boundary", c_boundary),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = Vec::new();
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let started = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(&f)));
        let verdict = if r.is_ok() { "ok" } else { "FAILED" };
        println!("test {name} ... {verdict} ({:.1?})", started.elapsed());
        if r.is_err() {
            failed.push(*name);
        }
    }
    f.ctx.finalize().ok();
    if !failed.is_empty() {
        println!("failed: {failed:?}");
        std::process::exit(1);
    }
}
