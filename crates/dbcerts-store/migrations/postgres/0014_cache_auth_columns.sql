-- Cache invalidation, narrowed (docs/ARCHITECTURE.md "Read cache"): recording a
-- service-account secret's last use (`last_used`, written by every OAuth token issued) is not an
-- input of authentication, so it no longer notifies, which made every node empty its principal
-- cache once per token. An update that changes any other column of the row still notifies, as
-- do inserts, deletes and TRUNCATE (0011's triggers otherwise unchanged).

DROP TRIGGER service_account_secrets_cache ON service_account_secrets;
CREATE TRIGGER service_account_secrets_cache AFTER INSERT OR DELETE ON service_account_secrets
    FOR EACH ROW EXECUTE FUNCTION dbcerts_cache_notify('principals');
CREATE TRIGGER service_account_secrets_cache_update AFTER UPDATE ON service_account_secrets
    FOR EACH ROW
    WHEN ((OLD.id, OLD.client_id, OLD.secret_hash, OLD.masked, OLD.created, OLD.expires)
          IS DISTINCT FROM (NEW.id, NEW.client_id, NEW.secret_hash, NEW.masked, NEW.created, NEW.expires))
    EXECUTE FUNCTION dbcerts_cache_notify('principals');
