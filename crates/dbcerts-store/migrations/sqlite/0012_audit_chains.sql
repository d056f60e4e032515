-- Several audit chains instead of one (docs/ARCHITECTURE.md, "Audit chains and PostgreSQL
-- write locks"; the PostgreSQL migration of the same number says why). SQLite has one writer,
-- so `seq` stays gap-free here (the next is MAX(seq) + 1 under BEGIN IMMEDIATE); the columns
-- and the per-chain hashing are the same as on PostgreSQL, so both backends verify alike.
--
-- The existing rows are the store chain (''): their chain_seq is their seq, as their hashes
-- have always covered it, so they still verify.
ALTER TABLE audit_log ADD COLUMN chain TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN chain_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE audit_log ADD COLUMN prev_seq INTEGER NOT NULL DEFAULT 0;
UPDATE audit_log SET chain_seq = seq, prev_seq = seq - 1;
CREATE UNIQUE INDEX audit_log_by_chain ON audit_log (chain, chain_seq);

-- Each chain's last entry, written in the appending transaction: a chain cut short (its newest
-- entries deleted) no longer ends where its recorded head says, so `dbcerts audit verify` finds
-- that too.
CREATE TABLE audit_chain_heads (
    chain           TEXT PRIMARY KEY,
    chain_seq       INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    hash            BLOB NOT NULL
);
INSERT INTO audit_chain_heads (chain, chain_seq, seq, hash)
    SELECT '', seq, seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1;
