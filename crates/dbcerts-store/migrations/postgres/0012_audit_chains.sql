-- Several audit chains instead of one (docs/ARCHITECTURE.md, "Audit chains and PostgreSQL
-- write locks"): each project's entries form a chain of their own, entries with no project the
-- store chain (''), so that nodes issuing into different projects no longer wait for one
-- store-wide lock. An entry's place in its chain is `chain_seq` (1, 2, 3, … per chain, what the
-- hash covers); `prev_seq` is the `seq` of the chain's previous entry (0 for a chain's first),
-- so that `dbcerts audit verify` can name a deleted entry. `seq` stays the log's order and the
-- listing cursor, now drawn from a sequence: unique and increasing, but it may skip a number
-- (a rolled-back append), and it orders entries of different chains by allocation.
--
-- The existing rows are the store chain: their chain_seq is their seq, as their hashes have
-- always covered it, so they still verify. A node of an earlier version would insert no
-- chain_seq: its append is refused (NOT NULL) rather than break a chain.
ALTER TABLE audit_log ADD COLUMN chain TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN chain_seq BIGINT;
ALTER TABLE audit_log ADD COLUMN prev_seq BIGINT;
UPDATE audit_log SET chain_seq = seq, prev_seq = seq - 1;
ALTER TABLE audit_log ALTER COLUMN chain_seq SET NOT NULL;
ALTER TABLE audit_log ALTER COLUMN prev_seq SET NOT NULL;
CREATE UNIQUE INDEX audit_log_by_chain ON audit_log (chain, chain_seq);

CREATE SEQUENCE audit_log_seq OWNED BY audit_log.seq;
SELECT setval('audit_log_seq', COALESCE((SELECT MAX(seq) FROM audit_log), 0) + 1, false);

-- Each chain's last entry, written in the appending transaction (under the chain's lock, so no
-- store-wide contention): a chain cut short (its newest entries deleted) no longer ends where
-- its recorded head says, so `dbcerts audit verify` finds that too.
CREATE TABLE audit_chain_heads (
    chain           TEXT COLLATE "C" PRIMARY KEY,
    chain_seq       BIGINT NOT NULL,
    seq             BIGINT NOT NULL,
    hash            BYTEA NOT NULL
);
INSERT INTO audit_chain_heads (chain, chain_seq, seq, hash)
    SELECT '', seq, seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1;
