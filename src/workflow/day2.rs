//! What a day-2 operation acts on, and the batch that records it. The operator names a configure
//! batch and, optionally, VM name globs, or hands a reconfigure CSV; [`OperationRequest::prepare`]
//! turns that into the batch's configured jobs, each with what to do to its replication
//! ([`Target`]), or into every problem at once ([`InputErrors`]: exit 2, nothing written). The
//! queue creates the batch ([`Prepared::create`]), the runner runs it, [`super::operation_plan`]
//! previews it. Nothing here touches the network.
//!
//! A configure batch may still have jobs to do when the operation is asked for: a run is
//! configuring it now, or its last run stopped. Those VMs have no replication yet, so the
//! operation cannot cover them, and an undo that quietly covered "the 3 configured so far" of
//! 150 would leave 147 replications behind the operator's back. They are the request's
//! [`LeftOut`]: refused unless the operator waits for the run ([`wait_while_configuring`]) or
//! says `--only-finished` ([`Refused::NotCovered`]). A command run again finds its own
//! unfinished batch in [`super::rerun`].

use std::time::Duration;

use serde_json::json;
use thiserror::Error;

use crate::domain::{Operation, OperationSpec, VmRef};
use crate::input::{self, glob_match, ChangeRow, InputError, InputErrors};
use crate::queue::{
    Batch, BatchId, InputKind, Job, JobState, Liveness, NewBatch, OperationJob, Queue, QueueError,
    Standing,
};
use crate::timefmt::utc;

/// Attempts per job of an operation batch, as an import's default; `run --max-attempts` changes
/// it for the jobs not yet finished.
pub const MAX_ATTEMPTS: u32 = 5;

/// What the operator asked for.
#[derive(Debug, Clone)]
pub struct OperationRequest {
    /// The configure batch whose replications to act on.
    pub acts_on: BatchId,
    /// VM name globs (`*`, `?`, case-insensitive), any may match; none: every VM the batch
    /// configured.
    pub vms: Vec<String>,
    pub asked: Asked,
    /// Act on the VMs configured so far and leave out those the configure batch has not
    /// configured yet (`--only-finished`), instead of refusing.
    pub only_finished: bool,
}

/// What to do to each selected replication.
#[derive(Debug, Clone)]
pub enum Asked {
    /// The same operation on every selected VM.
    Each(OperationSpec),
    /// A reconfigure per VM, from a CSV in the import's columns; the VMs are the CSV's.
    Csv {
        bytes: Vec<u8>,
        /// Where the file was read from, for the audit record.
        path: String,
    },
}

/// One configured VM the operation acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The configure job that recorded the replication.
    pub job: Job,
    pub spec: OperationSpec,
}

impl Target {
    pub fn vm_name(&self) -> &str {
        self.job.vm_label()
    }

    /// The replication the configure job recorded (a target always has one).
    pub fn replication_id(&self) -> &str {
        self.job
            .checkpoint
            .replication_id
            .as_deref()
            .unwrap_or_default()
    }
}

/// A request checked against the queue.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub acts_on: Batch,
    pub operation: Operation,
    /// In the configure batch's job order.
    pub targets: Vec<Target>,
    /// The configure jobs the request names that have not ended yet: VMs not configured yet,
    /// which the operation cannot cover (see [`LeftOut`]).
    pub not_configured_yet: Vec<Job>,
    request: OperationRequest,
}

/// Why a request was not turned into a batch. Nothing was written.
#[derive(Debug, Error)]
pub enum PrepareError {
    /// The operator's input: every problem of it.
    #[error(transparent)]
    Input(InputErrors),

    /// What the queue holds stops it: VMs not configured yet, or an unfinished batch on the
    /// same replications.
    #[error(transparent)]
    Refused(Box<Refused>),

    // The queue's error names the queue: this says only the step.
    #[error("checking the request")]
    Queue(#[source] QueueError),
}

impl From<Refused> for PrepareError {
    fn from(r: Refused) -> Self {
        PrepareError::Refused(Box::new(r))
    }
}

impl PrepareError {
    /// The operator's to fix (exit 2), not the queue failing.
    pub fn is_operators(&self) -> bool {
        !matches!(self, PrepareError::Queue(_))
    }
}

/// A request the state of the queue stops: nothing was created or sent (exit 2).
#[derive(Debug, Error)]
pub enum Refused {
    /// VMs the request names are not configured yet; acting on the others alone is done only
    /// when asked (`--only-finished`).
    #[error("{}", .0.refusal())]
    NotCovered(LeftOut),

