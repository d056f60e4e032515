-- Access control: project role grants, IP access lists, service accounts, revoked OAuth tokens,
-- and the hash-chained audit log. Additive only, so nodes on the previous schema keep working.

-- Project roles held by an API key (principal = api_keys.id) or a service account
-- (principal = service_accounts.client_id). Organization roles stay on the principal's row.
CREATE TABLE project_grants (
    principal_id    TEXT NOT NULL,
    project_id      TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    roles           TEXT NOT NULL,              -- JSON array of GROUP_* role names
    PRIMARY KEY (principal_id, project_id)
);
CREATE INDEX project_grants_by_project ON project_grants (project_id);

-- IP access list of an API key or a service account; CIDR blocks in canonical form.
CREATE TABLE access_list_entries (
    principal_id    TEXT NOT NULL,
    cidr_block      TEXT NOT NULL,
    created         INTEGER NOT NULL,
    PRIMARY KEY (principal_id, cidr_block)
);

CREATE TABLE service_accounts (
    client_id       TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL,
    org_roles       TEXT NOT NULL,              -- JSON array of ORG_* role names
    created         INTEGER NOT NULL
);

-- Client secrets are random 256-bit values; only their SHA-256 is kept.
CREATE TABLE service_account_secrets (
    id              TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL REFERENCES service_accounts(client_id) ON DELETE CASCADE,
    secret_hash     BLOB NOT NULL,
    masked          TEXT NOT NULL,
    created         INTEGER NOT NULL,
    expires         INTEGER NOT NULL,
    last_used       INTEGER
);
CREATE INDEX service_account_secrets_by_client ON service_account_secrets (client_id);

-- Access tokens are signed, not stored; a revoked one is remembered until it would expire.
CREATE TABLE revoked_tokens (
    jti             TEXT PRIMARY KEY,
    expires         INTEGER NOT NULL
);
CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires);

-- Append-only audit log. Each entry's hash covers the previous entry's hash, so editing or
-- deleting an entry breaks the chain from there on. No foreign keys: the log outlives what it
-- describes.
CREATE TABLE audit_log (
    seq             INTEGER PRIMARY KEY,
    at_ms           INTEGER NOT NULL,
    actor           TEXT NOT NULL,
    source_ip       TEXT,
    action          TEXT NOT NULL,
    project_id      TEXT,
    target          TEXT,
    status          INTEGER,
    details         TEXT NOT NULL,              -- JSON object; never secrets
    prev_hash       BLOB NOT NULL,
    hash            BLOB NOT NULL
);
CREATE INDEX audit_log_by_project ON audit_log (project_id, seq);
CREATE INDEX audit_log_by_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_by_time ON audit_log (at_ms);
