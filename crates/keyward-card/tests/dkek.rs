#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Key backup under a DKEK between two elements: both initialized with the same two shares
//! (same key check value), keys of every kind generated on the first, wrapped, unwrapped into
//! the second, and used there — the restored key signs, the original public key verifies.
//! Refusals: a key whose algorithm list lacks `92`, a blob from another DKEK, a tampered blob,
//! an occupied key id, wrapping before the DKEK is complete.

use keyward_apdu::StatusWord;
use keyward_card::{CardChannel, Hsm, HsmError, InProcess, InitConfig, KeyOptions, KeySpec};
use keyward_crypto::{Curve, HashAlg};
use keyward_cvc::PublicKey;
use keyward_se::{Applet, MemoryStore};

const PIN: &[u8] = b"648219";

fn element(shares: Option<u8>) -> Hsm<InProcess<MemoryStore>> {
    static CA: std::sync::OnceLock<keyward_se::dev_pki::DevCa> = std::sync::OnceLock::new();
    let ca = CA.get_or_init(|| {
        keyward_se::dev_pki::DevCa::open_or_create(
            &std::env::temp_dir().join(format!("keyward-dkek-test-{}", std::process::id())),
        )
        .unwrap()
    });
    let mut hsm = Hsm::new(InProcess(Applet::new(
        ca.new_element().unwrap(),
        MemoryStore,
    )));
    hsm.select().unwrap();
    hsm.initialize(&InitConfig {
        options: 1,
        pin: PIN,
        so_pin: *b"57621880",
        retries: 3,
        dkek_shares: shares,
    })
    .unwrap();
    hsm
}

fn status_of(e: HsmError) -> u16 {
    match e {
        HsmError::Status { sw, .. } => sw.0,
        HsmError::InvalidData => 0x6A80,
        HsmError::AlgorithmNotAllowed => 0x6A81,
        HsmError::NotFound => 0x6A88,
        HsmError::NotLoggedIn => StatusWord::SECURITY_STATUS_NOT_SATISFIED.0,
        other => panic!("unexpected {other:?}"),
    }
}

fn sign_ok(
    hsm: &mut Hsm<InProcess<MemoryStore>>,
    kid: u8,
    public: &PublicKey,
    curve: Option<Curve>,
) {
    let data = b"restored key at work";
    match public {
        PublicKey::Ec { point, .. } => {
            let curve = curve.unwrap();
            let sig = hsm.sign(kid, 0x73, data).unwrap();
            let plain = keyward_crypto::der_signature_to_plain(&sig, curve.field_len()).unwrap();
            assert!(keyward_crypto::ecdsa_verify_prehash(
                curve,
                point,
                &HashAlg::Sha256.digest(data),
                &plain
            ));
        }
        PublicKey::Rsa {
            modulus, exponent, ..
        } => {
            let sig = hsm.sign(kid, 0x33, data).unwrap();
            let key = keyward_crypto::RsaPublicKey::new(modulus, exponent).unwrap();
            assert!(key.verify(
                keyward_crypto::RsaScheme::Pkcs1(HashAlg::Sha256),
                &HashAlg::Sha256.digest(data),
                &sig
            ));
        }
    }
}

