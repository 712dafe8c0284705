#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Key generation, attestation and every SIGN / DECIPHER / CIPHER algorithm, checked with
//! independent verification (RustCrypto public-key operations) rather than the element itself.

mod common;

use common::{ok, ready_card, send};
use keyward_apdu::{Command, StatusWord, tlv};
use keyward_cvc::{AuthenticatedRequest, Certificate, PublicKey, oid};
use keyward_se::crypto::{Curve, EcKey, HashAlg, ecdsa_verify_prehash};
use keyward_se::{Applet, MemoryStore};
use rsa::BoxedUint;
use rsa::traits::PublicKeyParts;

fn ec_template(curve: Curve, extra: &[u8]) -> Vec<u8> {
    gakp(
        &keyward_cvc::ec_key_template(&curve.domain(), oid::TA_ECDSA_SHA256).unwrap(),
        extra,
    )
}

fn rsa_template(bits: u16, extra: &[u8]) -> Vec<u8> {
    let mut key = Vec::new();
    tlv::write(&mut key, 0x06, oid::TA_RSA_V15_SHA256).unwrap();
    tlv::write(&mut key, 0x82, &[1, 0, 1]).unwrap();
    tlv::write(&mut key, 0x02, &bits.to_be_bytes()).unwrap();
    gakp(&key, extra)
}

fn gakp(key: &[u8], extra: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    tlv::write(&mut v, 0x5F29, &[0]).unwrap();
    tlv::write(&mut v, 0x42, b"UTCA00001").unwrap();
    tlv::write(&mut v, 0x7F49, key).unwrap();
    tlv::write(&mut v, 0x5F20, b"UTTEST0000100001").unwrap();
    v.extend_from_slice(extra);
    v
}

/// Generates a key and checks its attestation end to end; returns the attested public key.
fn generate(card: &mut Applet<MemoryStore>, kid: u8, template: Vec<u8>) -> PublicKey {
    let raw = ok(
        card,
        Command::new(0, 0x46, kid, 0)
            .with_data(template)
            .with_le(65536),
    );
    let ar = AuthenticatedRequest::parse(&raw).unwrap();
    // Outer signature: PrK.DevAut over 7F21 ‖ 42, checked with the device certificate's key.
    let chain = ok(
        card,
        Command::new(0, 0xB1, 0x2F, 0x02)
            .with_data(vec![0x54, 2, 0, 0])
            .with_le(65536),
    );
    let certs = Certificate::parse_chain(&chain).unwrap();
    assert_eq!(certs.len(), 2);
    assert_eq!(ar.outer_car, certs[0].body.chr);
    let PublicKey::Ec {
        point: device_point,
        ..
    } = &certs[0].body.public_key
    else {
        panic!()
    };
    let outer = AuthenticatedRequest::outer_signed_data(&ar.request, &ar.outer_car).unwrap();
    assert!(ecdsa_verify_prehash(
        Curve::BrainpoolP256r1,
        device_point,
        &HashAlg::Sha256.digest(&outer),
        &ar.outer_signature
    ));
    // The request is also stored in CE<kid>.
    let ce = ok(
        card,
        Command::new(0, 0xB1, 0xCE, kid)
            .with_data(vec![0x54, 2, 0, 0])
            .with_le(65536),
    );
    assert_eq!(ce, raw);
    // Inner signature: proof of possession with the new key.
    let key = ar.request.body.public_key.clone();
    match &key {
        PublicKey::Ec { domain, point, .. } => {
            let curve = Curve::from_domain(domain.as_ref().unwrap()).unwrap();
            let h = HashAlg::Sha256.digest(&ar.request.body_raw);
            assert!(ecdsa_verify_prehash(
                curve,
                point,
                &h,
                &ar.request.signature
            ));
        }
        PublicKey::Rsa { .. } => {
            let pk = rsa_public(&key);
            let h = HashAlg::Sha256.digest(&ar.request.body_raw);
            pk.verify(
                rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                &h,
                &ar.request.signature,
            )
            .unwrap();
        }
    }
    key
}

