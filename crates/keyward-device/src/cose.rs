//! COSE_Sign1 (RFC 9052 §4.2) for collected data: the element signs, the signer's certificate
//! chain travels in the protected header as `x5chain` (label 33, RFC 9360) so a relying party
//! needs only the root. Algorithms: ES256/ES384/ES512 (`r‖s`, RFC 9053) by curve, RS256
//! (RFC 8812) for RSA keys.

use keyward_ca::der;
use keyward_ca::x509_read::{Certificate, PublicKeyInfo, public_key_info, verify_signature};

use crate::cbor::Value;
use crate::device_key::{DeviceError, DeviceKey, KeyKind};
use crate::{Trust, Verified, VerifyError};

/// The CBOR tag of a COSE_Sign1 message.
pub const TAG_SIGN1: u64 = 18;
const ALG: i64 = 1;
const X5CHAIN: i64 = 33;

/// COSE algorithm identifiers and their X.509 signature algorithm OIDs (content bytes).
const ES256: i64 = -7;
const ES384: i64 = -35;
const ES512: i64 = -36;
const RS256: i64 = -257;

fn algorithm_oid(alg: i64) -> Option<&'static [u8]> {
    Some(match alg {
        ES256 => &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02],
        ES384 => &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03],
        ES512 => &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x04],
        RS256 => &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B],
        _ => return None,
    })
}

/// `Sig_structure` for COSE_Sign1 with empty external AAD.
fn to_be_signed(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    Value::Array(vec![
        Value::Text("Signature1".into()),
        Value::Bytes(protected.to_vec()),
        Value::Bytes(Vec::new()),
        Value::Bytes(payload.to_vec()),
    ])
    .encode()
}

/// Signs `payload` with the element's key; `detached` leaves the payload out of the message.
pub fn sign1(key: &DeviceKey, payload: &[u8], detached: bool) -> Result<Vec<u8>, DeviceError> {
    let alg = match key.kind() {
        KeyKind::Ec(c) => match c.field_len() {
            32 if c == keyward_crypto::Curve::Secp256r1 => ES256,
            48 if c == keyward_crypto::Curve::Secp384r1 => ES384,
            66 => ES512,
            _ => return Err(DeviceError::Unsupported(format!("COSE with {c:?}"))),
        },
        KeyKind::Rsa => RS256,
    };
    let chain = match key.chain.as_slice() {
        [one] => Value::Bytes(one.clone()),
        all => Value::Array(all.iter().cloned().map(Value::Bytes).collect()),
    };
    let protected = Value::Map(vec![
        (Value::int(ALG), Value::int(alg)),
        (Value::int(X5CHAIN), chain),
    ])
    .encode();
    let signature = key.sign(&to_be_signed(&protected, payload))?;
    let signature = match key.kind() {
        // COSE carries ECDSA as fixed-length r‖s.
        KeyKind::Ec(c) => keyward_crypto::der_signature_to_plain(&signature, c.field_len())
            .map_err(|e| DeviceError::Unsupported(e.to_string()))?,
        KeyKind::Rsa => signature,
    };
    Ok(Value::Tag(
        TAG_SIGN1,
        Box::new(Value::Array(vec![
            Value::Bytes(protected),
            Value::Map(Vec::new()),
            if detached {
                Value::Null
            } else {
                Value::Bytes(payload.to_vec())
            },
            Value::Bytes(signature),
        ])),
    )
    .encode())
}

/// Verifies a COSE_Sign1 message (tagged or not): its signer's chain to `trust` at `now` and
/// its signature over the payload (`detached` supplies it when the message carries none, and
/// must equal it when the message carries one).
pub fn verify1(
    message: &[u8],
    detached: Option<&[u8]>,
    trust: &Trust,
    now: i64,
) -> Result<Verified, VerifyError> {
    let bad = VerifyError::Malformed;
    let value = Value::decode(message).map_err(|_| bad("COSE_Sign1 (CBOR)"))?;
    let inner = match value {
        Value::Tag(TAG_SIGN1, v) => *v,
        Value::Tag(..) => return Err(bad("COSE message: not COSE_Sign1")),
        v => v,
    };
    let Value::Array(parts) = inner else {
        return Err(bad("COSE_Sign1 (not an array)"));
    };
    let [protected, unprotected, payload, signature] =
        <[Value; 4]>::try_from(parts).map_err(|_| bad("COSE_Sign1 (not 4 parts)"))?;
    let protected_bytes = protected.as_bytes().ok_or(bad("protected header"))?;
    let header = if protected_bytes.is_empty() {
        Value::Map(Vec::new())
    } else {
        Value::decode(protected_bytes).map_err(|_| bad("protected header"))?
    };
    let alg = header
        .get(ALG)
        .and_then(Value::as_int)
        .ok_or(bad("protected header without alg"))?;
    let oid = algorithm_oid(alg).ok_or_else(|| VerifyError::Algorithm(format!("COSE {alg}")))?;
    // x5chain: protected first; the unprotected header is not covered by the signature but
    // the chain is validated on its own merits either way.
    let chain: Vec<Vec<u8>> = match header.get(X5CHAIN).or_else(|| unprotected.get(X5CHAIN)) {
        Some(Value::Bytes(one)) => vec![one.clone()],
        Some(Value::Array(all)) => all
            .iter()
            .map(|c| c.as_bytes().map(<[u8]>::to_vec).ok_or(bad("x5chain")))
            .collect::<Result<_, _>>()?,
        _ => return Err(VerifyError::NoCertificate),
    };
    let (leaf, carried) = chain.split_first().ok_or(VerifyError::NoCertificate)?;
    let payload = match (&payload, detached) {
        // Data given beside a message that carries its own must be that data.
        (Value::Bytes(p), Some(d)) if p.as_slice() != d => {
            return Err(VerifyError::PayloadMismatch);
        }
        (Value::Bytes(p), _) => p.clone(),
        (Value::Null, Some(d)) => d.to_vec(),
        (Value::Null, None) => return Err(bad("detached payload not supplied")),
        _ => return Err(bad("payload")),
    };
    let signature = signature.as_bytes().ok_or(bad("signature"))?;
    let signer = trust.validate(leaf, carried, now)?;
    let cert = Certificate::parse(leaf)?;
    let der_signature = match public_key_info(cert.spki)? {
        PublicKeyInfo::Ec { curve, .. } => {
            let n = curve.field_len();
            if signature.len() != 2 * n {
                return Err(VerifyError::BadSignature);
            }
            let (r, s) = signature.split_at(n);
            der::seq(&[&der::uint(r), &der::uint(s)])
        }
        PublicKeyInfo::Rsa { .. } => signature.to_vec(),
    };
    let tbs = to_be_signed(protected_bytes, &payload);
    if !verify_signature(cert.spki, oid, &tbs, &der_signature)? {
        return Err(VerifyError::BadSignature);
    }
    Ok(Verified { signer, payload })
}
