//! The report's model and [`Report::load`], which fills it from the queue alone: the batch row,
//! the jobs with their checkpoints, the event log (timeline), what runs recorded (runs and their
//! settings, API usage per operation, discovery per pairing), what `run` and `watch` last saw of
//! each configured job's replication (protection, by [`Readiness`]), and the other side of a
//! day-2 operation (`operations`). Field names are the JSON schema's (`docs/report-schema.md`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::causes::{self, CauseKind};
use super::link::{self, LinkSeries};
use super::operations::{
    operations_since, spec_counts, BatchRef, JobOperation, OperationSince, OperationSpecCount,
};
use super::settings::{redacted, RunEntry};
use super::{ReportError, UtcTime};
use crate::domain::{Operation, OperationSpec};
use crate::queue::{
    Batch, BatchId, BatchRecord, DiscoveryRecord, Job, JobId, JobState, Protection, Queue,
    Readiness, ReadinessCounts, ReplicationEvent, RunRecord, Step,
};
use crate::vr::model::VmDisk;

/// One batch, as a change board files it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// When the report was made (the `now` given to [`Report::load`]).
    pub generated_at: UtcTime,
    pub batch: BatchHeader,
    /// Source and target site of each pairing the batch's runs discovered.
    pub sites: Vec<Site>,
    pub runs: Runs,
    pub progress: Progress,
    pub summary: Summary,
    /// Failed jobs grouped by cause, the largest group first.
    pub failures: Vec<FailureGroup>,
    /// Skipped jobs grouped by reason, the largest group first.
    pub skipped: Vec<SkipGroup>,
    /// One row per VM, in import order.
    pub jobs: Vec<JobRow>,
    /// When each job started and ended, from its events; in import order.
    pub timeline: Vec<TimelineEntry>,
    /// For a configure batch: the day-2 operations applied to its replications since, oldest
    /// first. Empty for an operation batch.
    pub operations_since: Vec<OperationSince>,
    /// What operators did to the jobs (requeues, with their corrections, and cancels), oldest
    /// first: changes by the operator that a change board files with the rest.
    pub operator_actions: Vec<OperatorActionRow>,
    /// What admission measured of each pairing's link while the runs admitted the wave, by
    /// pairing id; empty when no run measured it.
    pub link: Vec<LinkSeries>,
    /// What `vrbulk monitor` found since the batch was configured; absent when it never looked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compliance: Option<super::Compliance>,
}

/// One requeue or cancel, in the words of its event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorActionRow {
    pub at: UtcTime,
    pub vm: String,
    pub action: String,
}

/// The audit header: what was imported, by whom, where, with which settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchHeader {
    pub id: BatchId,
    pub name: String,
    /// When the batch was imported.
    pub created_at: UtcTime,
    pub operator: String,
    pub host: String,
    /// The vrbulk version that imported the batch.
    pub tool_version: String,
    /// `csv` or `inventory`.
    pub input_kind: String,
    pub input_path: Option<String>,
    pub input_sha256: Option<String>,
    /// The effective settings of the import; the queue never holds secrets, and a key that
    /// names one is redacted all the same.
    pub settings: serde_json::Value,
    /// Distinct change tickets of the batch's jobs, sorted.
    pub change_tickets: Vec<String>,
    /// `configure` (an import), or the day-2 operation of an operation batch.
    pub operation: Operation,
    /// For an operation batch: the configure batch whose replications it acts on.
    pub acts_on: Option<BatchRef>,
    /// For an operation batch: what its jobs do, each distinct spec with how many jobs do it,
    /// in job order. Empty for a configure batch.
    pub operation_specs: Vec<OperationSpecCount>,
}

