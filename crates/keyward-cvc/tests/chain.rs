#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Signatures with every TR-03110 algorithm, chain validation and attestation verification,
//! including one distinct error for every way a chain or attestation can be wrong.

use keyward_crypto::{Curve, EcKey, PrivateKey, RsaKey};
use keyward_cvc::chain::role;
use keyward_cvc::signature::{self, TaAlgorithm};
use keyward_cvc::{
    AuthenticatedRequest, Body, Certificate, ChainError, Chat, CvDate, CvcError, PublicKey,
    TrustStore, oid,
};

const SRCA: &[u8] = include_bytes!("../data/DESRCACC100001.cvc");

fn date(y: u16, m: u8, d: u8) -> CvDate {
    CvDate::new(y, m, d).unwrap()
}

#[test]
fn cardcontact_root_is_a_valid_trusted_root() {
    let root = Certificate::parse(SRCA).unwrap();
    signature::verify(&root.body.public_key, None, &root.body_raw, &root.signature).unwrap();
    let mut store = TrustStore::new();
    store.add_root(root.clone()).unwrap();
    // One flipped signature bit and it is no longer a root.
    let mut bad = root.clone();
    bad.signature[10] ^= 1;
    assert!(matches!(
        TrustStore::new().add_root(bad),
        Err(ChainError::BadSignature { .. })
    ));
}

struct Ca {
    key: EcKey,
    cert: Certificate,
}

fn ec_public(key: &EcKey, explicit: bool) -> PublicKey {
    PublicKey::Ec {
        algorithm: oid::TA_ECDSA_SHA256.to_vec(),
        domain: explicit.then(|| key.curve().domain()),
        point: key.public_point().to_vec(),
    }
}

fn issue(
    issuer: Option<&Ca>,
    chr: &str,
    subject: &PublicKey,
    r: u8,
    from: CvDate,
    until: CvDate,
    signer: Option<&EcKey>,
) -> Certificate {
    let car = issuer.map_or(chr.as_bytes().to_vec(), |i| i.cert.body.chr.clone());
    let body = Body {
        cpi: 0,
        car: Some(car),
        public_key: subject.clone(),
        chr: chr.as_bytes().to_vec(),
        chat: Some(Chat {
            role: oid::SC_HSM_ROLE.to_vec(),
            authorization: vec![r],
        }),
        effective: Some(from),
        expiration: Some(until),
        extensions: None,
    };
    let signer = signer.or(issuer.map(|i| &i.key)).unwrap();
    let key = PrivateKey::Ec(EcKey::from_private(signer.curve(), signer.private_bytes()).unwrap());
    let sig = signature::sign(&key, oid::TA_ECDSA_SHA256, &body.encode().unwrap()).unwrap();
    Certificate::assemble(body, sig).unwrap()
}

struct Pki {
    root: Ca,
    dica: Ca,
    device_key: EcKey,
    device: Certificate,
}

fn pki(tag: &str) -> Pki {
    let (from, until) = (date(2025, 1, 1), date(2035, 1, 1));
    let root_key = EcKey::generate(Curve::BrainpoolP256r1).unwrap();
    let root_cert = issue(
        None,
        &format!("UT{tag}RCA00001"),
        &ec_public(&root_key, true),
        role::ROOT,
        from,
        until,
        Some(&root_key),
    );
    let root = Ca {
        key: root_key,
        cert: root_cert,
    };
    let dica_key = EcKey::generate(Curve::BrainpoolP256r1).unwrap();
    let dica_cert = issue(
        Some(&root),
        &format!("UT{tag}DICA00001"),
        &ec_public(&dica_key, false),
        role::DICA,
        from,
        until,
        None,
    );
    let dica = Ca {
        key: dica_key,
        cert: dica_cert,
    };
    let device_key = EcKey::generate(Curve::BrainpoolP256r1).unwrap();
    let device = issue(
        Some(&dica),
        &format!("UT{tag}DEV0000100001"),
        &ec_public(&device_key, false),
        role::DEVICE,
        from,
        until,
        None,
    );
    Pki {
        root,
        dica,
        device_key,
        device,
    }
}

fn store(p: &Pki) -> TrustStore {
    let mut s = TrustStore::new();
    s.add_root(p.root.cert.clone()).unwrap();
    s
}

const NOW: fn() -> CvDate = || CvDate::new(2026, 11, 25).unwrap();

