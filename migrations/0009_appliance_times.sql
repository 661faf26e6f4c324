-- What the appliance itself says of a configured replication, beside what vrbulk observed
-- (issue 17: "protected at" was the moment vrbulk first looked): the end of its first sync and
-- how long that sync took, in the appliance's own words (ReplicationInfo.last_sync_time, in Unix
-- ms on the appliance's clock, and last_sync_duration, in seconds), read at the first sighting
-- after the sync; and the VR server the appliance put it on (replication_server_name), as last
-- seen, which automatic placement leaves to the appliance.

ALTER TABLE protection ADD COLUMN synced_at INTEGER;
ALTER TABLE protection ADD COLUMN sync_duration_s INTEGER CHECK (sync_duration_s IS NULL OR sync_duration_s >= 0);
ALTER TABLE protection ADD COLUMN replication_server TEXT;
