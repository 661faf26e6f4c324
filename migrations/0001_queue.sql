-- The job queue: batches, one job per VM, and the append-only event log (DESIGN.md, "The job
-- queue"). Times are Unix milliseconds (UTC). The CHECKs make the database itself refuse states
-- the code must never write.

CREATE TABLE batches (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    operator      TEXT    NOT NULL,
    host          TEXT    NOT NULL,
    input_kind    TEXT    NOT NULL CHECK (input_kind IN ('csv', 'inventory')),
    input_path    TEXT,
    input_sha256  TEXT,
    -- effective settings as JSON; never secrets
    settings_json TEXT    NOT NULL,
    tool_version  TEXT    NOT NULL
);

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY,
    batch_id         INTEGER NOT NULL REFERENCES batches (id),
    input_line       INTEGER,
    vm_name          TEXT,
    vm_id            TEXT,
    -- the job as imported (input::JobSpec as JSON)
    spec_json        TEXT    NOT NULL,
    state            TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN
                         ('pending', 'running', 'retryable', 'succeeded', 'skipped', 'failed', 'cancelled')),
    step             TEXT    NOT NULL DEFAULT 'resolve_vm' CHECK (step IN
                         ('resolve_vm', 'resolve_target', 'submit', 'await_task', 'verify')),
    attempt          INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    scheduled_at     INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    -- 1 when a configure call may have reached the server without us knowing its answer
    in_doubt         INTEGER NOT NULL DEFAULT 0 CHECK (in_doubt IN (0, 1)),
    -- checkpoints, each saved before the next step starts
    resolved_vm_id   TEXT,
    disks_json       TEXT,
    placement_json   TEXT,
    task_id          TEXT,
    replication_id   TEXT,
    -- why the job ended as it did (skipped / failed / cancelled), in the server's words
    reason           TEXT,
    last_error       TEXT,
    last_http_status INTEGER,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    updated_at       INTEGER NOT NULL,
    CHECK (vm_name IS NOT NULL OR vm_id IS NOT NULL),
    CHECK ((state IN ('succeeded', 'skipped', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
);

CREATE INDEX jobs_due ON jobs (state, scheduled_at);
CREATE INDEX jobs_by_batch ON jobs (batch_id, state);
CREATE INDEX jobs_by_lease ON jobs (lease_owner) WHERE lease_owner IS NOT NULL;

CREATE TABLE job_events (
    id          INTEGER PRIMARY KEY,
    job_id      INTEGER NOT NULL REFERENCES jobs (id),
    at          INTEGER NOT NULL,
    from_state  TEXT,
    to_state    TEXT    NOT NULL,
    step        TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    message     TEXT,
    http_status INTEGER
);

CREATE INDEX job_events_by_job ON job_events (job_id, id);

-- The audit trail is never rewritten.
CREATE TRIGGER job_events_append_only_update BEFORE UPDATE ON job_events
BEGIN
    SELECT RAISE(ABORT, 'job_events is append-only');
END;

CREATE TRIGGER job_events_append_only_delete BEFORE DELETE ON job_events
BEGIN
    SELECT RAISE(ABORT, 'job_events is append-only');
END;
