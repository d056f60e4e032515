-- The Atlas certificate list leaves revoked certificates out (docs/COMPATIBILITY.md): its
-- totalCount subtracts a user's revoked, unexpired certificates, found here without reading the
-- others. Partial, so its size follows revocations, not issuance. (Its own migration: 0007 had
-- already shipped on main when the revocation API needed it; 0008 and 0009 belong to the CRL
-- and CA-generation work.)
CREATE INDEX certificates_revoked_by_user ON certificates (project_id, username, not_after)
    WHERE revoked_at IS NOT NULL;