fn rsa_public(key: &PublicKey) -> rsa::PublicKey {
    let PublicKey::Rsa {
        modulus, exponent, ..
    } = key
    else {
        panic!("not RSA")
    };
    rsa::PublicKey::new(
        BoxedUint::from_be_slice_vartime(modulus),
        BoxedUint::from_be_slice_vartime(exponent),
    )
    .unwrap()
}

/// The element's DER `SEQUENCE { r, s }` (fixed-width integers, as OpenSC expects) as plain `r‖s`.
fn der_to_plain(sig: &[u8], field_len: usize) -> Vec<u8> {
    let seq = tlv::Tlv::parse_exact(sig).unwrap();
    assert_eq!(seq.tag.0, 0x30);
    let mut out = Vec::new();
    for int in seq.children() {
        let int = int.unwrap();
        assert_eq!(int.tag.0, 0x02);
        let v = int.value;
        let v = if v.len() == field_len + 1 {
            assert!(
                v[0] == 0 && v[1] & 0x80 != 0,
                "a leading zero only before a set sign bit"
            );
            &v[1..]
        } else {
            v
        };
        // Both integers have the full field length (OpenSC infers the curve size from it).
        assert_eq!(v.len(), field_len);
        out.extend_from_slice(v);
    }
    assert_eq!(out.len(), 2 * field_len);
    out
}

fn sign(card: &mut Applet<MemoryStore>, kid: u8, alg: u8, data: &[u8]) -> (Vec<u8>, StatusWord) {
    send(
        card,
        Command::new(0x80, 0x68, kid, alg)
            .with_data(data.to_vec())
            .with_le(65536),
    )
}

const DATA: &[u8] = b"The quick brown fox jumps over the lazy dog";
const HASHES: [(u8, HashAlg); 5] = [
    (1, HashAlg::Sha1),
    (2, HashAlg::Sha224),
    (3, HashAlg::Sha256),
    (4, HashAlg::Sha384),
    (5, HashAlg::Sha512),
];

#[test]
fn ec_keys_on_every_curve_sign_and_derive() {
    let mut card = ready_card();
    for (i, curve) in Curve::ALL.into_iter().enumerate() {
        let kid = i as u8 + 1;
        let PublicKey::Ec { point, .. } = generate(&mut card, kid, ec_template(curve, &[])) else {
            panic!()
        };
        // 70: the host hashes.
        for (_, h) in HASHES {
            let digest = h.digest(DATA);
            let (sig, sw) = sign(&mut card, kid, 0x70, &digest);
            assert_eq!(sw, StatusWord::SUCCESS, "{curve:?} 70 {h:?}");
            let sig = der_to_plain(&sig, curve.field_len());
            assert!(
                ecdsa_verify_prehash(curve, &point, &digest, &sig),
                "{curve:?} 70 {h:?}"
            );
        }
        // 71..75: the element hashes.
        for (n, h) in HASHES {
            let (sig, sw) = sign(&mut card, kid, 0x70 + n, DATA);
            assert_eq!(sw, StatusWord::SUCCESS);
            let sig = der_to_plain(&sig, curve.field_len());
            assert!(
                ecdsa_verify_prehash(curve, &point, &h.digest(DATA), &sig),
                "{curve:?} 7{n}"
            );
        }
        // ECDH returns the full shared point.
        let peer = EcKey::generate(curve).unwrap();
        let (shared, sw) = send(
            &mut card,
            Command::new(0x80, 0x62, kid, 0x80)
                .with_data(peer.public_point().to_vec())
                .with_le(65536),
        );
        assert_eq!(sw, StatusWord::SUCCESS);
        assert_eq!(&shared[..], &peer.ecdh(&point).unwrap()[..]);
        // An off-curve peer point is refused.
        let mut bad = peer.public_point().to_vec();
        *bad.last_mut().unwrap() ^= 1;
        let (_, sw) = send(
            &mut card,
            Command::new(0x80, 0x62, kid, 0x80)
                .with_data(bad)
                .with_le(65536),
        );
        assert_eq!(sw, StatusWord::WRONG_DATA);
        // RSA algorithms are not for EC keys.
        assert_eq!(
            sign(&mut card, kid, 0x31, DATA).1,
            StatusWord::FUNCTION_NOT_SUPPORTED
        );
        assert_eq!(
            send(
                &mut card,
                Command::new(0x80, 0x62, kid, 0x21).with_data(vec![0; 32])
            )
            .1,
            StatusWord::FUNCTION_NOT_SUPPORTED
        );
    }
}

