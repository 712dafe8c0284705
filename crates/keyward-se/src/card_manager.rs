//! The card manager: a GlobalPlatform Issuer Security Domain in front of the SmartCard-HSM
//! applet, for elements made blank (`se new --blank`). It opens SCP03 secure channels with its
//! key sets (the Key for Secure Transport first, card-unique keys after production) and manages
//! the card content: INSTALL of the applet from its built-in package, personalization (INSTALL
//! [for personalization] + STORE DATA routed to the applet), PUT KEY, GET STATUS, SET STATUS,
//! DELETE and GET DATA. Facts from GPCS 2.3.1 and Amendment D; see the reference, §A.9–A.11.

use keyward_apdu::{CommandView, Response, StatusWord as Sw, tlv};
use keyward_sm::scp03::{self, Handshake, Scp03Session, StaticKeys};
use zeroize::Zeroizing;

use crate::applet::{AID, Applet, CmdResult, Persist};
use crate::state::{AppletEntry, CardContent, HexBytes, ScpKeySet, State, life_cycle};

/// The Issuer Security Domain's AID (GlobalPlatform's default).
pub const ISD_AID: &[u8] = &[0xA0, 0x00, 0x00, 0x01, 0x51, 0x00, 0x00, 0x00];

/// The built-in Executable Load File of the SmartCard-HSM applet: the applet's OID arc without
/// its last component. Its one Executable Module has the applet's AID.
pub const PACKAGE_AID: &[u8] = &[0xE8, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x81, 0xC3, 0x1F, 0x02];

/// Version of the package in GET STATUS (major, minor).
const PACKAGE_VERSION: [u8; 2] = [crate::VERSION.0, crate::VERSION.1];

/// The ISD's privileges (Security Domain, Card Lock, Card Terminate, Card Reset, CVM
/// Management; Trusted Path, Authorized Management, Token Management, Global Delete, Global
/// Lock, Global Registry, Final Application; Receipt Generation).
const ISD_PRIVILEGES: [u8; 3] = [0x9E, 0xFE, 0x80];

/// Key version reserved for the initial (transport) key set.
const INITIAL_KVN: u8 = 0xFF;

/// SCP03 `i` parameter: pseudo-random card challenge, R-MAC and R-ENCRYPTION supported.
const SCP03_I: u8 = 0x70;

/// Data grouping identifiers the applet accepts in its personalization (STORE DATA, DGI format).
pub mod dgi {
    /// Generate PrK.DevAut. Value: `5F20` CHR (the device id) and optionally `42` CAR. Needs
    /// STORE DATA case 4: the response is the key's self-signed CV request.
    pub const GENERATE_DEVAUT: u16 = 0x0101;
    /// INITIALIZE DEVICE. Value: the data field of the applet's INITIALIZE DEVICE command.
    pub const INITIALIZE: u16 = 0x0102;
    /// A trusted root CV certificate for the element (PSO VERIFY CERTIFICATE starts there).
    pub const ROOT: u16 = 0x0104;
    /// EF.C_DevAut: device certificate ‖ DICA certificate, issued for PrK.DevAut.
    pub const C_DEVAUT: u16 = 0x0103;
}

/// The card manager's volatile state: the secure channel and the personalization session.
#[derive(Default)]
pub(crate) struct IsdSession {
    /// INITIALIZE UPDATE answered; EXTERNAL AUTHENTICATE must follow.
    pending: Option<Pending>,
    channel: Option<Channel>,
    perso: Option<Perso>,
}

struct Pending {
    handshake: Handshake,
    kvn: u8,
}

struct Channel {
    scp: Scp03Session,
    /// Key version the channel was opened with (its Key-DEK protects PUT KEY).
    kvn: u8,
}

/// A personalization session of the applet.
#[derive(Default)]
struct Perso {
    next_block: u8,
    /// STORE DATA payload not yet forming a whole DGI.
    buffer: Zeroizing<Vec<u8>>,
}

