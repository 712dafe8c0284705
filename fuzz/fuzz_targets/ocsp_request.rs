#![no_main]
//! OCSP requests (RFC 6960) from anyone on the network: parsed or refused, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = keyward_ca::ocsp::Request::parse(data);
});