#[test]
fn rsa_sign_and_decipher() {
    let mut card = ready_card();
    let key = generate(&mut card, 1, rsa_template(2048, &[]));
    let pk = rsa_public(&key);
    let k = pk.size();
    // 20: raw, host padded.
    let block: Vec<u8> = [
        &[0u8, 1][..],
        &vec![0xFF; k - 3 - 19 - 32],
        &[0],
        HashAlg::Sha256.digest_info_prefix(),
        &HashAlg::Sha256.digest(DATA),
    ]
    .concat();
    let (sig, sw) = sign(&mut card, 1, 0x20, &block);
    assert_eq!(sw, StatusWord::SUCCESS);
    pk.verify(
        rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
        &HashAlg::Sha256.digest(DATA),
        &sig,
    )
    .unwrap();
    assert_eq!(
        sign(&mut card, 1, 0x20, &block[1..]).1,
        StatusWord::WRONG_DATA
    );
    // 30: DigestInfo.
    let di = [
        HashAlg::Sha256.digest_info_prefix(),
        &HashAlg::Sha256.digest(DATA),
    ]
    .concat();
    let (sig, _) = sign(&mut card, 1, 0x30, &di);
    pk.verify(
        rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
        &HashAlg::Sha256.digest(DATA),
        &sig,
    )
    .unwrap();
    for (n, h) in HASHES {
        let digest = h.digest(DATA);
        let (v15, sw) = sign(&mut card, 1, 0x30 + n, DATA);
        assert_eq!(sw, StatusWord::SUCCESS);
        let (pss, sw2) = sign(&mut card, 1, 0x40 + n, DATA);
        assert_eq!(sw2, StatusWord::SUCCESS);
        let (pss_hash, _) = sign(&mut card, 1, 0x40, &digest);
        let (pss_di, _) = sign(
            &mut card,
            1,
            0x40,
            &[h.digest_info_prefix(), &digest].concat(),
        );
        macro_rules! check {
            ($d:ty) => {{
                pk.verify(rsa::Pkcs1v15Sign::new::<$d>(), &digest, &v15)
                    .unwrap();
                for s in [&pss, &pss_hash, &pss_di] {
                    pk.verify(rsa::Pss::<$d>::new(), &digest, s).unwrap();
                }
            }};
        }
        match h {
            HashAlg::Sha1 => check!(sha1::Sha1),
            HashAlg::Sha224 => check!(sha2::Sha224),
            HashAlg::Sha256 => check!(sha2::Sha256),
            HashAlg::Sha384 => check!(sha2::Sha384),
            HashAlg::Sha512 => check!(sha2::Sha512),
        }
    }
    assert_eq!(sign(&mut card, 1, 0x40, &[0; 33]).1, StatusWord::WRONG_DATA);
    assert_eq!(
        sign(&mut card, 1, 0x73, DATA).1,
        StatusWord::FUNCTION_NOT_SUPPORTED
    );
    // 21: raw decryption of a PKCS#1 v1.5 cryptogram.
    let m = BoxedUint::from_be_slice(
        &[
            &[0u8, 2][..],
            &vec![0x55; k - 3 - 16],
            &[0],
            b"sixteen byte msg",
        ]
        .concat(),
        pk.n_bits_precision(),
    )
    .unwrap();
    let c = rsa::hazmat::rsa_encrypt(&pk, &m).unwrap().to_be_bytes();
    let c = &c[c.len() - k..];
    let (plain, sw) = send(
        &mut card,
        Command::new(0x80, 0x62, 1, 0x21)
            .with_data(c.to_vec())
            .with_le(65536),
    );
    assert_eq!(sw, StatusWord::SUCCESS);
    assert!(plain.ends_with(b"\0sixteen byte msg"));
    assert_eq!(plain.len(), k);
}