    /// The unfinished batch of this same request is being run by a live run.
    #[error(
        "batch {} \"{}\" is this same {} and is running now ({}): let it finish; `vrbulk \
         status --batch {0}` shows where it is",
        .batch.id,
        .batch.name,
        command_word(.batch.operation),
        .owners.join(", ")
    )]
    Running { batch: Batch, owners: Vec<String> },

    /// Unfinished operation batches on some of the same replications, asked differently: one
    /// replication gets one operation at a time.
    #[error("{}", differs(.0))]
    Differs(Vec<Difference>),
}

/// An unfinished operation batch that holds some of the request's VMs and was asked otherwise.
#[derive(Debug, Clone)]
pub struct Difference {
    pub batch: Batch,
    /// Whether a live run works on it now.
    pub running: bool,
    /// How many of the request's VMs it still has to do.
    pub overlap: usize,
    /// What differs, in the commands' flags: `--keep-replica-disks: batch 2 with it, this
    /// command without`.
    pub what: Vec<String>,
}

fn differs(batches: &[Difference]) -> String {
    let mut said = String::new();
    for d in batches {
        let b = &d.batch;
        let next = if d.running {
            "a live run works on it now: let it finish, then run this command again".to_string()
        } else {
            format!(
                "`vrbulk run --batch {0}` finishes it as it was asked, or `vrbulk cancel --batch \
                 {0}` cancels what it has left; then run this command again",
                b.id
            )
        };
        if !said.is_empty() {
            said.push('\n');
        }
        said.push_str(&format!(
            "batch {} \"{}\" has not finished with {} of these VMs, and it was asked \
             differently ({}): {next}",
            b.id,
            b.name,
            d.overlap,
            d.what.join("; ")
        ));
    }
    said
}

/// The VMs a request names that its configure batch has not configured yet, and why not.
#[derive(Debug, Clone)]
pub struct LeftOut {
    pub operation: Operation,
    /// The configure batch.
    pub batch: BatchId,
    /// How many VMs the operation would act on.
    pub covered: usize,
    /// The VMs left out, in the batch's order.
    pub vms: Vec<String>,
    /// Where the configure batch stands: a live run (`Running`) or its last run's end.
    pub standing: Standing,
}

impl LeftOut {
    /// A live run is configuring the batch: waiting for it makes sense.
    pub fn live(&self) -> bool {
        matches!(self.standing, Standing::Running { .. })
    }

    /// Why the VMs are not configured: `still being configured by a live run (…)`.
    pub fn why(&self) -> String {
        match &self.standing {
            Standing::Running { owners, .. } => format!(
                "still being configured by a live run ({})",
                owners.join(", ")
            ),
            other => format!(
                "not configured yet (batch {} {})",
                self.batch,
                last_run(other)
            ),
        }
    }

    /// The VMs, at most five named.
    pub fn names(&self) -> String {
        five(self.vms.iter().cloned())
    }

    /// The note `--only-finished` prints: what is left out and why.
    pub fn note(&self) -> String {
        format!(
            "--only-finished: this {} leaves out {} of batch {}, {}: {}",
            command_word(self.operation),
            count(self.vms.len(), "VM"),
            self.batch,
            self.why(),
            self.names()
        )
    }

    fn refusal(&self) -> String {
        let word = command_word(self.operation);
        let (n, id) = (self.vms.len(), self.batch);
        let covered = match self.covered {
            0 => format!("none of the VMs this {word} names is configured yet"),
            k => format!(
                "this {word} would cover only the {} configured so far",
                count(k, "VM")
            ),
        };
        let only_finished = match self.covered {
            0 => String::new(),
            k => format!(
                "; --only-finished acts on the {} configured and leaves the others",
                count(k, "VM")
            ),
        };
        let next = if self.live() {
            format!(
                "--wait waits for that run to end, then acts on every VM it configured{only_finished}"
            )
        } else {
            format!(
                "`vrbulk run --batch {id}` finishes the configure batch first (a VM whose \
                 configure was in flight when its run stopped may have a replication \
                 already){only_finished}"
            )
        };
        format!(
            "{} of batch {id} {} {}: {covered}. Not covered: {}. {next}",
            count(n, "VM"),
            if n == 1 { "is" } else { "are" },
            self.why(),
            self.names()
        )
    }
}

