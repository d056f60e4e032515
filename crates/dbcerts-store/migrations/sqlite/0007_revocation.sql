-- Revocation (issue 17). Each certificate records the CA that signed it (`ca_id`, a
-- `project_cas.id`), and, once revoked, when (`revoked_at`, Unix seconds) and why
-- (`revocation_reason`, the RFC 5280 CRLReason code). NULL `revoked_at` means not revoked.
--
-- Additive, like every migration: a node still running the previous version inserts
-- certificates without `ca_id`; the trigger below fills it with the project's active CA, the
-- one that node signed with. No foreign key on `ca_id`: CA rows are only ever deleted with
-- their project, which deletes its certificates too.
ALTER TABLE certificates ADD COLUMN ca_id INTEGER;
ALTER TABLE certificates ADD COLUMN revoked_at INTEGER;
ALTER TABLE certificates ADD COLUMN revocation_reason INTEGER;

-- Until now a project had exactly one CA, its active one, which signed all its certificates.
UPDATE certificates SET ca_id = (
    SELECT id FROM project_cas
    WHERE project_cas.project_id = certificates.project_id AND project_cas.active = 1
);

CREATE TRIGGER certificates_ca_id_on_insert AFTER INSERT ON certificates
    WHEN NEW.ca_id IS NULL
BEGIN
    UPDATE certificates SET ca_id = (
        SELECT id FROM project_cas WHERE project_id = NEW.project_id AND active = 1
    ) WHERE serial = NEW.serial;
END;

-- A CRL lists the revoked, unexpired certificates of one CA: a partial index holds only
-- revoked certificates, so its size follows revocations, not issuance.
CREATE INDEX certificates_revoked_by_ca ON certificates (ca_id, not_after)
    WHERE revoked_at IS NOT NULL;