#[test]
fn keys_move_between_elements_sharing_a_dkek() {
    let shares = [[0x11u8; 32], [0x5Au8; 32]];
    let mut a = element(Some(2));
    let mut b = element(Some(2));
    for hsm in [&mut a, &mut b] {
        let s = hsm.dkek_share(None).unwrap();
        assert_eq!((s.total, s.outstanding, s.kcv), (2, 2, None));
        hsm.verify_pin(PIN).unwrap();
        // No keys before the DKEK is complete.
        assert!(
            hsm.generate(1, KeySpec::Ec(Curve::Secp256r1), "early", &[1])
                .is_err()
        );
        hsm.dkek_share(Some(&shares[0])).unwrap();
        let s = hsm.dkek_share(Some(&shares[1])).unwrap();
        assert_eq!(s.outstanding, 0);
    }
    let kcv_a = a.dkek_share(None).unwrap().kcv.unwrap();
    assert_eq!(
        Some(kcv_a),
        b.dkek_share(None).unwrap().kcv,
        "same shares, same KCV"
    );
    let xor: Vec<u8> = shares[0]
        .iter()
        .zip(&shares[1])
        .map(|(x, y)| x ^ y)
        .collect();
    assert_eq!(kcv_a[..], HashAlg::Sha256.digest(&xor)[..8]);
    // A third share is refused.
    assert!(a.dkek_share(Some(&[1; 32])).is_err());

    let exportable_ec = [0x70, 0x73, 0x92];
    let exportable_rsa = [0x20, 0x33, 0x92];
    let specs: [(u8, KeySpec, &[u8]); 4] = [
        (1, KeySpec::Ec(Curve::Secp256r1), &exportable_ec),
        (2, KeySpec::Ec(Curve::BrainpoolP256r1), &exportable_ec),
        (3, KeySpec::Rsa(2048), &exportable_rsa),
        (4, KeySpec::Aes(256), &[0x10, 0x11, 0x92]),
    ];
    for (kid, spec, algorithms) in specs {
        let generated = a
            .generate_key(
                kid,
                spec,
                &KeyOptions {
                    label: "backup me",
                    id: Some(&[kid]),
                    algorithms: Some(algorithms),
                    domain: None,
                },
            )
            .unwrap();
        let blob = a.wrap_key(kid).unwrap();
        assert_eq!(blob[..8], kcv_a, "the blob names its DKEK");
        b.unwrap_key(kid, &blob).unwrap();
        // The same key id again: occupied.
        assert_eq!(status_of(b.unwrap_key(kid, &blob).unwrap_err()), 0x6A89);
        // The blob staged in EF 2F10 (as OpenSC 0.24+ sends it), over a longer stale one.
        b.write_file(0x2F10, &vec![0xEE; blob.len() + 40]).unwrap();
        b.write_file(0x2F10, &blob).unwrap();
        let r = b
            .channel()
            .transmit(&keyward_apdu::Command::new(0x80, 0x74, kid + 20, 0x93))
            .unwrap();
        assert_eq!(r.sw, StatusWord::SUCCESS, "unwrap from 2F10");
        assert!(b.read_file(0x2F10).is_err(), "the staged blob is used once");
        match (spec, generated.attestation) {
            (KeySpec::Ec(curve), Some(att)) => {
                sign_ok(&mut b, kid, &att.request.body.public_key, Some(curve))
            }
            (KeySpec::Rsa(_), Some(att)) => {
                sign_ok(&mut b, kid, &att.request.body.public_key, None)
            }
            (KeySpec::Aes(_), None) => {
                // The same AES key on both: CBC encryption agrees.
                let block = [0x42u8; 16];
                assert_eq!(
                    a.cipher(kid, 0x10, &block).unwrap(),
                    b.cipher(kid, 0x10, &block).unwrap()
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        // The restored key keeps its algorithm list: still exportable, and only that.
        assert!(b.wrap_key(kid).is_ok());
    }

    // A key without 92 in its list never leaves the element.
    a.generate_key(
        5,
        KeySpec::Ec(Curve::Secp256r1),
        &KeyOptions {
            label: "stays",
            id: Some(&[5]),
            algorithms: Some(&[0x73]),
            domain: None,
        },
    )
    .unwrap();
    assert_eq!(status_of(a.wrap_key(5).unwrap_err()), 0x6A81);

    // Another DKEK: 6A80. A tampered blob: 6A80.
    let mut c = element(Some(1));
    c.verify_pin(PIN).unwrap();
    c.dkek_share(Some(&[0x77; 32])).unwrap();
    let blob = a.wrap_key(1).unwrap();
    assert_eq!(status_of(c.unwrap_key(9, &blob).unwrap_err()), 0x6A80);
    let mut tampered = blob.clone();
    let n = tampered.len();
    tampered[n - 30] ^= 0x01;
    assert_eq!(status_of(b.unwrap_key(9, &tampered).unwrap_err()), 0x6A80);
    // Without the PIN nothing is wrapped.
    a.select().unwrap();
    assert_eq!(status_of(a.wrap_key(1).unwrap_err()), 0x6982);
}

#[test]
fn a_random_dkek_is_this_elements_alone() {
    let mut a = element(Some(0));
    let s = a.dkek_share(None).unwrap();
    assert_eq!(s.outstanding, 0);
    assert!(s.kcv.is_some());
    a.verify_pin(PIN).unwrap();
    a.generate_key(
        1,
        KeySpec::Ec(Curve::Secp256r1),
        &KeyOptions {
            label: "k",
            id: Some(&[1]),
            algorithms: Some(&[0x73, 0x92]),
            domain: None,
        },
    )
    .unwrap();
    let blob = a.wrap_key(1).unwrap();
    let mut b = element(Some(0));
    b.verify_pin(PIN).unwrap();
    assert_eq!(status_of(b.unwrap_key(1, &blob).unwrap_err()), 0x6A80);
    // Without a DKEK at all the functions do not exist.
    let mut none = element(None);
    none.verify_pin(PIN).unwrap();
    assert_eq!(status_of(none.unwrap_key(1, &blob).unwrap_err()), 0x6D00);
}

/// Key domains: an element with three (`97 03`, domain 0 from `92 01`), domains set up with
/// their own shares; a key generated in domain 1 is wrapped under domain 1's DKEK and lands in
/// whichever domain of another element holds that DKEK; a domain with keys cannot be deleted.
#[test]
fn key_domains_keep_separate_dkeks() {
    let mut a = element(Some(1));
    a.verify_pin(PIN).unwrap();
    // This element was made with one domain (92 only): domain 1 does not exist.
    assert!(a.create_key_domain(1, 1).is_err());

    let ca = keyward_se::dev_pki::DevCa::open_or_create(
        &std::env::temp_dir().join(format!("keyward-dkek-test-{}", std::process::id())),
    )
    .unwrap();
    let with_domains = |count: u8| {
        let mut hsm = Hsm::new(InProcess(Applet::new(
            ca.new_element().unwrap(),
            MemoryStore,
        )));
        hsm.select().unwrap();
        // INITIALIZE with 92 01 and 97 count, by hand (InitConfig has no domain count).
        let mut data = vec![0x80, 0x02, 0x00, 0x01, 0x81, PIN.len() as u8];
        data.extend_from_slice(PIN);
        data.extend_from_slice(&[0x82, 0x08]);
        data.extend_from_slice(b"57621880");
        data.extend_from_slice(&[0x91, 0x01, 0x03, 0x92, 0x01, 0x01, 0x97, 0x01, count]);
        let r = hsm
            .channel()
            .transmit(&keyward_apdu::Command::new(0x80, 0x50, 0, 0).with_data(data))
            .unwrap();
        assert_eq!(r.sw, StatusWord::SUCCESS);
        hsm.verify_pin(PIN).unwrap();
        hsm
    };
    let mut x = with_domains(3);
    let mut y = with_domains(3);
    // Domain 1 is declared but not set up; domain 3 does not exist.
    assert_eq!(status_of(x.dkek_share_in(1, None).unwrap_err()), 0x6A88);
    assert_eq!(status_of(x.dkek_share_in(3, None).unwrap_err()), 0x6A86);
    for hsm in [&mut x, &mut y] {
        hsm.dkek_share_in(0, Some(&[0x01; 32])).unwrap();
    }
    // Domain 1 on X and domain 2 on Y share one DKEK; X's domain 2 another.
    let s = x.create_key_domain(1, 1).unwrap();
    assert_eq!((s.total, s.outstanding), (1, 1));
    x.dkek_share_in(1, Some(&[0x22; 32])).unwrap();
    x.create_key_domain(2, 1).unwrap();
    x.dkek_share_in(2, Some(&[0x33; 32])).unwrap();
    y.create_key_domain(2, 1).unwrap();
    let s = y.dkek_share_in(2, Some(&[0x22; 32])).unwrap();
    assert_eq!(s.kcv, x.dkek_share_in(1, None).unwrap().kcv);
    // Setting up a domain twice is refused.
    assert!(x.create_key_domain(1, 2).is_err());

    let key = x
        .generate_key(
            7,
            KeySpec::Ec(Curve::Secp256r1),
            &KeyOptions {
                label: "in domain 1",
                id: Some(&[7]),
                algorithms: Some(&[0x73, 0x92]),
                domain: Some(1),
            },
        )
        .unwrap();
    let blob = x.wrap_key(7).unwrap();
    assert_eq!(
        Some(blob[..8].try_into().unwrap()),
        x.dkek_share_in(1, None).unwrap().kcv
    );
    assert_ne!(
        Some(blob[..8].try_into().unwrap()),
        x.dkek_share_in(0, None).unwrap().kcv
    );
    y.unwrap_key(7, &blob).unwrap();
    sign_ok(
        &mut y,
        7,
        &key.attestation.unwrap().request.body.public_key,
        Some(Curve::Secp256r1),
    );
    // On Y the key belongs to domain 2 now: that domain cannot go, domain 1 (unused) can.
    assert_eq!(status_of(y.delete_key_domain(2).unwrap_err()), 0x6A89);
    assert_eq!(status_of(x.delete_key_domain(1).unwrap_err()), 0x6A89);
    x.delete_key(7).unwrap();
    x.delete_key_domain(1).unwrap();
    assert_eq!(status_of(x.dkek_share_in(1, None).unwrap_err()), 0x6A88);
    // Keys cannot be made in a domain that is not set up.
    assert!(
        x.generate_key(
            8,
            KeySpec::Ec(Curve::Secp256r1),
            &KeyOptions {
                label: "nowhere",
                id: Some(&[8]),
                algorithms: None,
                domain: Some(1),
            },
        )
        .is_err()
    );
    // 80 52 04: the DKEK is forgotten, the import starts again.
    let s = x.reset_key_domain(2).unwrap();
    assert_eq!((s.total, s.outstanding, s.kcv), (1, 1, None));
}
