-- Hands out up to ?5 due jobs to one worker in one statement (after River's JobGetAvailable):
-- the oldest due first, only from the states ?6 (a JSON array: those that `JobState::can_become`
-- lets become running), bumping the attempt and setting the lease. Runs inside BEGIN IMMEDIATE.
--
-- RETURNING gives back each claimed job's state before the claim for its event: the log holds
-- every transition, so the newest event's `to_state` is the state the claim moved it from.
UPDATE jobs
SET state = 'running',
    attempt = attempt + 1,
    lease_owner = ?2,
    lease_expires_at = ?3,
    started_at = COALESCE(started_at, ?1),
    updated_at = ?1
WHERE id IN (
    SELECT id FROM jobs
    WHERE state IN (SELECT value FROM json_each(?6))
      AND scheduled_at <= ?1
      AND (?4 IS NULL OR batch_id = ?4)
    ORDER BY scheduled_at, id
    LIMIT ?5
)
RETURNING id, step, attempt,
    (SELECT e.to_state FROM job_events e WHERE e.job_id = jobs.id ORDER BY e.id DESC LIMIT 1)
