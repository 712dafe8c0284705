#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The host ⇄ element secure channel end to end: chain validation, chip authentication, every
//! core command under secure messaging (short and extended), channel-bound authentication, and
//! rejection of tampering with the element's state left unchanged.

use std::sync::OnceLock;

use keyward_apdu::{Command, StatusWord};
use keyward_card::{
    CardChannel, DeviceError, InProcess, authenticate_device, read_attestation, verify_device,
};
use keyward_crypto::{Curve, EcKey, HashAlg, der_signature_to_plain, ecdsa_verify_prehash};
use keyward_cvc::{ChainError, CvDate, PublicKey, TrustStore, ec_key_template, oid};
use keyward_se::dev_pki::DevCa;
use keyward_se::{Applet, MemoryStore};

struct Fixture {
    _dir: std::path::PathBuf,
    ca: DevCa,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("keyward-card-test-{}", std::process::id()));
        let ca = DevCa::open_or_create(&dir).unwrap();
        Fixture { _dir: dir, ca }
    })
}

fn trust() -> TrustStore {
    let mut t = TrustStore::new();
    t.add_root(fixture().ca.srca.clone()).unwrap();
    t
}

fn today() -> CvDate {
    keyward_se::dev_pki::today()
}

const PIN: &[u8] = b"648219";
const SO_PIN: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

fn init_data() -> Vec<u8> {
    let mut v = vec![0x80, 2, 0, 1, 0x81, 6];
    v.extend_from_slice(PIN);
    v.extend_from_slice(&[0x82, 8]);
    v.extend_from_slice(&SO_PIN);
    v.extend_from_slice(&[0x91, 1, 3]);
    v
}

/// An initialized element (PIN not verified), as an in-process channel.
fn element() -> InProcess<MemoryStore> {
    let mut ch = InProcess(Applet::new(
        fixture().ca.new_element().unwrap(),
        MemoryStore,
    ));
    keyward_card::select_applet(&mut ch).unwrap();
    ok(
        &mut ch,
        Command::new(0x80, 0x50, 0, 0).with_data(init_data()),
    );
    ch
}

fn ok<C: CardChannel>(ch: &mut C, cmd: Command) -> Vec<u8> {
    let r = ch.transmit(&cmd).unwrap();
    assert!(
        r.sw == StatusWord::SUCCESS || r.sw == StatusWord::END_OF_FILE,
        "{cmd:02X?} -> {}",
        r.sw
    );
    r.data
}

fn sw<C: CardChannel>(ch: &mut C, cmd: Command) -> StatusWord {
    ch.transmit(&cmd).unwrap().sw
}

fn gakp(curve: Curve) -> Vec<u8> {
    let mut v = vec![0x5F, 0x29, 1, 0];
    let key = ec_key_template(&curve.domain(), oid::TA_ECDSA_SHA256).unwrap();
    keyward_apdu::tlv::write(&mut v, 0x7F49, &key).unwrap();
    keyward_apdu::tlv::write(&mut v, 0x5F20, b"UTKEY0000100001").unwrap();
    v
}

fn rsa_gakp() -> Vec<u8> {
    let mut key = Vec::new();
    keyward_apdu::tlv::write(&mut key, 0x06, oid::TA_RSA_V15_SHA256).unwrap();
    keyward_apdu::tlv::write(&mut key, 0x02, &[0x08, 0x00]).unwrap();
    let mut v = vec![0x5F, 0x29, 1, 0];
    keyward_apdu::tlv::write(&mut v, 0x7F49, &key).unwrap();
    v
}

