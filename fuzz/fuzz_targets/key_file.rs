#![no_main]
//! Key files (KST, KMC, master keys): any text parses or is refused, never panics.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(f) = keyward_sm::KeyFile::parse(text) {
            let _ = f.scp03_key_set();
            let _ = f.aes_key("kmc");
        }
    }
});
