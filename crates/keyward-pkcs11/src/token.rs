//! One token: the connection to its element, the login state, and the objects found on it.
//! Everything here runs under the token's lock, so APDU sequences never interleave.

use std::collections::HashMap;

use cryptoki_sys::*;
use keyward_card::pkcs15::{
    CertificateDescription, DataObjectDescription, KeyKind, PrivateKeyDescription,
};
use keyward_card::{CardChannel, CardError, Hsm, HsmError, PinStatus};
use zeroize::Zeroizing;

use crate::error::{Result, Rv};
use crate::object::{self, CardKey, CardKeyKind, Object, Origin, PublicKey};

pub type Channel = Box<dyn CardChannel + Send>;

/// How a slot reaches its element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// A PC/SC reader, by its full name.
    Pcsc(String),
    /// `t1:unix:PATH?variant=…`.
    T1 { path: String, variant: String },
    /// A state file opened in this process.
    Embedded(std::path::PathBuf),
}

impl Link {
    fn open(&self) -> std::result::Result<Channel, CardError> {
        match self {
            Link::Pcsc(reader) => Ok(Box::new(keyward_card::PcscChannel::connect(reader)?)),
            Link::T1 { path, variant } => {
                keyward_card::open_transport(&format!("t1:unix:{path}?variant={variant}"))
            }
            Link::Embedded(path) => keyward_card::open_transport(&format!("se:{}", path.display())),
        }
    }
}

// File-id prefixes of the SmartCard-HSM object model.
pub const PRKD: u8 = 0xC4;
pub const CD: u8 = 0xC8;
pub const DCOD: u8 = 0xC9;
pub const CA_CERT: u8 = 0xCA;
pub const KEY: u8 = 0xCC;
pub const PRIVATE_DATA: u8 = 0xCD;
pub const EE_CERT: u8 = 0xCE;
pub const PUBLIC_DATA: u8 = 0xCF;
const EF_C_DEVAUT: u16 = 0x2F02;

pub fn fid(prefix: u8, id: u8) -> u16 {
    u16::from_be_bytes([prefix, id])
}

pub struct Token {
    pub link: Link,
    hsm: Option<Hsm<Channel>>,
    /// Who is logged in (the state of the whole application, not of one session).
    pub login: Option<CK_USER_TYPE>,
    /// The user PIN, kept to log in again when the card was reset underneath us (another
    /// application on a shared reader); zeroized on logout.
    user_pin: Option<Zeroizing<Vec<u8>>>,
    so_pin: Option<Zeroizing<[u8; 8]>>,
    cache: Option<Vec<Object>>,
    cache_time: Option<std::time::Instant>,
    /// Session objects with the session that owns them.
    pub session_objects: Vec<(CK_SESSION_HANDLE, Object)>,
    handles: HashMap<Origin, CK_OBJECT_HANDLE>,
    origins: HashMap<CK_OBJECT_HANDLE, Origin>,
    serial: Option<String>,
}

impl Token {
    pub fn new(link: Link) -> Self {
        Self {
            link,
            hsm: None,
            login: None,
            user_pin: None,
            so_pin: None,
            cache: None,
            cache_time: None,
            session_objects: Vec::new(),
            handles: HashMap::new(),
            origins: HashMap::new(),
            serial: None,
        }
    }

    fn connect(&mut self) -> Result<&mut Hsm<Channel>> {
        if self.hsm.is_none() {
            let ch = self.link.open().map_err(|e| Rv::from(HsmError::from(e)))?;
            let mut hsm = Hsm::new(ch);
            hsm.select()?;
            if let Some(pin) = &self.user_pin {
                hsm.verify_pin(pin)?;
            }
            self.hsm = Some(hsm);
        }
        self.hsm.as_mut().ok_or(Rv(CKR_DEVICE_ERROR))
    }

    /// Drops the connection (after a transport failure, or when the token went away).
    pub fn disconnect(&mut self) {
        self.hsm = None;
        self.cache = None;
        self.serial = None;
    }

    /// Whether the element answers (connecting if needed).
    pub fn present(&mut self) -> bool {
        self.connect().is_ok()
    }

    /// Runs `op` on the card. A card reset by someone else (lost login, reset card) is
    /// recovered once by reconnecting and logging in again; a broken link drops the connection.
    pub fn run<T>(
        &mut self,
        mut op: impl FnMut(&mut Hsm<Channel>) -> std::result::Result<T, HsmError>,
    ) -> Result<T> {
        let first = op(self.connect()?);
        let retry = match &first {
            Err(HsmError::NotLoggedIn) => self.user_pin.is_some(),
            Err(HsmError::Card(CardError::Pcsc(pcsc::Error::ResetCard))) => true,
            Err(HsmError::Card(_)) => {
                self.disconnect();
                false
            }
            _ => false,
        };
        if !retry {
            return first.map_err(Rv::from);
        }
        self.hsm = None;
        let r = op(self.connect()?);
        if matches!(r, Err(HsmError::Card(_))) {
            self.disconnect();
        }
        r.map_err(Rv::from)
    }

