#![no_main]
//! Wrapped-key blobs from hosts (UNWRAP KEY, backup files): refused or unwrapped, never a
//! panic. The first 32 bytes are the DKEK, so the MAC check can pass on constructed inputs.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() > 32 {
        let (dkek, blob) = data.split_at(32);
        let _ = keyward_se::key_blob::unwrap(dkek, blob);
    }
});
