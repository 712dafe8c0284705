#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Forged provisionings against the real services on loopback: a device software that tampers
//! with what the element answers (a flipped secure-messaging MAC, a replayed GENERAL
//! AUTHENTICATE answer), an element whose chain leads to a root this server does not trust, and
//! requests outside a profile's policy (a key type it does not allow, a missing or malformed
//! request parameter), a tampered element whose key attestation is signed by another device, a
//! revoked device. Each is refused with nothing issued and an audit event naming the device.
//! Every test runs on SQLite and on the PostgreSQL server of `scripts/with-postgres`.

use std::sync::Arc;

use keyward_card::{Hsm, InProcess, InitConfig};
use keyward_ram::client::{self, Card, ClientConfig, ClientError, Notification};
use keyward_ram::server::{Engine, EngineConfig};
use keyward_se::state::{ScpKeySet, SecretBytes, State};
use keyward_se::{Applet, MemoryStore};
use keyward_server::produce::{Naming, PinReceiver, ProductionService};
use keyward_server::provision::ProvisioningService;
use keyward_server::{Settings, services};

const PIN: &[u8] = b"64821973";

/// Rewrites an answer (command, answer → what the server sees).
type Rewrite = Box<dyn FnMut(&[u8], Vec<u8>) -> Vec<u8> + Send>;

/// Changes the element itself before it processes a command (a tampered element).
type Tamper = Box<dyn FnMut(&[u8], &mut Applet<MemoryStore>) + Send>;

/// The element as the RAMoverHTTP client's card, with hooks that may tamper with the element
/// or rewrite its answers.
struct Device {
    applet: Applet<MemoryStore>,
    tamper: Option<Tamper>,
    rewrite: Rewrite,
}

impl Card for Device {
    fn atr(&mut self) -> Vec<u8> {
        keyward_se::ATR.to_vec()
    }

    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, String> {
        if let Some(tamper) = &mut self.tamper {
            tamper(apdu, &mut self.applet);
        }
        let r = self.applet.transmit(apdu);
        Ok((self.rewrite)(apdu, r))
    }

    fn reset(&mut self) -> Result<Vec<u8>, String> {
        self.applet.reset();
        Ok(keyward_se::ATR.to_vec())
    }
}

/// A profile that allows P-256 (default) and P-384 and names the device's site.
fn site_profile() -> std::collections::BTreeMap<String, keyward_server::profile::Profile> {
    #[derive(serde::Deserialize)]
    struct Cfg {
        profiles: std::collections::BTreeMap<String, keyward_server::profile::Profile>,
    }
    let cfg: Cfg = toml::from_str(
        r#"
        [profiles.site]
        key = "ec-p256"
        keys = ["ec-p384"]
        usage = "eap-tls"
        subject = "CN={device_id}, OU={site}, O=Acme"
        alt_names = ["dns:{device_id}.{site}.acme.example"]
        parameters = ["site"]
        use_counter = 1000
        "#,
    )
    .unwrap();
    cfg.profiles
}

struct Backend {
    url: String,
    db: Arc<keyward_server::db::Db>,
    kst: Vec<u8>,
    dir: std::path::PathBuf,
}

/// Which database a test runs on.
#[derive(Clone, Copy)]
enum On {
    Sqlite,
    Postgres,
}

/// A fresh database on the PostgreSQL server of `scripts/with-postgres` (None without one,
/// unless KEYWARD_REQUIRE_POSTGRES says it must be there).
async fn fresh_postgres(name: &str) -> Option<String> {
    use sqlx::Connection;
    let Ok(admin) = std::env::var("KEYWARD_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("KEYWARD_REQUIRE_POSTGRES").is_none(),
            "KEYWARD_REQUIRE_POSTGRES is set but KEYWARD_TEST_POSTGRES_URL is not"
        );
        eprintln!("skipped: set KEYWARD_TEST_POSTGRES_URL (scripts/test does)");
        return None;
    };
    let db = format!("keyward_forge_{name}_{}", std::process::id());
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&admin).await.unwrap();
    for sql in [
        format!("DROP DATABASE IF EXISTS {db}"),
        format!("CREATE DATABASE {db}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await
            .unwrap();
    }
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Some(format!("{base}/{db}"))
}

