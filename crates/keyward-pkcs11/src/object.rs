//! PKCS#11 objects: what the token's files (keys, PKCS#15 descriptions, certificates, data, the
//! device chain) look like as attribute sets, and session objects built from templates.

use std::collections::BTreeMap;

use cryptoki_sys::*;
use keyward_crypto::Curve;
use zeroize::Zeroizing;

use crate::attr::{Template, bool_bytes, ulong_bytes};
use crate::error::{Result, Rv};

/// Vendor attribute on private keys: the key's attestation, i.e. the authenticated CV request
/// (`67…`) the element signed with its device key when it generated the key.
pub const CKA_KEYWARD_ATTESTATION: CK_ATTRIBUTE_TYPE = CKA_VENDOR_DEFINED | 0x4B57_0001;
/// Vendor certificate type of card-verifiable (TR-03110) certificates: the device certificate
/// and its issuer (Device Issuer CA) certificate from EF.C_DevAut.
pub const CKC_KEYWARD_CVC: CK_CERTIFICATE_TYPE = CKC_VENDOR_DEFINED | 0x4B57_0001;

/// Where an object lives, which also keeps its handle stable across rescans of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    PrivateKey(u8),
    PublicKey(u8),
    SecretKey(u8),
    /// The X.509 certificate in `CE<kid>`.
    EeCert(u8),
    /// `CA<id>` described by `C8<id>`.
    CaCert(u8),
    /// Data object described by `C9<id>`.
    Data(u8),
    DeviceCert,
    IssuerCert,
    /// A session object (created, derived or unwrapped in memory).
    Session(CK_OBJECT_HANDLE),
}

/// A public key, used on the host for verify and encrypt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { curve: Curve, point: Vec<u8> },
}

