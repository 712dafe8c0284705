//! A CA key in any PKCS#11 token (SoftHSM2, a SmartCard-HSM through OpenSC, Keyward's own
//! module), named by a `pkcs11:` URI. The token signs SHA-256 digests with CKM_ECDSA; the key
//! never leaves it.

use std::path::Path;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use keyward_crypto::Curve;

use crate::pkcs11_uri::Pkcs11Uri;
use crate::{CaError, CaKey};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs11KeyError {
    #[error("no PKCS#11 module: give module-path in the URI or a default module")]
    NoModule,
    #[error("PKCS#11: {0}")]
    Pkcs11(#[from] cryptoki::error::Error),
    #[error("no token matches the URI")]
    NoToken,
    #[error("{0} keys match the URI (exactly one must)")]
    Ambiguous(usize),
    #[error("the key's public part is missing or not an EC point on a supported curve")]
    PublicKey,
    #[error("reading the PIN: {0}")]
    Pin(std::io::Error),
    #[error("the URI names no key: give object= (label) or id=")]
    NoKeyName,
    #[error("the certificate object has no value")]
    Certificate,
}

impl From<Pkcs11KeyError> for CaError {
    fn from(e: Pkcs11KeyError) -> Self {
        CaError::Token(e.to_string())
    }
}

/// A CA key in a PKCS#11 token, with a logged-in session.
pub struct Pkcs11Key {
    session: Session,
    key: ObjectHandle,
    curve: Curve,
    point: Vec<u8>,
}

/// One initialized context per module and process. PKCS#11 wants one C_Initialize per
/// process, and a context dropped without C_Finalize unloads the module with whatever it holds
/// (an open element's lock, say): so contexts are kept, not reloaded.
fn context(module: &Path) -> Result<Pkcs11, Pkcs11KeyError> {
    static CONTEXTS: std::sync::Mutex<Vec<(std::path::PathBuf, Pkcs11)>> =
        std::sync::Mutex::new(Vec::new());
    let mut contexts = CONTEXTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, ctx)) = contexts.iter().find(|(p, _)| p == module) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(module)?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(
            cryptoki::error::RvError::CryptokiAlreadyInitialized,
            _,
        )) => {}
        Err(e) => return Err(e.into()),
    }
    contexts.push((module.to_path_buf(), ctx.clone()));
    Ok(ctx)
}

fn open_session(uri: &Pkcs11Uri, default_module: Option<&Path>) -> Result<Session, Pkcs11KeyError> {
    let module = uri
        .module_path
        .as_deref()
        .map(Path::new)
        .or(default_module)
        .ok_or(Pkcs11KeyError::NoModule)?;
    let ctx = context(module)?;
    let mut chosen = None;
    for slot in ctx.get_slots_with_token()? {
        if uri.slot_id.is_some_and(|id| id != slot.id()) {
            continue;
        }
        let info = ctx.get_token_info(slot)?;
        let same = |want: &Option<String>, have: &str| {
            want.as_deref()
                .is_none_or(|w| w.trim_end() == have.trim_end())
        };
        if same(&uri.token, info.label())
            && same(&uri.serial, info.serial_number())
            && same(&uri.manufacturer, info.manufacturer_id())
            && same(&uri.model, info.model())
        {
            chosen = Some(slot);
            break;
        }
    }
    let slot = chosen.ok_or(Pkcs11KeyError::NoToken)?;
    let session = ctx.open_rw_session(slot)?;
    if let Some(pin) = uri.pin().map_err(Pkcs11KeyError::Pin)? {
        match session.login(UserType::User, Some(&AuthPin::from(pin.as_str()))) {
            Ok(())
            | Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::UserAlreadyLoggedIn,
                _,
            )) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(session)
}

fn key_template(uri: &Pkcs11Uri, class: ObjectClass) -> Result<Vec<Attribute>, Pkcs11KeyError> {
    let mut t = vec![Attribute::Class(class)];
    if let Some(label) = &uri.object {
        t.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        t.push(Attribute::Id(id.clone()));
    }
    if t.len() == 1 {
        return Err(Pkcs11KeyError::NoKeyName);
    }
    Ok(t)
}

