#![no_main]
use keyward_cvc::{AuthenticatedRequest, Certificate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(chain) = Certificate::parse_chain(data) {
        let raw: Vec<u8> = chain.iter().flat_map(|c| c.raw.iter().copied()).collect();
        assert_eq!(raw, data);
    }
    let _ = AuthenticatedRequest::parse(data);
});
