-- Operators alert on certificates about to expire (GET /metrics): find them by expiry across
-- every project. Additive only.
CREATE INDEX certificates_by_expiry ON certificates (not_after);
