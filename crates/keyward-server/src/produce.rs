//! The production service (`/rt/produce`, DESIGN §3.3): a blank element reached over
//! RAMoverHTTP gets the SmartCard-HSM applet, its device identity certified by the Device
//! Issuer CA, card-unique SCP03 keys, a random SO-PIN kept (sealed) by the back end and a
//! single-use transport PIN for the device — in four HTTP round trips.
//!
//! The element's serial keys the database record. Whatever point a production stops at
//! (server killed, device gone), running it again either continues with the identity reserved
//! for that element or is refused because the element is produced already; an element never
//! gets a second identity.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use keyward_ca::device_chr;
use keyward_ca::production::{
    self, CARD_KVN, DEVICE_CURVE, DeviceSetup, Greeting, ProductionError,
};
use keyward_cvc::Certificate;
use keyward_ram::server::{ScriptError, Service, Session};
use keyward_sm::ChipAuthHost;
use keyward_sm::scp03::{StaticKeys, diversify};
use zeroize::Zeroizing;

use crate::db::{Db, DeviceRow, Reservation, SealedPins};
use crate::seal::MasterKey;

/// Notify id of the message that carries the transport PIN, sealed to the device's `pin_key`
/// (text `transport-pin-sealed:HEX`, see `keyward_ca::pin_envelope`).
pub const NOTIFY_TRANSPORT_PIN: i64 = 2001;
pub const TRANSPORT_PIN_PREFIX: &str = "transport-pin-sealed:";
/// The production URL's parameter with the device's one-session P-256 key (hex).
pub const PIN_KEY_PARAM: &str = "pin_key";
/// Notify id of the message naming the produced device (text `device-id:CHR`).
pub const NOTIFY_DEVICE_ID: i64 = 2002;
pub const DEVICE_ID_PREFIX: &str = "device-id:";

/// How device ids are formed: country code, mnemonic, 5-digit sequence number.
#[derive(Debug, Clone)]
pub struct Naming {
    pub country: String,
    pub mnemonic: String,
}

impl Naming {
    pub fn device_id(&self, seq: i64) -> Result<String, String> {
        let n = u32::try_from(seq).map_err(|_| format!("sequence {seq}"))?;
        device_chr(&self.country, &self.mnemonic, n).map_err(|e| e.to_string())
    }
}

/// Everything production needs.
pub struct Producer {
    pub db: Arc<Db>,
    pub dica: Mutex<crate::setup::Dica>,
    pub root: Certificate,
    pub kst: (u8, StaticKeys),
    pub kmc: Zeroizing<Vec<u8>>,
    pub master: MasterKey,
    pub naming: Naming,
    pub validity_days: u32,
}

/// Why a production was refused (the device sees the text in a negative notify).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("element {serial} is produced already, as {device_id}")]
    AlreadyProduced { serial: String, device_id: String },
    #[error("element {0} has card-unique keys but no production record here")]
    Unknown(String),
    #[error(
        "element {serial} opened with key version {kvn:02X}, neither the KST nor card-unique keys"
    )]
    KeyVersion { serial: String, kvn: u8 },
    #[error("element {serial}: {source}")]
    Production {
        serial: String,
        source: ProductionError,
    },
    #[error(
        "no valid pin_key parameter: the transport PIN is only sent sealed to a key of the device's"
    )]
    PinKey,
}

fn random_digits(n: usize) -> Result<Zeroizing<Vec<u8>>, ScriptError> {
    let raw = keyward_crypto::random(n)?;
    Ok(Zeroizing::new(raw.iter().map(|b| b'0' + b % 10).collect()))
}

impl Producer {
    fn refuse(&self, serial: &str, source: ProductionError) -> Refusal {
        Refusal::Production {
            serial: serial.to_string(),
            source,
        }
    }

    /// New sealed PINs for `device_id`: an 8-byte SO-PIN and an 8-digit transport PIN.
    fn new_pins(&self, device_id: &str) -> Result<SealedPins, ScriptError> {
        let so = keyward_crypto::random(8)?;
        let transport = random_digits(8)?;
        Ok(SealedPins {
            so_pin: self.master.seal(device_id, "so-pin", &so)?,
            transport_pin: self.master.seal(device_id, "transport-pin", &transport)?,
        })
    }

