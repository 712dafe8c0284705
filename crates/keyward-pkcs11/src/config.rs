//! The module's configuration file (`KEYWARD_PKCS11_CONF`, else `~/.config/keyward/pkcs11.toml`,
//! else `/etc/keyward/pkcs11.toml`). Without one, every PC/SC reader is a slot.
//!
//! ```toml
//! [[slot]]
//! type = "pcsc"          # every reader whose name starts with `reader` ("" = all readers)
//! reader = ""
//!
//! [[slot]]
//! type = "t1"            # an element behind a T=1 link (a virtual bus socket)
//! path = "/run/keyward/se.sock"
//! variant = "nxp-i2c"    # iso | nxp-i2c | gp
//!
//! [[slot]]
//! type = "embedded"      # a virtual element in this process (a software token)
//! state = "/var/lib/keyward/token.se"
//! label = "device"       # optional slot description
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Parse(PathBuf, Box<toml::de::Error>),
    #[error("{0}: unknown T=1 variant {1:?} (iso, nxp-i2c or gp)")]
    Variant(PathBuf, String),
}

/// One `[[slot]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SlotConfig {
    Pcsc {
        #[serde(default)]
        reader: String,
    },
    T1 {
        path: String,
        #[serde(default = "default_variant")]
        variant: String,
        label: Option<String>,
    },
    Embedded {
        state: PathBuf,
        label: Option<String>,
    },
}

fn default_variant() -> String {
    "iso".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default, rename = "slot")]
    pub slots: Vec<SlotConfig>,
}

impl Default for Config {
    /// No file: every PC/SC reader.
    fn default() -> Self {
        Self {
            slots: vec![SlotConfig::Pcsc {
                reader: String::new(),
            }],
        }
    }
}

impl Config {
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let cfg: Self = toml::from_str(text)
            .map_err(|e| ConfigError::Parse(origin.to_path_buf(), Box::new(e)))?;
        for s in &cfg.slots {
            if let SlotConfig::T1 { variant, .. } = s
                && keyward_card::parse_variant(variant).is_none()
            {
                return Err(ConfigError::Variant(origin.to_path_buf(), variant.clone()));
            }
        }
        Ok(cfg)
    }

    /// The configuration file in effect, in the documented search order.
    pub fn locate() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("KEYWARD_PKCS11_CONF") {
            return Some(PathBuf::from(p));
        }
        let home = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        if let Some(p) = home.map(|d| d.join("keyward/pkcs11.toml"))
            && p.exists()
        {
            return Some(p);
        }
        let etc = PathBuf::from("/etc/keyward/pkcs11.toml");
        etc.exists().then_some(etc)
    }

    /// Loads the configuration in effect (the default when there is no file).
    pub fn load() -> Result<Self, ConfigError> {
        match Self::locate() {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| ConfigError::Read(path.clone(), e))?;
                Self::parse(&text, &path)
            }
            None => Ok(Self::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_every_slot_kind() {
        let cfg = Config::parse(
            "[[slot]]\ntype = \"pcsc\"\n\n[[slot]]\ntype = \"t1\"\npath = \"/tmp/s\"\nvariant = \"nxp-i2c\"\n\n[[slot]]\ntype = \"embedded\"\nstate = \"/tmp/t.se\"\nlabel = \"dev\"\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(cfg.slots.len(), 3);
        assert_eq!(
            cfg.slots[0],
            SlotConfig::Pcsc {
                reader: String::new()
            }
        );
        assert!(matches!(&cfg.slots[2], SlotConfig::Embedded { label: Some(l), .. } if l == "dev"));
    }

    #[test]
    fn rejects_unknown_fields_and_variants() {
        assert!(Config::parse("[[slot]]\ntype = \"usb\"\n", Path::new("x")).is_err());
        assert!(
            Config::parse(
                "[[slot]]\ntype = \"t1\"\npath = \"p\"\nvariant = \"spi\"\n",
                Path::new("x")
            )
            .is_err()
        );
        assert!(
            Config::parse("[[slot]]\ntype = \"pcsc\"\nreadr = \"\"\n", Path::new("x")).is_err()
        );
    }
}
