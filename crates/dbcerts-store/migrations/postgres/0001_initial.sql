-- dbcerts schema, PostgreSQL: the same tables as the SQLite schema (migrations/sqlite), in the
-- same order of migrations. Times are Unix seconds (UTC) as BIGINT. Secrets are sealed
-- (AES-256-GCM under the master key) before they reach this database. Text that the API orders
-- by uses the "C" collation, so that every node and both backends sort alike (byte order),
-- whatever the database's default collation.

CREATE TABLE organizations (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    created     BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id                  TEXT COLLATE "C" PRIMARY KEY,
    org_id              TEXT COLLATE "C" NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    public_key          TEXT COLLATE "C" NOT NULL UNIQUE,
    sealed_private_key  BYTEA NOT NULL,
    description         TEXT NOT NULL,
    org_roles           TEXT NOT NULL,          -- JSON array of role names
    created             BIGINT NOT NULL
);
CREATE INDEX api_keys_by_org ON api_keys (org_id, created, id);

CREATE TABLE projects (
    id                              TEXT COLLATE "C" PRIMARY KEY,
    org_id                          TEXT COLLATE "C" NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name                            TEXT COLLATE "C" NOT NULL,
    created                         BIGINT NOT NULL,
    with_default_alerts_settings    BOOLEAN NOT NULL,
    tags                            TEXT NOT NULL,  -- JSON array of {key, value}
    UNIQUE (org_id, name)
);
CREATE INDEX projects_by_org ON projects (org_id, created, id);

CREATE TABLE project_cas (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  TEXT COLLATE "C" NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    algorithm   TEXT NOT NULL,
    cert        BYTEA NOT NULL,                 -- DER
    sealed_key  BYTEA NOT NULL,                 -- PKCS#8 DER sealed under the master key
    not_before  BIGINT NOT NULL,
    not_after   BIGINT NOT NULL,
    active      INTEGER NOT NULL
);
-- Exactly one active managed CA per project, even when two nodes create it at once.
CREATE UNIQUE INDEX project_cas_one_active ON project_cas (project_id) WHERE active = 1;

CREATE TABLE database_users (
    project_id      TEXT COLLATE "C" NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    database_name   TEXT COLLATE "C" NOT NULL,
    username        TEXT COLLATE "C" NOT NULL,
    x509_type       TEXT NOT NULL,
    created         BIGINT NOT NULL,
    doc             TEXT NOT NULL,              -- JSON: roles, scopes, labels, other auth types, ...
    PRIMARY KEY (project_id, database_name, username)
);
CREATE INDEX database_users_by_creation ON database_users (project_id, created, database_name, username);

-- Certificates are keyed by (project, username), not by user row, so they outlive the deletion
-- of the database user, as in Atlas. The serial is the Atlas `_id`.
CREATE TABLE certificates (
    serial      BIGINT PRIMARY KEY,
    project_id  TEXT COLLATE "C" NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    username    TEXT COLLATE "C" NOT NULL,
    subject     TEXT NOT NULL,
    not_before  BIGINT NOT NULL,
    not_after   BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL,                -- issuance time in ms: orders certificates of one second
    cert        BYTEA NOT NULL                  -- DER; the private key is never stored
);
CREATE INDEX certificates_by_user ON certificates (project_id, username, not_before, created_ms);

CREATE TABLE user_security (
    project_id      TEXT COLLATE "C" PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    customer_cas    TEXT,                       -- PEM text exactly as sent, or NULL
    ldap            TEXT                        -- JSON, or NULL
);

-- Server-wide secrets shared by every node (the Digest nonce key, the master-key check value),
-- sealed under the master key.
CREATE TABLE server_secrets (
    name    TEXT COLLATE "C" PRIMARY KEY,
    sealed  BYTEA NOT NULL
);