impl BatchHeader {
    /// The header of `batch` with its `jobs`; an operation batch's `acts_on` is for the caller
    /// to fill, from the same read.
    pub fn new(batch: &Batch, jobs: &[Job]) -> BatchHeader {
        let tickets: BTreeSet<&str> = jobs
            .iter()
            .filter_map(|j| j.spec.change_ticket.as_deref())
            .filter(|t| !t.trim().is_empty())
            .collect();
        BatchHeader {
            id: batch.id,
            name: batch.name.clone(),
            created_at: UtcTime(batch.created_at),
            operator: batch.operator.clone(),
            host: batch.host.clone(),
            tool_version: batch.tool_version.clone(),
            input_kind: batch.input_kind.clone(),
            input_path: batch.input_path.clone(),
            input_sha256: batch.input_sha256.clone(),
            settings: redacted(&batch.settings),
            change_tickets: tickets.into_iter().map(str::to_owned).collect(),
            operation: batch.operation,
            acts_on: None,
            operation_specs: spec_counts(jobs.iter().filter_map(|j| j.operation.as_ref())),
        }
    }
}

/// One pairing as discovered: the source (local) and target (remote) vCenter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Site {
    pub pairing_id: String,
    pub source_vcenter: Option<String>,
    pub target_vcenter: Option<String>,
    pub discovered_at: UtcTime,
}

/// The `vrbulk run`s of the batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Runs {
    pub count: u64,
    pub first_started_at: Option<UtcTime>,
    pub last_started_at: Option<UtcTime>,
    /// The end of the last run that finished.
    pub last_finished_at: Option<UtcTime>,
    /// How the newest run ended (`done`, `interrupted`, …); `None` while it runs.
    pub last_outcome: Option<String>,
    /// The runs' durations added up. A run that never recorded its end (killed) counts until
    /// the batch's last event.
    pub wall_time_ms: i64,
    /// Logins repeated after a session expired, over all runs.
    pub relogins: u64,
    /// Each run, oldest first: where it ran, how it ended, and the settings it used when it
    /// recorded them.
    pub list: Vec<RunEntry>,
}

/// Where the batch stands: `in_progress` while any job is pending, running or retryable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub in_progress: bool,
    /// Jobs in a final state.
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub total: u64,
    /// Jobs per state; every state is present.
    pub counts: BTreeMap<JobState, u64>,
    /// Share of the jobs per state, in percent with one decimal; every state is present.
    pub percent: BTreeMap<JobState, f64>,
    /// Sum over succeeded jobs of their replicated disks' capacities, in bytes; 0 for an
    /// operation batch, which replicates nothing.
    pub replicated_capacity_bytes: i64,
    /// API calls per operation (the spec's operationId), sorted by operation.
    pub api_calls: Vec<ApiCall>,
    /// All operations added up (`operation` is `total`).
    pub api_total: ApiCall,
    pub relogins: u64,
    /// Attempts beyond the first, over all jobs.
    pub job_retries: u64,
    /// Configured is not protected: where the configured VMs' replications stand (none for an
    /// operation batch: its jobs configure nothing).
    pub protection: ProtectionSummary,
}

/// The configured VMs by [`Readiness`], as `run` and `watch` last saw their replications, and
/// as vrbulk's own day-2 batches left them since.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProtectionSummary {
    /// Jobs whose replication was configured: the succeeded ones, and any other with a
    /// protection record.
    pub configured: u64,
    /// Configured jobs whose replication no vrbulk undo removed since: the ones that ought to
    /// be protected.
    pub still_configured: u64,
    /// Configured jobs whose replication has not been seen since.
    pub not_followed: u64,
    /// Configured jobs seen since, per readiness; every readiness is present.
    pub counts: BTreeMap<Readiness, u64>,
    /// Protected VMs whose replication is now behind its RPO.
    pub rpo_violation: u64,
    /// Unconfigured VMs per batch that unconfigured them.
    pub unconfigured_by: BTreeMap<BatchId, u64>,
    /// Paused VMs per batch that paused them; the other paused ones were paused outside vrbulk.
    pub paused_by: BTreeMap<BatchId, u64>,
    /// Bytes copied of bytes to copy, over the VMs still syncing whose appliance said both.
    pub sync_copied_bytes: i64,
    pub sync_total_bytes: i64,
    /// The newest sighting of any replication of the batch.
    pub last_seen_at: Option<UtcTime>,
    /// When the first configured VM became protected (each VM's `protected_at`).
    pub first_protected_at: Option<UtcTime>,
    /// When half of the configured VMs (rounded up) had become protected.
    pub half_protected_at: Option<UtcTime>,
    /// When every configured VM that no undo removed had become protected; `None` until then.
    pub all_protected_at: Option<UtcTime>,
    /// The mean of `protected_at − configured_at` over the VMs that became protected.
    pub mean_time_to_protected_ms: Option<i64>,
    /// The queue's tally these numbers come from, for the words renderers share.
    #[serde(skip)]
    pub tally: ReadinessCounts,
}

