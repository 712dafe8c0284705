#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Runs the APDU transcripts in `tests/transcripts/*.apdu` against fresh elements.
//!
//! Format: `> C-APDU` sends a command; `< [DATA] SW` expects a response, where DATA may be `*`
//! (any data, possibly none) and SW is four hex digits. `#` starts a comment.

mod common;

fn run_transcript(name: &str, text: &str) {
    let mut card = common::card();
    let mut last: Option<Vec<u8>> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(cmd) = line.strip_prefix('>') {
            assert!(
                last.is_none(),
                "{name}:{}: response of the previous command not checked",
                n + 1
            );
            last = Some(card.transmit(&common::hex(cmd)));
        } else if let Some(expect) = line.strip_prefix('<') {
            let got = last
                .take()
                .unwrap_or_else(|| panic!("{name}:{}: no command sent", n + 1));
            let words: Vec<&str> = expect.split_whitespace().collect();
            let (sw, data) = words.split_last().unwrap();
            let sw = common::hex(sw);
            let (body, got_sw) = got.split_at(got.len() - 2);
            assert_eq!(
                got_sw,
                &sw[..],
                "{name}:{}: status word (response {})",
                n + 1,
                hexs(&got)
            );
            match data {
                ["*"] => {}
                data => assert_eq!(
                    hexs(body),
                    data.concat().to_uppercase(),
                    "{name}:{}: data",
                    n + 1
                ),
            }
        } else {
            assert!(line.is_empty(), "{name}:{}: unrecognized line", n + 1);
        }
    }
    assert!(last.is_none(), "{name}: last response not checked");
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

#[test]
fn transcripts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert!(!names.is_empty());
    for path in names {
        let text = std::fs::read_to_string(&path).unwrap();
        run_transcript(&path.file_name().unwrap().to_string_lossy(), &text);
    }
}
