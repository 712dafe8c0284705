//! INITIALIZE DEVICE, the PINs (VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER) and DKEK
//! share import.

use keyward_apdu::{CommandView, Response, StatusWord as Sw, tlv};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::applet::{Applet, CmdResult, Persist, fid};
use crate::state::{Config, Dkek, HexBytes, Pin, SecretBytes, State};
use keyward_crypto as crypto;

/// PIN references.
const USER_PIN: u8 = 0x81;
const SO_PIN: u8 = 0x88;
/// The SO-PIN (initialization code) is 8 binary bytes with 15 tries.
const SO_PIN_LEN: usize = 8;
const SO_PIN_TRIES: u8 = 15;
const USER_PIN_LEN: core::ops::RangeInclusive<usize> = 6..=16;

impl Pin {
    pub fn new(value: &[u8], max_retries: u8, transport: bool) -> Result<Self, Sw> {
        let salt = crypto::random(16).map_err(|_| Sw::UNKNOWN)?.to_vec();
        let hash = pin_hash(&salt, value);
        let length = u8::try_from(value.len()).map_err(|_| Sw::WRONG_DATA)?;
        Ok(Self {
            salt: HexBytes(salt),
            hash: SecretBytes::new(hash),
            length,
            max_retries,
            retries_left: max_retries,
            transport,
        })
    }

    fn matches(&self, candidate: &[u8]) -> bool {
        // Compare hashes so that neither the value nor its length leaks through timing.
        bool::from(pin_hash(&self.salt.0, candidate).ct_eq(&self.hash.0))
    }

    fn status(&self) -> Sw {
        if self.retries_left == 0 {
            Sw::AUTH_METHOD_BLOCKED
        } else {
            Sw::verify_failed(self.retries_left)
        }
    }
}

fn pin_hash(salt: &[u8], value: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(value);
    h.finalize().to_vec()
}

/// Which PIN a command addresses.
#[derive(Clone, Copy)]
enum PinRef {
    User,
    So,
}

impl PinRef {
    fn from_p2(p2: u8) -> Result<Self, Sw> {
        match p2 {
            USER_PIN => Ok(Self::User),
            SO_PIN => Ok(Self::So),
            _ => Err(Sw::INCORRECT_P1P2),
        }
    }

    fn get(self, s: &State) -> Result<&Pin, Sw> {
        let c = s.config.as_ref().ok_or(Sw::REFERENCE_NOT_FOUND)?;
        match self {
            Self::User => c.user_pin.as_ref().ok_or(Sw::REFERENCE_NOT_FOUND),
            Self::So => Ok(&c.so_pin),
        }
    }

    fn get_mut(self, s: &mut State) -> Result<&mut Pin, Sw> {
        let c = s.config.as_mut().ok_or(Sw::REFERENCE_NOT_FOUND)?;
        match self {
            Self::User => c.user_pin.as_mut().ok_or(Sw::REFERENCE_NOT_FOUND),
            Self::So => Ok(&mut c.so_pin),
        }
    }
}

enum PinCheck {
    Correct,
    /// Wrong value: a try was used up (the state changed); carries the status to answer.
    Wrong(Sw),
    Blocked,
}

/// Checks `candidate` against a PIN inside a state change: a blocked PIN stays blocked, a wrong
/// one loses a try, a right one gets its tries back.
fn check_pin(s: &mut State, which: PinRef, candidate: &[u8]) -> Result<PinCheck, Sw> {
    let pin = which.get_mut(s)?;
    if pin.retries_left == 0 {
        return Ok(PinCheck::Blocked);
    }
    if pin.matches(candidate) {
        pin.retries_left = pin.max_retries;
        Ok(PinCheck::Correct)
    } else {
        pin.retries_left -= 1;
        Ok(PinCheck::Wrong(pin.status()))
    }
}

impl<P: Persist> Applet<P> {
    /// Like `mutate` after a PIN check, where a failed check is itself a change that must be
    /// stored (the lost try) before the command fails.
    fn pin_checked<T>(
        &mut self,
        which: PinRef,
        candidate: &[u8],
        then: impl FnOnce(&mut State) -> Result<T, Sw>,
    ) -> Result<T, Sw> {
        let mut failure = None;
        let out = self.mutate(|s| match check_pin(s, which, candidate)? {
            PinCheck::Correct => then(s).map(Some),
            PinCheck::Blocked => Err(Sw::AUTH_METHOD_BLOCKED),
            PinCheck::Wrong(sw) => {
                // Keep the change (the lost try) but fail the command.
                failure = Some(sw);
                Ok(None)
            }
        })?;
        out.ok_or(failure.unwrap_or(Sw::UNKNOWN))
    }