impl ProtectionSummary {
    /// Configured VMs of `readiness`.
    pub fn count(&self, readiness: Readiness) -> u64 {
        self.counts.get(&readiness).copied().unwrap_or(0)
    }
}

/// What one API operation cost over all runs of the batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiCall {
    pub operation: String,
    /// HTTP requests sent, retries included.
    pub calls: u64,
    /// Answers with 429.
    pub throttled: u64,
    /// Answers with 5xx.
    pub server_errors: u64,
    /// Requests repeated after a transient failure or a 429.
    pub retries: u64,
}

/// Failed jobs with one cause.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureGroup {
    pub kind: CauseKind,
    /// The reason with ids and numbers taken out (`…`).
    pub cause: String,
    /// The first reason of the group, in the server's words.
    pub example: String,
    pub next_step: String,
    pub count: u64,
    pub vms: Vec<String>,
}

/// Skipped jobs with one reason (an operation on a replication someone else re-created, a VM
/// already replicated, …).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkipGroup {
    /// The reason with ids and numbers taken out (`…`), as for failures.
    pub cause: String,
    /// The first reason of the group, in its own words.
    pub example: String,
    pub count: u64,
    pub vms: Vec<String>,
}

/// One VM's job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRow {
    pub job_id: i64,
    /// The CSV line the job came from (the header is line 1).
    pub input_line: Option<u64>,
    /// The VM's name as the operator gave it (its id when only the id was given).
    pub vm_name: String,
    /// The id the API resolved, else the one the input gave.
    pub vm_id: Option<String>,
    pub state: JobState,
    /// The workflow step the job is at, or ended at.
    pub step: Step,
    /// Why a skipped, failed or cancelled job ended so, in the server's words.
    pub reason: Option<String>,
    /// The newest error of the job, even if a later attempt succeeded.
    pub last_error: Option<String>,
    pub http_status: Option<u16>,
    pub replication_id: Option<String>,
    pub task_id: Option<String>,
    pub in_doubt: bool,
    pub target_datastore: String,
    /// `None`: the datastore's default policy.
    pub storage_policy: Option<String>,
    /// The VR server the input asked for; `None`: automatic placement.
    pub replication_server: Option<String>,
    /// The VR server the run chose and sent the configure to (for `auto`, the run's choice),
    /// by name; `None` when it left the choice to the appliance or never got that far. Where
    /// the appliance put it is `protection.replication_server`.
    pub replication_server_chosen: Option<String>,
    pub rpo_minutes: u32,
    /// Point-in-time copies per day; 0 is MPIT off.
    pub mpit_instances: u32,
    pub mpit_days: u32,
    /// Disk labels (the VM home included) enabled for replication.
    pub disks_replicated: Vec<String>,
    /// Disk labels the server reports as unsupported, left out.
    pub disks_excluded: Vec<String>,
    /// Capacity of the replicated disks, in bytes.
    pub replicated_capacity_bytes: i64,
    pub attempts: u32,
    pub started_at: Option<UtcTime>,
    pub finished_at: Option<UtcTime>,
    pub duration_ms: Option<i64>,
    pub change_ticket: Option<String>,
    pub notes: Option<String>,
    /// Its replication as last seen; `None` while not configured or not followed yet.
    pub protection: Option<JobProtection>,
    /// For a job of an operation batch: the configure job whose replication it acts on, and
    /// what it does to it.
    pub acts_on_job: Option<JobId>,
    pub operation: Option<OperationSpec>,
    /// For a job of a configure batch: what the operation batches since did to its
    /// replication, oldest first.
    pub operations_since: Vec<JobOperation>,
}