    pub fn invalidate(&mut self) {
        self.cache = None;
    }

    /// Forgets objects scanned longer ago than `age` on elements other applications can also
    /// change (PC/SC, T=1); an embedded element belongs to this process alone.
    pub fn expire(&mut self, age: std::time::Duration) {
        if !matches!(self.link, Link::Embedded(_))
            && self.cache_time.is_none_or(|t| t.elapsed() > age)
        {
            self.cache = None;
        }
    }

    // ---- login ---------------------------------------------------------------------------

    pub fn login(&mut self, user: CK_USER_TYPE, pin: &[u8]) -> Result<()> {
        match user {
            CKU_USER => {
                let pin = Zeroizing::new(pin.to_vec());
                self.run(|h| h.verify_pin(&pin))?;
                self.user_pin = Some(pin);
            }
            CKU_SO => {
                let so = parse_so_pin(pin)?;
                self.run(|h| {
                    let r = h.channel().transmit(
                        &keyward_apdu::Command::new(0, 0x20, 0, 0x88).with_data(so.to_vec()),
                    )?;
                    match r.sw {
                        keyward_apdu::StatusWord::SUCCESS => Ok(()),
                        keyward_apdu::StatusWord::AUTH_METHOD_BLOCKED => Err(HsmError::PinBlocked),
                        sw => Err(match sw.retries_left() {
                            Some(n) => HsmError::PinIncorrect(n),
                            None => HsmError::Status { op: "VERIFY", sw },
                        }),
                    }
                })?;
                self.so_pin = Some(so);
            }
            _ => return Err(Rv(CKR_USER_TYPE_INVALID)),
        }
        self.login = Some(user);
        self.cache = None;
        Ok(())
    }

    pub fn logout(&mut self) -> Result<()> {
        self.login = None;
        self.user_pin = None;
        self.so_pin = None;
        self.cache = None;
        // Re-selecting the applet drops the card's authentication state.
        if let Some(h) = self.hsm.as_mut()
            && h.select().is_err()
        {
            self.disconnect();
        }
        Ok(())
    }

    pub fn so_pin(&self) -> Result<[u8; 8]> {
        match (&self.so_pin, self.login) {
            (Some(p), Some(CKU_SO)) => Ok(**p),
            _ => Err(Rv(CKR_USER_NOT_LOGGED_IN)),
        }
    }

    /// C_InitPIN: RESET RETRY COUNTER with the SO-PIN and the new user PIN.
    pub fn init_pin(&mut self, pin: &[u8]) -> Result<()> {
        let so = self.so_pin()?;
        check_user_pin(pin)?;
        self.run(|h| h.unblock_pin(&so, Some(pin)))
    }

    /// C_SetPIN for the logged-in user (or the SO, whose PIN is 16 hex digits).
    pub fn set_pin(&mut self, old: &[u8], new: &[u8]) -> Result<()> {
        if self.login == Some(CKU_SO) {
            let (old, new) = (parse_so_pin(old)?, parse_so_pin(new)?);
            self.run(|h| {
                let r = h.channel().transmit(
                    &keyward_apdu::Command::new(0, 0x24, 0, 0x88)
                        .with_data([&old[..], &new[..]].concat()),
                )?;
                if r.sw == keyward_apdu::StatusWord::SUCCESS {
                    Ok(())
                } else {
                    Err(r.sw.retries_left().map_or(
                        HsmError::Status {
                            op: "CHANGE REFERENCE DATA",
                            sw: r.sw,
                        },
                        HsmError::PinIncorrect,
                    ))
                }
            })?;
            self.so_pin = Some(new);
            return Ok(());
        }
        check_user_pin(new)?;
        self.run(|h| h.change_pin(old, new))?;
        if self.user_pin.is_some() {
            self.user_pin = Some(Zeroizing::new(new.to_vec()));
        }
        Ok(())
    }

