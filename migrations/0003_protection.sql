-- The life of a replication after its configure task (DESIGN.md, "Operations and the life of a
-- replication"): what the appliance last said of each configured job's replication, and, append
-- only, every change of its status. A job "succeeded" when its replication was configured; it is
-- protected once the replication is OK after a sync.

CREATE TABLE protection (
    job_id              INTEGER PRIMARY KEY REFERENCES jobs (id),
    replication_id      TEXT    NOT NULL,
    -- the spec's ReplicationStatus, in the appliance's words (INITIAL_FULL_SYNC, OK, ...)
    status              TEXT    NOT NULL,
    -- the spec's configuration_state (IN_PROGRESS, OK, ERROR, UNKNOWN)
    configuration_state TEXT,
    -- the initial full sync: bytes copied of bytes to copy, when the appliance says
    bytes_done          INTEGER CHECK (bytes_done IS NULL OR bytes_done >= 0),
    bytes_total         INTEGER CHECK (bytes_total IS NULL OR bytes_total >= 0),
    rpo_violation       INTEGER NOT NULL DEFAULT 0 CHECK (rpo_violation IN (0, 1)),
    -- the appliance's words when the replication is in error
    error               TEXT,
    configured_at       INTEGER NOT NULL,
    -- the first time it was seen protected; kept when it later falls behind its RPO
    protected_at        INTEGER CHECK (protected_at IS NULL OR protected_at >= configured_at),
    updated_at          INTEGER NOT NULL
);

CREATE TABLE replication_events (
    id       INTEGER PRIMARY KEY,
    job_id   INTEGER NOT NULL REFERENCES jobs (id),
    at       INTEGER NOT NULL,
    -- NULL for the first status seen
    from_status TEXT,
    to_status   TEXT    NOT NULL,
    message  TEXT
);

CREATE INDEX replication_events_by_job ON replication_events (job_id, id);

CREATE TRIGGER replication_events_append_only_update BEFORE UPDATE ON replication_events
BEGIN
    SELECT RAISE(ABORT, 'replication_events is append-only');
END;

CREATE TRIGGER replication_events_append_only_delete BEFORE DELETE ON replication_events
BEGIN
    SELECT RAISE(ABORT, 'replication_events is append-only');
END;