/// One configured VM's replication, as `run` or `watch` last saw it, and as vrbulk's own day-2
/// batches left it since.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobProtection {
    pub readiness: Readiness,
    /// The readiness with who did it (`unconfigured by batch 4`, `paused outside vrbulk`), for
    /// the renderers.
    #[serde(skip)]
    pub words: String,
    /// The unconfigure batch that removed it.
    pub unconfigured_by: Option<BatchId>,
    /// The pause batch that paused it, while it is paused by vrbulk.
    pub paused_by: Option<BatchId>,
    pub replication_id: String,
    /// The appliance's status (`INITIAL_FULL_SYNC`, `OK`, `NOT_ACTIVE`, `RPO_VIOLATION`, …), or
    /// `NOT_LISTED` once the appliance stopped listing it; empty when never seen.
    pub status: String,
    pub configuration_state: Option<String>,
    /// When vrbulk saw its configure task succeed (vrbulk's clock).
    pub configured_at: UtcTime,
    /// When it became protected: the appliance's end of its first sync (`synced_at`) when the
    /// appliance said, else when vrbulk first saw it protected; kept when it later falls
    /// behind its RPO.
    pub protected_at: Option<UtcTime>,
    /// Whose time `protected_at` is.
    pub protected_at_source: Option<TimeSource>,
    /// When vrbulk first saw it protected (vrbulk's clock).
    pub first_seen_protected_at: Option<UtcTime>,
    /// The appliance's `last_sync_time` at vrbulk's first sighting after its first sync (the
    /// appliance's clock): the end of that sync, or of a later one when that came first.
    pub synced_at: Option<UtcTime>,
    /// How long that sync took, by the appliance (`last_sync_duration`).
    pub initial_sync_duration_ms: Option<i64>,
    /// The VR server the appliance put it on (`replication_server_name`), as last seen.
    pub replication_server: Option<String>,
    /// `protected_at − configured_at` (0 when the appliance's clock says the sync ended
    /// before vrbulk saw the task succeed).
    pub time_to_protected_ms: Option<i64>,
    /// The initial full sync: bytes copied of bytes to copy, when the appliance says.
    pub copied_bytes: Option<i64>,
    pub total_bytes: Option<i64>,
    pub rpo_violation: bool,
    /// The appliance's words when the replication is in error.
    pub error: Option<String>,
    /// When it was last seen; `None` for one a vrbulk undo removed before anything looked.
    pub seen_at: Option<UtcTime>,
}

/// Whose clock a time is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    /// The appliance said it (its own record of the replication).
    Appliance,
    /// vrbulk saw it happen by then (its first look after the fact).
    Observed,
}

impl TimeSource {
    /// The JSON report's word.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeSource::Appliance => "appliance",
            TimeSource::Observed => "observed",
        }
    }
}

impl JobProtection {
    /// Share of the initial sync copied, in percent with one decimal, when the appliance said.
    pub fn percent_copied(&self) -> Option<f64> {
        match (self.copied_bytes, self.total_bytes) {
            (Some(done), Some(total)) if total > 0 => {
                Some((done.clamp(0, total) as f64 * 1000.0 / total as f64).round() / 10.0)
            }
            _ => None,
        }
    }
}

/// One job on the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEntry {
    pub job_id: i64,
    pub vm_name: String,
    pub state: JobState,
    /// The first claim.
    pub started_at: Option<UtcTime>,
    /// The final event; `None` while the job is not finished.
    pub ended_at: Option<UtcTime>,
    /// How many times a worker claimed the job.
    pub claims: u64,
    /// The status changes of its replication, oldest first.
    pub replication_events: Vec<ReplicationChange>,
}

