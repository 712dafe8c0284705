#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Production of a blank element, driven batch by batch as the server does it (here straight
//! to an in-process element): the card manager, SCP03, the applet's personalization, PUT KEY
//! and chip authentication, and the refusals around them.

use keyward_ca::production::{
    self, APPLET_AID, Batch, BatchError, CARD_KVN, Channel, DeviceSetup, Greeting, ProductionError,
};
use keyward_ca::{CvcCa, SoftwareKey};
use keyward_card::{CardChannel, Hsm, InProcess, KeyOptions, KeySpec};
use keyward_crypto::Curve;
use keyward_cvc::TrustStore;
use keyward_se::dev_pki::{DevCa, today};
use keyward_se::state::{ScpKeySet, SecretBytes, State};
use keyward_se::{Applet, MemoryStore};
use keyward_sm::scp03::{StaticKeys, diversify};
use keyward_sm::{ChipAuthHost, SmError};

const KST: [u8; 16] = *b"keyward-test-kst";
const KMC: [u8; 16] = *b"keyward-test-kmc";
const SO_PIN: &[u8] = b"\x31\x32\x33\x34\x35\x36\x37\x38";
const TRANSPORT_PIN: &[u8] = b"27182818";

fn kst() -> StaticKeys {
    StaticKeys::new(&KST, &KST, &KST).unwrap()
}

fn blank() -> InProcess<MemoryStore> {
    let set = ScpKeySet {
        enc: SecretBytes::new(KST.to_vec()),
        mac: SecretBytes::new(KST.to_vec()),
        dek: SecretBytes::new(KST.to_vec()),
    };
    let serial = [0x4B, 0x57, 1, 2, 3, 4, 5, 6, 7, 8];
    InProcess(Applet::new(State::blank(set, 0xFF, serial), MemoryStore))
}

fn run(card: &mut InProcess<MemoryStore>, batch: &Batch) -> Vec<Vec<u8>> {
    batch
        .apdus()
        .iter()
        .map(|a| card.transmit_raw(a).unwrap())
        .collect()
}

fn dev_ca() -> &'static DevCa {
    static CA: std::sync::OnceLock<DevCa> = std::sync::OnceLock::new();
    CA.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("keyward-prod-test-{}", std::process::id()));
        DevCa::open_or_create(&dir).unwrap()
    })
}

fn ca() -> (&'static DevCa, CvcCa<SoftwareKey>) {
    let dev = dev_ca();
    let dica = CvcCa::new(SoftwareKey::new(dev.dica_key().unwrap()), dev.dica.clone()).unwrap();
    (dev, dica)
}

fn greet(card: &mut InProcess<MemoryStore>) -> Greeting {
    let hc = [7u8; 8];
    let b = production::opening(&hc);
    let r = run(card, &b);
    Greeting::read(&b, &hc, &r).unwrap()
}

/// The full production; returns the device id and EF.C_DevAut.
fn produce(card: &mut InProcess<MemoryStore>, chr: &str) -> Vec<u8> {
    let (dev, mut dica) = ca();
    let greeting = greet(card);
    assert_eq!(greeting.kvn, 0xFF);
    let (mut ch, ea) = greeting.open(&kst()).unwrap();
    let setup = DeviceSetup {
        chr,
        dica_chr: &dev.dica.body.chr,
        root: &dev.srca.raw,
        so_pin: SO_PIN,
        transport_pin: TRANSPORT_PIN,
        reinstall: false,
    };
    let b2 = ch.personalize(ea, &setup).unwrap();
    let r2 = run(card, &b2);
    let point = ch.read_request(&b2, &r2, chr).unwrap();
    let c_devaut = production::issue_c_devaut(&mut dica, &point, chr, today(), 3650).unwrap();
    let card_keys = diversify(&KMC, &greeting.serial).unwrap();
    let chip = ChipAuthHost::new(Curve::BrainpoolP256r1).unwrap();
    let b3 = ch.finish(&c_devaut, &card_keys, &chip).unwrap();
    let r3 = run(card, &b3);
    ch.check_finish(&b3, &r3, Some(&card_keys), &point, chip)
        .unwrap();
    c_devaut
}

fn sw(r: &[u8]) -> u16 {
    u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]])
}

