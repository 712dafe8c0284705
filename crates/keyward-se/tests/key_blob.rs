#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The wrapped-key blob against data from outside: a backup file written by OpenSC's
//! `sc-hsm-tool --wrap-key` from a genuine Nitrokey HSM (secp256k1 key, DKEK published with it
//! as a test vector), and an AES-128 blob computed by hand from the format's definition for an
//! all-zero DKEK.

use keyward_crypto::Curve;
use keyward_se::key_blob::{kcv, unwrap};
use keyward_se::state::KeyMaterial;

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap()
}

#[test]
fn a_genuine_cards_backup_unwraps() {
    let file = unhex(include_str!("data/nitrokey-backup-secp256k1.hex"));
    let dkek = unhex("2848cb6e994f5a00c365c3c255ed130512ce1eb06bf08d348eeb8b2f866e3e50");
    assert_eq!(hex::encode(kcv(&dkek)), "97e303855dc1c54d");
    // 30 82 039A { 04 82 016B blob, PRKD, authenticated request }
    assert_eq!(file[..4], [0x30, 0x82, 0x03, 0x9A]);
    assert_eq!(file[4..8], [0x04, 0x82, 0x01, 0x6B]);
    let blob = &file[8..8 + 0x16B];
    let key = unwrap(&dkek, blob).unwrap();
    assert!(
        key.algorithms.is_empty(),
        "exported without an algorithm list"
    );
    let KeyMaterial::Ec {
        curve,
        private,
        public,
    } = key.material
    else {
        panic!("an EC key")
    };
    assert_eq!(curve, Curve::Secp256k1);
    assert_eq!(
        hex::encode(&private.0),
        "1fce3ff149ed92c7b9d4f63b82b2b542cbd3f4152c6cd4687a69ec6b88c43bc4"
    );
    assert_eq!(public.0.len(), 65);
    // Another DKEK, or one flipped bit, and it does not.
    assert!(unwrap(&[0u8; 32], blob).is_err());
    let mut t = blob.to_vec();
    t[100] ^= 0x80;
    assert!(unwrap(&dkek, &t).is_err());
}

#[test]
fn an_aes_blob_computed_from_the_definition_unwraps() {
    let blob = unhex(
        "66687aadf862bd77 0f 0008 6086480165030401 0004 10111899 0000 0000
         6a63cb154e2634fd6012de71ec6d0c86e64f938f0de0a73ce777f789287693fc
         b2a084e09bf1cc244a01caf1edce4577",
    );
    let key = unwrap(&[0u8; 32], &blob).unwrap();
    assert_eq!(key.algorithms, [0x10, 0x11, 0x18, 0x99]);
    let KeyMaterial::Aes { key } = key.material else {
        panic!("an AES key")
    };
    assert_eq!(hex::encode(&key.0), "000102030405060708090a0b0c0d0e0f");
}
