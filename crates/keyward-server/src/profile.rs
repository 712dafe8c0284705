//! Certificate profiles: what key a device gets and what its certificate says. Three are built
//! in (`tls-client`, `eap-tls`, `data-signing`); the server's TOML configuration may override
//! them or add more under `[profiles.NAME]`.

use std::collections::BTreeMap;

use keyward_ca::x509::{AltName, KeyUsage, Name, NameAttr, SubjectKey, Template, eku};
use keyward_card::KeySpec;
use keyward_crypto::Curve;
use keyward_cvc::PublicKey;
use serde::Deserialize;

/// What the certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Usage {
    /// TLS client authentication (EKU clientAuth).
    TlsClient,
    /// 802.1X / WPA-Enterprise EAP-TLS (EKU clientAuth, device URI in the SAN).
    EapTls,
    /// Signing collected data (digitalSignature, nonRepudiation).
    DataSigning,
}

/// A profile as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The key type generated when the device asks for none: ec-p256, ec-p384, ec-p521,
    /// ec-brainpool256, ec-brainpool384, rsa-2048, rsa-3072, rsa-4096.
    pub key: String,
    /// Further key types a device may ask for (`?key=TYPE`); the policy is `key` plus these.
    #[serde(default)]
    pub keys: Vec<String>,
    pub usage: Usage,
    #[serde(default = "default_validity")]
    pub validity_days: u32,
    /// Whether the key may be wrapped for backup (algorithm `92` allowed).
    #[serde(default)]
    pub exportable: bool,
    /// The subject's organization (in the default subject).
    #[serde(default)]
    pub organization: Option<String>,
    /// How many signatures the key may make (the element's use counter); none: unlimited.
    #[serde(default)]
    pub use_counter: Option<u32>,
    /// The subject, e.g. `"CN={device_id}, OU={site}, O=Acme"` (attributes C, O, OU, CN,
    /// serialNumber); default `CN={device_id}, O=<organization or Keyward>`.
    #[serde(default)]
    pub subject: Option<String>,
    /// Subject alternative names: `uri:…`, `dns:…`, `email:…`; default
    /// `uri:urn:keyward:device:{device_id}`.
    #[serde(default)]
    pub alt_names: Option<Vec<String>>,
    /// Request parameters (`?NAME=value` on the provisioning URL) the templates may use; each
    /// is required, 1–64 characters of `A-Z a-z 0-9 . _ -`.
    #[serde(default)]
    pub parameters: Vec<String>,
}

fn default_validity() -> u32 {
    365
}

/// A configuration error in a profile.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("profile {profile}: {problem}")]
pub struct ProfileError {
    pub profile: String,
    pub problem: String,
}

/// Why a request falls outside a profile's policy.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("key type {asked:?} is outside the profile's policy (allowed: {allowed})")]
    KeyType { asked: String, allowed: String },
    #[error("request parameter {0:?} is missing")]
    MissingParameter(String),
    #[error("request parameter {0:?} is not 1-64 characters of A-Z a-z 0-9 . _ -")]
    BadParameter(String),
    #[error("the attested key is not the {0} the element was asked for")]
    AttestedKey(String),
}

/// A key type's name in profiles.
pub fn key_spec(name: &str) -> Option<KeySpec> {
    Some(match name {
        "ec-p256" => KeySpec::Ec(Curve::Secp256r1),
        "ec-p384" => KeySpec::Ec(Curve::Secp384r1),
        "ec-p521" => KeySpec::Ec(Curve::Secp521r1),
        "ec-brainpool256" => KeySpec::Ec(Curve::BrainpoolP256r1),
        "ec-brainpool384" => KeySpec::Ec(Curve::BrainpoolP384r1),
        "rsa-2048" => KeySpec::Rsa(2048),
        "rsa-3072" => KeySpec::Rsa(3072),
        "rsa-4096" => KeySpec::Rsa(4096),
        _ => return None,
    })
}

