#![no_main]
//! RFC 7512 pkcs11: URIs (CA key locations): any text parses or is refused, never panics.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = keyward_ca::pkcs11_uri::Pkcs11Uri::parse(text);
    }
});
