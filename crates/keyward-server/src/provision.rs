//! The provisioning service (`/rt/provision?profile=NAME`, DESIGN §3.4): a produced device is
//! authenticated by its chain and chip authentication, its element generates a key under end-
//! to-end secure messaging, the key's attestation is verified, and the issuing CA's X.509
//! certificate is stored back with the key's PKCS#15 description — in four HTTP round trips.
//!
//! The certificate is recorded (pending) before it is sent and activated once the element
//! confirms it; a provisioning that stops in between leaves a pending record that the next
//! provisioning of the device revokes, so nothing recorded as valid is missing from the element.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use keyward_ca::provisioning::{self, Device, ProvisionError};
use keyward_ca::x509::X509Ca;
use keyward_crypto::{Curve, HashAlg};
use keyward_cvc::TrustStore;
use keyward_ram::server::{ScriptError, Service, Session};
use keyward_sm::ChipAuthHost;

use crate::db::{CertificateRow, Db, DeviceState, now};
use crate::profile::{PolicyError, Profile, attested_key};

/// Notify id of the message naming the provisioned certificate (text `certificate:SERIAL key:KID`).
pub const NOTIFY_CERTIFICATE: i64 = 2003;

pub struct Provisioner {
    pub db: Arc<Db>,
    /// Roots device chains must lead to.
    pub trust: TrustStore,
    pub ca: Mutex<X509Ca>,
    pub profiles: BTreeMap<String, Profile>,
    /// Where relying parties find the CRL (the certificates' distribution point).
    pub crl_url: Option<String>,
    /// Where relying parties find the OCSP responder (Authority Information Access).
    pub ocsp_url: Option<String>,
    /// Further trusted roots (CHRs: CardContact's, another production line's) whose devices
    /// were not produced here but are provisioned: registered on their first provisioning.
    pub external_roots: Vec<String>,
}

/// Why a provisioning was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("unknown profile {0:?}")]
    Profile(String),
    #[error("device {0} is not known here (not produced by this server)")]
    UnknownDevice(String),
    #[error("device {0} is not produced yet")]
    NotProduced(String),
    #[error("device {device} is revoked: {reason}")]
    Revoked { device: String, reason: String },
    #[error("device {device}: {source}")]
    Provisioning {
        device: String,
        source: ProvisionError,
    },
    #[error("{0}")]
    Opening(ProvisionError),
    #[error("certificate {0} is not an active certificate of this device: nothing to renew")]
    Renewal(String),
    #[error("device {0} presents another device key than the one certified at its production")]
    ChainChanged(String),
    #[error("profile {profile}: {source}")]
    Policy {
        profile: String,
        source: PolicyError,
    },
}

/// A device authenticated as provisioning needs it: the opening batch with its answers (the
/// chain, the element's file list, chip authentication) and the device with its secure channel.
pub struct Authenticated {
    pub opening: keyward_ca::batch::Batch,
    pub answers: Vec<Vec<u8>>,
    pub device: Device,
}

/// Provisioning's first round trip, for any service that works with a produced device: chain
/// validation to `trust` and chip authentication (opening secure messaging), then the device's
/// record — known here (or registered, if its chain leads to one of `external_roots`), produced,
/// presenting the device key certified at its production, not revoked. A refusal comes with
/// the device id, when known, for the audit log.
pub async fn authenticate(
    db: &Db,
    trust: &TrustStore,
    external_roots: &[String],
    session: &mut Session,
) -> Result<Result<Authenticated, (Option<String>, Refusal)>, ScriptError> {
    let chip = ChipAuthHost::new(Curve::BrainpoolP256r1)?;
    let opening = provisioning::opening(&chip)?;
    let answers = session.transmit(opening.apdus().to_vec()).await?;
    let device = match Device::read(
        &opening,
        &answers,
        trust,
        keyward_se::dev_pki::today(),
        chip,
    ) {
        Ok(d) => d,
        Err(e) => return Ok(Err((None, Refusal::Opening(e)))),
    };
    let id = device.identity.device_id.clone();
    let refuse = |r: Refusal| Ok(Err((Some(id.clone()), r)));
    match db.device_by_id(&id).await? {
        None if external_roots.contains(&device.identity.root) => {
            db.register_external_device(&id, &device.identity.root, &hex::encode(&device.c_devaut))
                .await?;
        }
        None => return refuse(Refusal::UnknownDevice(id.clone())),
        Some(d) if d.state != DeviceState::Produced => {
            return refuse(Refusal::NotProduced(id.clone()));
        }
        // The device key must be the one certified at production: whoever holds a DICA key
        // cannot present a new certificate for an existing device id.
        Some(d) if !same_device_key(d.chain.as_deref(), &device.identity.public_point) => {
            return refuse(Refusal::ChainChanged(id.clone()));
        }
        Some(_) => {}
    }
    if let Some(reason) = db.device_revocation(&id).await? {
        return refuse(Refusal::Revoked {
            device: id.clone(),
            reason,
        });
    }
    Ok(Ok(Authenticated {
        opening,
        answers,
        device,
    }))
}

