-- Cache invalidation (dbcerts_server::cached_store, docs/ARCHITECTURE.md "Read cache"): every
-- change of a table whose rows a node may keep in its read cache sends a notification on the
-- channel `dbcerts_cache`, whatever wrote it (a node, an operator command, a restore, SQL by
-- hand). PostgreSQL delivers notifications only when the writing transaction commits, so a node
-- learns of a change no earlier than it can read it. The payload names the part of the cache to
-- drop; identical notifications of one transaction are delivered once.

CREATE FUNCTION dbcerts_cache_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dbcerts_cache', TG_ARGV[0]);
    RETURN NULL;
END;
$$;

-- On each cached table, a row trigger (it also fires for rows removed by ON DELETE CASCADE) and a
-- statement trigger for TRUNCATE, both notifying the table's part of the cache.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('organizations', 'principals'),
        ('api_keys', 'principals'),
        ('project_grants', 'principals'),
        ('access_list_entries', 'principals'),
        ('service_accounts', 'principals'),
        ('service_account_secrets', 'principals'),
        ('projects', 'projects'),
        ('database_users', 'database_users'),
        ('user_security', 'user_security')
    ) AS cached(name, part) LOOP
        EXECUTE format(
            'CREATE TRIGGER %1$I AFTER INSERT OR UPDATE OR DELETE ON %2$I
                 FOR EACH ROW EXECUTE FUNCTION dbcerts_cache_notify(%3$L)',
            t.name || '_cache', t.name, t.part);
        EXECUTE format(
            'CREATE TRIGGER %1$I AFTER TRUNCATE ON %2$I
                 FOR EACH STATEMENT EXECUTE FUNCTION dbcerts_cache_notify(%3$L)',
            t.name || '_cache_truncate', t.name, t.part);
    END LOOP;
END;
$$;
