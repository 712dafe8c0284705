//! The device database: SQLite (the embedded default) or PostgreSQL through one portable SQL
//! text, with our own migrations and a schema version that is checked at start.
//!
//! Device sequence numbers come from a counter row incremented inside the transaction that
//! records the device, so an aborted transaction gives its number back: the numbers have no
//! gaps and no duplicates however many productions run at once.

use std::time::{SystemTime, UNIX_EPOCH};

use keyward_ram::server::SessionRecord;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use subtle::ConstantTimeEq as _;

pub use crate::seal::AuditKey;

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: i64 = 5;

/// Migrations in order; each runs in one transaction with its version row.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_devices.sql")),
    (2, include_str!("../migrations/0002_certificates.sql")),
    (3, include_str!("../migrations/0003_audit_chain.sql")),
    (4, include_str!("../migrations/0004_api_tokens.sql")),
    (5, include_str!("../migrations/0005_sessions.sql")),
];

/// The hash before the first audit event.
pub const AUDIT_GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An audit event's hash over the previous hash and the event's fields, each on its own line:
/// `hmac:` and the hex HMAC-SHA-256 under the audit key when there is one (whoever can write to
/// the database but lacks the data directory cannot recompute the chain), else the hex SHA-256
/// (logs written before the key, and handles opened without it).
pub fn audit_hash(
    key: Option<&AuditKey>,
    prev: &str,
    seq: i64,
    at: i64,
    event: &str,
    device_id: Option<&str>,
    detail: &str,
) -> String {
    let text = format!(
        "{prev}\n{seq}\n{at}\n{event}\n{}\n{detail}",
        device_id.unwrap_or_default()
    );
    match key {
        Some(k) => format!("{KEYED}{}", hex::encode(k.mac(text.as_bytes()))),
        None => hex::encode(keyward_crypto::HashAlg::Sha256.digest(text.as_bytes())),
    }
}

/// The prefix of keyed audit hashes.
const KEYED: &str = "hmac:";

/// What [`Db::verify_audit`] established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheck {
    /// Events in the log.
    pub events: i64,
    /// The newest event's hash.
    pub head: String,
    /// Keyed events whose content could not be checked (no audit key given): only their
    /// sequence and links were.
    pub content_unchecked: i64,
}

/// Why the audit log does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuditBreak {
    #[error("event {0} is missing (sequence numbers must run 1, 2, 3, …)")]
    Missing(i64),
    #[error("event {0} was changed (its hash does not match its content)")]
    Changed(i64),
    #[error("event {0} does not follow the event before it (broken chain)")]
    Unlinked(i64),
    #[error(
        "event {0} is not chained under this installation's audit key (written without it, or the log was rewritten)"
    )]
    Unkeyed(i64),
    #[error("the log ends at event {last}, but {issued} were written: the newest were deleted")]
    Truncated { last: i64, issued: i64 },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    #[error("database URL {0:?}: use sqlite://FILE or postgres://…")]
    Url(String),
    #[error("the database has schema version {found}; this keyward supports up to {supported}")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("device sequence exhausted: {0}")]
    Exhausted(String),
    #[error("audit log: {0}")]
    Audit(#[from] AuditBreak),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
}

/// Which engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A device record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub seq: i64,
    pub device_id: String,
    /// The element's serial (its SCP03 key diversification data), hex.
    pub serial: String,
    pub state: DeviceState,
    /// EF.C_DevAut (device certificate ‖ DICA certificate), hex, once issued.
    pub chain: Option<String>,
    /// The SO-PIN, sealed under the server's master key.
    pub so_pin: String,
    /// The transport PIN, sealed, until the device is produced.
    pub transport_pin: Option<String>,
    pub created_at: i64,
    pub produced_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    /// An identity is reserved for the element; production has not finished.
    Producing,
    Produced,
}

impl DeviceState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Producing => "producing",
            Self::Produced => "produced",
        }
    }
}

/// What the database says about an element that asks to be produced.
#[derive(Debug)]
pub enum Reservation {
    /// A new identity was reserved.
    New(DeviceRow),
    /// An earlier production of this element did not finish: continue with its identity.
    Resume(DeviceRow),
    /// The element is produced already.
    Produced(DeviceRow),
}

