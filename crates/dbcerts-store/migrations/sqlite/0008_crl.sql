-- CRL state per issuing CA (project_cas row): the last CRL published (its number, dates and DER)
-- and the revocation revision it was built from.
--
-- revision counts the changes to the CA's set of revoked certificates. Triggers, not the
-- application, keep it, in the same transaction as the revocation: every writer (another node,
-- a node of the previous version, a restore) moves it, and a committed revocation has always
-- moved it. A node serves the stored CRL only while built_revision = revision and refresh_at
-- has not passed; otherwise it builds the next one from the certificates table and publishes it
-- only if number is still the one it read (compare-and-set), so two different CRLs never share
-- a number.
CREATE TABLE crl_state (
    ca_id           INTEGER PRIMARY KEY REFERENCES project_cas(id) ON DELETE CASCADE,
    revision        INTEGER NOT NULL DEFAULT 0,
    number          INTEGER NOT NULL DEFAULT 0,   -- 0: nothing published yet
    built_revision  INTEGER NOT NULL DEFAULT 0,
    this_update     INTEGER,
    next_update     INTEGER,
    refresh_at      INTEGER,                      -- when the CRL is rebuilt even without change
    der             BLOB
);
CREATE TRIGGER crl_revision_on_revoke AFTER UPDATE OF revoked_at ON certificates
    WHEN NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL
BEGIN
    INSERT INTO crl_state (ca_id, revision) VALUES (NEW.ca_id, 1)
        ON CONFLICT (ca_id) DO UPDATE SET revision = revision + 1;
END;
CREATE TRIGGER crl_revision_on_revoked_insert AFTER INSERT ON certificates
    WHEN NEW.revoked_at IS NOT NULL
BEGIN
    INSERT INTO crl_state (ca_id, revision) VALUES (NEW.ca_id, 1)
        ON CONFLICT (ca_id) DO UPDATE SET revision = revision + 1;
END;
CREATE TRIGGER crl_revision_on_revoked_delete AFTER DELETE ON certificates
    WHEN OLD.revoked_at IS NOT NULL
BEGIN
    UPDATE crl_state SET revision = revision + 1 WHERE ca_id = OLD.ca_id;
END;

-- The optional unauthenticated distribution URL of a project's CRLs (`crl-distribution`):
-- /api/dbcerts/v1/crl/<token>, token random (256 bits), made on first use and shared by every
-- node.
CREATE TABLE crl_distribution (
    project_id  TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    token       TEXT NOT NULL UNIQUE
);