/// SELECT by (partial, at least RID-long) name of the ISD.
pub(crate) fn is_isd_aid(name: &[u8]) -> bool {
    name.len() >= 5 && ISD_AID.starts_with(name)
}

/// The SELECT response of the ISD: `6F{84 AID, A5{9F65 max command data}}`.
pub(crate) fn isd_fci() -> Result<Vec<u8>, Sw> {
    let mut a5 = Vec::new();
    tlv::write(&mut a5, 0x9F65, &[0xFF]).map_err(|_| Sw::UNKNOWN)?;
    let mut v = Vec::new();
    tlv::write(&mut v, 0x84, ISD_AID).map_err(|_| Sw::UNKNOWN)?;
    tlv::write(&mut v, 0xA5, &a5).map_err(|_| Sw::UNKNOWN)?;
    tlv::encode(0x6F, &v).map_err(|_| Sw::UNKNOWN)
}

impl ScpKeySet {
    fn keys(&self) -> Result<StaticKeys, Sw> {
        StaticKeys::new(&self.enc.0, &self.mac.0, &self.dek.0).map_err(|_| Sw::MEMORY_FAILURE)
    }
}

fn card_mut(s: &mut State) -> Result<&mut CardContent, Sw> {
    s.card.as_mut().ok_or(Sw::CONDITIONS_NOT_SATISFIED)
}

/// Removes everything the applet instance holds (its deletion or a fresh installation).
fn wipe_applet(s: &mut State) {
    s.device = None;
    s.config = None;
    s.keys.clear();
    s.files.clear();
    s.roots.clear();
}

impl<P: Persist> Applet<P> {
    fn card(&self) -> Result<&CardContent, Sw> {
        self.state.card.as_ref().ok_or(Sw::CONDITIONS_NOT_SATISFIED)
    }

    /// Whether SELECT may reach the SmartCard-HSM applet: always without a card manager,
    /// otherwise once installed and made selectable, neither it nor the card locked.
    pub(crate) fn applet_selectable(&self) -> bool {
        let Some(card) = &self.state.card else {
            return true;
        };
        !matches!(
            card.life_cycle,
            life_cycle::CARD_LOCKED | life_cycle::TERMINATED
        ) && card.applet.as_ref().is_some_and(|a| {
            a.life_cycle & life_cycle::APP_LOCKED_BIT == 0
                && a.life_cycle & life_cycle::APP_SELECTABLE == life_cycle::APP_SELECTABLE
        })
    }

    /// A command for the selected ISD (anything but SELECT by name).
    pub(crate) fn card_manager_transmit(&mut self, apdu: &[u8], cmd: &CommandView<'_>) -> Response {
        if cmd.cla & 0x03 != 0 || cmd.cla & 0x10 != 0 {
            return Response::status(Sw(0x6881));
        }
        if cmd.cla & 0x04 != 0 {
            if cmd.ins == 0x82 {
                return self.external_authenticate(apdu);
            }
            return self.secured_command(apdu);
        }
        let result = match (cmd.cla & 0xF0, cmd.ins) {
            (0x80, 0x50) => self.initialize_update(cmd),
            (0x00 | 0x80, 0xCA | 0xCB) => self.get_data(cmd),
            // Authenticated at security level 00: commands travel without C-MAC.
            (0x80, _)
                if self
                    .session
                    .isd
                    .channel
                    .as_ref()
                    .is_some_and(|c| c.scp.level() & scp03::level::C_MAC == 0) =>
            {
                self.isd_command(cmd)
            }
            _ => {
                // A command below the session's security level ends the session.
                self.session.isd = IsdSession::default();
                Err(Sw::SECURITY_STATUS_NOT_SATISFIED)
            }
        };
        result.unwrap_or_else(Response::status)
    }

