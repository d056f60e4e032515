-- The certificate list counts a user's unexpired certificates and reads one page of them in
-- issuance order. The old index (project_id, username, not_before, created_ms) left `not_after`
-- in the table, so the count read every one of the user's rows (about 30 ms for a user with
-- 13,000 certificates). With the page order's last key (serial) and `not_after` in the index,
-- the count is answered from the index alone and the page reads only the rows it returns.
-- Queries name no index, so nodes still running the previous version are unaffected.
CREATE INDEX certificates_by_user_page
    ON certificates (project_id, username, not_before, created_ms, serial, not_after);
DROP INDEX certificates_by_user;