#[test]
fn rsa_sizes() {
    let mut card = ready_card();
    for (kid, bits) in [(1u8, 1024u16), (2, 1536), (3, 3072)] {
        let key = generate(&mut card, kid, rsa_template(bits, &[]));
        assert_eq!(rsa_public(&key).size() * 8, usize::from(bits));
    }
    let (_, sw) = send(
        &mut card,
        Command::new(0, 0x46, 4, 0)
            .with_data(rsa_template(1000, &[]))
            .with_le(65536),
    );
    assert_eq!(sw, StatusWord::WRONG_DATA);
}

#[test]
fn usage_controls() {
    let mut card = ready_card();
    // Key-use counter 2 and algorithm list {73}.
    let extra = [0x90, 4, 0, 0, 0, 2, 0x91, 1, 0x73];
    generate(&mut card, 1, ec_template(Curve::Secp256r1, &extra));
    assert_eq!(
        sign(&mut card, 1, 0x70, &[0; 32]).1,
        StatusWord::FUNCTION_NOT_SUPPORTED
    );
    assert_eq!(sign(&mut card, 1, 0x73, DATA).1, StatusWord::SUCCESS);
    assert_eq!(sign(&mut card, 1, 0x73, DATA).1, StatusWord::SUCCESS);
    assert_eq!(
        sign(&mut card, 1, 0x73, DATA).1,
        StatusWord::REFERENCE_DATA_NOT_USABLE
    );
    // The FCP of the key shows the controls.
    let fcp = ok(
        &mut card,
        Command::new(0, 0xA4, 0, 0)
            .with_data(vec![0xCC, 1])
            .with_le(256),
    );
    let a5 = tlv::Tlv::parse_exact(&fcp)
        .unwrap()
        .find(0xA5)
        .unwrap()
        .unwrap();
    assert_eq!(a5.find(0x90).unwrap().unwrap().value, &[0, 0, 0, 0]);
    assert_eq!(a5.find(0x91).unwrap().unwrap().value, &[0x73]);
    // Unknown key, key 0, keys without PIN, unknown algorithm.
    assert_eq!(
        sign(&mut card, 9, 0x73, DATA).1,
        StatusWord::REFERENCE_NOT_FOUND
    );
    assert_eq!(
        sign(&mut card, 0, 0x73, DATA).1,
        StatusWord::REFERENCE_NOT_FOUND
    );
    let (_, sw) = send(
        &mut card,
        Command::new(0, 0x46, 0, 0)
            .with_data(ec_template(Curve::Secp256r1, &[]))
            .with_le(65536),
    );
    assert_eq!(sw, StatusWord::INCORRECT_P1P2);
    generate(&mut card, 2, ec_template(Curve::Secp256r1, &[]));
    assert_eq!(
        sign(&mut card, 2, 0x99, DATA).1,
        StatusWord::FUNCTION_NOT_SUPPORTED
    );
    common::select(&mut card);
    assert_eq!(
        sign(&mut card, 2, 0x73, DATA).1,
        StatusWord::SECURITY_STATUS_NOT_SATISFIED
    );
    // Keys can be deleted; CE stays until the host deletes it.
    ok(
        &mut card,
        Command::new(0, 0x20, 0, 0x81).with_data(common::PIN.to_vec()),
    );
    ok(
        &mut card,
        Command::new(0, 0xE4, 2, 0).with_data(vec![0xCC, 2]),
    );
    assert_eq!(
        sign(&mut card, 2, 0x73, DATA).1,
        StatusWord::REFERENCE_NOT_FOUND
    );
}

