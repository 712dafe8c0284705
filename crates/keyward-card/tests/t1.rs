#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The element behind a T=1 link over a Unix socket (the embedded default transport), for each
//! variant: chain validation, chip authentication and commands under secure messaging.

use std::os::unix::net::UnixListener;
use std::time::Duration;

use keyward_apdu::{Command, StatusWord};
use keyward_card::{CardChannel, T1Channel, verify_device};
use keyward_cvc::TrustStore;
use keyward_se::dev_pki::DevCa;
use keyward_se::{Applet, MemoryStore};
use keyward_t1::params::{LinkParams, gp_cip, nxp_atr};
use keyward_t1::{CardEngine, Profile, Variant};

#[test]
fn every_variant_carries_a_secure_channel() {
    let dir = std::env::temp_dir().join(format!("keyward-t1-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = DevCa::open_or_create(&dir.join("ca")).unwrap();
    let mut trust = TrustStore::new();
    trust.add_root(ca.srca.clone()).unwrap();
    for (i, variant) in [Variant::Iso, Variant::NxpI2c, Variant::Gp]
        .into_iter()
        .enumerate()
    {
        let path = dir.join(format!("t1-{i}.sock"));
        let listener = UnixListener::bind(&path).unwrap();
        let state = ca.new_element().unwrap();
        let server = std::thread::spawn(move || {
            let profile = Profile::for_variant(variant);
            let params = match variant {
                Variant::Iso => vec![],
                Variant::NxpI2c => nxp_atr(
                    LinkParams {
                        bwt_ms: 1000,
                        ifsc: 254,
                    },
                    b"T",
                ),
                Variant::Gp => gp_cip(
                    LinkParams {
                        bwt_ms: 300,
                        ifsc: 254,
                    },
                    b"T",
                ),
            };
            let (stream, _) = listener.accept().unwrap();
            let mut applet = Applet::new(state, MemoryStore);
            let mut app = |apdu: &[u8]| applet.transmit(apdu);
            let mut bus = keyward_t1::bus::UnixBus::new(stream, profile);
            let mut engine = CardEngine::new(profile, 254, params);
            keyward_t1::bus::serve_card(
                &mut bus,
                &mut engine,
                &mut app,
                Duration::from_millis(100),
            )
            .unwrap();
        });
        let ch = T1Channel::connect_unix(path.to_str().unwrap(), variant).unwrap();
        let (id, mut sc) = verify_device(ch, &trust, keyward_se::dev_pki::today()).unwrap();
        assert!(id.device_id.starts_with("KWD"));
        // A long command and a long response through chaining under SM: INITIALIZE, then a
        // 3000-byte file written and read back.
        let mut init = vec![0x80, 2, 0, 1, 0x81, 6];
        init.extend_from_slice(b"648219");
        init.extend_from_slice(&[0x82, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0x91, 1, 3]);
        assert_eq!(
            sc.transmit(&Command::new(0x80, 0x50, 0, 0).with_data(init))
                .unwrap()
                .sw,
            StatusWord::SUCCESS
        );
        assert_eq!(
            sc.transmit(&Command::new(0, 0x20, 0, 0x81).with_data(b"648219".to_vec()))
                .unwrap()
                .sw,
            StatusWord::SUCCESS
        );
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        let mut upd = vec![0x54, 2, 0, 0, 0x53, 0x82, 0x0B, 0xB8];
        upd.extend_from_slice(&data);
        assert_eq!(
            sc.transmit(&Command::new(0, 0xD7, 0xC9, 1).with_data(upd))
                .unwrap()
                .sw,
            StatusWord::SUCCESS
        );
        let r = sc
            .transmit(
                &Command::new(0, 0xB1, 0xC9, 1)
                    .with_data(vec![0x54, 2, 0, 0])
                    .with_le(65536),
            )
            .unwrap();
        assert_eq!(r.data, data);
        drop(sc);
        server.join().unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