/// One change of a replication's status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicationChange {
    pub at: UtcTime,
    /// `None` for the first status seen.
    pub from_status: Option<String>,
    pub to_status: String,
    pub message: Option<String>,
}

impl Report {
    /// Reads batch `batch` from the queue into a report made at `now` (Unix ms). The queue reads
    /// its whole record in one transaction, so the numbers agree while a `vrbulk run` writes.
    pub fn load(queue: &Queue, batch: BatchId, now: i64) -> Result<Report, ReportError> {
        let compliance = super::Compliance::load(queue, batch, now)?;
        let record = queue.record(batch)?;
        let last_event = record.job_times.values().map(|t| t.last_event_at).max();
        let mut header = BatchHeader::new(&record.batch, &record.jobs);
        header.acts_on = record.acts_on.as_ref().map(BatchRef::new);
        let (operations_since, mut done_since) = operations_since(&record.operations);
        let servers = server_names(&record.discoveries);
        let mut rows: Vec<JobRow> = record.jobs.iter().map(|j| job_row(j, &servers)).collect();
        for row in &mut rows {
            row.operations_since = done_since.remove(&row.job_id).unwrap_or_default();
        }
        let summary = summary(&record, &mut rows);
        let total = summary.total;
        let done: u64 = summary
            .counts
            .iter()
            .filter(|(s, _)| s.is_terminal())
            .map(|(_, n)| n)
            .sum();
        let operation = record.batch.operation;
        let runs = runs_of(&record.runs, last_event);
        let BatchRecord {
            jobs,
            discoveries,
            replication_events,
            job_times,
            operator_actions,
            link_samples,
            ..
        } = record;
        let vm_of: HashMap<JobId, &str> = jobs.iter().map(|j| (j.id, j.vm_label())).collect();
        let operator_actions = operator_actions
            .into_iter()
            .map(|a| OperatorActionRow {
                at: UtcTime(a.at),
                vm: vm_of
                    .get(&a.job_id)
                    .copied()
                    .unwrap_or_default()
                    .to_string(),
                action: a.message,
            })
            .collect();
        let sites: Vec<Site> = discoveries.into_iter().map(site).collect();
        Ok(Report {
            generated_at: UtcTime(now),
            batch: header,
            link: link::series(link_samples, &sites),
            sites,
            progress: Progress {
                in_progress: done < total,
                done,
                total,
            },
            summary,
            runs,
            failures: failures(&jobs, operation),
            skipped: skipped(&jobs),
            timeline: timeline(&jobs, &job_times, replication_events),
            jobs: rows,
            operations_since,
            operator_actions,
            compliance,
        })
    }
}

/// The batch's numbers; each configured job's protection goes onto its row in `rows`.
fn summary(record: &BatchRecord, rows: &mut [JobRow]) -> Summary {
    let BatchRecord {
        batch,
        jobs,
        counts,
        api_usage,
        runs,
        protection,
        ..
    } = record;
    let total = jobs.len() as u64;
    let configures = batch.operation == Operation::Configure;
    let replicated_capacity_bytes = rows
        .iter()
        .filter(|r| configures && r.state == JobState::Succeeded)
        .map(|r| r.replicated_capacity_bytes)
        .sum();
    let (api_calls, api_total) = api_calls(api_usage.clone());
    // An operation batch's jobs configure nothing: none of them counts as configured.
    let succeeded = jobs
        .iter()
        .filter(|j| configures && j.state == JobState::Succeeded)
        .map(|j| j.id);
    let protection_summary =
        protection_summary(ReadinessCounts::tally(succeeded, protection), protection);
    let mut records: HashMap<JobId, &Protection> = protection.iter().map(|p| (p.job, p)).collect();
    for row in rows.iter_mut() {
        row.protection = records
            .remove(&row.job_id)
            .map(|p| job_protection(p.clone()));
    }
    Summary {
        total,
        counts: counts.clone(),
        percent: counts
            .iter()
            .map(|(s, n)| (*s, percent(*n, total)))
            .collect(),
        replicated_capacity_bytes,
        api_calls,
        api_total,
        relogins: runs.iter().map(|r| r.relogins).sum(),
        job_retries: jobs
            .iter()
            .map(|j| u64::from(j.attempt.saturating_sub(1)))
            .sum(),
        protection: protection_summary,
    }
}