#[test]
fn aes_keys() {
    let mut card = ready_card();
    for (kid, p2) in [(1u8, 0xB0u8), (2, 0xB1), (3, 0xB2)] {
        ok(
            &mut card,
            Command::new(0, 0x48, kid, p2).with_data(vec![0x91, 3, 0x10, 0x11, 0x18]),
        );
        let plain = [0x42u8; 48];
        let ct = ok(
            &mut card,
            Command::new(0x80, 0x78, kid, 0x10)
                .with_data(plain.to_vec())
                .with_le(256),
        );
        assert_ne!(ct, plain);
        let back = ok(
            &mut card,
            Command::new(0x80, 0x78, kid, 0x11)
                .with_data(ct.clone())
                .with_le(256),
        );
        assert_eq!(back, plain);
        // CBC: equal plaintext blocks give different ciphertext blocks.
        assert_ne!(ct[..16], ct[16..32]);
        let mac = ok(
            &mut card,
            Command::new(0x80, 0x78, kid, 0x18)
                .with_data(b"message".to_vec())
                .with_le(256),
        );
        assert_eq!(mac.len(), 16);
        let (_, sw) = send(
            &mut card,
            Command::new(0x80, 0x78, kid, 0x10).with_data(vec![1; 15]),
        );
        assert_eq!(sw, StatusWord::WRONG_DATA);
        assert_eq!(
            sign(&mut card, kid, 0x70, &[0; 32]).1,
            StatusWord::FUNCTION_NOT_SUPPORTED
        );
    }
    // Keys from different GENERATE SYMMETRIC KEY calls differ.
    let a = ok(
        &mut card,
        Command::new(0x80, 0x78, 3, 0x18)
            .with_data(b"m".to_vec())
            .with_le(256),
    );
    ok(&mut card, Command::new(0, 0x48, 4, 0xB2).with_data(vec![]));
    let b = ok(
        &mut card,
        Command::new(0x80, 0x78, 4, 0x18)
            .with_data(b"m".to_vec())
            .with_le(256),
    );
    assert_ne!(a, b);
    assert_eq!(
        send(&mut card, Command::new(0, 0x48, 5, 0xB3)).1,
        StatusWord::INCORRECT_P1P2
    );
}

#[test]
fn reinitialization_keeps_device_identity_only() {
    let mut card = ready_card();
    generate(&mut card, 1, ec_template(Curve::Secp256r1, &[]));
    ok(
        &mut card,
        Command::new(0, 0xD7, 0xC9, 1).with_data(vec![0x54, 2, 0, 0, 0x53, 1, 0xAA]),
    );
    let chain = card.state().files.get(&0x2F02).unwrap().clone();
    let chr = card.state().device_chr().to_string();
    let (_, sw) = send(
        &mut card,
        Command::new(0x80, 0x50, 0, 0).with_data(common::init_data(1, b"111111", b"wrongpin", 3)),
    );
    assert_eq!(sw, StatusWord::SECURITY_STATUS_NOT_SATISFIED);
    assert_eq!(card.state().keys.len(), 1);
    ok(
        &mut card,
        Command::new(0x80, 0x50, 0, 0).with_data(common::init_data(
            1,
            b"111111",
            common::SO_PIN,
            3,
        )),
    );
    assert!(card.state().keys.is_empty());
    assert_eq!(
        card.state().files.keys().copied().collect::<Vec<_>>(),
        vec![0x2F02]
    );
    assert_eq!(card.state().files.get(&0x2F02), Some(&chain));
    assert_eq!(card.state().device_chr(), chr);
}

