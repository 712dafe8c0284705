#![no_main]
//! Feeds a sequence of APDUs (each prefixed by a one-byte length) to an initialized element
//! with the PIN verified.
use std::sync::OnceLock;

use keyward_se::dev_pki::DevCa;
use keyward_se::state::State;
use keyward_se::{AID, Applet, MemoryStore};
use libfuzzer_sys::fuzz_target;

fn initialized() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("keyward-fuzz-{}", std::process::id()));
        let ca = DevCa::open_or_create(&dir).expect("dev CA");
        let mut card = Applet::new(ca.new_element().expect("element"), MemoryStore);
        let mut select = vec![0x00, 0xA4, 0x04, 0x00, AID.len() as u8];
        select.extend_from_slice(AID);
        card.transmit(&select);
        card.transmit(&[
            0x80, 0x50, 0, 0, 0x19, 0x80, 2, 0, 1, 0x81, 6, b'6', b'4', b'8', b'2', b'1', b'9', 0x82, 8, 1, 2, 3, 4,
            5, 6, 7, 8, 0x91, 1, 3,
        ]);
        card.state().clone()
    })
}

fuzz_target!(|data: &[u8]| {
    let mut card = Applet::new(initialized().clone(), MemoryStore);
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
