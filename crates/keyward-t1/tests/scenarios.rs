#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Data-driven protocol scenarios in `tests/scenarios/*.t1`.
//!
//! First line: `card PROFILE [ifsc=N]` or `host PROFILE [ifsc=N]` (PROFILE: iso, iso-crc, nxp, gp).
//! `>` is a host→card block, `<` a card→host block; for a `card` scenario `>` lines are fed to
//! the card engine and `<` lines are expected from it, for a `host` scenario the other way round.
//! Blocks: `I NS M HEX`, `R NR ok|edc|other`, `S KIND req|resp [HEX]` (KIND: resynch ifs abort
//! wtx cip eos atr reset swr), `!…` = the same block with a corrupted epilogue, `lost` = a frame
//! that never arrives. Other lines: `apdu HEX -> HEX` (card: expect this APDU, answer that),
//! `send HEX` (host: start a command), `timeout` (host: the deadline passes),
//! `response HEX`, `error`, `aborted` (host: expected outcome), `abort` (host: abandon the chain), `quiet` (nothing more is sent).

use keyward_t1::{
    Block, CardEngine, CardEvent, HostConfig, HostEngine, HostEvent, Profile, RCode, SKind,
};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn parse_block(words: &[&str]) -> Block {
    let kind = |k: &str| match k {
        "resynch" => SKind::RESYNCH,
        "ifs" => SKind::IFS,
        "abort" => SKind::ABORT,
        "wtx" => SKind::WTX,
        "cip" => SKind::CIP,
        "eos" => SKind::END_OF_SESSION,
        "atr" => SKind::GET_ATR,
        "reset" => SKind::CHIP_RESET_OR_RELEASE,
        "swr" => SKind::SOFT_RESET,
        other => panic!("unknown S kind {other}"),
    };
    match words {
        ["I", ns, m, rest @ ..] => Block::I {
            ns: ns.parse().unwrap(),
            more: *m == "1",
            inf: hex(&rest.concat()),
        },
        ["R", nr, code] => Block::R {
            nr: nr.parse().unwrap(),
            code: match *code {
                "ok" => RCode::Ok,
                "edc" => RCode::Edc,
                _ => RCode::Other,
            },
        },
        ["S", k, dir, rest @ ..] => Block::S {
            kind: kind(k),
            response: *dir == "resp",
            inf: hex(&rest.concat()),
        },
        other => panic!("bad block {other:?}"),
    }
}

fn frame(profile: &Profile, nad: u8, words: &[&str]) -> Option<Vec<u8>> {
    match words {
        ["lost"] => None,
        [first, rest @ ..] if first.starts_with('!') => {
            let mut w = vec![&first[1..]];
            w.extend_from_slice(rest);
            let mut f = parse_block(&w).encode(profile, nad);
            *f.last_mut().unwrap() ^= 0x01;
            Some(f)
        }
        w => Some(parse_block(w).encode(profile, nad)),
    }
}

fn run(name: &str, text: &str) {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(n, l)| (n + 1, l.split('#').next().unwrap().trim()))
        .filter(|(_, l)| !l.is_empty());
    let (_, head) = lines.next().unwrap();
    let head: Vec<&str> = head.split_whitespace().collect();
    let profile = match head[1] {
        "iso" => Profile::ISO,
        "iso-crc" => Profile::ISO_CRC,
        "nxp" => Profile::NXP_I2C,
        "gp" => Profile::GP,
        p => panic!("{name}: profile {p}"),
    };
    let ifsc = head
        .iter()
        .find_map(|w| w.strip_prefix("ifsc="))
        .map_or(32, |v| v.parse().unwrap());
    let to_card = profile.nad_to_card();
    let to_host = profile.nad_to_host();
    let mut now = 0u64;
    match head[0] {
        "card" => {
            let mut card = CardEngine::new(profile, ifsc, vec![0x3B, 0x00]);
            let mut pending_answer: Option<Vec<u8>> = None;
            for (n, line) in lines {
                let w: Vec<&str> = line.split_whitespace().collect();
                let at = format!("{name}:{n}");
                match w[0] {
                    ">" => {
                        if let Some(f) = frame(&profile, to_card, &w[1..]) {
                            card.on_frame(&f);
                        }
                        if let Some(CardEvent::Apdu(a)) = card.poll_event() {
                            pending_answer = Some(a);
                        }
                    }
                    "<" => {
                        let want = frame(&profile, to_host, &w[1..]).unwrap();
                        let got = card
                            .poll_transmit()
                            .unwrap_or_else(|| panic!("{at}: card sent nothing"));
                        assert_eq!(
                            Block::decode(&profile, to_host, &got),
                            Block::decode(&profile, to_host, &want),
                            "{at}"
                        );
                    }
                    "apdu" => {
                        let got = pending_answer
                            .take()
                            .unwrap_or_else(|| panic!("{at}: no APDU delivered"));
                        assert_eq!(got, hex(w[1]), "{at}");
                        card.respond(hex(w[3]));
                    }
                    "quiet" => {
                        assert_eq!(card.poll_transmit(), None, "{at}");
                        assert!(pending_answer.is_none(), "{at}: an APDU was delivered");
                    }
                    other => panic!("{at}: {other}"),
                }
            }
            assert_eq!(
                card.poll_transmit(),
                None,
                "{name}: unexpected trailing frame"
            );
        }
        "host" => {
            let mut config = HostConfig::for_profile(&profile);
            config.ifsc = ifsc;
            config.bwt_us = 1000;
            let mut host = HostEngine::new(profile, config);
            for (n, line) in lines {
                let w: Vec<&str> = line.split_whitespace().collect();
                let at = format!("{name}:{n}");
                match w[0] {
                    "send" => host.send_apdu(&hex(w.get(1).copied().unwrap_or("")), now),
                    ">" => {
                        let want = frame(&profile, to_card, &w[1..]).unwrap();
                        let got = host
                            .poll_transmit()
                            .unwrap_or_else(|| panic!("{at}: host sent nothing"));
                        assert_eq!(
                            Block::decode(&profile, to_card, &got),
                            Block::decode(&profile, to_card, &want),
                            "{at}"
                        );
                    }
                    "<" => {
                        now += 10;
                        if let Some(f) = frame(&profile, to_host, &w[1..]) {
                            host.on_frame(&f, now);
                        }
                    }
                    "abort" => host.abort(now),
                    "aborted" => assert!(
                        matches!(
                            host.poll_event(),
                            Some(HostEvent::Control {
                                kind: SKind::ABORT,
                                ..
                            })
                        ),
                        "{at}"
                    ),
                    "timeout" => {
                        now = host
                            .deadline()
                            .unwrap_or_else(|| panic!("{at}: no deadline"));
                        host.on_timeout(now);
                    }
                    "response" => assert_eq!(
                        host.poll_event(),
                        Some(HostEvent::Response(hex(w[1]))),
                        "{at}"
                    ),
                    "error" => assert!(
                        matches!(host.poll_event(), Some(HostEvent::Error(_))),
                        "{at}"
                    ),
                    "quiet" => assert_eq!(host.poll_transmit(), None, "{at}"),
                    other => panic!("{at}: {other}"),
                }
            }
            assert_eq!(
                host.poll_transmit(),
                None,
                "{name}: unexpected trailing frame"
            );
        }
        r => panic!("{name}: role {r}"),
    }
}

#[test]
fn scenarios() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 8);
    for f in files {
        run(
            &f.file_name().unwrap().to_string_lossy(),
            &std::fs::read_to_string(&f).unwrap(),
        );
    }
}
