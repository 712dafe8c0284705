#![no_main]
//! What an SCP03 card parses from the host: EXTERNAL AUTHENTICATE, protected commands at every
//! security level, PUT KEY data; and what a host parses: INITIALIZE UPDATE and protected
//! responses. Errors only, never a panic.
use keyward_sm::scp03::{self, Scp03Session, StaticKeys};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = StaticKeys::new(&[1; 16], &[2; 16], &[3; 16]).expect("keys");
    let _ = scp03::parse_initialize_update(data);
    let _ = scp03::parse_put_key(&keys.dek, data);
    let Ok(hs) = Scp03Session::derive(&keys, &[4; 8], &[5; 8]) else {
        return;
    };
    let mut card = hs.session;
    let _ = card.card_external_authenticate(data, &hs.host_cryptogram);
    for level in [0x01, 0x03, 0x33] {
        let Ok(hs) = Scp03Session::derive(&keys, &[4; 8], &[5; 8]) else {
            return;
        };
        let mut s = hs.session;
        let Ok(ea) = s.external_authenticate(&hs.host_cryptogram, level) else {
            return;
        };
        let mut card = Scp03Session::derive(&keys, &[4; 8], &[5; 8]).expect("derive").session;
        if card.card_external_authenticate(&ea, &hs.host_cryptogram).is_ok() {
            let _ = card.unwrap_command(data);
        }
        let _ = s.unwrap_response(data);
    }
});
