-- Cache invalidation, narrowed (docs/ARCHITECTURE.md "Read cache"): recording a
-- service-account secret's last use (`last_used`, written by every OAuth token issued) is not an
-- input of authentication, so it no longer raises the cache version, which emptied every node's
-- whole read cache once per token. Any other column of the row still does, as do inserts and
-- deletes (0011's triggers, unchanged). SQLite fires `UPDATE OF` triggers when a listed column
-- is in the statement's SET clause, whatever its value.

DROP TRIGGER service_account_secrets_cache_update;
CREATE TRIGGER service_account_secrets_cache_update
    AFTER UPDATE OF id, client_id, secret_hash, masked, created, expires ON service_account_secrets
    BEGIN UPDATE cache_version SET n = n + 1 WHERE id = 1; END;