async fn backend(on: On, name: &str) -> Option<Backend> {
    backend_with(on, name, Vec::new()).await
}

async fn backend_with(
    on: On,
    name: &str,
    external_roots: Vec<keyward_cvc::Certificate>,
) -> Option<Backend> {
    let db_url = match on {
        On::Sqlite => None,
        On::Postgres => Some(fresh_postgres(name).await?),
    };
    let tag = match on {
        On::Sqlite => "sqlite",
        On::Postgres => "postgres",
    };
    let dir =
        std::env::temp_dir().join(format!("keyward-forge-{name}-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (producer, provisioner) = services(Settings {
        data_dir: &dir,
        db_url: db_url.as_deref(),
        unlock: keyward_ca::ca_set::Unlock::default(),
        naming: Naming {
            country: "ZZ".into(),
            mnemonic: "FRG".into(),
        },
        validity_days: 365,
        db_connections: 4,
        profiles: site_profile(),
        crl_url: None,
        ocsp_url: None,
        external_roots,
    })
    .await
    .unwrap();
    let db = producer.db.clone();
    let kst = producer.kst.1.enc.to_vec();
    let engine = Arc::new(
        Engine::new(EngineConfig::default())
            .service("produce", ProductionService(Arc::new(producer)))
            .service("provision", ProvisioningService(Arc::new(provisioner))),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/rt", listener.local_addr().unwrap());
    tokio::spawn(keyward_ram::server::serve(engine, listener));
    Some(Backend { url, db, kst, dir })
}

/// Runs a test on SQLite and on PostgreSQL.
macro_rules! on_both {
    ($suite:ident, $sqlite:ident, $postgres:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            $suite(On::Sqlite).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            $suite(On::Postgres).await;
        }
    };
}

async fn session(
    url: &str,
    device: &mut Device,
) -> (Result<client::Summary, ClientError>, Vec<Notification>) {
    let cfg = ClientConfig::new(url);
    let http = client::http_client(&cfg).unwrap();
    let mut seen = Vec::new();
    let mut on_notify = |n: &Notification| seen.push(n.clone());
    let r = client::connect(&http, &cfg, device, &mut on_notify).await;
    (r, seen)
}

fn honest() -> Rewrite {
    Box::new(|_, r| r)
}

/// A blank element holding the backend's KST.
fn blank(b: &Backend) -> Device {
    let k = || SecretBytes::new(b.kst.clone());
    let set = ScpKeySet {
        enc: k(),
        mac: k(),
        dek: k(),
    };
    let mut serial = [0u8; 10];
    serial.copy_from_slice(&keyward_crypto::random(10).unwrap());
    Device {
        applet: Applet::new(State::blank(set, 0xFF, serial), MemoryStore),
        tamper: None,
        rewrite: honest(),
    }
}

/// A blank element produced by the backend, its PIN replaced and verified.
async fn produced(b: &Backend) -> Device {
    let mut d = blank(b);
    let mut receiver = PinReceiver::new().unwrap();
    let (r, notes) = session(&receiver.url(&format!("{}/produce", b.url)), &mut d).await;
    r.unwrap();
    // The PIN travelled sealed: not in any notification's text.
    for n in &notes {
        receiver.notice(n);
    }
    let (_, transport) = receiver.finish().unwrap();
    assert!(notes.iter().all(|n| !n.text.contains(transport.as_str())));
    verify(&mut d, Some(transport.as_bytes()));
    d
}

/// Selects the applet and verifies the PIN (first replacing the transport PIN).
fn verify(d: &mut Device, transport: Option<&[u8]>) {
    let mut hsm = Hsm::new(InProcess(std::mem::replace(
        &mut d.applet,
        Applet::new(State::blank(empty_set(), 0xFF, [0; 10]), MemoryStore),
    )));
    hsm.select().unwrap();
    if let Some(t) = transport {
        hsm.change_pin(t, PIN).unwrap();
    }
    hsm.verify_pin(PIN).unwrap();
    d.applet = hsm.into_channel().0;
}

