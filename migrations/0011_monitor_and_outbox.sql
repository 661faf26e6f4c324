-- Issue 20: what `vrbulk monitor` found, and the notifications waiting to be delivered.
--
-- A finding is one condition of one VM's replication (kind: rpo_violation, error, paused,
-- not_active, removed, uncovered). It is pending from the first sighting (first_seen_at) until
-- it has lasted its grace, then open (opened_at) until it has been gone for its hold time
-- (ok_since marks when it went away; a new sighting resets it), then cleared (cleared_at). A
-- pending finding whose condition goes before its grace leaves no row: it was not an incident.
-- batch_id 0 holds the findings of `monitor --all` on replications outside every batch.
CREATE TABLE findings (
    id INTEGER PRIMARY KEY,
    batch_id INTEGER NOT NULL,
    job_id INTEGER REFERENCES jobs(id),
    vm_id TEXT NOT NULL,
    vm_name TEXT,
    kind TEXT NOT NULL,
    detail TEXT,
    first_seen_at INTEGER NOT NULL,
    opened_at INTEGER,
    ok_since INTEGER,
    cleared_at INTEGER,
    updated_at INTEGER NOT NULL
);
-- At most one live (not cleared) finding of a kind per VM and batch.
CREATE UNIQUE INDEX findings_live ON findings(batch_id, vm_id, kind) WHERE cleared_at IS NULL;
CREATE INDEX findings_by_batch ON findings(batch_id, opened_at);

-- One row per message and channel: delivered at least once, in order of creation, retried with
-- backoff. message_id is the same on every channel and every retry, for the receiver to
-- deduplicate on. The message holds no secret (channels' credentials come from the environment).
CREATE TABLE outbox (
    message_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    message_json TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    delivered_at INTEGER,
    last_error TEXT,
    PRIMARY KEY (message_id, channel)
);
CREATE INDEX outbox_due ON outbox(delivered_at, next_attempt_at);

-- The requests every vrbulk process of this host sent to an appliance lately (Unix ms), so that
-- a run and a monitor side by side keep together to the appliance's per-IP quota. Rows older
-- than the rate window are deleted as new ones come.
CREATE TABLE api_ledger (
    appliance TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX api_ledger_by_appliance ON api_ledger(appliance, at_ms);

-- When `vrbulk monitor` looked at a batch: from when, until when, how many cycles. A report
-- says "monitored, nothing found" only by this record, never by the absence of findings.
CREATE TABLE monitor_looks (
    batch_id INTEGER PRIMARY KEY,
    first_at INTEGER NOT NULL,
    last_at INTEGER NOT NULL,
    cycles INTEGER NOT NULL
);
