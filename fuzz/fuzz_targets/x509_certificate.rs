#![no_main]
//! Certificates from devices, peers and files: parsed or refused, never a panic; what parses
//! can be displayed and checked.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = keyward_ca::x509_read::Certificate::parse(data) {
        let _ = c.subject_text();
        let _ = c.signed_by(&c);
        let _ = keyward_ca::x509_read::public_key_info(c.spki);
    }
});