#[test]
fn every_core_command_under_secure_messaging() {
    let (device, mut sc) = verify_device(element(), &trust(), today()).unwrap();
    assert!(device.device_id.starts_with("KWD"));
    // PIN status and VERIFY inside the channel.
    assert_eq!(
        sw(&mut sc, Command::new(0, 0x20, 0, 0x81)),
        StatusWord(0x63C3)
    );
    ok(
        &mut sc,
        Command::new(0, 0x20, 0, 0x81).with_data(PIN.to_vec()),
    );
    assert_eq!(
        sw(&mut sc, Command::new(0, 0x20, 0, 0x81)),
        StatusWord::SUCCESS
    );
    // INITIALIZE status form, ENUMERATE (extended), GET CHALLENGE.
    assert_eq!(ok(&mut sc, Command::new(0x80, 0x50, 0, 0)).len(), 7);
    let objects = ok(
        &mut sc,
        Command::new(0x80, 0x58, 0, 0).with_le(65536).extended(),
    );
    assert!(objects.chunks(2).any(|c| c == [0x2F, 0x02]));
    assert_eq!(
        ok(&mut sc, Command::new(0, 0x84, 0, 0).with_le(32)).len(),
        32
    );
    // Odd-INS UPDATE/READ BINARY (DO 85), short and extended.
    let big: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
    let mut upd = vec![0x54, 2, 0, 0, 0x53, 0x82, 0x05, 0xDC];
    upd.extend_from_slice(&big);
    ok(&mut sc, Command::new(0, 0xD7, 0xC9, 0x01).with_data(upd));
    let back = ok(
        &mut sc,
        Command::new(0, 0xB1, 0xC9, 0x01)
            .with_data(vec![0x54, 2, 0, 0])
            .with_le(65536),
    );
    assert_eq!(back, big);
    let part = ok(
        &mut sc,
        Command::new(0, 0xB1, 0xC9, 0x01)
            .with_data(vec![0x54, 2, 0, 16])
            .with_le(100),
    );
    assert_eq!(part, big[16..116]);
    // Key generation (extended response), its attestation, SIGN and ECDH.
    let ar = ok(
        &mut sc,
        Command::new(0, 0x46, 1, 0)
            .with_data(gakp(Curve::Secp256r1))
            .with_le(65536),
    );
    let attested = read_attestation(&mut sc, &device, 1).unwrap();
    assert_eq!(
        keyward_cvc::AuthenticatedRequest::parse(&ar)
            .unwrap()
            .request
            .body
            .public_key,
        attested.public_key
    );
    let PublicKey::Ec { point, .. } = &attested.public_key else {
        panic!()
    };
    let sig = ok(
        &mut sc,
        Command::new(0x80, 0x68, 1, 0x73)
            .with_data(b"data".to_vec())
            .with_le(256),
    );
    let sig = der_signature_to_plain(&sig, 32).unwrap();
    assert!(ecdsa_verify_prehash(
        Curve::Secp256r1,
        point,
        &HashAlg::Sha256.digest(b"data"),
        &sig
    ));
    let peer = EcKey::generate(Curve::Secp256r1).unwrap();
    let shared = ok(
        &mut sc,
        Command::new(0x80, 0x62, 1, 0x80)
            .with_data(peer.public_point().to_vec())
            .with_le(256),
    );
    assert_eq!(&shared[..], &peer.ecdh(point).unwrap()[..]);
    // RSA-2048: extended command and response data under SM.
    ok(
        &mut sc,
        Command::new(0, 0x46, 2, 0)
            .with_data(rsa_gakp())
            .with_le(65536),
    );
    let block = [
        vec![0u8, 1],
        vec![0xFF; 256 - 3 - 32],
        vec![0],
        vec![0x5A; 32],
    ]
    .concat();
    assert_eq!(
        ok(
            &mut sc,
            Command::new(0x80, 0x68, 2, 0x20)
                .with_data(block)
                .with_le(65536)
        )
        .len(),
        256
    );
    // AES.
    ok(&mut sc, Command::new(0, 0x48, 3, 0xB0));
    let ct = ok(
        &mut sc,
        Command::new(0x80, 0x78, 3, 0x10)
            .with_data(vec![7; 32])
            .with_le(256),
    );
    assert_eq!(
        ok(
            &mut sc,
            Command::new(0x80, 0x78, 3, 0x11).with_data(ct).with_le(256)
        ),
        vec![7; 32]
    );
    // Errors travel inside the channel without ending it.
    assert_eq!(
        sw(
            &mut sc,
            Command::new(0x80, 0x68, 9, 0x73).with_data(vec![1])
        ),
        StatusWord::REFERENCE_NOT_FOUND
    );
    assert_eq!(
        sw(&mut sc, Command::new(0x80, 0xFF, 0, 0)),
        StatusWord::INS_NOT_SUPPORTED
    );
    // PIN management and deletion.
    ok(
        &mut sc,
        Command::new(0, 0x24, 0, 0x81).with_data([PIN, b"123456"].concat()),
    );
    ok(
        &mut sc,
        Command::new(0, 0x2C, 0, 0x81).with_data([&SO_PIN[..], PIN].concat()),
    );
    ok(
        &mut sc,
        Command::new(0, 0x20, 0, 0x81).with_data(PIN.to_vec()),
    );
    ok(
        &mut sc,
        Command::new(0, 0xE4, 2, 0).with_data(vec![0xC9, 0x01]),
    );
    assert_eq!(
        sw(
            &mut sc,
            Command::new(0, 0xB1, 0xC9, 0x01)
                .with_data(vec![0x54, 2, 0, 0])
                .with_le(256)
        ),
        StatusWord::FILE_NOT_FOUND
    );
}

#[test]
fn pin_verified_before_the_channel_stays_valid_inside() {
    let mut ch = element();
    keyward_card::select_applet(&mut ch).unwrap();
    ok(
        &mut ch,
        Command::new(0, 0x20, 0, 0x81).with_data(PIN.to_vec()),
    );
    let (_, mut sc) = authenticate_device(ch, &trust(), today()).unwrap();
    assert_eq!(
        sw(&mut sc, Command::new(0, 0x20, 0, 0x81)),
        StatusWord::SUCCESS
    );
    ok(
        &mut sc,
        Command::new(0, 0x46, 1, 0)
            .with_data(gakp(Curve::BrainpoolP256r1))
            .with_le(65536),
    );
    // Re-selecting the applet (plain) ends the channel and logs out.
    let mut ch = sc.into_inner();
    keyward_card::select_applet(&mut ch).unwrap();
    assert_eq!(
        sw(&mut ch, Command::new(0, 0x20, 0, 0x81)),
        StatusWord(0x63C3)
    );
}