fn one(session: &Session, template: &[Attribute]) -> Result<ObjectHandle, Pkcs11KeyError> {
    let found = session.find_objects(template)?;
    match found.as_slice() {
        [h] => Ok(*h),
        other => Err(Pkcs11KeyError::Ambiguous(other.len())),
    }
}

/// The curve and uncompressed point of an EC public key object.
fn public_of(session: &Session, public: ObjectHandle) -> Result<(Curve, Vec<u8>), Pkcs11KeyError> {
    let attrs =
        session.get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])?;
    let (mut curve, mut point) = (None, None);
    for a in attrs {
        match a {
            Attribute::EcParams(p) => curve = Curve::from_oid_der(&p),
            // A DER OCTET STRING around the point (some tokens give the bare point).
            Attribute::EcPoint(p) => {
                point = Some(match keyward_apdu::tlv::Tlv::parse_exact(&p) {
                    Ok(t) if t.tag.0 == 0x04 && t.value.first() == Some(&0x04) => t.value.to_vec(),
                    _ => p,
                })
            }
            _ => {}
        }
    }
    match (curve, point) {
        (Some(c), Some(p)) if p.len() == 1 + 2 * c.field_len() && p[0] == 0x04 => Ok((c, p)),
        _ => Err(Pkcs11KeyError::PublicKey),
    }
}

/// Generates a signing key pair with `mechanism` in the token the URI names, labelled and
/// identified as it says: private, sensitive, never extractable; `public_extra` describes the
/// key (curve or modulus size). Returns the session and the public and private handles.
fn generate_pair(
    uri: &Pkcs11Uri,
    default_module: Option<&Path>,
    mechanism: &Mechanism<'_>,
    public_extra: Vec<Attribute>,
) -> Result<(Session, ObjectHandle, ObjectHandle), Pkcs11KeyError> {
    let session = open_session(uri, default_module)?;
    let mut name = Vec::new();
    if let Some(label) = &uri.object {
        name.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        name.push(Attribute::Id(id.clone()));
    }
    if name.is_empty() {
        return Err(Pkcs11KeyError::NoKeyName);
    }
    let mut public = vec![Attribute::Token(true), Attribute::Verify(true)];
    public.extend(public_extra);
    public.extend(name.iter().cloned());
    let mut private = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
    ];
    private.extend(name);
    let (public, key) = session.generate_key_pair(mechanism, &public, &private)?;
    Ok((session, public, key))
}

impl Pkcs11Key {
    /// Opens the key the URI names (its private and its public key object).
    pub fn open(uri: &Pkcs11Uri, default_module: Option<&Path>) -> Result<Self, Pkcs11KeyError> {
        let session = open_session(uri, default_module)?;
        let key = one(&session, &key_template(uri, ObjectClass::PRIVATE_KEY)?)?;
        let public = one(&session, &key_template(uri, ObjectClass::PUBLIC_KEY)?)?;
        let (curve, point) = public_of(&session, public)?;
        Ok(Self {
            session,
            key,
            curve,
            point,
        })
    }

    /// Generates a signing key pair on `curve` in the token, labelled and identified as the URI
    /// says (private, sensitive, never extractable).
    pub fn generate(
        uri: &Pkcs11Uri,
        default_module: Option<&Path>,
        curve: Curve,
    ) -> Result<Self, Pkcs11KeyError> {
        let (session, public, key) = generate_pair(
            uri,
            default_module,
            &Mechanism::EccKeyPairGen,
            vec![Attribute::EcParams(curve.oid_der().to_vec())],
        )?;
        let (curve, point) = public_of(&session, public)?;
        Ok(Self {
            session,
            key,
            curve,
            point,
        })
    }
}

impl CaKey for Pkcs11Key {
    fn curve(&self) -> Curve {
        self.curve
    }

    fn point(&self) -> &[u8] {
        &self.point
    }

    fn sign_digest(&mut self, digest: &[u8]) -> Result<Vec<u8>, CaError> {
        let sig = self
            .session
            .sign(&Mechanism::Ecdsa, self.key, digest)
            .map_err(|e| CaError::Token(e.to_string()))?;
        if sig.len() != 2 * self.curve.field_len() {
            return Err(CaError::Token(format!(
                "the token's ECDSA signature has {} bytes",
                sig.len()
            )));
        }
        Ok(sig)
    }
}