#[test]
fn a_blank_element_is_produced_and_then_works_as_a_smartcard_hsm() {
    let (dev, _) = ca();
    let mut card = blank();
    // Blank: no applet to select.
    assert_eq!(
        sw(&card
            .transmit_raw(&[&[0x00, 0xA4, 0x04, 0x00, 0x0B][..], APPLET_AID].concat())
            .unwrap()),
        0x6A82
    );
    let c_devaut = produce(&mut card, "ZZKWD00001");

    // The chain validates against the root.
    let mut trust = TrustStore::new();
    trust.add_root(dev.srca.clone()).unwrap();
    let id = trust.validate_c_devaut(&c_devaut, today()).unwrap();
    assert_eq!(id.device_id, "ZZKWD00001");
    let state = card.0.state().clone();
    assert_eq!(state.device_chr(), "ZZKWD00001");
    let cm = state.card.as_ref().unwrap();
    assert_eq!(cm.life_cycle, 0x0F, "card SECURED");
    assert_eq!(
        cm.applet.as_ref().unwrap().life_cycle,
        0x0F,
        "applet personalized"
    );
    assert_eq!(cm.key_sets.keys().copied().collect::<Vec<_>>(), [CARD_KVN]);

    // The transport PIN must be changed before use; then keys are generated and attested.
    let mut hsm = Hsm::new(&mut card);
    hsm.select().unwrap();
    assert!(hsm.verify_pin(TRANSPORT_PIN).is_err());
    hsm.change_pin(TRANSPORT_PIN, b"648219").unwrap();
    hsm.verify_pin(b"648219").unwrap();
    let key = hsm
        .generate_key(
            1,
            KeySpec::Ec(Curve::Secp256r1),
            &KeyOptions {
                label: "k",
                id: None,
                algorithms: None,
                domain: None,
            },
        )
        .unwrap();
    let ar = key.attestation.unwrap();
    let attested = id.verify_attestation(&ar).unwrap();
    assert_eq!(attested.device_id, "ZZKWD00001");
    // The SO-PIN set in production is the one the back end holds.
    assert_eq!(hsm.so_pin_tries().unwrap(), Some(15));
}

#[test]
fn after_production_only_card_unique_keys_open_the_card_manager() {
    let mut card = blank();
    produce(&mut card, "ZZKWD00002");
    let greeting = greet(&mut card);
    assert_eq!(greeting.kvn, CARD_KVN);
    // The KST no longer opens a channel...
    assert!(matches!(
        greeting.open(&kst()),
        Err(ProductionError::WrongKeys)
    ));
    // ...nor can it be asked for by its version.
    let r = card
        .transmit_raw(&[&[0x80, 0x50, 0xFF, 0x00, 0x08][..], &[1; 8], &[0]].concat())
        .unwrap();
    assert_eq!(sw(&r), 0x6A88);
    // The card-unique keys do; personalization is over for good.
    let greeting = greet(&mut card);
    let keys = diversify(&KMC, &greeting.serial).unwrap();
    let (mut ch, ea) = greeting.open(&keys).unwrap();
    let r: Vec<Vec<u8>> = reperso(&mut ch, ea)
        .iter()
        .map(|a| card.transmit_raw(a).unwrap())
        .collect();
    assert_eq!(sw(&r[0]), 0x9000);
    assert_eq!(sw(&r[1]), 0x6985, "INSTALL [for personalization] refused");
    assert_eq!(
        sw(&r[2]),
        0x6985,
        "STORE DATA outside personalization refused"
    );
    assert_eq!(card.0.state().device_chr(), "ZZKWD00002");
}

/// EXTERNAL AUTHENTICATE, INSTALL [for personalization], STORE DATA (a GENERATE DevAut DGI).
fn reperso(ch: &mut Channel, ea: Vec<u8>) -> Vec<Vec<u8>> {
    let perso = [
        &[0x80, 0xE6, 0x20, 0x00, 0x11, 0x00, 0x00, 0x0B][..],
        APPLET_AID,
        &[0, 0, 0],
    ]
    .concat();
    let store = [
        0x80, 0xE2, 0x89, 0x00, 0x0A, 0x01, 0x01, 0x07, 0x5F, 0x20, 0x04, b'Z', b'Z', b'0', b'1',
        0x00,
    ];
    vec![
        ea,
        ch.session_mut().wrap_command(&perso).unwrap(),
        ch.session_mut().wrap_command(&store).unwrap(),
    ]
}

