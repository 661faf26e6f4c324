//! A day-2 command run again. After a Ctrl-C, a crash or a `kill -9`, an operator types the same
//! command again: it finds its own unfinished batch (the same operation on the same configure
//! batch, asked the same way: the same `--vm` globs, flags or CSV) and resumes it, instead of
//! creating a second batch over the same replications, which the queue would refuse VM by VM.
//!
//! An unfinished operation batch that holds some of the same VMs but was asked otherwise is
//! named with what differs and how to finish or cancel it ([`Refused::Differs`]); the same
//! request's batch that a live run works on is left to that run ([`Refused::Running`]). Which
//! batch is which is read from the batch records (`Prepared::asked`), the audit's own words.

use std::collections::{BTreeSet, HashSet};

use serde_json::Value;

use super::day2::{a_command, last_run, Difference, PrepareError, Prepared, Refused};
use crate::domain::Operation;
use crate::queue::{Batch, JobId, Liveness, Queue, Standing};

/// The unfinished batch of the same request, which no live run works on: resume it.
#[derive(Debug, Clone)]
pub struct Resumable {
    pub batch: Batch,
    pub standing: Standing,
    /// Its jobs not ended, and all of them.
    pub left: u64,
    pub total: u64,
    /// VMs the request names now that the batch does not hold (configured since it was made).
    pub not_in_it: usize,
}

impl Resumable {
    /// The one line that says what is resumed and why it was left.
    pub fn line(&self) -> String {
        let b = &self.batch;
        let mut line = format!(
            "resuming batch {} \"{}\" ({} of {} jobs left), which {}",
            b.id,
            b.name,
            self.left,
            self.total,
            last_run(&self.standing)
        );
        if self.not_in_it > 0 {
            line.push_str(&format!(
                "; {} configured since {} not in it: run this command again once it is done",
                if self.not_in_it == 1 {
                    "1 VM".to_string()
                } else {
                    format!("{} VMs", self.not_in_it)
                },
                if self.not_in_it == 1 { "is" } else { "are" }
            ));
        }
        line
    }
}

/// The unfinished operation batch on `prepared`'s configure batch that this request made
/// before, when there is one to resume; refused when a live run works on it, or when another
/// unfinished batch holds some of the same VMs. `None`: create a new batch.
pub fn unfinished_batch(
    prepared: &Prepared,
    queue: &Queue,
    liveness: &dyn Fn(&str) -> Liveness,
) -> Result<Option<Resumable>, PrepareError> {
    let (asked, sha) = prepared.asked();
    let ours: HashSet<JobId> = prepared.targets.iter().map(|t| t.job.id).collect();
    let mut differ = Vec::new();
    // Newest first: the last one made is the one an operator means.
    for batch in queue.operations_on(prepared.acts_on.id)?.into_iter().rev() {
        let summary = queue.summary(batch.id, liveness)?;
        if summary.left() == 0 {
            continue;
        }
        let jobs = queue.jobs(batch.id)?;
        let what = differences(&batch, &asked, sha.as_deref());
        if what.is_empty() {
            if let Standing::Running { owners, .. } = summary.standing {
                return Err(Refused::Running { batch, owners }.into());
            }
            let theirs: HashSet<JobId> = jobs.iter().filter_map(|j| j.acts_on_job).collect();
            return Ok(Some(Resumable {
                not_in_it: ours.difference(&theirs).count(),
                left: summary.left(),
                total: jobs.len() as u64,
                standing: summary.standing,
                batch,
            }));
        }
        let overlap = jobs
            .iter()
            .filter(|j| !j.state.is_terminal())
            .filter_map(|j| j.acts_on_job)
            .filter(|id| ours.contains(id))
            .count();
        if overlap > 0 {
            differ.push(Difference {
                running: matches!(summary.standing, Standing::Running { .. }),
                batch,
                overlap,
                what,
            });
        }
    }
    if differ.is_empty() {
        Ok(None)
    } else {
        Err(Refused::Differs(differ).into())
    }
}

/// Keys of a batch's settings the queue decides, or that record an outcome: not the request.
const NOT_ASKED: [&str; 2] = ["max_attempts", "left_out"];