    pub(crate) fn initialize(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        if cmd.p1 != 0 || cmd.p2 != 0 {
            return Err(Sw::INCORRECT_P1P2);
        }
        if cmd.data.is_empty() {
            // Status form: free memory (4) ‖ 00 ‖ version major ‖ minor.
            let free = u32::try_from(self.free_memory()).unwrap_or(u32::MAX);
            let mut out = free.to_be_bytes().to_vec();
            out.extend_from_slice(&[0x00, crate::VERSION.0, crate::VERSION.1]);
            return Ok(Response::ok(out));
        }
        self.initialize_device(cmd.data)?;
        Ok(Response::ok(Vec::new()))
    }

    /// INITIALIZE DEVICE proper (also reached through the applet's personalization).
    pub(crate) fn initialize_device(&mut self, data: &[u8]) -> Result<(), Sw> {
        let p = InitParams::parse(data)?;
        let so_pin = p.so_pin.ok_or(Sw::WRONG_DATA)?;
        let new_config = Config {
            options: p.options,
            user_pin: match p.user_pin {
                Some(pin) => Some(Pin::new(
                    pin,
                    p.retries,
                    p.options & Config::OPT_TRANSPORT_PIN != 0,
                )?),
                None if p.pka.is_some() => None,
                None => return Err(Sw::WRONG_DATA),
            },
            so_pin: Pin::new(so_pin, SO_PIN_TRIES, false)?,
            dkek_shares: p.dkek_shares,
            // `92 00`: the element makes up a random DKEK of its own.
            dkek: match p.dkek_shares {
                Some(n) => Some(Dkek::new(n).map_err(|_| Sw::UNKNOWN)?),
                None => None,
            },
            pka: p.pka,
            domain_count: p.domains,
            domains: Vec::new(),
            pka_keys: Vec::new(),
        };
        let mut new_config = Some(new_config);
        let wipe = move |s: &mut State| {
            // Everything goes except the device identity (PrK.DevAut and EF.C_DevAut).
            s.keys.clear();
            s.files.retain(|f, _| *f == fid::C_DEVAUT);
            s.config = new_config.take();
            Ok(())
        };
        if self.state.config.is_some() {
            // Re-initialization needs the current initialization code.
            self.pin_checked(PinRef::So, so_pin, wipe).map_err(|sw| {
                if sw.retries_left().is_some() {
                    Sw::SECURITY_STATUS_NOT_SATISFIED
                } else {
                    sw
                }
            })?;
        } else {
            self.mutate(wipe)?;
        }
        self.invalidate_keys();
        self.session.user_verified = false;
        self.session.pin_verified = false;
        self.session.pka_done.clear();
        self.session.current_ef = None;
        Ok(())
    }

    fn free_memory(&self) -> usize {
        let used: usize = self.state.files.values().map(|f| f.0.len()).sum();
        crate::applet::MEMORY_SIZE.saturating_sub(used)
    }

    pub(crate) fn verify(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        if cmd.p1 != 0 {
            return Err(Sw::INCORRECT_P1P2);
        }
        let which = PinRef::from_p2(cmd.p2)?;
        let pin = which.get(&self.state)?;
        if cmd.data.is_empty() {
            // Status query.
            return Err(match which {
                PinRef::User if self.session.user_verified => return Ok(Response::ok(Vec::new())),
                PinRef::User if pin.retries_left > 0 && pin.transport => {
                    Sw::REFERENCE_DATA_NOT_USABLE
                }
                _ => pin.status(),
            });
        }
        if matches!(which, PinRef::User) && pin.transport && pin.retries_left > 0 {
            return Err(Sw::REFERENCE_DATA_NOT_USABLE);
        }
        self.pin_checked(which, cmd.data, |_| Ok(()))?;
        if matches!(which, PinRef::User) {
            self.session.pin_verified = true;
            self.update_user();
        }
        Ok(Response::ok(Vec::new()))
    }

