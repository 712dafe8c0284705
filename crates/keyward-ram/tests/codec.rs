#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The RAMoverHTTP codec byte for byte: the reference's example session, the C client's quirks
//! (`AA 00` → `AB 03 80 01 00`, counts of 128 and more as minimal signed INTEGERs), length forms,
//! and what must be refused.

use keyward_ram::RamError;
use keyward_ram::client::{Card, execute};
use keyward_ram::codec::{
    Command, Initiation, Response, ResponseScript, decode_commands, encode_commands,
};
use proptest::prelude::*;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

const ATR: &str = "3BFE1800008131FE45803181544853 4D31738021408107FA";
const SELECT: &str = "00A4040C0BE82B0601040181C31F0201";

/// A card answering 9000 to everything (and a fixed ATR on reset).
struct Ok9000(u32);
impl Card for Ok9000 {
    fn atr(&mut self) -> Vec<u8> {
        h(ATR)
    }
    fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>, String> {
        self.0 += 1;
        Ok(vec![0x90, 0x00])
    }
    fn reset(&mut self) -> Result<Vec<u8>, String> {
        Ok(h(ATR))
    }
}

#[test]
fn reference_example_session() {
    // dev→srv POST E8 1A C0 18 <ATR>
    let init = Initiation::new(h(ATR));
    assert_eq!(init.encode().unwrap(), h(&format!("E81AC018{ATR}")));
    assert_eq!(
        Initiation::decode(&h(&format!("E81AC018{ATR}"))).unwrap(),
        init
    );
    // srv→dev 200 AA 12 22 10 <SELECT>
    let script = vec![Command::Apdu(h(SELECT))];
    assert_eq!(
        encode_commands(&script).unwrap(),
        h(&format!("AA122210{SELECT}"))
    );
    assert_eq!(
        decode_commands(&h(&format!("AA122210{SELECT}"))).unwrap(),
        script
    );
    // dev→srv POST AB 07 23 02 9000 80 01 01
    let done = execute(&script, &mut Ok9000(0), &mut |_| {});
    assert_eq!(done.response.encode().unwrap(), h("AB07 2302 9000 800101"));
    assert_eq!(
        ResponseScript::decode(&h("AB07 2302 9000 800101")).unwrap(),
        done.response
    );
}

#[test]
fn empty_script_is_answered_with_a_zero_count() {
    let commands = decode_commands(&h("AA00")).unwrap();
    assert!(commands.is_empty());
    let done = execute(&commands, &mut Ok9000(0), &mut |_| {});
    assert_eq!(done.response.encode().unwrap(), h("AB03 800100"));
}

#[test]
fn counts_are_minimal_signed_integers_read_whole_wherever_they_stand() {
    let mut card = Ok9000(0);
    let script: Vec<Command> = (0..128).map(|_| Command::Apdu(h("00840000 08"))).collect();
    let done = execute(&script, &mut card, &mut |_| {});
    let enc = done.response.encode().unwrap();
    // 128 R-APDUs of 4 bytes each, then 80 02 00 80.
    assert_eq!(&enc[enc.len() - 4..], h("80020080"));
    assert_eq!(&enc[..4], h("AB8202 04"), "82 length form");
    assert_eq!(ResponseScript::decode(&enc).unwrap().executed, 128);
    for (count, bytes) in [
        (0u32, "00"),
        (127, "7F"),
        (128, "0080"),
        (300, "012C"),
        (40000, "009C40"),
    ] {
        let r = ResponseScript {
            items: vec![],
            executed: count,
        };
        let enc = r.encode().unwrap();
        assert_eq!(
            enc,
            h(&format!(
                "AB{:02X}80{:02X}{bytes}",
                2 + bytes.len() / 2,
                bytes.len() / 2
            ))
        );
        assert_eq!(ResponseScript::decode(&enc).unwrap(), r);
    }
    // GP Amd B puts the count first; it is read there too.
    let first = ResponseScript::decode(&h("AB07 800101 23029000")).unwrap();
    assert_eq!((first.executed, first.apdus().count()), (1, 1));
}