/// How a configure batch's last run left it, after `batch N`: `was interrupted at …`.
pub(crate) fn last_run(standing: &Standing) -> String {
    match standing {
        Standing::Running { owners, held } => format!(
            "is being run now by {} ({held} jobs held)",
            owners.join(", ")
        ),
        Standing::NotStarted => "has not run yet".into(),
        Standing::Interrupted { at } => format!("was interrupted at {}", utc(*at)),
        Standing::Died {
            owner, started_at, ..
        } => format!(
            "was left by a run that died (started {} by {owner})",
            utc(*started_at)
        ),
        Standing::Unknown { owner, started_at } => format!(
            "was last run on another host (started {} by {owner}), which has not recorded its end",
            utc(*started_at)
        ),
        Standing::WindowClosed { at } => {
            format!("stopped at the end of its change window at {}", utc(*at))
        }
        Standing::Stopped { at, outcome } => format!("stopped at {}: {outcome}", utc(*at)),
        Standing::Unfinished => "had jobs queued again since its last run".into(),
        Standing::Empty | Standing::Finished | Standing::Cancelled => "has no job left".into(),
    }
}

/// `n VMs`, `1 VM`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `a, b, c, d, e and 142 more`.
fn five(names: impl Iterator<Item = String>) -> String {
    let all: Vec<String> = names.collect();
    let more = all.len().saturating_sub(5);
    let mut shown = all.into_iter().take(5).collect::<Vec<_>>().join(", ");
    if more > 0 {
        shown.push_str(&format!(" and {more} more"));
    }
    shown
}

/// Waits while a live run configures `batch`, asking the queue every `every`; `tell` hears each
/// look (its jobs left and who runs it). Returns how the batch stands once no live run works on
/// it. A dead run's leases do not count: it is not coming back.
pub async fn wait_while_configuring(
    queue: &Queue,
    batch: BatchId,
    liveness: &dyn Fn(&str) -> Liveness,
    every: Duration,
    mut tell: impl FnMut(u64, &[String]),
) -> Result<Standing, QueueError> {
    loop {
        let summary = queue.summary(batch, liveness)?;
        match &summary.standing {
            Standing::Running { owners, .. } => tell(summary.left(), owners),
            other => return Ok(other.clone()),
        }
        tokio::time::sleep(every).await;
    }
}

impl From<QueueError> for PrepareError {
    fn from(e: QueueError) -> Self {
        PrepareError::Queue(e)
    }
}

/// The operator's word for `op`: an unconfigure of a batch's replications is its undo.
pub fn command_word(op: Operation) -> &'static str {
    match op {
        Operation::Unconfigure => "undo",
        other => other.as_str(),
    }
}

/// `an undo`, `a pause`: the operator's word for `op` with its article.
pub(crate) fn a_command(op: Operation) -> String {
    let word = command_word(op);
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {word}")
    } else {
        format!("a {word}")
    }
}

/// Whether the configure job `job` left a replication that an operation can act on.
fn configured(job: &Job) -> bool {
    job.state == JobState::Succeeded && job.checkpoint.replication_id.is_some()
}

/// Whether the configure job `job` has not ended: its VM may be configured later.
fn unfinished(job: &Job) -> bool {
    !job.state.is_terminal()
}

impl OperationRequest {
    pub fn operation(&self) -> Operation {
        match &self.asked {
            Asked::Each(spec) => spec.operation(),
            Asked::Csv { .. } => Operation::Reconfigure,
        }
    }

    /// Checks everything against `queue` before anything is sent or written: the change (flags
    /// or CSV), the batch, the globs, the CSV's VMs. Every problem at once, in line order.
    pub fn prepare(&self, queue: &Queue) -> Result<Prepared, PrepareError> {
        let mut errors = Vec::new();
        let mut rows = Vec::new();
        match &self.asked {
            Asked::Each(OperationSpec::Reconfigure(change)) => {
                if let Err(e) = input::check_change(change) {
                    errors.extend(e.0);
                }
            }
            Asked::Each(_) => {}
            Asked::Csv { bytes, .. } => {
                let (read, problems) = input::read_changes(bytes);
                rows = read;
                errors.extend(problems);
            }
        }
        let batch = self.configure_batch(queue, &mut errors)?;
        let mut targets = Vec::new();
        let mut not_configured_yet = Vec::new();
        if let Some(batch) = &batch {
            let jobs = queue.jobs(batch.id)?;
            (targets, not_configured_yet) = match &self.asked {
                Asked::Each(spec) => self.select(batch, &jobs, spec, &mut errors),
                Asked::Csv { .. } => from_rows(batch, &jobs, &rows, &mut errors),
            };
        }
        errors.sort_by_key(|e| e.line);
        match batch {
            Some(acts_on) if errors.is_empty() => Ok(Prepared {
                acts_on,
                operation: self.operation(),
                targets,
                not_configured_yet,
                request: self.clone(),
            }),
            _ => Err(PrepareError::Input(InputErrors(errors))),
        }
    }

