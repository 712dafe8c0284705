#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The card manager never panics and always answers with a status word: random command
//! sequences on a channel authenticated at security level 00 (so they reach INSTALL, STORE
//! DATA and the personalization DGIs without a MAC), and random bytes before authentication.

use keyward_se::state::{ScpKeySet, SecretBytes, State};
use keyward_se::{AID, Applet, ISD_AID, MemoryStore};
use keyward_sm::scp03::{Scp03Host, StaticKeys};
use proptest::prelude::*;

const KST: [u8; 16] = [0x40; 16];

fn blank() -> Applet<MemoryStore> {
    let k = || SecretBytes::new(KST.to_vec());
    let set = ScpKeySet {
        enc: k(),
        mac: k(),
        dek: k(),
    };
    Applet::new(State::blank(set, 0xFF, [1; 10]), MemoryStore)
}

/// Selects the ISD and authenticates at level 00.
fn authenticated() -> Applet<MemoryStore> {
    let mut card = blank();
    let select = [&[0x00, 0xA4, 0x04, 0x00, ISD_AID.len() as u8][..], ISD_AID].concat();
    assert!(card.transmit(&select).ends_with(&[0x90, 0x00]));
    let keys = StaticKeys::new(&KST, &KST, &KST).unwrap();
    let host = Scp03Host::new(keys, 0, [3; 8]);
    let r = card.transmit(&host.initialize_update());
    let (_, _, ea) = host.finish(&r[..r.len() - 2], 0x00).unwrap();
    assert_eq!(card.transmit(&ea), [0x90, 0x00]);
    card
}

/// Plausible card-manager commands: GP class and instructions, P1/P2 and data from the test.
fn command() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(vec![0x80u8, 0x84, 0x00]),
        prop::sample::select(vec![0xE6u8, 0xE2, 0xD8, 0xF2, 0xF0, 0xE4, 0xCA, 0x50, 0xA4]),
        any::<u8>(),
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..240),
    )
        .prop_map(|(cla, ins, p1, p2, data)| {
            let mut v = vec![cla, ins, p1, p2];
            if !data.is_empty() {
                v.push(data.len() as u8);
                v.extend(data);
            }
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn commands_on_an_open_channel_never_panic(cmds in prop::collection::vec(command(), 1..24)) {
        let mut card = authenticated();
        for c in &cmds {
            let r = card.transmit(c);
            prop_assert!(r.len() >= 2);
        }
        // Whatever happened, the applet is either absent or selectable by its AID only.
        let select = [&[0x00, 0xA4, 0x04, 0x0C, AID.len() as u8][..], AID].concat();
        let r = card.transmit(&select);
        prop_assert!(r.len() == 2);
    }

    #[test]
    fn raw_bytes_never_panic(apdus in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..16)) {
        let mut card = blank();
        let select = [&[0x00, 0xA4, 0x04, 0x00, ISD_AID.len() as u8][..], ISD_AID].concat();
        card.transmit(&select);
        for a in &apdus {
            prop_assert!(card.transmit(a).len() >= 2);
        }
    }
}

#[test]
fn personalization_dgis_split_across_blocks_are_reassembled() {
    let mut card = authenticated();
    let lv = |v: &[u8]| [&[v.len() as u8][..], v].concat();
    let install = [
        lv(keyward_se::PACKAGE_AID),
        lv(AID),
        lv(AID),
        lv(&[0]),
        lv(&[0xC9, 0]),
        lv(&[]),
    ]
    .concat();
    let r = card.transmit(&[&[0x80, 0xE6, 0x0C, 0x00, install.len() as u8][..], &install].concat());
    assert_eq!(r, [0x00, 0x90, 0x00]);
    let perso = [lv(&[]), lv(&[]), lv(AID), lv(&[]), lv(&[]), lv(&[])].concat();
    let r = card.transmit(&[&[0x80, 0xE6, 0x20, 0x00, perso.len() as u8][..], &perso].concat());
    assert_eq!(r, [0x90, 0x00]);
    // GENERATE DevAut for CHR "ZZKWD00042", its DGI split in the middle of the value.
    let chr = b"ZZKWD00042";
    let value = [&[0x5F, 0x20, chr.len() as u8][..], chr].concat();
    let dgi = [&[0x01, 0x01, value.len() as u8][..], &value].concat();
    let (a, b) = dgi.split_at(5);
    let r = card.transmit(&[&[0x80, 0xE2, 0x09, 0x00, a.len() as u8][..], a, &[0]].concat());
    assert_eq!(r, [0x90, 0x00], "incomplete DGI: nothing yet");
    // A block out of sequence ends the session.
    let r = card.transmit(&[&[0x80, 0xE2, 0x09, 0x05, b.len() as u8][..], b, &[0]].concat());
    assert_eq!(&r[r.len() - 2..], [0x6A, 0x86]);
    let r = card.transmit(&[&[0x80, 0xE2, 0x09, 0x01, b.len() as u8][..], b, &[0]].concat());
    assert_eq!(
        &r[r.len() - 2..],
        [0x69, 0x85],
        "no personalization session any more"
    );
    // Again, in sequence: the second block completes the DGI and returns the CV request.
    let r = card.transmit(&[&[0x80, 0xE6, 0x20, 0x00, perso.len() as u8][..], &perso].concat());
    assert_eq!(r, [0x90, 0x00]);
    card.transmit(&[&[0x80, 0xE2, 0x09, 0x00, a.len() as u8][..], a, &[0]].concat());
    let r = card.transmit(&[&[0x80, 0xE2, 0x89, 0x01, b.len() as u8][..], b, &[0]].concat());
    assert_eq!(&r[r.len() - 2..], [0x90, 0x00]);
    let request = keyward_cvc::Certificate::parse(&r[..r.len() - 2]).unwrap();
    assert_eq!(request.body.chr, chr);
    assert_eq!(card.state().device_chr(), "ZZKWD00042");
    // Without EF.C_DevAut the applet is not personalized: a new session may start over.
    let r = card.transmit(&[&[0x80, 0xE6, 0x20, 0x00, perso.len() as u8][..], &perso].concat());
    assert_eq!(r, [0x90, 0x00]);
}
