-- What each run used (appliance URL, how its certificate was trusted, the rate limit it kept
-- to, workers, group sizes, attempts, window), as JSON: the report's "Effective settings".
-- Never a secret: the password and session ids are not part of it.
ALTER TABLE runs ADD COLUMN settings_json TEXT;
