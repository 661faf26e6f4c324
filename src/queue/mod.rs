//! The persistent job queue: one SQLite file with batches, one job per VM, leases, checkpoints
//! and the append-only `job_events` log.
//!
//! Every state change but the claim goes through `transition`, which checks the state machine
//! of [`JobState::can_become`], fences writes by the job's attempt and lease owner (a worker
//! whose lease was rescued cannot overwrite a newer attempt), and appends the event in the same
//! transaction. The claim is one `UPDATE … RETURNING` (`claim.sql`) that takes only the states
//! the same rule lets become running, and appends its events in its transaction. A running job's
//! step moves as [`Step::can_become`] allows. The schema lives in `migrations/`; the database
//! refuses illegal states too. What the report reads is in `record`.

mod batches;
mod begin;
mod choose;
pub mod findings;
pub mod ledger;
mod limits;
mod link;
mod link_rate;
mod operations;
pub mod outbox;
mod protection;
mod record;
mod runs;
mod state;
mod status;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior,
};
use rusqlite_migration::{Migrations, M};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use batches::{jobs_left, BatchSummary, LastRun, Liveness, Standing};
pub use begin::{Begun, RunStart};
pub use limits::LearntLimit;
pub use link::LinkSample;
pub use link_rate::MeasuredLink;
pub use operations::{OperationJob, OperationRefused};
pub use protection::{
    Operated, PauseMark, Protection, Readiness, ReadinessCounts, ReplicationEvent, ReplicationSeen,
    NOT_LISTED,
};
pub use record::{
    BatchRecord, DiscoveryRecord, JobTimes, OperationRecord, OperatorAction, RunRecord,
};
pub use runs::Holder;
pub use state::{JobState, Step};
pub use status::{BatchStatus, JobError, RunningJob, LAST_ERRORS};

use crate::domain::{JobSpec, Operation, OperationSpec, Placement};
use crate::vr::model::{ReconfigureReplicationSpec, VmDisk};

pub type BatchId = i64;
pub type JobId = i64;

/// Unix milliseconds; injectable so tests can move time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    })
}

const MIGRATIONS: &[M<'static>] = &[
    M::up(include_str!("../../migrations/0001_queue.sql")),
    M::up(include_str!("../../migrations/0002_runs_and_api_usage.sql")),
    M::up(include_str!("../../migrations/0003_protection.sql")),
    M::up(include_str!("../../migrations/0004_operations.sql")),
    M::up(include_str!("../../migrations/0005_cancel_requests.sql")),
    M::up(include_str!("../../migrations/0006_run_settings.sql")),
    M::up(include_str!("../../migrations/0007_reconfigure_body.sql")),
    M::up(include_str!(
        "../../migrations/0008_learnt_server_limits.sql"
    )),
    M::up(include_str!("../../migrations/0009_appliance_times.sql")),
    M::up(include_str!("../../migrations/0010_link_samples.sql")),
    M::up(include_str!("../../migrations/0011_monitor_and_outbox.sql")),
];

#[derive(Debug, Error)]
pub enum QueueError {
    // The variants that wrap a rusqlite or rusqlite_migration error say its words in their own
    // message and do not return it as `source`: those errors repeat their cause in their message
    // and as their own source too (rusqlite's `SqliteFailure`), so a cause chain through them
    // would say it twice.
    #[error("cannot open the job queue {path}: {error}")]
    Open {
        path: PathBuf,
        error: rusqlite::Error,
    },

    #[error(
        "the job queue {path} was written by a newer vrbulk (schema version {found}; this vrbulk \
         knows up to {known}): use that vrbulk, or another --db"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: usize,
    },

    #[error(
        "the job queue {path} was written by an older vrbulk (schema version {found}; this vrbulk \
         reads version {known}); reading commands (status, report, batches) never upgrade a \
         queue: any command that writes to it (run, retry, cancel, import) upgrades it first, \
         or read it with the vrbulk that wrote it"
    )]
    TooOld {
        path: PathBuf,
        found: i64,
        known: usize,
    },

    #[error(
        "{path} is not a vrbulk job queue (an empty database): point --db at the queue, or \
         import a batch first"
    )]
    NotAQueue { path: PathBuf },

    #[error("cannot upgrade the job queue {path}: {}", migration_words(.error))]
    Migrate {
        path: PathBuf,
        error: rusqlite_migration::Error,
    },

    #[error("job {job}: {from} -> {to} is not a legal transition")]
    IllegalTransition {
        job: JobId,
        from: JobState,
        to: JobState,
    },

    #[error("job {job}: step {from} -> {to} is not a legal move (in doubt: {in_doubt})")]
    IllegalStep {
        job: JobId,
        from: Step,
        to: Step,
        in_doubt: bool,
    },

    /// A new batch names VMs that already have an unfinished job: two jobs for one VM could both
    /// configure it. Nothing was written.
    #[error(
        "{} already in an unfinished batch, so the new batch was not created: {}",
        plural(.0.len(), "VM is", "VMs are"),
        queued_list(.0)
    )]
    AlreadyQueued(Vec<QueuedVm>),

    #[error(
        "job {job}: attempt {attempt} no longer holds its lease (rescued or finished elsewhere)"
    )]
    LostLease { job: JobId, attempt: u32 },

    #[error("job {0} does not exist")]
    NoSuchJob(JobId),

    #[error(transparent)]
    Refused(#[from] OperationRefused),

    #[error("batch {0} does not exist")]
    NoSuchBatch(BatchId),

    /// The `--batch` a command was given is not in the queue.
    #[error("--batch {id}: no such batch in {}; its batches are: {known}", path.display())]
    UnknownBatch {
        id: BatchId,
        path: PathBuf,
        /// The batches there are, as `1 "wave 1", 2 "wave 2"`.
        known: String,
    },

    #[error(
        "there is no job queue at {}: import a batch first (`vrbulk import FILE`), or point \
         --db at the queue",
        path.display()
    )]
    NoQueue { path: PathBuf },

    #[error(
        "the job queue {} holds no batch yet: import one first (`vrbulk import FILE`)",
        path.display()
    )]
    Empty { path: PathBuf },

    #[error("job queue: stored {what} does not decode")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    #[error("job queue: {0}")]
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for QueueError {
    fn from(e: rusqlite::Error) -> Self {
        QueueError::Sql(e)
    }
}

/// A VM of a new batch that already has a job not yet finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedVm {
    /// The input line of the new batch's job (`None` for inventory selections).
    pub line: Option<u64>,
    /// The VM as the new job names it: its id when the id matched, else its name.
    pub vm: String,
    /// Whether `vm` is the VM's id (`vm_id` column) rather than its name.
    pub by_id: bool,
    /// The unfinished batch that holds it.
    pub batch: BatchId,
}

