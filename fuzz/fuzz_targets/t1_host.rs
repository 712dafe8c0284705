#![no_main]
//! Arbitrary frames and timeouts into the host engine of every variant during an exchange.
use keyward_t1::{HostConfig, HostEngine, Profile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for profile in [Profile::ISO, Profile::NXP_I2C, Profile::GP] {
        let mut config = HostConfig::for_profile(&profile);
        config.ifsc = 8;
        let mut host = HostEngine::new(profile, config);
        let mut now = 0u64;
        host.send_apdu(&[0u8; 40], now);
        let mut rest = data;
        while let Some((&n, tail)) = rest.split_first() {
            now += 100;
            if n == 0 {
                if let Some(d) = host.deadline() {
                    now = now.max(d);
                }
                host.on_timeout(now);
            } else {
                let n = usize::from(n).min(tail.len());
                host.on_frame(&tail[..n], now);
                rest = &tail[n..];
                continue;
            }
            rest = tail;
            while host.poll_transmit().is_some() {}
            if host.poll_event().is_some() && host.is_idle() {
                host.send_apdu(&[1u8; 3], now);
            }
        }
    }
});