    async fn produce(&self, session: &mut Session) -> Result<(), ScriptError> {
        // Checked first: without it the transport PIN could not be delivered.
        if session
            .param(PIN_KEY_PARAM)
            .is_none_or(|k| keyward_ca::pin_envelope::check_key(k).is_err())
        {
            return self.refused(Refusal::PinKey).await;
        }
        let hc: [u8; 8] = keyward_crypto::random(8)?
            .as_slice()
            .try_into()
            .map_err(|_| "random")?;
        let opening = production::opening(&hc);
        let r = session.transmit(opening.apdus().to_vec()).await?;
        let greeting = Greeting::read(&opening, &hc, &r)?;
        let serial = hex::encode_upper(greeting.serial);
        let existing = self.db.device_by_serial(&serial).await?;
        if let Some(d) = existing
            .as_ref()
            .filter(|d| d.state == crate::db::DeviceState::Produced)
        {
            return self
                .refused(Refusal::AlreadyProduced {
                    serial,
                    device_id: d.device_id.clone(),
                })
                .await;
        }
        if greeting.kvn == CARD_KVN {
            return self.resume(session, &greeting, &serial, existing).await;
        }
        if greeting.kvn != self.kst.0 {
            return self
                .refused(Refusal::KeyVersion {
                    serial,
                    kvn: greeting.kvn,
                })
                .await;
        }
        let (mut ch, ea) = match greeting.open(&self.kst.1) {
            Ok(v) => v,
            Err(e) => return self.refused(self.refuse(&serial, e)).await,
        };
        // The identity is reserved (or found) only once the element proved it holds the KST.
        let mut fresh = None;
        let reservation = self
            .db
            .reserve(
                &serial,
                |seq| self.naming.device_id(seq),
                |id| match self.new_pins(id) {
                    Ok(p) => p,
                    Err(e) => {
                        fresh = Some(e);
                        SealedPins {
                            so_pin: String::new(),
                            transport_pin: String::new(),
                        }
                    }
                },
            )
            .await?;
        if let Some(e) = fresh {
            return Err(e);
        }
        let (row, reinstall) = match reservation {
            Reservation::New(row) => (row, false),
            Reservation::Resume(row) => (row, true),
            Reservation::Produced(row) => {
                return self
                    .refused(Refusal::AlreadyProduced {
                        serial,
                        device_id: row.device_id,
                    })
                    .await;
            }
        };
        let so_pin = self.master.open(&row.device_id, "so-pin", &row.so_pin)?;
        let transport = self.transport_pin(&row)?;
        let root = self.root.raw.clone();
        let dica_chr = self
            .dica
            .lock()
            .map_err(|_| "CA lock")?
            .certificate
            .body
            .chr
            .clone();
        let setup = DeviceSetup {
            chr: &row.device_id,
            dica_chr: &dica_chr,
            root: &root,
            so_pin: &so_pin,
            transport_pin: &transport,
            reinstall,
        };
        let personalize = ch
            .personalize(ea, &setup)
            .map_err(|e| self.refuse(&serial, e))?;
        let r = session.transmit(personalize.apdus().to_vec()).await?;
        let point = ch
            .read_request(&personalize, &r, &row.device_id)
            .map_err(|e| self.refuse(&serial, e))?;
        let c_devaut = {
            let mut dica = self.dica.lock().map_err(|_| "CA lock")?;
            production::issue_c_devaut(
                &mut dica,
                &point,
                &row.device_id,
                keyward_se::dev_pki::today(),
                self.validity_days,
            )?
        };
        // Recorded before it reaches the element, so a resumed production can check it.
        self.db.set_chain(row.seq, &hex::encode(&c_devaut)).await?;
        let card_keys = diversify(&self.kmc, &greeting.serial)?;
        let chip = ChipAuthHost::new(DEVICE_CURVE)?;
        let finish = ch
            .finish(&c_devaut, &card_keys, &chip)
            .map_err(|e| self.refuse(&serial, e))?;
        self.deliver_pin(session, &row, &transport)?;
        let r = session.transmit(finish.apdus().to_vec()).await?;
        ch.check_finish(&finish, &r, Some(&card_keys), &point, chip)
            .map_err(|e| self.refuse(&serial, e))?;
        self.complete(&row).await
    }

    /// The element already has card-unique keys: production reached its last round trip
    /// before. With the record of that production, finish it (life cycle, chip
    /// authentication against the recorded certificate).
    async fn resume(
        &self,
        session: &mut Session,
        greeting: &Greeting,
        serial: &str,
        existing: Option<DeviceRow>,
    ) -> Result<(), ScriptError> {
        let Some((row, chain)) = existing.and_then(|r| {
            let chain = r.chain.clone()?;
            Some((r, chain))
        }) else {
            return self.refused(Refusal::Unknown(serial.to_string())).await;
        };
        let keys = diversify(&self.kmc, &greeting.serial)?;
        let (mut ch, ea) = greeting.open(&keys).map_err(|e| self.refuse(serial, e))?;
        let chain = hex::decode(chain).map_err(|_| "stored chain")?;
        let device = Certificate::parse_chain(&chain)?
            .into_iter()
            .next()
            .ok_or("stored chain is empty")?;
        let keyward_cvc::PublicKey::Ec { point, .. } = device.body.public_key else {
            return Err("stored device key is not EC".into());
        };
        let transport = self.transport_pin(&row)?;
        let chip = ChipAuthHost::new(DEVICE_CURVE)?;
        let batch = ch.resume(ea, &chip).map_err(|e| self.refuse(serial, e))?;
        self.deliver_pin(session, &row, &transport)?;
        let r = session.transmit(batch.apdus().to_vec()).await?;
        ch.check_finish(&batch, &r, None, &point, chip)
            .map_err(|e| self.refuse(serial, e))?;
        self.complete(&row).await
    }