/// An RSA CA key in a PKCS#11 token (X.509 only: the token hashes and signs,
/// CKM_SHA256_RSA_PKCS).
pub struct Pkcs11RsaKey {
    session: Session,
    key: ObjectHandle,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
}

fn rsa_public(
    session: &Session,
    public: ObjectHandle,
) -> Result<(Vec<u8>, Vec<u8>), Pkcs11KeyError> {
    let attrs = session.get_attributes(
        public,
        &[AttributeType::Modulus, AttributeType::PublicExponent],
    )?;
    let (mut n, mut e) = (None, None);
    for a in attrs {
        match a {
            Attribute::Modulus(v) => n = Some(v),
            Attribute::PublicExponent(v) => e = Some(v),
            _ => {}
        }
    }
    match (n, e) {
        (Some(n), Some(e)) if !n.is_empty() && !e.is_empty() => Ok((n, e)),
        _ => Err(Pkcs11KeyError::PublicKey),
    }
}

impl Pkcs11RsaKey {
    /// Generates an RSA signing key pair of `bits` in the token.
    pub fn generate(
        uri: &Pkcs11Uri,
        default_module: Option<&Path>,
        bits: u64,
    ) -> Result<Self, Pkcs11KeyError> {
        let (session, public, key) = generate_pair(
            uri,
            default_module,
            &Mechanism::RsaPkcsKeyPairGen,
            vec![
                Attribute::ModulusBits(bits.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
            ],
        )?;
        let (modulus, exponent) = rsa_public(&session, public)?;
        Ok(Self {
            session,
            key,
            modulus,
            exponent,
        })
    }
}

impl crate::x509::X509Key for Pkcs11RsaKey {
    fn subject_key(&self) -> crate::x509::SubjectKey {
        crate::x509::SubjectKey::Rsa {
            modulus: self.modulus.clone(),
            exponent: self.exponent.clone(),
        }
    }

    fn signature_algorithm(&self) -> Result<Vec<u8>, CaError> {
        Ok(crate::x509::rsa_sha256_algorithm())
    }

    fn sign_x509(&mut self, data: &[u8]) -> Result<Vec<u8>, CaError> {
        self.session
            .sign(&Mechanism::Sha256RsaPkcs, self.key, data)
            .map_err(|e| CaError::Token(e.to_string()))
    }
}

/// Opens the key a URI names for X.509 signing, EC or RSA as the token holds it.
pub fn open_x509(
    uri: &Pkcs11Uri,
    default_module: Option<&Path>,
) -> Result<Box<dyn crate::x509::X509Key>, Pkcs11KeyError> {
    let session = open_session(uri, default_module)?;
    let public = one(&session, &key_template(uri, ObjectClass::PUBLIC_KEY)?)?;
    // An RSA public key has a modulus; for an EC key the attribute does not exist.
    if rsa_public(&session, public).is_ok() {
        let key = one(&session, &key_template(uri, ObjectClass::PRIVATE_KEY)?)?;
        let (modulus, exponent) = rsa_public(&session, public)?;
        return Ok(Box::new(Pkcs11RsaKey {
            session,
            key,
            modulus,
            exponent,
        }));
    }
    drop(session);
    Ok(Box::new(Pkcs11Key::open(uri, default_module)?))
}

/// The certificate object the URI names (by `object=` and/or `id=`), DER.
pub fn read_certificate(
    uri: &Pkcs11Uri,
    default_module: Option<&Path>,
) -> Result<Vec<u8>, Pkcs11KeyError> {
    let session = open_session(uri, default_module)?;
    let cert = one(&session, &key_template(uri, ObjectClass::CERTIFICATE)?)?;
    session
        .get_attributes(cert, &[AttributeType::Value])?
        .into_iter()
        .find_map(|a| match a {
            Attribute::Value(v) if !v.is_empty() => Some(v),
            _ => None,
        })
        .ok_or(Pkcs11KeyError::Certificate)
}
