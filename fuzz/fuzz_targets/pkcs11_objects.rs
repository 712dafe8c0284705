#![no_main]
//! What the PKCS#11 module reads from a card or its configuration: PKCS#15 descriptions,
//! X.509 certificates and public keys, the TOML configuration, RSA blocks to unpad.
use keyward_card::pkcs15::{CertificateDescription, DataObjectDescription, PrivateKeyDescription};
use keyward_crypto::{HashAlg, rsa_pad};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = PrivateKeyDescription::parse(data);
    let _ = CertificateDescription::parse(data);
    if let Ok(d) = DataObjectDescription::parse(data)
        && let Ok(again) = d.encode()
    {
        assert_eq!(DataObjectDescription::parse(&again).ok(), Some(d));
    }
    let _ = keyward_pkcs11::x509::parse(data);
    if let Some(k) = keyward_pkcs11::x509::parse_spki(data)
        && let Some(again) = keyward_pkcs11::x509::encode_spki(&k)
    {
        assert_eq!(keyward_pkcs11::x509::parse_spki(&again), Some(k));
    }
    let _ = rsa_pad::pkcs1_type1_unpad(data);
    let _ = rsa_pad::pkcs1_type2_unpad(data);
    let _ = rsa_pad::oaep_unpad(HashAlg::Sha256, b"", data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = keyward_pkcs11::config::Config::parse(text, std::path::Path::new("fuzz.toml"));
    }
});