fn empty_set() -> ScpKeySet {
    let k = || SecretBytes::new(vec![0; 16]);
    ScpKeySet {
        enc: k(),
        mac: k(),
        dek: k(),
    }
}

/// Whether the refusal comes after the device proved its identity (chain and chip
/// authentication): only then does the audit event name it.
#[derive(Clone, Copy, PartialEq)]
enum Named {
    Yes,
    No,
}

async fn refused(b: &Backend, d: &mut Device, named: Named, expect: &str) {
    refused_at(b, d, "profile=tls-client", named, expect).await;
}

/// The provisioning is refused with `expect`, nothing is issued, and exactly one audit event
/// records the refusal (naming the device, when the device got as far as authenticating).
async fn refused_at(b: &Backend, d: &mut Device, query: &str, named: Named, expect: &str) {
    let before = b.db.certificates().await.unwrap().len();
    let events_before = b.db.audit_events().await.unwrap().len();
    let device = d.applet.state().device_chr().to_string();
    let (r, _) = session(&format!("{}/provision?{query}", b.url), d).await;
    match r {
        Err(ClientError::ServerStopped { text, .. }) => {
            assert!(text.contains(expect), "{text}")
        }
        other => panic!("expected a refusal ({expect}), got {other:?}"),
    }
    let after = b.db.certificates().await.unwrap();
    assert_eq!(after.len(), before, "nothing issued");
    let audit = b.db.audit_events().await.unwrap();
    assert_eq!(audit.len(), events_before + 1, "one audit event");
    let last = audit.last().unwrap();
    assert_eq!(last.event, "provisioning.refused");
    assert!(last.detail.contains(expect), "{}", last.detail);
    match named {
        Named::Yes => assert_eq!(
            last.device_id,
            Some(device),
            "the device is named: {expect}"
        ),
        Named::No => assert_eq!(last.device_id, None, "an unproven identity is not recorded"),
    }
}

on_both!(
    forged_provisionings,
    forged_provisionings_are_refused_on_sqlite,
    forged_provisionings_are_refused_on_postgres
);

async fn forged_provisionings(on: On) {
    let Some(b) = backend(on, "main").await else {
        return;
    };

    // The honest path works, and its GENERAL AUTHENTICATE answer is recorded.
    let mut d = produced(&b).await;
    let recorded: Arc<std::sync::Mutex<Option<Vec<u8>>>> = Arc::default();
    let rec = recorded.clone();
    d.rewrite = Box::new(move |apdu, r| {
        if apdu.get(1) == Some(&0x86) {
            *rec.lock().unwrap() = Some(r.clone());
        }
        r
    });
    let (r, _) = session(&format!("{}/provision?profile=tls-client", b.url), &mut d).await;
    r.unwrap();
    assert_eq!(b.db.certificates().await.unwrap().len(), 1);

    // A replayed GENERAL AUTHENTICATE answer: chip authentication fails.
    verify(&mut d, None);
    let old = recorded.lock().unwrap().clone().unwrap();
    d.rewrite = Box::new(move |apdu, r| {
        if apdu.get(1) == Some(&0x86) {
            old.clone()
        } else {
            r
        }
    });
    refused(&b, &mut d, Named::No, "chip authentication failed").await;

    // A flipped bit in the secure-messaging MAC of the key generation's answer.
    verify(&mut d, None);
    d.rewrite = Box::new(|apdu, mut r| {
        if apdu.get(1) == Some(&0x46) && r.len() > 4 {
            let n = r.len();
            r[n - 4] ^= 1;
        }
        r
    });
    refused(&b, &mut d, Named::Yes, "MAC does not verify").await;

    // A tampered element that, once chip authentication has opened secure messaging, has
    // another produced device's key sign its key attestation: a valid signature, by the wrong
    // device.
    let other = produced(&b).await.applet.state().device.clone().unwrap();
    let theirs = other.clone();
    verify(&mut d, None);
    d.rewrite = honest();
    d.tamper = Some(Box::new(move |apdu, applet| {
        if apdu.get(1) == Some(&0x46) {
            applet.state_mut().device = Some(theirs.clone());
        }
    }));
    refused(
        &b,
        &mut d,
        Named::Yes,
        &format!("signed by device {}", other.chr),
    )
    .await;
    d.tamper = None;

    // The same with only the other device's private key: this device's name on a signature
    // its key did not make.
    let mine = produced(&b).await;
    let own = mine.applet.state().device.clone().unwrap();
    let mut d = mine;
    d.tamper = Some(Box::new(move |apdu, applet| {
        if apdu.get(1) == Some(&0x46) {
            let device = applet.state_mut().device.as_mut().unwrap();
            device.private = other.private.clone();
        }
    }));
    refused(
        &b,
        &mut d,
        Named::Yes,
        "the device signature does not verify",
    )
    .await;
    assert_eq!(d.applet.state().device_chr(), own.chr);

    // A revoked device: refused before any key is generated.
    let mut d = produced(&b).await;
    let id = d.applet.state().device_chr().to_string();
    b.db.revoke_device(&id, "keyCompromise").await.unwrap();
    let keys_before = d.applet.state().keys.len();
    refused(&b, &mut d, Named::Yes, &format!("device {id} is revoked")).await;
    assert_eq!(d.applet.state().keys.len(), keys_before, "no key generated");

    // An element whose chain leads to another root (a development element, not produced here).
    let mut stranger = foreign_element(&b.dir.join("other-ca"));
    refused(&b, &mut stranger, Named::No, "not trusted").await;
    let _ = std::fs::remove_dir_all(&b.dir);
}

