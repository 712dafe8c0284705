#![no_main]
//! Secure-messaging unwrapping on both ends with fixed session keys.
use keyward_apdu::CommandView;
use keyward_sm::{SmSession, derive_keys};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut card = SmSession::new(derive_keys(&[7; 32], &[1; 8]));
    let mut host = SmSession::new(derive_keys(&[7; 32], &[1; 8]));
    if let Ok(cmd) = CommandView::parse(data) {
        let _ = card.unwrap_command(&cmd);
    }
    let _ = host.unwrap_response(data);
});
