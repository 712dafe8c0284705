#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The sealed state file: secrecy, locking, versioned fixtures and crash safety.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::tempfile_dir::Dir;
use common::{PIN, SO_PIN, init_data, ok, select, send};
use keyward_apdu::{Command, StatusWord};
use keyward_se::state::{KeyMaterial, State};
use keyward_se::{Applet, StateFile, StorageError, read_snapshot};

fn key_path(state: &Path) -> PathBuf {
    StateFile::default_key_path(state)
}

/// An initialized element with one EC key and one file, persisted in `path`.
fn populated(path: &Path) -> Applet<StateFile> {
    let file = StateFile::create(path, &key_path(path), &common::fresh_state()).unwrap();
    let (file, state) = {
        drop(file);
        StateFile::open(path, &key_path(path)).unwrap()
    };
    let mut card = Applet::new(state, file);
    select(&mut card);
    ok(
        &mut card,
        Command::new(0x80, 0x50, 0, 0).with_data(init_data(1, PIN, SO_PIN, 3)),
    );
    ok(
        &mut card,
        Command::new(0, 0x20, 0, 0x81).with_data(PIN.to_vec()),
    );
    ok(&mut card, Command::new(0, 0x48, 1, 0xB2));
    ok(
        &mut card,
        Command::new(0, 0xD7, 0xC9, 1).with_data(vec![0x54, 2, 0, 0, 0x53, 2, 0xAB, 0xCD]),
    );
    card
}

#[test]
fn state_file_reveals_no_secret() {
    let dir = Dir::new("secret");
    let path = dir.0.join("se.json");
    let card = populated(&path);
    let text = std::fs::read_to_string(&path).unwrap();
    let state = card.state();
    let KeyMaterial::Aes { key } = &state.keys[&1].material else {
        panic!()
    };
    for secret in [
        hex::encode(&key.0),
        hex::encode(&state.device.as_ref().unwrap().private.0),
        hex::encode(PIN),
        String::from_utf8_lossy(PIN).into(),
    ] {
        assert!(
            !text.contains(&secret),
            "state file contains a secret in the clear"
        );
    }
    assert!(
        !text.contains(state.device_chr()),
        "even the device id is sealed"
    );
    // The master key lives in a separate owner-only file.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(key_path(&path))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0);
}

#[test]
fn changes_persist_and_reload() {
    let dir = Dir::new("reload");
    let path = dir.0.join("se.json");
    let card = populated(&path);
    let before = serde_json::to_string(card.state()).unwrap();
    drop(card);
    let (file, state) = StateFile::open(&path, &key_path(&path)).unwrap();
    assert_eq!(serde_json::to_string(&state).unwrap(), before);
    // A wrong PIN attempt is persisted before it is answered.
    let mut card = Applet::new(state, file);
    select(&mut card);
    assert_eq!(
        send(
            &mut card,
            Command::new(0, 0x20, 0, 0x81).with_data(b"000000".to_vec())
        )
        .1,
        StatusWord(0x63C2)
    );
    drop(card);
    let state = read_snapshot(&path, &key_path(&path)).unwrap();
    assert_eq!(state.config.unwrap().user_pin.unwrap().retries_left, 2);
}

#[test]
fn second_opener_gets_a_clear_error() {
    let dir = Dir::new("lock");
    let path = dir.0.join("se.json");
    let _card = populated(&path);
    match StateFile::open(&path, &key_path(&path)) {
        Err(StorageError::Locked(p)) => assert_eq!(p, path),
        other => panic!("expected Locked, got {other:?}"),
    }
    // Inspection without the lock still works.
    assert!(read_snapshot(&path, &key_path(&path)).is_ok());
    assert!(matches!(
        StateFile::create(&path, &key_path(&path), &common::fresh_state()),
        Err(StorageError::Exists(_) | StorageError::Locked(_))
    ));
}