    /// C_InitToken: re-initializes the element with its SO-PIN, wiping every key and object.
    /// The user PIN is set to a random value until the SO sets one with C_InitPIN.
    pub fn init_token(&mut self, so_pin: &[u8]) -> Result<()> {
        let so = parse_so_pin(so_pin)?;
        let random = keyward_crypto::random(8).map_err(|_| Rv(CKR_FUNCTION_FAILED))?;
        let pin: Zeroizing<Vec<u8>> = Zeroizing::new(
            random
                .iter()
                .flat_map(|b| [b'0' + (b >> 4) % 10, b'0' + (b & 15) % 10])
                .collect(),
        );
        self.run(|h| {
            h.initialize(&keyward_card::InitConfig {
                options: 0x0001,
                pin: &pin,
                so_pin: *so,
                retries: 3,
                dkek_shares: None,
            })
        })
        // A re-initialization with the wrong SO-PIN is refused as "security status not
        // satisfied".
        .map_err(|e| match e {
            Rv(CKR_USER_NOT_LOGGED_IN) => Rv(CKR_PIN_INCORRECT),
            e => e,
        })?;
        self.login = None;
        self.user_pin = None;
        self.so_pin = None;
        self.hsm = None;
        self.cache = None;
        self.handles.clear();
        self.origins.clear();
        Ok(())
    }

    pub fn pin_flags(&mut self) -> CK_FLAGS {
        let mut flags = 0;
        match self.run(|h| h.pin_status()) {
            Ok(PinStatus::TriesLeft(1)) => flags |= CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_COUNT_LOW,
            Ok(PinStatus::TriesLeft(2)) => flags |= CKF_USER_PIN_COUNT_LOW,
            Ok(PinStatus::TriesLeft(0) | PinStatus::Blocked) => flags |= CKF_USER_PIN_LOCKED,
            Ok(PinStatus::TransportPin) => flags |= CKF_USER_PIN_TO_BE_CHANGED,
            Ok(PinStatus::NotInitialized) => return 0,
            _ => {}
        }
        flags |= CKF_USER_PIN_INITIALIZED | CKF_TOKEN_INITIALIZED;
        match self.run(|h| h.so_pin_tries()) {
            Ok(Some(0)) => flags |= CKF_SO_PIN_LOCKED,
            Ok(Some(1)) => flags |= CKF_SO_PIN_FINAL_TRY | CKF_SO_PIN_COUNT_LOW,
            Ok(Some(n)) if n < 15 => flags |= CKF_SO_PIN_COUNT_LOW,
            _ => {}
        }
        flags
    }

    /// The token serial: the device certificate's holder reference without its 5-digit
    /// sequence number, as OpenSC shows it.
    pub fn serial(&mut self) -> String {
        if self.serial.is_none() {
            let chr = self
                .run(|h| h.read_file(EF_C_DEVAUT))
                .ok()
                .and_then(|raw| {
                    keyward_cvc::Certificate::parse_prefix(&raw)
                        .ok()
                        .map(|c| c.0)
                })
                .map(|c| c.body.chr);
            self.serial = Some(match chr {
                Some(chr) => {
                    let s = String::from_utf8_lossy(&chr).into_owned();
                    s.get(..s.len().saturating_sub(5)).unwrap_or(&s).to_string()
                }
                None => "0000000000000000".into(),
            });
        }
        self.serial.clone().unwrap_or_default()
    }

    // ---- objects -------------------------------------------------------------------------

    pub fn handle_of(&mut self, origin: Origin) -> CK_OBJECT_HANDLE {
        if let Some(h) = self.handles.get(&origin) {
            return *h;
        }
        let h = crate::module::next_handle();
        self.handles.insert(origin, h);
        self.origins.insert(h, origin);
        h
    }

    /// Every object visible in the current login state, with its handle.
    pub fn objects(&mut self) -> Result<Vec<(CK_OBJECT_HANDLE, Object)>> {
        let logged_in = self.login == Some(CKU_USER);
        let mut out: Vec<(CK_OBJECT_HANDLE, Object)> = Vec::new();
        let cached = self.objects_all()?.to_vec();
        for o in cached {
            if o.is_private() && !logged_in {
                continue;
            }
            out.push((self.handle_of(o.origin), o));
        }
        for (_, o) in &self.session_objects {
            if o.is_private() && !logged_in {
                continue;
            }
            if let Origin::Session(h) = o.origin {
                out.push((h, o.clone()));
            }
        }
        Ok(out)
    }

    /// One visible object by handle.
    pub fn object(&mut self, handle: CK_OBJECT_HANDLE) -> Result<Object> {
        let visible = |o: &Object, logged_in: bool| !o.is_private() || logged_in;
        let logged_in = self.login == Some(CKU_USER);
        if let Some((_, o)) = self
            .session_objects
            .iter()
            .find(|(_, o)| o.origin == Origin::Session(handle))
        {
            return visible(o, logged_in)
                .then(|| o.clone())
                .ok_or(Rv(CKR_OBJECT_HANDLE_INVALID));
        }
        let origin = *self
            .origins
            .get(&handle)
            .ok_or(Rv(CKR_OBJECT_HANDLE_INVALID))?;
        self.objects_all()?
            .iter()
            .find(|o| o.origin == origin && visible(o, logged_in))
            .cloned()
            .ok_or(Rv(CKR_OBJECT_HANDLE_INVALID))
    }