/// A certificate record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRow {
    /// Serial number, hex.
    pub serial: String,
    pub device_id: String,
    pub profile: String,
    pub key_ref: i64,
    pub state: String,
    /// DER, hex.
    pub der: String,
    /// The key's attestation (authenticated request), hex.
    pub attestation: String,
    pub not_before: i64,
    pub not_after: i64,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub revocation_reason: Option<String>,
}

macro_rules! certificate_columns {
    () => {
        "serial, device_id, profile, key_ref, state, der, attestation, not_before, not_after, created_at, revoked_at, revocation_reason"
    };
}

fn certificate_row(r: &AnyRow) -> Result<CertificateRow, sqlx::Error> {
    Ok(CertificateRow {
        serial: r.try_get("serial")?,
        device_id: r.try_get("device_id")?,
        profile: r.try_get("profile")?,
        key_ref: r.try_get("key_ref")?,
        state: r.try_get("state")?,
        der: r.try_get("der")?,
        attestation: r.try_get("attestation")?,
        not_before: r.try_get("not_before")?,
        not_after: r.try_get("not_after")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
        revocation_reason: r.try_get("revocation_reason")?,
    })
}

/// An audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub seq: i64,
    pub at: i64,
    pub event: String,
    pub device_id: Option<String>,
    pub detail: String,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

/// New secrets for a device: its sealed SO-PIN and transport PIN, made for its device id.
pub struct SealedPins {
    pub so_pin: String,
    pub transport_pin: String,
}

pub struct Db {
    pool: AnyPool,
    engine: Engine,
    /// SQLite allows one writer: writers queue here instead of failing with SQLITE_BUSY.
    /// PostgreSQL needs no such queue (row locks order the writers).
    write: Option<tokio::sync::Mutex<()>>,
    /// The audit chain's key: events are chained by HMAC under it (see [`audit_hash`]).
    audit_key: Option<AuditKey>,
}

/// Seconds since the epoch, as the tables record time.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The columns of `devices`, in a string literal so queries stay static SQL.
macro_rules! device_columns {
    () => {
        "seq, device_id, serial, state, chain, so_pin, transport_pin, created_at, produced_at"
    };
}

