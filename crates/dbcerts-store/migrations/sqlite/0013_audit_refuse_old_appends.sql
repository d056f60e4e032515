-- Refuse audit appends from a release before 0012 (docs/ARCHITECTURE.md, "Audit chains and
-- PostgreSQL write locks", Upgrading). Such a release inserts no chain columns, so its row would
-- take 0012's defaults (chain '', chain_seq 0, prev_seq 0): an entry numbered 0 in the store
-- chain, which breaks it for `dbcerts audit verify` from then on. On PostgreSQL 0012 left the
-- columns without defaults, so NOT NULL refuses such an insert; here a trigger does. Every
-- entry a current release writes has chain_seq 1 or more.
CREATE TRIGGER audit_log_refuses_unchained_appends
BEFORE INSERT ON audit_log
WHEN NEW.chain_seq < 1
BEGIN
    SELECT RAISE(ABORT, 'upgrade dbcerts: this audit log has per-project chains (migration 0012) and this release cannot append to it');
END;
