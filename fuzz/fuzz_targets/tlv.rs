#![no_main]
use keyward_apdu::tlv;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(all) = tlv::parse_all(data) {
        let raw: Vec<u8> = all.iter().flat_map(|t| t.raw.iter().copied()).collect();
        assert_eq!(raw, data);
        for t in all {
            for child in t.children() {
                let _ = child;
            }
        }
    }
});
