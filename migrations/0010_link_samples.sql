-- What admission measured of a pairing's replication link while a run admitted a wave (issue 19:
-- `--max-initial-syncs auto` finds the link's knee itself): one row per measurement, from two
-- successive lists of the pairing's replications. The series the report charts, and the
-- throughput `plan` and `status` predict from.

CREATE TABLE link_samples (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT    NOT NULL REFERENCES runs (id),
    pairing_id  TEXT    NOT NULL,
    -- Unix ms: the end of the measured interval
    at          INTEGER NOT NULL,
    -- how long the interval lasted, in ms
    span_ms     INTEGER NOT NULL CHECK (span_ms > 0),
    -- the pairing's replications in their initial sync (every batch's), at the interval's end
    in_sync     INTEGER NOT NULL CHECK (in_sync >= 0),
    -- the admission cap from then on (NULL: none)
    cap         INTEGER CHECK (cap IS NULL OR cap >= 0),
    -- what the initial syncs copied in all over the interval, in Mbit/s
    mbps        REAL    NOT NULL CHECK (mbps >= 0),
    -- the fastest one sync went over the interval, in Mbit/s: a VM's own pace
    pace_mbps   REAL    NOT NULL CHECK (pace_mbps >= 0),
    -- bytes the pairing's initial syncs still had to copy at the interval's end
    bytes_left  INTEGER NOT NULL CHECK (bytes_left >= 0)
);

CREATE INDEX link_samples_by_run ON link_samples (run_id, at);