    /// The batch to act on, when it exists and is a configure batch; else why not, in `errors`.
    fn configure_batch(
        &self,
        queue: &Queue,
        errors: &mut Vec<InputError>,
    ) -> Result<Option<Batch>, QueueError> {
        let id = self.acts_on;
        let batch = match queue.batch(id) {
            Ok(b) => b,
            Err(QueueError::NoSuchBatch(_)) => {
                let batches = queue.batches()?;
                let known = Batch::list(
                    batches
                        .iter()
                        .filter(|b| b.operation == Operation::Configure),
                );
                errors.push(InputError::new(
                    None,
                    None,
                    format!("--batch {id}: no such batch; the configure batches are: {known}"),
                ));
                return Ok(None);
            }
            Err(other) => return Err(other),
        };
        if batch.operation != Operation::Configure {
            let hint = batch
                .acts_on
                .map(|of| format!(" (it acted on batch {of}: did you mean --batch {of}?)"))
                .unwrap_or_default();
            errors.push(InputError::new(
                None,
                None,
                format!(
                    "--batch {id} is a {} batch{hint}; day-2 operations act on the \
                     replications a configure batch created",
                    command_word(batch.operation)
                ),
            ));
            return Ok(None);
        }
        Ok(Some(batch))
    }

    /// The configured jobs whose VM names match the globs (all without globs), and the
    /// unfinished ones they match: each glob must match a VM the batch configured or may still
    /// configure.
    fn select(
        &self,
        batch: &Batch,
        jobs: &[Job],
        spec: &OperationSpec,
        errors: &mut Vec<InputError>,
    ) -> (Vec<Target>, Vec<Job>) {
        let mut chosen: Vec<bool> = jobs.iter().map(|_| self.vms.is_empty()).collect();
        for glob in &self.vms {
            for i in matching(glob, batch, jobs, errors) {
                chosen[i] = true;
            }
        }
        let left_out: Vec<Job> = jobs
            .iter()
            .zip(&chosen)
            .filter(|(j, c)| **c && unfinished(j))
            .map(|(j, _)| j.clone())
            .collect();
        let targets: Vec<Target> = jobs
            .iter()
            .zip(chosen)
            .filter(|(j, c)| *c && configured(j))
            .map(|(job, _)| Target {
                job: job.clone(),
                spec: spec.clone(),
            })
            .collect();
        if self.vms.is_empty() && targets.is_empty() && left_out.is_empty() {
            errors.push(InputError::new(
                None,
                None,
                format!(
                    "batch {} configured no VM, so there is nothing to {}",
                    batch.id,
                    command_word(spec.operation())
                ),
            ));
        }
        (targets, left_out)
    }
}

/// The configured and unfinished jobs `glob` matches, by index; a glob that matches none of
/// them is a problem.
fn matching(glob: &str, batch: &Batch, jobs: &[Job], errors: &mut Vec<InputError>) -> Vec<usize> {
    let named: Vec<usize> = (0..jobs.len())
        .filter(|&i| glob_match(glob, jobs[i].vm_label()))
        .collect();
    if named.is_empty() {
        errors.push(InputError::new(
            None,
            None,
            format!(
                "--vm {glob}: matches no VM of batch {}{}",
                batch.id,
                suggestion(glob, jobs)
            ),
        ));
        return named;
    }
    let (ok, not): (Vec<usize>, Vec<usize>) = named
        .into_iter()
        .partition(|&i| configured(&jobs[i]) || unfinished(&jobs[i]));
    if ok.is_empty() {
        errors.push(InputError::new(
            None,
            None,
            format!(
                "--vm {glob}: matches only VMs batch {} did not configure: {}",
                batch.id,
                not_configured(not.iter().map(|&i| &jobs[i]))
            ),
        ));
    }
    ok
}

