-- dbcerts schema, SQLite. Times are Unix seconds (UTC). Secrets are sealed (AES-256-GCM under
-- the master key) before they reach this database; nothing here is a plaintext secret.

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created     INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    public_key          TEXT NOT NULL UNIQUE,
    sealed_private_key  BLOB NOT NULL,
    description         TEXT NOT NULL,
    org_roles           TEXT NOT NULL,          -- JSON array of role names
    created             INTEGER NOT NULL
);

CREATE TABLE projects (
    id                              TEXT PRIMARY KEY,
    org_id                          TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name                            TEXT NOT NULL,
    created                         INTEGER NOT NULL,
    with_default_alerts_settings    INTEGER NOT NULL,
    tags                            TEXT NOT NULL,  -- JSON array of {key, value}
    UNIQUE (org_id, name)
);
CREATE INDEX projects_by_org ON projects (org_id, created, id);

CREATE TABLE project_cas (
    id          INTEGER PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    algorithm   TEXT NOT NULL,
    cert        BLOB NOT NULL,                  -- DER
    sealed_key  BLOB NOT NULL,                  -- PKCS#8 DER sealed under the master key
    not_before  INTEGER NOT NULL,
    not_after   INTEGER NOT NULL,
    active      INTEGER NOT NULL
);
-- Exactly one active managed CA per project, even when two nodes create it at once.
CREATE UNIQUE INDEX project_cas_one_active ON project_cas (project_id) WHERE active = 1;

CREATE TABLE database_users (
    project_id      TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    database_name   TEXT NOT NULL,
    username        TEXT NOT NULL,
    x509_type       TEXT NOT NULL,
    created         INTEGER NOT NULL,
    doc             TEXT NOT NULL,              -- JSON: roles, scopes, labels, other auth types, ...
    PRIMARY KEY (project_id, database_name, username)
);

-- Certificates are keyed by (project, username), not by user row, so they outlive the deletion
-- of the database user, as in Atlas. The serial is the Atlas `_id` and the rowid.
CREATE TABLE certificates (
    serial      INTEGER PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    username    TEXT NOT NULL,
    subject     TEXT NOT NULL,
    not_before  INTEGER NOT NULL,
    not_after   INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL,               -- issuance time in ms: orders certificates of one second
    cert        BLOB NOT NULL                   -- DER; the private key is never stored
);
CREATE INDEX certificates_by_user ON certificates (project_id, username, not_before, created_ms);

CREATE TABLE user_security (
    project_id      TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    customer_cas    TEXT,                       -- PEM text exactly as sent, or NULL
    ldap            TEXT                        -- JSON, or NULL
);

-- Server-wide secrets shared by every node (the Digest nonce key, the master-key check value),
-- sealed under the master key.
CREATE TABLE server_secrets (
    name    TEXT PRIMARY KEY,
    sealed  BLOB NOT NULL
);
