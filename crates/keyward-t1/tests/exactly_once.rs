#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! For random APDU sequences and random fault patterns, every APDU reaches the element exactly
//! once and in order with its response intact, or the host reports a link error and the element
//! ran the command at most once. `PROPTEST_CASES=5000 cargo test -p keyward-t1 --release` is the
//! long run; CI runs the default bounded number of cases.

use keyward_t1::sim::{BusTiming, Faults, SimBus, exchange};
use keyward_t1::{CardEngine, HostConfig, HostEngine, Profile};
use proptest::prelude::*;

fn expected_response(cmd: &[u8]) -> Vec<u8> {
    let mut r: Vec<u8> = cmd.iter().rev().map(|b| b ^ 0x5A).collect();
    r.extend_from_slice(&[0x90, 0x00]);
    r
}

fn profile() -> impl Strategy<Value = Profile> {
    prop_oneof![
        Just(Profile::ISO),
        Just(Profile::ISO_CRC),
        Just(Profile::NXP_I2C),
        Just(Profile::GP)
    ]
}

fn apdu() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..300),
        1 => proptest::collection::vec(any::<u8>(), 300..4000),
        1 => (0usize..=65535).prop_map(|n| (0..n).map(|i| i as u8).collect()),
    ]
}

fn faults() -> impl Strategy<Value = Faults> {
    (
        prop_oneof![Just(0.0), Just(1e-5), Just(1e-4), Just(1e-3)],
        0.0..0.05f64,
        0.0..0.02f64,
        0.0..0.02f64,
        0.0..0.02f64,
        0.0..0.02f64,
        0.0..0.02f64,
    )
        .prop_map(
            |(ber, drop, drop_byte, insert, truncate, busy, nack)| Faults {
                bit_error_rate: ber,
                drop,
                drop_byte,
                insert,
                truncate,
                stuck_busy: busy,
                nack,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn every_apdu_exactly_once_or_a_clear_error(
        profile in profile(),
        ifsc in prop_oneof![Just(32usize), Just(254), 1usize..254],
        apdus in proptest::collection::vec(apdu(), 1..6),
        faults in faults(),
        seed in any::<u64>(),
    ) {
        let mut config = HostConfig::for_profile(&profile);
        config.ifsc = ifsc;
        let mut host = HostEngine::new(profile, config);
        let mut card = CardEngine::new(profile, ifsc, vec![0x00]);
        let mut bus = SimBus::new(BusTiming::I2C_400K, faults, seed).watch_edc(profile);
        let mut now = 0u64;
        let mut executed: Vec<Vec<u8>> = Vec::new();
        let mut sent: Vec<Vec<u8>> = Vec::new();
        for cmd in &apdus {
            sent.push(cmd.clone());
            let mut app = |c: &[u8]| { executed.push(c.to_vec()); expected_response(c) };
            let ex = exchange(&mut host, &mut card, &mut bus, &mut now, cmd, &mut app);
            if bus.undetected > 0 {
                // A corruption the EDC cannot see: beyond what any T=1 link can promise.
                return Ok(());
            }
            match &ex.result {
                Ok(resp) => {
                    prop_assert_eq!(resp, &expected_response(cmd));
                    prop_assert_eq!(ex.executions, 1);
                }
                Err(_) => prop_assert!(ex.executions <= 1, "executed {} times", ex.executions),
            }
        }
        // What ran is what was sent, in order, each at most once.
        let mut it = sent.iter();
        for e in &executed {
            prop_assert!(it.any(|s| s == e), "executed a command out of order or twice");
        }
        // Without faults, everything is delivered.
        if faults.bit_error_rate == 0.0 && faults.drop + faults.drop_byte + faults.insert + faults.truncate + faults.stuck_busy + faults.nack == 0.0 {
            prop_assert_eq!(executed, sent);
        }
    }
}

#[test]
fn fault_free_long_apdus_use_the_bus_efficiently() {
    for profile in [Profile::ISO, Profile::NXP_I2C, Profile::GP] {
        let mut config = HostConfig::for_profile(&profile);
        config.ifsc = 254;
        config.ifsd = 254;
        let mut host = HostEngine::new(profile, config);
        let mut card = CardEngine::new(profile, 254, vec![]);
        let mut bus = SimBus::new(BusTiming::I2C_400K, Faults::default(), 1);
        let mut now = 0;
        let apdu: Vec<u8> = (0..65535u32).map(|i| i as u8).collect();
        let ex = exchange(&mut host, &mut card, &mut bus, &mut now, &apdu, &mut |c| {
            c.to_vec()
        });
        assert_eq!(ex.result.unwrap(), apdu);
        assert_eq!(ex.executions, 1);
    }
}

proptest! {
    /// Neither engine panics, whatever frames and timeouts arrive.
    #[test]
    fn engines_never_panic(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..30), variant in 0usize..3) {
        let profile = [Profile::ISO, Profile::NXP_I2C, Profile::GP][variant];
        let mut card = CardEngine::new(profile, 8, vec![1]);
        let mut host = HostEngine::new(profile, HostConfig::for_profile(&profile));
        host.send_apdu(&[7u8; 20], 0);
        for (i, f) in frames.iter().enumerate() {
            card.on_frame(f);
            while let Some(keyward_t1::CardEvent::Apdu(a)) = card.poll_event() {
                card.respond(a);
            }
            host.on_frame(f, i as u64 * 1000);
            host.on_timeout(u64::MAX / 2);
            while card.poll_transmit().is_some() {}
            while host.poll_transmit().is_some() {}
        }
    }
}
