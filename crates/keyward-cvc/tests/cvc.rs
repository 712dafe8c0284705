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

fn arb_body() -> impl Strategy<Value = Body> {
    let bytes = |n| proptest::collection::vec(any::<u8>(), 1..n);
    let date =
        (2000u16..2100, 1u8..13, 1u8..29).prop_map(|(y, m, d)| CvDate::new(y, m, d).unwrap());
    let key = prop_oneof![
        (
            bytes(70),
            proptest::option::of((
                bytes(70),
                bytes(70),
                bytes(70),
                bytes(140),
                bytes(70),
                bytes(3)
            ))
        )
            .prop_map(|(point, dom)| PublicKey::Ec {
                algorithm: oid::TA_ECDSA_SHA256.to_vec(),
                domain: dom.map(|(p, a, b, g, n, h)| keyward_cvc::EcDomain { p, a, b, g, n, h }),
                point,
            }),
        (bytes(600), bytes(5)).prop_map(|(modulus, exponent)| PublicKey::Rsa {
            algorithm: oid::TA_RSA_PSS_SHA256.to_vec(),
            modulus,
            exponent
        }),
    ];
    (
        any::<u8>(),
        proptest::option::of(bytes(17)),
        key,
        bytes(17),
        proptest::option::of((bytes(12), bytes(5))),
        proptest::option::of(date.clone()),
        proptest::option::of(date),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
    )
        .prop_map(
            |(cpi, car, public_key, chr, chat, effective, expiration, extensions)| Body {
                cpi,
                car,
                public_key,
                chr,
                chat: chat.map(|(role, authorization)| Chat {
                    role,
                    authorization,
                }),
                effective,
                expiration,
                extensions,
            },
        )
}

proptest! {
    /// parse ∘ encode = id for bodies, certificates and authenticated requests.
    #[test]
    fn encode_then_parse_is_identity(body in arb_body(), sig in proptest::collection::vec(any::<u8>(), 0..300), car in proptest::collection::vec(any::<u8>(), 1..17)) {
        let encoded = body.encode().unwrap();
        let parsed = Body::parse(keyward_apdu::tlv::Tlv::parse_exact(&encoded).unwrap().value).unwrap();
        prop_assert_eq!(&parsed, &body);
        let cert = Certificate::assemble(body, sig.clone()).unwrap();
        prop_assert_eq!(Certificate::parse(&cert.raw).unwrap(), cert.clone());
        let ar = AuthenticatedRequest::assemble(cert, car, sig).unwrap();
        prop_assert_eq!(AuthenticatedRequest::parse(&ar.raw).unwrap(), ar);
    }
}
