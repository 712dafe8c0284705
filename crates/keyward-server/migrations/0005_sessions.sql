-- Keyward schema 5: ended RAMoverHTTP sessions, by every replica (never their cookies).
CREATE TABLE sessions (
    reference  TEXT PRIMARY KEY,
    service    TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at   BIGINT NOT NULL,
    batches    BIGINT NOT NULL,
    failure    TEXT
);
CREATE INDEX sessions_ended ON sessions (ended_at);