/// The configured job each CSV row names, with its change, and the unfinished ones rows name;
/// a VM the batch did not configure is a problem of the row.
fn from_rows(
    batch: &Batch,
    jobs: &[Job],
    rows: &[ChangeRow],
    errors: &mut Vec<InputError>,
) -> (Vec<Target>, Vec<Job>) {
    let mut targets = Vec::new();
    let mut left_out = Vec::new();
    for row in rows {
        let column = if row.vm.id.is_some() {
            "vm_id"
        } else {
            "vm_name"
        };
        // Two jobs may name one VM (a failed one and a later retry in the batch): the
        // configured one is the one meant, else one that may still configure it.
        let found = jobs
            .iter()
            .filter(|j| names(&row.vm, j))
            .max_by_key(|j| (configured(j), unfinished(j)));
        let vm = row.vm.display();
        match found {
            None => errors.push(InputError::new(
                Some(row.line),
                Some(column),
                format!(
                    "batch {} has no VM `{vm}`{}",
                    batch.id,
                    suggestion(vm, jobs)
                ),
            )),
            Some(job) if unfinished(job) => left_out.push(job.clone()),
            Some(job) if !configured(job) => errors.push(InputError::new(
                Some(row.line),
                Some(column),
                format!(
                    "batch {} did not configure VM `{vm}` (its job is {}): only the \
                     replications a batch configured can be reconfigured",
                    batch.id, job.state
                ),
            )),
            Some(job) if row.valid => targets.push(Target {
                job: job.clone(),
                spec: OperationSpec::Reconfigure(row.change.clone()),
            }),
            Some(_) => {}
        }
    }
    targets.sort_by_key(|t| t.job.id);
    left_out.sort_by_key(|j| j.id);
    (targets, left_out)
}

/// Whether `vm`, as a CSV row names it, is the VM of `job`: by id when the row gives one (ids
/// are unique, names need not be), else by name.
fn names(vm: &VmRef, job: &Job) -> bool {
    match (&vm.id, &vm.name) {
        (Some(id), _) => {
            job.checkpoint.vm_id.as_ref() == Some(id) || job.spec.vm.id.as_ref() == Some(id)
        }
        (None, Some(name)) => job.spec.vm.name.as_ref() == Some(name),
        (None, None) => false,
    }
}

/// `; did you mean `x`?` when a VM of the batch is named almost so.
fn suggestion(wanted: &str, jobs: &[Job]) -> String {
    let wanted = wanted.to_lowercase();
    jobs.iter()
        .map(|j| j.vm_label())
        .map(|name| (strsim::levenshtein(&wanted, &name.to_lowercase()), name))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| format!("; did you mean `{name}`?"))
        .or_else(|| {
            // A shell habit: `[12]` is a character class there, but VM names contain brackets.
            wanted.contains(['[', ']', '{']).then(|| {
                "; only `*` and `?` are wildcards, brackets and braces match themselves".into()
            })
        })
        .unwrap_or_default()
}

/// `web-03 (failed), web-04 (skipped)`, at most five named.
fn not_configured<'a>(jobs: impl Iterator<Item = &'a Job>) -> String {
    five(jobs.map(|j| format!("{} ({})", j.vm_label(), j.state)))
}

impl Prepared {
    /// Whether every target is removed on this site only (`undo --local-only`): the batch runs
    /// with the target site down, though `--plan` cannot read the replications without it.
    pub fn removes_locally(&self) -> bool {
        !self.targets.is_empty()
            && self.targets.iter().all(|t| {
                matches!(
                    t.spec,
                    OperationSpec::Unconfigure {
                        local_only: true,
                        ..
                    }
                )
            })
    }

    /// The batch's name: `undo of batch 3`, `pause of batch 3`.
    pub fn name(&self) -> String {
        format!(
            "{} of batch {}",
            command_word(self.operation),
            self.acts_on.id
        )
    }

    /// The VMs the request names that are not configured yet, and why, when there are any:
    /// refused ([`Refused::NotCovered`]) unless the request says `--only-finished` and some VM
    /// is configured, in which case the caller says what is left out.
    pub fn coverage(
        &self,
        queue: &Queue,
        liveness: &dyn Fn(&str) -> Liveness,
    ) -> Result<Option<LeftOut>, PrepareError> {
        if self.not_configured_yet.is_empty() {
            return Ok(None);
        }
        let left_out = LeftOut {
            operation: self.operation,
            batch: self.acts_on.id,
            covered: self.targets.len(),
            vms: self
                .not_configured_yet
                .iter()
                .map(|j| j.vm_label().to_string())
                .collect(),
            standing: queue.summary(self.acts_on.id, liveness)?.standing,
        };
        if self.request.only_finished && !self.targets.is_empty() {
            return Ok(Some(left_out));
        }
        Err(Refused::NotCovered(left_out).into())
    }

    /// What the operator asked, as the batch record keeps it: the settings (without what the
    /// queue decides, such as attempts) and the CSV's SHA-256. Two requests alike in this are
    /// the same command run again.
    pub(crate) fn asked(&self) -> (serde_json::Value, Option<String>) {
        let mut settings = json!({
            "operation": self.operation,
            "acts_on": self.acts_on.id,
        });
        if !self.request.vms.is_empty() {
            settings["vm"] = json!(self.request.vms);
        }
        if self.request.only_finished {
            settings["only_finished"] = json!(true);
        }
        let sha = match &self.request.asked {
            Asked::Each(spec) => {
                if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(spec) {
                    fields.into_iter().for_each(|(k, v)| settings[k] = v);
                }
                None
            }
            Asked::Csv { bytes, .. } => {
                settings["per_vm"] = json!("csv");
                Some(input::digest(bytes))
            }
        };
        (settings, sha)
    }

