//! Detached CMS SignedData (RFC 5652) for collected data, as `openssl cms -verify` and S/MIME
//! tools read it: signed attributes (content type, signing time, message digest) signed by the
//! element, the signer's certificate chain included, the data itself left out.

use keyward_apdu::tlv::Tlv;
use keyward_ca::der;
use keyward_ca::x509_read::{Certificate, verify_signature};
use keyward_crypto::HashAlg;

use crate::device_key::{DeviceError, DeviceKey};
use crate::{Trust, Verified, VerifyError};

const SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const DATA: &str = "1.2.840.113549.1.7.1";
const CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
const MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const SIGNING_TIME: &str = "1.2.840.113549.1.9.5";

fn digest_oid(h: HashAlg) -> Result<&'static str, DeviceError> {
    Ok(match h {
        HashAlg::Sha256 => "2.16.840.1.101.3.4.2.1",
        HashAlg::Sha384 => "2.16.840.1.101.3.4.2.2",
        HashAlg::Sha512 => "2.16.840.1.101.3.4.2.3",
        other => return Err(DeviceError::Unsupported(format!("{other:?} in CMS"))),
    })
}

fn hash_of_digest_oid(content: &[u8]) -> Option<HashAlg> {
    match content {
        [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, n] => match n {
            1 => Some(HashAlg::Sha256),
            2 => Some(HashAlg::Sha384),
            3 => Some(HashAlg::Sha512),
            _ => None,
        },
        _ => None,
    }
}

/// A DER SET OF: elements sorted by their encodings (X.690 §11.6).
fn set_of(mut items: Vec<Vec<u8>>) -> Vec<u8> {
    items.sort();
    let parts: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
    der::set(&parts)
}

fn attribute(oid: &str, value: &[u8]) -> Vec<u8> {
    der::seq(&[&der::oid(oid), &der::set(&[value])])
}

/// A detached SignedData over `data`, signed in the element at `signing_time`.
pub fn sign_detached(
    key: &DeviceKey,
    data: &[u8],
    signing_time: i64,
) -> Result<Vec<u8>, DeviceError> {
    let hash = key.hash();
    let digest_alg = der::seq(&[&der::oid(digest_oid(hash)?)]);
    let cert = Certificate::parse(key.certificate()).map_err(DeviceError::Sign)?;
    let attrs = vec![
        attribute(CONTENT_TYPE, &der::oid(DATA)),
        attribute(SIGNING_TIME, &der::time(signing_time)),
        attribute(MESSAGE_DIGEST, &der::octets(&hash.digest(data))),
    ];
    // Signed as a SET (tag 31); carried as [0] IMPLICIT.
    let signed_attrs = set_of(attrs);
    let signature = key.sign(&signed_attrs)?;
    let mut carried = signed_attrs.clone();
    carried[0] = 0xA0;
    let sid = der::seq(&[cert.issuer, &der::tlv(0x02, cert.serial)]);
    let signer_info = der::seq(&[
        &der::small_int(1),
        &sid,
        &digest_alg,
        &carried,
        &key.signature_algorithm()?,
        &der::octets(&signature),
    ]);
    let certificates = {
        let mut set = set_of(key.chain.clone());
        set[0] = 0xA0;
        set
    };
    let signed_data = der::seq(&[
        &der::small_int(1),
        &der::set(&[&digest_alg]),
        &der::seq(&[&der::oid(DATA)]),
        &certificates,
        &der::set(&[&signer_info]),
    ]);
    Ok(der::seq(&[
        &der::oid(SIGNED_DATA),
        &der::explicit(0, &signed_data),
    ]))
}

fn kids<'a>(t: &Tlv<'a>, what: &'static str) -> Result<Vec<Tlv<'a>>, VerifyError> {
    t.children()
        .map(|c| c.map_err(|_| VerifyError::Malformed(what)))
        .collect()
}

fn oid_content(dotted: &str) -> Vec<u8> {
    der::oid_content(dotted)
}