/// An initialized element of another production line (a development CA in `ca_dir`), its PIN
/// verified.
fn foreign_element(ca_dir: &std::path::Path) -> Device {
    let dev = keyward_se::dev_pki::DevCa::open_or_create(ca_dir).unwrap();
    let mut hsm = Hsm::new(InProcess(Applet::new(
        dev.new_element().unwrap(),
        MemoryStore,
    )));
    hsm.select().unwrap();
    hsm.initialize(&InitConfig {
        options: 1,
        pin: PIN,
        so_pin: *b"12345678",
        retries: 3,
        dkek_shares: None,
    })
    .unwrap();
    hsm.verify_pin(PIN).unwrap();
    Device {
        applet: hsm.into_channel().0,
        tamper: None,
        rewrite: honest(),
    }
}

on_both!(
    external_devices,
    devices_of_an_external_root_are_registered_and_provisioned_on_sqlite,
    devices_of_an_external_root_are_registered_and_provisioned_on_postgres
);

async fn external_devices(on: On) {
    // Another production line's root, trusted by configuration (as CardContact's is for
    // genuine SmartCard-HSMs).
    let ca_dir = std::env::temp_dir().join(format!(
        "keyward-forge-extca-{}-{}",
        on as u8,
        std::process::id()
    ));
    let other = keyward_se::dev_pki::DevCa::open_or_create(&ca_dir).unwrap();
    let Some(b) = backend_with(on, "external", vec![other.srca.clone()]).await else {
        return;
    };
    let mut d = foreign_element(&ca_dir);
    let url = format!("{}/provision?profile=tls-client", b.url);
    let (r, _) = session(&url, &mut d).await;
    r.unwrap();
    let devices = b.db.devices().await.unwrap();
    assert_eq!(devices.len(), 1);
    assert!(devices[0].serial.starts_with("external:"));
    assert!(devices[0].chain.is_some());
    let audit = b.db.audit_events().await.unwrap();
    assert!(audit.iter().any(|e| {
        e.event == "device.registered"
            && e.detail
                .contains(&String::from_utf8_lossy(&other.srca.body.chr).to_string())
    }));
    // A second provisioning finds it registered; both certificates are active.
    verify(&mut d, None);
    let (r, _) = session(&url, &mut d).await;
    r.unwrap();
    assert_eq!(b.db.devices().await.unwrap().len(), 1);
    let certs = b.db.certificates().await.unwrap();
    assert_eq!(certs.iter().filter(|c| c.state == "active").count(), 2);
    let _ = std::fs::remove_dir_all(&b.dir);
    let _ = std::fs::remove_dir_all(&ca_dir);
}

