-- Keyward schema 3: the audit log is hash-chained. Each event's hash covers the previous
-- event's hash and its own fields; rows from before this version are chained when the server
-- opens the database.
ALTER TABLE audit ADD COLUMN prev_hash TEXT;
ALTER TABLE audit ADD COLUMN hash TEXT;