/// What performs an object's cryptographic operations.
#[derive(Debug, Clone)]
pub enum Material {
    None,
    /// A private or secret key on the element.
    Card {
        kid: u8,
        kind: CardKeyKind,
        public: Option<PublicKey>,
        /// The element's algorithm list for the key (`None` = every algorithm of its type).
        algorithms: Option<Vec<u8>>,
    },
    Public(PublicKey),
    /// A session secret (e.g. an ECDH result).
    Secret(Zeroizing<Vec<u8>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardKeyKind {
    Rsa,
    Ec,
    Aes,
}

#[derive(Debug, Clone)]
pub struct Object {
    pub origin: Origin,
    pub attrs: BTreeMap<CK_ATTRIBUTE_TYPE, Vec<u8>>,
    /// Attributes that exist but are never revealed.
    pub sensitive: Vec<CK_ATTRIBUTE_TYPE>,
    pub material: Material,
}

impl Object {
    pub fn new(origin: Origin, class: CK_OBJECT_CLASS) -> Self {
        let mut o = Self {
            origin,
            attrs: BTreeMap::new(),
            sensitive: Vec::new(),
            material: Material::None,
        };
        o.set_ulong(CKA_CLASS, class);
        o.set_bool(CKA_TOKEN, !matches!(origin, Origin::Session(_)));
        o
    }

    pub fn set(&mut self, ty: CK_ATTRIBUTE_TYPE, v: impl Into<Vec<u8>>) {
        self.attrs.insert(ty, v.into());
    }

    pub fn set_bool(&mut self, ty: CK_ATTRIBUTE_TYPE, v: bool) {
        self.set(ty, bool_bytes(v));
    }

    pub fn set_ulong(&mut self, ty: CK_ATTRIBUTE_TYPE, v: CK_ULONG) {
        self.set(ty, ulong_bytes(v));
    }

    pub fn bool(&self, ty: CK_ATTRIBUTE_TYPE) -> bool {
        self.attrs
            .get(&ty)
            .is_some_and(|v| v.first().is_some_and(|b| *b != 0))
    }

    pub fn ulong(&self, ty: CK_ATTRIBUTE_TYPE) -> Option<CK_ULONG> {
        let v = self.attrs.get(&ty)?;
        Some(CK_ULONG::from_ne_bytes(v.as_slice().try_into().ok()?))
    }

    /// One attribute: its bytes, or the CK_RV for that attribute.
    pub fn attribute(&self, ty: CK_ATTRIBUTE_TYPE) -> std::result::Result<&[u8], CK_RV> {
        if self.sensitive.contains(&ty) {
            return Err(CKR_ATTRIBUTE_SENSITIVE);
        }
        self.attrs
            .get(&ty)
            .map(Vec::as_slice)
            .ok_or(CKR_ATTRIBUTE_TYPE_INVALID)
    }

    pub fn class(&self) -> CK_OBJECT_CLASS {
        self.ulong(CKA_CLASS).unwrap_or(CK_UNAVAILABLE_INFORMATION)
    }

    pub fn is_private(&self) -> bool {
        self.bool(CKA_PRIVATE)
    }

    /// Whether every attribute of the template has exactly this value here. The device's
    /// card-verifiable certificates (vendor certificate type) match only a search that selects
    /// them by type, label or id: applications that enumerate certificates expect X.509 and
    /// some give up on the first certificate they cannot decode (libp11 0.4.12 does).
    pub fn matches(&self, template: &Template) -> bool {
        let vendor = self.ulong(CKA_CERTIFICATE_TYPE) == Some(CKC_KEYWARD_CVC);
        let selects =
            |t: &CK_ATTRIBUTE_TYPE| matches!(*t, CKA_CERTIFICATE_TYPE | CKA_LABEL | CKA_ID);
        (!vendor || template.0.iter().any(|(t, _)| selects(t)))
            && template
                .0
                .iter()
                .all(|(t, v)| self.attrs.get(t).is_some_and(|ours| ours == v))
    }

    /// Common attributes of storage objects.
    fn storage(&mut self, label: &str, private: bool, modifiable: bool) {
        self.set(CKA_LABEL, label.as_bytes());
        self.set_bool(CKA_PRIVATE, private);
        self.set_bool(CKA_MODIFIABLE, modifiable);
        self.set_bool(CKA_COPYABLE, false);
        self.set_bool(CKA_DESTROYABLE, modifiable);
    }

    fn key_common(&mut self, key_type: CK_KEY_TYPE, id: &[u8], local: bool, mech: CK_ULONG) {
        self.set_ulong(CKA_KEY_TYPE, key_type);
        self.set(CKA_ID, id);
        self.set(CKA_START_DATE, Vec::new());
        self.set(CKA_END_DATE, Vec::new());
        self.set_bool(CKA_DERIVE, false);
        self.set_bool(CKA_LOCAL, local);
        self.set_ulong(
            CKA_KEY_GEN_MECHANISM,
            if local {
                mech
            } else {
                CK_UNAVAILABLE_INFORMATION
            },
        );
    }

    fn public_values(&mut self, key: &PublicKey) {
        match key {
            PublicKey::Rsa { n, e } => {
                self.set(CKA_MODULUS, n.clone());
                self.set(CKA_PUBLIC_EXPONENT, e.clone());
                if self.class() == CKO_PUBLIC_KEY {
                    self.set_ulong(CKA_MODULUS_BITS, modulus_bits(n));
                }
            }
            PublicKey::Ec { curve, point } => {
                self.set(CKA_EC_PARAMS, curve.oid_der());
                if self.class() == CKO_PUBLIC_KEY {
                    self.set(CKA_EC_POINT, octet_string(point));
                }
            }
        }
        if let Some(spki) = crate::x509::encode_spki(key) {
            self.set(CKA_PUBLIC_KEY_INFO, spki);
        }
    }
}

/// The description of one key on the element, as the token scan finds it.
pub struct CardKey<'a> {
    pub kid: u8,
    pub kind: CardKeyKind,
    pub bits: CK_ULONG,
    pub label: &'a str,
    pub id: &'a [u8],
    pub public: Option<PublicKey>,
    pub curve: Option<Curve>,
    /// Generated on the element (an attestation exists or existed).
    pub local: bool,
    pub extractable: bool,
    pub algorithms: Option<Vec<u8>>,
    pub attestation: Option<&'a [u8]>,
    /// DER subject of the key's certificate, if any.
    pub subject: Vec<u8>,
}

impl CardKey<'_> {
    /// The private (or secret) key object.
    pub fn private_object(&self) -> Object {
        let (origin, class) = match self.kind {
            CardKeyKind::Aes => (Origin::SecretKey(self.kid), CKO_SECRET_KEY),
            _ => (Origin::PrivateKey(self.kid), CKO_PRIVATE_KEY),
        };
        let mut o = Object::new(origin, class);
        o.storage(self.label, true, true);
        let (key_type, mech) = match self.kind {
            CardKeyKind::Rsa => (CKK_RSA, CKM_RSA_PKCS_KEY_PAIR_GEN),
            CardKeyKind::Ec => (CKK_EC, CKM_EC_KEY_PAIR_GEN),
            CardKeyKind::Aes => (CKK_AES, CKM_AES_KEY_GEN),
        };
        o.key_common(key_type, self.id, self.local, mech);
        o.set_bool(CKA_SENSITIVE, true);
        o.set_bool(CKA_ALWAYS_SENSITIVE, true);
        o.set_bool(CKA_EXTRACTABLE, self.extractable);
        o.set_bool(CKA_NEVER_EXTRACTABLE, !self.extractable);
        o.set_bool(CKA_ALWAYS_AUTHENTICATE, false);
        o.set_bool(CKA_WRAP_WITH_TRUSTED, false);
        o.set_bool(CKA_UNWRAP, false);
        o.set_bool(CKA_SIGN_RECOVER, false);
        match self.kind {
            CardKeyKind::Rsa => {
                o.set_bool(CKA_SIGN, true);
                o.set_bool(CKA_DECRYPT, true);
                o.sensitive = vec![
                    CKA_PRIVATE_EXPONENT,
                    CKA_PRIME_1,
                    CKA_PRIME_2,
                    CKA_EXPONENT_1,
                    CKA_EXPONENT_2,
                    CKA_COEFFICIENT,
                ];
            }
            CardKeyKind::Ec => {
                o.set_bool(CKA_SIGN, true);
                o.set_bool(CKA_DECRYPT, false);
                o.set_bool(CKA_DERIVE, true);
                if let Some(c) = self.curve {
                    o.set(CKA_EC_PARAMS, c.oid_der());
                }
                o.sensitive = vec![CKA_VALUE];
            }
            CardKeyKind::Aes => {
                for a in [CKA_ENCRYPT, CKA_DECRYPT, CKA_SIGN, CKA_VERIFY] {
                    o.set_bool(a, true);
                }
                o.set_bool(CKA_WRAP, false);
                o.set_bool(CKA_TRUSTED, false);
                o.set_ulong(CKA_VALUE_LEN, self.bits / 8);
                o.sensitive = vec![CKA_VALUE];
            }
        }
        if self.kind != CardKeyKind::Aes {
            o.set(CKA_SUBJECT, self.subject.clone());
            if let Some(p) = &self.public {
                o.public_values(p);
            }
        }
        if let Some(a) = self.attestation {
            o.set(CKA_KEYWARD_ATTESTATION, a);
        }
        o.material = Material::Card {
            kid: self.kid,
            kind: self.kind,
            public: self.public.clone(),
            algorithms: self.algorithms.clone(),
        };
        o
    }

