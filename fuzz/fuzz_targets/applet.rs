#![no_main]
//! Feeds a sequence of APDUs (each prefixed by a one-byte length) to an initialized element
//! with the PIN verified. The first byte picks how it was initialized: PIN only; with a DKEK of
//! one share (imported) and two key domains, so WRAP/UNWRAP and the domain commands run; or
//! for public-key authentication (3 keys, 2 required) with one share still outstanding.
use std::sync::OnceLock;

use keyward_se::dev_pki::DevCa;
use keyward_se::state::State;
use keyward_se::{AID, Applet, MemoryStore};
use libfuzzer_sys::fuzz_target;

/// INITIALIZE DEVICE: options, PIN 648219, SO-PIN, 3 retries, then `extra` TLVs.
fn initialized(extra: &[u8], share: bool) -> State {
    let dir = std::env::temp_dir().join(format!("keyward-fuzz-{}", std::process::id()));
    let ca = DevCa::open_or_create(&dir).expect("dev CA");
    let mut card = Applet::new(ca.new_element().expect("element"), MemoryStore);
    let mut select = vec![0x00, 0xA4, 0x04, 0x00, AID.len() as u8];
    select.extend_from_slice(AID);
    card.transmit(&select);
    let mut data = vec![
        0x80, 2, 0, 1, 0x81, 6, b'6', b'4', b'8', b'2', b'1', b'9', 0x82, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0x91, 1, 3,
    ];
    data.extend_from_slice(extra);
    let mut init = vec![0x80, 0x50, 0, 0, data.len() as u8];
    init.extend_from_slice(&data);
    card.transmit(&init);
    if share {
        let mut import = vec![0x80, 0x52, 0, 0, 32];
        import.extend_from_slice(&[0x5A; 32]);
        card.transmit(&import);
    }
    card.state().clone()
}

fn states() -> &'static [State; 3] {
    static STATES: OnceLock<[State; 3]> = OnceLock::new();
    STATES.get_or_init(|| {
        [
            initialized(&[], false),
            initialized(&[0x92, 1, 1, 0x97, 1, 2], true),
            initialized(&[0x92, 1, 2, 0x93, 2, 3, 2], true),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, data)) = data.split_first() else { return };
    let states = states();
    let mut card = Applet::new(states[usize::from(pick) % states.len()].clone(), MemoryStore);
    let mut select = vec![0x00, 0xA4, 0x04, 0x0C, AID.len() as u8];
    select.extend_from_slice(AID);
    card.transmit(&select);
    card.transmit(b"\x00\x20\x00\x81\x06648219");
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let response = card.transmit(&tail[..n]);
        assert!(response.len() >= 2);
        rest = &tail[n..];
    }
});
