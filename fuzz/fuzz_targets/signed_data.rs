#![no_main]
//! Signed data from devices (COSE_Sign1, detached CMS) and the CBOR under COSE, as a relying
//! party receives them: verified or refused, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let trust = keyward_device::Trust::default();
    let _ = keyward_device::cbor::Value::decode(data);
    let _ = keyward_device::cose::verify1(data, Some(b"payload"), &trust, 0);
    let _ = keyward_device::cms::verify_detached(data, b"payload", &trust, 0);
});
