-- Keyward schema 1: produced devices and the audit trail. Portable SQL: the same text runs on
-- SQLite and PostgreSQL; binary values are stored as hex text, times as Unix seconds.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('device', 0);
INSERT INTO counters (name, value) VALUES ('audit', 0);

CREATE TABLE devices (
    seq           BIGINT PRIMARY KEY,
    device_id     TEXT NOT NULL UNIQUE,
    serial        TEXT NOT NULL UNIQUE,
    state         TEXT NOT NULL CHECK (state IN ('producing', 'produced')),
    chain         TEXT,
    so_pin        TEXT NOT NULL,
    transport_pin TEXT,
    created_at    BIGINT NOT NULL,
    produced_at   BIGINT
);

CREATE TABLE audit (
    seq       BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,
    event     TEXT NOT NULL,
    device_id TEXT,
    detail    TEXT NOT NULL
);
