-- Keyward schema 2: X.509 certificates provisioned to devices, and device revocations.
CREATE TABLE certificates (
    serial            TEXT PRIMARY KEY,
    device_id         TEXT NOT NULL,
    profile           TEXT NOT NULL,
    key_ref           BIGINT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('pending', 'active', 'revoked')),
    der               TEXT NOT NULL,
    attestation       TEXT NOT NULL,
    not_before        BIGINT NOT NULL,
    not_after         BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    revoked_at        BIGINT,
    revocation_reason TEXT
);
CREATE INDEX certificates_device ON certificates (device_id);

CREATE TABLE device_revocations (
    device_id TEXT PRIMARY KEY,
    at        BIGINT NOT NULL,
    reason    TEXT NOT NULL
);