    fn scan(&mut self) -> Result<Vec<Object>> {
        let fids = self.run(|h| h.enumerate())?;
        let logged_in = self.login == Some(CKU_USER);
        let mut out = Vec::new();
        for f in &fids {
            let [p, id] = f.to_be_bytes();
            match p {
                KEY if id != 0 => out.extend(self.scan_key(id)?),
                CD => {
                    let Some(cd) = self.read_optional(fid(CD, id))? else {
                        continue;
                    };
                    let Ok(cd) = CertificateDescription::parse(&cd) else {
                        continue;
                    };
                    if let Some(der) = self.read_optional(cd.fid)? {
                        out.push(object::certificate(
                            Origin::CaCert(id),
                            &cd.label,
                            &cd.id,
                            &der,
                        ));
                    }
                }
                DCOD => {
                    let Some(d) = self.read_optional(fid(DCOD, id))? else {
                        continue;
                    };
                    let Ok(d) = DataObjectDescription::parse(&d) else {
                        continue;
                    };
                    if d.private && !logged_in {
                        continue;
                    }
                    let value = self.read_optional(d.fid)?.unwrap_or_default();
                    out.push(object::data(
                        Origin::Data(id),
                        &d.label,
                        &d.application,
                        d.app_oid.as_deref().map(oid_der).as_deref(),
                        d.private,
                        &value,
                    ));
                }
                _ => {}
            }
        }
        if let Some(chain) = self.read_optional(EF_C_DEVAUT)? {
            let mut rest = chain.as_slice();
            for (origin, label) in [
                (Origin::DeviceCert, "Device certificate"),
                (Origin::IssuerCert, "Device issuer CA certificate"),
            ] {
                let Ok((cert, tail)) = keyward_cvc::Certificate::parse_prefix(rest) else {
                    break;
                };
                rest = tail;
                out.push(object::certificate(
                    origin,
                    label,
                    &cert.body.chr,
                    &cert.raw,
                ));
            }
        }
        Ok(out)
    }