    pub(crate) fn change_reference_data(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        if cmd.p1 != 0 {
            return Err(Sw::INCORRECT_P1P2);
        }
        let which = PinRef::from_p2(cmd.p2)?;
        let old_len = match which {
            PinRef::User => usize::from(which.get(&self.state)?.length),
            PinRef::So => SO_PIN_LEN,
        };
        if cmd.data.len() <= old_len {
            return Err(Sw::WRONG_LENGTH);
        }
        let (old, new) = cmd.data.split_at(old_len);
        let valid_len = match which {
            PinRef::User => USER_PIN_LEN.contains(&new.len()),
            PinRef::So => new.len() == SO_PIN_LEN,
        };
        if !valid_len {
            return Err(Sw::WRONG_LENGTH);
        }
        self.pin_checked(which, old, |s| {
            let pin = which.get_mut(s)?;
            *pin = Pin::new(new, pin.max_retries, false)?;
            Ok(())
        })?;
        if matches!(which, PinRef::User) {
            self.session.pin_verified = true;
            self.update_user();
        }
        Ok(Response::ok(Vec::new()))
    }

    pub(crate) fn reset_retry_counter(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        if cmd.p2 != USER_PIN {
            return Err(Sw::INCORRECT_P1P2);
        }
        let config = self.require_initialized()?;
        if config.options & Config::OPT_RESET_RETRY_COUNTER == 0 {
            return Err(Sw::CONDITIONS_NOT_SATISFIED);
        }
        if config.user_pin.is_none() {
            return Err(Sw::REFERENCE_NOT_FOUND);
        }
        let new_pin = match cmd.p1 {
            0x00 => {
                let new = cmd.data.get(SO_PIN_LEN..).ok_or(Sw::WRONG_LENGTH)?;
                if !USER_PIN_LEN.contains(&new.len()) {
                    return Err(Sw::WRONG_LENGTH);
                }
                Some(new)
            }
            0x01 if cmd.data.len() == SO_PIN_LEN => None,
            0x01 => return Err(Sw::WRONG_LENGTH),
            _ => return Err(Sw::INCORRECT_P1P2),
        };
        self.pin_checked(PinRef::So, &cmd.data[..SO_PIN_LEN], |s| {
            let pin = PinRef::User.get_mut(s)?;
            match new_pin {
                Some(v) => *pin = Pin::new(v, pin.max_retries, false)?,
                None => pin.retries_left = pin.max_retries,
            }
            Ok(())
        })?;
        Ok(Response::ok(Vec::new()))
    }

