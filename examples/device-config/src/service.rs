//! The service on `/rt/device-config`: a produced device is authenticated exactly as
//! provisioning authenticates it (chain to a trusted root and chip authentication, with
//! `keyward_ca::provisioning`), checked against the device database, and its element gets a
//! configuration object — a PKCS#15 data object, value in `CF<n>` and description in `C9<n>` —
//! written under end-to-end secure messaging and read back under it.
//!
//! | POST | batch | server checks |
//! |---|---|---|
//! | 1 | READ BINARY EF.C_DevAut, ENUMERATE OBJECTS, MSE SET AT, GENERAL AUTHENTICATE (plain) | chain, chip authentication → SM; device known, produced, same device key, not revoked |
//! | 2 | only if the element has data objects: READ BINARY of every `C9<n>` under SM | which description (if any) is this service's object |
//! | 3 | under SM: DELETE FILE of the old object, UPDATE BINARY `CF<n>` and `C9<n>`, READ BINARY `CF<n>` | every MAC and status word; the value read back is the value written |
//! | 4 | — (`204`) | |

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use keyward_apdu::Command;
use keyward_ca::batch::{Batch, OK, answer};
use keyward_ca::provisioning::ProvisionError;
use keyward_card::pkcs15::DataObjectDescription;
use keyward_card::write_file_commands;
use keyward_crypto::HashAlg;
use keyward_cvc::TrustStore;
use keyward_ram::server::{ScriptError, Service, Session};
use keyward_server::db::Db;
use keyward_server::provision::{self, Provisioner};

use crate::settings::{APPLICATION, ConfigSettings, RequestError, SettingsError};

/// Notify id of the message naming the written object (text `device-config:CF<n> sha256:HEX`).
pub const NOTIFY_CONFIG: i64 = 2101;
/// Audit event of a written configuration.
pub const EVENT_WRITTEN: &str = "device_config.written";
/// Audit event of a refused request.
pub const EVENT_REFUSED: &str = "device_config.refused";

/// File-id prefixes of SmartCard-HSM data objects (as OpenSC and `keyward-pkcs11` use them).
pub const DCOD_PREFIX: u8 = 0xC9;
pub const PUBLIC_DATA_PREFIX: u8 = 0xCF;
pub const PRIVATE_DATA_PREFIX: u8 = 0xCD;

/// READ BINARY answers: the whole file (`9000`), or less than Le (`6282`).
const READ_OK: &[u16] = &[0x9000, 0x6282];
/// DELETE FILE: also fine if the file is gone already (`6A82`).
const DELETE_OK: &[u16] = &[0x9000, 0x6A82];

const STEP_READ_DCOD: &str = "READ BINARY data object description";
const STEP_WRITE_VALUE: &str = "UPDATE BINARY configuration";
const STEP_WRITE_DCOD: &str = "UPDATE BINARY data object description";
const STEP_READ_BACK: &str = "READ BINARY configuration";

pub fn fid(prefix: u8, n: u8) -> u16 {
    u16::from_be_bytes([prefix, n])
}