#[test]
fn valid_chain_yields_the_device_identity() {
    let p = pki("A");
    let c_devaut = [p.device.raw.clone(), p.dica.cert.raw.clone()].concat();
    let id = store(&p).validate_c_devaut(&c_devaut, NOW()).unwrap();
    assert_eq!(id.device_id, "UTADEV0000100001");
    assert_eq!(id.dica, "UTADICA00001");
    assert_eq!(id.curve, Curve::BrainpoolP256r1);
    assert_eq!(id.public_point, p.device_key.public_point());
}

#[test]
fn every_chain_defect_has_its_own_error() {
    let p = pki("B");
    let other = pki("C");
    let s = store(&p);
    let (from, until) = (date(2025, 1, 1), date(2035, 1, 1));
    // A DICA from a root we do not trust.
    assert!(matches!(
        s.validate(&other.device, &other.dica.cert, NOW()),
        Err(ChainError::UntrustedRoot { .. })
    ));
    // A device certificate from another (trusted-root) DICA.
    assert!(matches!(
        s.validate(&other.device, &p.dica.cert, NOW()),
        Err(ChainError::BrokenLink { .. })
    ));
    // A device certificate claiming the DICA role.
    let dev80 = issue(
        Some(&p.dica),
        "UTBDEV0000100002",
        &ec_public(&p.device_key, false),
        role::DICA,
        from,
        until,
        None,
    );
    assert!(matches!(
        s.validate(&dev80, &p.dica.cert, NOW()),
        Err(ChainError::WrongRole { expected: 0x00, .. })
    ));
    // Expired and not yet valid.
    let old = issue(
        Some(&p.dica),
        "UTBDEV0000100003",
        &ec_public(&p.device_key, false),
        role::DEVICE,
        date(2020, 1, 1),
        date(2025, 6, 30),
        None,
    );
    assert!(matches!(
        s.validate(&old, &p.dica.cert, NOW()),
        Err(ChainError::Expired { .. })
    ));
    assert!(matches!(
        s.validate(&p.device, &p.dica.cert, date(2024, 12, 31)),
        Err(ChainError::NotYetValid { .. })
    ));
    // Signed by someone else than the DICA it names.
    let forged = issue(
        Some(&p.dica),
        "UTBDEV0000100004",
        &ec_public(&p.device_key, false),
        role::DEVICE,
        from,
        until,
        Some(&other.dica.key),
    );
    assert!(matches!(
        s.validate(&forged, &p.dica.cert, NOW()),
        Err(ChainError::BadSignature { .. })
    ));
    // Three certificates in EF.C_DevAut.
    let three = [
        p.device.raw.clone(),
        p.dica.cert.raw.clone(),
        p.root.cert.raw.clone(),
    ]
    .concat();
    assert!(matches!(
        s.validate_c_devaut(&three, NOW()),
        Err(ChainError::WrongCount(3))
    ));
    // Garbage.
    assert!(matches!(
        s.validate_c_devaut(&[0x7F, 0x21, 0x05], NOW()),
        Err(ChainError::Malformed(_))
    ));
    // A root that is not self-signed or lacks domain parameters is not accepted as a root.
    assert!(matches!(
        TrustStore::new().add_root(p.dica.cert.clone()),
        Err(ChainError::NotARoot { .. })
    ));
}

fn request(key: &PrivateKey, public: PublicKey, alg: &[u8], chr: &str) -> Certificate {
    let body = Body {
        cpi: 0,
        car: None,
        public_key: public,
        chr: chr.as_bytes().to_vec(),
        chat: None,
        effective: None,
        expiration: None,
        extensions: None,
    };
    let sig = signature::sign(key, alg, &body.encode().unwrap()).unwrap();
    Certificate::assemble(body, sig).unwrap()
}

fn attest(device: &EcKey, device_id: &str, req: Certificate) -> AuthenticatedRequest {
    let dk = PrivateKey::Ec(EcKey::from_private(device.curve(), device.private_bytes()).unwrap());
    let data = AuthenticatedRequest::outer_signed_data(&req, device_id.as_bytes()).unwrap();
    let sig = signature::sign(&dk, oid::TA_ECDSA_SHA256, &data).unwrap();
    AuthenticatedRequest::assemble(req, device_id.as_bytes().to_vec(), sig).unwrap()
}