#[test]
fn wrong_key_or_damaged_file_is_an_error() {
    let dir = Dir::new("damage");
    let path = dir.0.join("se.json");
    drop(populated(&path));
    let other_key = dir.0.join("other.key");
    std::fs::write(&other_key, [7u8; 32]).unwrap();
    assert!(matches!(
        StateFile::open(&path, &other_key),
        Err(StorageError::Unseal(_))
    ));
    std::fs::write(&other_key, [7u8; 31]).unwrap();
    assert!(matches!(
        StateFile::open(&path, &other_key),
        Err(StorageError::BadMasterKey(_))
    ));
    let good = std::fs::read(&path).unwrap();
    for cut in [0, 10, good.len() / 2, good.len() - 3] {
        std::fs::write(&path, &good[..cut]).unwrap();
        assert!(StateFile::open(&path, &key_path(&path)).is_err());
    }
    // Flip one byte of the sealed body.
    let mut text = String::from_utf8(good.clone()).unwrap();
    let pos = text.find("\"sealed\": \"").unwrap() + 20;
    let c = if &text[pos..=pos] == "0" { "1" } else { "0" };
    text.replace_range(pos..=pos, c);
    std::fs::write(&path, text).unwrap();
    assert!(matches!(
        StateFile::open(&path, &key_path(&path)),
        Err(StorageError::Unseal(_))
    ));
    std::fs::write(
        &path,
        good.clone()
            .into_iter()
            .map(|b| if b == b'1' { b'9' } else { b })
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(StateFile::open(&path, &key_path(&path)).is_err());
}

const FIXTURE_V1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/state-v1.json");

/// Regenerates the version-1 fixture (run by hand when the fixture must be recreated; a new
/// format version adds a new fixture and keeps this one).
#[test]
#[ignore]
fn write_fixture_v1() {
    let path = Path::new(FIXTURE_V1);
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(key_path(path));
    let mut card = populated(path);
    ok(
        &mut card,
        Command::new(0, 0x20, 0, 0x81).with_data(PIN.to_vec()),
    );
}

#[test]
fn version_1_fixture_still_loads() {
    let path = Path::new(FIXTURE_V1);
    let state: State = read_snapshot(path, &key_path(path)).unwrap();
    assert!(state.device_chr().starts_with("KWD"));
    assert!(matches!(state.keys[&1].material, KeyMaterial::Aes { .. }));
    assert_eq!(state.files[&0xC901].0, vec![0xAB, 0xCD]);
    // And the element behind it still works: the PIN verifies, the key computes.
    let mut card = Applet::new(state, keyward_se::MemoryStore);
    select(&mut card);
    ok(
        &mut card,
        Command::new(0, 0x20, 0, 0x81).with_data(PIN.to_vec()),
    );
    assert_eq!(
        ok(
            &mut card,
            Command::new(0x80, 0x78, 1, 0x18)
                .with_data(b"x".to_vec())
                .with_le(256)
        )
        .len(),
        16
    );
}

/// Child half of the crash test: keeps rewriting a counter file until killed.
#[test]
#[ignore]
fn crash_child() {
    let Some(path) = std::env::var_os("KEYWARD_CRASH_STATE") else {
        return;
    };
    let path = PathBuf::from(path);
    let (file, state) = StateFile::open(&path, &key_path(&path)).unwrap();
    let mut card = Applet::new(state, file);
    select(&mut card);
    ok(
        &mut card,
        Command::new(0, 0x20, 0, 0x81).with_data(PIN.to_vec()),
    );
    let mut n: u32 = counter(card.state());
    loop {
        n += 1;
        let mut data = vec![0x54, 2, 0, 0, 0x53, 0x82, 0x10, 0x00];
        // A large file, so that a kill can land in the middle of a write.
        data.extend(std::iter::repeat_n(n.to_be_bytes(), 1024).flatten());
        ok(&mut card, Command::new(0, 0xD7, 0xC9, 2).with_data(data));
    }
}

fn counter(state: &State) -> u32 {
    state.files.get(&0xC902).map_or(0, |f| {
        let words: Vec<u32> =
            f.0.chunks(4)
                .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
                .collect();
        assert!(words.windows(2).all(|w| w[0] == w[1]), "torn write");
        words[0]
    })
}

#[test]
fn survives_kill_9_at_any_instant() {
    let dir = Dir::new("crash");
    let path = dir.0.join("se.json");
    drop(populated(&path));
    let mut last = 0;
    for round in 0..8u64 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--ignored", "--nocapture"])
            .env("KEYWARD_CRASH_STATE", &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150 + 37 * round));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // The file opens (the lock died with the process) and holds a whole, newer-or-equal state.
        let (_file, state) = StateFile::open(&path, &key_path(&path)).unwrap();
        let n = counter(&state);
        assert!(
            n >= last,
            "round {round}: counter went back from {last} to {n}"
        );
        last = n;
    }
    assert!(last > 0, "the child never wrote");
}
