-- Day-2 operations (DESIGN.md, "Operations and the life of a replication"): a batch has one
-- operation; an operation batch acts on the configure batch whose replications it changes, and
-- each of its jobs on one job of that batch, with what it does to that job's replication.

ALTER TABLE batches ADD COLUMN operation TEXT NOT NULL DEFAULT 'configure'
    CHECK (operation IN ('configure', 'unconfigure', 'reconfigure', 'pause', 'resume', 'sync'));
ALTER TABLE batches ADD COLUMN acts_on INTEGER REFERENCES batches (id);

ALTER TABLE jobs ADD COLUMN acts_on_job INTEGER REFERENCES jobs (id);
-- domain::OperationSpec as JSON; NULL for a configure job
ALTER TABLE jobs ADD COLUMN operation_json TEXT;

CREATE INDEX jobs_by_acted_on ON jobs (acts_on_job) WHERE acts_on_job IS NOT NULL;
