-- What the runner and the report need beyond the jobs: each run of a batch, the API calls it
-- cost per operation, and the discovery it did per pairing.

CREATE TABLE runs (
    id          TEXT    PRIMARY KEY,
    batch_id    INTEGER NOT NULL REFERENCES batches (id),
    owner       TEXT    NOT NULL,
    command     TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    outcome     TEXT,
    relogins    INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX runs_by_batch ON runs (batch_id, started_at);

CREATE TABLE api_usage (
    batch_id      INTEGER NOT NULL REFERENCES batches (id),
    operation     TEXT    NOT NULL,
    calls         INTEGER NOT NULL DEFAULT 0,
    throttled     INTEGER NOT NULL DEFAULT 0,
    server_errors INTEGER NOT NULL DEFAULT 0,
    retries       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (batch_id, operation)
);

CREATE TABLE discovery (
    batch_id     INTEGER NOT NULL REFERENCES batches (id),
    pairing      TEXT    NOT NULL,
    fetched_at   INTEGER NOT NULL,
    summary_json TEXT    NOT NULL,
    PRIMARY KEY (batch_id, pairing)
);
