-- `vrbulk cancel` during a run: the run holds its jobs (running), which only it may end, so the
-- request is written on the batch and the run cancels, within seconds, the held jobs it has not
-- sent yet. A run compares the time with its own start: a later run is not cancelled by an old
-- request.

ALTER TABLE batches ADD COLUMN cancel_requested_at INTEGER;
ALTER TABLE batches ADD COLUMN cancel_requested_by TEXT;