/// When each job started and ended, and its replication's status changes, in import order.
fn timeline(
    jobs: &[Job],
    job_times: &HashMap<JobId, crate::queue::JobTimes>,
    replication_events: Vec<ReplicationEvent>,
) -> Vec<TimelineEntry> {
    let mut changes = replication_changes(replication_events);
    jobs.iter()
        .map(|j| {
            let times = job_times.get(&j.id);
            TimelineEntry {
                job_id: j.id,
                vm_name: j.vm_label().to_string(),
                state: j.state,
                started_at: times.and_then(|t| t.first_claimed_at).map(UtcTime),
                ended_at: j
                    .state
                    .is_terminal()
                    .then_some(UtcTime(times.map_or(0, |t| t.last_event_at))),
                claims: times.map_or(0, |t| t.claims),
                replication_events: changes.remove(&j.id).unwrap_or_default(),
            }
        })
        .collect()
}

/// Failed jobs grouped by cause, each with the next step an operator of `operation` takes.
fn failures(jobs: &[Job], operation: Operation) -> Vec<FailureGroup> {
    causes::group(&ended_as(jobs, JobState::Failed))
        .into_iter()
        .map(|g| FailureGroup {
            kind: g.kind,
            next_step: g.kind.next_step_of(operation).to_string(),
            cause: g.cause,
            example: g.example,
            count: g.vms.len() as u64,
            vms: g.vms,
        })
        .collect()
}

/// Skipped jobs grouped by their reason.
fn skipped(jobs: &[Job]) -> Vec<SkipGroup> {
    causes::group(&ended_as(jobs, JobState::Skipped))
        .into_iter()
        .map(|g| SkipGroup {
            cause: g.cause,
            example: g.example,
            count: g.vms.len() as u64,
            vms: g.vms,
        })
        .collect()
}

/// The jobs that ended in `state`, with their reasons, as the grouping by cause sees them.
fn ended_as(jobs: &[Job], state: JobState) -> Vec<causes::Ended<'_>> {
    jobs.iter()
        .filter(|j| j.state == state)
        .map(|j| causes::Ended {
            vm: j.vm_label(),
            reason: j
                .reason
                .as_deref()
                .or(j.last_error.as_deref())
                .unwrap_or("no reason recorded"),
            http_status: j.last_http_status,
        })
        .collect()
}

/// API calls per operation, and all of them added up.
fn api_calls(usage: BTreeMap<String, crate::vr::OpUsage>) -> (Vec<ApiCall>, ApiCall) {
    let api_calls: Vec<ApiCall> = usage
        .into_iter()
        .map(|(operation, u)| ApiCall {
            operation,
            calls: u.calls,
            throttled: u.throttled,
            server_errors: u.server_errors,
            retries: u.retries,
        })
        .collect();
    let total = api_calls.iter().fold(
        ApiCall {
            operation: "total".into(),
            calls: 0,
            throttled: 0,
            server_errors: 0,
            retries: 0,
        },
        |mut t, c| {
            t.calls += c.calls;
            t.throttled += c.throttled;
            t.server_errors += c.server_errors;
            t.retries += c.retries;
            t
        },
    );
    (api_calls, total)
}