fn device_row(r: &AnyRow) -> Result<DeviceRow, sqlx::Error> {
    let state: String = r.try_get("state")?;
    Ok(DeviceRow {
        seq: r.try_get("seq")?,
        device_id: r.try_get("device_id")?,
        serial: r.try_get("serial")?,
        state: match state.as_str() {
            "produced" => DeviceState::Produced,
            "producing" => DeviceState::Producing,
            other => {
                return Err(sqlx::Error::Decode(
                    format!("unknown device state {other:?}").into(),
                ));
            }
        },
        chain: r.try_get("chain")?,
        so_pin: r.try_get("so_pin")?,
        transport_pin: r.try_get("transport_pin")?,
        created_at: r.try_get("created_at")?,
        produced_at: r.try_get("produced_at")?,
    })
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

impl Db {
    /// Connects, creating a SQLite file if needed, migrates and checks the schema version.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let (engine, url) = if let Some(path) = url.strip_prefix("sqlite://") {
            let sep = if path.contains('?') { '&' } else { '?' };
            (Engine::Sqlite, format!("sqlite://{path}{sep}mode=rwc"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Engine::Postgres, url.to_string())
        } else {
            return Err(DbError::Url(url.to_string()));
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .connect(&url)
            .await?;
        if engine == Engine::Sqlite {
            // Write-ahead logging: readers do not wait for the writer. It is a property of the
            // database file; `synchronous` stays FULL, so a commit is durable when it returns.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
        }
        let db = Self {
            pool,
            engine,
            write: (engine == Engine::Sqlite).then(|| tokio::sync::Mutex::new(())),
            audit_key: None,
        };
        db.migrate().await?;
        db.chain_unchained_audit().await?;
        Ok(db)
    }

    /// Chains the audit events this handle writes under `key` (the data directory's), and
    /// checks every event against it in [`Self::verify_audit`].
    #[must_use]
    pub fn with_audit_key(mut self, key: AuditKey) -> Self {
        self.audit_key = Some(key);
        self
    }

    async fn writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.write {
            Some(m) => Some(m.lock().await),
            None => None,
        }
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The schema version in the database.
    pub async fn schema_version(&self) -> Result<i64, DbError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM keyward_schema")
            .fetch_one(&self.pool)
            .await?;
        Ok(v.unwrap_or(0))
    }

    async fn migrate(&self) -> Result<(), DbError> {
        let _w = self.writer().await;
        sqlx::raw_sql("CREATE TABLE IF NOT EXISTS keyward_schema (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
            .execute(&self.pool)
            .await?;
        let found = self.schema_version().await?;
        if found > SCHEMA_VERSION {
            return Err(DbError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
            let mut tx = self.pool.begin().await?;
            sqlx::raw_sql(*sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO keyward_schema (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(now())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version, "database schema migrated");
        }
        Ok(())
    }

    /// Takes the next value of a counter inside `tx`.
    async fn next(tx: &mut Tx<'_>, counter: &str) -> Result<i64, DbError> {
        let v: i64 = sqlx::query_scalar(
            "UPDATE counters SET value = value + 1 WHERE name = $1 RETURNING value",
        )
        .bind(counter)
        .fetch_one(&mut **tx)
        .await?;
        Ok(v)
    }

    async fn audit(
        &self,
        tx: &mut Tx<'_>,
        event: &str,
        device_id: Option<&str>,
        detail: &str,
    ) -> Result<(), DbError> {
        // Taking the sequence number locks the counter row: the previous event read next is
        // the newest committed one, and no other transaction appends until this one ends.
        let seq = Self::next(tx, "audit").await?;
        let prev: Option<String> = sqlx::query_scalar("SELECT hash FROM audit WHERE seq = $1")
            .bind(seq - 1)
            .fetch_optional(&mut **tx)
            .await?
            .flatten();
        let prev = prev.unwrap_or_else(|| AUDIT_GENESIS.to_string());
        let at = now();
        let hash = audit_hash(
            self.audit_key.as_ref(),
            &prev,
            seq,
            at,
            event,
            device_id,
            detail,
        );
        sqlx::query(
            "INSERT INTO audit (seq, at, event, device_id, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(seq)
        .bind(at)
        .bind(event)
        .bind(device_id)
        .bind(detail)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub async fn device_by_serial(&self, serial: &str) -> Result<Option<DeviceRow>, DbError> {
        let sql = concat!(
            "SELECT ",
            device_columns!(),
            " FROM devices WHERE serial = $1"
        );
        let row = sqlx::query(sql)
            .bind(serial)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(device_row).transpose()?)
    }

    pub async fn devices(&self) -> Result<Vec<DeviceRow>, DbError> {
        let sql = concat!("SELECT ", device_columns!(), " FROM devices ORDER BY seq");
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(device_row).collect::<Result<_, _>>()?)
    }

    pub async fn audit_events(&self) -> Result<Vec<AuditEvent>, DbError> {
        let rows = sqlx::query(
            "SELECT seq, at, event, device_id, detail, prev_hash, hash FROM audit ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEvent {
                    seq: r.try_get("seq")?,
                    at: r.try_get("at")?,
                    event: r.try_get("event")?,
                    device_id: r.try_get("device_id")?,
                    detail: r.try_get("detail")?,
                    prev_hash: r.try_get("prev_hash")?,
                    hash: r.try_get("hash")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    /// The element with `serial` asks to be produced: its existing record, or a new identity
    /// (sequence number → device id by `name`, sealed PINs by `pins`) recorded with an audit
    /// event in one transaction.
    pub async fn reserve(
        &self,
        serial: &str,
        name: impl FnOnce(i64) -> Result<String, String>,
        pins: impl FnOnce(&str) -> SealedPins,
    ) -> Result<Reservation, DbError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let sql = concat!(
            "SELECT ",
            device_columns!(),
            " FROM devices WHERE serial = $1"
        );
        if let Some(row) = sqlx::query(sql)
            .bind(serial)
            .fetch_optional(&mut *tx)
            .await?
        {
            let row = device_row(&row)?;
            return Ok(match row.state {
                DeviceState::Produced => Reservation::Produced(row),
                DeviceState::Producing => Reservation::Resume(row),
            });
        }
        let seq = Self::next(&mut tx, "device").await?;
        let device_id = name(seq).map_err(DbError::Exhausted)?;
        let sealed = pins(&device_id);
        let created_at = now();
        sqlx::query(
            "INSERT INTO devices (seq, device_id, serial, state, so_pin, transport_pin, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(seq)
        .bind(&device_id)
        .bind(serial)
        .bind(DeviceState::Producing.as_str())
        .bind(&sealed.so_pin)
        .bind(&sealed.transport_pin)
        .bind(created_at)
        .execute(&mut *tx)
        .await?;
        self.audit(
            &mut tx,
            "device.reserved",
            Some(&device_id),
            &format!("serial {serial}"),
        )
        .await?;
        tx.commit().await?;
        Ok(Reservation::New(DeviceRow {
            seq,
            device_id,
            serial: serial.to_string(),
            state: DeviceState::Producing,
            chain: None,
            so_pin: sealed.so_pin,
            transport_pin: Some(sealed.transport_pin),
            created_at,
            produced_at: None,
        }))
    }

    /// Registers a device produced elsewhere (its chain leads to an external root, e.g. a
    /// genuine SmartCard-HSM) on its first provisioning: recorded as produced, with its chain,
    /// without PINs (this server never held them). Registering it again changes nothing.
    pub async fn register_external_device(
        &self,
        device_id: &str,
        root: &str,
        chain_hex: &str,
    ) -> Result<(), DbError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let known: Option<i64> = sqlx::query_scalar("SELECT seq FROM devices WHERE device_id = $1")
            .bind(device_id)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_some() {
            return Ok(());
        }
        let seq = Self::next(&mut tx, "device").await?;
        let at = now();
        sqlx::query(
            "INSERT INTO devices (seq, device_id, serial, state, chain, so_pin, created_at, produced_at) VALUES ($1, $2, $3, $4, $5, '', $6, $6)",
        )
        .bind(seq)
        .bind(device_id)
        .bind(format!("external:{device_id}"))
        .bind(DeviceState::Produced.as_str())
        .bind(chain_hex)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        self.audit(
            &mut tx,
            "device.registered",
            Some(device_id),
            &format!("produced elsewhere: chain to {root}"),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records the issued EF.C_DevAut before it goes to the element.
    pub async fn set_chain(&self, seq: i64, chain_hex: &str) -> Result<(), DbError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let device_id: String = sqlx::query_scalar(
            "UPDATE devices SET chain = $1 WHERE seq = $2 AND state = 'producing' RETURNING device_id",
        )
        .bind(chain_hex)
        .bind(seq)
        .fetch_one(&mut *tx)
        .await?;
        self.audit(
            &mut tx,
            "device.certified",
            Some(&device_id),
            "EF.C_DevAut issued",
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The element proved its certified key: the device is produced; the transport PIN,
    /// delivered now, is forgotten.
    pub async fn mark_produced(&self, seq: i64) -> Result<DeviceRow, DbError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let sql = concat!(
            "UPDATE devices SET state = 'produced', produced_at = $1, transport_pin = NULL WHERE seq = $2 AND state = 'producing' RETURNING ",
            device_columns!()
        );
        let row = sqlx::query(sql)
            .bind(now())
            .bind(seq)
            .fetch_one(&mut *tx)
            .await?;
        let row = device_row(&row)?;
        self.audit(
            &mut tx,
            "device.produced",
            Some(&row.device_id),
            "production complete",
        )
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Records a refused production attempt.
    pub async fn audit_refusal(
        &self,
        device_id: Option<&str>,
        detail: &str,
    ) -> Result<(), DbError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        self.audit(&mut tx, "production.refused", device_id, detail)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn device_by_id(&self, device_id: &str) -> Result<Option<DeviceRow>, DbError> {
        let sql = concat!(
            "SELECT ",
            device_columns!(),
            " FROM devices WHERE device_id = $1"
        );
        let row = sqlx::query(sql)
            .bind(device_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(device_row).transpose()?)
    }

    /// Why the device was revoked, if it was.
    pub async fn device_revocation(&self, device_id: &str) -> Result<Option<String>, DbError> {
        let r: Option<String> =
            sqlx::query_scalar("SELECT reason FROM device_revocations WHERE device_id = $1")
                .bind(device_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(r)
    }

    /// Revokes a device: no more provisioning for it, and its certificates are revoked.
    pub async fn revoke_device(&self, device_id: &str, reason: &str) -> Result<(), DbError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let at = now();
        sqlx::query("INSERT INTO device_revocations (device_id, at, reason) VALUES ($1, $2, $3)")
            .bind(device_id)
            .bind(at)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE certificates SET state = 'revoked', revoked_at = $1, revocation_reason = $2 WHERE device_id = $3 AND state <> 'revoked'",
        )
        .bind(at)
        .bind(reason)
        .bind(device_id)
        .execute(&mut *tx)
        .await?;
        self.audit(&mut tx, "device.revoked", Some(device_id), reason)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Starts a provisioning: certificates of earlier provisionings of this device that never
    /// completed are revoked (the element may hold them), then the new one is recorded as
    /// pending — before it is sent to the element.
    pub async fn record_pending_certificate(&self, c: &CertificateRow) -> Result<(), DbError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let at = now();
        let interrupted: Vec<String> = sqlx::query_scalar(
            "UPDATE certificates SET state = 'revoked', revoked_at = $1, revocation_reason = 'provisioning interrupted' WHERE device_id = $2 AND state = 'pending' RETURNING serial",
        )
        .bind(at)
        .bind(&c.device_id)
        .fetch_all(&mut *tx)
        .await?;
        for serial in &interrupted {
            self.audit_interrupted(&mut tx, &c.device_id, serial)
                .await?;
        }
        sqlx::query(concat!(
            "INSERT INTO certificates (",
            certificate_columns!(),
            ") VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, NULL, NULL)"
        ))
        .bind(&c.serial)
        .bind(&c.device_id)
        .bind(&c.profile)
        .bind(c.key_ref)
        .bind(&c.der)
        .bind(&c.attestation)
        .bind(c.not_before)
        .bind(c.not_after)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        self.audit(
            &mut tx,
            "certificate.issued",
            Some(&c.device_id),
            &format!("serial {} profile {}", c.serial, c.profile),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_interrupted(
        &self,
        tx: &mut Tx<'_>,
        device_id: &str,
        serial: &str,
    ) -> Result<(), DbError> {
        self.audit(
            tx,
            "certificate.revoked",
            Some(device_id),
            &format!("serial {serial} reason provisioning interrupted"),
        )
        .await
    }

    /// Revokes the pending certificates recorded before `before` (seconds since the epoch): their
    /// provisioning sessions ended without the element's confirmation (a crash, a lost device),
    /// so the element may or may not hold them. Returns their serials.
    pub async fn revoke_interrupted(&self, before: i64) -> Result<Vec<String>, DbError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "UPDATE certificates SET state = 'revoked', revoked_at = $1, revocation_reason = 'provisioning interrupted' WHERE state = 'pending' AND created_at < $2 RETURNING serial, device_id",
        )
        .bind(now())
        .bind(before)
        .fetch_all(&mut *tx)
        .await?;
        let mut serials = Vec::with_capacity(rows.len());
        for r in rows {
            let (serial, device): (String, String) =
                (r.try_get("serial")?, r.try_get("device_id")?);
            self.audit_interrupted(&mut tx, &device, &serial).await?;
            serials.push(serial);
        }
        tx.commit().await?;
        Ok(serials)
    }

    /// The element stored the certificate. For a renewal, the certificate it replaces is
    /// revoked (superseded) in the same transaction, so at no moment is the device without a
    /// valid certificate nor with two for one purpose.
    ///
    /// `removed`: certificates of earlier provisionings (interrupted or superseded) whose keys
    /// the same session deleted from the element; recorded in the audit log.
    pub async fn activate_certificate(
        &self,
        serial: &str,
        replaces: Option<&str>,
        removed: &[(String, i64)],
    ) -> Result<(), DbError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let device_id: String = sqlx::query_scalar(
            "UPDATE certificates SET state = 'active' WHERE serial = $1 AND state = 'pending' RETURNING device_id",
        )
        .bind(serial)
        .fetch_one(&mut *tx)
        .await?;
        self.audit(
            &mut tx,
            "certificate.provisioned",
            Some(&device_id),
            &format!("serial {serial}"),
        )
        .await?;
        for (old, kid) in removed {
            self.audit(
                &mut tx,
                "key.deleted",
                Some(&device_id),
                &format!("key {kid} of certificate {old} deleted from the element"),
            )
            .await?;
        }
        if let Some(old) = replaces {
            let revoked = sqlx::query(
                "UPDATE certificates SET state = 'revoked', revoked_at = $1, revocation_reason = 'superseded' WHERE serial = $2 AND device_id = $3 AND state = 'active'",
            )
            .bind(now())
            .bind(old)
            .bind(&device_id)
            .execute(&mut *tx)
            .await?;
            if revoked.rows_affected() == 1 {
                self.audit(
                    &mut tx,
                    "certificate.revoked",
                    Some(&device_id),
                    &format!("serial {old} reason superseded by {serial}"),
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn certificates(&self) -> Result<Vec<CertificateRow>, DbError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            certificate_columns!(),
            " FROM certificates ORDER BY created_at, serial"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(certificate_row).collect::<Result<_, _>>()?)
    }

    /// Records a refused provisioning.
    pub async fn audit_event(
        &self,
        event: &str,
        device_id: Option<&str>,
        detail: &str,
    ) -> Result<(), DbError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        self.audit(&mut tx, event, device_id, detail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Chains audit events written before schema 3 (in order, once).
    async fn chain_unchained_audit(&self) -> Result<(), DbError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let rows =
            sqlx::query("SELECT seq, at, event, device_id, detail, hash FROM audit ORDER BY seq")
                .fetch_all(&mut *tx)
                .await?;
        let mut prev = AUDIT_GENESIS.to_string();
        for r in &rows {
            let seq: i64 = r.try_get("seq")?;
            let hash: Option<String> = r.try_get("hash")?;
            if let Some(h) = hash {
                prev = h;
                continue;
            }
            let device: Option<String> = r.try_get("device_id")?;
            let event: String = r.try_get("event")?;
            let detail: String = r.try_get("detail")?;
            let h = audit_hash(
                None,
                &prev,
                seq,
                r.try_get("at")?,
                &event,
                device.as_deref(),
                &detail,
            );
            sqlx::query("UPDATE audit SET prev_hash = $1, hash = $2 WHERE seq = $3")
                .bind(&prev)
                .bind(&h)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            prev = h;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Checks the whole audit log: contiguous sequence, every link to its predecessor, every
    /// hash over its content, nothing removed from the end. With the audit key every event must
    /// be chained under it; without it, keyed events are checked for sequence and links only
    /// (counted in [`AuditCheck::content_unchecked`]).
    pub async fn verify_audit(&self) -> Result<AuditCheck, DbError> {
        let events = self.audit_events().await?;
        let issued: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'audit'")
            .fetch_one(&self.pool)
            .await?;
        let mut prev = AUDIT_GENESIS.to_string();
        let mut content_unchecked = 0;
        for (i, e) in events.iter().enumerate() {
            let expected_seq = i64::try_from(i).unwrap_or(i64::MAX) + 1;
            if e.seq != expected_seq {
                return Err(AuditBreak::Missing(expected_seq).into());
            }
            if e.prev_hash.as_deref() != Some(prev.as_str()) {
                return Err(AuditBreak::Unlinked(e.seq).into());
            }
            let stored = e.hash.clone().unwrap_or_default();
            let keyed = stored.starts_with(KEYED);
            let key = match (&self.audit_key, keyed) {
                (Some(_), false) => return Err(AuditBreak::Unkeyed(e.seq).into()),
                (None, true) => {
                    content_unchecked += 1;
                    prev = stored;
                    continue;
                }
                (key, _) => key.as_ref(),
            };
            let h = audit_hash(
                key,
                &prev,
                e.seq,
                e.at,
                &e.event,
                e.device_id.as_deref(),
                &e.detail,
            );
            let same: bool = h.as_bytes().ct_eq(stored.as_bytes()).into();
            if !same {
                return Err(AuditBreak::Changed(e.seq).into());
            }
            prev = h;
        }
        let last = events.last().map_or(0, |e| e.seq);
        if last != issued {
            return Err(AuditBreak::Truncated { last, issued }.into());
        }
        Ok(AuditCheck {
            events: last,
            head: prev,
            content_unchecked,
        })
    }

    /// Records an ended RAMoverHTTP session.
    pub async fn record_session(&self, s: &SessionRecord) -> Result<(), DbError> {
        let _w = self.writer().await;
        let failure = match &s.outcome {
            Some(Err(e)) => Some(e.as_str()),
            _ => None,
        };
        sqlx::query(
            "INSERT INTO sessions (reference, service, started_at, ended_at, batches, failure) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&s.reference)
        .bind(&s.service)
        .bind(s.started_at)
        .bind(s.ended_at.unwrap_or_else(now))
        .bind(i64::try_from(s.batches).unwrap_or(i64::MAX))
        .bind(failure)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The `limit` most recently ended sessions, newest first.
    pub async fn recent_sessions(&self, limit: i64) -> Result<Vec<SessionRecord>, DbError> {
        let rows = sqlx::query(
            "SELECT reference, service, started_at, ended_at, batches, failure FROM sessions ORDER BY ended_at DESC, reference LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let failure: Option<String> = r.try_get("failure")?;
                Ok(SessionRecord {
                    reference: r.try_get("reference")?,
                    service: r.try_get("service")?,
                    started_at: r.try_get("started_at")?,
                    ended_at: Some(r.try_get("ended_at")?),
                    batches: u64::try_from(r.try_get::<i64, _>("batches")?).unwrap_or(0),
                    outcome: Some(failure.map_or(Ok(()), Err)),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    /// Revoked certificates: serial (hex), when, why.
    pub async fn revoked_certificates(&self) -> Result<Vec<(String, i64, String)>, DbError> {
        let rows = sqlx::query(
            "SELECT serial, revoked_at, revocation_reason FROM certificates WHERE state = 'revoked' ORDER BY serial",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("serial")?,
                    r.try_get::<Option<i64>, _>("revoked_at")?.unwrap_or(0),
                    r.try_get::<Option<String>, _>("revocation_reason")?
                        .unwrap_or_default(),
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DbError::from)
    }

    /// Revokes one certificate; `false` if there is no such unrevoked certificate.
    pub async fn revoke_certificate(&self, serial: &str, reason: &str) -> Result<bool, DbError> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let device: Option<String> = sqlx::query_scalar(
            "UPDATE certificates SET state = 'revoked', revoked_at = $1, revocation_reason = $2 WHERE serial = $3 AND state <> 'revoked' RETURNING device_id",
        )
        .bind(now())
        .bind(reason)
        .bind(serial)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(device) = device else {
            return Ok(false);
        };
        self.audit(
            &mut tx,
            "certificate.revoked",
            Some(&device),
            &format!("serial {serial} reason {reason}"),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Creates an API token for `role`; returns the token (shown once; only its hash is kept).
    pub async fn create_token(&self, name: &str, role: &str) -> Result<String, DbError> {
        let raw = keyward_crypto::random(32).map_err(|e| DbError::Exhausted(e.to_string()))?;
        let token = format!("kw_{}", hex::encode(&raw[..]));
        let hash = hex::encode(keyward_crypto::HashAlg::Sha256.digest(token.as_bytes()));
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO api_tokens (name, role, hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(name)
        .bind(role)
        .bind(&hash)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        self.audit(
            &mut tx,
            "api.token_created",
            None,
            &format!("{name} ({role})"),
        )
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// The name and role of the token whose SHA-256 is `hash`.
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<(String, String)>, DbError> {
        let row = sqlx::query("SELECT name, role FROM api_tokens WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("name")?, r.try_get("role")?)))
            .transpose()?)
    }

    pub async fn device_certificates(
        &self,
        device_id: &str,
    ) -> Result<Vec<CertificateRow>, DbError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            certificate_columns!(),
            " FROM certificates WHERE device_id = $1 ORDER BY created_at, serial"
        ))
        .bind(device_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(certificate_row).collect::<Result<_, _>>()?)
    }

    pub async fn certificate(&self, serial: &str) -> Result<Option<CertificateRow>, DbError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            certificate_columns!(),
            " FROM certificates WHERE serial = $1"
        ))
        .bind(serial)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(certificate_row).transpose()?)
    }
}