#[test]
fn wrong_kst_and_tampered_mac_are_refused_without_change() {
    let mut card = blank();
    let before = serde_json::to_string(&card.0.state().card).unwrap();
    let greeting = greet(&mut card);
    let wrong = StaticKeys::new(&[1; 16], &[1; 16], &[1; 16]).unwrap();
    assert!(matches!(
        greeting.open(&wrong),
        Err(ProductionError::WrongKeys)
    ));

    // A corrupted EXTERNAL AUTHENTICATE is refused.
    let greeting = greet(&mut card);
    let (_, ea) = greeting.open(&kst()).unwrap();
    let mut bad_ea = ea.clone();
    bad_ea[6] ^= 1;
    assert_eq!(sw(&card.transmit_raw(&bad_ea).unwrap()), 0x6300);

    // Tampered C-MAC on INSTALL: refused, channel closed, nothing installed.
    let greeting = greet(&mut card);
    let (mut ch2, ea2) = greeting.open(&kst()).unwrap();
    let setup = DeviceSetup {
        chr: "ZZKWD00003",
        dica_chr: b"ZZDICA",
        root: &dev_ca().srca.raw,
        so_pin: SO_PIN,
        transport_pin: TRANSPORT_PIN,
        reinstall: false,
    };
    let b = ch2.personalize(ea2, &setup).unwrap();
    assert_eq!(sw(&card.transmit_raw(&b.apdus()[0]).unwrap()), 0x9000);
    let mut install = b.apdus()[1].clone();
    let n = install.len();
    install[n - 3] ^= 0x80;
    assert_eq!(sw(&card.transmit_raw(&install).unwrap()), 0x6982);
    // The channel is gone: even the genuine command is refused now.
    assert_eq!(sw(&card.transmit_raw(&b.apdus()[1]).unwrap()), 0x6982);
    let state = card.0.state();
    assert!(state.card.as_ref().unwrap().applet.is_none());
    assert!(state.device.is_none());
    let after = serde_json::to_string(&state.card).unwrap();
    // Only the sequence counter moved.
    assert_eq!(
        before.replace("\"counter\":0", ""),
        after
            .split("\"counter\":")
            .map(|p| p.trim_start_matches(|c: char| c.is_ascii_digit()))
            .collect::<Vec<_>>()
            .join("")
    );

    // A forged response (R-MAC flipped) is caught by the host.
    let greeting = greet(&mut card);
    let (mut ch3, ea3) = greeting.open(&kst()).unwrap();
    let b = ch3.personalize(ea3, &setup).unwrap();
    let mut r = run(&mut card, &b);
    let last = r.last_mut().unwrap();
    let n = last.len();
    last[n - 3] ^= 1;
    assert!(matches!(
        ch3.read_request(&b, &r, "ZZKWD00003"),
        Err(ProductionError::Batch(BatchError::SecureChannel {
            source: SmError::BadMac,
            ..
        }))
    ));
}

