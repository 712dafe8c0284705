#![no_main]
//! Arbitrary frames (split at 0xFF-length prefixes) into the card engine of every variant.
use keyward_t1::{Block, CardEngine, CardEvent, Profile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for profile in [Profile::ISO, Profile::ISO_CRC, Profile::NXP_I2C, Profile::GP] {
        let mut card = CardEngine::new(profile, 16, vec![1, 2, 3]);
        let mut rest = data;
        while let Some((&n, tail)) = rest.split_first() {
            let n = usize::from(n).min(tail.len());
            let _ = Block::decode(&profile, profile.nad_to_card(), &tail[..n]);
            card.on_frame(&tail[..n]);
            while let Some(ev) = card.poll_event() {
                if let CardEvent::Apdu(a) = ev {
                    card.respond(a.repeat(3));
                }
            }
            while card.poll_transmit().is_some() {}
            rest = &tail[n..];
        }
    }
});