/// What differs between how `batch` was asked for and `asked` (with the CSV's SHA-256), in the
/// commands' flags; empty when they are the same request.
fn differences(batch: &Batch, asked: &Value, sha: Option<&str>) -> Vec<String> {
    let empty = serde_json::Map::new();
    let theirs = batch.settings.as_object().unwrap_or(&empty);
    let ours = asked.as_object().unwrap_or(&empty);
    let keys: BTreeSet<&String> = theirs
        .keys()
        .chain(ours.keys())
        .filter(|k| !NOT_ASKED.contains(&k.as_str()))
        .collect();
    let id = batch.id;
    let mut what: Vec<String> = keys
        .into_iter()
        .filter(|k| theirs.get(*k) != ours.get(*k))
        .map(|k| {
            let (a, b) = (theirs.get(k), ours.get(k));
            if k == "operation" {
                return format!("batch {id} is {}, this command {}", word(a), word(b));
            }
            format!("{}: {} in batch {id}, {} here", flag(k), shown(a), shown(b))
        })
        .collect();
    if batch.input_sha256.as_deref() != sha && (batch.input_sha256.is_some() && sha.is_some()) {
        what.push(format!(
            "the CSV: another file's content in batch {id} (SHA-256 {}…)",
            batch
                .input_sha256
                .as_deref()
                .unwrap_or_default()
                .get(..12)
                .unwrap_or_default()
        ));
    }
    what
}

/// `undo`, `pause`: an `operation` setting as the operator's command.
fn word(v: Option<&Value>) -> String {
    v.cloned()
        .and_then(|v| serde_json::from_value::<Operation>(v).ok())
        .map(a_command)
        .unwrap_or_else(|| "another operation".into())
}

/// The flag that sets a recorded setting.
fn flag(key: &str) -> String {
    match key {
        "retain_replica_disks" => "--keep-replica-disks".into(),
        "per_vm" => "a CSV of changes".into(),
        other => format!("--{}", other.replace('_', "-")),
    }
}

fn shown(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "not given".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| shown(Some(i)))
            .collect::<Vec<_>>()
            .join(" "),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn batch(settings: Value, sha: Option<&str>) -> Batch {
        Batch {
            id: 2,
            name: "undo of batch 1".into(),
            created_at: 0,
            operator: "ops".into(),
            host: "jump".into(),
            input_kind: "inventory".into(),
            input_path: None,
            input_sha256: sha.map(Into::into),
            settings,
            tool_version: "0".into(),
            operation: Operation::Unconfigure,
            acts_on: Some(1),
        }
    }

    #[test]
    fn the_same_request_differs_in_nothing_but_what_the_queue_decides() {
        let asked = json!({"operation": "unconfigure", "acts_on": 1,
            "retain_replica_disks": false, "local_only": false});
        let mut recorded = asked.clone();
        recorded["max_attempts"] = json!(5);
        recorded["left_out"] = json!(["db-1"]);
        assert!(differences(&batch(recorded, None), &asked, None).is_empty());
    }

    #[test]
    fn what_differs_is_said_in_the_commands_flags() {
        let recorded = json!({"operation": "unconfigure", "acts_on": 1, "vm": ["web-*"],
            "retain_replica_disks": true, "local_only": false, "max_attempts": 5});
        let asked = json!({"operation": "unconfigure", "acts_on": 1,
            "retain_replica_disks": false, "local_only": false, "only_finished": true});
        assert_eq!(
            differences(&batch(recorded, None), &asked, None),
            [
                "--only-finished: not given in batch 2, true here",
                "--keep-replica-disks: true in batch 2, false here",
                "--vm: web-* in batch 2, not given here",
            ]
        );
        let pause = json!({"operation": "pause", "acts_on": 1});
        let said = differences(
            &batch(pause, None),
            &json!({"operation": "unconfigure",
            "acts_on": 1}),
            None,
        );
        assert_eq!(said, ["batch 2 is a pause, this command an undo"]);
        let csv = json!({"operation": "reconfigure", "acts_on": 1, "per_vm": "csv"});
        let said = differences(
            &batch(csv.clone(), Some("ab12ab12ab12ff")),
            &csv,
            Some("cd34"),
        );
        assert_eq!(
            said,
            ["the CSV: another file's content in batch 2 (SHA-256 ab12ab12ab12…)"]
        );
    }
}