    fn read_optional(&mut self, fid: u16) -> Result<Option<Vec<u8>>> {
        match self.run(|h| h.read_file(fid)) {
            Ok(d) => Ok(Some(d)),
            Err(Rv(CKR_OBJECT_HANDLE_INVALID | CKR_USER_NOT_LOGGED_IN)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn scan_key(&mut self, kid: u8) -> Result<Vec<Object>> {
        let desc = self
            .read_optional(fid(PRKD, kid))?
            .and_then(|d| PrivateKeyDescription::parse(&d).ok());
        let ee = self.read_optional(fid(EE_CERT, kid))?;
        let info = self.run(|h| h.key_info(kid)).unwrap_or_default();
        let attestation = ee
            .as_deref()
            .filter(|d| d.first() == Some(&0x67))
            .and_then(|d| keyward_cvc::AuthenticatedRequest::parse(d).ok());
        let cert = ee
            .as_deref()
            .filter(|d| d.first() == Some(&0x30))
            .and_then(crate::x509::parse);
        let public = match (&attestation, &cert) {
            (Some(ar), _) => public_of_cvc(&ar.request.body.public_key),
            (None, Some(c)) => c.public_key.clone(),
            _ => None,
        };
        let (kind, bits) = match desc.as_ref().map(|d| d.kind) {
            Some(KeyKind::Rsa { modulus_bits }) => (CardKeyKind::Rsa, modulus_bits),
            Some(KeyKind::Ec { field_bits }) => (CardKeyKind::Ec, field_bits),
            Some(KeyKind::Aes { key_bits }) => (CardKeyKind::Aes, key_bits),
            None => match &public {
                Some(PublicKey::Rsa { n, .. }) => {
                    (CardKeyKind::Rsa, object::modulus_bits(n) as u32)
                }
                Some(PublicKey::Ec { curve, .. }) => (CardKeyKind::Ec, curve.bits() as u32),
                None => return Ok(Vec::new()),
            },
        };
        let curve = match &public {
            Some(PublicKey::Ec { curve, .. }) => Some(*curve),
            _ => None,
        };
        let label = desc.as_ref().map(|d| d.label.clone()).unwrap_or_default();
        let id = desc.as_ref().map_or_else(|| vec![kid], |d| d.id.clone());
        let key = CardKey {
            kid,
            kind,
            bits: CK_ULONG::from(bits),
            label: &label,
            id: &id,
            public,
            curve,
            local: attestation.is_some() || kind == CardKeyKind::Aes,
            extractable: info.allows(keyward_card::ALG_WRAP),
            algorithms: info.algorithms.clone(),
            attestation: ee.as_deref().filter(|_| attestation.is_some()),
            subject: cert.as_ref().map(|c| c.subject.clone()).unwrap_or_default(),
        };
        let mut out = vec![key.private_object()];
        out.extend(key.public_object());
        if let Some(der) = ee.as_deref().filter(|_| cert.is_some()) {
            out.push(object::certificate(Origin::EeCert(kid), &label, &id, der));
        }
        Ok(out)
    }

    /// The key id of the key whose CKA_ID is `id`.
    pub fn kid_with_id(&mut self, id: &[u8]) -> Result<Option<u8>> {
        Ok(self.objects_all()?.iter().find_map(|o| match o.origin {
            Origin::PrivateKey(kid) if o.attrs.get(&CKA_ID).is_some_and(|v| v == id) => Some(kid),
            _ => None,
        }))
    }

    /// All token objects regardless of login state (for bookkeeping).
    fn objects_all(&mut self) -> Result<&[Object]> {
        if self.cache.is_none() {
            let scanned = self.scan()?;
            self.cache = Some(scanned);
            self.cache_time = Some(std::time::Instant::now());
        }
        Ok(self.cache.as_deref().unwrap_or_default())
    }

    /// The lowest low byte free under both `a` and `b` prefixes.
    pub fn free_id(&mut self, a: u8, b: u8) -> Result<u8> {
        let fids = self.run(|h| h.enumerate())?;
        (1..=u8::MAX)
            .find(|id| !fids.contains(&fid(a, *id)) && !fids.contains(&fid(b, *id)))
            .ok_or(Rv(CKR_DEVICE_MEMORY))
    }

    /// Writes a whole EF. UPDATE BINARY does not shrink a file, so an existing one is deleted
    /// first.
    pub fn write(&mut self, fid: u16, data: &[u8]) -> Result<()> {
        self.delete(fid)?;
        self.run(|h| h.write_file(fid, data))
    }

    pub fn delete(&mut self, fid: u16) -> Result<()> {
        self.cache = None;
        match self.run(|h| h.delete_file(fid)) {
            Err(Rv(CKR_OBJECT_HANDLE_INVALID)) => Ok(()),
            r => r,
        }
    }

    pub fn read(&mut self, fid: u16) -> Result<Vec<u8>> {
        self.run(|h| h.read_file(fid))
    }
}

/// The public key of a CV certificate or request.
pub fn public_of_cvc(key: &keyward_cvc::PublicKey) -> Option<PublicKey> {
    match key {
        keyward_cvc::PublicKey::Rsa {
            modulus, exponent, ..
        } => Some(PublicKey::Rsa {
            n: modulus.clone(),
            e: exponent.clone(),
        }),
        keyward_cvc::PublicKey::Ec { domain, point, .. } => Some(PublicKey::Ec {
            curve: keyward_crypto::Curve::from_domain(domain.as_ref()?)?,
            point: point.clone(),
        }),
    }
}

fn oid_der(value: &[u8]) -> Vec<u8> {
    keyward_apdu::tlv::encode(0x06, value).unwrap_or_default()
}

/// The SO-PIN: 16 hex digits (as OpenSC and sc-hsm-tool take it) or its 8 raw bytes.
pub fn parse_so_pin(pin: &[u8]) -> Result<Zeroizing<[u8; 8]>> {
    let mut out = Zeroizing::new([0u8; 8]);
    match pin.len() {
        8 => out.copy_from_slice(pin),
        16 => {
            for (i, pair) in pin.chunks_exact(2).enumerate() {
                let text = std::str::from_utf8(pair).map_err(|_| Rv(CKR_PIN_INVALID))?;
                out[i] = u8::from_str_radix(text, 16).map_err(|_| Rv(CKR_PIN_INVALID))?;
            }
        }
        _ => return Err(Rv(CKR_PIN_LEN_RANGE)),
    }
    Ok(out)
}

/// User PINs are 6..16 characters on the SmartCard-HSM.
pub fn check_user_pin(pin: &[u8]) -> Result<()> {
    if (6..=16).contains(&pin.len()) {
        Ok(())
    } else {
        Err(Rv(CKR_PIN_LEN_RANGE))
    }
}
