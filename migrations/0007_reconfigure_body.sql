-- A reconfigure job's body, built from the replication and its disks as they were read: a
-- resumed job sends it without reading every disk again.
ALTER TABLE jobs ADD COLUMN reconfigure_json TEXT;
