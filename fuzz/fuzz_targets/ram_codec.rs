#![no_main]
//! RAMoverHTTP messages from the network: decoders never panic, and what decodes re-encodes to
//! something that decodes to the same.
use keyward_ram::codec::{Initiation, ResponseScript, decode_commands, encode_commands};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = decode_commands(data) {
        let again = encode_commands(&c).expect("re-encode");
        assert_eq!(decode_commands(&again).ok(), Some(c));
    }
    if let Ok(r) = ResponseScript::decode(data) {
        let again = r.encode().expect("re-encode");
        assert_eq!(ResponseScript::decode(&again).ok(), Some(r));
    }
    if let Ok(i) = Initiation::decode(data) {
        let again = i.encode().expect("re-encode");
        assert_eq!(Initiation::decode(&again).ok(), Some(i));
    }
});