#[test]
fn plain_apdu_ends_the_channel_and_its_authentication() {
    let (_, mut sc) = verify_device(element(), &trust(), today()).unwrap();
    ok(
        &mut sc,
        Command::new(0, 0x20, 0, 0x81).with_data(PIN.to_vec()),
    );
    assert_eq!(
        sw(&mut sc, Command::new(0, 0x20, 0, 0x81)),
        StatusWord::SUCCESS
    );
    // An injected plain APDU: refused for lack of authentication, and the channel is gone.
    let injected = sc
        .inner_mut()
        .transmit(&Command::new(0x80, 0x68, 1, 0x73).with_data(vec![1]))
        .unwrap();
    assert_eq!(injected.sw, StatusWord::SECURITY_STATUS_NOT_SATISFIED);
    assert_eq!(
        sc.inner_mut()
            .transmit(&Command::new(0, 0x20, 0, 0x81))
            .unwrap()
            .sw,
        StatusWord(0x63C3)
    );
    assert!(sc.transmit(&Command::new(0, 0x20, 0, 0x81)).is_err());
}

/// A transport that flips one bit of the next command's MAC when armed.
struct Flip {
    inner: InProcess<MemoryStore>,
    armed: bool,
}

impl CardChannel for Flip {
    fn transmit_raw(&mut self, apdu: &[u8]) -> Result<Vec<u8>, keyward_card::CardError> {
        let mut a = apdu.to_vec();
        if std::mem::take(&mut self.armed) {
            let n = a.len();
            a[n - 2] ^= 0x01; // last MAC byte (before the trailing Le)
        }
        self.inner.transmit_raw(&a)
    }
}

#[test]
fn tampered_command_is_refused_and_changes_nothing() {
    let mut ch = Flip {
        inner: element(),
        armed: false,
    };
    keyward_card::select_applet(&mut ch).unwrap();
    ok(
        &mut ch,
        Command::new(0, 0x20, 0, 0x81).with_data(PIN.to_vec()),
    );
    let (_, mut sc) = authenticate_device(ch, &trust(), today()).unwrap();
    let before = format!("{:?}", sc.inner_mut().inner.0.state());
    sc.inner_mut().armed = true;
    let err = sc
        .transmit(&Command::new(0, 0xD7, 0xC9, 2).with_data(vec![0x54, 2, 0, 0, 0x53, 1, 0xAA]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            keyward_card::CardError::Sm(keyward_sm::SmError::CardError(StatusWord(0x6988)))
        ),
        "{err}"
    );
    assert_eq!(
        format!("{:?}", sc.inner_mut().inner.0.state()),
        before,
        "a tampered command changed the state"
    );
    // The channel is over on both ends: the card no longer knows it, and the PIN state is gone.
    assert!(sc.transmit(&Command::new(0, 0x20, 0, 0x81)).is_err());
    let inner = &mut sc.inner_mut().inner;
    assert_eq!(
        sw(
            inner,
            Command::new(0x0C, 0x20, 0, 0x81).with_data(vec![0x8E, 8, 0, 0, 0, 0, 0, 0, 0, 0])
        ),
        StatusWord::SM_NOT_SUPPORTED
    );
    assert_eq!(
        sw(inner, Command::new(0, 0x20, 0, 0x81)),
        StatusWord(0x63C3)
    );
}

#[test]
fn untrusted_or_wrong_devices_are_refused() {
    // A trust store that does not know this installation's root.
    let empty = TrustStore::new();
    assert!(matches!(
        verify_device(element(), &empty, today()),
        Err(DeviceError::Chain(ChainError::UntrustedRoot { .. }))
    ));
    // An element whose EF.C_DevAut names a device key it does not hold: the token fails.
    let mut state = fixture().ca.new_element().unwrap();
    let other = fixture().ca.new_element().unwrap();
    state.files.insert(0x2F02, other.files[&0x2F02].clone());
    let mut ch = InProcess(Applet::new(state, MemoryStore));
    keyward_card::select_applet(&mut ch).unwrap();
    assert!(matches!(
        verify_device(ch, &trust(), today()),
        Err(DeviceError::Sm(keyward_sm::SmError::BadToken))
    ));
    // Expired by the verifier's clock.
    assert!(matches!(
        verify_device(element(), &trust(), CvDate::new(2099, 1, 1).unwrap()),
        Err(DeviceError::Chain(ChainError::Expired { .. }))
    ));
}
