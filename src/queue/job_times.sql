-- When each job of a batch was first claimed, when its last event happened, and how many
-- times it was claimed: the report's timeline, from the append-only event log. A checkpoint
-- (running -> running) is not a claim.
SELECT e.job_id,
       MIN(CASE WHEN e.to_state = 'running' AND e.from_state <> 'running' THEN e.at END),
       MAX(e.at),
       COUNT(CASE WHEN e.to_state = 'running' AND e.from_state <> 'running' THEN 1 END)
FROM jobs j
JOIN job_events e ON e.job_id = j.id
WHERE j.batch_id = ?
GROUP BY e.job_id
ORDER BY e.job_id