/// What went wrong in a migration, in SQLite's words, without rusqlite_migration's own quote of
/// the migration's whole SQL in front of them.
fn migration_words(e: &rusqlite_migration::Error) -> String {
    match e {
        rusqlite_migration::Error::RusqliteError { err, .. } => err.to_string(),
        other => other.to_string(),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn queued_list(vms: &[QueuedVm]) -> String {
    vms.iter()
        .map(|q| format!("`{}` (batch {})", q.vm, q.batch))
        .collect::<Vec<_>>()
        .join(", ")
}

pub type Result<T, E = QueueError> = std::result::Result<T, E>;

fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// SQLite could not open what the database needs beside it (a WAL's `-shm` index in a
/// read-only folder).
fn cannot_open(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly)
    )
}

/// The file SQLite keeps beside the database: `-wal` or `-shm`.
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// What a `file:` URI's path keeps as it is: unreserved characters and the separators.
const URI_PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `path` as an SQLite `file:` URI, percent-encoding what a URI would read otherwise.
fn file_uri(path: &Path) -> String {
    let bytes = path.as_os_str().as_encoded_bytes();
    format!("file:{}", percent_encoding::percent_encode(bytes, URI_PATH))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    Csv,
    Inventory,
}

impl InputKind {
    fn as_str(self) -> &'static str {
        match self {
            InputKind::Csv => "csv",
            InputKind::Inventory => "inventory",
        }
    }
}

/// A batch about to be created.
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub name: String,
    pub operator: String,
    pub host: String,
    pub input_kind: InputKind,
    pub input_path: Option<String>,
    pub input_sha256: Option<String>,
    /// Effective settings, never secrets.
    pub settings: serde_json::Value,
    pub max_attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Batch {
    pub id: BatchId,
    pub name: String,
    pub created_at: i64,
    pub operator: String,
    pub host: String,
    pub input_kind: String,
    pub input_path: Option<String>,
    pub input_sha256: Option<String>,
    pub settings: serde_json::Value,
    pub tool_version: String,
    /// What the batch does: configure, or a day-2 operation on another batch's replications.
    pub operation: Operation,
    /// The configure batch an operation batch acts on.
    pub acts_on: Option<BatchId>,
}

impl Batch {
    /// `3 "wave-1", 4 "wave-2"`, or `none`: the batches an operator can name, for an error
    /// about one that does not exist.
    pub fn list<'a>(batches: impl IntoIterator<Item = &'a Batch>) -> String {
        let named: Vec<String> = batches
            .into_iter()
            .map(|b| format!("{} \"{}\"", b.id, b.name))
            .collect();
        if named.is_empty() {
            "none".to_string()
        } else {
            named.join(", ")
        }
    }
}

/// What a job has learnt so far; each step's result is saved before the next step starts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub vm_id: Option<String>,
    pub disks: Option<Vec<VmDisk>>,
    pub placement: Option<Placement>,
    pub task_id: Option<String>,
    pub replication_id: Option<String>,
    /// A reconfigure's body, built from what was read before it was sent.
    pub reconfigure: Option<ReconfigureReplicationSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: JobId,
    pub batch_id: BatchId,
    pub spec: JobSpec,
    pub state: JobState,
    pub step: Step,
    pub attempt: u32,
    pub max_attempts: u32,
    pub scheduled_at: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub in_doubt: bool,
    pub checkpoint: Checkpoint,
    pub reason: Option<String>,
    pub last_error: Option<String>,
    pub last_http_status: Option<u16>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
    /// For a job of an operation batch: the configure job whose replication it acts on, and
    /// what it does to it.
    pub acts_on_job: Option<JobId>,
    pub operation: Option<OperationSpec>,
}

impl Job {
    /// The fencing token of a running job.
    pub fn lease(&self) -> Option<Lease> {
        Some(Lease {
            job: self.id,
            attempt: self.attempt,
            owner: self.lease_owner.clone()?,
        })
    }

    /// The VM as the operator named it.
    pub fn vm_label(&self) -> &str {
        self.spec
            .vm
            .name
            .as_deref()
            .or(self.spec.vm.id.as_deref())
            .unwrap_or("?")
    }
}

/// One job's checkpoint to save; `in_doubt: Some(_)` also sets or clears the in-doubt mark.
#[derive(Debug, Clone)]
pub struct Save {
    pub lease: Lease,
    pub step: Step,
    pub checkpoint: Checkpoint,
    pub in_doubt: Option<bool>,
}

/// Proof that a worker holds a job: every write of a running job must present it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job: JobId,
    pub attempt: u32,
    pub owner: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobEvent {
    pub id: i64,
    pub job_id: JobId,
    pub at: i64,
    pub from_state: Option<JobState>,
    pub to_state: JobState,
    pub step: Step,
    pub attempt: u32,
    pub message: Option<String>,
    pub http_status: Option<u16>,
}

/// One state change, as [`transition`] applies it.
#[derive(Debug, Clone, Default)]
struct Change<'a> {
    message: Option<&'a str>,
    http_status: Option<u16>,
    /// The final word on a terminal job (skip reason, failure in the server's words).
    reason: Option<&'a str>,
    last_error: Option<&'a str>,
    scheduled_at: Option<i64>,
    replication_id: Option<&'a str>,
}

impl<'a> Change<'a> {
    /// A job ended as failed, in these words.
    fn failed(reason: &'a str, http_status: Option<u16>) -> Change<'a> {
        Change {
            message: Some(reason),
            reason: Some(reason),
            last_error: Some(reason),
            http_status,
            ..Change::default()
        }
    }

    /// A job set back to be tried again at `at`, after this error.
    fn deferred(error: &'a str, at: i64, http_status: Option<u16>) -> Change<'a> {
        Change {
            message: Some(error),
            last_error: Some(error),
            http_status,
            scheduled_at: Some(at),
            ..Change::default()
        }
    }
}

pub struct Queue {
    conn: Connection,
    clock: Clock,
    path: PathBuf,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("path", &self.path).finish()
    }
}

const JOB_COLUMNS: &str = "id, batch_id, spec_json, state, step, attempt, max_attempts, \
    scheduled_at, lease_owner, lease_expires_at, in_doubt, resolved_vm_id, disks_json, \
    placement_json, task_id, replication_id, reason, last_error, last_http_status, created_at, \
    started_at, finished_at, updated_at, acts_on_job, operation_json, reconfigure_json";

const BATCH_COLUMNS: &str = "id, name, created_at, operator, host, input_kind, input_path, \
    input_sha256, settings_json, tool_version, operation, acts_on";

impl Queue {
    /// Opens (creating or upgrading) the queue file. WAL lets `status` read while `run` writes;
    /// the busy timeout lets two processes share the file without "database is locked".
    pub fn open(path: &Path) -> Result<Queue> {
        let conn = Connection::open(path).map_err(|error| QueueError::Open {
            path: path.to_path_buf(),
            error,
        })?;
        Queue::setup(conn, path)
    }