/// The certificate's public key from an attested key, if it is the key type `spec` asked for.
pub fn attested_key(key: &PublicKey, spec: KeySpec) -> Result<SubjectKey, PolicyError> {
    match (key, spec) {
        // An authenticated request carries its domain parameters: they name the curve (a
        // point's length alone does not tell P-256 from brainpoolP256r1).
        (
            PublicKey::Ec {
                point,
                domain: Some(domain),
                ..
            },
            KeySpec::Ec(curve),
        ) if Curve::from_domain(domain) == Some(curve)
            && point.len() == 1 + 2 * curve.field_len()
            && point.first() == Some(&4) =>
        {
            Ok(SubjectKey::Ec {
                curve,
                point: point.clone(),
            })
        }
        (
            PublicKey::Rsa {
                modulus, exponent, ..
            },
            KeySpec::Rsa(bits),
        ) if modulus.len() * 8 == usize::from(bits)
            && modulus.first().is_some_and(|b| b & 0x80 != 0) =>
        {
            Ok(SubjectKey::Rsa {
                modulus: modulus.clone(),
                exponent: exponent.clone(),
            })
        }
        _ => Err(PolicyError::AttestedKey(format!("{spec:?}"))),
    }
}

const SUBJECT_ATTRS: [(&str, NameAttr); 5] = [
    ("C", NameAttr::Country),
    ("O", NameAttr::Organization),
    ("OU", NameAttr::OrganizationalUnit),
    ("CN", NameAttr::CommonName),
    ("serialNumber", NameAttr::SerialNumber),
];

fn valid_parameter(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `{name}` placeholders in a template, in order; `None` for an unclosed brace.
fn placeholders(template: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = rest.get(open + 1..)?;
        let close = after.find('}')?;
        out.push(after.get(..close)?);
        rest = after.get(close + 1..)?;
    }
    Some(out)
}

