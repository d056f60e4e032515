-- The certificate list's totalCount is the number of the user's unexpired certificates. Counted
-- over the certificates themselves it costs one index entry per certificate the user has (1 ms
-- for 10,000, the largest part of listing such a user). Instead, certificate_counts keeps how
-- many certificates each user was issued, and the list subtracts the expired ones, found by a
-- range scan of (project_id, username, not_after) that touches only expired entries.
--
-- Triggers, not the application, keep the count: every writer (a node still running the
-- previous version during a rolling upgrade, a restore, a seed) keeps it right, in the same
-- transaction as the row it counts.
CREATE TABLE certificate_counts (
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    username    TEXT NOT NULL,
    issued      INTEGER NOT NULL,
    PRIMARY KEY (project_id, username)
);
INSERT INTO certificate_counts (project_id, username, issued)
    SELECT project_id, username, COUNT(*) FROM certificates GROUP BY project_id, username;
CREATE INDEX certificates_by_user_expiry ON certificates (project_id, username, not_after);
CREATE TRIGGER certificates_counted_on_insert AFTER INSERT ON certificates
BEGIN
    INSERT INTO certificate_counts (project_id, username, issued)
        VALUES (NEW.project_id, NEW.username, 1)
        ON CONFLICT (project_id, username) DO UPDATE SET issued = issued + 1;
END;
CREATE TRIGGER certificates_counted_on_delete AFTER DELETE ON certificates
BEGIN
    UPDATE certificate_counts SET issued = issued - 1
        WHERE project_id = OLD.project_id AND username = OLD.username;
END;
