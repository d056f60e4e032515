-- The certificate list's totalCount is the number of the user's unexpired certificates. Counted
-- over the certificates themselves it costs one index entry per certificate the user has (and,
-- until VACUUM has set the visibility map, one heap visit each), the largest part of listing a
-- user with 10,000. Instead, certificate_counts keeps how many certificates each user was
-- issued, and the list subtracts the expired ones, found by a range scan of
-- (project_id, username, not_after) that touches only expired entries.
--
-- Triggers, not the application, keep the count: every writer (a node still running the
-- previous version during a rolling upgrade, a restore, a seed) keeps it right, in the same
-- transaction as the row it counts. Writers of certificates hold the store-wide write lock, so
-- two never update one count at once.
CREATE TABLE certificate_counts (
    project_id  TEXT COLLATE "C" NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    username    TEXT COLLATE "C" NOT NULL,
    issued      BIGINT NOT NULL,
    PRIMARY KEY (project_id, username)
);
INSERT INTO certificate_counts (project_id, username, issued)
    SELECT project_id, username, COUNT(*) FROM certificates GROUP BY project_id, username;
CREATE INDEX certificates_by_user_expiry ON certificates (project_id, username, not_after);
CREATE FUNCTION count_certificates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO certificate_counts (project_id, username, issued)
            VALUES (NEW.project_id, NEW.username, 1)
            ON CONFLICT (project_id, username)
            DO UPDATE SET issued = certificate_counts.issued + 1;
        RETURN NEW;
    END IF;
    UPDATE certificate_counts SET issued = issued - 1
        WHERE project_id = OLD.project_id AND username = OLD.username;
    RETURN OLD;
END
$$;
CREATE TRIGGER certificates_counted AFTER INSERT OR DELETE ON certificates
    FOR EACH ROW EXECUTE FUNCTION count_certificates();
