-- Cache invalidation (dbcerts_server::cached_store, docs/ARCHITECTURE.md "Read cache"). Other
-- processes may write this file while a node serves it (operator commands such as
-- `dbcerts apikey rotate-bootstrap` hold the serve lock shared, as `serve` does), so a node
-- cannot learn of every change from its own writes. Instead every change of a table whose rows
-- a node may cache adds one to `cache_version.n`, in the writing transaction; a node serves a
-- cached row only while the counter still holds the value it read before reading the row.
-- (PostgreSQL's 0011 notifies instead.)

CREATE TABLE cache_version (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    n   INTEGER NOT NULL
);
INSERT INTO cache_version (id, n) VALUES (1, 0);

CREATE TRIGGER organizations_cache_insert AFTER INSERT ON organizations
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER organizations_cache_update AFTER UPDATE ON organizations
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER organizations_cache_delete AFTER DELETE ON organizations
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER api_keys_cache_insert AFTER INSERT ON api_keys
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER api_keys_cache_update AFTER UPDATE ON api_keys
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER api_keys_cache_delete AFTER DELETE ON api_keys
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER project_grants_cache_insert AFTER INSERT ON project_grants
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER project_grants_cache_update AFTER UPDATE ON project_grants
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER project_grants_cache_delete AFTER DELETE ON project_grants
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER access_list_entries_cache_insert AFTER INSERT ON access_list_entries
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER access_list_entries_cache_update AFTER UPDATE ON access_list_entries
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER access_list_entries_cache_delete AFTER DELETE ON access_list_entries
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER service_accounts_cache_insert AFTER INSERT ON service_accounts
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER service_accounts_cache_update AFTER UPDATE ON service_accounts
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER service_accounts_cache_delete AFTER DELETE ON service_accounts
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER service_account_secrets_cache_insert AFTER INSERT ON service_account_secrets
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER service_account_secrets_cache_update AFTER UPDATE ON service_account_secrets
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER service_account_secrets_cache_delete AFTER DELETE ON service_account_secrets
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER projects_cache_insert AFTER INSERT ON projects
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER projects_cache_update AFTER UPDATE ON projects
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER projects_cache_delete AFTER DELETE ON projects
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER database_users_cache_insert AFTER INSERT ON database_users
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER database_users_cache_update AFTER UPDATE ON database_users
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER database_users_cache_delete AFTER DELETE ON database_users
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER user_security_cache_insert AFTER INSERT ON user_security
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER user_security_cache_update AFTER UPDATE ON user_security
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER user_security_cache_delete AFTER DELETE ON user_security
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
