//! The SmartCard-HSM applet: command dispatch, selection, the file system and the session.

use std::collections::HashMap;
use std::sync::Arc;

use keyward_apdu::{CommandView, Response, StatusWord as Sw, tlv};

use crate::state::{HexBytes, State};
use crate::storage::{StateFile, StorageError};
use keyward_crypto::PrivateKey;

/// AID of the SmartCard-HSM applet (`E8` + OID 1.3.6.1.4.1.24991.2.1).
pub const AID: &[u8] = &[
    0xE8, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x81, 0xC3, 0x1F, 0x02, 0x01,
];

/// The contact ATR of a SmartCard-HSM (JCOP, USB token).
pub const ATR: &[u8] = &[
    0x3B, 0xFE, 0x18, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x45, 0x80, 0x31, 0x81, 0x54, 0x48, 0x53, 0x4D,
    0x31, 0x73, 0x80, 0x21, 0x40, 0x81, 0x07, 0xFA,
];

/// Applet version reported in the FCP and the INITIALIZE status (major, minor).
pub const VERSION: (u8, u8) = (4, 0);

/// Applet type byte in the FCP. `00` would be CardContact's applet for JCOP and `01` its demo
/// applet; this element is neither, so OpenSC names it "SmartCard-HSM version M.m".
const APPLET_TYPE: u8 = 0x02;

/// Fixed file identifiers.
pub(crate) mod fid {
    pub const C_DEVAUT: u16 = 0x2F02;
    pub const MF: u16 = 0x3F00;
    pub const KEY_PREFIX: u8 = 0xCC;
    pub const PRIVATE_DATA_PREFIX: u8 = 0xCD;
    pub const CERT_PREFIX: u8 = 0xCE;
}

/// Upper bound of one EF and of all EFs together, like the ~130 KB of a JCOP 4 SmartCard-HSM.
const MAX_FILE_SIZE: usize = 0xFFFF;
pub(crate) const MEMORY_SIZE: usize = 512 * 1024;

/// Where the state goes after every change.
pub trait Persist {
    fn persist(&mut self, state: &State) -> Result<(), StorageError>;
}

impl Persist for StateFile {
    fn persist(&mut self, state: &State) -> Result<(), StorageError> {
        self.save(state)
    }
}

/// Keeps the state in memory only (tests, benchmarks, throw-away elements).
#[derive(Debug, Default)]
pub struct MemoryStore;

impl Persist for MemoryStore {
    fn persist(&mut self, _: &State) -> Result<(), StorageError> {
        Ok(())
    }
}

/// Which application is selected on the basic channel.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selected {
    #[default]
    Nothing,
    /// The SmartCard-HSM applet.
    Hsm,
    /// The Issuer Security Domain (card manager).
    Isd,
}

/// Per-session (power-cycle / re-select) volatile state.
#[derive(Default)]
pub(crate) struct Session {
    pub selected: Selected,
    /// The card manager's secure channel and personalization session.
    pub isd: crate::card_manager::IsdSession,
    pub user_verified: bool,
    pub current_ef: Option<u16>,
    /// The secure-messaging channel, once chip authentication succeeded.
    pub sm: Option<keyward_sm::SmSession>,
    /// MSE SET AT selected chip authentication.
    pub ca_ready: bool,
    /// MSE SET DST: CHR of the key that verifies the next certificate.
    pub dst: Option<Vec<u8>>,
    /// Public keys of certificates verified with PSO VERIFY CERTIFICATE, by CHR.
    pub verified: Vec<(Vec<u8>, keyward_cvc::PublicKey)>,
    /// The user PIN verified (on its own the user only if no public-key authentication is set).
    pub pin_verified: bool,
    /// Public-key authentication: the key MSE SET AT selected, the last challenge, and the
    /// keys that authenticated.
    pub pka_selected: Option<Vec<u8>>,
    pub challenge: Option<Vec<u8>>,
    pub pka_done: Vec<Vec<u8>>,
}