/// Why the service refused a device.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("{0}")]
    Request(#[from] RequestError),
    /// The same refusals (and texts) as provisioning's: chain, chip authentication, unknown,
    /// not produced, another device key, revoked.
    #[error(transparent)]
    Device(#[from] provision::Refusal),
    #[error("device {device}: {source}")]
    Element {
        device: String,
        source: ProvisionError,
    },
    #[error("device {0}: the element has no free data object id")]
    NoFreeId(String),
    #[error("device {0}: the configuration read back differs from the one written")]
    ReadBack(String),
}

/// The service's state: the device database and trust store it shares with provisioning, and
/// its settings.
pub struct DeviceConfigurator {
    pub db: Arc<Db>,
    /// Roots device chains must lead to.
    pub trust: TrustStore,
    pub settings: ConfigSettings,
}

impl DeviceConfigurator {
    /// Shares provisioning's database and trust store (own root and configured external roots).
    pub fn new(provisioner: &Provisioner, settings: ConfigSettings) -> Result<Self, SettingsError> {
        settings.check()?;
        Ok(Self {
            db: provisioner.db.clone(),
            trust: provisioner.trust.clone(),
            settings,
        })
    }

    async fn configure(&self, session: &mut Session) -> Result<(), ScriptError> {
        // 0. The request, checked before the element is touched.
        let request = match self.settings.request(|n| session.param(n)) {
            Ok(r) => r,
            Err(e) => return self.refused(None, e.into()).await,
        };

        // 1. Chain and chip authentication and the device's record: provisioning's opening, one
        // round trip, and its checks (known, produced, same device key, not revoked).
        let provision::Authenticated {
            opening,
            answers: r,
            mut device,
        } = match provision::authenticate(&self.db, &self.trust, &[], session).await? {
            Ok(a) => a,
            Err((device, refusal)) => return self.refused(device.as_deref(), refusal.into()).await,
        };
        let id = device.identity.device_id.clone();
        let element = |source: ProvisionError| Refusal::Element {
            device: id.clone(),
            source,
        };
        // The file list came with the opening (ENUMERATE OBJECTS, plain): it only says where
        // to look and where to write; everything read or written from here on is under SM.
        let files = match enumerated(&opening, &r) {
            Ok(f) => f,
            Err(e) => return self.refused(Some(&id), element(e)).await,
        };

        // 2. Is there an object of ours already? Read every data-object description under SM.
        let dcods: Vec<u8> = files
            .iter()
            .filter_map(|f| match f.to_be_bytes() {
                [DCOD_PREFIX, n] => Some(n),
                _ => None,
            })
            .collect();
        let mut ours = None;
        if !dcods.is_empty() {
            let mut b = Batch::default();
            for n in &dcods {
                b.sm(
                    &mut device.sm,
                    STEP_READ_DCOD,
                    &read_command(fid(DCOD_PREFIX, *n)),
                    READ_OK,
                )
                .map_err(|e| element(e.into()))?;
            }
            let r = session.transmit(b.apdus().to_vec()).await?;
            let answers = match b.check(None, Some(&device.sm), &r) {
                Ok(a) => a,
                Err(e) => return self.refused(Some(&id), element(e.into())).await,
            };
            ours = dcods
                .iter()
                .zip(&answers)
                .find(|(n, a)| {
                    DataObjectDescription::parse(&a.data).is_ok_and(|d| {
                        d.application == APPLICATION
                            && d.label == self.settings.label
                            && d.fid == fid(PUBLIC_DATA_PREFIX, **n)
                    })
                })
                .map(|(n, _)| *n);
        }
        // Otherwise the lowest id free for a data object (the PKCS#11 module's rule).
        let Some(n) = ours.or_else(|| free_id(&files)) else {
            return self.refused(Some(&id), Refusal::NoFreeId(id.clone())).await;
        };

        // 3. The object, under SM: the old one deleted (UPDATE BINARY never shrinks a file),
        //    value and description written, the value read back.
        let value_fid = fid(PUBLIC_DATA_PREFIX, n);
        let dcod_fid = fid(DCOD_PREFIX, n);
        let blob = self.settings.object(&id, &request).encode()?;
        let description = DataObjectDescription {
            label: self.settings.label.clone(),
            application: APPLICATION.to_string(),
            app_oid: None,
            private: false,
            fid: value_fid,
        }
        .encode()?;
        let mut b = Batch::default();
        let sm = &mut device.sm;
        for f in [dcod_fid, value_fid] {
            if files.contains(&f) {
                b.sm(sm, "DELETE FILE", &delete_command(f), DELETE_OK)
                    .map_err(|e| element(e.into()))?;
            }
        }
        for (target, data, step) in [
            (value_fid, &blob, STEP_WRITE_VALUE),
            (dcod_fid, &description, STEP_WRITE_DCOD),
        ] {
            for cmd in write_file_commands(target, data)
                .map_err(|_| element(ProvisionError::Malformed("UPDATE BINARY")))?
            {
                b.sm(sm, step, &cmd, OK).map_err(|e| element(e.into()))?;
            }
        }
        b.sm(sm, STEP_READ_BACK, &read_command(value_fid), READ_OK)
            .map_err(|e| element(e.into()))?;
        let digest = hex::encode(HashAlg::Sha256.digest(&blob));
        // The announcement travels with the last batch (no extra round trip); the device
        // trusts it only if the session then ends with 204.
        session.notify(
            NOTIFY_CONFIG,
            format!("device-config:{value_fid:04X} sha256:{digest}"),
        );
        let r = session.transmit(b.apdus().to_vec()).await?;
        let answers = match b.check(None, Some(&device.sm), &r) {
            Ok(a) => a,
            Err(e) => return self.refused(Some(&id), element(e.into())).await,
        };
        if answer(&answers, STEP_READ_BACK).map(|a| &a.data) != Some(&blob) {
            return self.refused(Some(&id), Refusal::ReadBack(id.clone())).await;
        }
        let site = request.site.as_deref().unwrap_or("-");
        self.db
            .audit_event(
                EVENT_WRITTEN,
                Some(&id),
                &format!(
                    "{value_fid:04X} sha256:{digest} report_interval={} site={site}",
                    request.report_interval
                ),
            )
            .await?;
        tracing::info!(device = %id, file = %format!("{value_fid:04X}"), "device configuration written");
        Ok(())
    }

    /// Audits the refusal and ends the session with it (a negative notify on the device).
    async fn refused(&self, device: Option<&str>, refusal: Refusal) -> Result<(), ScriptError> {
        tracing::warn!(%refusal, "device configuration refused");
        self.db
            .audit_event(EVENT_REFUSED, device, &refusal.to_string())
            .await?;
        Err(refusal.into())
    }
}

/// Every file id the element listed in the opening's ENUMERATE OBJECTS.
fn enumerated(opening: &Batch, responses: &[Vec<u8>]) -> Result<Vec<u16>, ProvisionError> {
    let answers = opening.check(None, None, responses)?;
    let data = &answer(&answers, "ENUMERATE OBJECTS")
        .ok_or(ProvisionError::Malformed("ENUMERATE OBJECTS"))?
        .data;
    Ok(data
        .chunks_exact(2)
        .map(|f| u16::from_be_bytes([f[0], f[1]]))
        .collect())
}

/// The lowest `n` with neither a description `C9<n>` nor a private value `CD<n>` (a stray
/// public value `CF<n>` without description is replaced).
fn free_id(files: &[u16]) -> Option<u8> {
    (1..=u8::MAX).find(|n| {
        !files.contains(&fid(DCOD_PREFIX, *n)) && !files.contains(&fid(PRIVATE_DATA_PREFIX, *n))
    })
}

/// READ BINARY of a whole EF (offset 0, extended Le).
fn read_command(fid: u16) -> Command {
    let [p1, p2] = fid.to_be_bytes();
    Command::new(0x00, 0xB1, p1, p2)
        .with_data(vec![0x54, 0x02, 0x00, 0x00])
        .with_le(65536)
}

fn delete_command(fid: u16) -> Command {
    Command::new(0x00, 0xE4, 0x02, 0x00).with_data(fid.to_be_bytes().to_vec())
}

/// The service on `/rt/device-config`.
#[derive(Clone)]
pub struct DeviceConfigService(pub Arc<DeviceConfigurator>);

impl Service for DeviceConfigService {
    fn run<'a>(
        &'a self,
        session: &'a mut Session,
    ) -> Pin<Box<dyn Future<Output = Result<(), ScriptError>> + Send + 'a>> {
        Box::pin(self.0.configure(session))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ids_skip_descriptions_and_private_values() {
        assert_eq!(free_id(&[]), Some(1));
        assert_eq!(free_id(&[0xC901, 0xCF01, 0xCD02, 0xCF03]), Some(3));
        let all: Vec<u16> = (1..=255).map(|n| fid(DCOD_PREFIX, n)).collect();
        assert_eq!(free_id(&all), None);
    }

    #[test]
    fn commands_are_the_smartcard_hsm_ones() {
        assert_eq!(
            read_command(0xCF02).encode().ok(),
            Some(vec![
                0x00, 0xB1, 0xCF, 0x02, 0x00, 0x00, 0x04, 0x54, 0x02, 0x00, 0x00, 0x00, 0x00
            ])
        );
        assert_eq!(
            delete_command(0xC902).encode().ok(),
            Some(vec![0x00, 0xE4, 0x02, 0x00, 0x02, 0xC9, 0x02])
        );
    }
}