#[test]
fn card_manager_registry_and_life_cycle() {
    let mut card = blank();
    let greeting = greet(&mut card);
    let (ch, ea) = greeting.open(&kst()).unwrap();
    let mut scp = ch;
    assert_eq!(sw(&card.transmit_raw(&ea).unwrap()), 0x9000);
    let mut send = |card: &mut InProcess<MemoryStore>, apdu: &[u8]| -> Vec<u8> {
        let w = scp.session_mut().wrap_command(apdu).unwrap();
        let r = card.transmit_raw(&w).unwrap();
        scp.session_mut().unwrap_response(&r).unwrap()
    };
    // GET STATUS of the ISD: OP_READY.
    let r = send(&mut card, &[0x80, 0xF2, 0x80, 0x02, 0x02, 0x4F, 0x00, 0x00]);
    assert_eq!(sw(&r), 0x9000);
    assert!(r.windows(4).any(|w| w == [0x9F, 0x70, 0x01, 0x01]));
    // No applet yet.
    let r = send(&mut card, &[0x80, 0xF2, 0x40, 0x02, 0x02, 0x4F, 0x00, 0x00]);
    assert_eq!(sw(&r), 0x6A88);
    // The package is there.
    let r = send(&mut card, &[0x80, 0xF2, 0x10, 0x02, 0x02, 0x4F, 0x00, 0x00]);
    assert_eq!(sw(&r), 0x9000);
    assert!(r.windows(APPLET_AID.len()).any(|w| w == APPLET_AID));
    // INSTALL [for install] only, then [for make selectable].
    let lv = |v: &[u8]| [&[v.len() as u8][..], v].concat();
    let data = [
        lv(production::PACKAGE_AID),
        lv(APPLET_AID),
        lv(APPLET_AID),
        lv(&[0]),
        lv(&[0xC9, 0]),
        lv(&[]),
    ]
    .concat();
    let install = [&[0x80, 0xE6, 0x04, 0x00, data.len() as u8][..], &data].concat();
    assert_eq!(sw(&send(&mut card, &install)), 0x9000);
    assert_eq!(sw(&send(&mut card, &install)), 0x6985, "installed twice");
    let r = send(&mut card, &[0x80, 0xF2, 0x40, 0x02, 0x02, 0x4F, 0x00, 0x00]);
    assert!(
        r.windows(4).any(|w| w == [0x9F, 0x70, 0x01, 0x03]),
        "INSTALLED"
    );
    let ms = [lv(&[]), lv(&[]), lv(APPLET_AID), lv(&[0]), lv(&[]), lv(&[])].concat();
    let ms = [&[0x80, 0xE6, 0x08, 0x00, ms.len() as u8][..], &ms].concat();
    assert_eq!(sw(&send(&mut card, &ms)), 0x9000);
    let r = send(&mut card, &[0x80, 0xF2, 0x40, 0x02, 0x02, 0x4F, 0x00, 0x00]);
    assert!(
        r.windows(4).any(|w| w == [0x9F, 0x70, 0x01, 0x07]),
        "SELECTABLE"
    );
    // Lock the applet: it cannot be selected; unlock: it can.
    let lock = [
        &[0x80, 0xF0, 0x40, 0x80, APPLET_AID.len() as u8][..],
        APPLET_AID,
    ]
    .concat();
    assert_eq!(sw(&send(&mut card, &lock)), 0x9000);
    assert_eq!(sw(&send(&mut card, &lock)), 0x6985, "already locked");
    let unlock = [
        &[0x80, 0xF0, 0x40, 0x00, APPLET_AID.len() as u8][..],
        APPLET_AID,
    ]
    .concat();
    assert_eq!(sw(&send(&mut card, &unlock)), 0x9000);
    // Card life cycle: OP_READY → SECURED; back is refused; the package cannot be deleted.
    assert_eq!(sw(&send(&mut card, &[0x80, 0xF0, 0x80, 0x0F])), 0x9000);
    assert_eq!(sw(&send(&mut card, &[0x80, 0xF0, 0x80, 0x07])), 0x6985);
    let del_pkg = [
        &[
            0x80,
            0xE4,
            0x00,
            0x00,
            2 + production::PACKAGE_AID.len() as u8,
            0x4F,
        ][..],
        &[production::PACKAGE_AID.len() as u8],
        production::PACKAGE_AID,
    ]
    .concat();
    assert_eq!(sw(&send(&mut card, &del_pkg)), 0x6985);
    // DELETE the instance: gone from the registry.
    let del = [
        &[0x80, 0xE4, 0x00, 0x00, 2 + APPLET_AID.len() as u8, 0x4F][..],
        &[APPLET_AID.len() as u8],
        APPLET_AID,
    ]
    .concat();
    assert_eq!(sw(&send(&mut card, &del)), 0x9000);
    assert_eq!(sw(&send(&mut card, &del)), 0x6A88);
    // GET DATA: key information shows the KST (KVN FF); the counter moved.
    let r = send(&mut card, &[0x80, 0xCA, 0x00, 0xE0, 0x00]);
    assert!(r.windows(4).any(|w| w == [0x01, 0xFF, 0x88, 0x10]));
    let r = send(&mut card, &[0x80, 0xCA, 0x00, 0xC1, 0x00]);
    assert_eq!(&r[..5], &[0xC1, 0x03, 0x00, 0x00, 0x01]);
    // A plain (unprotected) command on a C-MAC channel ends the channel.
    assert_eq!(
        sw(&card.transmit_raw(&[0x80, 0xF0, 0x80, 0x7F]).unwrap()),
        0x6982
    );
    assert_eq!(card.0.state().card.as_ref().unwrap().life_cycle, 0x0F);
}