    /// Unwraps a command under the secure channel, processes it and protects the response.
    /// Any failure to unwrap ends the channel (and the personalization session with it).
    fn secured_command(&mut self, apdu: &[u8]) -> Response {
        let Some(channel) = self.session.isd.channel.as_mut() else {
            return Response::status(Sw::SECURITY_STATUS_NOT_SATISFIED);
        };
        let plain = match channel.scp.unwrap_command(apdu) {
            Ok(plain) => plain,
            Err(e) => {
                tracing::debug!(error = %e, "SCP03 command rejected; secure channel closed");
                self.session.isd = IsdSession::default();
                return Response::status(Sw::SECURITY_STATUS_NOT_SATISFIED);
            }
        };
        let response = match CommandView::parse(&plain) {
            Ok(cmd) => self.isd_command(&cmd).unwrap_or_else(Response::status),
            Err(_) => Response::status(Sw::WRONG_LENGTH),
        };
        let Some(channel) = self.session.isd.channel.as_mut() else {
            return response;
        };
        match channel
            .scp
            .wrap_response(&response.data, response.sw.to_bytes())
        {
            Ok(wrapped) => {
                let n = wrapped.len() - 2;
                Response::new(wrapped[..n].to_vec(), response.sw)
            }
            Err(_) => {
                self.session.isd = IsdSession::default();
                Response::status(Sw::UNKNOWN)
            }
        }
    }

    /// The card-content commands, unwrapped, on an authenticated channel.
    fn isd_command(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        let lc = self.card()?.life_cycle;
        if lc == life_cycle::TERMINATED && !matches!(cmd.ins, 0xCA | 0xCB) {
            return Err(Sw::CONDITIONS_NOT_SATISFIED);
        }
        match cmd.ins {
            0xE6 => self.install(cmd),
            0xE2 => self.store_data(cmd),
            0xD8 => self.put_key(cmd),
            0xF2 => self.get_status(cmd),
            0xF0 => self.set_status(cmd),
            0xE4 => self.delete(cmd),
            0xCA | 0xCB => self.get_data(cmd),
            _ => Err(Sw::INS_NOT_SUPPORTED),
        }
    }

    /// Refuses content and key changes in CARD_LOCKED (and TERMINATED).
    fn require_content_changes(&self) -> Result<(), Sw> {
        match self.card()?.life_cycle {
            life_cycle::CARD_LOCKED | life_cycle::TERMINATED => Err(Sw::CONDITIONS_NOT_SATISFIED),
            _ => Ok(()),
        }
    }

    // ---- secure channel -----------------------------------------------------------------------

    fn initialize_update(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        if cmd.p2 != 0 {
            return Err(Sw::INCORRECT_P1P2);
        }
        if cmd.data.len() != 8 {
            return Err(Sw::WRONG_LENGTH);
        }
        // A new INITIALIZE UPDATE ends whatever channel was open.
        self.session.isd = IsdSession::default();
        let card = self.card()?;
        if card.life_cycle == life_cycle::TERMINATED {
            return Err(Sw::CONDITIONS_NOT_SATISFIED);
        }
        let (kvn, set) = match cmd.p1 {
            0 => card.key_sets.iter().next(),
            v => card.key_sets.get_key_value(&v),
        }
        .ok_or(Sw::REFERENCE_NOT_FOUND)?;
        let (kvn, keys) = (*kvn, set.keys()?);
        let kdd: [u8; 10] = card
            .kdd
            .0
            .as_slice()
            .try_into()
            .map_err(|_| Sw::MEMORY_FAILURE)?;
        let mut counter = card.counter;
        let greeting = scp03::card_initialize_update(
            &keys,
            kvn,
            SCP03_I,
            &mut counter,
            &kdd,
            ISD_AID,
            cmd.data,
        )
        .map_err(|e| e.status_word())?;
        // The counter is stored before the card challenge derived from it leaves the card.
        self.mutate(|s| {
            card_mut(s)?.counter = counter;
            Ok(())
        })?;
        self.session.isd.pending = Some(Pending {
            handshake: greeting.handshake,
            kvn,
        });
        Ok(Response::ok(greeting.response))
    }

