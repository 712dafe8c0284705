#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Known answers for the KDF, the token and a wrapped command/response, computed independently
//! with OpenSSL by `tests/kat_derivation.py` (SHA-1 KDF, AES-CMAC, AES-ECB for the IV, AES-CBC).

use keyward_apdu::{Command, Response, StatusWord};
use keyward_sm::{SessionKeys, SmError, SmSession, derive_keys, token};
use zeroize::Zeroizing;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn keys() -> SessionKeys {
    let k: Vec<u8> = (1..=32).collect();
    let r: Vec<u8> = (0xA0..0xA8).collect();
    derive_keys(&k, &r)
}

fn copy(k: &SessionKeys) -> SessionKeys {
    SessionKeys {
        k_enc: Zeroizing::new(*k.k_enc),
        k_mac: Zeroizing::new(*k.k_mac),
    }
}

#[test]
fn kdf_and_token() {
    let k = keys();
    assert_eq!(&k.k_enc[..], &h("c6e7e1dd16f1bd3df18e6a8864a902bf")[..]);
    assert_eq!(&k.k_mac[..], &h("3c33178e816e6c96734320c9e947a455")[..]);
    let pk: Vec<u8> = std::iter::once(4u8).chain(0x10..0x50).collect();
    assert_eq!(
        token(&k.k_mac, &pk).unwrap().to_vec(),
        h("c0ac64f1195dbadf")
    );
}

#[test]
fn wrapped_exchange() {
    let mut host = SmSession::new(keys());
    let mut card = SmSession::new(keys());
    let plain = Command::new(0x00, 0xB1, 0x2F, 0x02)
        .with_data(h("54020000"))
        .with_le(256);
    let wrapped = host.wrap_command(&plain.view()).unwrap();
    assert_eq!(
        wrapped.encode().unwrap(),
        h("0cb12f021f851071eb8bfcf4e43fa8ff760a83463466759701008e08f6c2ce82a41cdf3200")
    );
    let unwrapped = card.unwrap_command(&wrapped.view()).unwrap();
    assert_eq!(unwrapped, plain);
    let response = card.wrap_response(&Response::ok(h("010203"))).unwrap();
    assert_eq!(
        response.encode(),
        h("8711011461dc2dba9bdc829ff0e34a8c020121990290008e08b6b8aa1d7aa98b419000")
    );
    let r = host.unwrap_response(&response.encode()).unwrap();
    assert_eq!((r.data, r.sw), (h("010203"), StatusWord::SUCCESS));
}

#[test]
fn tampering_replay_and_sequence_errors() {
    let k = keys();
    let plain = Command::new(0x00, 0x20, 0x00, 0x81).with_data(b"648219".to_vec());
    // Flipped MAC bit in a command.
    let (mut host, mut card) = (SmSession::new(copy(&k)), SmSession::new(copy(&k)));
    let mut bytes = host.wrap_command(&plain.view()).unwrap().encode().unwrap();
    let last = bytes.len() - 1;
    bytes[last - 1] ^= 1; // inside 8E (before the trailing Le)
    let tampered = keyward_apdu::CommandView::parse(&bytes).unwrap();
    assert_eq!(card.unwrap_command(&tampered).unwrap_err(), SmError::BadMac);
    // A flipped bit in the cryptogram is caught by the MAC too.
    let (mut host, mut card) = (SmSession::new(copy(&k)), SmSession::new(copy(&k)));
    let mut bytes = host.wrap_command(&plain.view()).unwrap().encode().unwrap();
    bytes[8] ^= 0x40;
    assert_eq!(
        card.unwrap_command(&keyward_apdu::CommandView::parse(&bytes).unwrap())
            .unwrap_err(),
        SmError::BadMac
    );
    // A skipped SSC step: the host protected a command the card never saw.
    let (mut host, mut card) = (SmSession::new(copy(&k)), SmSession::new(copy(&k)));
    let _lost = host.wrap_command(&plain.view()).unwrap();
    let _lost_response = host.next_for_test();
    let next = host.wrap_command(&plain.view()).unwrap();
    assert_eq!(
        card.unwrap_command(&next.view()).unwrap_err(),
        SmError::BadMac
    );
    // A replayed response.
    let (mut host, mut card) = (SmSession::new(copy(&k)), SmSession::new(copy(&k)));
    let c1 = host.wrap_command(&plain.view()).unwrap();
    card.unwrap_command(&c1.view()).unwrap();
    let r1 = card.wrap_response(&Response::ok(vec![])).unwrap().encode();
    host.unwrap_response(&r1).unwrap();
    let c2 = host.wrap_command(&plain.view()).unwrap();
    card.unwrap_command(&c2.view()).unwrap();
    assert_eq!(host.unwrap_response(&r1).unwrap_err(), SmError::BadMac);
    // Missing MAC object, bare status word.
    let (mut host, mut card) = (SmSession::new(copy(&k)), SmSession::new(copy(&k)));
    let no_mac = Command::new(0x0C, 0x20, 0x00, 0x81).with_data(h("970100"));
    assert_eq!(
        card.unwrap_command(&no_mac.view()).unwrap_err(),
        SmError::MissingDataObject
    );
    let _ = host.wrap_command(&plain.view()).unwrap();
    assert_eq!(
        host.unwrap_response(&[0x69, 0x88]).unwrap_err(),
        SmError::CardError(StatusWord(0x6988))
    );
}