/// A certificate whose provisioning ended without the element's confirmation.
fn is_interrupted(c: &CertificateRow) -> bool {
    c.state == "pending" || c.revocation_reason.as_deref() == Some("provisioning interrupted")
}

/// Whether the recorded EF.C_DevAut (hex) certifies the public point the device presented.
pub fn same_device_key(recorded_hex: Option<&str>, presented: &[u8]) -> bool {
    let Some(chain) = recorded_hex.and_then(|h| hex::decode(h).ok()) else {
        return false;
    };
    keyward_cvc::Certificate::parse_chain(&chain)
        .ok()
        .and_then(|c| c.into_iter().next())
        .is_some_and(|device| {
            matches!(&device.body.public_key, keyward_cvc::PublicKey::Ec { point, .. } if point == presented)
        })
}

impl Provisioner {
    async fn provision(&self, session: &mut Session) -> Result<(), ScriptError> {
        let name = session.param("profile").unwrap_or("tls-client").to_string();
        // A renewal names the certificate it replaces; that one is revoked once the new one
        // is on the element.
        let renews = session.param("renew").map(str::to_ascii_uppercase);
        let Some(profile) = self.profiles.get(&name).cloned() else {
            return self.refused(None, Refusal::Profile(name)).await;
        };
        // The request is checked against the profile's policy before any key is generated, and
        // refused once the device is authenticated, so the audit log names who asked.
        let asked = session.param("key").map(str::to_string);
        let checked = profile.key_for(asked.as_deref()).and_then(|spec| {
            let params = profile.parameters(|n| session.param(n))?;
            let owned: BTreeMap<String, String> = params
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Ok((spec, owned))
        });

        // 1. Chain and chip authentication, and the device's record.
        let Authenticated { mut device, .. } =
            match authenticate(&self.db, &self.trust, &self.external_roots, session).await? {
                Ok(a) => a,
                Err((device, refusal)) => return self.refused(device.as_deref(), refusal).await,
            };
        let id = device.identity.device_id.clone();
        let (spec, params) = match checked {
            Ok(c) => c,
            Err(source) => {
                return self
                    .refused(
                        Some(&id),
                        Refusal::Policy {
                            profile: name,
                            source,
                        },
                    )
                    .await;
            }
        };
        let history = self.db.device_certificates(&id).await?;
        let renews = match renews {
            None => None,
            Some(old) => match history.iter().find(|c| c.serial == old) {
                Some(c) if c.state == "active" => Some(old),
                // The device names a certificate whose provisioning was interrupted (stored on
                // the element, never confirmed): what it renews is this profile's active one.
                Some(c) if is_interrupted(c) => history
                    .iter()
                    .filter(|a| a.state == "active" && a.profile == c.profile)
                    .max_by_key(|a| a.not_after)
                    .map(|a| a.serial.clone()),
                _ => return self.refused(Some(&id), Refusal::Renewal(old)).await,
            },
        };
        // Keys of earlier provisionings the element may still hold: interrupted ones (their
        // certificates revoked) and superseded ones a device did not delete. Read back with the
        // key generation, deleted with the certificate's storage if they are what was issued.
        let (stale, stale_serials): (Vec<(u8, Vec<u8>)>, Vec<String>) = history
            .iter()
            .filter(|c| is_interrupted(c) || c.revocation_reason.as_deref() == Some("superseded"))
            .filter_map(|c| {
                let kid = u8::try_from(c.key_ref).ok()?;
                let der = hex::decode(&c.der).ok()?;
                device
                    .key_ids
                    .contains(&kid)
                    .then(|| ((kid, der), c.serial.clone()))
            })
            .unzip();
        let refuse = |source| Refusal::Provisioning {
            device: id.clone(),
            source,
        };

        // 2. The key, generated under SM; its attestation verified before anything is issued.
        let algorithms = profile.algorithms(spec);
        let generate = match device.free_key_id().and_then(|kid| {
            device
                .generate(kid, spec, algorithms.as_deref(), profile.use_counter)
                .map(|b| (kid, b))
        }) {
            Ok(g) => g,
            Err(e) => return self.refused(Some(&id), refuse(e)).await,
        };
        let (kid, mut generate) = generate;
        let kids: Vec<u8> = stale.iter().map(|(k, _)| *k).collect();
        if let Err(e) = device.read_certificate_prefixes(&mut generate, &kids) {
            return self.refused(Some(&id), refuse(e)).await;
        }
        let r = session.transmit(generate.apdus().to_vec()).await?;
        let (key, ar, answers) = match device.read_key_with(&generate, &r) {
            Ok(k) => k,
            Err(e) => return self.refused(Some(&id), refuse(e)).await,
        };
        let held = Device::held_certificates(&answers, &stale);
        let held_kids: Vec<u8> = held.iter().map(|&i| stale[i].0).collect();
        let subject_key = match attested_key(&key.public_key, spec) {
            Ok(k) => k,
            Err(source) => {
                return self
                    .refused(
                        Some(&id),
                        Refusal::Policy {
                            profile: name,
                            source,
                        },
                    )
                    .await;
            }
        };

        // 3. The certificate: recorded as pending, stored on the element, then activated.
        let params = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut template = profile.template(
            &id,
            spec,
            &params,
            now(),
            (self.crl_url.as_deref(), self.ocsp_url.as_deref()),
        );
        template.attestation = Some((id.clone(), HashAlg::Sha256.digest(&ar.raw)));
        let issued = {
            let mut ca = self.ca.lock().map_err(|_| "CA lock")?;
            ca.issue(&template, &subject_key)?
        };
        let serial = hex::encode_upper(&issued.serial);
        self.db
            .record_pending_certificate(&CertificateRow {
                serial: serial.clone(),
                device_id: id.clone(),
                profile: name.clone(),
                key_ref: i64::from(kid),
                state: "pending".into(),
                der: hex::encode(&issued.der),
                attestation: hex::encode(&ar.raw),
                not_before: template.not_before,
                not_after: template.not_after,
                created_at: 0,
                revoked_at: None,
                revocation_reason: None,
            })
            .await?;
        let store = match device
            .store(kid, spec, &name, &issued.der, &ar)
            .and_then(|mut b| device.delete_keys(&mut b, &held_kids).map(|()| b))
        {
            Ok(b) => b,
            Err(e) => return self.refused(Some(&id), refuse(e)).await,
        };
        // The announcement travels with the last batch; the device trusts it only if the
        // session then ends successfully.
        session.notify(
            NOTIFY_CERTIFICATE,
            format!("certificate:{serial} key:{kid}"),
        );
        let r = session.transmit(store.apdus().to_vec()).await?;
        if let Err(e) = device.check_store(&store, &r) {
            return self.refused(Some(&id), refuse(e)).await;
        }
        let removed: Vec<(String, i64)> = held
            .iter()
            .map(|&i| (stale_serials[i].clone(), i64::from(stale[i].0)))
            .collect();
        self.db
            .activate_certificate(&serial, renews.as_deref(), &removed)
            .await?;
        tracing::info!(device = %id, %serial, profile = %name, kid, "certificate provisioned");
        Ok(())
    }

    async fn refused(&self, device: Option<&str>, refusal: Refusal) -> Result<(), ScriptError> {
        tracing::warn!(%refusal, "provisioning refused");
        self.db
            .audit_event("provisioning.refused", device, &refusal.to_string())
            .await?;
        Err(refusal.into())
    }
}

/// The service on `/rt/provision`.
#[derive(Clone)]
pub struct ProvisioningService(pub Arc<Provisioner>);

impl Service for ProvisioningService {
    fn run<'a>(
        &'a self,
        session: &'a mut Session,
    ) -> Pin<Box<dyn Future<Output = Result<(), ScriptError>> + Send + 'a>> {
        Box::pin(self.0.provision(session))
    }
}
