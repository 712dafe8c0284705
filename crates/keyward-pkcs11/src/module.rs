//! The module's state and every PKCS#11 function in safe Rust: slots, sessions, objects and
//! operations. `ffi` only moves arguments between C memory and these functions.
//!
//! Locking: the slot list and the session table are held only briefly; an operation locks its
//! session, then its token. A token's lock is held across a whole APDU sequence, so sequences
//! on one element never interleave, and tokens never wait for each other.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use cryptoki_sys::*;
use keyward_card::pkcs15::{CertificateDescription, DataObjectDescription};
use keyward_card::{KeyOptions, KeySpec};
use keyward_crypto::Curve;
use zeroize::Zeroizing;

use crate::attr::Template;
use crate::config::{Config, SlotConfig};
use crate::error::{Result, Rv};
use crate::mechanism::{self, Mechanism};
use crate::object::{self, Material, Object, Origin};
use crate::ops;
use crate::session::{DigestOp, MAX_INPUT, Operation, Session};
use crate::token::{self, Link, Token, fid};

static HANDLES: AtomicU64 = AtomicU64::new(1);

/// A fresh object or session handle (never 0 = CK_INVALID_HANDLE, never reused).
pub fn next_handle() -> CK_ULONG {
    HANDLES.fetch_add(1, Ordering::Relaxed) as CK_ULONG
}

pub struct Slot {
    pub id: CK_SLOT_ID,
    pub description: String,
    /// The PC/SC reader, for presence checks and slot events.
    pub reader: Option<String>,
    pub token: Mutex<Token>,
    /// Presence last reported by C_WaitForSlotEvent.
    pub reported_present: AtomicBool,
}

pub struct Module {
    slots: RwLock<Vec<Arc<Slot>>>,
    /// Reader-name prefixes that produce PC/SC slots.
    pcsc_prefixes: Vec<String>,
    /// Open sessions with their slot and kind, readable without locking the session itself (a
    /// session may be busy on another token for a long time).
    sessions: Mutex<HashMap<CK_SESSION_HANDLE, SessionEntry>>,
    pub finalized: AtomicBool,
}

#[derive(Clone)]
struct SessionEntry {
    slot: CK_SLOT_ID,
    rw: bool,
    state: Arc<Mutex<Session>>,
}

static MODULE: RwLock<Option<Arc<Module>>> = RwLock::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn initialize() -> Result<()> {
    let mut g = MODULE.write().map_err(|_| Rv(CKR_GENERAL_ERROR))?;
    if g.is_some() {
        return Err(Rv(CKR_CRYPTOKI_ALREADY_INITIALIZED));
    }
    let config = Config::load().map_err(|_| Rv(CKR_GENERAL_ERROR))?;
    let module = Module::new(&config);
    module.refresh_readers();
    *g = Some(Arc::new(module));
    Ok(())
}

pub fn finalize() -> Result<()> {
    let mut g = MODULE.write().map_err(|_| Rv(CKR_GENERAL_ERROR))?;
    let m = g.take().ok_or(Rv(CKR_CRYPTOKI_NOT_INITIALIZED))?;
    m.finalized.store(true, Ordering::SeqCst);
    Ok(())
}

pub fn get() -> Result<Arc<Module>> {
    MODULE
        .read()
        .map_err(|_| Rv(CKR_GENERAL_ERROR))?
        .clone()
        .ok_or(Rv(CKR_CRYPTOKI_NOT_INITIALIZED))
}

/// Slot information for C_GetSlotInfo.
pub struct SlotInfo {
    pub description: String,
    pub flags: CK_FLAGS,
}

/// Token information for C_GetTokenInfo.
pub struct TokenInfo {
    pub label: String,
    pub serial: String,
    pub model: String,
    pub flags: CK_FLAGS,
    pub sessions: CK_ULONG,
    pub rw_sessions: CK_ULONG,
}

/// What an output-producing call hands back.
pub enum Output {
    /// The caller asked for the length only; the operation goes on.
    Length(usize),
    /// The caller's buffer was too small for this many bytes; the operation goes on.
    TooSmall(usize),
    /// The result; the operation has ended.
    Done(Zeroizing<Vec<u8>>),
}

/// Runs the final step of an operation with the output-buffer conventions: a length query
/// answers `bound` without touching the card; a short buffer keeps the computed result for the
/// next call; any other error ends the operation.
fn finish(
    slot: &mut Option<Operation>,
    cap: Option<usize>,
    bound: impl FnOnce(&Operation) -> usize,
    compute: impl FnOnce(&Operation) -> Result<Zeroizing<Vec<u8>>>,
) -> Result<Output> {
    let op = slot.as_mut().ok_or(Rv(CKR_OPERATION_NOT_INITIALIZED))?;
    let Some(cap) = cap else {
        return Ok(Output::Length(match &op.result {
            Some(r) => r.len(),
            None => bound(op),
        }));
    };
    let result = match op.result.take() {
        Some(r) => r,
        None => match compute(op) {
            Ok(r) => r,
            Err(e) => {
                *slot = None;
                return Err(e);
            }
        },
    };
    if result.len() > cap {
        let n = result.len();
        op.result = Some(result);
        return Ok(Output::TooSmall(n));
    }
    *slot = None;
    Ok(Output::Done(result))
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Sign,
    Verify,
    Encrypt,
    Decrypt,
}