#[test]
fn notify_reset_close_and_length_forms() {
    let script = vec![
        Command::Notify {
            id: 1,
            text: "hi".into(),
            time_to_completion: None,
        },
        Command::Reset,
        Command::Notify {
            id: -1,
            text: "bye".into(),
            time_to_completion: Some(30),
        },
    ];
    let enc = encode_commands(&script).unwrap();
    assert_eq!(
        enc,
        h("AA18 E007 020101 0C026869 C000 E00B 0201FF 0C03627965 C3011E")
    );
    assert_eq!(decode_commands(&enc).unwrap(), script);
    // The device: notify seen, reset answered with the ATR, the negative notify stops it.
    let mut seen = Vec::new();
    let done = execute(&script, &mut Ok9000(0), &mut |n| seen.push(n.id));
    assert_eq!(seen, vec![1, -1]);
    assert_eq!(done.stop.unwrap().text, "bye");
    assert_eq!(done.response.items, vec![Response::Atr(h(ATR))]);
    // Card failures become E1 { 0C reason } and end the batch.
    struct Broken;
    impl Card for Broken {
        fn atr(&mut self) -> Vec<u8> {
            vec![0x3B]
        }
        fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>, String> {
            Err("card removed".into())
        }
        fn reset(&mut self) -> Result<Vec<u8>, String> {
            Err("card removed".into())
        }
    }
    let done = execute(
        &[Command::Apdu(h(SELECT)), Command::Apdu(h(SELECT))],
        &mut Broken,
        &mut |_| {},
    );
    assert_eq!(
        done.response.encode().unwrap(),
        h("AB13 E10E 0C0C 63617264 2072656D 6F766564 800100")
    );
    // 81 and 82 length forms for long APDUs.
    let long = Command::Apdu(vec![0; 200]);
    assert_eq!(&encode_commands(&[long]).unwrap()[..5], h("AA81CB2281"));
    let longer = Command::Apdu(vec![0; 300]);
    assert_eq!(
        &encode_commands(&[longer]).unwrap()[..8],
        h("AA82013022 82012C")
    );
}

#[test]
fn malformed_input_is_refused() {
    let cases: &[(&str, RamError)] = &[
        ("", RamError::Truncated),
        ("AA", RamError::Truncated),
        ("AA05 2203", RamError::Truncated),
        ("AA80 0000", RamError::BadLength),
        ("AA83 000001 00", RamError::BadLength),
        ("AA03 E10100", RamError::UnexpectedTag(0xE1)),
        ("AA02 9900", RamError::UnexpectedTag(0x99)),
        ("AA00 00", RamError::TrailingData),
        ("AB00", RamError::UnexpectedTag(0xAB)),
        ("AA03 E00100", RamError::Truncated),
        ("AA02 E000", RamError::BadNotify),
    ];
    for (input, err) in cases {
        assert_eq!(decode_commands(&h(input)), Err(*err), "{input}");
    }
    assert_eq!(
        ResponseScript::decode(&h("AB04 23029000")),
        Err(RamError::MissingCount)
    );
    assert_eq!(
        ResponseScript::decode(&h("AB02 8000")),
        Err(RamError::BadInteger)
    );
    assert_eq!(Initiation::decode(&h("E800")), Err(RamError::MissingAtr));
    assert_eq!(
        Initiation::decode(&h("AA00")),
        Err(RamError::UnexpectedTag(0xAA))
    );
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 4..300).prop_map(Command::Apdu),
        Just(Command::Reset),
        (
            any::<i32>(),
            "[ -~]{0,40}",
            proptest::option::of(0u32..100_000)
        )
            .prop_map(|(id, text, t)| {
                Command::Notify {
                    id: i64::from(id),
                    text,
                    time_to_completion: t,
                }
            }),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 2..300).prop_map(Response::Apdu),
        proptest::collection::vec(any::<u8>(), 0..33).prop_map(Response::Atr),
        "[ -~]{0,40}".prop_map(Response::Close),
    ]
}

proptest! {
    #[test]
    fn command_scripts_round_trip(script in proptest::collection::vec(command(), 0..20)) {
        prop_assert_eq!(decode_commands(&encode_commands(&script).unwrap()).unwrap(), script);
    }

    #[test]
    fn response_scripts_round_trip(items in proptest::collection::vec(response(), 0..20), executed in any::<u32>()) {
        let r = ResponseScript { items, executed };
        prop_assert_eq!(ResponseScript::decode(&r.encode().unwrap()).unwrap(), r);
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_commands(&bytes);
        let _ = ResponseScript::decode(&bytes);
        let _ = Initiation::decode(&bytes);
        let _ = keyward_ram::tlv::parse_all(&bytes);
    }
}
