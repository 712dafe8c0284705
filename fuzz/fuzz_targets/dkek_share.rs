#![no_main]
//! DKEK share files and password shares from custodians: a share file is parsed and opened
//! under a key and IV taken from the input (the password's 10^7-round derivation would make
//! each run take a second); password shares are parsed and recombined. Errors, never a panic.
use keyward_card::dkek_share::ShareFile;
use keyward_card::password_shares::{Share, parse_hex, recover};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() >= 48 {
        let (key_iv, file) = data.split_at(48);
        if let (Ok(parsed), Ok(iv)) = (ShareFile::parse(file), key_iv[32..].try_into()) {
            let _ = parsed.open_with(&key_iv[..32], iv);
        }
    }
    let text = String::from_utf8_lossy(data);
    let mut numbers = text.split(',').map(parse_hex);
    if let Some(Some(prime)) = numbers.next() {
        let values: Vec<u64> = numbers.flatten().collect();
        let shares: Vec<Share> = values
            .chunks_exact(2)
            .map(|c| Share { id: c[0], value: c[1] })
            .collect();
        let _ = recover(prime, &shares);
    }
});