    /// The public key object, when the public key is known.
    pub fn public_object(&self) -> Option<Object> {
        let public = self.public.as_ref()?;
        let mut o = Object::new(Origin::PublicKey(self.kid), CKO_PUBLIC_KEY);
        o.storage(self.label, false, true);
        let (key_type, mech) = match public {
            PublicKey::Rsa { .. } => (CKK_RSA, CKM_RSA_PKCS_KEY_PAIR_GEN),
            PublicKey::Ec { .. } => (CKK_EC, CKM_EC_KEY_PAIR_GEN),
        };
        o.key_common(key_type, self.id, self.local, mech);
        let rsa = matches!(public, PublicKey::Rsa { .. });
        o.set_bool(CKA_VERIFY, true);
        o.set_bool(CKA_ENCRYPT, rsa);
        o.set_bool(CKA_VERIFY_RECOVER, false);
        o.set_bool(CKA_WRAP, false);
        o.set_bool(CKA_TRUSTED, false);
        o.set(CKA_SUBJECT, self.subject.clone());
        o.public_values(public);
        o.material = Material::Public(public.clone());
        Some(o)
    }
}

/// A certificate object (X.509 or the device's CVCs).
pub fn certificate(origin: Origin, label: &str, id: &[u8], der: &[u8]) -> Object {
    let mut o = Object::new(origin, CKO_CERTIFICATE);
    let device = matches!(origin, Origin::DeviceCert | Origin::IssuerCert);
    o.storage(label, false, !device);
    o.set(CKA_ID, id);
    o.set(CKA_VALUE, der);
    o.set_bool(CKA_TRUSTED, false);
    o.set_ulong(
        CKA_CERTIFICATE_CATEGORY,
        CK_CERTIFICATE_CATEGORY_UNSPECIFIED,
    );
    o.set(CKA_START_DATE, Vec::new());
    o.set(CKA_END_DATE, Vec::new());
    if device {
        o.set_ulong(CKA_CERTIFICATE_TYPE, CKC_KEYWARD_CVC);
        if let Ok(cvc) = keyward_cvc::Certificate::parse(der) {
            o.set(CKA_SUBJECT, cvc.body.chr.clone());
            o.set(CKA_ISSUER, cvc.body.car.clone().unwrap_or_default());
            o.set(CKA_CHECK_VALUE, Vec::new());
        }
        return o;
    }
    o.set_ulong(CKA_CERTIFICATE_TYPE, CKC_X_509);
    o.set(CKA_URL, Vec::new());
    o.set(CKA_HASH_OF_SUBJECT_PUBLIC_KEY, Vec::new());
    o.set(CKA_HASH_OF_ISSUER_PUBLIC_KEY, Vec::new());
    o.set_ulong(CKA_JAVA_MIDP_SECURITY_DOMAIN, 0);
    let sha1 = keyward_crypto::HashAlg::Sha1.digest(der);
    o.set(CKA_CHECK_VALUE, sha1[..3].to_vec());
    match crate::x509::parse(der) {
        Some(f) => {
            o.set(CKA_SUBJECT, f.subject);
            o.set(CKA_ISSUER, f.issuer);
            o.set(CKA_SERIAL_NUMBER, f.serial);
            o.set(CKA_PUBLIC_KEY_INFO, f.spki);
        }
        None => {
            for a in [CKA_SUBJECT, CKA_ISSUER, CKA_SERIAL_NUMBER] {
                o.set(a, Vec::new());
            }
        }
    }
    o
}

