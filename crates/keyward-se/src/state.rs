//! Everything the element remembers across power cycles. Serialized (as JSON) only inside the
//! sealed state file; secret fields are zeroized when dropped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use keyward_crypto::Curve;

/// The persistent state of one element.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// PrK.DevAut and the identity bound to it; survives re-initialization. `None` on a blank
    /// element until the applet's personalization generates it.
    #[serde(default)]
    pub device: Option<DeviceKey>,
    /// `None` until the first INITIALIZE DEVICE.
    pub config: Option<Config>,
    /// Key objects by key id (`CCxx`); key 00 is the device key held in `device`.
    pub keys: BTreeMap<u8, KeyObject>,
    /// Elementary files by FID (EF.C_DevAut 2F02 among them).
    pub files: BTreeMap<u16, HexBytes>,
    /// Root CV certificates the element knows (MSE SET DST / PSO VERIFY CERTIFICATE start here).
    #[serde(default)]
    pub roots: Vec<HexBytes>,
    /// The GlobalPlatform card content of an element made blank (`se new --blank`) and produced
    /// through its card manager. `None` for elements created with their identity (the
    /// development path): those have no card manager and the applet is always selectable.
    #[serde(default)]
    pub card: Option<CardContent>,
}

impl State {
    /// Decodes the sealed JSON of a given format version, upgrading older versions.
    pub fn from_versioned_json(version: u32, json: &[u8]) -> Result<Self, serde_json::Error> {
        // Version 1 is the first format; later versions add their upgrade steps here.
        let _ = version;
        serde_json::from_slice(json)
    }
}

/// GlobalPlatform life-cycle states ([GPCS] §5).
pub mod life_cycle {
    pub const OP_READY: u8 = 0x01;
    pub const INITIALIZED: u8 = 0x07;
    pub const SECURED: u8 = 0x0F;
    pub const CARD_LOCKED: u8 = 0x7F;
    pub const TERMINATED: u8 = 0xFF;
    pub const APP_INSTALLED: u8 = 0x03;
    pub const APP_SELECTABLE: u8 = 0x07;
    /// Application-specific state of the SmartCard-HSM instance once its device identity is set.
    pub const APP_PERSONALIZED: u8 = 0x0F;
    /// Set on top of an application's state while it is locked.
    pub const APP_LOCKED_BIT: u8 = 0x80;
}

/// What the Issuer Security Domain keeps: the card life cycle, its SCP03 key sets, the sequence
/// counter and the registry entry of the applet instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CardContent {
    pub life_cycle: u8,
    /// Key diversification data (10 bytes), the card's serial as INITIALIZE UPDATE shows it.
    pub kdd: HexBytes,
    /// SCP03 key sets by key version number.
    pub key_sets: BTreeMap<u8, ScpKeySet>,
    /// SCP03 sequence counter (pseudo-random card challenges).
    pub counter: u32,
    /// The SmartCard-HSM instance, once installed.
    pub applet: Option<AppletEntry>,
}

/// One SCP03 key set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScpKeySet {
    pub enc: SecretBytes,
    pub mac: SecretBytes,
    pub dek: SecretBytes,
}

/// The registry entry of an installed applet instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppletEntry {
    pub life_cycle: u8,
    pub privileges: HexBytes,
}

impl State {
    /// A blank element: a card manager in OP_READY whose only key set is the Key for Secure
    /// Transport, no applet instance, no identity.
    pub fn blank(kst: ScpKeySet, kvn: u8, kdd: [u8; 10]) -> Self {
        Self {
            device: None,
            config: None,
            keys: BTreeMap::new(),
            files: BTreeMap::new(),
            roots: Vec::new(),
            card: Some(CardContent {
                life_cycle: life_cycle::OP_READY,
                kdd: HexBytes(kdd.to_vec()),
                key_sets: BTreeMap::from([(kvn, kst)]),
                counter: 0,
                applet: None,
            }),
        }
    }

    /// The device id (CHR of the device certificate); empty before personalization.
    pub fn device_chr(&self) -> &str {
        self.device.as_ref().map_or("", |d| d.chr.as_str())
    }
}

/// Bytes serialized as hex.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HexBytes(#[serde(with = "hex::serde")] pub Vec<u8>);

impl std::fmt::Debug for HexBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes", self.0.len())
    }
}