impl OpKind {
    fn slot(self, s: &mut Session) -> &mut Option<Operation> {
        match self {
            OpKind::Sign => &mut s.sign,
            OpKind::Verify => &mut s.verify,
            OpKind::Encrypt => &mut s.encrypt,
            OpKind::Decrypt => &mut s.decrypt,
        }
    }

    fn usage(self) -> (CK_FLAGS, CK_ATTRIBUTE_TYPE) {
        match self {
            OpKind::Sign => (CKF_SIGN, CKA_SIGN),
            OpKind::Verify => (CKF_VERIFY, CKA_VERIFY),
            OpKind::Encrypt => (CKF_ENCRYPT, CKA_ENCRYPT),
            OpKind::Decrypt => (CKF_DECRYPT, CKA_DECRYPT),
        }
    }
}

impl Module {
    fn new(config: &Config) -> Self {
        let mut slots = Vec::new();
        let mut pcsc_prefixes = Vec::new();
        for s in &config.slots {
            let (description, link) = match s {
                SlotConfig::Pcsc { reader } => {
                    pcsc_prefixes.push(reader.clone());
                    continue;
                }
                SlotConfig::T1 {
                    path,
                    variant,
                    label,
                } => (
                    label
                        .clone()
                        .unwrap_or_else(|| format!("Keyward T=1 {path}")),
                    Link::T1 {
                        path: path.clone(),
                        variant: variant.clone(),
                    },
                ),
                SlotConfig::Embedded { state, label } => (
                    label
                        .clone()
                        .unwrap_or_else(|| format!("Keyward embedded {}", state.display())),
                    Link::Embedded(state.clone()),
                ),
            };
            let id = slots.len() as CK_SLOT_ID;
            slots.push(Arc::new(Slot {
                id,
                description,
                reader: None,
                token: Mutex::new(Token::new(link)),
                reported_present: AtomicBool::new(true),
            }));
        }
        Self {
            slots: RwLock::new(slots),
            pcsc_prefixes,
            sessions: Mutex::new(HashMap::new()),
            finalized: AtomicBool::new(false),
        }
    }

    /// Adds a slot for every PC/SC reader not seen before (slot ids are never reused).
    pub fn refresh_readers(&self) {
        if self.pcsc_prefixes.is_empty() {
            return;
        }
        let Ok(ctx) = pcsc::Context::establish(pcsc::Scope::User) else {
            return;
        };
        let Ok(readers) = ctx.list_readers_owned() else {
            return;
        };
        let Ok(mut slots) = self.slots.write() else {
            return;
        };
        for r in readers {
            let name = r.to_string_lossy().into_owned();
            if !self
                .pcsc_prefixes
                .iter()
                .any(|p| name.starts_with(p.as_str()))
                || slots
                    .iter()
                    .any(|s| s.reader.as_deref() == Some(name.as_str()))
            {
                continue;
            }
            let present = reader_present(&ctx, &name);
            let id = slots.len() as CK_SLOT_ID;
            slots.push(Arc::new(Slot {
                id,
                description: name.clone(),
                reader: Some(name.clone()),
                token: Mutex::new(Token::new(Link::Pcsc(name))),
                reported_present: AtomicBool::new(present),
            }));
        }
    }

    pub fn slot(&self, id: CK_SLOT_ID) -> Result<Arc<Slot>> {
        self.slots
            .read()
            .map_err(|_| Rv(CKR_GENERAL_ERROR))?
            .iter()
            .find(|s| s.id == id)
            .cloned()
            .ok_or(Rv(CKR_SLOT_ID_INVALID))
    }