    /// Opens the queue file to read only, for `status`, `report` and `batches`: the file is not
    /// changed, so a copied queue, a mounted backup or a file without write permission reads as
    /// well as the live one while a run writes to it. The schema must be this vrbulk's own:
    /// reading never upgrades it ([`QueueError::TooOld`]).
    ///
    /// A WAL database has a `-wal` file exactly while some connection has it open (the last one
    /// to close removes it). Without one, nobody is writing, and the file is opened `immutable`:
    /// SQLite then needs no `-shm` index beside it, which a read-only connection would otherwise
    /// create (where the folder lets it, owned by the reader and in the way of the queue's own
    /// user) or fail without (where it does not). With one, the reader shares the writer's
    /// index and sees its latest commits. A `-wal` that cannot be read that way (a backup with
    /// the log but not its index, in a read-only folder) is passed over, and said so.
    pub fn open_read_only(path: &Path) -> Result<Queue> {
        let open_error = |error| QueueError::Open {
            path: path.to_path_buf(),
            error,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let immutable = || {
            Connection::open_with_flags(format!("{}?immutable=1", file_uri(path)), flags)
                .map_err(open_error)
        };
        let wal = sidecar(path, "-wal");
        let conn = if wal.exists() {
            let shared = Connection::open_with_flags(path, flags).map_err(open_error)?;
            match schema_version(&shared) {
                Err(e) if cannot_open(&e) => {
                    let unread = std::fs::metadata(&wal).map_or(0, |m| m.len());
                    if unread > 0 {
                        tracing::warn!(
                            "{db} is read as of its last checkpoint: {wal} holds {unread} bytes \
                             of later changes, which SQLite reads only with an index ({shm}) it \
                             cannot create in this folder; copy {db} and {wal} to a folder you \
                             can write to, and read the copy",
                            db = path.display(),
                            wal = wal.display(),
                            shm = sidecar(path, "-shm").display()
                        );
                    }
                    immutable()?
                }
                _ => shared,
            }
        } else {
            immutable()?
        };
        conn.busy_timeout(Duration::from_secs(10))?;
        let found = schema_version(&conn).map_err(open_error)?;
        let known = MIGRATIONS.len();
        if found > known as i64 {
            return Err(QueueError::TooNew {
                path: path.to_path_buf(),
                found,
                known,
            });
        }
        if found == 0 {
            return Err(QueueError::NotAQueue {
                path: path.to_path_buf(),
            });
        }
        if found < known as i64 {
            return Err(QueueError::TooOld {
                path: path.to_path_buf(),
                found,
                known,
            });
        }
        Ok(Queue {
            conn,
            clock: system_clock(),
            path: path.to_path_buf(),
        })
    }

    pub fn open_in_memory() -> Result<Queue> {
        Queue::setup(Connection::open_in_memory()?, Path::new(":memory:"))
    }

    fn setup(mut conn: Connection, path: &Path) -> Result<Queue> {
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > MIGRATIONS.len() as i64 {
            return Err(QueueError::TooNew {
                path: path.to_path_buf(),
                found,
                known: MIGRATIONS.len(),
            });
        }
        Migrations::from_slice(MIGRATIONS)
            .to_latest(&mut conn)
            .map_err(|error| QueueError::Migrate {
                path: path.to_path_buf(),
                error,
            })?;
        Ok(Queue {
            conn,
            clock: system_clock(),
            path: path.to_path_buf(),
        })
    }

    pub fn with_clock(mut self, clock: Clock) -> Queue {
        self.clock = clock;
        self
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version this file is at (the number of migrations applied).
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// Every write transaction takes the write lock up front: in WAL mode a transaction that
    /// reads first and then writes fails at once (SQLITE_BUSY_SNAPSHOT) when another process
    /// wrote in between, whatever the busy timeout.
    pub(crate) fn write_tx(&mut self) -> Result<Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    /// Creates a batch and its jobs in one transaction: all or nothing. A VM that already has an
    /// unfinished job refuses the whole batch ([`QueueError::AlreadyQueued`]): two jobs for one
    /// VM could both configure it. The check shares the write lock with the insert, so two
    /// imports at once cannot both pass it.
    pub fn create_batch(&mut self, batch: &NewBatch, jobs: &[JobSpec]) -> Result<BatchId> {
        let now = self.now();
        let tx = self.write_tx()?;
        let queued = already_queued(&tx, jobs)?;
        if !queued.is_empty() {
            return Err(QueueError::AlreadyQueued(queued));
        }
        let batch_id = insert_batch(&tx, now, batch, Operation::Configure, None)?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO jobs (batch_id, input_line, vm_name, vm_id, spec_json, max_attempts, \
                 scheduled_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?;
            let mut event = tx.prepare(
                "INSERT INTO job_events (job_id, at, from_state, to_state, step, attempt, message) \
                 VALUES (?, ?, NULL, 'pending', 'resolve_vm', 0, 'imported')",
            )?;
            for spec in jobs {
                let spec_json = serde_json::to_string(spec).map_err(|source| QueueError::Json {
                    what: "job spec",
                    source,
                })?;
                insert.execute(params![
                    batch_id,
                    spec.line.map(|l| l as i64),
                    spec.vm.name,
                    spec.vm.id,
                    spec_json,
                    batch.max_attempts.max(1),
                    now,
                    now,
                    now,
                ])?;
                event.execute(params![tx.last_insert_rowid(), now])?;
            }
        }
        tx.commit()?;
        Ok(batch_id)
    }

    pub fn batch(&self, id: BatchId) -> Result<Batch> {
        self.conn
            .query_row(
                &format!("SELECT {BATCH_COLUMNS} FROM batches WHERE id = ?"),
                [id],
                batch_from_row,
            )
            .optional()?
            .ok_or(QueueError::NoSuchBatch(id))
    }

    pub fn batches(&self) -> Result<Vec<Batch>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {BATCH_COLUMNS} FROM batches ORDER BY id"))?;
        let rows = stmt.query_map([], batch_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest batch, which commands use when no `--batch` is given.
    pub fn latest_batch(&self) -> Result<Option<Batch>> {
        Ok(self.batches()?.pop())
    }

    /// Hands out up to `n` due jobs (`pending`, or `retryable` whose time has come) to `owner`,
    /// oldest first, in one `UPDATE … RETURNING` inside `BEGIN IMMEDIATE`, so two processes
    /// never claim the same job. Only states that [`JobState::can_become`] running are claimed;
    /// each claim appends its event in the same transaction.
    pub fn claim(
        &mut self,
        batch: Option<BatchId>,
        n: usize,
        owner: &str,
        lease: Duration,
    ) -> Result<Vec<Job>> {
        let now = self.now();
        let expires = now + lease.as_millis() as i64;
        let claimable = states_json(
            JobState::ALL
                .into_iter()
                .filter(|s| s.can_become(JobState::Running)),
        );
        let tx = self.write_tx()?;
        let claimed: Vec<(JobId, String, u32, Option<String>)> = {
            let mut stmt = tx.prepare_cached(include_str!("claim.sql"))?;
            let rows = stmt.query_map(
                params![now, owner, expires, batch, n as i64, claimable],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
            rows.collect::<Result<_, _>>()?
        };
        let mut jobs = Vec::with_capacity(claimed.len());
        for (id, step, attempt, from) in claimed {
            let from = from.as_deref().map(|s| parse_state(s, 3)).transpose()?;
            append_event(
                &tx,
                now,
                id,
                from,
                JobState::Running,
                parse_step(&step, 1)?,
                attempt,
                Some("claimed"),
                None,
            )?;
            jobs.push(job_by_id(&tx, id)?);
        }
        tx.commit()?;
        // RETURNING gives no order; callers expect the claim's own.
        jobs.sort_by_key(|j| (j.scheduled_at, j.id));
        Ok(jobs)
    }

    /// Renews every lease `owner` holds; returns how many.
    pub fn heartbeat(&self, owner: &str, lease: Duration) -> Result<usize> {
        let now = self.now();
        Ok(self.conn.execute(
            "UPDATE jobs SET lease_expires_at = ?, updated_at = ? \
             WHERE state = 'running' AND lease_owner = ?",
            params![now + lease.as_millis() as i64, now, owner],
        )?)
    }

    /// Moves running jobs whose lease expired (their worker died) back to `retryable`. Only a
    /// job whose request may have reached the server (written ahead as in doubt, or past
    /// `submit`) has spent its attempt, and only the server's truth may end it; one that sent
    /// nothing gets its attempt back, so that kills while a run reads never fail a job. The
    /// in-doubt mark is trusted as saved: the runner writes it before any request leaves.
    pub fn rescue(&mut self) -> Result<Vec<JobId>> {
        let now = self.now();
        let tx = self.write_tx()?;
        let rescued = rescue(&tx, now)?;
        tx.commit()?;
        Ok(rescued)
    }

    /// Saves a step's result and moves the job to `step`; fenced by the lease.
    pub fn checkpoint(&mut self, lease: &Lease, step: Step, checkpoint: &Checkpoint) -> Result<()> {
        self.save_all(&[Save {
            lease: lease.clone(),
            step,
            checkpoint: checkpoint.clone(),
            in_doubt: None,
        }])
    }

    /// Saves several jobs' checkpoints in one transaction (a submit group is written ahead of
    /// its call as one). All or nothing: one lost lease, or one step move that
    /// [`Step::can_become`] refuses, fails the whole save.
    pub fn save_all(&mut self, saves: &[Save]) -> Result<()> {
        let now = self.now();
        let tx = self.write_tx()?;
        for save in saves {
            let lease = &save.lease;
            let (current, was_in_doubt) = fenced(&tx, lease)?;
            let in_doubt = save.in_doubt.unwrap_or(was_in_doubt);
            if !current.can_become(save.step, in_doubt) {
                return Err(QueueError::IllegalStep {
                    job: lease.job,
                    from: current,
                    to: save.step,
                    in_doubt,
                });
            }
            let c = &save.checkpoint;
            tx.prepare_cached(
                "UPDATE jobs SET step = ?, resolved_vm_id = ?, disks_json = ?, placement_json = ?, \
                 task_id = ?, replication_id = ?, reconfigure_json = ?, \
                 in_doubt = COALESCE(?, in_doubt), updated_at = ? WHERE id = ?",
            )?
            .execute(params![
                save.step.as_str(),
                c.vm_id,
                to_json("disks", c.disks.as_ref())?,
                to_json("placement", c.placement.as_ref())?,
                c.task_id,
                c.replication_id,
                to_json("reconfigure", c.reconfigure.as_ref())?,
                save.in_doubt,
                now,
                lease.job
            ])?;
            if current != save.step {
                // A move back is no step done: say where the job went, and why it may.
                let message = match (save.step < current, in_doubt) {
                    (false, _) => format!("step {current} done"),
                    (true, true) => format!(
                        "back to {} (in doubt: the server is asked before anything is sent again)",
                        save.step
                    ),
                    (true, false) => format!("back to {}", save.step),
                };
                running_event(&tx, now, lease, save.step, &message, None)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records what befell running jobs that their worker keeps (a failed read, a call whose
    /// answer was lost): an event each, and their last error, with no change of state.
    pub fn note_all(
        &mut self,
        leases: &[Lease],
        message: &str,
        http_status: Option<u16>,
    ) -> Result<()> {
        let now = self.now();
        let tx = self.write_tx()?;
        for lease in leases {
            let (step, _) = fenced(&tx, lease)?;
            tx.prepare_cached(
                "UPDATE jobs SET last_error = ?, last_http_status = ?, updated_at = ? WHERE id = ?",
            )?
            .execute(params![message, http_status, now, lease.job])?;
            running_event(&tx, now, lease, step, message, http_status)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn succeed(
        &mut self,
        lease: &Lease,
        replication_id: Option<&str>,
        message: &str,
    ) -> Result<()> {
        self.finish_running(
            lease,
            JobState::Succeeded,
            Change {
                message: Some(message),
                replication_id,
                ..Change::default()
            },
        )
    }

    /// Benign end: already replicated, not suitable. `replication_id` names an existing one.
    pub fn skip(
        &mut self,
        lease: &Lease,
        reason: &str,
        replication_id: Option<&str>,
    ) -> Result<()> {
        self.finish_running(
            lease,
            JobState::Skipped,
            Change {
                message: Some(reason),
                reason: Some(reason),
                replication_id,
                ..Change::default()
            },
        )
    }

    pub fn fail(&mut self, lease: &Lease, reason: &str, http_status: Option<u16>) -> Result<()> {
        self.finish_running(lease, JobState::Failed, Change::failed(reason, http_status))
    }

    /// A transient failure: try again at `at`, unless the attempts are used up, in which case the
    /// job fails with this last error. Returns the state the job ended in.
    pub fn retry_later(
        &mut self,
        lease: &Lease,
        at: i64,
        error: &str,
        http_status: Option<u16>,
    ) -> Result<JobState> {
        let now = self.now();
        // The attempts are read under the write lock: a `run --max-attempts` starting meanwhile
        // either raised them before this judgement or waits for it.
        let tx = self.write_tx()?;
        let max: u32 = tx.query_row(
            "SELECT max_attempts FROM jobs WHERE id = ?",
            [lease.job],
            |r| r.get(0),
        )?;
        let reason;
        let (to, change) = if lease.attempt >= max {
            reason = format!(
                "gave up after {} attempts; last error: {error}",
                lease.attempt
            );
            (JobState::Failed, Change::failed(&reason, http_status))
        } else {
            (
                JobState::Retryable,
                Change::deferred(error, at, http_status),
            )
        };
        transition(&tx, now, lease.job, Some(lease), to, &change)?;
        tx.commit()?;
        Ok(to)
    }

    /// A job whose configure may have reached the server, and whose truth could not be read:
    /// tried again at `at` whatever its attempts, since failing it could report a configured VM
    /// as failed. Only the server's own word ends it.
    pub fn defer(
        &mut self,
        lease: &Lease,
        at: i64,
        error: &str,
        http_status: Option<u16>,
    ) -> Result<JobState> {
        self.finish_running(
            lease,
            JobState::Retryable,
            Change::deferred(error, at, http_status),
        )?;
        Ok(JobState::Retryable)
    }

    /// Gives a running job back without counting the attempt (Ctrl-C): due again at once.
    pub fn release(&mut self, lease: &Lease, message: &str) -> Result<()> {
        let now = self.now();
        let tx = self.write_tx()?;
        transition(
            &tx,
            now,
            lease.job,
            Some(lease),
            JobState::Retryable,
            &Change {
                message: Some(message),
                scheduled_at: Some(now),
                ..Change::default()
            },
        )?;
        tx.execute(
            "UPDATE jobs SET attempt = attempt - 1 WHERE id = ? AND attempt > 0",
            [lease.job],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn finish_running(&mut self, lease: &Lease, to: JobState, change: Change<'_>) -> Result<()> {
        let now = self.now();
        let tx = self.write_tx()?;
        transition(&tx, now, lease.job, Some(lease), to, &change)?;
        tx.commit()?;
        Ok(())
    }

    /// Cancels the jobs of a batch that have not started (`pending`, `retryable`), and asks a
    /// run that holds some of its jobs to cancel those it has not sent yet.
    pub fn cancel(&mut self, batch: BatchId, message: &str) -> Result<usize> {
        let cancelled = self.move_all(
            batch,
            &[JobState::Pending, JobState::Retryable],
            JobState::Cancelled,
            message,
        )?;
        let now = self.now();
        self.conn.execute(
            "UPDATE batches SET cancel_requested_at = ?, cancel_requested_by = ? WHERE id = ?",
            params![now, message, batch],
        )?;
        Ok(cancelled)
    }

    /// Whether a cancel was asked for `batch` after `since` (Unix ms), and in whose words.
    pub fn cancel_requested(&self, batch: BatchId, since: i64) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT cancel_requested_by FROM batches WHERE id = ? AND cancel_requested_at >= ?",
                params![batch, since],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten())
    }

    /// Cancels a running job the caller holds (one it had not sent yet).
    pub fn cancel_held(&mut self, lease: &Lease, message: &str) -> Result<()> {
        self.finish_running(
            lease,
            JobState::Cancelled,
            Change {
                message: Some(message),
                reason: Some(message),
                ..Change::default()
            },
        )
    }

    /// Requeues the jobs of a batch in the ended states `from` (failed, cancelled) from the
    /// start, with a fresh set of attempts. A job in doubt stays in doubt.
    pub fn requeue(&mut self, batch: BatchId, from: &[JobState], message: &str) -> Result<usize> {
        self.move_all(batch, from, JobState::Pending, message)
    }

    /// Requeues these ended jobs (failed or cancelled) of `batch` with a fresh set of attempts,
    /// each with its spec as the operator corrected it and the message that says so; in one
    /// transaction. A job in another state or batch is refused as the state machine says.
    pub fn requeue_corrected(
        &mut self,
        batch: BatchId,
        corrections: &[(JobId, JobSpec, String)],
    ) -> Result<usize> {
        let now = self.now();
        let tx = self.write_tx()?;
        for (id, spec, message) in corrections {
            let job = job_by_id(&tx, *id)?;
            if job.batch_id != batch {
                return Err(QueueError::NoSuchJob(*id));
            }
            let spec_json = serde_json::to_string(spec).map_err(|source| QueueError::Json {
                what: "job spec",
                source,
            })?;
            tx.execute(
                "UPDATE jobs SET spec_json = ? WHERE id = ?",
                params![spec_json, id],
            )?;
            let change = Change {
                message: Some(message),
                scheduled_at: Some(now),
                ..Change::default()
            };
            transition(&tx, now, *id, None, JobState::Pending, &change)?;
        }
        tx.commit()?;
        Ok(corrections.len())
    }

    fn move_all(
        &mut self,
        batch: BatchId,
        from: &[JobState],
        to: JobState,
        message: &str,
    ) -> Result<usize> {
        self.batch(batch)?;
        let now = self.now();
        let tx = self.write_tx()?;
        let ids: Vec<JobId> = {
            let mut stmt = tx.prepare(
                "SELECT id FROM jobs WHERE batch_id = ? AND state IN (SELECT value FROM json_each(?)) \
                 ORDER BY id",
            )?;
            let rows = stmt.query_map(params![batch, states_json(from.iter().copied())], |r| {
                r.get(0)
            })?;
            rows.collect::<Result<_, _>>()?
        };
        for &id in &ids {
            let change = Change {
                message: Some(message),
                reason: (to == JobState::Cancelled).then_some(message),
                scheduled_at: Some(now),
                ..Change::default()
            };
            transition(&tx, now, id, None, to, &change)?;
        }
        tx.commit()?;
        Ok(ids.len())
    }

    /// Number of jobs per state; every state is present.
    pub fn counts(&self, batch: BatchId) -> Result<BTreeMap<JobState, u64>> {
        let mut counts: BTreeMap<JobState, u64> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT state, COUNT(*) FROM jobs WHERE batch_id = ? GROUP BY state")?;
        let mut rows = stmt.query([batch])?;
        while let Some(row) = rows.next()? {
            let state: String = row.get(0)?;
            if let Some(s) = JobState::parse(&state) {
                counts.insert(s, row.get::<_, i64>(1)? as u64);
            }
        }
        Ok(counts)
    }

    /// The batch's unfinished jobs whose change was never sent (no write-ahead mark, no task):
    /// what a next run starts from scratch.
    pub fn unsent(&self, batch: BatchId) -> Result<u64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM jobs WHERE batch_id = ? \
             AND state IN ('pending', 'running', 'retryable') AND in_doubt = 0 \
             AND step IN ('resolve_vm', 'resolve_target', 'submit')",
            [batch],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    pub fn job(&self, id: JobId) -> Result<Job> {
        job_by_id(&self.conn, id)
    }

    pub fn jobs(&self, batch: BatchId) -> Result<Vec<Job>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE batch_id = ? ORDER BY id"
        ))?;
        let rows = stmt.query_map([batch], job_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn events(&self, job: JobId) -> Result<Vec<JobEvent>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, job_id, at, from_state, to_state, step, attempt, message, http_status \
             FROM job_events WHERE job_id = ? ORDER BY id",
        )?;
        let rows = stmt.query_map([job], |r| {
            Ok(JobEvent {
                id: r.get(0)?,
                job_id: r.get(1)?,
                at: r.get(2)?,
                from_state: r
                    .get::<_, Option<String>>(3)?
                    .as_deref()
                    .and_then(JobState::parse),
                to_state: parse_state(&r.get::<_, String>(4)?, 4)?,
                step: parse_step(&r.get::<_, String>(5)?, 5)?,
                attempt: r.get(6)?,
                message: r.get(7)?,
                http_status: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// [`Queue::rescue`], in the caller's transaction.
fn rescue(tx: &Transaction<'_>, now: i64) -> Result<Vec<JobId>> {
    let expired: Vec<(JobId, String, bool)> = {
        let mut stmt = tx.prepare(
            "SELECT id, step, in_doubt FROM jobs \
             WHERE state = 'running' AND lease_expires_at < ?",
        )?;
        let rows = stmt.query_map([now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (id, step, in_doubt) in &expired {
        let sent = *in_doubt || Step::parse(step).is_some_and(|s| s >= Step::AwaitTask);
        let message = if sent {
            "lease expired: the worker holding this job stopped after its request may have \
             reached the appliance; it is checked there before anything is sent again"
        } else {
            "lease expired: the worker holding this job stopped before sending anything; \
             the attempt is not counted"
        };
        let change = Change {
            message: Some(message),
            last_error: Some(message),
            scheduled_at: Some(now),
            ..Change::default()
        };
        transition(tx, now, *id, None, JobState::Retryable, &change)?;
        if !sent {
            tx.execute(
                "UPDATE jobs SET attempt = attempt - 1 WHERE id = ? AND attempt > 0",
                [id],
            )?;
        }
    }
    Ok(expired.into_iter().map(|(id, ..)| id).collect())
}

/// The jobs of `jobs` whose VM (by id, else by name) already has a job not yet finished, with
/// that job's batch.
/// Writes the batch row of a new batch; its id.
fn insert_batch(
    tx: &Transaction<'_>,
    now: i64,
    batch: &NewBatch,
    operation: Operation,
    acts_on: Option<BatchId>,
) -> Result<BatchId> {
    tx.execute(
        "INSERT INTO batches (name, created_at, operator, host, input_kind, input_path, \
         input_sha256, settings_json, tool_version, operation, acts_on) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            batch.name,
            now,
            batch.operator,
            batch.host,
            batch.input_kind.as_str(),
            batch.input_path,
            batch.input_sha256,
            batch.settings.to_string(),
            env!("CARGO_PKG_VERSION"),
            operation.as_str(),
            acts_on,
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

fn already_queued(conn: &Connection, jobs: &[JobSpec]) -> Result<Vec<QueuedVm>> {
    let mut stmt = conn.prepare(
        "SELECT vm_name, vm_id, batch_id FROM jobs \
         WHERE state IN ('pending', 'running', 'retryable')",
    )?;
    let mut open: HashMap<String, BatchId> = HashMap::new();
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let batch: BatchId = row.get(2)?;
        for col in 0..2 {
            if let Some(key) = row.get::<_, Option<String>>(col)? {
                open.insert(key, batch);
            }
        }
    }
    Ok(jobs
        .iter()
        .filter_map(|job| {
            let (vm, batch) = [&job.vm.id, &job.vm.name]
                .into_iter()
                .flatten()
                .find_map(|k| Some((k, *open.get(k)?)))?;
            Some(QueuedVm {
                line: job.line,
                vm: vm.clone(),
                by_id: job.vm.id.as_ref() == Some(vm),
                batch,
            })
        })
        .collect())
}

/// The one place a job's state changes: checks the fence and the state machine, writes the new
/// state and its event in the caller's transaction. A job becomes `running` only through
/// [`Queue::claim`], whose one statement takes only the states this same rule lets become
/// running and sets the lease a running job must carry (the database refuses one without).
fn transition(
    tx: &Transaction<'_>,
    now: i64,
    job: JobId,
    fence: Option<&Lease>,
    to: JobState,
    change: &Change<'_>,
) -> Result<()> {
    let (from, step, attempt, owner): (String, String, u32, Option<String>) = tx
        .query_row(
            "SELECT state, step, attempt, lease_owner FROM jobs WHERE id = ?",
            [job],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?
        .ok_or(QueueError::NoSuchJob(job))?;
    let from = parse_state(&from, 0)?;
    if let Some(lease) = fence {
        if from != JobState::Running
            || attempt != lease.attempt
            || owner.as_deref() != Some(lease.owner.as_str())
        {
            return Err(QueueError::LostLease {
                job,
                attempt: lease.attempt,
            });
        }
    }
    if !from.can_become(to) {
        return Err(QueueError::IllegalTransition { job, from, to });
    }
    // A requeued job starts its life again: first step, fresh attempts.
    let requeue = to == JobState::Pending;
    let (attempt, step) = if requeue {
        (0, Step::ResolveVm)
    } else {
        (attempt, parse_step(&step, 1)?)
    };
    tx.execute(
        "UPDATE jobs SET state = ?2, step = ?3, attempt = ?4, \
         lease_owner = NULL, lease_expires_at = NULL, \
         scheduled_at = COALESCE(?5, scheduled_at), \
         reason = CASE WHEN ?6 THEN NULL ELSE COALESCE(?7, reason) END, \
         last_error = COALESCE(?8, last_error), \
         last_http_status = COALESCE(?9, last_http_status), \
         replication_id = COALESCE(?10, replication_id), \
         task_id = CASE WHEN ?6 THEN NULL ELSE task_id END, \
         finished_at = CASE WHEN ?11 THEN ?1 ELSE NULL END, \
         updated_at = ?1 \
         WHERE id = ?12",
        params![
            now,
            to.as_str(),
            step.as_str(),
            attempt,
            change.scheduled_at,
            requeue,
            change.reason,
            change.last_error,
            change.http_status,
            change.replication_id,
            to.is_terminal(),
            job,
        ],
    )?;
    append_event(
        tx,
        now,
        job,
        Some(from),
        to,
        step,
        attempt,
        change.message,
        change.http_status,
    )
}

/// The current step and in-doubt mark of a job the lease still holds, or `LostLease`.
fn fenced(tx: &Transaction<'_>, lease: &Lease) -> Result<(Step, bool)> {
    let found: Option<(String, bool)> = tx
        .query_row(
            "SELECT step, in_doubt FROM jobs WHERE id = ? AND state = 'running' AND attempt = ? \
             AND lease_owner = ?",
            params![lease.job, lease.attempt, lease.owner],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match found {
        Some((step, in_doubt)) => Ok((parse_step(&step, 0)?, in_doubt)),
        None => Err(QueueError::LostLease {
            job: lease.job,
            attempt: lease.attempt,
        }),
    }
}

#[allow(clippy::too_many_arguments)]
fn append_event(
    tx: &Transaction<'_>,
    now: i64,
    job: JobId,
    from: Option<JobState>,
    to: JobState,
    step: Step,
    attempt: u32,
    message: Option<&str>,
    http_status: Option<u16>,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO job_events (job_id, at, from_state, to_state, step, attempt, message, \
         http_status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )?
    .execute(params![
        job,
        now,
        from.map(JobState::as_str),
        to.as_str(),
        step.as_str(),
        attempt,
        message,
        http_status
    ])?;
    Ok(())
}

/// An event of a job that stays running (a step done, a setback noted): no change of state.
fn running_event(
    tx: &Transaction<'_>,
    now: i64,
    lease: &Lease,
    step: Step,
    message: &str,
    http_status: Option<u16>,
) -> Result<()> {
    append_event(
        tx,
        now,
        lease.job,
        Some(JobState::Running),
        JobState::Running,
        step,
        lease.attempt,
        Some(message),
        http_status,
    )
}

fn job_by_id(conn: &Connection, id: JobId) -> Result<Job> {
    conn.query_row(
        &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"),
        [id],
        job_from_row,
    )
    .optional()?
    .ok_or(QueueError::NoSuchJob(id))
}

fn job_from_row(r: &Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        id: r.get(0)?,
        batch_id: r.get(1)?,
        spec: json_column(r, 2)?,
        state: parse_state(&r.get::<_, String>(3)?, 3)?,
        step: parse_step(&r.get::<_, String>(4)?, 4)?,
        attempt: r.get(5)?,
        max_attempts: r.get(6)?,
        scheduled_at: r.get(7)?,
        lease_owner: r.get(8)?,
        lease_expires_at: r.get(9)?,
        in_doubt: r.get(10)?,
        checkpoint: Checkpoint {
            vm_id: r.get(11)?,
            disks: json_column(r, 12)?,
            placement: json_column(r, 13)?,
            task_id: r.get(14)?,
            replication_id: r.get(15)?,
            reconfigure: json_column(r, 25)?,
        },
        reason: r.get(16)?,
        last_error: r.get(17)?,
        last_http_status: r.get(18)?,
        created_at: r.get(19)?,
        started_at: r.get(20)?,
        finished_at: r.get(21)?,
        updated_at: r.get(22)?,
        acts_on_job: r.get(23)?,
        operation: json_column(r, 24)?,
    })
}

/// States as the JSON array that `json_each` reads in SQL.
fn states_json(states: impl IntoIterator<Item = JobState>) -> String {
    serde_json::Value::from_iter(states.into_iter().map(JobState::as_str)).to_string()
}

fn to_json<T: Serialize>(what: &'static str, value: Option<&T>) -> Result<Option<String>> {
    value
        .map(serde_json::to_string)
        .transpose()
        .map_err(|source| QueueError::Json { what, source })
}

/// A JSON column; `NULL` decodes as `None` when `T` is an `Option`.
fn json_column<T: serde::de::DeserializeOwned>(r: &Row<'_>, col: usize) -> rusqlite::Result<T> {
    let text: Option<String> = r.get(col)?;
    serde_json::from_str(text.as_deref().unwrap_or("null")).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn batch_from_row(r: &Row<'_>) -> rusqlite::Result<Batch> {
    Ok(Batch {
        id: r.get(0)?,
        name: r.get(1)?,
        created_at: r.get(2)?,
        operator: r.get(3)?,
        host: r.get(4)?,
        input_kind: r.get(5)?,
        input_path: r.get(6)?,
        input_sha256: r.get(7)?,
        settings: json_column(r, 8)?,
        tool_version: r.get(9)?,
        operation: {
            let text: String = r.get(10)?;
            Operation::parse(&text).ok_or_else(|| bad_column(10, "operation", &text))?
        },
        acts_on: r.get(11)?,
    })
}

fn parse_state(s: &str, col: usize) -> rusqlite::Result<JobState> {
    JobState::parse(s).ok_or_else(|| bad_column(col, "state", s))
}

fn parse_step(s: &str, col: usize) -> rusqlite::Result<Step> {
    Step::parse(s).ok_or_else(|| bad_column(col, "step", s))
}

fn bad_column(col: usize, what: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        col,
        rusqlite::types::Type::Text,
        format!("unknown {what} `{value}`").into(),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::VmRef;

    pub(crate) fn spec(name: &str) -> JobSpec {
        JobSpec {
            line: None,
            vm: VmRef {
                name: Some(name.into()),
                id: None,
            },
            pairing: None,
            target_datastore: "ds-gold-01".into(),
            storage_policy: None,
            replication_server: None,
            settings: Default::default(),
            change_ticket: None,
            notes: None,
        }
    }

    pub(crate) fn new_batch() -> NewBatch {
        NewBatch {
            name: "wave 1".into(),
            operator: "ops".into(),
            host: "jump01".into(),
            input_kind: InputKind::Csv,
            input_path: None,
            input_sha256: None,
            settings: serde_json::json!({}),
            max_attempts: 3,
        }
    }

    /// Puts a job straight into `state`, with the columns the CHECKs demand of it and an event,
    /// so that the log still ends in the job's state.
    fn force(q: &Queue, id: JobId, state: JobState) {
        q.conn
            .execute(
                "UPDATE jobs SET state = ?2, scheduled_at = 0, \
                 lease_owner = CASE WHEN ?2 = 'running' THEN 'w' END, \
                 lease_expires_at = CASE WHEN ?2 = 'running' THEN 1 END, \
                 finished_at = CASE WHEN ?3 THEN 1 END WHERE id = ?1",
                params![id, state.as_str(), state.is_terminal()],
            )
            .unwrap();
        q.conn
            .execute(
                "INSERT INTO job_events (job_id, at, to_state, step, attempt, message) \
                 VALUES (?, 1, ?, 'resolve_vm', 0, 'forced')",
                params![id, state.as_str()],
            )
            .unwrap();
    }

    /// `from -> to` as the queue makes it: a claim for `running`, [`transition`] otherwise.
    fn apply(q: &mut Queue, id: JobId, to: JobState) -> Result<()> {
        if to == JobState::Running {
            let claimed = q.claim(None, 1, "w2", Duration::from_secs(10))?;
            let job = q.job(id)?;
            return match claimed.as_slice() {
                [one] if one.id == id => Ok(()),
                [] => Err(QueueError::IllegalTransition {
                    job: id,
                    from: job.state,
                    to,
                }),
                other => panic!("claimed {other:?}"),
            };
        }
        let tx = q.conn.transaction()?;
        transition(&tx, 5, id, None, to, &Change::default())?;
        tx.commit()?;
        Ok(())
    }

    fn event_count(q: &Queue, id: JobId) -> usize {
        q.events(id).unwrap().len()
    }

    /// The claim is one SQL statement rather than a [`transition`] per job: it must take
    /// exactly the states from which the state machine lets a job become running.
    #[test]
    fn the_claim_takes_exactly_the_states_that_can_become_running() {
        let mut q = Queue::open_in_memory().unwrap();
        let specs: Vec<JobSpec> = JobState::ALL.iter().map(|s| spec(s.as_str())).collect();
        let batch_id = q.create_batch(&new_batch(), &specs).unwrap();
        let jobs = q.jobs(batch_id).unwrap();
        for (job, state) in jobs.iter().zip(JobState::ALL) {
            force(&q, job.id, state);
        }
        let claimed = q
            .claim(None, JobState::ALL.len() * 2, "w", Duration::from_secs(10))
            .unwrap();
        let claimed_from: Vec<JobState> = claimed
            .iter()
            .map(|j| {
                let events = q.events(j.id).unwrap();
                let from = events[events.len() - 2].to_state;
                assert_eq!(events.last().unwrap().from_state, Some(from));
                from
            })
            .collect();
        let expected: Vec<JobState> = JobState::ALL
            .into_iter()
            .filter(|s| s.can_become(JobState::Running))
            .collect();
        assert_eq!(claimed_from, expected);
        assert!(claimed.iter().all(|j| j.state == JobState::Running
            && j.attempt == 1
            && j.lease_owner.as_deref() == Some("w")));
    }

    #[test]
    fn every_legal_transition_is_written_with_its_event_and_every_other_refused() {
        let mut q = Queue::open_in_memory().unwrap();
        let batch_id = q.create_batch(&new_batch(), &[spec("vm")]).unwrap();
        let id = q.jobs(batch_id).unwrap()[0].id;
        let mut legal = 0;
        for from in JobState::ALL {
            for to in JobState::ALL {
                force(&q, id, from);
                let before = event_count(&q, id);
                let result = apply(&mut q, id, to);
                let job = q.job(id).unwrap();
                if from.can_become(to) {
                    legal += 1;
                    result.unwrap_or_else(|e| panic!("{from} -> {to}: {e}"));
                    assert_eq!(job.state, to);
                    assert_eq!(event_count(&q, id), before + 1, "{from} -> {to}");
                    let last = q.events(id).unwrap().pop().unwrap();
                    assert_eq!((last.from_state, last.to_state), (Some(from), to));
                    assert_eq!(job.finished_at.is_some(), to.is_terminal());
                } else {
                    assert!(
                        matches!(result, Err(QueueError::IllegalTransition { .. })),
                        "{from} -> {to} was allowed"
                    );
                    assert_eq!(job.state, from, "{from} -> {to} changed the job");
                    assert_eq!(event_count(&q, id), before, "{from} -> {to} wrote an event");
                }
            }
        }
        assert_eq!(legal, 11);
    }

    #[test]
    fn the_database_refuses_states_the_code_must_never_write() {
        let mut q = Queue::open_in_memory().unwrap();
        let batch_id = q.create_batch(&new_batch(), &[spec("vm")]).unwrap();
        let id = q.jobs(batch_id).unwrap()[0].id;
        for sql in [
            "UPDATE jobs SET state = 'done' WHERE id = ?",
            "UPDATE jobs SET state = 'succeeded' WHERE id = ?",
            "UPDATE jobs SET state = 'running' WHERE id = ?",
            "UPDATE jobs SET finished_at = 1 WHERE id = ?",
        ] {
            assert!(q.conn.execute(sql, [id]).is_err(), "{sql}");
        }
        assert!(q
            .conn
            .execute("UPDATE job_events SET message = 'x'", [])
            .is_err());
        assert!(q.conn.execute("DELETE FROM job_events", []).is_err());
        q.conn
            .execute(
                "INSERT INTO replication_events (job_id, at, to_status) VALUES (?, 1, 'OK')",
                [id],
            )
            .unwrap();
        assert!(q
            .conn
            .execute("UPDATE replication_events SET to_status = 'x'", [])
            .is_err());
        assert!(q
            .conn
            .execute("DELETE FROM replication_events", [])
            .is_err());
        for sql in [
            "INSERT INTO protection (job_id, replication_id, status, bytes_done, configured_at, \
             updated_at) VALUES (?, 'r', 'OK', -1, 1, 1)",
            "INSERT INTO protection (job_id, replication_id, status, configured_at, protected_at, \
             updated_at) VALUES (?, 'r', 'OK', 5, 1, 1)",
        ] {
            assert!(q.conn.execute(sql, [id]).is_err(), "{sql}");
        }
    }

    #[test]
    fn a_read_only_queue_opens_under_any_file_name_and_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("backup 2026-11-27 #3 ?100%");
        std::fs::create_dir(&folder).unwrap();
        let path = folder.join("q.db");
        Queue::open(&path)
            .unwrap()
            .create_batch(&new_batch(), &[spec("app-001")])
            .unwrap();
        let mut q = Queue::open_read_only(&path).unwrap();
        assert_eq!(q.batch(1).unwrap().name, "wave 1");
        assert!(q.create_batch(&new_batch(), &[spec("app-002")]).is_err());
        let names: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["q.db"], "nothing beside the file");
        assert_eq!(
            file_uri(Path::new("/a b/#?%.db")),
            "file:/a%20b/%23%3F%25.db"
        );
    }
}