    fn external_authenticate(&mut self, apdu: &[u8]) -> Response {
        let Some(Pending { handshake, kvn }) = self.session.isd.pending.take() else {
            return Response::status(Sw::CONDITIONS_NOT_SATISFIED);
        };
        let mut scp = handshake.session;
        match scp.card_external_authenticate(apdu, &handshake.host_cryptogram) {
            Ok(()) => {
                self.session.isd.channel = Some(Channel { scp, kvn });
                Response::ok(Vec::new())
            }
            Err(e) => {
                tracing::debug!(error = %e, "EXTERNAL AUTHENTICATE failed");
                Response::status(Sw(0x6300))
            }
        }
    }

    // ---- INSTALL ------------------------------------------------------------------------------

    fn install(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        if cmd.p1 & 0x80 != 0 || cmd.p2 != 0 {
            // Chained INSTALL is not needed for anything this card holds.
            return Err(Sw::INCORRECT_P1P2);
        }
        let mut f = Lv(cmd.data);
        match cmd.p1 {
            0x04 | 0x0C => {
                let (elf, module, instance) = (f.short()?, f.short()?, f.short()?);
                let privileges = f.short()?;
                let params = f.ber()?;
                let _token = f.ber()?;
                f.end()?;
                if elf != PACKAGE_AID || module != AID {
                    return Err(Sw::REFERENCE_NOT_FOUND);
                }
                // The package offers one instance, under the AID hosts select.
                if instance != AID {
                    return Err(Sw::WRONG_DATA);
                }
                check_privileges(privileges, cmd.p1 == 0x0C)?;
                let params = tlv::parse_all(params).map_err(|_| Sw::WRONG_DATA)?;
                if !params.iter().any(|t| t.tag.0 == 0xC9) {
                    return Err(Sw::WRONG_DATA);
                }
                self.require_content_changes()?;
                if self.card()?.applet.is_some() {
                    return Err(Sw::CONDITIONS_NOT_SATISFIED);
                }
                let entry = AppletEntry {
                    life_cycle: if cmd.p1 == 0x0C {
                        life_cycle::APP_SELECTABLE
                    } else {
                        life_cycle::APP_INSTALLED
                    },
                    privileges: HexBytes(privileges.to_vec()),
                };
                self.mutate(|s| {
                    wipe_applet(s);
                    card_mut(s)?.applet = Some(entry);
                    Ok(())
                })?;
                self.invalidate_keys();
                Ok(Response::ok(vec![0x00]))
            }
            0x08 => {
                let (empty1, empty2, instance) = (f.short()?, f.short()?, f.short()?);
                let privileges = f.short()?;
                let _params = f.ber()?;
                let _token = f.ber()?;
                f.end()?;
                if !empty1.is_empty() || !empty2.is_empty() {
                    return Err(Sw::WRONG_DATA);
                }
                check_privileges(privileges, true)?;
                self.require_content_changes()?;
                let entry = self.applet_entry(instance)?;
                if entry.life_cycle != life_cycle::APP_INSTALLED {
                    return Err(Sw::CONDITIONS_NOT_SATISFIED);
                }
                self.mutate(|s| {
                    if let Some(a) = card_mut(s)?.applet.as_mut() {
                        a.life_cycle = life_cycle::APP_SELECTABLE;
                    }
                    Ok(())
                })?;
                Ok(Response::ok(vec![0x00]))
            }
            0x20 => {
                let (empty1, empty2, instance) = (f.short()?, f.short()?, f.short()?);
                let rest = (f.short()?, f.ber()?, f.ber()?);
                f.end()?;
                if !empty1.is_empty() || !empty2.is_empty() || rest != (&[][..], &[][..], &[][..]) {
                    return Err(Sw::WRONG_DATA);
                }
                self.require_content_changes()?;
                let entry = self.applet_entry(instance)?;
                // The device identity is set once: a personalized applet takes no more.
                if entry.life_cycle & life_cycle::APP_LOCKED_BIT != 0
                    || entry.life_cycle == life_cycle::APP_PERSONALIZED
                {
                    return Err(Sw::CONDITIONS_NOT_SATISFIED);
                }
                self.session.isd.perso = Some(Perso::default());
                Ok(Response::ok(Vec::new()))
            }
            _ => Err(Sw::INCORRECT_P1P2),
        }
    }

