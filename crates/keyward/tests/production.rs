#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Production through real `keyward server` processes, on SQLite and on PostgreSQL (the test
//! script starts one and sets KEYWARD_TEST_POSTGRES_URL): refusals leave no trace but an audit
//! event, a produced element is never produced twice, and a server killed with SIGKILL again
//! and again during 100 productions loses nothing — after restarts every element is produced
//! exactly once, sequence numbers have no gaps, and the database holds no orphan rows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use keyward_server::db::{Db, DeviceState};

mod common;
use common::*;

/// The whole suite against one database.
fn suite(work: &Path, db_url: &str) {
    let data = work.join("data");
    let mut server = Server::start(&data, db_url);
    let kst = data.join("kst.key");

    // An element keyed with another KST is refused and leaves no device record.
    std::fs::write(
        work.join("other.key"),
        "kvn = FF\nkey = 000102030405060708090A0B0C0D0E0F\n",
    )
    .unwrap();
    let o = keyward(
        &[
            "se",
            "new",
            "--state",
            "wrong.state",
            "--blank",
            "--kst",
            "other.key",
        ],
        work,
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = keyward(
        &[
            "device",
            "produce",
            "--url",
            &server.url(),
            "--card",
            "se:wrong.state",
            "--pin-file",
            "wrong.pin",
        ],
        work,
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("does not hold the expected keys"),
        "{}",
        text(&o)
    );
    assert!(block(db(db_url).devices()).unwrap().is_empty());

    // A blank element with the KST is produced once; a second production is refused.
    let o = keyward(
        &["se", "new", "--state", "one.state", "--blank", "--kst"],
        work,
    );
    assert!(!o.status.success(), "--kst needs a file");
    let o = Command::new(KEYWARD)
        .args(["se", "new", "--state", "one.state", "--blank", "--kst"])
        .arg(&kst)
        .current_dir(work)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let produce_one = || {
        keyward(
            &[
                "device",
                "produce",
                "--url",
                &server.url(),
                "--card",
                "se:one.state",
                "--pin-file",
                "one.pin",
            ],
            work,
        )
    };
    let o = produce_one();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("in 4 round trips"), "{}", text(&o));
    let pin = std::fs::read_to_string(work.join("one.pin")).unwrap();
    assert_eq!(pin.trim().len(), 8);
    let o = produce_one();
    assert!(!o.status.success());
    assert!(text(&o).contains("produced already"), "{}", text(&o));
    {
        let d = db(db_url);
        let devices = block(d.devices()).unwrap();
        assert_eq!(devices.len(), 1, "exactly one identity");
        assert_eq!(devices[0].state, DeviceState::Produced);
        assert!(
            devices[0].transport_pin.is_none(),
            "transport PIN forgotten"
        );
        let audit = block(d.audit_events()).unwrap();
        assert!(audit.iter().any(|e| e.event == "production.refused"));
    }

    // 100 productions while the server is killed with SIGKILL at random moments.
    let elements = work.join("elements");
    let bench = Command::new(KEYWARD)
        .args(["bench", "produce", "--url", &server.url()])
        .args([
            "--devices",
            "100",
            "--concurrency",
            "8",
            "--retry-for",
            "120",
        ])
        .arg("--kst")
        .arg(&kst)
        .arg("--elements")
        .arg(&elements)
        .env("KEYWARD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let seed = std::process::id() as u64;
    for i in 0..6u64 {
        let wait = 150 + (seed.wrapping_mul(2_654_435_761).wrapping_add(i * 7919) % 450);
        std::thread::sleep(Duration::from_millis(wait));
        server.kill9_and_restart();
    }
    let out = bench.wait_with_output().unwrap();
    assert!(out.status.success(), "bench: {}", text(&out));
    eprintln!("{}", text(&out));
    server.stop();

    let d = db(db_url);
    let devices = block(d.devices()).unwrap();
    assert_eq!(devices.len(), 101, "{}", text(&out));
    let seqs: Vec<i64> = devices.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (1..=101).collect::<Vec<i64>>(),
        "no gaps, no duplicates"
    );
    assert!(devices.iter().all(|r| r.state == DeviceState::Produced));
    let by_serial: BTreeMap<&str, &str> = devices
        .iter()
        .map(|r| (r.serial.as_str(), r.device_id.as_str()))
        .collect();
    assert_eq!(by_serial.len(), 101);
    let ids: BTreeSet<&str> = devices.iter().map(|r| r.device_id.as_str()).collect();
    let audit = block(d.audit_events()).unwrap();
    assert!(
        audit
            .iter()
            .filter_map(|e| e.device_id.as_deref())
            .all(|id| ids.contains(id)),
        "no audit event for a device that does not exist"
    );
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.event == "device.produced")
            .count(),
        101
    );
    // Every element holds the identity the database records for its serial.
    let mut seen = 0;
    for entry in std::fs::read_dir(&elements).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "state") {
            continue;
        }
        let state =
            keyward_se::read_snapshot(&path, &keyward_se::StateFile::default_key_path(&path))
                .unwrap();
        let card = state.card.as_ref().unwrap();
        let serial = hex::encode_upper(&card.kdd.0);
        assert_eq!(by_serial.get(serial.as_str()), Some(&state.device_chr()));
        assert_eq!(card.life_cycle, 0x0F);
        assert_eq!(card.key_sets.keys().copied().collect::<Vec<_>>(), [0x01]);
        seen += 1;
    }
    assert_eq!(seen, 100);

    // The audit log verifies; an edited, a deleted and a truncated log are each caught.
    let data_dir = data.display().to_string();
    let verify = || {
        keyward(
            &["audit", "verify", "--db", db_url, "--data-dir", &data_dir],
            Path::new("."),
        )
    };
    let o = verify();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("audit log intact"), "{}", text(&o));
    // Without the data directory's key: order and links checked, content not (and said so).
    let o = keyward(
        &[
            "audit",
            "verify",
            "--db",
            db_url,
            "--data-dir",
            "/nonexistent",
        ],
        Path::new("."),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("their content was not"), "{}", text(&o));
    let sql = |q: String| {
        block(async {
            use sqlx::Connection;
            sqlx::any::install_default_drivers();
            let mut c = sqlx::AnyConnection::connect(db_url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(q))
                .execute(&mut c)
                .await
                .unwrap();
        })
    };
    let events = block(db(db_url).audit_events()).unwrap();
    let original = events[1].detail.replace('\'', "''");
    sql("UPDATE audit SET detail = 'nothing happened' WHERE seq = 2".into());
    let o = verify();
    assert!(!o.status.success());
    assert!(text(&o).contains("event 2 was changed"), "{}", text(&o));
    sql(format!(
        "UPDATE audit SET detail = '{original}' WHERE seq = 2"
    ));
    assert!(verify().status.success(), "restored");
    let last = events.len();
    sql(format!("DELETE FROM audit WHERE seq = {last}"));
    assert!(text(&verify()).contains("the newest were deleted"));
    sql("DELETE FROM audit WHERE seq = 5".into());
    assert!(text(&verify()).contains("event 5 is missing"));

    // Someone with write access but without the data directory rewrites the log from its
    // first event and recomputes every hash — unkeyed, or under a key of their own.
    let events = block(db(db_url).audit_events()).unwrap();
    for (i, e) in events.iter().enumerate() {
        sql(format!(
            "UPDATE audit SET seq = {} WHERE seq = {}",
            i + 1,
            e.seq
        ));
    }
    let events = block(db(db_url).audit_events()).unwrap();
    let forger = keyward_server::seal::MasterKey::new(&[7; 32])
        .unwrap()
        .audit_key();
    for key in [None, Some(&forger)] {
        let mut prev = keyward_server::db::AUDIT_GENESIS.to_string();
        for (i, e) in events.iter().enumerate() {
            let seq = i64::try_from(i).unwrap() + 1;
            let detail = if seq == 2 {
                "nothing happened"
            } else {
                e.detail.as_str()
            };
            let h = keyward_server::db::audit_hash(
                key,
                &prev,
                seq,
                e.at,
                &e.event,
                e.device_id.as_deref(),
                detail,
            );
            sql(format!(
                "UPDATE audit SET detail = '{}', prev_hash = '{prev}', hash = '{h}' WHERE seq = {seq}",
                detail.replace('\'', "''"),
            ));
            prev = h;
        }
        sql(format!(
            "UPDATE counters SET value = {} WHERE name = 'audit'",
            events.len()
        ));
        let o = verify();
        assert!(!o.status.success(), "{}", text(&o));
        let expect = if key.is_none() {
            "event 1 is not chained under this installation's audit key"
        } else {
            "event 1 was changed"
        };
        assert!(text(&o).contains(expect), "{}", text(&o));
    }
}

#[test]
fn production_on_sqlite() {
    on_sqlite("produce", suite);
}

#[test]
fn production_on_postgres() {
    on_postgres("produce", suite);
}

#[test]
fn a_newer_schema_is_refused() {
    let work = temp_dir("produce-schema");
    let url = format!("sqlite://{}", work.join("keyward.db").display());
    drop(db(&url));
    block(async {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::query("INSERT INTO keyward_schema (version, applied_at) VALUES (99, 0)")
            .execute(&mut c)
            .await
            .unwrap();
    });
    let err = block(Db::open(&url, 1)).err().unwrap();
    assert!(err.to_string().contains("schema version 99"), "{err}");
    let _ = std::fs::remove_dir_all(&work);
}