pub(crate) type CmdResult = Result<Response, Sw>;

/// The SmartCard-HSM applet over a state and a persistence back end.
pub struct Applet<P: Persist> {
    pub(crate) state: State,
    store: P,
    pub(crate) session: Session,
    /// Parsed private keys by key id, so RSA CRT values are not recomputed per operation.
    key_cache: HashMap<u8, Arc<PrivateKey>>,
}

impl<P: Persist> Applet<P> {
    pub fn new(state: State, store: P) -> Self {
        Self {
            state,
            store,
            session: Session::default(),
            key_cache: HashMap::new(),
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// The state, changed behind the applet's back: how tests model a tampered element (a
    /// changed state is persisted with the next command that persists).
    pub fn state_mut(&mut self) -> &mut State {
        self.key_cache.clear();
        &mut self.state
    }

    /// Power-on / warm reset: all volatile state is lost.
    pub fn reset(&mut self) {
        self.session = Session::default();
    }

    /// Processes one command APDU and returns the response APDU.
    pub fn transmit(&mut self, apdu: &[u8]) -> Vec<u8> {
        let response = match CommandView::parse(apdu) {
            Ok(cmd) if self.session.selected == Selected::Isd && !is_select(&cmd) => {
                self.card_manager_transmit(apdu, &cmd)
            }
            Ok(cmd) if cmd.cla & 0x0C == 0x0C => self.process_protected(&cmd),
            Ok(cmd) => {
                if self.session.sm.is_some() {
                    // A plain APDU ends secure messaging and the authentication bound to it.
                    self.end_secure_messaging();
                }
                self.process(&cmd).unwrap_or_else(Response::status)
            }
            Err(_) => Response::status(Sw::WRONG_LENGTH),
        };
        tracing::debug!(
            cla = apdu.first().copied().unwrap_or(0),
            ins = apdu.get(1).copied().unwrap_or(0),
            sw = %response.sw,
            len = response.data.len(),
            "apdu"
        );
        response.encode()
    }

    /// A command under secure messaging: unwrap, process, wrap. Any SM error ends the channel.
    fn process_protected(&mut self, cmd: &CommandView<'_>) -> Response {
        let Some(mut sm) = self.session.sm.take() else {
            return Response::status(Sw::SM_NOT_SUPPORTED);
        };
        let plain = match sm.unwrap_command(cmd) {
            Ok(plain) => plain,
            Err(e) => {
                tracing::debug!(error = %e, "secure messaging error; channel closed");
                self.end_secure_messaging();
                return Response::status(e.status_word());
            }
        };
        self.session.sm = Some(sm);
        let response = if matches!(plain.ins, 0x86 | 0x22) {
            // Chip authentication is negotiated in plain.
            Response::status(Sw::CONDITIONS_NOT_SATISFIED)
        } else {
            self.process(&plain.view()).unwrap_or_else(Response::status)
        };
        match self
            .session
            .sm
            .as_mut()
            .map(|sm| sm.wrap_response(&response))
        {
            Some(Ok(wrapped)) => wrapped,
            Some(Err(_)) => {
                self.end_secure_messaging();
                Response::status(Sw::SM_DATA_INCORRECT)
            }
            // The command itself ended the channel (re-selection of the applet).
            None => response,
        }
    }

    fn end_secure_messaging(&mut self) {
        self.session.sm = None;
        self.session.user_verified = false;
        self.session.pin_verified = false;
        self.session.pka_done.clear();
    }

    /// The user is authenticated by the PIN (if one is set) and, with public-key authentication,
    /// by `n` of its `m` keys: both where both are configured.
    pub(crate) fn update_user(&mut self) {
        let Some(config) = self.state.config.as_ref() else {
            self.session.user_verified = false;
            return;
        };
        let pin_ok = config.user_pin.is_none() || self.session.pin_verified;
        let pka_ok = config
            .pka
            .is_none_or(|(_, n)| self.session.pka_done.len() >= usize::from(n));
        self.session.user_verified = pin_ok && pka_ok;
    }

    fn process(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        if cmd.cla & 0x10 != 0 {
            return Err(Sw(0x6884));
        }
        let proprietary = match cmd.cla {
            0x00 => false,
            0x80 => true,
            _ => return Err(Sw::CLA_NOT_SUPPORTED),
        };
        if cmd.ins == 0xA4 && !proprietary {
            return self.select(cmd);
        }
        if self.session.selected != Selected::Hsm {
            return Err(Sw::INS_NOT_SUPPORTED);
        }
        match (proprietary, cmd.ins) {
            (true, 0x50) => self.initialize(cmd),
            (true, 0x52) => self.dkek_share(cmd),
            (true, 0x58) => self.enumerate(cmd),
            (true, 0x62) => self.decipher(cmd),
            (true, 0x68) => self.sign(cmd),
            (true, 0x54) => self.manage_pka(cmd),
            (false, 0x82) => self.pka_external_authenticate(cmd),
            (true, 0x72) => self.wrap_key(cmd),
            (true, 0x74) => self.unwrap_key(cmd),
            (true, 0x78) => self.cipher(cmd),
            (false, 0x20) => self.verify(cmd),
            (false, 0x22) => self.manage_security_environment(cmd),
            (false, 0x2A) => self.verify_certificate(cmd),
            (false, 0x86) => self.general_authenticate(cmd),
            (false, 0x24) => self.change_reference_data(cmd),
            (false, 0x2C) => self.reset_retry_counter(cmd),
            (false, 0x46) => self.generate_key_pair(cmd),
            (false, 0x48) => self.generate_symmetric_key(cmd),
            (false, 0x84) => self.get_challenge(cmd),
            (false, 0xB0 | 0xB1) => self.read_binary(cmd),
            (false, 0xD7) => self.update_binary(cmd),
            (false, 0xE4) => self.delete_file(cmd),
            _ => Err(Sw::INS_NOT_SUPPORTED),
        }
    }

    /// Applies a change to a copy of the state, persists it, and only then makes it current, so a
    /// failed write never leaves the element claiming a change it has not stored.
    pub(crate) fn mutate<T>(
        &mut self,
        f: impl FnOnce(&mut State) -> Result<T, Sw>,
    ) -> Result<T, Sw> {
        let mut next = self.state.clone();
        let out = f(&mut next)?;
        if let Err(e) = self.store.persist(&next) {
            tracing::error!(error = %e, "persisting the element state failed");
            return Err(Sw::MEMORY_FAILURE);
        }
        self.state = next;
        Ok(out)
    }

    /// Forgets cached parsed keys (after a key was replaced or deleted, or after re-initialization).
    pub(crate) fn invalidate_keys(&mut self) {
        self.key_cache.clear();
    }

    /// The parsed private key with id `kid`.
    pub(crate) fn private_key(&mut self, kid: u8) -> Result<Arc<PrivateKey>, Sw> {
        if let Some(k) = self.key_cache.get(&kid) {
            return Ok(k.clone());
        }
        let obj = self.state.keys.get(&kid).ok_or(Sw::REFERENCE_NOT_FOUND)?;
        let key = Arc::new(obj.material.load().map_err(|e| {
            tracing::error!(kid, error = %e, "stored key material is unusable");
            Sw::MEMORY_FAILURE
        })?);
        self.key_cache.insert(kid, key.clone());
        Ok(key)
    }

    pub(crate) fn require_initialized(&self) -> Result<&crate::state::Config, Sw> {
        self.state
            .config
            .as_ref()
            .ok_or(Sw::CONDITIONS_NOT_SATISFIED)
    }

    pub(crate) fn require_user(&self) -> Result<(), Sw> {
        if self.session.user_verified {
            Ok(())
        } else {
            Err(Sw::SECURITY_STATUS_NOT_SATISFIED)
        }
    }

    // ---- SELECT -------------------------------------------------------------------------------

    fn select(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        let want_fcp = match cmd.p2 {
            0x00 | 0x04 => true,
            0x0C => false,
            _ => return Err(Sw::INCORRECT_P1P2),
        };
        match cmd.p1 {
            0x04 if self.state.card.is_some() && crate::card_manager::is_isd_aid(cmd.data) => {
                self.session = Session {
                    selected: Selected::Isd,
                    ..Session::default()
                };
                Ok(Response::ok(if want_fcp {
                    crate::card_manager::isd_fci()?
                } else {
                    Vec::new()
                }))
            }
            0x04 => {
                if cmd.data != AID || !self.applet_selectable() {
                    return Err(Sw::FILE_NOT_FOUND);
                }
                // Re-selecting the applet is the logout: authentication state and secure
                // messaging are dropped.
                self.session = Session {
                    selected: Selected::Hsm,
                    ..Session::default()
                };
                Ok(Response::ok(if want_fcp {
                    self.applet_fcp()?
                } else {
                    Vec::new()
                }))
            }
            0x00 | 0x02 if self.session.selected == Selected::Hsm => {
                let fid: [u8; 2] = cmd.data.try_into().map_err(|_| Sw::WRONG_DATA)?;
                let fid = u16::from_be_bytes(fid);
                if fid == fid::MF {
                    self.session.current_ef = None;
                    return Ok(Response::ok(Vec::new()));
                }
                let fcp = self.ef_fcp(fid).ok_or(Sw::FILE_NOT_FOUND)?;
                self.session.current_ef = Some(fid);
                Ok(Response::ok(if want_fcp { fcp } else { Vec::new() }))
            }
            // No DF hierarchy: path selection (08/09) finds nothing, like unknown FIDs.
            0x00 | 0x02 | 0x08 | 0x09 => Err(Sw::FILE_NOT_FOUND),
            _ => Err(Sw::INCORRECT_P1P2),
        }
    }

    fn applet_fcp(&self) -> Result<Vec<u8>, Sw> {
        let options = self.state.config.as_ref().map_or(0, |c| c.options);
        let [opt_hi, opt_lo] = options.to_be_bytes();
        let mut v = Vec::new();
        tlv::write(&mut v, 0x82, &[0x38]).map_err(|_| Sw::UNKNOWN)?;
        tlv::write(&mut v, 0x84, AID).map_err(|_| Sw::UNKNOWN)?;
        tlv::write(
            &mut v,
            0x85,
            &[opt_hi, opt_lo, APPLET_TYPE, VERSION.0, VERSION.1],
        )
        .map_err(|_| Sw::UNKNOWN)?;
        tlv::write(&mut v, 0x8A, &[0x05]).map_err(|_| Sw::UNKNOWN)?;
        tlv::encode(0x62, &v).map_err(|_| Sw::UNKNOWN)
    }

    fn ef_fcp(&self, fid: u16) -> Option<Vec<u8>> {
        let [prefix, id] = fid.to_be_bytes();
        let mut v = Vec::new();
        if prefix == fid::KEY_PREFIX {
            let meta = if id == 0 {
                None
            } else {
                Some(self.state.keys.get(&id)?)
            };
            tlv::write(&mut v, 0x82, &[0x01]).ok()?;
            tlv::write(&mut v, 0x83, &fid.to_be_bytes()).ok()?;
            let mut info = Vec::new();
            if let Some(k) = meta {
                if let Some(c) = k.use_counter {
                    tlv::write(&mut info, 0x90, &c.to_be_bytes()).ok()?;
                }
                if let Some(a) = &k.algorithms {
                    tlv::write(&mut info, 0x91, &a.0).ok()?;
                }
                if let Some(d) = k.domain {
                    tlv::write(&mut info, 0x92, &[d]).ok()?;
                }
            }
            tlv::write(&mut v, 0xA5, &info).ok()?;
        } else {
            let len = self.state.files.get(&fid)?.0.len();
            tlv::write(&mut v, 0x80, &u16::try_from(len).ok()?.to_be_bytes()).ok()?;
            tlv::write(&mut v, 0x82, &[0x01]).ok()?;
            tlv::write(&mut v, 0x83, &fid.to_be_bytes()).ok()?;
        }
        tlv::encode(0x62, &v).ok()
    }

    // ---- objects and files --------------------------------------------------------------------

    fn enumerate(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        if cmd.p1 != 0 || cmd.p2 != 0 {
            return Err(Sw::INCORRECT_P1P2);
        }
        let mut ids: Vec<u16> = std::iter::once(u16::from(fid::KEY_PREFIX) << 8)
            .chain(
                self.state
                    .keys
                    .keys()
                    .map(|k| (u16::from(fid::KEY_PREFIX) << 8) | u16::from(*k)),
            )
            .chain(self.state.files.keys().copied())
            .collect();
        ids.sort_unstable();
        let out: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
        respond_with_le(cmd, out)
    }

    fn file_id(&self, cmd: &CommandView<'_>) -> Result<u16, Sw> {
        match u16::from_be_bytes([cmd.p1, cmd.p2]) {
            0 => self.session.current_ef.ok_or(Sw::FILE_NOT_FOUND),
            fid => Ok(fid),
        }
    }

    fn check_read_access(&self, fid: u16) -> Result<(), Sw> {
        match fid.to_be_bytes()[0] {
            fid::KEY_PREFIX => Err(Sw::SECURITY_STATUS_NOT_SATISFIED),
            fid::PRIVATE_DATA_PREFIX => self.require_user(),
            _ => Ok(()),
        }
    }

    fn read_binary(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        let (fid, offset) = if cmd.ins == 0xB1 {
            let fid = self.file_id(cmd)?;
            (fid, parse_offset(cmd.data)?)
        } else {
            // Even INS: current EF, 15-bit offset in P1‖P2.
            if cmd.p1 & 0x80 != 0 || !cmd.data.is_empty() {
                return Err(Sw::INCORRECT_P1P2);
            }
            (
                self.session.current_ef.ok_or(Sw::COMMAND_INCOMPATIBLE)?,
                usize::from(u16::from_be_bytes([cmd.p1, cmd.p2])),
            )
        };
        self.check_read_access(fid)?;
        let data = &self.state.files.get(&fid).ok_or(Sw::FILE_NOT_FOUND)?.0;
        if offset > data.len() {
            return Err(Sw::WRONG_P1P2);
        }
        self.session.current_ef = Some(fid);
        let le = cmd.le_or_zero().max(1);
        let end = data.len().min(offset.saturating_add(le));
        let chunk = data[offset..end].to_vec();
        let sw = if chunk.len() < le {
            Sw::END_OF_FILE
        } else {
            Sw::SUCCESS
        };
        Ok(Response::new(chunk, sw))
    }

    fn update_binary(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        self.require_initialized()?;
        self.require_user()?;
        let fid = self.file_id(cmd)?;
        if fid.to_be_bytes()[0] == fid::KEY_PREFIX || fid == fid::C_DEVAUT {
            return Err(Sw::SECURITY_STATUS_NOT_SATISFIED);
        }
        let items = tlv::parse_all(cmd.data).map_err(|_| Sw::WRONG_DATA)?;
        let (offset, data) = match items.as_slice() {
            [off, data] if off.tag.0 == 0x54 && data.tag.0 == 0x53 => {
                (parse_offset_value(off.value)?, data.value)
            }
            _ => return Err(Sw::WRONG_DATA),
        };
        let end = offset.checked_add(data.len()).ok_or(Sw::WRONG_LENGTH)?;
        if end > MAX_FILE_SIZE {
            return Err(Sw::NOT_ENOUGH_MEMORY);
        }
        let used: usize = self
            .state
            .files
            .iter()
            .filter(|(f, _)| **f != fid)
            .map(|(_, v)| v.0.len())
            .sum();
        if used + end > MEMORY_SIZE {
            return Err(Sw::NOT_ENOUGH_MEMORY);
        }
        self.mutate(|s| {
            let file = s.files.entry(fid).or_insert_with(HexBytes::default);
            // The blob staging file (UNWRAP KEY) is rewritten from the start, never patched: a
            // shorter blob must not keep an earlier one's tail.
            if fid == 0x2F10 && offset == 0 {
                file.0.clear();
            }
            if offset > file.0.len() {
                return Err(Sw::WRONG_P1P2);
            }
            if file.0.len() < end {
                file.0.resize(end, 0);
            }
            file.0[offset..end].copy_from_slice(data);
            Ok(())
        })?;
        self.session.current_ef = Some(fid);
        Ok(Response::ok(Vec::new()))
    }

    fn delete_file(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        if cmd.p1 != 0x02 || !matches!(cmd.p2, 0x00 | 0x80) {
            return Err(Sw::INCORRECT_P1P2);
        }
        self.require_initialized()?;
        self.require_user()?;
        let fid: [u8; 2] = cmd.data.try_into().map_err(|_| Sw::WRONG_DATA)?;
        let fid = u16::from_be_bytes(fid);
        let [prefix, id] = fid.to_be_bytes();
        if fid == fid::C_DEVAUT || (prefix == fid::KEY_PREFIX && id == 0) {
            return Err(Sw::COMMAND_NOT_ALLOWED);
        }
        if prefix == fid::KEY_PREFIX {
            self.mutate(|s| s.keys.remove(&id).map(drop).ok_or(Sw::FILE_NOT_FOUND))?;
            self.invalidate_keys();
        } else {
            self.mutate(|s| s.files.remove(&fid).map(drop).ok_or(Sw::FILE_NOT_FOUND))?;
        }
        if self.session.current_ef == Some(fid) {
            self.session.current_ef = None;
        }
        Ok(Response::ok(Vec::new()))
    }

    fn get_challenge(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        if cmd.p1 != 0 || cmd.p2 != 0 || !cmd.data.is_empty() {
            return Err(Sw::INCORRECT_P1P2);
        }
        let n = cmd.le.ok_or(Sw::WRONG_LENGTH)? as usize;
        let mut out = vec![0u8; n];
        getrandom::fill(&mut out).map_err(|_| Sw::UNKNOWN)?;
        // The last challenge is what public-key authentication signs.
        self.session.challenge = Some(out.clone());
        Ok(Response::ok(out))
    }
}

/// SELECT by name (any class without secure messaging), which leaves the current application.
fn is_select(cmd: &CommandView<'_>) -> bool {
    cmd.cla & 0xFC == 0x00 && cmd.ins == 0xA4 && cmd.p1 == 0x04
}

/// Offset DO `54` of the odd-INS READ/UPDATE BINARY (1–4 bytes; absent = 0).
fn parse_offset(data: &[u8]) -> Result<usize, Sw> {
    if data.is_empty() {
        return Ok(0);
    }
    let t = tlv::Tlv::parse_exact(data).map_err(|_| Sw::WRONG_DATA)?;
    if t.tag.0 != 0x54 {
        return Err(Sw::WRONG_DATA);
    }
    parse_offset_value(t.value)
}

fn parse_offset_value(v: &[u8]) -> Result<usize, Sw> {
    if !(1..=4).contains(&v.len()) {
        return Err(Sw::WRONG_DATA);
    }
    Ok(v.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)))
}

/// A response whose data must fit into the command's Le.
pub(crate) fn respond_with_le(cmd: &CommandView<'_>, data: Vec<u8>) -> CmdResult {
    match cmd.le {
        Some(le) if data.len() > le as usize => {
            Err(Sw(0x6C00 | (data.len().min(256) & 0xFF) as u16))
        }
        _ => Ok(Response::ok(data)),
    }
}