/// Verifies a detached SignedData over `data`: the message digest, the signature over the
/// signed attributes, and the signer's chain to `trust` at `now`.
pub fn verify_detached(
    message: &[u8],
    data: &[u8],
    trust: &Trust,
    now: i64,
) -> Result<Verified, VerifyError> {
    let bad = VerifyError::Malformed;
    let info = Tlv::parse_exact(message).map_err(|_| bad("CMS ContentInfo"))?;
    let [ctype, content] = <[Tlv<'_>; 2]>::try_from(kids(&info, "CMS ContentInfo")?)
        .map_err(|_| bad("CMS ContentInfo"))?;
    if ctype.value != oid_content(SIGNED_DATA).as_slice() || content.tag.0 != 0xA0 {
        return Err(bad("CMS: not SignedData"));
    }
    let sd = kids(&content, "SignedData")?
        .into_iter()
        .next()
        .ok_or(bad("SignedData"))?;
    let fields = kids(&sd, "SignedData")?;
    let certs: Vec<Vec<u8>> = match fields.iter().find(|f| f.tag.0 == 0xA0) {
        Some(set) => kids(set, "certificates")?
            .iter()
            .map(|c| c.raw.to_vec())
            .collect(),
        None => Vec::new(),
    };
    let encap = fields.get(2).ok_or(bad("encapContentInfo"))?;
    if kids(encap, "encapContentInfo")?.len() != 1 {
        return Err(bad("CMS: content included, not detached"));
    }
    let signer_infos = fields.last().ok_or(bad("signerInfos"))?;
    let si = kids(signer_infos, "signerInfos")?
        .into_iter()
        .next()
        .ok_or(bad("signerInfos (none)"))?;
    let si = kids(&si, "SignerInfo")?;
    let [_version, sid, digest_alg, signed_attrs, sig_alg, signature] =
        <[Tlv<'_>; 6]>::try_from(si).map_err(|_| bad("SignerInfo (unsigned attributes?)"))?;
    if signed_attrs.tag.0 != 0xA0 || signature.tag.0 != 0x04 {
        return Err(bad("SignerInfo"));
    }
    let hash = kids(&digest_alg, "digestAlgorithm")?
        .first()
        .and_then(|o| hash_of_digest_oid(o.value))
        .ok_or_else(|| VerifyError::Algorithm("CMS digest".into()))?;
    let mut digest = None;
    for attr in kids(&signed_attrs, "signed attributes")? {
        let parts = kids(&attr, "attribute")?;
        if let [oid, values] = parts.as_slice()
            && oid.value == oid_content(MESSAGE_DIGEST).as_slice()
        {
            digest = kids(values, "messageDigest")?
                .first()
                .map(|v| v.value.to_vec());
        }
    }
    let digest = digest.ok_or(bad("no messageDigest attribute"))?;
    // The signer: the certificate the SignerIdentifier (issuer and serial) names.
    let sid = kids(&sid, "SignerIdentifier")?;
    let [issuer, serial] = sid.as_slice() else {
        return Err(bad("SignerIdentifier"));
    };
    let (leaf, carried): (Vec<Vec<u8>>, Vec<Vec<u8>>) = certs.into_iter().partition(|c| {
        Certificate::parse(c).is_ok_and(|p| p.issuer == issuer.raw && p.serial == serial.value)
    });
    let leaf = leaf.into_iter().next().ok_or(VerifyError::NoCertificate)?;
    let signer = trust.validate(&leaf, &carried, now)?;
    if digest != hash.digest(data) {
        return Err(VerifyError::DigestMismatch);
    }
    let alg = kids(&sig_alg, "signatureAlgorithm")?
        .first()
        .map(|o| o.value.to_vec())
        .ok_or(bad("signatureAlgorithm"))?;
    let mut signed = signed_attrs.raw.to_vec();
    signed[0] = 0x31;
    let cert = Certificate::parse(&leaf)?;
    if !verify_signature(cert.spki, &alg, &signed, signature.value)? {
        return Err(VerifyError::BadSignature);
    }
    Ok(Verified {
        signer,
        payload: data.to_vec(),
    })
}