    fn all_slots(&self) -> Vec<Arc<Slot>> {
        self.slots.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// Whether the slot holds a token right now.
    fn present(&self, slot: &Slot) -> bool {
        match &slot.reader {
            Some(name) => {
                let present = pcsc::Context::establish(pcsc::Scope::User)
                    .is_ok_and(|ctx| reader_present(&ctx, name));
                if !present {
                    lock(&slot.token).disconnect();
                }
                present
            }
            None => {
                let present = lock(&slot.token).present();
                self.release_if_idle(slot);
                present
            }
        }
    }

    /// Without sessions the module holds no link to the element: another process (another
    /// application, `keyward device run`, wpa_supplicant) may use it meanwhile.
    fn release_if_idle(&self, slot: &Slot) {
        if self.count_sessions(slot.id).0 == 0 {
            lock(&slot.token).disconnect();
        }
    }

    pub fn slot_list(&self, token_present: bool) -> Vec<CK_SLOT_ID> {
        self.refresh_readers();
        self.all_slots()
            .iter()
            .filter(|s| !token_present || self.present(s))
            .map(|s| s.id)
            .collect()
    }

    pub fn slot_info(&self, id: CK_SLOT_ID) -> Result<SlotInfo> {
        let slot = self.slot(id)?;
        let mut flags = CKF_HW_SLOT;
        if slot.reader.is_some() {
            flags |= CKF_REMOVABLE_DEVICE;
        }
        if self.present(&slot) {
            flags |= CKF_TOKEN_PRESENT;
        }
        Ok(SlotInfo {
            description: slot.description.clone(),
            flags,
        })
    }

    fn present_slot(&self, id: CK_SLOT_ID) -> Result<Arc<Slot>> {
        let slot = self.slot(id)?;
        if self.present(&slot) {
            Ok(slot)
        } else {
            Err(Rv(CKR_TOKEN_NOT_PRESENT))
        }
    }

    pub fn token_info(&self, id: CK_SLOT_ID) -> Result<TokenInfo> {
        let slot = self.present_slot(id)?;
        let (sessions, rw_sessions) = self.count_sessions(id);
        let mut t = lock(&slot.token);
        let pin_flags = t.pin_flags();
        let serial = t.serial();
        let flags = CKF_RNG | CKF_LOGIN_REQUIRED | pin_flags;
        Ok(TokenInfo {
            label: format!("SmartCard-HSM {serial}"),
            serial,
            model: "SmartCard-HSM".into(),
            flags,
            sessions,
            rw_sessions,
        })
    }

    fn count_sessions(&self, slot: CK_SLOT_ID) -> (CK_ULONG, CK_ULONG) {
        lock(&self.sessions)
            .values()
            .filter(|e| e.slot == slot)
            .fold((0, 0), |(n, rw), e| (n + 1, rw + CK_ULONG::from(e.rw)))
    }

    pub fn init_token(&self, id: CK_SLOT_ID, so_pin: &[u8]) -> Result<()> {
        let slot = self.present_slot(id)?;
        if self.count_sessions(id).0 > 0 {
            return Err(Rv(CKR_SESSION_EXISTS));
        }
        lock(&slot.token).init_token(so_pin)
    }

    // ---- sessions ------------------------------------------------------------------------

    pub fn open_session(&self, id: CK_SLOT_ID, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE> {
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(Rv(CKR_SESSION_PARALLEL_NOT_SUPPORTED));
        }
        let slot = self.present_slot(id)?;
        let rw = flags & CKF_RW_SESSION != 0;
        if !rw && lock(&slot.token).login == Some(CKU_SO) {
            return Err(Rv(CKR_SESSION_READ_WRITE_SO_EXISTS));
        }
        let h = next_handle();
        let entry = SessionEntry {
            slot: id,
            rw,
            state: Arc::new(Mutex::new(Session::new(id, rw))),
        };
        lock(&self.sessions).insert(h, entry);
        Ok(h)
    }

    fn session(&self, h: CK_SESSION_HANDLE) -> Result<SessionEntry> {
        lock(&self.sessions)
            .get(&h)
            .cloned()
            .ok_or(Rv(CKR_SESSION_HANDLE_INVALID))
    }

    /// Runs `f` with the session and its token locked (in that order).
    fn with<T>(
        &self,
        h: CK_SESSION_HANDLE,
        f: impl FnOnce(&mut Session, &mut Token) -> Result<T>,
    ) -> Result<T> {
        let entry = self.session(h)?;
        let mut s = lock(&entry.state);
        let slot = self.slot(entry.slot)?;
        let mut t = lock(&slot.token);
        f(&mut s, &mut t)
    }

    pub fn close_session(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        let slot_id = lock(&self.sessions)
            .remove(&h)
            .ok_or(Rv(CKR_SESSION_HANDLE_INVALID))?
            .slot;
        let slot = self.slot(slot_id)?;
        let last = self.count_sessions(slot_id).0 == 0;
        let mut t = lock(&slot.token);
        t.session_objects.retain(|(owner, _)| *owner != h);
        if last {
            t.logout()?;
            t.disconnect();
        }
        Ok(())
    }

    pub fn close_all_sessions(&self, id: CK_SLOT_ID) -> Result<()> {
        self.slot(id)?;
        let handles: Vec<_> = lock(&self.sessions)
            .iter()
            .filter(|(_, e)| e.slot == id)
            .map(|(h, _)| *h)
            .collect();
        for h in handles {
            self.close_session(h)?;
        }
        Ok(())
    }

    pub fn session_info(&self, h: CK_SESSION_HANDLE) -> Result<CK_SESSION_INFO> {
        self.with(h, |s, t| {
            let state = match (t.login, s.rw) {
                (Some(CKU_SO), _) => CKS_RW_SO_FUNCTIONS,
                (Some(_), true) => CKS_RW_USER_FUNCTIONS,
                (Some(_), false) => CKS_RO_USER_FUNCTIONS,
                (None, true) => CKS_RW_PUBLIC_SESSION,
                (None, false) => CKS_RO_PUBLIC_SESSION,
            };
            Ok(CK_SESSION_INFO {
                slotID: s.slot,
                state,
                flags: CKF_SERIAL_SESSION | if s.rw { CKF_RW_SESSION } else { 0 },
                ulDeviceError: 0,
            })
        })
    }

    pub fn login(&self, h: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &[u8]) -> Result<()> {
        let slot_id = self.session(h)?.slot;
        if user == CKU_SO
            && lock(&self.sessions)
                .values()
                .any(|e| e.slot == slot_id && !e.rw)
        {
            return Err(Rv(CKR_SESSION_READ_ONLY_EXISTS));
        }
        self.with(h, |_, t| match (t.login, user) {
            (Some(CKU_USER), CKU_USER) | (Some(CKU_SO), CKU_SO) => {
                Err(Rv(CKR_USER_ALREADY_LOGGED_IN))
            }
            (Some(_), CKU_USER | CKU_SO) => Err(Rv(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)),
            (_, CKU_CONTEXT_SPECIFIC) => Err(Rv(CKR_OPERATION_NOT_INITIALIZED)),
            _ => t.login(user, pin),
        })
    }

    pub fn logout(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        self.with(h, |_, t| {
            if t.login.is_none() {
                return Err(Rv(CKR_USER_NOT_LOGGED_IN));
            }
            t.logout()
        })
    }

    pub fn init_pin(&self, h: CK_SESSION_HANDLE, pin: &[u8]) -> Result<()> {
        self.with(h, |s, t| {
            if t.login != Some(CKU_SO) || !s.rw {
                return Err(Rv(CKR_USER_NOT_LOGGED_IN));
            }
            t.init_pin(pin)
        })
    }

    pub fn set_pin(&self, h: CK_SESSION_HANDLE, old: &[u8], new: &[u8]) -> Result<()> {
        self.with(h, |s, t| {
            if !s.rw {
                return Err(Rv(CKR_SESSION_READ_ONLY));
            }
            t.set_pin(old, new)
        })
    }

    // ---- objects -------------------------------------------------------------------------

    fn object(t: &mut Token, oh: CK_OBJECT_HANDLE) -> Result<Object> {
        t.object(oh)
    }

    fn key(t: &mut Token, kh: CK_OBJECT_HANDLE) -> Result<Object> {
        t.object(kh).map_err(|e| match e {
            Rv(CKR_OBJECT_HANDLE_INVALID) => Rv(CKR_KEY_HANDLE_INVALID),
            e => e,
        })
    }

    /// An object, for reading its attributes.
    pub fn object_of(&self, h: CK_SESSION_HANDLE, oh: CK_OBJECT_HANDLE) -> Result<Object> {
        self.with(h, |_, t| Self::object(t, oh))
    }

    pub fn object_size(&self, h: CK_SESSION_HANDLE, oh: CK_OBJECT_HANDLE) -> Result<CK_ULONG> {
        let o = self.with(h, |_, t| Self::object(t, oh))?;
        Ok(o.attrs.values().map(|v| v.len() as CK_ULONG + 16).sum())
    }

    pub fn find_init(&self, h: CK_SESSION_HANDLE, template: &Template) -> Result<()> {
        self.with(h, |s, t| {
            if s.find.is_some() {
                return Err(Rv(CKR_OPERATION_ACTIVE));
            }
            t.expire(Duration::from_secs(1));
            let found = t
                .objects()?
                .into_iter()
                .filter(|(_, o)| o.matches(template))
                .map(|(h, _)| h)
                .rev()
                .collect();
            s.find = Some(found);
            Ok(())
        })
    }

    pub fn find(&self, h: CK_SESSION_HANDLE, max: usize) -> Result<Vec<CK_OBJECT_HANDLE>> {
        self.with(h, |s, _| {
            let found = s.find.as_mut().ok_or(Rv(CKR_OPERATION_NOT_INITIALIZED))?;
            let mut out = Vec::new();
            while out.len() < max {
                match found.pop() {
                    Some(h) => out.push(h),
                    None => break,
                }
            }
            Ok(out)
        })
    }

    pub fn find_final(&self, h: CK_SESSION_HANDLE) -> Result<()> {
        self.with(h, |s, _| {
            s.find.take().ok_or(Rv(CKR_OPERATION_NOT_INITIALIZED))?;
            Ok(())
        })
    }

    pub fn create_object(&self, h: CK_SESSION_HANDLE, tpl: &Template) -> Result<CK_OBJECT_HANDLE> {
        self.with(h, |s, t| {
            let on_token = tpl.bool(CKA_TOKEN)?.unwrap_or(false);
            let private = tpl.bool(CKA_PRIVATE)?.unwrap_or(false);
            if (on_token || private) && t.login != Some(CKU_USER) {
                return Err(Rv(CKR_USER_NOT_LOGGED_IN));
            }
            if !on_token {
                let handle = next_handle();
                let o = object::from_template(handle, tpl)?;
                t.session_objects.push((h, o));
                return Ok(handle);
            }
            if !s.rw {
                return Err(Rv(CKR_SESSION_READ_ONLY));
            }
            let class = tpl.ulong(CKA_CLASS)?.ok_or(Rv(CKR_TEMPLATE_INCOMPLETE))?;
            let label = tpl.string(CKA_LABEL)?.unwrap_or_default();
            let origin = match class {
                CKO_CERTIFICATE => {
                    object::check_cert_type(tpl)?;
                    let der = tpl.get(CKA_VALUE).ok_or(Rv(CKR_TEMPLATE_INCOMPLETE))?;
                    let id = tpl.get(CKA_ID).unwrap_or_default().to_vec();
                    match t.kid_with_id(&id)? {
                        // The certificate of a key on the element goes to CE<kid> (as OpenSC
                        // stores it), replacing the key's attestation there.
                        Some(kid) if !id.is_empty() => {
                            t.write(fid(token::EE_CERT, kid), der)?;
                            Origin::EeCert(kid)
                        }
                        _ => {
                            let n = t.free_id(token::CA_CERT, token::CD)?;
                            t.write(fid(token::CA_CERT, n), der)?;
                            let cd = CertificateDescription {
                                label,
                                id,
                                fid: fid(token::CA_CERT, n),
                            };
                            t.write(
                                fid(token::CD, n),
                                &cd.encode().map_err(|_| Rv(CKR_FUNCTION_FAILED))?,
                            )?;
                            Origin::CaCert(n)
                        }
                    }
                }
                CKO_DATA => {
                    let n = t.free_id(token::DCOD, token::PRIVATE_DATA)?;
                    let data_fid = if private {
                        fid(token::PRIVATE_DATA, n)
                    } else {
                        fid(token::PUBLIC_DATA, n)
                    };
                    let oid = tpl
                        .get(CKA_OBJECT_ID)
                        .filter(|v| !v.is_empty())
                        .map(|v| {
                            keyward_apdu::tlv::Tlv::parse_exact(v)
                                .ok()
                                .filter(|t| t.tag.0 == 0x06)
                                .map(|t| t.value.to_vec())
                                .ok_or(Rv(CKR_ATTRIBUTE_VALUE_INVALID))
                        })
                        .transpose()?;
                    let d = DataObjectDescription {
                        label,
                        application: tpl.string(CKA_APPLICATION)?.unwrap_or_default(),
                        app_oid: oid,
                        private,
                        fid: data_fid,
                    };
                    t.write(data_fid, tpl.get(CKA_VALUE).unwrap_or_default())?;
                    t.write(
                        fid(token::DCOD, n),
                        &d.encode().map_err(|_| Rv(CKR_FUNCTION_FAILED))?,
                    )?;
                    Origin::Data(n)
                }
                CKO_PUBLIC_KEY | CKO_PRIVATE_KEY | CKO_SECRET_KEY => {
                    return Err(Rv(CKR_TEMPLATE_INCONSISTENT));
                }
                _ => return Err(Rv(CKR_ATTRIBUTE_VALUE_INVALID)),
            };
            Ok(t.handle_of(origin))
        })
    }

    pub fn destroy_object(&self, h: CK_SESSION_HANDLE, oh: CK_OBJECT_HANDLE) -> Result<()> {
        self.with(h, |s, t| {
            let o = Self::object(t, oh)?;
            if let Origin::Session(_) = o.origin {
                t.session_objects
                    .retain(|(_, so)| so.origin != Origin::Session(oh));
                return Ok(());
            }
            if !s.rw {
                return Err(Rv(CKR_SESSION_READ_ONLY));
            }
            match o.origin {
                Origin::PrivateKey(kid) | Origin::SecretKey(kid) => {
                    t.invalidate();
                    t.run(|h| h.delete_key(kid))?;
                }
                Origin::EeCert(kid) => t.delete(fid(token::EE_CERT, kid))?,
                Origin::CaCert(n) => {
                    t.delete(fid(token::CA_CERT, n))?;
                    t.delete(fid(token::CD, n))?;
                }
                Origin::Data(n) => {
                    let dcod = t.read(fid(token::DCOD, n))?;
                    if let Ok(d) = DataObjectDescription::parse(&dcod) {
                        t.delete(d.fid)?;
                    }
                    t.delete(fid(token::DCOD, n))?;
                }
                // The public key is read from the key's attestation or certificate; it goes with
                // the private key. The device chain belongs to the element.
                Origin::PublicKey(_) | Origin::DeviceCert | Origin::IssuerCert => {
                    return Err(Rv(CKR_ACTION_PROHIBITED));
                }
                Origin::Session(_) => {}
            }
            Ok(())
        })
    }

    pub fn set_attributes(
        &self,
        h: CK_SESSION_HANDLE,
        oh: CK_OBJECT_HANDLE,
        tpl: &Template,
    ) -> Result<()> {
        self.with(h, |s, t| {
            let o = Self::object(t, oh)?;
            for (ty, _) in &tpl.0 {
                if !matches!(*ty, CKA_LABEL | CKA_ID) {
                    return Err(Rv(CKR_ATTRIBUTE_READ_ONLY));
                }
            }
            if let Origin::Session(_) = o.origin {
                if let Some((_, so)) = t
                    .session_objects
                    .iter_mut()
                    .find(|(_, so)| so.origin == Origin::Session(oh))
                {
                    for (ty, v) in &tpl.0 {
                        so.set(*ty, v.clone());
                    }
                }
                return Ok(());
            }
            if !s.rw {
                return Err(Rv(CKR_SESSION_READ_ONLY));
            }
            let label = tpl.string(CKA_LABEL)?;
            let id = tpl.get(CKA_ID).map(<[u8]>::to_vec);
            let set = |l: &mut String, i: Option<&mut Vec<u8>>| {
                if let Some(new) = &label {
                    l.clone_from(new);
                }
                if let (Some(new), Some(i)) = (&id, i) {
                    i.clone_from(new);
                }
            };
            let (file, encoded) = match o.origin {
                Origin::PrivateKey(kid)
                | Origin::SecretKey(kid)
                | Origin::PublicKey(kid)
                | Origin::EeCert(kid) => {
                    // Key, public key and certificate share the key's description (C4<kid>).
                    let mut d = t
                        .run(|h| h.key_description(kid))?
                        .ok_or(Rv(CKR_ATTRIBUTE_READ_ONLY))?;
                    set(&mut d.label, Some(&mut d.id));
                    (fid(token::PRKD, kid), d.encode())
                }
                Origin::CaCert(n) => {
                    let mut d = CertificateDescription::parse(&t.read(fid(token::CD, n))?)
                        .map_err(|_| Rv(CKR_DEVICE_ERROR))?;
                    set(&mut d.label, Some(&mut d.id));
                    (fid(token::CD, n), d.encode())
                }
                Origin::Data(n) => {
                    if id.is_some() {
                        return Err(Rv(CKR_ATTRIBUTE_TYPE_INVALID));
                    }
                    let mut d = DataObjectDescription::parse(&t.read(fid(token::DCOD, n))?)
                        .map_err(|_| Rv(CKR_DEVICE_ERROR))?;
                    set(&mut d.label, None);
                    (fid(token::DCOD, n), d.encode())
                }
                _ => return Err(Rv(CKR_ATTRIBUTE_READ_ONLY)),
            };
            t.write(file, &encoded.map_err(|_| Rv(CKR_FUNCTION_FAILED))?)
        })
    }

    // ---- key generation and derivation ----------------------------------------------------

    /// Runs a key generation on the element: a read-write session, the user logged in, and the
    /// first free key id.
    fn keygen<T>(
        &self,
        h: CK_SESSION_HANDLE,
        f: impl FnOnce(&mut Token, u8) -> Result<T>,
    ) -> Result<T> {
        self.with(h, |s, t| {
            if !s.rw {
                return Err(Rv(CKR_SESSION_READ_ONLY));
            }
            if t.login != Some(CKU_USER) {
                return Err(Rv(CKR_USER_NOT_LOGGED_IN));
            }
            t.invalidate();
            let kid = t.run(|h| h.free_key_id())?;
            f(t, kid)
        })
    }

    pub fn generate_key_pair(
        &self,
        h: CK_SESSION_HANDLE,
        mech: &Mechanism,
        public: &Template,
        private: &Template,
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        let spec = match mech.ty {
            CKM_EC_KEY_PAIR_GEN => {
                let params = public
                    .get(CKA_EC_PARAMS)
                    .or_else(|| private.get(CKA_EC_PARAMS))
                    .ok_or(Rv(CKR_TEMPLATE_INCOMPLETE))?;
                KeySpec::Ec(Curve::from_oid_der(params).ok_or(Rv(CKR_CURVE_NOT_SUPPORTED))?)
            }
            CKM_RSA_PKCS_KEY_PAIR_GEN => {
                let bits = public
                    .ulong(CKA_MODULUS_BITS)?
                    .ok_or(Rv(CKR_TEMPLATE_INCOMPLETE))?;
                if !keyward_crypto::rsa_sizes().contains(&(bits as usize)) {
                    return Err(Rv(CKR_KEY_SIZE_RANGE));
                }
                if let Some(e) = public.get(CKA_PUBLIC_EXPONENT)
                    && !e.iter().skip_while(|b| **b == 0).eq([1u8, 0, 1].iter())
                {
                    return Err(Rv(CKR_ATTRIBUTE_VALUE_INVALID));
                }
                KeySpec::Rsa(bits as u16)
            }
            _ => return Err(Rv(CKR_MECHANISM_INVALID)),
        };
        for t in [public, private] {
            if t.bool(CKA_TOKEN)? == Some(false) {
                return Err(Rv(CKR_TEMPLATE_INCONSISTENT));
            }
        }
        if private.bool(CKA_SENSITIVE)? == Some(false) {
            return Err(Rv(CKR_ATTRIBUTE_VALUE_INVALID));
        }
        let extractable = private.bool(CKA_EXTRACTABLE)?.unwrap_or(false);
        let label = private
            .string(CKA_LABEL)?
            .or(public.string(CKA_LABEL)?)
            .unwrap_or_default();
        let id = private
            .get(CKA_ID)
            .or(public.get(CKA_ID))
            .map(<[u8]>::to_vec);
        let list = mechanism::algorithm_list(matches!(spec, KeySpec::Rsa(_)), extractable);
        self.keygen(h, |t, kid| {
            t.run(|h| {
                h.generate_key(
                    kid,
                    spec,
                    &KeyOptions {
                        label: &label,
                        id: id.as_deref(),
                        algorithms: Some(&list),
                        domain: None,
                    },
                )
            })?;
            Ok((
                t.handle_of(Origin::PublicKey(kid)),
                t.handle_of(Origin::PrivateKey(kid)),
            ))
        })
    }

    pub fn generate_key(
        &self,
        h: CK_SESSION_HANDLE,
        mech: &Mechanism,
        tpl: &Template,
    ) -> Result<CK_OBJECT_HANDLE> {
        if mech.ty != CKM_AES_KEY_GEN {
            return Err(Rv(CKR_MECHANISM_INVALID));
        }
        let len = tpl
            .ulong(CKA_VALUE_LEN)?
            .ok_or(Rv(CKR_TEMPLATE_INCOMPLETE))?;
        let bits = match len {
            16 | 24 | 32 => (len * 8) as u16,
            _ => return Err(Rv(CKR_KEY_SIZE_RANGE)),
        };
        if tpl.bool(CKA_TOKEN)? == Some(false) {
            return Err(Rv(CKR_TEMPLATE_INCONSISTENT));
        }
        let label = tpl.string(CKA_LABEL)?.unwrap_or_default();
        let id = tpl.get(CKA_ID).map(<[u8]>::to_vec);
        self.keygen(h, |t, kid| {
            let id = id.clone().unwrap_or_else(|| vec![kid]);
            t.run(|h| {
                h.generate_key(
                    kid,
                    KeySpec::Aes(bits),
                    &KeyOptions {
                        label: &label,
                        id: Some(&id),
                        algorithms: None,
                        domain: None,
                    },
                )
            })?;
            Ok(t.handle_of(Origin::SecretKey(kid)))
        })
    }

    pub fn derive_key(
        &self,
        h: CK_SESSION_HANDLE,
        mech: &Mechanism,
        base: CK_OBJECT_HANDLE,
        tpl: &Template,
    ) -> Result<CK_OBJECT_HANDLE> {
        if mech.ty != CKM_ECDH1_DERIVE {
            return Err(Rv(CKR_MECHANISM_INVALID));
        }
        if tpl.bool(CKA_TOKEN)? == Some(true) {
            return Err(Rv(CKR_TEMPLATE_INCONSISTENT));
        }
        self.with(h, |_, t| {
            let key = Self::key(t, base)?;
            ops::check_key(mech, &key, CKA_DERIVE)?;
            let secret = ops::ecdh(t, mech, &key)?;
            let kt = tpl.ulong(CKA_KEY_TYPE)?.unwrap_or(CKK_GENERIC_SECRET);
            let len = match (tpl.ulong(CKA_VALUE_LEN)?, kt) {
                (Some(n), _) => n as usize,
                (None, CKK_AES) => 32.min(secret.len()),
                (None, _) => secret.len(),
            };
            if len == 0 || len > secret.len() || (kt == CKK_AES && ![16, 24, 32].contains(&len)) {
                return Err(Rv(CKR_ATTRIBUTE_VALUE_INVALID));
            }
            let handle = next_handle();
            let o = object::secret(
                Origin::Session(handle),
                &tpl.string(CKA_LABEL)?.unwrap_or_default(),
                tpl.get(CKA_ID).unwrap_or_default(),
                kt,
                secret[..len].to_vec(),
                tpl,
            )?;
            t.session_objects.push((h, o));
            Ok(handle)
        })
    }

    pub fn generate_random(&self, h: CK_SESSION_HANDLE, n: usize) -> Result<Vec<u8>> {
        self.with(h, |_, t| {
            let mut out = Vec::with_capacity(n);
            while out.len() < n {
                let chunk = (n - out.len()).min(1024) as u16;
                out.extend(t.run(|h| h.random(chunk))?);
            }
            out.truncate(n);
            Ok(out)
        })
    }

    // ---- operations ------------------------------------------------------------------------

    pub fn op_init(
        &self,
        h: CK_SESSION_HANDLE,
        kind: OpKind,
        mech: Mechanism,
        key: CK_OBJECT_HANDLE,
    ) -> Result<()> {
        self.with(h, |s, t| {
            if kind.slot(s).is_some() {
                return Err(Rv(CKR_OPERATION_ACTIVE));
            }
            let (flag, usage) = kind.usage();
            mechanism::supports(mech.ty, flag)?;
            let key = Self::key(t, key)?;
            ops::check_key(&mech, &key, usage)?;
            if matches!(kind, OpKind::Sign | OpKind::Decrypt)
                && matches!(key.material, Material::Card { .. })
                && t.login != Some(CKU_USER)
            {
                return Err(Rv(CKR_USER_NOT_LOGGED_IN));
            }
            *kind.slot(s) = Some(Operation::new(mech, key));
            Ok(())
        })
    }

    /// C_*Update: collects input (the element works on whole messages).
    pub fn op_update(&self, h: CK_SESSION_HANDLE, kind: OpKind, data: &[u8]) -> Result<()> {
        self.with(h, |s, _| {
            let slot = kind.slot(s);
            let op = slot.as_mut().ok_or(Rv(CKR_OPERATION_NOT_INITIALIZED))?;
            let single_part_only = matches!(
                op.mech.ty,
                CKM_ECDSA | CKM_RSA_PKCS | CKM_RSA_X_509 | CKM_RSA_PKCS_PSS | CKM_RSA_PKCS_OAEP
            );
            if single_part_only || op.data.len() + data.len() > MAX_INPUT {
                *slot = None;
                return Err(Rv(if single_part_only {
                    CKR_FUNCTION_NOT_SUPPORTED
                } else {
                    CKR_DATA_LEN_RANGE
                }));
            }
            op.multi = true;
            op.data.extend_from_slice(data);
            Ok(())
        })
    }

    /// C_Sign / C_Encrypt / C_Decrypt with the whole input (`data` = None for C_*Final).
    pub fn op_output(
        &self,
        h: CK_SESSION_HANDLE,
        kind: OpKind,
        data: Option<&[u8]>,
        cap: Option<usize>,
    ) -> Result<Output> {
        self.with(h, |s, t| {
            let slot = kind.slot(s);
            let op = slot.as_mut().ok_or(Rv(CKR_OPERATION_NOT_INITIALIZED))?;
            if let Some(d) = data {
                if op.multi {
                    *slot = None;
                    return Err(Rv(CKR_OPERATION_ACTIVE));
                }
                if op.result.is_none() {
                    op.data = Zeroizing::new(d.to_vec());
                }
            }
            finish(
                slot,
                cap,
                |op| match kind {
                    OpKind::Sign => ops::signature_len(&op.mech, &op.key),
                    _ => ops::crypt_len(&op.mech, &op.key, op.data.len(), kind == OpKind::Encrypt),
                },
                |op| match kind {
                    OpKind::Sign => ops::sign(t, &op.mech, &op.key, &op.data).map(Zeroizing::new),
                    OpKind::Encrypt => {
                        ops::encrypt(t, &op.mech, &op.key, &op.data).map(Zeroizing::new)
                    }
                    OpKind::Decrypt => ops::decrypt(t, &op.mech, &op.key, &op.data),
                    OpKind::Verify => Err(Rv(CKR_OPERATION_NOT_INITIALIZED)),
                },
            )
        })
    }

    /// C_Verify / C_VerifyFinal (`data` = None).
    pub fn verify(
        &self,
        h: CK_SESSION_HANDLE,
        data: Option<&[u8]>,
        signature: &[u8],
    ) -> Result<()> {
        self.with(h, |s, t| {
            let op = s.verify.take().ok_or(Rv(CKR_OPERATION_NOT_INITIALIZED))?;
            let input: &[u8] = match data {
                Some(_) if op.multi => return Err(Rv(CKR_OPERATION_ACTIVE)),
                Some(d) => d,
                None => &op.data,
            };
            ops::verify(t, &op.mech, &op.key, input, signature)
        })
    }

    pub fn digest_init(&self, h: CK_SESSION_HANDLE, mech: &Mechanism) -> Result<()> {
        let hash = mechanism::digest_hash(mech.ty).ok_or(Rv(CKR_MECHANISM_INVALID))?;
        self.with(h, |s, _| {
            if s.digest.is_some() {
                return Err(Rv(CKR_OPERATION_ACTIVE));
            }
            s.digest = Some(DigestOp {
                hash,
                data: Vec::new(),
                multi: false,
            });
            Ok(())
        })
    }

    pub fn digest_update(&self, h: CK_SESSION_HANDLE, data: &[u8]) -> Result<()> {
        self.with(h, |s, _| {
            let d = s.digest.as_mut().ok_or(Rv(CKR_OPERATION_NOT_INITIALIZED))?;
            if d.data.len() + data.len() > MAX_INPUT {
                s.digest = None;
                return Err(Rv(CKR_DATA_LEN_RANGE));
            }
            d.multi = true;
            d.data.extend_from_slice(data);
            Ok(())
        })
    }

    pub fn digest(
        &self,
        h: CK_SESSION_HANDLE,
        data: Option<&[u8]>,
        cap: Option<usize>,
    ) -> Result<Output> {
        self.with(h, |s, _| {
            let d = s.digest.as_ref().ok_or(Rv(CKR_OPERATION_NOT_INITIALIZED))?;
            if data.is_some() && d.multi {
                s.digest = None;
                return Err(Rv(CKR_OPERATION_ACTIVE));
            }
            let len = d.hash.output_len();
            match cap {
                None => return Ok(Output::Length(len)),
                Some(c) if c < len => return Ok(Output::TooSmall(len)),
                _ => {}
            }
            let out = d.hash.digest(data.unwrap_or(&d.data));
            s.digest = None;
            Ok(Output::Done(Zeroizing::new(out)))
        })
    }

    // ---- slot events ---------------------------------------------------------------------

    /// C_WaitForSlotEvent: the first PC/SC slot whose card came or went since last reported.
    pub fn wait_for_slot_event(&self, block: bool) -> Result<CK_SLOT_ID> {
        loop {
            if self.finalized.load(Ordering::SeqCst) {
                return Err(Rv(CKR_CRYPTOKI_NOT_INITIALIZED));
            }
            self.refresh_readers();
            let ctx = pcsc::Context::establish(pcsc::Scope::User).ok();
            let slots = self.all_slots();
            for s in slots.iter().filter(|s| s.reader.is_some()) {
                let now = match (&ctx, &s.reader) {
                    (Some(ctx), Some(r)) => reader_present(ctx, r),
                    _ => false,
                };
                if s.reported_present.swap(now, Ordering::SeqCst) != now {
                    if !now {
                        lock(&s.token).disconnect();
                    }
                    return Ok(s.id);
                }
            }
            if !block {
                return Err(Rv(CKR_NO_EVENT));
            }
            // Wait for a reader change (or poll again shortly, to notice C_Finalize).
            let mut states: Vec<pcsc::ReaderState> = slots
                .iter()
                .filter_map(|s| s.reader.as_ref())
                .filter_map(|r| std::ffi::CString::new(r.as_str()).ok())
                .map(|r| {
                    let mut st = pcsc::ReaderState::new(r, pcsc::State::UNAWARE);
                    st.sync_current_state();
                    st
                })
                .collect();
            match &ctx {
                Some(ctx) if !states.is_empty() => {
                    let _ = ctx.get_status_change(Duration::ZERO, &mut states);
                    for st in &mut states {
                        st.sync_current_state();
                    }
                    let _ = ctx.get_status_change(Duration::from_millis(500), &mut states);
                }
                _ => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }
}

fn reader_present(ctx: &pcsc::Context, name: &str) -> bool {
    let Ok(cname) = std::ffi::CString::new(name) else {
        return false;
    };
    let mut st = [pcsc::ReaderState::new(cname, pcsc::State::UNAWARE)];
    ctx.get_status_change(Duration::ZERO, &mut st).is_ok()
        && st[0].event_state().contains(pcsc::State::PRESENT)
        && !st[0].event_state().contains(pcsc::State::MUTE)
}
