-- Keyward schema 4: API tokens for the REST API, stored as SHA-256 hashes.
CREATE TABLE api_tokens (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('operator', 'auditor')),
    hash       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