    /// The registry entry of the applet instance named `aid`.
    fn applet_entry(&self, aid: &[u8]) -> Result<AppletEntry, Sw> {
        match &self.card()?.applet {
            Some(a) if aid == AID => Ok(a.clone()),
            _ => Err(Sw::REFERENCE_NOT_FOUND),
        }
    }

    // ---- personalization ----------------------------------------------------------------------

    fn store_data(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        // STORE DATA for the ISD's own data objects is not offered; outside a personalization
        // session it is refused.
        let Some(mut perso) = self.session.isd.perso.take() else {
            return Err(Sw::CONDITIONS_NOT_SATISFIED);
        };
        // A rejected block ends the session (GPCS resets the block counter on it).
        let response = self.store_data_block(&mut perso, cmd)?;
        if cmd.p1 & 0x80 == 0 {
            self.session.isd.perso = Some(perso);
        } else {
            self.finish_personalization()?;
        }
        Ok(response)
    }

    fn store_data_block(&mut self, perso: &mut Perso, cmd: &CommandView<'_>) -> CmdResult {
        if cmd.p2 != perso.next_block {
            return Err(Sw::INCORRECT_P1P2);
        }
        // DGI structure, no application-level encryption (C-DECRYPTION protects the values).
        if cmd.p1 & 0x7E != 0x08 {
            return Err(Sw::INCORRECT_P1P2);
        }
        let case4 = cmd.p1 & 0x01 != 0;
        perso.next_block = perso
            .next_block
            .checked_add(1)
            .ok_or(Sw::NOT_ENOUGH_MEMORY)?;
        perso.buffer.extend_from_slice(cmd.data);
        let mut out = Vec::new();
        while let Some((tag, value, used)) = next_dgi(&perso.buffer)? {
            out.extend(self.personalize(tag, &value, case4)?);
            perso.buffer.drain(..used);
        }
        if cmd.p1 & 0x80 != 0 && !perso.buffer.is_empty() {
            return Err(Sw::WRONG_DATA);
        }
        Ok(Response::ok(out))
    }

