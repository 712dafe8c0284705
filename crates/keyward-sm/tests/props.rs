#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Properties: host wrap ∘ card unwrap is the identity in both directions, for any command and
//! response; garbage never panics either end.

use keyward_apdu::{Command, CommandView, Response, StatusWord};
use keyward_sm::{SmSession, derive_keys};
use proptest::prelude::*;

fn pair() -> (SmSession, SmSession) {
    (
        SmSession::new(derive_keys(&[7; 32], &[1; 8])),
        SmSession::new(derive_keys(&[7; 32], &[1; 8])),
    )
}

proptest! {
    #[test]
    fn round_trip(
        proprietary in any::<bool>(),
        ins in any::<u8>(),
        p1 in any::<u8>(),
        p2 in any::<u8>(),
        data in proptest::collection::vec(any::<u8>(), 0..1500),
        le in proptest::option::of(1u32..=65536),
        rdata in proptest::collection::vec(any::<u8>(), 0..1500),
        sw in any::<u16>(),
    ) {
        let (mut host, mut card) = pair();
        let mut cmd = Command::new(if proprietary { 0x80 } else { 0x00 }, ins, p1, p2).with_data(data);
        cmd.le = le;
        for _ in 0..2 {
            let wire = host.wrap_command(&cmd.view()).unwrap().encode().unwrap();
            let plain = card.unwrap_command(&CommandView::parse(&wire).unwrap()).unwrap();
            prop_assert_eq!(&plain.data, &cmd.data);
            prop_assert_eq!((plain.cla, plain.ins, plain.p1, plain.p2, plain.le), (cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.le));
            let resp = Response::new(rdata.clone(), StatusWord(sw));
            let wire = card.wrap_response(&resp).unwrap().encode();
            prop_assert_eq!(host.unwrap_response(&wire).unwrap(), resp);
        }
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let (mut host, mut card) = pair();
        if let Ok(cmd) = CommandView::parse(&bytes) {
            let _ = card.unwrap_command(&cmd);
        }
        let _ = host.unwrap_response(&bytes);
    }
}