#[test]
fn dkek_shares_block_key_generation_until_complete() {
    let mut card = common::card();
    common::select(&mut card);
    let mut init = common::init_data(1, common::PIN, common::SO_PIN, 3);
    init.extend_from_slice(&[0x92, 1, 2]);
    ok(&mut card, Command::new(0x80, 0x50, 0, 0).with_data(init));
    ok(
        &mut card,
        Command::new(0, 0x20, 0, 0x81).with_data(common::PIN.to_vec()),
    );
    assert_eq!(
        ok(&mut card, Command::new(0x80, 0x52, 0, 0).with_le(256))[..2],
        [2, 2]
    );
    let (_, sw) = send(
        &mut card,
        Command::new(0, 0x46, 1, 0)
            .with_data(ec_template(Curve::Secp256r1, &[]))
            .with_le(65536),
    );
    assert_eq!(sw, StatusWord::CONDITIONS_NOT_SATISFIED);
    let share_a = [0x11u8; 32];
    let share_b = [0x22u8; 32];
    assert_eq!(
        ok(
            &mut card,
            Command::new(0x80, 0x52, 0, 0)
                .with_data(share_a.to_vec())
                .with_le(256)
        )[..2],
        [2, 1]
    );
    let status = ok(
        &mut card,
        Command::new(0x80, 0x52, 0, 0)
            .with_data(share_b.to_vec())
            .with_le(256),
    );
    assert_eq!(status[..2], [2, 0]);
    // KCV = first 8 bytes of SHA-256 of the XOR of the shares.
    assert_eq!(status[2..], HashAlg::Sha256.digest(&[0x33u8; 32])[..8]);
    generate(&mut card, 1, ec_template(Curve::Secp256r1, &[]));
}

#[test]
fn pso_verify_certificate_builds_a_registry_from_the_root() {
    let mut card = ready_card();
    let chain = ok(
        &mut card,
        Command::new(0, 0xB1, 0x2F, 0x02)
            .with_data(vec![0x54, 2, 0, 0])
            .with_le(65536),
    );
    let certs = Certificate::parse_chain(&chain).unwrap();
    let (device, dica) = (&certs[0], &certs[1]);
    let root_chr = dica.body.car.clone().unwrap();
    let set_dst = |chr: &[u8]| {
        Command::new(0, 0x22, 0x81, 0xB6).with_data([&[0x83, chr.len() as u8][..], chr].concat())
    };
    let pso =
        |c: &Certificate| Command::new(0, 0x2A, 0x00, 0xBE).with_data(c.inner().unwrap().to_vec());
    // The device certificate's issuer is not known yet.
    assert_eq!(
        send(&mut card, set_dst(&dica.body.chr)).1,
        StatusWord::REFERENCE_NOT_FOUND
    );
    // PSO without MSE SET DST.
    assert_eq!(
        send(&mut card, pso(dica)).1,
        StatusWord::CONDITIONS_NOT_SATISFIED
    );
    // Root (built in) → DICA → device.
    ok(&mut card, set_dst(&root_chr));
    ok(&mut card, pso(dica));
    ok(&mut card, set_dst(&dica.body.chr));
    // A forged certificate (one signature bit flipped) is refused and not registered.
    let mut forged = device.clone();
    forged.signature[5] ^= 1;
    let forged = Certificate::assemble(forged.body.clone(), forged.signature.clone()).unwrap();
    assert_eq!(send(&mut card, pso(&forged)).1, StatusWord::WRONG_DATA);
    assert_eq!(
        send(&mut card, set_dst(&device.body.chr)).1,
        StatusWord::REFERENCE_NOT_FOUND
    );
    // The genuine one (also accepted as a whole 7F21) is.
    ok(
        &mut card,
        Command::new(0, 0x2A, 0x00, 0xBE).with_data(device.raw.clone()),
    );
    ok(&mut card, set_dst(&device.body.chr));
    // A certificate naming another issuer than the selected key.
    ok(&mut card, set_dst(&root_chr));
    assert_eq!(send(&mut card, pso(device)).1, StatusWord::WRONG_DATA);
    // The registry is per session.
    common::select(&mut card);
    assert_eq!(
        send(&mut card, set_dst(&device.body.chr)).1,
        StatusWord::REFERENCE_NOT_FOUND
    );
    // MSE SET AT only for chip authentication's protocol; GENERAL AUTHENTICATE needs it first.
    assert_eq!(
        send(
            &mut card,
            Command::new(0, 0x22, 0x41, 0xA4).with_data(vec![0x80, 2, 1, 2])
        )
        .1,
        StatusWord::WRONG_DATA
    );
    assert_eq!(
        send(
            &mut card,
            Command::new(0, 0x86, 0, 0).with_data(vec![0x7C, 0])
        )
        .1,
        StatusWord::CONDITIONS_NOT_SATISFIED
    );
}