fn render(template: &str, values: &BTreeMap<&str, &str>) -> String {
    let mut out = template.to_string();
    for (k, v) in values {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

impl Profile {
    fn builtin(key: &str, usage: Usage) -> Self {
        Self {
            key: key.to_string(),
            keys: Vec::new(),
            usage,
            validity_days: default_validity(),
            exportable: false,
            organization: None,
            use_counter: None,
            subject: None,
            alt_names: None,
            parameters: Vec::new(),
        }
    }

    /// The key types this profile allows, the default first.
    pub fn allowed_keys(&self) -> Vec<&str> {
        let mut all = vec![self.key.as_str()];
        all.extend(
            self.keys
                .iter()
                .map(String::as_str)
                .filter(|k| *k != self.key),
        );
        all
    }

    /// The default key the element generates.
    pub fn key_spec(&self) -> Option<KeySpec> {
        key_spec(&self.key)
    }

    /// The key for a request asking for `asked` (or the default), if the policy allows it.
    pub fn key_for(&self, asked: Option<&str>) -> Result<KeySpec, PolicyError> {
        let name = asked.unwrap_or(&self.key);
        let allowed = self.allowed_keys();
        match key_spec(name) {
            Some(spec) if allowed.contains(&name) => Ok(spec),
            _ => Err(PolicyError::KeyType {
                asked: name.to_string(),
                allowed: allowed.join(", "),
            }),
        }
    }

    /// The algorithm list (tag `91`) a key of `spec` is generated with: every signing
    /// algorithm (and ECDH / RSA decryption), plus key wrapping only when the profile allows
    /// export.
    pub fn algorithms(&self, spec: KeySpec) -> Option<Vec<u8>> {
        let mut list: Vec<u8> = match spec {
            KeySpec::Ec(_) => vec![0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x80],
            KeySpec::Rsa(_) => {
                let mut v = vec![0x20, 0x21];
                v.extend(0x30..=0x35);
                v.extend(0x40..=0x45);
                v
            }
            KeySpec::Aes(_) => return None,
        };
        if self.exportable {
            list.push(0x92);
        }
        Some(list)
    }

    fn subject_template(&self) -> String {
        self.subject.clone().unwrap_or_else(|| {
            format!(
                "CN={{device_id}}, O={}",
                self.organization.as_deref().unwrap_or("Keyward")
            )
        })
    }

    fn alt_name_templates(&self) -> Vec<String> {
        self.alt_names
            .clone()
            .unwrap_or_else(|| vec!["uri:urn:keyward:device:{device_id}".to_string()])
    }

    /// Checks the profile's configuration: key types, templates and their placeholders.
    fn check(&self, name: &str) -> Result<(), ProfileError> {
        let err = |problem: String| ProfileError {
            profile: name.to_string(),
            problem,
        };
        for k in self.allowed_keys() {
            if key_spec(k).is_none() {
                return Err(err(format!("unknown key type {k:?}")));
            }
        }
        let subject = self.subject_template();
        for part in subject.split(',') {
            let (attr, _) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| err(format!("subject part {part:?} is not ATTR=value")))?;
            if !SUBJECT_ATTRS.iter().any(|(a, _)| *a == attr.trim()) {
                return Err(err(format!(
                    "subject attribute {attr:?}: C, O, OU, CN or serialNumber"
                )));
            }
        }
        for alt in self.alt_name_templates() {
            if !["uri:", "dns:", "email:"]
                .iter()
                .any(|p| alt.starts_with(p))
            {
                return Err(err(format!(
                    "alternative name {alt:?}: uri:, dns: or email:"
                )));
            }
        }
        for template in std::iter::once(subject).chain(self.alt_name_templates()) {
            let names = placeholders(&template)
                .ok_or_else(|| err(format!("unclosed brace in {template:?}")))?;
            for n in names {
                if n != "device_id" && !self.parameters.iter().any(|p| p == n) {
                    return Err(err(format!(
                        "{{{n}}} in {template:?} is neither device_id nor a declared parameter"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The request parameters this profile declares, read with `get` and checked.
    pub fn parameters<'a>(
        &'a self,
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<BTreeMap<&'a str, &'a str>, PolicyError> {
        let mut out = BTreeMap::new();
        for p in &self.parameters {
            let v = get(p).ok_or_else(|| PolicyError::MissingParameter(p.clone()))?;
            if !valid_parameter(v) {
                return Err(PolicyError::BadParameter(p.clone()));
            }
            out.insert(p.as_str(), v);
        }
        Ok(out)
    }

    /// The certificate template for `device_id`, a key of `spec` and the checked request
    /// `parameters`.
    pub fn template(
        &self,
        device_id: &str,
        spec: KeySpec,
        parameters: &BTreeMap<&str, &str>,
        now: i64,
        urls: (Option<&str>, Option<&str>),
    ) -> Template {
        let mut values = parameters.clone();
        values.insert("device_id", device_id);
        let rsa = matches!(spec, KeySpec::Rsa(_));
        let (key_usage, extended_key_usage) = match self.usage {
            Usage::TlsClient | Usage::EapTls => {
                let mut ku = vec![KeyUsage::DigitalSignature];
                if rsa {
                    ku.push(KeyUsage::KeyEncipherment);
                }
                (ku, vec![eku::CLIENT_AUTH])
            }
            Usage::DataSigning => (
                vec![KeyUsage::DigitalSignature, KeyUsage::NonRepudiation],
                Vec::new(),
            ),
        };
        // Checked at load (`check`): every part is ATTR=value with a known attribute.
        let subject = Name(
            self.subject_template()
                .split(',')
                .filter_map(|part| {
                    let (attr, value) = part.trim().split_once('=')?;
                    let (_, a) = SUBJECT_ATTRS.iter().find(|(n, _)| *n == attr.trim())?;
                    Some((*a, render(value.trim(), &values)))
                })
                .collect(),
        );
        let alt_names = self
            .alt_name_templates()
            .iter()
            .filter_map(|t| {
                let (kind, value) = t.split_once(':')?;
                let value = render(value, &values);
                Some(match kind {
                    "uri" => AltName::Uri(value),
                    "dns" => AltName::Dns(value),
                    _ => AltName::Email(value),
                })
            })
            .collect();
        Template {
            subject,
            not_before: now - 300,
            not_after: now + i64::from(self.validity_days) * 86_400,
            key_usage,
            extended_key_usage,
            alt_names,
            ca: None,
            crl_url: urls.0.map(str::to_string),
            ocsp_url: urls.1.map(str::to_string),
            attestation: None,
        }
    }
}

/// The built-in profiles, overridden or extended by the configuration's.
pub fn profiles(
    configured: &BTreeMap<String, Profile>,
) -> Result<BTreeMap<String, Profile>, ProfileError> {
    let mut all = BTreeMap::from([
        (
            "tls-client".to_string(),
            Profile::builtin("ec-p256", Usage::TlsClient),
        ),
        (
            "eap-tls".to_string(),
            Profile::builtin("ec-p256", Usage::EapTls),
        ),
        (
            "data-signing".to_string(),
            Profile::builtin("ec-p256", Usage::DataSigning),
        ),
    ]);
    for (name, p) in configured {
        all.insert(name.clone(), p.clone());
    }
    for (name, p) in &all {
        p.check(name)?;
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(text: &str) -> Result<BTreeMap<String, Profile>, String> {
        #[derive(Deserialize)]
        struct Cfg {
            profiles: BTreeMap<String, Profile>,
        }
        let cfg: Cfg = toml::from_str(text).map_err(|e| e.to_string())?;
        profiles(&cfg.profiles).map_err(|e| e.to_string())
    }

    #[test]
    fn builtins_and_overrides() {
        let all = configured(
            r#"
            [profiles.tls-client]
            key = "rsa-2048"
            usage = "tls-client"
            validity_days = 30
            exportable = true
            organization = "Acme"
            use_counter = 1000
            "#,
        )
        .unwrap();
        assert_eq!(all.len(), 3);
        let tls = &all["tls-client"];
        assert_eq!(tls.key_spec(), Some(KeySpec::Rsa(2048)));
        assert!(tls.algorithms(KeySpec::Rsa(2048)).unwrap().contains(&0x92));
        let eap = &all["eap-tls"];
        assert!(
            !eap.algorithms(eap.key_spec().unwrap())
                .unwrap()
                .contains(&0x92),
            "not exportable"
        );
        let t = tls.template(
            "ZZKWD00001",
            KeySpec::Rsa(2048),
            &BTreeMap::new(),
            1_000_000,
            (None, None),
        );
        assert_eq!(
            t.key_usage,
            [KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment]
        );
        assert_eq!(t.not_after - 1_000_000, 30 * 86_400);
        assert_eq!(
            t.subject,
            Name::common_name("ZZKWD00001").with(NameAttr::Organization, "Acme")
        );
        assert_eq!(
            t.alt_names,
            [AltName::Uri("urn:keyward:device:ZZKWD00001".into())]
        );
    }

    #[test]
    fn key_policy_allows_only_the_listed_types() {
        let all = configured(
            r#"
            [profiles.tls-client]
            key = "ec-p256"
            keys = ["ec-p384", "rsa-3072"]
            usage = "tls-client"
            "#,
        )
        .unwrap();
        let p = &all["tls-client"];
        assert_eq!(p.key_for(None), Ok(KeySpec::Ec(Curve::Secp256r1)));
        assert_eq!(
            p.key_for(Some("ec-p384")),
            Ok(KeySpec::Ec(Curve::Secp384r1))
        );
        assert_eq!(p.key_for(Some("rsa-3072")), Ok(KeySpec::Rsa(3072)));
        for asked in ["rsa-2048", "ec-p521", "dsa-1024", ""] {
            assert!(matches!(
                p.key_for(Some(asked)),
                Err(PolicyError::KeyType { .. })
            ));
        }
        assert!(matches!(
            all["data-signing"].key_for(Some("ec-p384")),
            Err(PolicyError::KeyType { .. })
        ));
    }

    #[test]
    fn attested_keys_must_be_what_was_asked_for() {
        let p256 = keyward_crypto::EcKey::generate(Curve::Secp256r1).unwrap();
        let on = |curve: Curve, point: &[u8]| PublicKey::Ec {
            algorithm: Vec::new(),
            domain: Some(curve.domain()),
            point: point.to_vec(),
        };
        let ec = |point: &[u8]| on(Curve::Secp256r1, point);
        assert!(attested_key(&ec(p256.public_point()), KeySpec::Ec(Curve::Secp256r1)).is_ok());
        for spec in [
            KeySpec::Ec(Curve::Secp384r1),
            KeySpec::Ec(Curve::BrainpoolP256r1),
            KeySpec::Rsa(2048),
        ] {
            assert!(attested_key(&ec(p256.public_point()), spec).is_err());
        }
        // Same length, other curve; and a key without its domain parameters.
        let bp = on(Curve::BrainpoolP256r1, p256.public_point());
        assert!(attested_key(&bp, KeySpec::Ec(Curve::Secp256r1)).is_err());
        let bare = PublicKey::Ec {
            algorithm: Vec::new(),
            domain: None,
            point: p256.public_point().to_vec(),
        };
        assert!(attested_key(&bare, KeySpec::Ec(Curve::Secp256r1)).is_err());
        // A compressed or truncated point is not the uncompressed key asked for.
        let mut compressed = p256.public_point()[..33].to_vec();
        compressed[0] = 2;
        assert!(attested_key(&ec(&compressed), KeySpec::Ec(Curve::Secp256r1)).is_err());
        let rsa = |bits: usize| PublicKey::Rsa {
            algorithm: Vec::new(),
            modulus: [vec![0xC1], vec![0x55; bits / 8 - 1]].concat(),
            exponent: vec![1, 0, 1],
        };
        assert!(attested_key(&rsa(2048), KeySpec::Rsa(2048)).is_ok());
        assert!(attested_key(&rsa(1024), KeySpec::Rsa(2048)).is_err());
        assert!(attested_key(&rsa(2048), KeySpec::Rsa(3072)).is_err());
    }

    #[test]
    fn templates_use_device_id_and_checked_parameters() {
        let all = configured(
            r#"
            [profiles.site]
            key = "ec-p256"
            usage = "eap-tls"
            subject = "CN={device_id}, OU={site}, O=Acme, C=DE"
            alt_names = ["uri:urn:acme:{site}:{device_id}", "dns:{device_id}.{site}.acme.example"]
            parameters = ["site"]
            "#,
        )
        .unwrap();
        let p = &all["site"];
        let q: BTreeMap<&str, &str> = BTreeMap::from([("site", "berlin-3")]);
        let params = p.parameters(|n| q.get(n).copied()).unwrap();
        let t = p.template(
            "ZZKWD00007",
            KeySpec::Ec(Curve::Secp256r1),
            &params,
            0,
            (None, None),
        );
        assert_eq!(
            t.subject,
            Name::common_name("ZZKWD00007")
                .with(NameAttr::OrganizationalUnit, "berlin-3")
                .with(NameAttr::Organization, "Acme")
                .with(NameAttr::Country, "DE")
        );
        assert_eq!(
            t.alt_names,
            [
                AltName::Uri("urn:acme:berlin-3:ZZKWD00007".into()),
                AltName::Dns("ZZKWD00007.berlin-3.acme.example".into())
            ]
        );
        assert_eq!(
            p.parameters(|_| None),
            Err(PolicyError::MissingParameter("site".into()))
        );
        for bad in ["", "a,CN=evil", "x y", &"a".repeat(65), "ü"] {
            assert_eq!(
                p.parameters(|_| Some(bad)),
                Err(PolicyError::BadParameter("site".into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bad_configurations_name_their_problem() {
        for (text, problem) in [
            (r#"key = "dsa-1024""#, "unknown key type"),
            (
                r#"key = "ec-p256"
                keys = ["rsa-1024"]"#,
                "unknown key type",
            ),
            (
                r#"key = "ec-p256"
                subject = "CN={device_id}, L=Berlin""#,
                "subject attribute",
            ),
            (
                r#"key = "ec-p256"
                subject = "CN={device_id}, OU={site}""#,
                "neither device_id nor a declared parameter",
            ),
            (
                r#"key = "ec-p256"
                subject = "CN={device_id""#,
                "unclosed brace",
            ),
            (
                r#"key = "ec-p256"
                alt_names = ["ip:10.0.0.1"]"#,
                "uri:, dns: or email:",
            ),
        ] {
            let cfg = format!("[profiles.x]\nusage = \"tls-client\"\n{text}\n");
            let e = configured(&cfg).unwrap_err();
            assert!(e.contains(problem), "{e}");
        }
    }
}
