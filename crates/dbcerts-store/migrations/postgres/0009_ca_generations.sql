-- CA generations (issue 17, rotation with overlap). Every generation of a project's CA is a row
-- of project_cas; exactly one is active (project_cas_one_active, 0001), and rotation swaps the
-- active flag and inserts the next generation in one transaction.
--
-- Additive: existing rows are each project's only CA, generation 1. A node of the previous
-- version keeps issuing from whichever row is active.
ALTER TABLE project_cas ADD COLUMN generation BIGINT NOT NULL DEFAULT 1;
-- Unix seconds at which an operator took the generation out of the trust bundle; NULL while not.
ALTER TABLE project_cas ADD COLUMN retired_at BIGINT;
-- One row per generation: two nodes rotating at once cannot both create generation N+1.
CREATE UNIQUE INDEX project_cas_generation ON project_cas (project_id, generation);
-- An inactive generation stays in the trust bundle while it has an unexpired certificate: its
-- last notAfter is one index probe.
CREATE INDEX certificates_by_ca_expiry ON certificates (ca_id, not_after);
