//! The queue's batches seen side by side rather than one batch's jobs: each batch with its
//! counts, change tickets and last run ([`BatchSummary`], for `vrbulk batches`), where a batch
//! stands between runs ([`Standing`], for `batches` and `status`: running, interrupted, died,
//! finished, …), and which batches a CSV's content already became (so that `vrbulk import`
//! refuses a file twice and says what became of it).
//!
//! Read-only. Whether the process of a run is alive is not the queue's to know: the caller
//! judges each lease owner ([`Liveness`]), as `run` does before it takes a batch over, and tests
//! judge as they please.

use std::collections::BTreeMap;

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{batch_from_row, Batch, BatchId, Holder, JobState, Queue, Result, BATCH_COLUMNS};

/// What is known of the process behind a lease owner or a run (`host:pid:run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Gone,
    /// Of another host, nothing can be asked.
    Unknown,
}

/// One batch as `vrbulk batches` lists it. Field names are the `--json` shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchSummary {
    pub batch: Batch,
    /// Jobs per state; every state is present.
    pub counts: BTreeMap<JobState, u64>,
    /// The distinct change tickets of the batch's jobs, sorted.
    pub change_tickets: Vec<String>,
    /// The newest run of the batch, if it ever ran.
    pub last_run: Option<LastRun>,
    pub standing: Standing,
}

impl BatchSummary {
    /// Jobs not ended yet (pending, running, retryable): what a next run has to do.
    pub fn left(&self) -> u64 {
        jobs_left(&self.counts)
    }
}

/// One run of a batch as the `runs` table keeps it (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastRun {
    pub id: String,
    /// `host:pid:run`, as its leases name it.
    pub owner: String,
    pub started_at: i64,
    /// `None` while it runs, or when it died before it could record its end.
    pub finished_at: Option<i64>,
    /// How it ended, in the runner's words (`done`, `interrupted`, `window closed`,
    /// `error: …`, `could not start: …`).
    pub outcome: Option<String>,
}

/// Where a batch stands, judged from its jobs, its live leases and how its last run ended.
/// Serialized with its name under `state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Standing {
    /// A batch without jobs.
    Empty,
    /// Jobs to do and no run yet.
    NotStarted,
    /// A live run works on it: the owners that hold its jobs or have not ended, and how many
    /// jobs they hold.
    Running { owners: Vec<String>, held: u64 },
    /// The last run was stopped by Ctrl-C (`at`: when it gave its jobs back).
    Interrupted { at: i64 },
    /// The last run never recorded its end and its process is gone (killed, crashed, the
    /// machine stopped). Its leases keep `reserved` jobs until `reserved_until`, which the
    /// next run waits out.
    Died {
        owner: String,
        started_at: i64,
        reserved: u64,
        reserved_until: Option<i64>,
    },
    /// The last run has not recorded its end and runs on another host, holding no job now:
    /// it may be waiting for a retry, or dead.
    Unknown { owner: String, started_at: i64 },
    /// The last run stopped at the end of its change window (`--until`).
    WindowClosed { at: i64 },
    /// The last run ended on an error, in its words.
    Stopped { at: i64, outcome: String },
    /// The last run finished, and jobs were requeued (or rescued) since.
    Unfinished,
    /// Every job ended, none cancelled.
    Finished,
    /// Every job ended, some cancelled.
    Cancelled,
}

impl Standing {
    /// A word or two for a table.
    pub fn label(&self) -> &'static str {
        match self {
            Standing::Empty => "empty",
            Standing::NotStarted => "not started",
            Standing::Running { .. } => "running",
            Standing::Interrupted { .. } => "interrupted",
            Standing::Died { .. } => "died",
            Standing::Unknown { .. } => "unknown",
            Standing::WindowClosed { .. } => "window closed",
            Standing::Stopped { .. } => "stopped",
            Standing::Unfinished => "unfinished",
            Standing::Finished => "finished",
            Standing::Cancelled => "cancelled",
        }
    }
}

// How `runner` records a run's end (`runs.outcome`); any other word is an error's.
const DONE: &str = "done";
const INTERRUPTED: &str = "interrupted";
const WINDOW_CLOSED: &str = "window closed";