    fn transport_pin(&self, row: &DeviceRow) -> Result<Zeroizing<Vec<u8>>, ScriptError> {
        let sealed = row
            .transport_pin
            .as_deref()
            .ok_or("the transport PIN is gone")?;
        Ok(self.master.open(&row.device_id, "transport-pin", sealed)?)
    }

    /// The transport PIN and the device id travel with the last batch; the device uses them
    /// only once the session ends successfully.
    fn deliver_pin(
        &self,
        session: &mut Session,
        row: &DeviceRow,
        transport: &[u8],
    ) -> Result<(), ScriptError> {
        let pin_key = session.param(PIN_KEY_PARAM).ok_or("pin_key")?;
        let sealed = keyward_ca::pin_envelope::seal(pin_key, transport, &row.device_id)?;
        session.notify(
            NOTIFY_DEVICE_ID,
            format!("{DEVICE_ID_PREFIX}{}", row.device_id),
        );
        session.notify(
            NOTIFY_TRANSPORT_PIN,
            format!("{TRANSPORT_PIN_PREFIX}{sealed}"),
        );
        Ok(())
    }

    async fn complete(&self, row: &DeviceRow) -> Result<(), ScriptError> {
        let produced = self.db.mark_produced(row.seq).await?;
        tracing::info!(device = %produced.device_id, serial = %produced.serial, "device produced");
        Ok(())
    }

    async fn refused(&self, refusal: Refusal) -> Result<(), ScriptError> {
        let device = match &refusal {
            Refusal::AlreadyProduced { device_id, .. } => Some(device_id.clone()),
            _ => None,
        };
        tracing::warn!(%refusal, "production refused");
        self.db
            .audit_refusal(device.as_deref(), &refusal.to_string())
            .await?;
        Err(refusal.into())
    }
}

/// The service on `/rt/produce`.
#[derive(Clone)]
pub struct ProductionService(pub Arc<Producer>);

impl Service for ProductionService {
    fn run<'a>(
        &'a self,
        session: &'a mut Session,
    ) -> Pin<Box<dyn Future<Output = Result<(), ScriptError>> + Send + 'a>> {
        Box::pin(self.0.produce(session))
    }
}

/// The device's half of the production protocol's notifications: it brings the one-session
/// PIN key (`pin_key` on the URL), collects the device id and the sealed transport PIN, and
/// opens the PIN once the session has ended successfully.
pub struct PinReceiver {
    recipient: keyward_ca::pin_envelope::Recipient,
    device_id: Option<String>,
    sealed: Option<String>,
}

impl PinReceiver {
    pub fn new() -> Result<Self, keyward_ca::pin_envelope::EnvelopeError> {
        Ok(Self {
            recipient: keyward_ca::pin_envelope::Recipient::new()?,
            device_id: None,
            sealed: None,
        })
    }

    /// The production URL with this receiver's `pin_key`.
    pub fn url(&self, base: &str) -> String {
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}{PIN_KEY_PARAM}={}", self.recipient.public_hex())
    }

    /// Takes a notification meant for it (`true`), or leaves it to the caller (`false`).
    pub fn notice(&mut self, n: &keyward_ram::client::Notification) -> bool {
        match n.id {
            NOTIFY_DEVICE_ID => {
                self.device_id = n.text.strip_prefix(DEVICE_ID_PREFIX).map(str::to_string);
                true
            }
            NOTIFY_TRANSPORT_PIN => {
                self.sealed = n
                    .text
                    .strip_prefix(TRANSPORT_PIN_PREFIX)
                    .map(str::to_string);
                true
            }
            _ => false,
        }
    }

    /// The device id and the opened transport PIN, if the session delivered both.
    pub fn finish(self) -> Option<(String, Zeroizing<String>)> {
        let (id, sealed) = (self.device_id?, self.sealed?);
        let pin = self.recipient.open(&sealed, &id).ok()?;
        Some((id, Zeroizing::new(String::from_utf8(pin.to_vec()).ok()?)))
    }
}