/// Secret bytes serialized as hex, zeroized on drop and never printed.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(transparent)]
pub struct SecretBytes(#[serde(with = "hex::serde")] pub Vec<u8>);

impl SecretBytes {
    pub fn new(v: Vec<u8>) -> Self {
        Self(v)
    }

    pub fn from_zeroizing(v: Zeroizing<Vec<u8>>) -> Self {
        Self(v.to_vec())
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceKey {
    pub curve: Curve,
    pub private: SecretBytes,
    /// CHR of the device certificate (device id), e.g. `KWD1A2B3C4D00001`.
    pub chr: String,
}

/// Configuration set by INITIALIZE DEVICE.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub options: u16,
    pub user_pin: Option<Pin>,
    pub so_pin: Pin,
    /// DKEK share count from tag `92` (None: no DKEK).
    pub dkek_shares: Option<u8>,
    /// DKEK share import progress.
    #[serde(default)]
    pub dkek: Option<Dkek>,
    /// Public-key authentication `(m, n)` from tag `93`, recorded for that feature.
    #[serde(default)]
    pub pka: Option<(u8, u8)>,
    /// Key domains declared by tag `97` (domain 0 is the DKEK above).
    #[serde(default)]
    pub domain_count: u8,
    /// Key domains 1.. (index `kd - 1`); `None`: not set up (`80 52 01` sets one up).
    #[serde(default)]
    pub domains: Vec<Option<Dkek>>,
    /// Public keys registered for public-key authentication (at most `m` of tag `93`).
    #[serde(default)]
    pub pka_keys: Vec<PkaKey>,
}

/// A custodian's public key (EC) registered for public-key authentication, by the CHR of its
/// authenticated request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PkaKey {
    pub chr: HexBytes,
    pub curve: Curve,
    pub point: HexBytes,
}

impl Config {
    pub const OPT_RESET_RETRY_COUNTER: u16 = 0x0001;
    pub const OPT_TRANSPORT_PIN: u16 = 0x0002;

    /// How many key domains exist (domain 0 exists whenever a DKEK is configured).
    pub fn domain_count(&self) -> u8 {
        self.domain_count.max(u8::from(self.dkek_shares.is_some()))
    }

    /// Key domain `kd` as set up: its share count and DKEK state.
    pub fn domain(&self, kd: u8) -> Option<(u8, &Dkek)> {
        if kd == 0 {
            return Some((self.dkek_shares?, self.dkek.as_ref()?));
        }
        let d = self.domains.get(usize::from(kd) - 1)?.as_ref()?;
        Some((d.total, d))
    }

    /// Sets key domain `kd` up (or, with `None`, removes it).
    pub fn set_domain(&mut self, kd: u8, dkek: Option<Dkek>) {
        if kd == 0 {
            self.dkek_shares = dkek.as_ref().map(|d| d.total);
            self.dkek = dkek;
            return;
        }
        let i = usize::from(kd) - 1;
        if self.domains.len() <= i {
            self.domains.resize(i + 1, None);
        }
        self.domains[i] = dkek;
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dkek {
    pub outstanding: u8,
    pub value: SecretBytes,
    /// Shares the DKEK is made of (domain 0 also records it as `dkek_shares`).
    #[serde(default)]
    pub total: u8,
}

impl Dkek {
    /// A domain waiting for `total` shares; with none, a random DKEK of the element's own.
    pub fn new(total: u8) -> Result<Self, keyward_crypto::CryptoError> {
        Ok(Self {
            outstanding: total,
            value: SecretBytes::new(if total == 0 {
                keyward_crypto::random(32)?.to_vec()
            } else {
                vec![0; 32]
            }),
            total,
        })
    }
}

/// A PIN: salted SHA-256 of the value, its length, and the retry counter.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pin {
    pub salt: HexBytes,
    pub hash: SecretBytes,
    pub length: u8,
    pub max_retries: u8,
    pub retries_left: u8,
    /// Transport-PIN state: must be changed before it can be used.
    #[serde(default)]
    pub transport: bool,
}

/// A key object and its usage controls.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyObject {
    pub material: KeyMaterial,
    /// Remaining uses (tag `90`); `None` = unlimited.
    pub use_counter: Option<u32>,
    /// Allowed algorithm ids (tag `91`); `None` = every algorithm valid for the key type.
    pub algorithms: Option<HexBytes>,
    /// Key domain (tag `92`).
    pub domain: Option<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum KeyMaterial {
    Rsa {
        /// Modulus and public exponent (public).
        n: HexBytes,
        e: HexBytes,
        d: SecretBytes,
        p: SecretBytes,
        q: SecretBytes,
    },
    Ec {
        curve: Curve,
        private: SecretBytes,
        /// Uncompressed public point.
        public: HexBytes,
    },
    Aes {
        key: SecretBytes,
    },
}

impl KeyMaterial {
    /// The usable key.
    pub fn load(&self) -> Result<keyward_crypto::PrivateKey, keyward_crypto::CryptoError> {
        use keyward_crypto::{CryptoError, EcKey, PrivateKey, RsaKey};
        Ok(match self {
            Self::Rsa { n, e, d, p, q } => {
                PrivateKey::Rsa(Box::new(RsaKey::from_parts(&n.0, &e.0, &d.0, &p.0, &q.0)?))
            }
            Self::Ec { curve, private, .. } => {
                PrivateKey::Ec(EcKey::from_private(*curve, &private.0)?)
            }
            Self::Aes { key } if matches!(key.0.len(), 16 | 24 | 32) => {
                PrivateKey::Aes(Zeroizing::new(key.0.clone()))
            }
            Self::Aes { .. } => return Err(CryptoError::InvalidKey),
        })
    }
}