    /// The batch record: who asked, from where, and what, as the audit keeps it (no secrets:
    /// the request holds none), and the VMs an `--only-finished` operation left out.
    pub fn new_batch(&self, operator: String, host: String) -> NewBatch {
        let (mut settings, input_sha256) = self.asked();
        settings["max_attempts"] = json!(MAX_ATTEMPTS);
        if !self.not_configured_yet.is_empty() {
            let names: Vec<&str> = self.not_configured_yet.iter().map(Job::vm_label).collect();
            settings["left_out"] = json!(names);
        }
        let (input_kind, input_path) = match &self.request.asked {
            // A selection over a batch's VMs by name patterns: the nearest kind the queue knows.
            Asked::Each(_) => (InputKind::Inventory, None),
            Asked::Csv { path, .. } => (InputKind::Csv, Some(path.clone())),
        };
        NewBatch {
            name: self.name(),
            operator,
            host,
            input_kind,
            input_path,
            input_sha256,
            settings,
            max_attempts: MAX_ATTEMPTS,
        }
    }

    /// Creates the operation batch: all or nothing. A VM with an unfinished job elsewhere is a
    /// problem of the input, as for an import: one line per batch that holds some.
    pub fn create(
        &self,
        queue: &mut Queue,
        operator: String,
        host: String,
    ) -> Result<BatchId, PrepareError> {
        self.create_as(queue, &self.new_batch(operator, host))
    }

