#![no_main]
//! Feeds a sequence of APDUs (each prefixed by a one-byte length) to a blank element's card
//! manager on a channel authenticated at security level 00, so they reach INSTALL, STORE DATA,
//! the personalization DGIs, PUT KEY, GET/SET STATUS and DELETE without a MAC.
use keyward_se::state::{ScpKeySet, SecretBytes, State};
use keyward_se::{Applet, ISD_AID, MemoryStore};
use keyward_sm::scp03::{Scp03Host, StaticKeys};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let k = || SecretBytes::new(vec![0x40; 16]);
    let set = ScpKeySet { enc: k(), mac: k(), dek: k() };
    let mut card = Applet::new(State::blank(set, 0xFF, [1; 10]), MemoryStore);
    let select = [&[0x00, 0xA4, 0x04, 0x00, ISD_AID.len() as u8][..], ISD_AID].concat();
    card.transmit(&select);
    let keys = StaticKeys::new(&[0x40; 16], &[0x40; 16], &[0x40; 16]).expect("keys");
    let host = Scp03Host::new(keys, 0, [3; 8]);
    let r = card.transmit(&host.initialize_update());
    let (_, _, ea) = host.finish(&r[..r.len() - 2], 0x00).expect("handshake");
    card.transmit(&ea);
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        assert!(card.transmit(&tail[..n]).len() >= 2);
        rest = &tail[n..];
    }
});