on_both!(
    policy,
    requests_outside_a_profiles_policy_are_refused_on_sqlite,
    requests_outside_a_profiles_policy_are_refused_on_postgres
);

async fn policy(on: On) {
    let Some(b) = backend(on, "policy").await else {
        return;
    };
    let mut d = produced(&b).await;
    for (query, expect) in [
        (
            "profile=tls-client&key=ec-p384",
            "key type \"ec-p384\" is outside the profile's policy (allowed: ec-p256)",
        ),
        (
            "profile=site&key=rsa-2048&site=berlin",
            "key type \"rsa-2048\" is outside the profile's policy (allowed: ec-p256, ec-p384)",
        ),
        (
            "profile=site&key=dsa-512&site=berlin",
            "outside the profile's policy",
        ),
        ("profile=site", "request parameter \"site\" is missing"),
        (
            "profile=site&site=a%2CCN%3Devil",
            "request parameter \"site\" is not",
        ),
    ] {
        refused_at(&b, &mut d, query, Named::Yes, expect).await;
        verify(&mut d, None);
    }

    // Within the policy: the key type asked for, the subject and SAN from the parameter.
    let (r, _) = session(
        &format!("{}/provision?profile=site&key=ec-p384&site=berlin-3", b.url),
        &mut d,
    )
    .await;
    r.unwrap();
    let certs = b.db.certificates().await.unwrap();
    assert_eq!(certs.len(), 1);
    let der = hex::decode(&certs[0].der).unwrap();
    let id = certs[0].device_id.clone();
    let has = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"berlin-3"), "OU from the request parameter");
    assert!(has(format!("{id}.berlin-3.acme.example").as_bytes()));
    // id-ecPublicKey with secp384r1 (1.3.132.0.34).
    assert!(
        has(&[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22]),
        "a P-384 key"
    );
    // The element's key carries the profile's key-use counter and, not being exportable, an
    // algorithm list without 92 (no wrapping under a DKEK).
    let key = &d.applet.state().keys[&u8::try_from(certs[0].key_ref).unwrap()];
    assert_eq!(key.use_counter, Some(1000));
    let algorithms = key.algorithms.as_ref().expect("an algorithm list");
    assert!(!algorithms.0.contains(&0x92), "{:02X?}", algorithms.0);
    let _ = std::fs::remove_dir_all(&b.dir);
}

on_both!(
    pin_key,
    production_without_a_pin_key_is_refused_before_the_element_is_touched_on_sqlite,
    production_without_a_pin_key_is_refused_before_the_element_is_touched_on_postgres
);