impl Queue {
    /// Every batch, oldest first, each with its counts, tickets, last run and standing; read in
    /// one snapshot. `liveness` judges the owner of each lease and unended run.
    pub fn summaries(&self, liveness: &dyn Fn(&str) -> Liveness) -> Result<Vec<BatchSummary>> {
        // A deferred transaction that only reads: one WAL snapshot for every query below.
        let _snapshot = self.conn.unchecked_transaction()?;
        self.batches()?
            .into_iter()
            .map(|batch| self.summarize(batch, liveness))
            .collect()
    }

    /// [`Queue::summaries`] of one batch.
    pub fn summary(
        &self,
        batch: BatchId,
        liveness: &dyn Fn(&str) -> Liveness,
    ) -> Result<BatchSummary> {
        let _snapshot = self.conn.unchecked_transaction()?;
        let batch = self.batch(batch)?;
        self.summarize(batch, liveness)
    }

    fn summarize(&self, batch: Batch, liveness: &dyn Fn(&str) -> Liveness) -> Result<BatchSummary> {
        let id = batch.id;
        let counts = self.counts(id)?;
        let change_tickets = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT DISTINCT json_extract(spec_json, '$.change_ticket') AS ticket FROM jobs \
                 WHERE batch_id = ? AND ticket IS NOT NULL ORDER BY ticket",
            )?;
            let rows = stmt.query_map([id], |r| r.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        };
        let last_run = self
            .conn
            .prepare_cached(
                "SELECT id, owner, started_at, finished_at, outcome FROM runs WHERE batch_id = ? \
                 ORDER BY started_at DESC, rowid DESC LIMIT 1",
            )?
            .query_row([id], |r| {
                Ok(LastRun {
                    id: r.get(0)?,
                    owner: r.get(1)?,
                    started_at: r.get(2)?,
                    finished_at: r.get(3)?,
                    outcome: r.get(4)?,
                })
            })
            .optional()?;
        let unended: Vec<String> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT owner FROM runs WHERE batch_id = ? AND finished_at IS NULL ORDER BY owner",
            )?;
            let rows = stmt.query_map(params![id], |r| r.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        // Every owner's live leases: `holders` leaves out only the owner it is given.
        let holders = self.holders(id, "")?;
        let standing = standing(&counts, last_run.as_ref(), &holders, &unended, liveness);
        Ok(BatchSummary {
            batch,
            counts,
            change_tickets,
            last_run,
            standing,
        })
    }

    /// The configure batches imported from a CSV whose content has this SHA-256 (lower-case hex,
    /// as `import` records it), oldest first. Operation batches are left out: they act on a
    /// configure batch, and whatever file they read is not an import of VMs to protect.
    pub fn imports_of(&self, sha256: &str) -> Result<Vec<Batch>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {BATCH_COLUMNS} FROM batches WHERE input_kind = 'csv' \
             AND operation = 'configure' AND input_sha256 = ? ORDER BY id"
        ))?;
        let rows = stmt.query_map([sha256.to_ascii_lowercase()], batch_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// Jobs not ended yet (pending, running, retryable) among `counts`: what a next run has to do.
pub fn jobs_left(counts: &BTreeMap<JobState, u64>) -> u64 {
    counts
        .iter()
        .filter(|(state, _)| !state.is_terminal())
        .map(|(_, n)| n)
        .sum()
}

/// The judgement itself, in order: a batch a live run works on is running whatever else is
/// true; one with nothing left is finished (or cancelled) however its last run ended; otherwise
/// its last run says why work is left.
fn standing(
    counts: &BTreeMap<JobState, u64>,
    last_run: Option<&LastRun>,
    holders: &[Holder],
    unended: &[String],
    liveness: &dyn Fn(&str) -> Liveness,
) -> Standing {
    if counts.values().sum::<u64>() == 0 {
        return Standing::Empty;
    }
    // A run that holds a live lease is alive unless its process is known gone; one that holds
    // nothing (it waits for a retry) only when its process can be seen.
    let (live, dead): (Vec<&Holder>, Vec<&Holder>) = holders
        .iter()
        .partition(|h| liveness(&h.owner) != Liveness::Gone);
    let mut owners: Vec<String> = live.iter().map(|h| h.owner.clone()).collect();
    owners.extend(
        unended
            .iter()
            .filter(|o| liveness(o) == Liveness::Alive)
            .cloned(),
    );
    owners.sort();
    owners.dedup();
    if !owners.is_empty() {
        return Standing::Running {
            owners,
            held: live.iter().map(|h| h.jobs).sum(),
        };
    }
    if jobs_left(counts) == 0 {
        return if counts.get(&JobState::Cancelled).copied().unwrap_or(0) > 0 {
            Standing::Cancelled
        } else {
            Standing::Finished
        };
    }
    let Some(run) = last_run else {
        return Standing::NotStarted;
    };
    let Some(at) = run.finished_at else {
        return match liveness(&run.owner) {
            Liveness::Unknown => Standing::Unknown {
                owner: run.owner.clone(),
                started_at: run.started_at,
            },
            // Alive yet neither holding nor unended cannot be; read as dead all the same.
            Liveness::Gone | Liveness::Alive => Standing::Died {
                owner: run.owner.clone(),
                started_at: run.started_at,
                reserved: dead.iter().map(|h| h.jobs).sum(),
                reserved_until: dead.iter().map(|h| h.until).max(),
            },
        };
    };
    match run.outcome.as_deref().unwrap_or_default() {
        INTERRUPTED => Standing::Interrupted { at },
        WINDOW_CLOSED => Standing::WindowClosed { at },
        DONE => Standing::Unfinished,
        other => Standing::Stopped {
            at,
            outcome: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::queue::tests::{new_batch, spec};
    use crate::queue::{InputKind, NewBatch};

    const LEASE: Duration = Duration::from_secs(30);
    const HERE: &str = "jump01:100:aa";
    const DEAD: &str = "jump01:200:bb";
    const AWAY: &str = "jump02:300:cc";

    /// Processes 100 lives and 200 is gone on this host (jump01); jump02 cannot be asked.
    fn liveness(owner: &str) -> Liveness {
        match owner {
            HERE => Liveness::Alive,
            DEAD => Liveness::Gone,
            _ => Liveness::Unknown,
        }
    }

    /// A queue at 1000 ms with batch 1 of four jobs, `vm-a`..`vm-d`, one ticket each for
    /// the first two.
    fn queue() -> (Queue, Arc<AtomicI64>) {
        let now = Arc::new(AtomicI64::new(1000));
        let clock = now.clone();
        let mut q = Queue::open_in_memory()
            .unwrap()
            .with_clock(Arc::new(move || clock.load(Ordering::SeqCst)));
        let mut specs: Vec<_> = ["vm-a", "vm-b", "vm-c", "vm-d"].map(spec).into();
        specs[0].change_ticket = Some("CHG2".into());
        specs[1].change_ticket = Some("CHG1".into());
        specs[2].change_ticket = Some("CHG2".into());
        q.create_batch(&new_batch(), &specs).unwrap();
        (q, now)
    }

    fn standing_of(q: &Queue) -> Standing {
        q.summary(1, &liveness).unwrap().standing
    }

    #[test]
    fn a_batch_no_run_touched_is_not_started_and_one_without_jobs_is_empty() {
        let (mut q, _) = queue();
        assert_eq!(standing_of(&q), Standing::NotStarted);
        let empty = q.create_batch(&new_batch(), &[]).unwrap();
        assert_eq!(
            q.summary(empty, &liveness).unwrap().standing,
            Standing::Empty
        );
    }

    #[test]
    fn a_batch_is_running_while_a_live_run_holds_its_jobs_or_has_not_ended_on_this_host() {
        let (mut q, _) = queue();
        q.start_run("aa", 1, HERE, "run", None).unwrap();
        // Holding nothing yet (waiting for a retry): alive by its process.
        assert_eq!(
            standing_of(&q),
            Standing::Running {
                owners: vec![HERE.into()],
                held: 0
            }
        );
        q.claim(Some(1), 2, HERE, LEASE).unwrap();
        // Another host's run is taken at its leases' word.
        q.claim(Some(1), 1, AWAY, LEASE).unwrap();
        assert_eq!(
            standing_of(&q),
            Standing::Running {
                owners: vec![HERE.into(), AWAY.into()],
                held: 3
            }
        );
    }

    #[test]
    fn a_run_that_never_recorded_its_end_and_whose_process_is_gone_died_keeping_its_leases() {
        let (mut q, now) = queue();
        q.start_run("bb", 1, DEAD, "run", None).unwrap();
        q.claim(Some(1), 2, DEAD, LEASE).unwrap();
        assert_eq!(
            standing_of(&q),
            Standing::Died {
                owner: DEAD.into(),
                started_at: 1000,
                reserved: 2,
                reserved_until: Some(31_000),
            }
        );
        now.store(40_000, Ordering::SeqCst);
        assert!(matches!(
            standing_of(&q),
            Standing::Died {
                reserved: 0,
                reserved_until: None,
                ..
            }
        ));
    }

    #[test]
    fn an_unended_run_on_another_host_that_holds_nothing_is_unknown() {
        let (q, _) = queue();
        q.start_run("cc", 1, AWAY, "run", None).unwrap();
        assert_eq!(
            standing_of(&q),
            Standing::Unknown {
                owner: AWAY.into(),
                started_at: 1000
            }
        );
    }

    #[test]
    fn with_work_left_the_last_runs_recorded_end_says_why() {
        let (mut q, now) = queue();
        for (outcome, expected) in [
            ("interrupted", Standing::Interrupted { at: 2000 }),
            ("window closed", Standing::WindowClosed { at: 2000 }),
            (
                "error: job queue: disk I/O error",
                Standing::Stopped {
                    at: 2000,
                    outcome: "error: job queue: disk I/O error".into(),
                },
            ),
            ("done", Standing::Unfinished),
        ] {
            now.store(1000, Ordering::SeqCst);
            q.start_run(outcome, 1, HERE, "run", None).unwrap();
            now.store(2000, Ordering::SeqCst);
            q.finish_run(outcome, outcome, 0).unwrap();
            assert_eq!(standing_of(&q), expected, "{outcome}");
        }
    }

    #[test]
    fn a_batch_with_nothing_left_is_finished_or_cancelled_however_its_last_run_ended() {
        let (mut q, _) = queue();
        q.start_run("bb", 1, DEAD, "run", None).unwrap();
        for job in q.claim(Some(1), 4, DEAD, LEASE).unwrap() {
            q.succeed(&job.lease().unwrap(), Some("GID-1"), "configured")
                .unwrap();
        }
        assert_eq!(
            standing_of(&q),
            Standing::Finished,
            "the run died after the end"
        );

        let (mut q, _) = queue();
        let job = q.claim(Some(1), 1, HERE, LEASE).unwrap().remove(0);
        q.fail(&job.lease().unwrap(), "VM not found", Some(404))
            .unwrap();
        q.cancel(1, "cancelled by test").unwrap();
        assert_eq!(standing_of(&q), Standing::Cancelled);
    }

    #[test]
    fn summaries_list_every_batch_with_its_counts_tickets_and_last_run() {
        let (mut q, now) = queue();
        q.create_batch(&new_batch(), &[spec("vm-e")]).unwrap();
        q.start_run("r1", 1, HERE, "run", None).unwrap();
        now.store(5000, Ordering::SeqCst);
        q.finish_run("r1", "interrupted", 0).unwrap();
        let all = q.summaries(&liveness).unwrap();
        assert_eq!(all.iter().map(|s| s.batch.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(all[0].change_tickets, ["CHG1", "CHG2"]);
        assert_eq!(all[0].left(), 4);
        assert_eq!(all[0].counts[&JobState::Pending], 4);
        assert_eq!(
            all[0].last_run,
            Some(LastRun {
                id: "r1".into(),
                owner: HERE.into(),
                started_at: 1000,
                finished_at: Some(5000),
                outcome: Some("interrupted".into()),
            })
        );
        assert!(all[1].change_tickets.is_empty() && all[1].last_run.is_none());
        let json = serde_json::to_value(&all[0]).unwrap();
        assert_eq!(json["standing"]["state"], "interrupted");
        assert_eq!(json["counts"]["pending"], 4);
    }

    fn from_csv(sha: &str) -> NewBatch {
        NewBatch {
            input_path: Some("/data/wave-1.csv".into()),
            input_sha256: Some(sha.into()),
            ..new_batch()
        }
    }

    #[test]
    fn the_imports_of_a_file_are_the_csv_batches_with_its_digest_oldest_first() {
        let mut q = Queue::open_in_memory().unwrap();
        let first = q.create_batch(&from_csv("ab12"), &[spec("a")]).unwrap();
        q.create_batch(&from_csv("cd34"), &[spec("b")]).unwrap();
        let inventory = NewBatch {
            input_kind: InputKind::Inventory,
            input_sha256: Some("ab12".into()),
            ..new_batch()
        };
        q.create_batch(&inventory, &[spec("c")]).unwrap();
        let again = q.create_batch(&from_csv("ab12"), &[spec("d")]).unwrap();

        let ids: Vec<_> = q.imports_of("AB12").unwrap().iter().map(|b| b.id).collect();
        assert_eq!(ids, [first, again]);
        assert!(q.imports_of("ef56").unwrap().is_empty());
    }
}