#[test]
fn attestations_verify_and_defects_are_told_apart() {
    let p = pki("D");
    let other = pki("E");
    let id = store(&p).validate(&p.device, &p.dica.cert, NOW()).unwrap();
    let k = EcKey::generate(Curve::Secp256r1).unwrap();
    let pk = PrivateKey::Ec(EcKey::from_private(k.curve(), k.private_bytes()).unwrap());
    let req = request(
        &pk,
        ec_public(&k, true),
        oid::TA_ECDSA_SHA256,
        "UTKEY0000100001",
    );
    let good = attest(&p.device_key, &id.device_id, req.clone());
    let attested = id
        .verify_attestation(&AuthenticatedRequest::parse(&good.raw).unwrap())
        .unwrap();
    assert_eq!(attested.public_key, ec_public(&k, true));
    assert_eq!(attested.algorithm, oid::TA_ECDSA_SHA256);
    // Outer signature by another device (claiming to be this one).
    let by_other = attest(&other.device_key, &id.device_id, req.clone());
    assert!(matches!(
        id.verify_attestation(&by_other),
        Err(ChainError::BadOuterSignature(CvcError::BadSignature))
    ));
    // Signed by another device under its own name.
    let named_other = attest(&other.device_key, "UTEDEV0000100001", req.clone());
    assert!(matches!(
        id.verify_attestation(&named_other),
        Err(ChainError::OtherDevice { .. })
    ));
    // Inner signature that does not match the key in the request.
    let k2 = EcKey::generate(Curve::Secp256r1).unwrap();
    let pk2 = PrivateKey::Ec(EcKey::from_private(k2.curve(), k2.private_bytes()).unwrap());
    let mismatched = request(
        &pk2,
        ec_public(&k, true),
        oid::TA_ECDSA_SHA256,
        "UTKEY0000100002",
    );
    let bad_inner = attest(&p.device_key, &id.device_id, mismatched);
    assert!(matches!(
        id.verify_attestation(&bad_inner),
        Err(ChainError::BadInnerSignature(_))
    ));
}

#[test]
fn every_ta_algorithm_signs_and_verifies() {
    let rsa = PrivateKey::Rsa(Box::new(RsaKey::generate(2048).unwrap()));
    let PrivateKey::Rsa(r) = &rsa else {
        unreachable!()
    };
    let ec: Vec<(Curve, PrivateKey, EcKey)> = Curve::ALL
        .into_iter()
        .map(|c| {
            let k = EcKey::generate(c).unwrap();
            (
                c,
                PrivateKey::Ec(EcKey::from_private(c, k.private_bytes()).unwrap()),
                k,
            )
        })
        .collect();
    let data = b"7F4E ... body";
    for alg in TaAlgorithm::all() {
        match alg {
            TaAlgorithm::Ecdsa(_) => {
                for (curve, key, k) in &ec {
                    let public = PublicKey::Ec {
                        algorithm: alg.oid().to_vec(),
                        domain: Some(curve.domain()),
                        point: k.public_point().to_vec(),
                    };
                    let sig = signature::sign(key, alg.oid(), data).unwrap();
                    assert_eq!(sig.len(), 2 * curve.field_len(), "plain r‖s");
                    signature::verify(&public, None, data, &sig).unwrap();
                    assert_eq!(
                        signature::verify(&public, None, b"other", &sig),
                        Err(CvcError::BadSignature)
                    );
                }
            }
            TaAlgorithm::RsaV15(_) | TaAlgorithm::RsaPss(_) => {
                let public = PublicKey::Rsa {
                    algorithm: alg.oid().to_vec(),
                    modulus: r.modulus(),
                    exponent: r.exponent(),
                };
                let sig = signature::sign(&rsa, alg.oid(), data).unwrap();
                signature::verify(&public, None, data, &sig).unwrap();
                assert_eq!(
                    signature::verify(&public, None, b"other", &sig),
                    Err(CvcError::BadSignature)
                );
            }
        }
    }
    // An EC key without domain parameters needs inherited ones.
    let (_, key, k) = &ec[3];
    let bare = PublicKey::Ec {
        algorithm: oid::TA_ECDSA_SHA256.to_vec(),
        domain: None,
        point: k.public_point().to_vec(),
    };
    let sig = signature::sign(key, oid::TA_ECDSA_SHA256, data).unwrap();
    assert_eq!(
        signature::verify(&bare, None, data, &sig),
        Err(CvcError::MissingDomainParameters)
    );
    signature::verify(&bare, Some(&Curve::BrainpoolP256r1.domain()), data, &sig).unwrap();
}
