#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use keyward_cvc::{AuthenticatedRequest, Body, Certificate, Chat, CvDate, PublicKey, oid};
use proptest::prelude::*;

const SRCA: &[u8] = include_bytes!("../data/DESRCACC100001.cvc");

#[test]
fn parses_cardcontact_root_byte_exact() {
    let cert = Certificate::parse(SRCA).unwrap();
    assert_eq!(cert.body.chr, b"DESRCACC100001");
    assert_eq!(cert.body.car.as_deref(), Some(&b"DESRCACC100001"[..]));
    assert_eq!(cert.body.chat.as_ref().unwrap().role, oid::SC_HSM_ROLE);
    assert_eq!(cert.body.chat.as_ref().unwrap().authorization, vec![0xC0]);
    assert_eq!(cert.body.effective, Some(CvDate::new(2012, 11, 9).unwrap()));
    assert_eq!(
        cert.body.expiration,
        Some(CvDate::new(2032, 11, 8).unwrap())
    );
    match &cert.body.public_key {
        PublicKey::Ec {
            algorithm,
            domain: Some(d),
            point,
        } => {
            assert_eq!(algorithm.as_slice(), oid::TA_ECDSA_SHA256);
            assert_eq!(d.p.len(), 32);
            assert_eq!(&point[..3], &[0x04, 0x6D, 0x02]);
        }
        other => panic!("unexpected key {other:?}"),
    }
    assert_eq!(cert.signature.len(), 64);
    // Re-encoding the parsed body reproduces the signed bytes exactly.
    assert_eq!(cert.body.encode().unwrap(), cert.body_raw);
    let rebuilt = Certificate::assemble(cert.body.clone(), cert.signature.clone()).unwrap();
    assert_eq!(rebuilt.raw, SRCA);
    assert_eq!(cert.inner().unwrap(), &SRCA[5..]);
}

#[test]
fn authenticated_request_round_trip() {
    let body = Body {
        cpi: 0,
        car: Some(b"UTCA00001".to_vec()),
        public_key: PublicKey::Rsa {
            algorithm: oid::TA_RSA_V15_SHA256.to_vec(),
            modulus: vec![0xC5; 256],
            exponent: vec![1, 0, 1],
        },
        chr: b"UTDUMMY00001".to_vec(),
        chat: None,
        effective: None,
        expiration: None,
        extensions: None,
    };
    let req = Certificate::assemble(body, vec![0x11; 256]).unwrap();
    let ar =
        AuthenticatedRequest::assemble(req.clone(), b"KWDEV0000100001".to_vec(), vec![0x22; 64])
            .unwrap();
    let parsed = AuthenticatedRequest::parse(&ar.raw).unwrap();
    assert_eq!(parsed, ar);
    assert_eq!(parsed.request, req);
    let signed = AuthenticatedRequest::outer_signed_data(&req, b"KWDEV0000100001").unwrap();
    assert!(ar.raw[4..].starts_with(&signed));
}

#[test]
fn rejects_malformed() {
    assert!(Certificate::parse(&SRCA[..SRCA.len() - 1]).is_err());
    let mut extra = SRCA.to_vec();
    extra.push(0);
    assert!(Certificate::parse(&extra).is_err());
    let chain = [SRCA, SRCA].concat();
    assert_eq!(Certificate::parse_chain(&chain).unwrap().len(), 2);
    let chat = Chat {
        role: vec![1],
        authorization: vec![2],
    };
    assert_eq!(chat.role, vec![1]);
}

proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Certificate::parse_chain(&bytes);
        let _ = AuthenticatedRequest::parse(&bytes);
    }

    #[test]
    fn mutated_root_never_panics(pos in 0..SRCA.len(), byte in any::<u8>()) {
        let mut m = SRCA.to_vec();
        m[pos] = byte;
        if let Ok(c) = Certificate::parse(&m) {
            prop_assert_eq!(c.raw, m);
        }
    }
}
