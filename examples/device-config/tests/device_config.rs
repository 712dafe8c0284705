#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The example service against a real back end on loopback: a blank in-process element is
//! produced through `/rt/produce`, its transport PIN replaced and its own PIN verified locally,
//! then `/rt/device-config` writes the configuration object. Every session runs behind the
//! device's firewall (`BACK_END_SERVICES`): no plain command beyond those may be needed. The
//! object is read back locally — with the card API and as Keyward's PKCS#11 module lists it —
//! and refusals (request outside the settings, revoked device, a chain to an untrusted root)
//! are audited with nothing written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keyward_card::pkcs15::DataObjectDescription;
use keyward_card::{CardChannel, CardError, Hsm, InitConfig};
use keyward_example_device_config::service::{EVENT_REFUSED, EVENT_WRITTEN, NOTIFY_CONFIG};
use keyward_example_device_config::settings::APPLICATION;
use keyward_example_device_config::{
    ConfigSettings, DeviceConfig, DeviceConfigService, DeviceConfigurator,
};
use keyward_ram::client::{self, Card, ClientConfig, ClientError, Notification, Summary};
use keyward_ram::guard::{BACK_END_SERVICES, Guarded};
use keyward_ram::server::{Engine, EngineConfig};
use keyward_se::state::{ScpKeySet, SecretBytes, State};
use keyward_se::{Applet, StateFile};
use keyward_server::db::Db;
use keyward_server::produce::{Naming, PinReceiver, ProductionService};
use keyward_server::provision::ProvisioningService;
use keyward_server::{Settings, services};

const PIN: &[u8] = b"64821973";

/// An element whose state lives in a (sealed) state file, as the PKCS#11 module's embedded
/// slots open them.
struct Element {
    applet: Applet<StateFile>,
    path: PathBuf,
}

impl Card for Element {
    fn atr(&mut self) -> Vec<u8> {
        keyward_se::ATR.to_vec()
    }

    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, String> {
        Ok(self.applet.transmit(apdu))
    }

    fn reset(&mut self) -> Result<Vec<u8>, String> {
        self.applet.reset();
        Ok(keyward_se::ATR.to_vec())
    }
}

/// The device's own application talking to its element (plain, locally).
struct Local<'a>(&'a mut Applet<StateFile>);

impl CardChannel for Local<'_> {
    fn transmit_raw(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardError> {
        Ok(self.0.transmit(apdu))
    }
}

impl Element {
    fn hsm(&mut self) -> Hsm<Local<'_>> {
        Hsm::new(Local(&mut self.applet))
    }

    /// Selects the applet and verifies the PIN (first replacing the transport PIN), as the
    /// device does before it connects: the PIN never crosses the network.
    fn verify(&mut self, transport: Option<&[u8]>) {
        let mut hsm = self.hsm();
        hsm.select().unwrap();
        if let Some(t) = transport {
            hsm.change_pin(t, PIN).unwrap();
        }
        hsm.verify_pin(PIN).unwrap();
    }

    fn files(&mut self) -> Vec<u16> {
        self.hsm().enumerate().unwrap()
    }
}

