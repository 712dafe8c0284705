#![no_main]
use keyward_apdu::{CommandView, ResponseView};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cmd) = CommandView::parse(data) {
        // Whatever parses must re-encode to the same bytes.
        assert_eq!(cmd.to_owned().encode().ok().as_deref(), Some(data));
    }
    let _ = ResponseView::parse(data);
});