/// A data object.
pub fn data(
    origin: Origin,
    label: &str,
    application: &str,
    oid: Option<&[u8]>,
    private: bool,
    value: &[u8],
) -> Object {
    let mut o = Object::new(origin, CKO_DATA);
    o.storage(label, private, true);
    o.set(CKA_APPLICATION, application.as_bytes());
    o.set(CKA_OBJECT_ID, oid.unwrap_or_default());
    o.set(CKA_VALUE, value);
    o
}

/// A session object from a `C_CreateObject` template (certificates, data, public keys, secrets).
pub fn from_template(handle: CK_OBJECT_HANDLE, t: &Template) -> Result<Object> {
    let class = t.ulong(CKA_CLASS)?.ok_or(Rv(CKR_TEMPLATE_INCOMPLETE))?;
    let label = t.string(CKA_LABEL)?.unwrap_or_default();
    let id = t.get(CKA_ID).unwrap_or_default();
    let origin = Origin::Session(handle);
    let mut o = match class {
        CKO_CERTIFICATE => {
            let value = t.get(CKA_VALUE).ok_or(Rv(CKR_TEMPLATE_INCOMPLETE))?;
            check_cert_type(t)?;
            certificate(origin, &label, id, value)
        }
        CKO_DATA => data(
            origin,
            &label,
            &t.string(CKA_APPLICATION)?.unwrap_or_default(),
            t.get(CKA_OBJECT_ID),
            t.bool(CKA_PRIVATE)?.unwrap_or(false),
            t.get(CKA_VALUE).unwrap_or_default(),
        ),
        CKO_PUBLIC_KEY => {
            let key = public_from_template(t)?;
            let mut o = Object::new(origin, CKO_PUBLIC_KEY);
            o.storage(&label, false, true);
            let kt = match key {
                PublicKey::Rsa { .. } => CKK_RSA,
                PublicKey::Ec { .. } => CKK_EC,
            };
            o.key_common(kt, id, false, 0);
            o.set_bool(CKA_VERIFY, t.bool(CKA_VERIFY)?.unwrap_or(true));
            o.set_bool(CKA_ENCRYPT, t.bool(CKA_ENCRYPT)?.unwrap_or(kt == CKK_RSA));
            o.set_bool(CKA_WRAP, false);
            o.set_bool(CKA_VERIFY_RECOVER, false);
            o.set_bool(CKA_TRUSTED, false);
            o.set(CKA_SUBJECT, t.get(CKA_SUBJECT).unwrap_or_default());
            o.public_values(&key);
            o.material = Material::Public(key);
            o
        }
        CKO_SECRET_KEY => {
            let value = t.get(CKA_VALUE).ok_or(Rv(CKR_TEMPLATE_INCOMPLETE))?;
            let kt = t.ulong(CKA_KEY_TYPE)?.unwrap_or(CKK_GENERIC_SECRET);
            secret(origin, &label, id, kt, value.to_vec(), t)?
        }
        _ => return Err(Rv(CKR_ATTRIBUTE_VALUE_INVALID)),
    };
    o.set_bool(CKA_TOKEN, false);
    Ok(o)
}

