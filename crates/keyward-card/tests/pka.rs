#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Public-key authentication, 2 of 3: an element initialized with `93 03 02` registers three
//! custodians' keys (each in another element, registered with its attestation after the
//! custodian element's device certificate chain), and lets the user in only once two custodians
//! have signed its device id and a fresh challenge — never with one, never with a forged
//! registration or signature.

use keyward_apdu::StatusWord;
use keyward_card::{CardChannel, Hsm, HsmError, InProcess, InitConfig, KeyOptions, KeySpec};
use keyward_crypto::Curve;
use keyward_cvc::{AuthenticatedRequest, Certificate};
use keyward_se::{Applet, MemoryStore};

const PIN: &[u8] = b"648219";

type Element = Hsm<InProcess<MemoryStore>>;

fn ca() -> &'static keyward_se::dev_pki::DevCa {
    static CA: std::sync::OnceLock<keyward_se::dev_pki::DevCa> = std::sync::OnceLock::new();
    CA.get_or_init(|| {
        keyward_se::dev_pki::DevCa::open_or_create(
            &std::env::temp_dir().join(format!("keyward-pka-test-{}", std::process::id())),
        )
        .unwrap()
    })
}

fn new_element() -> Element {
    let mut hsm = Hsm::new(InProcess(Applet::new(
        ca().new_element().unwrap(),
        MemoryStore,
    )));
    hsm.select().unwrap();
    hsm
}

fn custodian() -> (Element, AuthenticatedRequest) {
    let mut hsm = new_element();
    hsm.initialize(&InitConfig {
        options: 1,
        pin: PIN,
        so_pin: *b"57621880",
        retries: 3,
        dkek_shares: None,
    })
    .unwrap();
    hsm.verify_pin(PIN).unwrap();
    let generated = hsm
        .generate_key(
            1,
            KeySpec::Ec(Curve::Secp256r1),
            &KeyOptions {
                label: "custodian",
                id: Some(&[1]),
                algorithms: Some(&[0x73]),
                domain: None,
            },
        )
        .unwrap();
    (hsm, generated.attestation.unwrap())
}

fn chain(hsm: &mut Element) -> Vec<Certificate> {
    Certificate::parse_chain(&hsm.read_file(0x2F02).unwrap()).unwrap()
}

fn sw(e: HsmError) -> u16 {
    match e {
        HsmError::Status { sw, .. } => sw.0,
        HsmError::NotLoggedIn => StatusWord::SECURITY_STATUS_NOT_SATISFIED.0,
        HsmError::NotFound => 0x6A88,
        other => panic!("unexpected {other:?}"),
    }
}

fn keygen(hsm: &mut Element, kid: u8) -> Result<(), HsmError> {
    hsm.generate(kid, KeySpec::Ec(Curve::Secp256r1), "k", &[kid])
        .map(drop)
}

#[test]
fn two_of_three_custodians_let_the_user_in() {
    // The element: PIN and public-key authentication 3 keys, 2 required (93 03 02).
    let mut t = new_element();
    let mut data = vec![0x80, 0x02, 0x00, 0x01, 0x81, PIN.len() as u8];
    data.extend_from_slice(PIN);
    data.extend_from_slice(&[0x82, 0x08]);
    data.extend_from_slice(b"57621880");
    data.extend_from_slice(&[0x91, 0x01, 0x03, 0x93, 0x02, 0x03, 0x02]);
    let r = t
        .channel()
        .transmit(&keyward_apdu::Command::new(0x80, 0x50, 0, 0).with_data(data))
        .unwrap();
    assert_eq!(r.sw, StatusWord::SUCCESS);
    let device_id = chain(&mut t)[0].body.chr.clone();
    let s = t.pka_status().unwrap();
    assert_eq!(
        (s.total, s.missing, s.required, s.authenticated),
        (3, 3, 2, 0)
    );

    let mut custodians: Vec<(Element, AuthenticatedRequest)> =
        (0..3).map(|_| custodian()).collect();
    // A request whose signer's certificate is unknown to the element: refused.
    assert_eq!(
        sw(t.register_public_key(&custodians[0].1).unwrap_err()),
        0x6A88
    );
    for (i, (c, request)) in custodians.iter_mut().enumerate() {
        let certs = chain(c);
        // Issuer first (the DICA, signed by the root the element knows), then the device.
        t.verify_certificate(&certs[1]).unwrap();
        t.verify_certificate(&certs[0]).unwrap();
        if i == 0 {
            // A forged outer signature: refused, nothing registered.
            let mut forged = request.clone();
            let last = forged.outer_signature.len() - 1;
            forged.outer_signature[last] ^= 1;
            let forged = AuthenticatedRequest::assemble(
                forged.request,
                forged.outer_car,
                forged.outer_signature,
            )
            .unwrap();
            assert_eq!(sw(t.register_public_key(&forged).unwrap_err()), 0x6982);
        }
        let s = t.register_public_key(request).unwrap();
        assert_eq!(s.missing, 2 - i as u8);
    }
    // Registered once only.
    assert_eq!(
        sw(t.register_public_key(&custodians[0].1).unwrap_err()),
        0x6A84
    );

    let chr = |c: &AuthenticatedRequest| c.request.body.chr.clone();
    // PIN alone is not enough.
    t.verify_pin(PIN).unwrap();
    assert_eq!(sw(keygen(&mut t, 1).unwrap_err()), 0x6982);
    // A custodian signing for another's key: refused.
    let other = chr(&custodians[2].1);
    let err = t
        .authenticate_public_key(&other, &device_id, |m| custodians[0].0.sign(1, 0x73, m))
        .unwrap_err();
    assert_eq!(sw(err), 0x6985);
    // One custodian: still not in.
    let first = chr(&custodians[0].1);
    t.authenticate_public_key(&first, &device_id, |m| custodians[0].0.sign(1, 0x73, m))
        .unwrap();
    assert_eq!(t.pka_status().unwrap().authenticated, 1);
    assert_eq!(sw(keygen(&mut t, 1).unwrap_err()), 0x6982);
    // The same one twice does not count twice.
    assert!(
        t.authenticate_public_key(&first, &device_id, |m| custodians[0].0.sign(1, 0x73, m))
            .is_err()
    );
    // A second: the user is in.
    let second = chr(&custodians[1].1);
    t.authenticate_public_key(&second, &device_id, |m| custodians[1].0.sign(1, 0x73, m))
        .unwrap();
    assert_eq!(t.pka_status().unwrap().authenticated, 2);
    keygen(&mut t, 1).unwrap();
    // A new session starts from nothing: one custodian (and the PIN) is not enough.
    t.select().unwrap();
    t.verify_pin(PIN).unwrap();
    let third = chr(&custodians[2].1);
    t.authenticate_public_key(&third, &device_id, |m| custodians[2].0.sign(1, 0x73, m))
        .unwrap();
    assert_eq!(sw(keygen(&mut t, 2).unwrap_err()), 0x6982);
}