/// The runs of the batch; a run that never recorded its end counts until `last_event`.
fn runs_of(runs: &[RunRecord], last_event: Option<i64>) -> Runs {
    Runs {
        count: runs.len() as u64,
        first_started_at: runs.first().map(|r| UtcTime(r.started_at)),
        last_started_at: runs.last().map(|r| UtcTime(r.started_at)),
        last_finished_at: runs.iter().filter_map(|r| r.finished_at).max().map(UtcTime),
        last_outcome: runs.last().and_then(|r| r.outcome.clone()),
        wall_time_ms: runs
            .iter()
            .map(|r| {
                let end = r
                    .finished_at
                    .unwrap_or_else(|| last_event.unwrap_or(r.started_at).max(r.started_at));
                (end - r.started_at).max(0)
            })
            .sum(),
        relogins: runs.iter().map(|r| r.relogins).sum(),
        list: runs.iter().map(RunEntry::new).collect(),
    }
}

/// The summary of the configured VMs: `counts` as the queue tallied them, and the times
/// protection took, from the `records` they were tallied from (the appliance's times where it
/// gave them).
fn protection_summary(counts: ReadinessCounts, records: &[Protection]) -> ProtectionSummary {
    let took: Vec<i64> = records
        .iter()
        .filter_map(|p| Some((p.protected_since()? - p.configured_at).max(0)))
        .collect();
    let mut protected_at: Vec<i64> = records.iter().filter_map(|p| p.protected_since()).collect();
    protected_at.sort_unstable();
    // The moment the n-th VM became protected, counting from one.
    let nth = |n: u64| {
        usize::try_from(n)
            .ok()
            .and_then(|n| protected_at.get(n.checked_sub(1)?))
            .copied()
            .map(UtcTime)
    };
    let still = counts.still_configured();
    ProtectionSummary {
        configured: counts.configured,
        still_configured: still,
        not_followed: counts.not_followed,
        counts: counts.counts.clone(),
        rpo_violation: counts.rpo_violation,
        unconfigured_by: counts.unconfigured_by.clone(),
        paused_by: counts.paused_by.clone(),
        sync_copied_bytes: counts.sync_bytes_done,
        sync_total_bytes: counts.sync_bytes_total,
        last_seen_at: counts.last_seen_at.map(UtcTime),
        first_protected_at: nth(1),
        half_protected_at: nth(still.div_ceil(2)),
        all_protected_at: counts.all_protected().then(|| nth(still)).flatten(),
        mean_time_to_protected_ms: (!took.is_empty())
            .then(|| took.iter().sum::<i64>() / took.len() as i64),
        tally: counts,
    }
}

fn job_protection(p: Protection) -> JobProtection {
    let since = p.protected_since();
    JobProtection {
        readiness: p.readiness(),
        words: p.readiness_words(),
        unconfigured_by: p.operated.unconfigured_by,
        paused_by: p.paused_by(),
        time_to_protected_ms: since.map(|at| (at - p.configured_at).max(0)),
        protected_at: since.map(UtcTime),
        protected_at_source: p.protected_at.map(|_| {
            if p.synced_at.is_some() {
                TimeSource::Appliance
            } else {
                TimeSource::Observed
            }
        }),
        first_seen_protected_at: p.protected_at.map(UtcTime),
        synced_at: p.synced_at.map(UtcTime),
        initial_sync_duration_ms: p.sync_duration_s.map(|s| s.saturating_mul(1000)),
        replication_server: p.replication_server,
        replication_id: p.replication_id,
        status: p.status,
        configuration_state: p.configuration_state,
        configured_at: UtcTime(p.configured_at),
        copied_bytes: p.bytes_done,
        total_bytes: p.bytes_total,
        rpo_violation: p.rpo_violation,
        error: p.error,
        seen_at: p.seen.then_some(UtcTime(p.updated_at)),
    }
}

/// The replication events of a batch, per job, oldest first.
fn replication_changes(events: Vec<ReplicationEvent>) -> HashMap<JobId, Vec<ReplicationChange>> {
    let mut per_job: HashMap<JobId, Vec<ReplicationChange>> = HashMap::new();
    for e in events {
        per_job.entry(e.job).or_default().push(ReplicationChange {
            at: UtcTime(e.at),
            from_status: e.from_status,
            to_status: e.to_status,
            message: e.message,
        });
    }
    per_job
}

