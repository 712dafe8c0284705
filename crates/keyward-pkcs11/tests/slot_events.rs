#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! C_WaitForSlotEvent with a real PC/SC stack: the element is attached to pcscd through vpcd
//! (`keyward se serve --vpcd`), detached, and the module reports both events for the reader's
//! slot. Needs pcscd with the vpcd driver, so `scripts/interop-pkcs11` runs it with:
//! KEYWARD_BIN (the CLI), KEYWARD_TEST_STATE (an element), KEYWARD_TEST_VPCD_PORT,
//! KEYWARD_TEST_READER. Without them it reports that it did not run.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::slot::Slot;

struct Element(Child);

impl Element {
    fn attach(bin: &str, state: &str, port: &str) -> Self {
        Self(
            Command::new(bin)
                .args(["se", "serve", "--state", state, "--vpcd"])
                .arg(format!("127.0.0.1:{port}"))
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Element {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The next slot event within `limit`, polling with CKF_DONT_BLOCK.
fn next_event(ctx: &Pkcs11, limit: Duration) -> Option<Slot> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        match ctx.get_slot_event() {
            Ok(Some(slot)) => return Some(slot),
            Ok(None) | Err(Error::Pkcs11(RvError::NoEvent, _)) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => panic!("C_WaitForSlotEvent: {e}"),
        }
    }
    None
}

/// Key generation and a signature on the PC/SC token, verified on the host.
fn sign_on(ctx: &Pkcs11, slot: Slot) {
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::Attribute;
    use cryptoki::session::UserType;
    use keyward_crypto::{Curve, HashAlg};
    let s = ctx.open_rw_session(slot).unwrap();
    s.login(
        UserType::User,
        Some(&cryptoki::types::AuthPin::from("648219")),
    )
    .unwrap();
    let (public, private) = s
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::EcParams(Curve::Secp256r1.oid_der().to_vec()),
            ],
            &[
                Attribute::Token(true),
                Attribute::Label(b"over pcsc".to_vec()),
            ],
        )
        .unwrap();
    let Some(Attribute::EcPoint(der)) = s
        .get_attributes(public, &[cryptoki::object::AttributeType::EcPoint])
        .unwrap()
        .pop()
    else {
        panic!("EC point")
    };
    let point = keyward_apdu::tlv::Tlv::parse_exact(&der)
        .unwrap()
        .value
        .to_vec();
    let sig = s
        .sign(&Mechanism::EcdsaSha256, private, b"over PC/SC")
        .unwrap();
    assert!(keyward_crypto::ecdsa_verify_prehash(
        Curve::Secp256r1,
        &point,
        &HashAlg::Sha256.digest(b"over PC/SC"),
        &sig
    ));
}

fn main() {
    let vars = [
        "KEYWARD_BIN",
        "KEYWARD_TEST_STATE",
        "KEYWARD_TEST_VPCD_PORT",
        "KEYWARD_TEST_READER",
    ]
    .map(std::env::var);
    let [Ok(bin), Ok(state), Ok(port), Ok(reader)] = vars else {
        println!("slot_events: not run (needs pcscd + vpcd; scripts/interop-pkcs11 runs it)");
        return;
    };
    let exe = std::env::current_exe().unwrap();
    let ctx = Pkcs11::new(exe.parent().unwrap().join("libkeyward_pkcs11.so")).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = ctx
        .get_all_slots()
        .unwrap()
        .into_iter()
        .find(|s| {
            ctx.get_slot_info(*s)
                .is_ok_and(|i| i.slot_description().starts_with(&reader))
        })
        .expect("the vpcd reader is a slot");
    // The caller just detached its element; pcscd may take a moment to notice.
    let end = Instant::now() + Duration::from_secs(10);
    while ctx.get_slot_info(slot).unwrap().token_present() {
        assert!(Instant::now() < end, "the reader still shows a card");
        std::thread::sleep(Duration::from_millis(100));
    }
    while next_event(&ctx, Duration::from_millis(300)).is_some() {}

    let element = Element::attach(&bin, &state, &port);
    assert_eq!(
        next_event(&ctx, Duration::from_secs(10)),
        Some(slot),
        "insertion"
    );
    assert!(ctx.get_slot_info(slot).unwrap().token_present());
    assert!(ctx.get_slots_with_token().unwrap().contains(&slot));
    let info = ctx.get_token_info(slot).unwrap();
    assert!(info.serial_number().starts_with("KWD"));
    sign_on(&ctx, slot);

    drop(element);
    assert_eq!(
        next_event(&ctx, Duration::from_secs(10)),
        Some(slot),
        "removal"
    );
    assert!(!ctx.get_slot_info(slot).unwrap().token_present());
    assert!(matches!(
        ctx.get_token_info(slot),
        Err(Error::Pkcs11(RvError::TokenNotPresent, _))
    ));

    // A blocking wait returns as soon as the card comes back.
    let waiter = std::thread::scope(|scope| {
        let h = scope.spawn(|| ctx.wait_for_slot_event());
        std::thread::sleep(Duration::from_millis(300));
        let element = Element::attach(&bin, &state, &port);
        let got = h.join().unwrap();
        drop(element);
        got
    });
    assert_eq!(waiter.unwrap(), slot, "blocking wait saw the insertion");
    ctx.finalize().unwrap();
    println!("slot_events: insertion and removal reported");
}