    /// MANAGE KEY DOMAIN / IMPORT DKEK SHARE (`80 52 P1 KD`): P1 `00` query or import a share,
    /// `01` set the domain up for N shares, `03` delete it (refused while keys belong to it),
    /// `04` forget its DKEK and start the import again. Answers `total ‖ outstanding ‖ KCV`
    /// (10 bytes; the KCV zero until every share is in), except `03`.
    pub(crate) fn dkek_share(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        let kd = cmd.p2;
        let Some(config) = self.state.config.as_ref() else {
            // Not initialized: an empty status for the query sc-hsm-tool makes anyway.
            return match (cmd.p1, cmd.data.is_empty()) {
                (0, true) => Ok(Response::ok(vec![0; 10])),
                _ => Err(Sw::CONDITIONS_NOT_SATISFIED),
            };
        };
        let count = config.domain_count();
        if count == 0 {
            // Neither DKEK nor key domains: answer an empty status to queries.
            return match (cmd.p1, cmd.data.is_empty()) {
                (0, true) if kd == 0 => Ok(Response::ok(vec![0; 10])),
                _ => Err(Sw::INS_NOT_SUPPORTED),
            };
        }
        if kd >= count {
            return Err(Sw::INCORRECT_P1P2);
        }
        match cmd.p1 {
            0x00 if cmd.data.is_empty() => {}
            0x00 => {
                if cmd.data.len() != 32 {
                    return Err(Sw::WRONG_LENGTH);
                }
                if kd != 0 {
                    self.require_user()?;
                }
                let config = self.require_initialized()?;
                match config.domain(kd) {
                    None => return Err(Sw::REFERENCE_NOT_FOUND),
                    Some((_, d)) if d.outstanding == 0 => return Err(Sw::COMMAND_NOT_ALLOWED),
                    Some(_) => {}
                }
                self.mutate(|s| {
                    let c = s.config.as_mut().ok_or(Sw::UNKNOWN)?;
                    let (_, d) = c.domain(kd).ok_or(Sw::UNKNOWN)?;
                    let mut d = d.clone();
                    for (a, b) in d.value.0.iter_mut().zip(cmd.data) {
                        *a ^= b;
                    }
                    d.outstanding -= 1;
                    c.set_domain(kd, Some(d));
                    Ok(())
                })?;
            }
            0x01 => {
                self.require_user()?;
                let [n] = cmd.data else {
                    return Err(Sw::WRONG_LENGTH);
                };
                if self.require_initialized()?.domain(kd).is_some() {
                    return Err(Sw::INCORRECT_P1P2);
                }
                let d = Dkek::new(*n).map_err(|_| Sw::UNKNOWN)?;
                self.mutate(|s| {
                    s.config
                        .as_mut()
                        .ok_or(Sw::UNKNOWN)?
                        .set_domain(kd, Some(d));
                    Ok(())
                })?;
            }
            0x03 => {
                self.require_user()?;
                if self.require_initialized()?.domain(kd).is_none() {
                    return Err(Sw::REFERENCE_NOT_FOUND);
                }
                if self
                    .state
                    .keys
                    .values()
                    .any(|k| k.domain.unwrap_or(0) == kd)
                {
                    return Err(Sw::FILE_EXISTS);
                }
                self.mutate(|s| {
                    s.config.as_mut().ok_or(Sw::UNKNOWN)?.set_domain(kd, None);
                    Ok(())
                })?;
                return Ok(Response::ok(Vec::new()));
            }
            0x04 => {
                self.require_user()?;
                let total = match self.require_initialized()?.domain(kd) {
                    Some((total, _)) => total,
                    None => return Err(Sw::REFERENCE_NOT_FOUND),
                };
                let d = Dkek::new(total).map_err(|_| Sw::UNKNOWN)?;
                self.mutate(|s| {
                    s.config
                        .as_mut()
                        .ok_or(Sw::UNKNOWN)?
                        .set_domain(kd, Some(d));
                    Ok(())
                })?;
            }
            _ => return Err(Sw::INCORRECT_P1P2),
        }
        let (total, dkek) = self
            .require_initialized()?
            .domain(kd)
            .ok_or(Sw::REFERENCE_NOT_FOUND)?;
        // Always 10 bytes (OpenSC reads them all); the key check value once complete.
        let mut out = vec![total, dkek.outstanding];
        if dkek.outstanding == 0 {
            out.extend_from_slice(&crate::key_blob::kcv(&dkek.value.0));
        } else {
            out.extend_from_slice(&[0; 8]);
        }
        Ok(Response::ok(out))
    }
}

/// The TLVs of INITIALIZE DEVICE.
struct InitParams<'a> {
    options: u16,
    user_pin: Option<&'a [u8]>,
    so_pin: Option<&'a [u8]>,
    retries: u8,
    dkek_shares: Option<u8>,
    pka: Option<(u8, u8)>,
    domains: u8,
}

impl<'a> InitParams<'a> {
    fn parse(data: &'a [u8]) -> Result<Self, Sw> {
        let mut p = InitParams {
            options: 0x0001,
            user_pin: None,
            so_pin: None,
            retries: 3,
            dkek_shares: None,
            pka: None,
            domains: 0,
        };
        for item in tlv::TlvIter::new(data) {
            let item = item.map_err(|_| Sw::WRONG_DATA)?;
            match (item.tag.0, item.value) {
                (0x80, [hi, lo]) => p.options = u16::from_be_bytes([*hi, *lo]),
                (0x81, pin) if USER_PIN_LEN.contains(&pin.len()) => p.user_pin = Some(pin),
                (0x82, so) if so.len() == SO_PIN_LEN => p.so_pin = Some(so),
                (0x91, [n]) if (1..=10).contains(n) => p.retries = *n,
                (0x92, [n]) => p.dkek_shares = Some(*n),
                (0x93, [m, n]) if (1..=90).contains(m) && (1..=*m).contains(n) => {
                    p.pka = Some((*m, *n))
                }
                (0x97, [n]) if (1..=16).contains(n) => p.domains = *n,
                // Biometric servers are not supported by this element.
                _ => return Err(Sw::WRONG_DATA),
            }
        }
        // A short PIN must not come with many tries (6 digits: at most 3, 7 digits: at most 5).
        if let Some(pin) = p.user_pin {
            let max = match pin.len() {
                6 => 3,
                7 => 5,
                _ => 10,
            };
            if p.retries > max {
                return Err(Sw::WRONG_DATA);
            }
        }
        Ok(p)
    }
}
