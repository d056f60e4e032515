-- A narrower audit log (docs/BENCHMARKS.md, "Memory, storage and startup"; docs/ARCHITECTURE.md,
-- "Audit chains and PostgreSQL write locks"). Migration 0012 made every entry carry its chain's
-- name, a copy of its project id (24 bytes, and again in the chain's index), which grew the store
-- by 10% per issued certificate. Here the name is derived instead:
--
-- * `chain` becomes a VIRTUAL generated column, `COALESCE(chain_override, project_id, '')`: an
--   entry of a project is in that project's chain, an entry without one in the store chain ('').
--   It is computed when read and stored only in `audit_log_by_chain`. The exception is the log
--   written before 0012, whose entries are all in the store chain whatever their project:
--   `chain_override` keeps their chain (''), and is NULL (no bytes) for every other entry.
-- * The indexes `audit_log_by_project`, `audit_log_by_actor` and `audit_log_by_time` are
--   dropped. The only query that filters on those columns (`Store::list_audit`) tests each
--   filter as `($n IS NULL OR column = $m)`, which SQLite's planner cannot serve from an index:
--   it walks the log in `seq` order from the cursor (EXPLAIN QUERY PLAN: `SEARCH audit_log
--   USING INTEGER PRIMARY KEY (rowid>?)`), with or without them. They cost 87 bytes per entry
--   and served nothing. (PostgreSQL plans with the values bound and keeps them.)
--
-- A release of 0012 to 0014 names `chain` in its INSERT, which SQLite now refuses ("cannot
-- INSERT into generated column"): the log stays whole, and such a node must be upgraded, as
-- docs/ARCHITECTURE.md says under Upgrading. A release before 0012 is still refused by the
-- trigger of 0013, recreated below (SQLite drops a column only when no trigger names it).
DROP TRIGGER audit_log_refuses_unchained_appends;
DROP INDEX audit_log_by_chain;
DROP INDEX audit_log_by_project;
DROP INDEX audit_log_by_actor;
DROP INDEX audit_log_by_time;

ALTER TABLE audit_log ADD COLUMN chain_override TEXT;
UPDATE audit_log SET chain_override = chain WHERE chain IS NOT COALESCE(project_id, '');
ALTER TABLE audit_log DROP COLUMN chain;
ALTER TABLE audit_log ADD COLUMN chain TEXT
    GENERATED ALWAYS AS (COALESCE(chain_override, project_id, '')) VIRTUAL;
CREATE UNIQUE INDEX audit_log_by_chain ON audit_log (chain, chain_seq);

CREATE TRIGGER audit_log_refuses_unchained_appends
BEFORE INSERT ON audit_log
WHEN NEW.chain_seq < 1
BEGIN
    SELECT RAISE(ABORT, 'upgrade dbcerts: this audit log has per-project chains (migration 0012) and this release cannot append to it');
END;
