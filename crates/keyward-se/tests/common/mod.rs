//! Shared test harness: fresh in-memory elements from a throw-away development CA.
#![allow(dead_code)]

use std::sync::OnceLock;

use keyward_apdu::{Command, ResponseView, StatusWord};
use keyward_se::dev_pki::DevCa;
use keyward_se::state::State;
use keyward_se::{AID, Applet, MemoryStore};

pub const SO_PIN: &[u8] = &[0x35, 0x37, 0x36, 0x32, 0x31, 0x38, 0x38, 0x30];
pub const PIN: &[u8] = b"648219";

/// One development CA per test binary (creating one costs two key generations).
pub fn dev_ca() -> &'static (tempfile_dir::Dir, DevCa) {
    static CA: OnceLock<(tempfile_dir::Dir, DevCa)> = OnceLock::new();
    CA.get_or_init(|| {
        let dir = tempfile_dir::Dir::new("devca");
        let ca = DevCa::open_or_create(&dir.0).unwrap();
        (dir, ca)
    })
}

pub fn fresh_state() -> State {
    dev_ca().1.new_element().unwrap()
}

pub fn card() -> Applet<MemoryStore> {
    Applet::new(fresh_state(), MemoryStore)
}

pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Sends a command, returning data and status word.
pub fn send<P: keyward_se::Persist>(card: &mut Applet<P>, cmd: Command) -> (Vec<u8>, StatusWord) {
    let raw = card.transmit(&cmd.encode().unwrap());
    let r = ResponseView::parse(&raw).unwrap();
    (r.data.to_vec(), r.sw)
}

/// Sends a command that must succeed (9000 or the end-of-file warning).
pub fn ok<P: keyward_se::Persist>(card: &mut Applet<P>, cmd: Command) -> Vec<u8> {
    let (data, sw) = send(card, cmd.clone());
    assert!(
        sw == StatusWord::SUCCESS || sw == StatusWord::END_OF_FILE,
        "{cmd:02X?} -> {sw}"
    );
    data
}

pub fn select<P: keyward_se::Persist>(card: &mut Applet<P>) {
    ok(
        card,
        Command::new(0, 0xA4, 4, 0)
            .with_data(AID.to_vec())
            .with_le(256),
    );
}

pub fn init_data(options: u16, pin: &[u8], so_pin: &[u8], retries: u8) -> Vec<u8> {
    let mut v = vec![0x80, 2];
    v.extend_from_slice(&options.to_be_bytes());
    v.extend_from_slice(&[0x81, pin.len() as u8]);
    v.extend_from_slice(pin);
    v.extend_from_slice(&[0x82, so_pin.len() as u8]);
    v.extend_from_slice(so_pin);
    v.extend_from_slice(&[0x91, 1, retries]);
    v
}

/// A selected, initialized element with the user PIN verified.
pub fn ready_card() -> Applet<MemoryStore> {
    let mut c = card();
    select(&mut c);
    ok(
        &mut c,
        Command::new(0x80, 0x50, 0, 0).with_data(init_data(1, PIN, SO_PIN, 3)),
    );
    ok(
        &mut c,
        Command::new(0, 0x20, 0, 0x81).with_data(PIN.to_vec()),
    );
    c
}

/// Minimal self-deleting temporary directory (no extra dependency).
pub mod tempfile_dir {
    use std::path::PathBuf;

    pub struct Dir(pub PathBuf);

    impl Dir {
        pub fn new(tag: &str) -> Self {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p =
                std::env::temp_dir().join(format!("keyward-test-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