struct Backend {
    url: String,
    db: Arc<Db>,
    kst: (u8, Vec<u8>, Vec<u8>, Vec<u8>),
    dir: PathBuf,
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn settings() -> ConfigSettings {
    toml::from_str(
        r#"
        backend_url = "https://iot.example/ingest"
        ntp_servers = ["ntp1.example", "ntp2.example"]
        report_interval = 300
        min_report_interval = 60
        max_report_interval = 3600
        "#,
    )
    .unwrap()
}

/// Production, provisioning and the example service on loopback (SQLite in a fresh data
/// directory), assembled as the example's `main.rs` does.
async fn backend(name: &str) -> Backend {
    let dir = std::env::temp_dir().join(format!(
        "keyward-example-devcfg-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let (producer, provisioner) = services(Settings {
        data_dir: &dir.join("data"),
        db_url: None,
        unlock: keyward_ca::ca_set::Unlock::default(),
        naming: Naming {
            country: "ZZ".into(),
            mnemonic: "CFG".into(),
        },
        validity_days: 365,
        db_connections: 4,
        profiles: Default::default(),
        crl_url: None,
        ocsp_url: None,
        external_roots: Vec::new(),
    })
    .await
    .unwrap();
    let db = producer.db.clone();
    let kst = (
        producer.kst.0,
        producer.kst.1.enc.to_vec(),
        producer.kst.1.mac.to_vec(),
        producer.kst.1.dek.to_vec(),
    );
    let configurator = DeviceConfigurator::new(&provisioner, settings()).unwrap();
    let engine = Arc::new(
        Engine::new(EngineConfig::default())
            .service("produce", ProductionService(Arc::new(producer)))
            .service("provision", ProvisioningService(Arc::new(provisioner)))
            .service("device-config", DeviceConfigService(Arc::new(configurator))),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/rt", listener.local_addr().unwrap());
    tokio::spawn(keyward_ram::server::serve(engine, listener));
    Backend { url, db, kst, dir }
}

/// One session through the device's firewall; fails the test if the service needed a plain
/// command the firewall refuses.
async fn session(
    url: &str,
    card: &mut Element,
) -> (Result<Summary, ClientError>, Vec<Notification>) {
    let cfg = ClientConfig::new(url);
    let http = client::http_client(&cfg).unwrap();
    let mut seen = Vec::new();
    let mut on_notify = |n: &Notification| seen.push(n.clone());
    let mut guarded = Guarded::new(card, BACK_END_SERVICES);
    let r = client::connect(&http, &cfg, &mut guarded, &mut on_notify).await;
    assert!(
        guarded.refused.is_empty(),
        "the device's firewall refused plain commands {:02X?}",
        guarded.refused
    );
    (r, seen)
}

/// A blank element holding the back end's Key for Secure Transport, in a state file.
fn blank(b: &Backend, name: &str) -> Element {
    let (kvn, enc, mac, dek) = &b.kst;
    let set = ScpKeySet {
        enc: SecretBytes::new(enc.clone()),
        mac: SecretBytes::new(mac.clone()),
        dek: SecretBytes::new(dek.clone()),
    };
    let mut serial = [0u8; 10];
    serial.copy_from_slice(&keyward_crypto::random(10).unwrap());
    state_file_element(&b.dir.join(name), State::blank(set, *kvn, serial))
}

fn state_file_element(path: &Path, state: State) -> Element {
    let file = StateFile::create(path, &StateFile::default_key_path(path), &state).unwrap();
    Element {
        applet: Applet::new(state, file),
        path: path.to_path_buf(),
    }
}

/// A blank element produced by the back end (behind the firewall too), its transport PIN
/// replaced by the device's own and verified. Returns the device id.
async fn produced(b: &Backend, name: &str) -> (Element, String) {
    let mut d = blank(b, name);
    let mut receiver = PinReceiver::new().unwrap();
    let (r, notes) = session(&receiver.url(&format!("{}/produce", b.url)), &mut d).await;
    r.unwrap();
    for n in &notes {
        receiver.notice(n);
    }
    let (id, transport) = receiver.finish().unwrap();
    d.verify(Some(transport.as_bytes()));
    (d, id)
}

fn config_note(notes: &[Notification]) -> &str {
    notes
        .iter()
        .find(|n| n.id == NOTIFY_CONFIG)
        .map(|n| n.text.as_str())
        .expect("the device-config notification")
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(keyward_crypto::HashAlg::Sha256.digest(data))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_is_written_under_secure_messaging() {
    let b = backend("write").await;
    let (mut d, id) = produced(&b, "element.se").await;

    // The device's application already keeps a data object of its own (n = 1), written
    // locally as the PKCS#11 module would: the service must leave it alone.
    let other = DataObjectDescription {
        label: "other".into(),
        application: "someone-else".into(),
        app_oid: None,
        private: false,
        fid: 0xCF01,
    };
    {
        let mut hsm = d.hsm();
        hsm.write_file(0xCF01, b"not the configuration").unwrap();
        hsm.write_file(0xC901, &other.encode().unwrap()).unwrap();
    }

    // First run, with request parameters.
    let url = format!("{}/device-config?report_interval=900&site=berlin-3", b.url);
    let (r, notes) = session(&url, &mut d).await;
    let summary = r.unwrap();
    // Opening, the descriptions under SM, the write: three batches, then 204.
    assert_eq!(summary.round_trips, 4, "{summary:?}");

    // Read back locally, in plain: a public object needs no PIN.
    let (value, dcod, dcod_other) = {
        let mut hsm = d.hsm();
        hsm.select().unwrap();
        (
            hsm.read_file(0xCF02).unwrap(),
            hsm.read_file(0xC902).unwrap(),
            hsm.read_file(0xC901).unwrap(),
        )
    };
    let written = DeviceConfig::parse(&value).unwrap();
    assert_eq!(
        written,
        DeviceConfig {
            version: 1,
            device: id.clone(),
            backend_url: "https://iot.example/ingest".into(),
            ntp_servers: vec!["ntp1.example".into(), "ntp2.example".into()],
            report_interval: 900,
            site: Some("berlin-3".into()),
        }
    );
    let description = DataObjectDescription::parse(&dcod).unwrap();
    assert_eq!(
        description,
        DataObjectDescription {
            label: "device-config".into(),
            application: APPLICATION.into(),
            app_oid: None,
            private: false,
            fid: 0xCF02,
        }
    );
    assert_eq!(DataObjectDescription::parse(&dcod_other).unwrap(), other);
    assert_eq!(
        config_note(&notes),
        format!("device-config:CF02 sha256:{}", sha256_hex(&value))
    );
    let audit = b.db.audit_events().await.unwrap();
    let last = audit.last().unwrap();
    assert_eq!(last.event, EVENT_WRITTEN);
    assert_eq!(last.device_id.as_deref(), Some(id.as_str()));
    assert!(last.detail.starts_with("CF02 sha256:"), "{}", last.detail);
    b.db.verify_audit().await.unwrap();

    // Second run without parameters: the same object is replaced (a shorter value, no stale
    // bytes), no second one appears.
    d.verify(None);
    let (r, notes) = session(&format!("{}/device-config", b.url), &mut d).await;
    r.unwrap();
    let value = d.hsm().read_file(0xCF02).unwrap();
    let rewritten = DeviceConfig::parse(&value).unwrap();
    assert_eq!(rewritten.report_interval, 300);
    assert_eq!(rewritten.site, None);
    assert!(value.len() < written.encode().unwrap().len());
    assert_eq!(
        config_note(&notes),
        format!("device-config:CF02 sha256:{}", sha256_hex(&value))
    );
    let data_files: Vec<u16> = d
        .files()
        .into_iter()
        .filter(|f| matches!(f.to_be_bytes()[0], 0xC9 | 0xCF | 0xCD))
        .collect();
    assert_eq!(data_files, vec![0xC901, 0xC902, 0xCF01, 0xCF02]);

    // What Keyward's PKCS#11 module shows: the element opened from its state file as an
    // embedded slot lists the configuration as a public data object with its label.
    let Element { applet, path } = d;
    drop(applet);
    let mut token = keyward_pkcs11::token::Token::new(keyward_pkcs11::token::Link::Embedded(path));
    let objects = token.objects().unwrap();
    let data: Vec<_> = objects
        .iter()
        .map(|(_, o)| o)
        .filter(|o| o.class() == cryptoki_sys::CKO_DATA)
        .collect();
    assert_eq!(data.len(), 2);
    let config = data
        .iter()
        .find(|o| o.attribute(cryptoki_sys::CKA_LABEL) == Ok(b"device-config".as_slice()))
        .expect("a data object labelled device-config");
    assert_eq!(
        config.attribute(cryptoki_sys::CKA_APPLICATION).unwrap(),
        APPLICATION.as_bytes()
    );
    assert_eq!(config.attribute(cryptoki_sys::CKA_VALUE).unwrap(), value);
    assert!(!config.is_private());
}

/// Asserts a refused session: the device stopped with `expect`, the refusal audited.
async fn refused(b: &Backend, d: &mut Element, query: &str, device: Option<&str>, expect: &str) {
    let before = b.db.audit_events().await.unwrap().len();
    let (r, notes) = session(&format!("{}/device-config{query}", b.url), d).await;
    match r {
        Err(ClientError::ServerStopped { text, .. }) => assert!(text.contains(expect), "{text}"),
        other => panic!("expected a refusal ({expect}), got {other:?}"),
    }
    assert!(notes.iter().all(|n| n.id != NOTIFY_CONFIG));
    let audit = b.db.audit_events().await.unwrap();
    assert_eq!(audit.len(), before + 1);
    let last = audit.last().unwrap();
    assert_eq!(last.event, EVENT_REFUSED);
    assert_eq!(last.device_id.as_deref(), device);
    assert!(last.detail.contains(expect), "{}", last.detail);
}

fn no_data_objects(d: &mut Element) {
    let files = d.files();
    assert!(
        files
            .iter()
            .all(|f| !matches!(f.to_be_bytes()[0], 0xC9 | 0xCF | 0xCD)),
        "nothing written: {files:04X?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_audited_and_write_nothing() {
    let b = backend("refuse").await;
    let (mut d, id) = produced(&b, "element.se").await;

    // A request outside the settings: refused before the element is touched.
    refused(
        &b,
        &mut d,
        "?report_interval=5",
        None,
        "outside the allowed 60..=3600 seconds",
    )
    .await;
    refused(&b, &mut d, "?site=a%2CCN%3Devil", None, "\"site\" is not").await;

    // A revoked device: authenticated, then refused.
    b.db.revoke_device(&id, "keyCompromise").await.unwrap();
    refused(&b, &mut d, "", Some(&id), "is revoked: keyCompromise").await;
    no_data_objects(&mut d);

    // An element of another production line (a development CA this server does not trust):
    // its chain does not lead to a trusted root.
    let ca = keyward_se::dev_pki::DevCa::open_or_create(&b.dir.join("other-ca")).unwrap();
    let mut stranger = state_file_element(&b.dir.join("stranger.se"), ca.new_element().unwrap());
    {
        let mut hsm = stranger.hsm();
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
    }
    refused(&b, &mut stranger, "", None, "not trusted").await;
    no_data_objects(&mut stranger);
}