    /// The last block: the applet is personalized once its device identity is complete.
    fn finish_personalization(&mut self) -> Result<(), Sw> {
        let complete = self.state.device.is_some()
            && self.state.files.contains_key(&crate::applet::fid::C_DEVAUT);
        if complete {
            self.mutate(|s| {
                if let Some(a) = card_mut(s)?.applet.as_mut() {
                    a.life_cycle = life_cycle::APP_PERSONALIZED;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    // ---- keys ---------------------------------------------------------------------------------

    fn put_key(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        // P2 = key identifier 1 with "more keys" (b8): a whole SCP03 key set.
        if cmd.p1 & 0x80 != 0 || cmd.p2 != 0x81 {
            return Err(Sw::INCORRECT_P1P2);
        }
        self.require_content_changes()?;
        let kvn = self
            .session
            .isd
            .channel
            .as_ref()
            .ok_or(Sw::SECURITY_STATUS_NOT_SATISFIED)?
            .kvn;
        let dek = self
            .card()?
            .key_sets
            .get(&kvn)
            .ok_or(Sw::CONDITIONS_NOT_SATISFIED)?
            .dek
            .clone();
        let (new_kvn, keys) = scp03::parse_put_key(&dek.0, cmd.data).map_err(|e| match e {
            keyward_sm::SmError::BadMac => Sw::SECURITY_STATUS_NOT_SATISFIED,
            _ => Sw::WRONG_DATA,
        })?;
        if !(0x01..=0x7F).contains(&new_kvn) {
            return Err(Sw::WRONG_DATA);
        }
        // P1 names the key set to replace (b8 would mean "more commands", so the initial key
        // set, KVN FF, cannot be named): adding a key set while the channel runs on the
        // initial keys replaces them.
        let replace = match cmd.p1 {
            0 if kvn == INITIAL_KVN => INITIAL_KVN,
            p1 => p1,
        };
        let set = ScpKeySet {
            enc: crate::state::SecretBytes::new(keys.enc.to_vec()),
            mac: crate::state::SecretBytes::new(keys.mac.to_vec()),
            dek: crate::state::SecretBytes::new(keys.dek.to_vec()),
        };
        self.mutate(|s| {
            let card = card_mut(s)?;
            if replace != 0 && card.key_sets.remove(&replace).is_none() {
                return Err(Sw::REFERENCE_NOT_FOUND);
            }
            if card.key_sets.contains_key(&new_kvn) {
                return Err(Sw::WRONG_DATA);
            }
            card.key_sets.insert(new_kvn, set);
            Ok(())
        })?;
        Ok(Response::ok(scp03::put_key_response(new_kvn, &keys)))
    }

    // ---- registry -----------------------------------------------------------------------------

    fn get_status(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        // TLV format only; every answer fits one response, so there is never a "next".
        if cmd.p2 != 0x02 {
            return Err(Sw::INCORRECT_P1P2);
        }
        let mut criterion: Option<&[u8]> = None;
        for item in tlv::TlvIter::new(cmd.data) {
            let item = item.map_err(|_| Sw::WRONG_DATA)?;
            if item.tag.0 == 0x4F {
                criterion = Some(item.value);
            }
        }
        let criterion = criterion.ok_or(Sw::WRONG_DATA)?;
        let card = self.card()?;
        let mut entries: Vec<(&[u8], Vec<u8>)> = Vec::new();
        let e = |aid: &[u8], fields: &[(u32, &[u8])]| -> Result<Vec<u8>, Sw> {
            let mut v = Vec::new();
            tlv::write(&mut v, 0x4F, aid).map_err(|_| Sw::UNKNOWN)?;
            for (t, val) in fields {
                tlv::write(&mut v, *t, val).map_err(|_| Sw::UNKNOWN)?;
            }
            tlv::encode(0xE3, &v).map_err(|_| Sw::UNKNOWN)
        };
        match cmd.p1 {
            0x80 => entries.push((
                &[],
                e(
                    ISD_AID,
                    &[(0x9F70, &[card.life_cycle]), (0xC5, &ISD_PRIVILEGES)],
                )?,
            )),
            0x40 => {
                if let Some(a) = &card.applet {
                    let mut privileges = a.privileges.0.clone();
                    privileges.resize(3, 0);
                    entries.push((
                        AID,
                        e(
                            AID,
                            &[
                                (0x9F70, &[a.life_cycle]),
                                (0xC5, &privileges),
                                (0xC4, PACKAGE_AID),
                                (0xCC, ISD_AID),
                            ],
                        )?,
                    ));
                }
            }
            0x20 | 0x10 => {
                let mut fields: Vec<(u32, &[u8])> =
                    vec![(0x9F70, &[0x01]), (0xCE, &PACKAGE_VERSION)];
                if cmd.p1 == 0x10 {
                    fields.push((0x84, AID));
                }
                fields.push((0xCC, ISD_AID));
                entries.push((PACKAGE_AID, e(PACKAGE_AID, &fields)?));
            }
            _ => return Err(Sw::INCORRECT_P1P2),
        }
        let out: Vec<u8> = entries
            .into_iter()
            .filter(|(aid, _)| cmd.p1 == 0x80 || aid.starts_with(criterion))
            .flat_map(|(_, e)| e)
            .collect();
        if out.is_empty() {
            return Err(Sw::REFERENCE_NOT_FOUND);
        }
        Ok(Response::ok(out))
    }

    fn set_status(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        use life_cycle::*;
        match cmd.p1 {
            0x80 => {
                let (from, to) = (self.card()?.life_cycle, cmd.p2);
                let allowed = matches!(
                    (from, to),
                    (OP_READY, INITIALIZED | SECURED)
                        | (INITIALIZED, SECURED)
                        | (SECURED, CARD_LOCKED)
                        | (CARD_LOCKED, SECURED)
                ) || (to == TERMINATED && from != TERMINATED);
                if !allowed {
                    return Err(Sw::CONDITIONS_NOT_SATISFIED);
                }
                self.mutate(|s| {
                    card_mut(s)?.life_cycle = to;
                    Ok(())
                })?;
                if to != SECURED && to != INITIALIZED {
                    // Locking or terminating the card deselects the applet's sessions.
                    self.invalidate_keys();
                }
            }
            0x40 => {
                self.require_content_changes()?;
                let entry = self.applet_entry(cmd.data)?;
                let lock = cmd.p2 & APP_LOCKED_BIT != 0;
                if lock == (entry.life_cycle & APP_LOCKED_BIT != 0) {
                    return Err(Sw::CONDITIONS_NOT_SATISFIED);
                }
                self.mutate(|s| {
                    if let Some(a) = card_mut(s)?.applet.as_mut() {
                        a.life_cycle ^= APP_LOCKED_BIT;
                    }
                    Ok(())
                })?;
            }
            _ => return Err(Sw::INCORRECT_P1P2),
        }
        Ok(Response::ok(Vec::new()))
    }

    fn delete(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        if cmd.p1 & 0x80 != 0 || !matches!(cmd.p2, 0x00 | 0x80) {
            return Err(Sw::INCORRECT_P1P2);
        }
        self.require_content_changes()?;
        let mut aid = None;
        for item in tlv::TlvIter::new(cmd.data) {
            let item = item.map_err(|_| Sw::WRONG_DATA)?;
            match item.tag.0 {
                0x4F => aid = Some(item.value),
                // Control reference template and delete token: no delegated management here.
                0xB6 | 0x9E => {}
                _ => return Err(Sw::WRONG_DATA),
            }
        }
        let aid = aid.ok_or(Sw::WRONG_DATA)?;
        if aid == PACKAGE_AID || aid == ISD_AID {
            // The package lives in immutable memory; the ISD cannot delete itself.
            return Err(Sw::CONDITIONS_NOT_SATISFIED);
        }
        self.applet_entry(aid)?;
        self.mutate(|s| {
            wipe_applet(s);
            card_mut(s)?.applet = None;
            Ok(())
        })?;
        self.invalidate_keys();
        Ok(Response::ok(vec![0x00]))
    }

    fn get_data(&mut self, cmd: &CommandView<'_>) -> CmdResult {
        let card = self.card()?;
        let value = match u16::from_be_bytes([cmd.p1, cmd.p2]) {
            0x0066 => card_recognition_data()?,
            0x00E0 => {
                let mut v = Vec::new();
                for (kvn, set) in &card.key_sets {
                    for id in 1..=3u8 {
                        let len = set.enc.0.len() as u8;
                        tlv::write(&mut v, 0xC0, &[id, *kvn, 0x88, len])
                            .map_err(|_| Sw::UNKNOWN)?;
                    }
                }
                tlv::encode(0xE0, &v).map_err(|_| Sw::UNKNOWN)?
            }
            0x00C1 => {
                let [_, a, b, c] = card.counter.to_be_bytes();
                tlv::encode(0xC1, &[a, b, c]).map_err(|_| Sw::UNKNOWN)?
            }
            _ => return Err(Sw::REFERENCE_NOT_FOUND),
        };
        Ok(Response::ok(value))
    }
}

/// Card recognition data ([GPCS] H.2): GP 2.3.1, SCP03 with i = 70.
fn card_recognition_data() -> Result<Vec<u8>, Sw> {
    const GP: [u8; 6] = [0x2A, 0x86, 0x48, 0x86, 0xFC, 0x6B];
    let oid = |suffix: &[u8]| -> Result<Vec<u8>, Sw> {
        tlv::encode(0x06, &[&GP[..], suffix].concat()).map_err(|_| Sw::UNKNOWN)
    };
    let mut v = oid(&[0x01])?;
    tlv::write(&mut v, 0x60, &oid(&[0x02, 0x02, 0x03, 0x01])?).map_err(|_| Sw::UNKNOWN)?;
    tlv::write(&mut v, 0x63, &oid(&[0x03])?).map_err(|_| Sw::UNKNOWN)?;
    tlv::write(&mut v, 0x64, &oid(&[0x04, 0x03, SCP03_I])?).map_err(|_| Sw::UNKNOWN)?;
    let inner = tlv::encode(0x73, &v).map_err(|_| Sw::UNKNOWN)?;
    tlv::encode(0x66, &inner).map_err(|_| Sw::UNKNOWN)
}

/// Privileges are 1 or 3 bytes; Card Reset only for an application made selectable now.
fn check_privileges(p: &[u8], selectable: bool) -> Result<(), Sw> {
    match p {
        [b, ..] if p.len() == 1 || p.len() == 3 => {
            if b & 0x04 != 0 && !selectable {
                return Err(Sw::WRONG_DATA);
            }
            // A Security Domain cannot be made from the applet's package.
            if b & 0x80 != 0 {
                return Err(Sw::WRONG_DATA);
            }
            Ok(())
        }
        _ => Err(Sw::WRONG_DATA),
    }
}

/// A DGI's tag, its value, and the bytes it took.
type Dgi = (u16, Zeroizing<Vec<u8>>, usize);

/// The next whole DGI in `buf`: tag, value, bytes used; `None` while it is incomplete. DGI
/// lengths are one byte (`00`–`FE`) or `FF` and two bytes.
fn next_dgi(buf: &[u8]) -> Result<Option<Dgi>, Sw> {
    let (tag, rest) = match buf {
        [t1, t2, rest @ ..] => (u16::from_be_bytes([*t1, *t2]), rest),
        _ => return Ok(None),
    };
    let (len, header) = match rest {
        [0xFF, h, l, ..] => (usize::from(u16::from_be_bytes([*h, *l])), 5),
        [0xFF, ..] | [] => return Ok(None),
        [l, ..] => (usize::from(*l), 3),
    };
    if tag == 0x0000 || tag == 0xFFFF {
        return Err(Sw::WRONG_DATA);
    }
    let end = header + len;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((tag, Zeroizing::new(buf[header..end].to_vec()), end)))
}

/// Reads the LV-coded fields of INSTALL.
struct Lv<'a>(&'a [u8]);

impl<'a> Lv<'a> {
    /// A field with a one-byte length.
    fn short(&mut self) -> Result<&'a [u8], Sw> {
        let (&l, rest) = self.0.split_first().ok_or(Sw::WRONG_DATA)?;
        self.take(usize::from(l), rest)
    }

    /// A field with a BER length (`00`–`80`, `81 xx`, `82 xx xx`); `80` is GP's legacy 128.
    fn ber(&mut self) -> Result<&'a [u8], Sw> {
        match self.0 {
            [0x81, l, rest @ ..] => self.take(usize::from(*l), rest),
            [0x82, h, l, rest @ ..] => self.take(usize::from(u16::from_be_bytes([*h, *l])), rest),
            [l, rest @ ..] if *l <= 0x80 => self.take(usize::from(*l), rest),
            _ => Err(Sw::WRONG_DATA),
        }
    }

    fn take(&mut self, n: usize, rest: &'a [u8]) -> Result<&'a [u8], Sw> {
        if rest.len() < n {
            return Err(Sw::WRONG_DATA);
        }
        let (v, tail) = rest.split_at(n);
        self.0 = tail;
        Ok(v)
    }

    fn end(self) -> Result<(), Sw> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Sw::WRONG_DATA)
        }
    }
}
