-- What the appliance taught about its VR servers: a configure task that failed because a server
-- was full while vrbulk counted it below the capacity it worked with means the server's real
-- limit is lower. Kept for the whole file, not one batch: the next plan and run of any batch
-- count the server full at this figure (until the appliance shows it holding more). One row
-- per server of a pairing; a later refusal replaces it.
CREATE TABLE learnt_server_limits (
    pairing      TEXT    NOT NULL,
    server_id    TEXT    NOT NULL,
    server_name  TEXT    NOT NULL,
    -- The most replications the server takes, as the appliance showed it.
    replications INTEGER NOT NULL CHECK (replications >= 0),
    learnt_at    INTEGER NOT NULL,
    -- The job whose configure task the appliance refused, and its words.
    job_id       INTEGER REFERENCES jobs (id),
    words        TEXT    NOT NULL,
    PRIMARY KEY (pairing, server_id)
);