/// A pairing's sites, from its discovery summary. Lenient: a summary written by another vrbulk
/// version may lack a field; the report then shows what there is rather than failing.
fn site(d: DiscoveryRecord) -> Site {
    let text = |k: &str| d.summary.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    Site {
        source_vcenter: text("local_vc"),
        target_vcenter: text("remote_vc"),
        pairing_id: d.pairing,
        discovered_at: UtcTime(d.fetched_at),
    }
}

/// `n` of `total` in percent, one decimal.
fn percent(n: u64, total: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    ((n as f64) * 1000.0 / total as f64).round() / 10.0
}

/// Every target VR server's name by its id, over the pairings the batch's runs discovered.
fn server_names(discoveries: &[DiscoveryRecord]) -> HashMap<String, String> {
    discoveries
        .iter()
        .filter_map(|d| d.summary.get("replication_server_names")?.as_object())
        .flat_map(|names| names.iter())
        .filter_map(|(id, name)| Some((id.clone(), name.as_str()?.to_string())))
        .collect()
}

fn job_row(j: &Job, servers: &HashMap<String, String>) -> JobRow {
    let disks: &[VmDisk] = j.checkpoint.disks.as_deref().unwrap_or_default();
    let mut disks_replicated = Vec::new();
    let mut disks_excluded = Vec::new();
    let mut capacity_kb: i64 = 0;
    for (i, d) in disks.iter().enumerate() {
        let label = disk_label(d, i);
        // What the workflow enables: every disk the server does not call unsupported.
        if d.supported_for_replication == Some(false) {
            disks_excluded.push(label);
        } else {
            disks_replicated.push(label);
            capacity_kb = capacity_kb.saturating_add(d.capacity.unwrap_or(0).max(0));
        }
    }
    let s = &j.spec;
    JobRow {
        job_id: j.id,
        input_line: s.line,
        vm_name: j.vm_label().to_string(),
        vm_id: j.checkpoint.vm_id.clone().or_else(|| s.vm.id.clone()),
        state: j.state,
        step: j.step,
        reason: j.reason.clone(),
        last_error: j.last_error.clone(),
        http_status: j.last_http_status,
        replication_id: j.checkpoint.replication_id.clone(),
        task_id: j.checkpoint.task_id.clone(),
        in_doubt: j.in_doubt,
        target_datastore: s.target_datastore.clone(),
        storage_policy: s.storage_policy.clone(),
        replication_server: s.replication_server.clone(),
        // Named by the discovery; a server it did not name (an older queue) shows its id.
        replication_server_chosen: j
            .checkpoint
            .placement
            .as_ref()
            .and_then(|p| p.replication_server_id.as_ref())
            .map(|id| servers.get(id).cloned().unwrap_or_else(|| id.clone())),
        rpo_minutes: s.settings.rpo,
        mpit_instances: s.settings.mpit_instances,
        mpit_days: s.settings.mpit_days,
        disks_replicated,
        disks_excluded,
        // The spec gives disk capacities in KB.
        replicated_capacity_bytes: capacity_kb.saturating_mul(1024),
        attempts: j.attempt,
        started_at: j.started_at.map(UtcTime),
        finished_at: j.finished_at.map(UtcTime),
        duration_ms: j.started_at.zip(j.finished_at).map(|(s, f)| (f - s).max(0)),
        change_ticket: s.change_ticket.clone(),
        notes: s.notes.clone(),
        protection: None,
        acts_on_job: j.acts_on_job,
        operation: j.operation.clone(),
        operations_since: Vec::new(),
    }
}

/// The disk as vSphere labels it (`Hard disk 2`); the VM home or the device key otherwise.
fn disk_label(d: &VmDisk, index: usize) -> String {
    match (&d.label, d.is_vm_home, d.device_key) {
        (Some(label), _, _) if !label.is_empty() => label.clone(),
        (_, Some(true), _) => "VM home".into(),
        (_, _, Some(key)) => format!("disk {key}"),
        _ => format!("disk #{}", index + 1),
    }
}
