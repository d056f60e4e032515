-- Access control: project role grants, IP access lists, service accounts, revoked OAuth tokens,
-- and the hash-chained audit log. Additive only, so nodes on the previous schema keep working.

CREATE TABLE project_grants (
    principal_id    TEXT COLLATE "C" NOT NULL,
    project_id      TEXT COLLATE "C" NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    roles           TEXT NOT NULL,              -- JSON array of GROUP_* role names
    PRIMARY KEY (principal_id, project_id)
);
CREATE INDEX project_grants_by_project ON project_grants (project_id);

CREATE TABLE access_list_entries (
    principal_id    TEXT COLLATE "C" NOT NULL,
    cidr_block      TEXT COLLATE "C" NOT NULL,
    created         BIGINT NOT NULL,
    PRIMARY KEY (principal_id, cidr_block)
);

CREATE TABLE service_accounts (
    client_id       TEXT COLLATE "C" PRIMARY KEY,
    org_id          TEXT COLLATE "C" NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL,
    org_roles       TEXT NOT NULL,              -- JSON array of ORG_* role names
    created         BIGINT NOT NULL
);
CREATE INDEX service_accounts_by_org ON service_accounts (org_id, created, client_id);

-- Client secrets are random 256-bit values; only their SHA-256 is kept.
CREATE TABLE service_account_secrets (
    id              TEXT COLLATE "C" PRIMARY KEY,
    client_id       TEXT COLLATE "C" NOT NULL REFERENCES service_accounts(client_id) ON DELETE CASCADE,
    secret_hash     BYTEA NOT NULL,
    masked          TEXT NOT NULL,
    created         BIGINT NOT NULL,
    expires         BIGINT NOT NULL,
    last_used       BIGINT
);
CREATE INDEX service_account_secrets_by_client ON service_account_secrets (client_id);

CREATE TABLE revoked_tokens (
    jti             TEXT COLLATE "C" PRIMARY KEY,
    expires         BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires);

-- Append-only audit log, chained by hash. Appends take the store-wide advisory lock, so `seq`
-- has no gaps and each entry chains to the one before it.
CREATE TABLE audit_log (
    seq             BIGINT PRIMARY KEY,
    at_ms           BIGINT NOT NULL,
    actor           TEXT COLLATE "C" NOT NULL,
    source_ip       TEXT,
    action          TEXT NOT NULL,
    project_id      TEXT COLLATE "C",
    target          TEXT,
    status          BIGINT,
    details         TEXT NOT NULL,              -- JSON object, kept as text: the hash covers its bytes
    prev_hash       BYTEA NOT NULL,
    hash            BYTEA NOT NULL
);
CREATE INDEX audit_log_by_project ON audit_log (project_id, seq);
CREATE INDEX audit_log_by_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_by_time ON audit_log (at_ms);