async fn pin_key(on: On) {
    let Some(b) = backend(on, "pinkey").await else {
        return;
    };
    for query in ["", "?pin_key=04", "?pin_key=zz"] {
        let mut d = blank(&b);
        let (r, notes) = session(&format!("{}/produce{query}", b.url), &mut d).await;
        match r {
            Err(ClientError::ServerStopped { text, .. }) => {
                assert!(text.contains("pin_key"), "{text}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(
            notes
                .iter()
                .all(|n| n.id != keyward_server::produce::NOTIFY_TRANSPORT_PIN)
        );
        assert!(b.db.devices().await.unwrap().is_empty(), "nothing reserved");
    }
    let _ = std::fs::remove_dir_all(&b.dir);
}

on_both!(
    interrupted,
    an_unconfirmed_certificate_is_revoked_on_sqlite,
    an_unconfirmed_certificate_is_revoked_on_postgres
);

/// An element that does not confirm storing its certificate (its answers to UPDATE BINARY
/// lost): the certificate stays pending, never active; the sweep the server runs for sessions
/// older than the longest one revokes it with an audit event, and it is on the CRL's list.
async fn interrupted(on: On) {
    let Some(b) = backend(on, "interrupted").await else {
        return;
    };
    let mut d = produced(&b).await;
    let id = d.applet.state().device_chr().to_string();
    let url = format!("{}/provision?profile=tls-client", b.url);
    // A first certificate (A), provisioned normally: key 1.
    let (r, _) = session(&url, &mut d).await;
    r.unwrap();
    let first = b.db.certificates().await.unwrap()[0].serial.clone();
    verify(&mut d, None);
    d.rewrite = Box::new(|apdu, r| {
        if apdu.get(1) == Some(&0xD7) {
            vec![0x6F, 0x00]
        } else {
            r
        }
    });
    let (r, _) = session(&format!("{url}&renew={first}"), &mut d).await;
    assert!(r.is_err(), "the server saw no confirmation");
    let certs = b.db.certificates().await.unwrap();
    let pending: Vec<_> = certs.iter().filter(|c| c.state == "pending").collect();
    assert_eq!(pending.len(), 1);
    let serial = pending[0].serial.clone();
    // The element holds the unconfirmed certificate (B) with its key 2.
    let keys = |d: &Device| d.applet.state().keys.keys().copied().collect::<Vec<u8>>();
    assert_eq!(keys(&d), [1, 2]);
    let der = hex::decode(&pending[0].der).unwrap();
    assert_eq!(d.applet.state().files.get(&0xCE02).unwrap().0, der);

    // Younger than the cut-off: left alone (its session could still be running).
    let recorded = certs[0].created_at;
    assert!(b.db.revoke_interrupted(recorded).await.unwrap().is_empty());
    assert_eq!(
        b.db.revoke_interrupted(recorded + 1).await.unwrap(),
        vec![serial.clone()]
    );
    let cert = b.db.certificate(&serial).await.unwrap().unwrap();
    assert_eq!(cert.state, "revoked");
    assert_eq!(
        cert.revocation_reason.as_deref(),
        Some("provisioning interrupted")
    );
    assert!(
        b.db.revoked_certificates()
            .await
            .unwrap()
            .iter()
            .any(|(s, _, _)| *s == serial)
    );
    let audit = b.db.audit_events().await.unwrap();
    let last = audit.last().unwrap();
    assert_eq!(
        (last.event.as_str(), last.device_id.as_deref()),
        ("certificate.revoked", Some(id.as_str()))
    );
    assert!(last.detail.contains(&serial) && last.detail.contains("interrupted"));

    // The device, taking the newest certificate it holds (B) for its current one, renews it:
    // the back end renews A, this profile's active certificate, and deletes B's key from the
    // element in the same session.
    verify(&mut d, None);
    d.rewrite = honest();
    let (r, _) = session(&format!("{url}&renew={serial}"), &mut d).await;
    r.unwrap();
    let state = |serial: &str| {
        let db = b.db.clone();
        let serial = serial.to_string();
        async move { db.certificate(&serial).await.unwrap().unwrap() }
    };
    let a = state(&first).await;
    assert_eq!(
        (a.state.as_str(), a.revocation_reason.as_deref()),
        ("revoked", Some("superseded"))
    );
    let certs = b.db.certificates().await.unwrap();
    let active: Vec<_> = certs.iter().filter(|c| c.state == "active").collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].key_ref, 3);
    assert_eq!(
        keys(&d),
        [1, 3],
        "B's key is gone, A's (superseded) still there"
    );
    let audit = b.db.audit_events().await.unwrap();
    assert!(audit.iter().any(|e| e.event == "key.deleted"
        && e.device_id.as_deref() == Some(id.as_str())
        && e.detail == format!("key 2 of certificate {serial} deleted from the element")));
    // A device that did not delete A's key after its renewal: the next session does.
    verify(&mut d, None);
    let (r, _) = session(&format!("{}/provision?profile=site&site=x", b.url), &mut d).await;
    r.unwrap();
    assert_eq!(
        keys(&d),
        [2, 3],
        "A's key deleted, the new key in the lowest free id"
    );
    assert!(audit.len() < b.db.audit_events().await.unwrap().len());
    assert!(
        b.db.audit_events()
            .await
            .unwrap()
            .iter()
            .any(|e| e.event == "key.deleted"
                && e.detail == format!("key 1 of certificate {first} deleted from the element"))
    );
    let _ = std::fs::remove_dir_all(&b.dir);
}
