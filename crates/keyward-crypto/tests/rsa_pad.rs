#![allow(clippy::unwrap_used)]
//! Host-side RSA paddings against the raw operations and the `rsa` crate's PKCS#1 signatures.

use keyward_crypto::{HashAlg, RsaKey, RsaPublicKey, rsa_pad};

#[test]
fn paddings_interoperate_with_raw_rsa() {
    let key = RsaKey::generate(1024).unwrap();
    let public = RsaPublicKey::new(&key.modulus(), &key.exponent()).unwrap();
    let k = public.size();
    // OAEP and PKCS#1 v1.5 encryption on the host, raw decryption by the "card".
    for h in HashAlg::ALL {
        let Ok(em) = rsa_pad::oaep_pad(h, b"", b"hello", k) else {
            continue;
        };
        let c = public.raw_public(&em).unwrap();
        let back = key.raw_private(&c).unwrap();
        assert_eq!(&rsa_pad::oaep_unpad(h, b"", &back).unwrap()[..], b"hello");
    }
    let c = public
        .raw_public(&rsa_pad::pkcs1_type2_pad(b"pms", k).unwrap())
        .unwrap();
    let back = key.raw_private(&c).unwrap();
    assert_eq!(&rsa_pad::pkcs1_type2_unpad(&back).unwrap()[..], b"pms");
    // A type 1 block under the raw private operation is a PKCS#1 v1.5 signature.
    let digest = HashAlg::Sha256.digest(b"data");
    let di = [HashAlg::Sha256.digest_info_prefix(), &digest].concat();
    let sig = key.sign_pkcs1_digest_info(&di).unwrap();
    let em = public.raw_public(&sig).unwrap();
    assert_eq!(rsa_pad::pkcs1_type1_unpad(&em), Some(&di[..]));
    assert_eq!(em, rsa_pad::pkcs1_type1_pad(&di, k).unwrap());
}
