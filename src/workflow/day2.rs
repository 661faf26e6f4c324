//! What a day-2 operation acts on, and the batch that records it. The operator names a configure
//! batch and, optionally, VM name globs, or hands a reconfigure CSV; [`OperationRequest::prepare`]
//! turns that into the batch's configured jobs, each with what to do to its replication
//! ([`Target`]), or into every problem at once ([`InputErrors`]: exit 2, nothing written). The
//! queue creates the batch ([`Prepared::create`]), the runner runs it, [`super::operation_plan`]
//! previews it. Nothing here touches the network.

use serde_json::json;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::domain::{Operation, OperationSpec, VmRef};
use crate::input::{self, glob_match, ChangeRow, InputError, InputErrors};
use crate::queue::{
    Batch, BatchId, InputKind, Job, JobState, NewBatch, OperationJob, Queue, QueueError,
};

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
    request: OperationRequest,
}

/// Why a request was not turned into a batch. Nothing was written.
#[derive(Debug, Error)]
pub enum PrepareError {
    /// The operator's input: every problem of it.
    #[error(transparent)]
    Input(InputErrors),

    #[error("reading the job queue")]
    Queue(#[source] QueueError),
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

/// Whether the configure job `job` left a replication that an operation can act on.
fn configured(job: &Job) -> bool {
    job.state == JobState::Succeeded && job.checkpoint.replication_id.is_some()
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
        if let Some(batch) = &batch {
            let jobs = queue.jobs(batch.id)?;
            targets = match &self.asked {
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

    /// The configured jobs whose VM names match the globs (all without globs): each glob must
    /// match a VM the batch configured.
    fn select(
        &self,
        batch: &Batch,
        jobs: &[Job],
        spec: &OperationSpec,
        errors: &mut Vec<InputError>,
    ) -> Vec<Target> {
        let mut chosen: Vec<bool> = jobs
            .iter()
            .map(|j| self.vms.is_empty() && configured(j))
            .collect();
        for glob in &self.vms {
            for i in matching(glob, batch, jobs, errors) {
                chosen[i] = true;
            }
        }
        if self.vms.is_empty() && !chosen.contains(&true) {
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
        jobs.iter()
            .zip(chosen)
            .filter(|(_, c)| *c)
            .map(|(job, _)| Target {
                job: job.clone(),
                spec: spec.clone(),
            })
            .collect()
    }
}

/// The configured jobs `glob` matches, by index; a glob that matches none of them is a problem.
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
    let (ok, not): (Vec<usize>, Vec<usize>) =
        named.into_iter().partition(|&i| configured(&jobs[i]));
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

/// The configured job each CSV row names, with its change; a VM the batch did not configure is
/// a problem of the row.
fn from_rows(
    batch: &Batch,
    jobs: &[Job],
    rows: &[ChangeRow],
    errors: &mut Vec<InputError>,
) -> Vec<Target> {
    let mut targets = Vec::new();
    for row in rows {
        let column = if row.vm.id.is_some() {
            "vm_id"
        } else {
            "vm_name"
        };
        // Two jobs may name one VM (a failed one and a later retry in the batch): the
        // configured one is the one meant.
        let found = jobs
            .iter()
            .filter(|j| names(&row.vm, j))
            .max_by_key(|j| configured(j));
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
    targets
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
    let all: Vec<String> = jobs
        .map(|j| format!("{} ({})", j.vm_label(), j.state))
        .collect();
    let more = all.len().saturating_sub(5);
    let mut shown = all.into_iter().take(5).collect::<Vec<_>>().join(", ");
    if more > 0 {
        shown.push_str(&format!(" and {more} more"));
    }
    shown
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

    /// The batch record: who asked, from where, and what, as the audit keeps it (no secrets:
    /// the request holds none).
    pub fn new_batch(&self, operator: String, host: String) -> NewBatch {
        let mut settings = json!({
            "operation": self.operation,
            "acts_on": self.acts_on.id,
            "max_attempts": MAX_ATTEMPTS,
        });
        if !self.request.vms.is_empty() {
            settings["vm"] = json!(self.request.vms);
        }
        let (input_kind, input_path, input_sha256) = match &self.request.asked {
            Asked::Each(spec) => {
                if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(spec) {
                    fields.into_iter().for_each(|(k, v)| settings[k] = v);
                }
                // A selection over a batch's VMs by name patterns: the nearest kind the queue
                // knows.
                (InputKind::Inventory, None, None)
            }
            Asked::Csv { bytes, path } => {
                settings["per_vm"] = json!("csv");
                let sha: String = Sha256::digest(bytes)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                (InputKind::Csv, Some(path.clone()), Some(sha))
            }
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
    /// problem of the input, as for an import.
    pub fn create(
        &self,
        queue: &mut Queue,
        operator: String,
        host: String,
    ) -> Result<BatchId, PrepareError> {
        let jobs: Vec<OperationJob> = self
            .targets
            .iter()
            .map(|t| OperationJob {
                acts_on_job: t.job.id,
                spec: t.spec.clone(),
            })
            .collect();
        let batch = self.new_batch(operator, host);
        queue
            .create_operation_batch(&batch, self.operation, self.acts_on.id, &jobs)
            .map_err(|e| match e {
                QueueError::AlreadyQueued(vms) => PrepareError::Input(InputErrors(
                    vms.iter()
                        .map(|q| {
                            InputError::new(
                                None,
                                None,
                                format!(
                                    "VM `{}` has an unfinished job in batch {}: let it finish \
                                     (`vrbulk run --batch {1}`), or `vrbulk cancel --batch {1}`",
                                    q.vm, q.batch
                                ),
                            )
                        })
                        .collect(),
                )),
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
}
