-- Revocation (issue 17): the same columns, backfill, trigger and index as the SQLite
-- migration. Each certificate records the CA that signed it (`ca_id`, a `project_cas.id`),
-- and, once revoked, when (`revoked_at`, Unix seconds) and why (`revocation_reason`, the
-- RFC 5280 CRLReason code). NULL `revoked_at` means not revoked.
--
-- Additive: a node still running the previous version inserts certificates without `ca_id`;
-- the trigger fills it with the project's active CA, the one that node signed with. No foreign
-- key on `ca_id`: CA rows are only ever deleted with their project, which deletes its
-- certificates too.
ALTER TABLE certificates ADD COLUMN ca_id BIGINT;
ALTER TABLE certificates ADD COLUMN revoked_at BIGINT;
ALTER TABLE certificates ADD COLUMN revocation_reason BIGINT;

-- Until now a project had exactly one CA, its active one, which signed all its certificates.
UPDATE certificates SET ca_id = (
    SELECT id FROM project_cas
    WHERE project_cas.project_id = certificates.project_id AND project_cas.active = 1
);

CREATE FUNCTION certificates_fill_ca_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.ca_id IS NULL THEN
        NEW.ca_id := (SELECT id FROM project_cas WHERE project_id = NEW.project_id AND active = 1);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER certificates_ca_id_on_insert BEFORE INSERT ON certificates
    FOR EACH ROW EXECUTE FUNCTION certificates_fill_ca_id();

-- A CRL lists the revoked, unexpired certificates of one CA: a partial index holds only
-- revoked certificates, so its size follows revocations, not issuance.
CREATE INDEX certificates_revoked_by_ca ON certificates (ca_id, not_after)
    WHERE revoked_at IS NOT NULL;