/// A secret key held in memory (only as a session object).
pub fn secret(
    origin: Origin,
    label: &str,
    id: &[u8],
    key_type: CK_KEY_TYPE,
    value: Vec<u8>,
    t: &Template,
) -> Result<Object> {
    let value = Zeroizing::new(value);
    let mut o = Object::new(origin, CKO_SECRET_KEY);
    o.storage(label, t.bool(CKA_PRIVATE)?.unwrap_or(true), true);
    o.key_common(key_type, id, false, 0);
    let sensitive = t.bool(CKA_SENSITIVE)?.unwrap_or(false);
    let extractable = t.bool(CKA_EXTRACTABLE)?.unwrap_or(true);
    o.set_bool(CKA_SENSITIVE, sensitive);
    o.set_bool(CKA_ALWAYS_SENSITIVE, sensitive);
    o.set_bool(CKA_EXTRACTABLE, extractable);
    o.set_bool(CKA_NEVER_EXTRACTABLE, !extractable);
    for a in [
        CKA_ENCRYPT,
        CKA_DECRYPT,
        CKA_SIGN,
        CKA_VERIFY,
        CKA_WRAP,
        CKA_UNWRAP,
    ] {
        o.set_bool(a, t.bool(a)?.unwrap_or(false));
    }
    o.set_bool(CKA_DERIVE, t.bool(CKA_DERIVE)?.unwrap_or(false));
    o.set_ulong(CKA_VALUE_LEN, value.len() as CK_ULONG);
    if sensitive || !extractable {
        o.sensitive = vec![CKA_VALUE];
    } else {
        o.set(CKA_VALUE, value.to_vec());
    }
    o.material = Material::Secret(value);
    Ok(o)
}

pub fn check_cert_type(t: &Template) -> Result<()> {
    match t.ulong(CKA_CERTIFICATE_TYPE)? {
        None | Some(CKC_X_509) => Ok(()),
        Some(_) => Err(Rv(CKR_ATTRIBUTE_VALUE_INVALID)),
    }
}

/// The public key a template describes (RSA modulus/exponent or EC parameters/point).
pub fn public_from_template(t: &Template) -> Result<PublicKey> {
    match t.ulong(CKA_KEY_TYPE)? {
        Some(CKK_RSA) => Ok(PublicKey::Rsa {
            n: t.get(CKA_MODULUS)
                .ok_or(Rv(CKR_TEMPLATE_INCOMPLETE))?
                .to_vec(),
            e: t.get(CKA_PUBLIC_EXPONENT)
                .ok_or(Rv(CKR_TEMPLATE_INCOMPLETE))?
                .to_vec(),
        }),
        Some(CKK_EC) => {
            let params = t.get(CKA_EC_PARAMS).ok_or(Rv(CKR_TEMPLATE_INCOMPLETE))?;
            let curve = Curve::from_oid_der(params).ok_or(Rv(CKR_CURVE_NOT_SUPPORTED))?;
            let point = t.get(CKA_EC_POINT).ok_or(Rv(CKR_TEMPLATE_INCOMPLETE))?;
            Ok(PublicKey::Ec {
                curve,
                point: ec_point(curve, point)
                    .ok_or(Rv(CKR_ATTRIBUTE_VALUE_INVALID))?
                    .to_vec(),
            })
        }
        Some(_) => Err(Rv(CKR_ATTRIBUTE_VALUE_INVALID)),
        None => Err(Rv(CKR_TEMPLATE_INCOMPLETE)),
    }
}

/// Number of significant bits of a big-endian number.
pub fn modulus_bits(n: &[u8]) -> CK_ULONG {
    let skip = n.iter().take_while(|b| **b == 0).count();
    match n.get(skip) {
        Some(b) => ((n.len() - skip - 1) * 8 + (8 - b.leading_zeros() as usize)) as CK_ULONG,
        None => 0,
    }
}

/// DER OCTET STRING around an EC point (how `CKA_EC_POINT` carries it).
pub fn octet_string(v: &[u8]) -> Vec<u8> {
    keyward_apdu::tlv::encode(0x04, v).unwrap_or_default()
}

/// An EC point on `curve` given either raw (`04‖X‖Y`) or wrapped in a DER OCTET STRING.
pub fn ec_point(curve: Curve, v: &[u8]) -> Option<&[u8]> {
    let raw_len = 1 + 2 * curve.field_len();
    if v.len() == raw_len && v[0] == 0x04 {
        return Some(v);
    }
    let t = keyward_apdu::tlv::Tlv::parse_exact(v).ok()?;
    (t.tag.0 == 0x04 && t.value.len() == raw_len && t.value[0] == 0x04).then_some(t.value)
}
