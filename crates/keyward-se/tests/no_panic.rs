#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Whatever arrives, the element answers with a status word and never panics.

mod common;

use proptest::prelude::*;

fn arb_apdu() -> impl Strategy<Value = Vec<u8>> {
    let ins = prop_oneof![
        Just(0xA4u8),
        Just(0x50),
        Just(0x52),
        Just(0x58),
        Just(0x62),
        Just(0x68),
        Just(0x78),
        Just(0x20),
        Just(0x24),
        Just(0x2C),
        Just(0x46),
        Just(0x48),
        Just(0x84),
        Just(0xB0),
        Just(0xB1),
        Just(0xD7),
        Just(0xE4),
        any::<u8>()
    ];
    let cla = prop_oneof![Just(0x00u8), Just(0x80), any::<u8>()];
    (
        cla,
        ins,
        any::<u8>(),
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
    )
        .prop_map(|(cla, ins, p1, p2, data, raw)| {
            if raw {
                // Arbitrary bytes after the header: exercises the APDU parser.
                [vec![cla, ins, p1, p2], data].concat()
            } else {
                keyward_apdu::Command::new(cla, ins, p1, p2)
                    .with_data(data)
                    .with_le(256)
                    .encode()
                    .unwrap()
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn random_apdus_after_init(apdus in proptest::collection::vec(arb_apdu(), 1..40)) {
        let mut card = common::ready_card();
        for apdu in apdus {
            let r = card.transmit(&apdu);
            prop_assert!(r.len() >= 2);
        }
    }

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut card = common::ready_card();
        prop_assert!(card.transmit(&bytes).len() >= 2);
    }
}