    /// [`create`](Self::create), recorded as `batch` says (an apply names its batches and marks
    /// them as its own, in the same write).
    pub fn create_as(&self, queue: &mut Queue, batch: &NewBatch) -> Result<BatchId, PrepareError> {
        let jobs: Vec<OperationJob> = self
            .targets
            .iter()
            .map(|t| OperationJob {
                acts_on_job: t.job.id,
                spec: t.spec.clone(),
            })
            .collect();
        queue
            .create_operation_batch(batch, self.operation, self.acts_on.id, &jobs)
            .map_err(|e| match e {
                QueueError::AlreadyQueued(vms) => {
                    let mut by_batch: std::collections::BTreeMap<BatchId, Vec<String>> =
                        Default::default();
                    for q in vms {
                        by_batch.entry(q.batch).or_default().push(q.vm);
                    }
                    PrepareError::Input(InputErrors(
                        by_batch
                            .into_iter()
                            .map(|(batch, vms)| {
                                InputError::new(
                                    None,
                                    None,
                                    format!(
                                        "{} {} an unfinished job in batch {batch}: {}; let it \
                                         finish (`vrbulk run --batch {batch}`), or `vrbulk \
                                         cancel --batch {batch}`",
                                        count(vms.len(), "VM"),
                                        if vms.len() == 1 { "has" } else { "have" },
                                        five(vms.into_iter())
                                    ),
                                )
                            })
                            .collect(),
                    ))
                }
                other => PrepareError::Queue(other),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::JobSpec;
    use crate::queue::{Checkpoint, Step};

    /// A queue with one configure batch: `app-1` and `app-2` configured, `db-1` failed.
    fn queue() -> (Queue, BatchId) {
        let mut q = Queue::open_in_memory().unwrap();
        let spec = |name: &str| JobSpec {
            line: None,
            vm: VmRef {
                name: Some(name.into()),
                id: None,
            },
            pairing: None,
            target_datastore: "ds".into(),
            storage_policy: None,
            replication_server: None,
            settings: Default::default(),
            change_ticket: None,
            notes: None,
        };
        let batch = NewBatch {
            name: "wave".into(),
            operator: "ops".into(),
            host: "jump".into(),
            input_kind: InputKind::Csv,
            input_path: None,
            input_sha256: None,
            settings: json!({}),
            max_attempts: 1,
        };
        let id = q
            .create_batch(&batch, &[spec("app-1"), spec("app-2"), spec("db-1")])
            .unwrap();
        let claimed = q
            .claim(Some(id), 3, "test", std::time::Duration::from_secs(60))
            .unwrap();
        for (i, job) in claimed.iter().enumerate() {
            let lease = job.lease().unwrap();
            if i == 2 {
                q.fail(&lease, "datastore full", None).unwrap();
                continue;
            }
            let checkpoint = Checkpoint {
                vm_id: Some(format!("VirtualMachine:vm-{i}:vc")),
                replication_id: Some(format!("GID-{i}")),
                ..Checkpoint::default()
            };
            for step in Step::ALL.into_iter().skip(1) {
                q.checkpoint(&lease, step, &checkpoint).unwrap();
            }
            q.succeed(&lease, checkpoint.replication_id.as_deref(), "configured")
                .unwrap();
        }
        (q, id)
    }

    fn request(acts_on: BatchId, vms: &[&str], asked: Asked) -> OperationRequest {
        OperationRequest {
            acts_on,
            vms: vms.iter().map(|s| s.to_string()).collect(),
            asked,
            only_finished: false,
        }
    }

    fn problems(e: PrepareError) -> Vec<String> {
        match e {
            PrepareError::Input(i) => i.0.iter().map(ToString::to_string).collect(),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn without_globs_every_configured_vm_is_a_target() {
        let (q, wave) = queue();
        let p = request(wave, &[], Asked::Each(OperationSpec::Pause))
            .prepare(&q)
            .unwrap();
        let names: Vec<&str> = p.targets.iter().map(Target::vm_name).collect();
        assert_eq!(names, ["app-1", "app-2"]);
        assert_eq!(p.targets[1].replication_id(), "GID-1");
        assert_eq!(p.name(), format!("pause of batch {wave}"));
        let record = p.new_batch("ops".into(), "jump".into());
        assert_eq!(record.settings["operation"], "pause");
        assert_eq!(record.settings["acts_on"], wave);
    }

    #[test]
    fn each_glob_must_match_a_vm_the_batch_configured() {
        let (q, wave) = queue();
        let err = request(
            wave,
            &["APP-2", "db-*", "web-*", "app-", "web-[12]"],
            Asked::Each(OperationSpec::Sync),
        )
        .prepare(&q)
        .unwrap_err();
        assert_eq!(
            problems(err),
            [
                "--vm db-*: matches only VMs batch 1 did not configure: db-1 (failed)",
                "--vm web-*: matches no VM of batch 1",
                "--vm app-: matches no VM of batch 1; did you mean `app-1`?",
                "--vm web-[12]: matches no VM of batch 1; only `*` and `?` are wildcards, \
                 brackets and braces match themselves",
            ]
        );
        let p = request(wave, &["APP-2"], Asked::Each(OperationSpec::Sync))
            .prepare(&q)
            .unwrap();
        assert_eq!(p.targets.len(), 1);
    }

    #[test]
    fn an_unknown_or_operation_batch_and_a_bad_change_are_reported_together() {
        let (mut q, wave) = queue();
        let bad = OperationSpec::Reconfigure(crate::domain::SettingsChange {
            rpo: Some(1),
            ..Default::default()
        });
        let err = request(9, &[], Asked::Each(bad)).prepare(&q).unwrap_err();
        let shown = problems(err);
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(shown[0].starts_with("--rpo: expected minutes"));
        assert_eq!(
            shown[1],
            "--batch 9: no such batch; the configure batches are: 1 \"wave\""
        );
        let paused = request(wave, &[], Asked::Each(OperationSpec::Pause))
            .prepare(&q)
            .unwrap()
            .create(&mut q, "ops".into(), "jump".into())
            .unwrap();
        let err = request(paused, &[], Asked::Each(OperationSpec::Resume))
            .prepare(&q)
            .unwrap_err();
        assert!(problems(err)[0]
            .contains("is a pause batch (it acted on batch 1: did you mean --batch 1?)"),);
    }

    #[test]
    fn a_csv_row_must_name_a_vm_the_batch_configured() {
        let (q, wave) = queue();
        let csv = "vm_name,rpo\napp-1,15\ndb-1,15\napp-3,15\napp-2,2\n";
        let asked = Asked::Csv {
            bytes: csv.as_bytes().to_vec(),
            path: "changes.csv".into(),
        };
        let err = request(wave, &[], asked).prepare(&q).unwrap_err();
        let shown = problems(err);
        assert_eq!(shown.len(), 3, "{shown:?}");
        assert!(shown[0].starts_with(
            "line 3, column vm_name: batch 1 did not configure VM `db-1` (its job is failed)"
        ));
        assert_eq!(
            shown[1],
            "line 4, column vm_name: batch 1 has no VM `app-3`; did you mean `app-1`?"
        );
        assert!(shown[2].starts_with("line 5, column rpo: expected minutes"));
    }

    #[test]
    fn a_csv_reconfigure_records_its_file_and_each_vms_change() {
        let (mut q, wave) = queue();
        let csv = "vm_name,rpo,quiesce\napp-2,15,\napp-1,,yes\n";
        let asked = Asked::Csv {
            bytes: csv.as_bytes().to_vec(),
            path: "/srv/changes.csv".into(),
        };
        let p = request(wave, &[], asked).prepare(&q).unwrap();
        assert_eq!(p.targets[0].vm_name(), "app-1", "in the batch's order");
        let record = p.new_batch("ops".into(), "jump".into());
        assert_eq!(record.input_path.as_deref(), Some("/srv/changes.csv"));
        assert_eq!(record.input_sha256.as_ref().map(String::len), Some(64));
        let id = p.create(&mut q, "ops".into(), "jump".into()).unwrap();
        let jobs = q.jobs(id).unwrap();
        assert_eq!(jobs.len(), 2);
        match &jobs[1].operation {
            Some(OperationSpec::Reconfigure(c)) => assert_eq!(c.rpo, Some(15)),
            other => panic!("{other:?}"),
        }
    }

    fn nobody(_: &str) -> Liveness {
        Liveness::Gone
    }

    #[test]
    fn vms_not_configured_yet_are_left_out_and_refused_unless_only_finished() {
        let (mut q, wave) = queue();
        q.requeue(wave, &[JobState::Failed], "retry").unwrap();
        let pause = Asked::Each(OperationSpec::Pause);
        // A glob that matches only the VM still to configure is no mistake: it is left out.
        let p = request(wave, &["db-*"], pause.clone()).prepare(&q).unwrap();
        assert!(p.targets.is_empty());
        assert_eq!(p.not_configured_yet[0].vm_label(), "db-1");

        let p = request(wave, &[], pause.clone()).prepare(&q).unwrap();
        assert_eq!(p.targets.len(), 2);
        let refused = p.coverage(&q, &nobody).unwrap_err().to_string();
        assert_eq!(
            refused,
            "1 VM of batch 1 is not configured yet (batch 1 has not run yet): this pause would \
             cover only the 2 VMs configured so far. Not covered: db-1. `vrbulk run --batch 1` \
             finishes the configure batch first (a VM whose configure was in flight when its \
             run stopped may have a replication already); --only-finished acts on the 2 VMs \
             configured and leaves the others"
        );

        let only = OperationRequest {
            only_finished: true,
            ..request(wave, &[], pause.clone())
        };
        let p = only.prepare(&q).unwrap();
        let left_out = p.coverage(&q, &nobody).unwrap().unwrap();
        assert_eq!(left_out.vms, ["db-1"]);
        let record = p.new_batch("ops".into(), "jump".into());
        assert_eq!(record.settings["only_finished"], true);
        assert_eq!(record.settings["left_out"], json!(["db-1"]));
        // Nothing configured among those named: nothing to act on, --only-finished or not.
        let none = OperationRequest {
            only_finished: true,
            ..request(wave, &["db-*"], pause)
        };
        let err = none.prepare(&q).unwrap().coverage(&q, &nobody).unwrap_err();
        assert!(
            err.to_string().contains("none of the VMs this pause names"),
            "{err}"
        );
    }

    #[test]
    fn a_live_run_on_the_batch_is_named_and_waited_for() {
        let (mut q, wave) = queue();
        q.requeue(wave, &[JobState::Failed], "retry").unwrap();
        q.start_run("r1", wave, "jump:42:r1", "run", None).unwrap();
        let alive = |owner: &str| {
            if owner == "jump:42:r1" {
                Liveness::Alive
            } else {
                Liveness::Gone
            }
        };
        let p = request(wave, &[], Asked::Each(OperationSpec::Sync))
            .prepare(&q)
            .unwrap();
        let err = p.coverage(&q, &alive).unwrap_err().to_string();
        assert!(
            err.starts_with("1 VM of batch 1 is still being configured by a live run (jump:42:r1)"),
            "{err}"
        );
        assert!(err.contains("--wait waits for that run to end"), "{err}");

        // The run ends: the wait ends, and says how the batch stands.
        q.finish_run("r1", "interrupted", 0).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let mut heard = 0;
        let standing = rt
            .block_on(wait_while_configuring(
                &q,
                wave,
                &alive,
                Duration::from_millis(1),
                |_, _| heard += 1,
            ))
            .unwrap();
        assert!(
            matches!(standing, Standing::Interrupted { .. }),
            "{standing:?}"
        );
        assert_eq!(heard, 0, "nothing to wait for");
    }
}
