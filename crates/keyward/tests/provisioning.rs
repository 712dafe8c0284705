#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Provisioning through real `keyward server` processes, on SQLite and on PostgreSQL: 500
//! devices provisioned concurrently with unique serials; a revoked device is refused with an
//! audit event and its certificates revoked; the server killed with SIGKILL during
//! provisionings leaves no certificate recorded as valid that its element does not hold, and
//! every provisioning succeeds when run again.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn produce(server: &Server, work: &Path, name: &str) {
    let o = Command::new(KEYWARD)
        .args([
            "se",
            "new",
            "--state",
            &format!("{name}.state"),
            "--blank",
            "--kst",
        ])
        .arg(work.join("data/kst.key"))
        .current_dir(work)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = keyward(
        &[
            "device",
            "produce",
            "--url",
            &server.url(),
            "--card",
            &format!("se:{name}.state"),
            "--pin-file",
            &format!("{name}.pin"),
        ],
        work,
    );
    assert!(o.status.success(), "{}", text(&o));
}

fn provision(server: &Server, work: &Path, name: &str, profile: &str) -> std::process::Output {
    keyward(
        &[
            "device",
            "provision",
            "--url",
            &server.provision_url(),
            "--card",
            &format!("se:{name}.state"),
            "--profile",
            profile,
            "--pin-file",
            &format!("{name}.pin"),
        ],
        work,
    )
}

fn suite(work: &Path, db_url: &str) {
    let data = work.join("data");
    let mut server = Server::start(&data, db_url);

    // 500 devices provisioned concurrently.
    let o = Command::new(KEYWARD)
        .args(["bench", "provision", "--url", &server.provision_url()])
        .args([
            "--devices",
            "500",
            "--concurrency",
            "16",
            "--link",
            "inproc",
        ])
        .arg("--kst")
        .arg(data.join("kst.key"))
        .env("KEYWARD_LOG", "warn")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    eprintln!("{}", text(&o));
    {
        let d = db(db_url);
        let certs = block(d.certificates()).unwrap();
        assert_eq!(certs.len(), 500);
        assert!(certs.iter().all(|c| c.state == "active"));
        let serials: BTreeSet<&str> = certs.iter().map(|c| c.serial.as_str()).collect();
        assert_eq!(serials.len(), 500, "serials unique");
        let devices: BTreeSet<&str> = certs.iter().map(|c| c.device_id.as_str()).collect();
        assert_eq!(devices.len(), 500, "one certificate per device");
    }

    // A revoked device is refused; its certificates are revoked with it.
    produce(&server, work, "rev");
    let o = provision(&server, work, "rev", "tls-client");
    assert!(o.status.success(), "{}", text(&o));
    let device_id = keyward_se::read_snapshot(
        &work.join("rev.state"),
        &keyward_se::StateFile::default_key_path(&work.join("rev.state")),
    )
    .unwrap()
    .device_chr()
    .to_string();
    block(db(db_url).revoke_device(&device_id, "keyCompromise")).unwrap();
    let o = provision(&server, work, "rev", "tls-client");
    assert!(!o.status.success());
    assert!(
        text(&o).contains("is revoked: keyCompromise"),
        "{}",
        text(&o)
    );
    {
        let d = db(db_url);
        let certs = block(d.certificates()).unwrap();
        let mine: Vec<_> = certs.iter().filter(|c| c.device_id == device_id).collect();
        assert_eq!(mine.len(), 1, "nothing issued after the revocation");
        assert_eq!(mine[0].state, "revoked");
        let audit = block(d.audit_events()).unwrap();
        assert!(audit.iter().any(|e| e.event == "provisioning.refused"
            && e.device_id.as_deref() == Some(device_id.as_str())));
    }

    // SIGKILL during provisionings: afterwards every certificate recorded as active is on its
    // element, and running each provisioning again succeeds.
    let names: Vec<String> = (0..12).map(|i| format!("k{i}")).collect();
    for n in &names {
        produce(&server, work, n);
    }
    let url = server.provision_url();
    let workers: Vec<_> = names
        .iter()
        .map(|n| {
            let (n, url, work) = (n.clone(), url.clone(), work.to_path_buf());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(120);
                let mut done = 0;
                // Three provisionings each; failed attempts (server gone) are repeated.
                while done < 3 {
                    let o = keyward(
                        &[
                            "device",
                            "provision",
                            "--url",
                            &url,
                            "--card",
                            &format!("se:{n}.state"),
                            "--profile",
                            "tls-client",
                            "--pin-file",
                            &format!("{n}.pin"),
                        ],
                        &work,
                    );
                    if o.status.success() {
                        done += 1;
                    } else {
                        assert!(Instant::now() < deadline, "{n}: {}", text(&o));
                        std::thread::sleep(Duration::from_millis(30));
                    }
                }
            })
        })
        .collect();
    for i in 0..5u64 {
        std::thread::sleep(Duration::from_millis(
            200 + (std::process::id() as u64 * 31 + i * 97) % 300,
        ));
        server.kill9_and_restart();
    }
    for w in workers {
        w.join().unwrap();
    }
    server.stop();
    let d = db(db_url);
    let certs = block(d.certificates()).unwrap();
    for n in &names {
        let path = work.join(format!("{n}.state"));
        let state =
            keyward_se::read_snapshot(&path, &keyward_se::StateFile::default_key_path(&path))
                .unwrap();
        let mine: Vec<_> = certs
            .iter()
            .filter(|c| c.device_id == state.device_chr())
            .collect();
        let active: Vec<_> = mine.iter().filter(|c| c.state == "active").collect();
        assert!(active.len() >= 3, "{n}: {} active", active.len());
        for c in &active {
            let fid = 0xCE00 | u16::try_from(c.key_ref).unwrap();
            assert_eq!(
                state.files.get(&fid).map(|f| hex::encode(&f.0)),
                Some(c.der.clone()),
                "{n}: active certificate {} is on the element",
                c.serial
            );
        }
        assert!(
            mine.iter().all(|c| c.state != "pending"),
            "{n}: interrupted provisionings are revoked by the next one"
        );
    }
}

#[test]
fn provisioning_on_sqlite() {
    on_sqlite("provision", suite);
}

#[test]
fn provisioning_on_postgres() {
    on_postgres("provision", suite);
}
