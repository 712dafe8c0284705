//! Certificate profiles: what key a device gets and what its certificate says. Three are built
//! in (`tls-client`, `eap-tls`, `data-signing`); the server's TOML configuration may override
//! them or add more under `[profiles.NAME]`.

use std::collections::BTreeMap;

use keyward_ca::x509::{AltName, KeyUsage, Name, NameAttr, Template, eku};
use keyward_card::KeySpec;
use keyward_crypto::Curve;
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
    /// Key type: ec-p256, ec-p384, ec-p521, ec-brainpool256, ec-brainpool384, rsa-2048,
    /// rsa-3072, rsa-4096.
    pub key: String,
    pub usage: Usage,
    #[serde(default = "default_validity")]
    pub validity_days: u32,
    /// Whether the key may be wrapped for backup (algorithm `92` allowed).
    #[serde(default)]
    pub exportable: bool,
    /// The subject's organization.
    #[serde(default)]
    pub organization: Option<String>,
    /// How many signatures the key may make (the element's use counter); none: unlimited.
    #[serde(default)]
    pub use_counter: Option<u32>,
}

fn default_validity() -> u32 {
    365
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("profile {profile}: unknown key type {key:?}")]
pub struct ProfileError {
    pub profile: String,
    pub key: String,
}

impl Profile {
    fn builtin(key: &str, usage: Usage) -> Self {
        Self {
            key: key.to_string(),
            usage,
            validity_days: default_validity(),
            exportable: false,
            organization: None,
            use_counter: None,
        }
    }

    /// The key the element generates.
    pub fn key_spec(&self) -> Option<KeySpec> {
        Some(match self.key.as_str() {
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

    /// The algorithm list (tag `91`) the key is generated with: every signing algorithm (and
    /// ECDH / RSA decryption), plus key wrapping only when the profile allows export.
    pub fn algorithms(&self) -> Option<Vec<u8>> {
        let mut list: Vec<u8> = match self.key_spec()? {
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

    /// The certificate template for `device_id`.
    pub fn template(
        &self,
        device_id: &str,
        now: i64,
        crl_url: Option<&str>,
        ocsp_url: Option<&str>,
    ) -> Template {
        let rsa = matches!(self.key_spec(), Some(KeySpec::Rsa(_)));
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
        let mut subject = Name::common_name(device_id);
        subject = subject.with(
            NameAttr::Organization,
            self.organization.as_deref().unwrap_or("Keyward"),
        );
        Template {
            subject,
            not_before: now - 300,
            not_after: now + i64::from(self.validity_days) * 86_400,
            key_usage,
            extended_key_usage,
            alt_names: vec![AltName::Uri(format!("urn:keyward:device:{device_id}"))],
            ca: None,
            crl_url: crl_url.map(str::to_string),
            ocsp_url: ocsp_url.map(str::to_string),
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
        if p.key_spec().is_none() {
            return Err(ProfileError {
                profile: name.clone(),
                key: p.key.clone(),
            });
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_and_overrides() {
        let mut cfg = BTreeMap::new();
        cfg.insert(
            "tls-client".to_string(),
            Profile {
                key: "rsa-2048".into(),
                usage: Usage::TlsClient,
                validity_days: 30,
                exportable: true,
                organization: Some("Acme".into()),
                use_counter: Some(1000),
            },
        );
        let all = profiles(&cfg).unwrap();
        assert_eq!(all.len(), 3);
        let tls = &all["tls-client"];
        assert_eq!(tls.key_spec(), Some(KeySpec::Rsa(2048)));
        assert!(tls.algorithms().unwrap().contains(&0x92));
        assert!(
            !all["eap-tls"].algorithms().unwrap().contains(&0x92),
            "not exportable"
        );
        let t = tls.template("ZZKWD00001", 1_000_000, None, None);
        assert_eq!(
            t.key_usage,
            [KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment]
        );
        assert_eq!(t.not_after - 1_000_000, 30 * 86_400);
        cfg.insert(
            "bad".into(),
            Profile::builtin("dsa-1024", Usage::DataSigning),
        );
        assert_eq!(profiles(&cfg).unwrap_err().key, "dsa-1024");
    }
}
