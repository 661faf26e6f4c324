//! Protection as code: the desired state of one pairing's protection. A desired-state file
//! (TOML) holds rows in the import's CSV columns, one VM each, and rules that select VMs of the
//! live inventory by name pattern, with exclusions and a settings profile each; a VM a row
//! names is the row's, whatever rule matches it, and a VM two rules match is the first rule's
//! ([`Desired::resolve`]). Which replications vrbulk created is the queue's record
//! ([`Created`]): a configure job that succeeded with that replication id. [`diff`] compares
//! the file with what the appliance shows; [`export`] writes what it shows as such a file.

mod diff;
mod export;

pub use diff::{
    diff, differences, read_live, read_protection, reconfigure_csvs, Action, Change, Diff, DiffRow,
    Live, LiveError, Work,
};
pub use export::{export, ExportError};

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::domain::{JobSpec, Operation, VmRef};
use crate::input::{self, glob_match, Defaults, InputError, InputErrors};
use crate::queue::{JobId, JobState, Queue, QueueError};
use crate::vr::model::VirtualMachine;

/// The desired-state file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileText {
    pairing: Option<String>,
    rows: Option<String>,
    #[serde(default)]
    defaults: Defaults,
    #[serde(default, rename = "rule")]
    rules: Vec<RuleText>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleText {
    name: Option<String>,
    #[serde(rename = "match")]
    patterns: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    profile: Defaults,
}

/// A desired-state file, every part of it checked.
#[derive(Debug, Clone)]
pub struct Desired {
    /// Where it was read from, as the batches record it.
    pub path: String,
    pub sha256: String,
    /// The pairing it describes (remote vCenter name or pairing id); `None`: the only one.
    pub pairing: Option<String>,
    /// One per row, in file order.
    pub rows: Vec<JobSpec>,
    pub rules: Vec<Rule>,
}

/// VMs of the live inventory by name pattern, and what to protect them with.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub patterns: Vec<String>,
    pub exclude: Vec<String>,
    /// The rule's profile over the file's `[defaults]`.
    pub profile: Defaults,
}

/// Why a desired-state file could not be read.
#[derive(Debug, Error)]
pub enum DesiredError {
    /// The file: every problem of it (exit 2).
    #[error(transparent)]
    Input(#[from] InputErrors),

    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn problem(column: Option<&str>, message: impl Into<String>) -> InputError {
    InputError::new(None, column, message)
}

impl Desired {
    /// Reads and checks the file at `path`: the TOML, the rows (the import's own rules, line
    /// numbers counted within `rows`), each rule's patterns and profile. Every problem at once.
    pub fn read(path: &Path) -> Result<Desired, DesiredError> {
        let bytes = std::fs::read(path).map_err(|source| DesiredError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let mut desired = Desired::parse(&bytes)?;
        desired.path = shown.display().to_string();
        Ok(desired)
    }

    /// The file's content, checked; `path` left empty.
    pub fn parse(bytes: &[u8]) -> Result<Desired, DesiredError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| InputErrors(vec![problem(None, format!("not UTF-8: {e}"))]))?;
        let file: FileText = toml::from_str(text)
            .map_err(|e| InputErrors(vec![problem(None, e.to_string().trim().to_string())]))?;
        let mut errors = Vec::new();
        let pairing = file.pairing.clone().filter(|p| !p.trim().is_empty());
        let defaults = Defaults {
            pairing: pairing.clone(),
            ..file.defaults.clone()
        };
        if file.defaults.pairing.is_some() {
            errors.push(problem(
                Some("pairing"),
                "[defaults] pairing: the file names its pairing once, in its top-level `pairing`",
            ));
        }
        let rows = match &file.rows {
            None => Vec::new(),
            Some(csv) => match input::parse_csv(csv.trim_start().as_bytes(), &defaults) {
                Ok(rows) => rows,
                Err(InputErrors(found)) => {
                    errors.extend(found.into_iter().map(|mut e| {
                        e.message = format!("rows: {}", e.message);
                        e
                    }));
                    Vec::new()
                }
            },
        };
        for row in &rows {
            let same = match (&row.pairing, &pairing) {
                (Some(r), Some(p)) => r.eq_ignore_ascii_case(p),
                (r, p) => r == p,
            };
            if !same {
                errors.push(InputError::new(
                    row.line,
                    Some("pairing"),
                    format!(
                        "rows: this file describes pairing {}; a row cannot name another",
                        pairing.as_deref().unwrap_or("(the only one)")
                    ),
                ));
            }
        }
        let mut rules = Vec::new();
        for (i, rule) in file.rules.into_iter().enumerate() {
            let name = rule.name.unwrap_or_else(|| format!("rule {}", i + 1));
            let profile = rule.profile.over(&defaults);
            let mut found = Vec::new();
            if rule.profile.pairing.is_some() {
                found.push(problem(
                    Some("pairing"),
                    "a rule's profile cannot name a pairing: the file names its pairing once",
                ));
            }
            if let Err(InputErrors(e)) = input::check_selection(&rule.patterns, &rule.exclude) {
                found.extend(e);
            }
            // The profile by the import's rules, on a VM that stands for those it will select.
            let probe = VmRef {
                name: Some("probe".into()),
                id: None,
            };
            if let Err(InputErrors(e)) = input::jobs_for_inventory([probe], &profile) {
                found.extend(e);
            }
            errors.extend(found.into_iter().map(|mut e| {
                e.message = format!("[[rule]] \"{name}\": {}", e.message);
                e
            }));
            rules.push(Rule {
                name,
                patterns: rule.patterns,
                exclude: rule.exclude,
                profile,
            });
        }
        if file.rows.is_none() && rules.is_empty() {
            errors.push(problem(
                None,
                "the file names no VM: give `rows` (the import's CSV columns) or a [[rule]]",
            ));
        }
        if !errors.is_empty() {
            return Err(InputErrors(errors).into());
        }
        Ok(Desired {
            path: String::new(),
            sha256: input::digest(bytes),
            pairing,
            rows,
            rules,
        })
    }

    /// The VMs this file wants protected among `vms` (the pairing's source VMs), each with its
    /// job, and the rows whose VM the inventory does not give, with why.
    pub fn resolve(&self, vms: &[VirtualMachine]) -> Resolved {
        let mut by_name: HashMap<&str, Vec<&VirtualMachine>> = HashMap::new();
        for vm in vms {
            by_name.entry(vm.name.as_str()).or_default().push(vm);
        }
        let by_id: HashMap<&str, &VirtualMachine> =
            vms.iter().map(|v| (v.id.as_str(), v)).collect();
        let mut wanted = Vec::new();
        let mut missing = Vec::new();
        let mut taken: HashSet<String> = HashSet::new();
        for row in &self.rows {
            let found = match (&row.vm.id, &row.vm.name) {
                (Some(id), _) => by_id
                    .get(id.as_str())
                    .copied()
                    .ok_or_else(|| format!("no VM with id {id} on the source vCenter")),
                (None, Some(name)) => match by_name.get(name.as_str()).map(Vec::as_slice) {
                    Some([one]) => Ok(*one),
                    Some(many) if many.len() > 1 => Err(format!(
                        "{} VMs are named `{name}`: name this one by its vm_id",
                        many.len()
                    )),
                    _ => Err(format!("no VM named `{name}` on the source vCenter")),
                },
                (None, None) => Err("the row names no VM".to_string()),
            };
            match found {
                Ok(vm) if !taken.insert(vm.id.clone()) => missing.push(Missing {
                    vm_name: row.vm.display().to_string(),
                    line: row.line,
                    reason: format!("another row names VM {} already", vm.name),
                }),
                Ok(vm) => wanted.push(Wanted::new(vm, row.clone(), Origin::Row(row.line))),
                Err(reason) => missing.push(Missing {
                    vm_name: row.vm.display().to_string(),
                    line: row.line,
                    reason,
                }),
            }
        }
        for rule in &self.rules {
            for vm in vms {
                // A template cannot be replicated: a rule over `*` does not ask for it.
                if vm.template == Some(true)
                    || taken.contains(&vm.id)
                    || !rule.patterns.iter().any(|p| glob_match(p, &vm.name))
                    || rule.exclude.iter().any(|p| glob_match(p, &vm.name))
                {
                    continue;
                }
                let vm_ref = VmRef {
                    name: Some(vm.name.clone()),
                    id: Some(vm.id.clone()),
                };
                // The profile passed the same call when the file was read.
                let Ok(mut jobs) = input::jobs_for_inventory([vm_ref], &rule.profile) else {
                    continue;
                };
                let Some(spec) = jobs.pop() else { continue };
                taken.insert(vm.id.clone());
                wanted.push(Wanted::new(vm, spec, Origin::Rule(rule.name.clone())));
            }
        }
        Resolved { wanted, missing }
    }
}

/// Where a VM's desired protection comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A row, by its line within `rows`.
    Row(Option<u64>),
    Rule(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Row(Some(line)) => write!(f, "row {line}"),
            Origin::Row(None) => write!(f, "row"),
            Origin::Rule(name) => write!(f, "rule \"{name}\""),
        }
    }
}

/// A VM the file wants protected, found in the inventory.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub vm_id: String,
    pub vm_name: String,
    /// Its job, naming the VM by id as well as by name.
    pub spec: JobSpec,
    pub from: Origin,
}

impl Wanted {
    fn new(vm: &VirtualMachine, mut spec: JobSpec, from: Origin) -> Wanted {
        spec.vm = VmRef {
            name: Some(vm.name.clone()),
            id: Some(vm.id.clone()),
        };
        Wanted {
            vm_id: vm.id.clone(),
            vm_name: vm.name.clone(),
            spec,
            from,
        }
    }
}

/// A row whose VM the inventory does not give (or gives twice).
#[derive(Debug, Clone)]
pub struct Missing {
    pub vm_name: String,
    pub line: Option<u64>,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Resolved {
    pub wanted: Vec<Wanted>,
    pub missing: Vec<Missing>,
}

/// A replication vrbulk created: the configure job that recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub batch: i64,
    pub job: JobId,
    pub spec: JobSpec,
}

/// The replications vrbulk created, by replication id: the queue's record of configure jobs that
/// succeeded with a replication. One removed since (by an undo, or outside vrbulk) is simply
/// no longer on the appliance, and one configured for the VM since by someone else has another
/// id, so matching the live list by id is what says "ours".
#[derive(Debug, Clone, Default)]
pub struct Created(pub HashMap<String, Recorded>);

impl Created {
    /// What the queue at `db` records; nothing when there is no queue yet.
    pub fn read(db: &Path) -> Result<Created, QueueError> {
        if !db.exists() {
            return Ok(Created::default());
        }
        Created::of(&Queue::open_read_only(db)?)
    }

    pub fn of(queue: &Queue) -> Result<Created, QueueError> {
        let mut created = HashMap::new();
        for batch in queue.batches()? {
            if batch.operation != Operation::Configure {
                continue;
            }
            for job in queue.jobs(batch.id)? {
                if job.state != JobState::Succeeded {
                    continue;
                }
                if let Some(rep) = job.checkpoint.replication_id.clone() {
                    created.insert(
                        rep,
                        Recorded {
                            batch: batch.id,
                            job: job.id,
                            spec: job.spec,
                        },
                    );
                }
            }
        }
        Ok(Created(created))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SettingsChange;
    use crate::vr::model::ReplicationInfo;

    fn vm(id: &str, name: &str) -> VirtualMachine {
        VirtualMachine {
            id: id.into(),
            name: name.into(),
            power_state: None,
            connection_state: None,
            template: None,
            managed_by_info: None,
            vr_privilege_granted: None,
            disks: None,
        }
    }

    const FILE: &str = r#"
pairing = "vc-site-b"
rows = '''
vm_name,target_datastore,rpo
db-01,ds-gold,15
'''
[defaults]
target_datastore = "ds-silver"

[[rule]]
name = "web"
match = ["web-*", "db-*"]
exclude = ["web-test-*"]
[rule.profile]
rpo = 30
"#;

    #[test]
    fn rows_win_over_rules_and_exclusions_keep_vms_out() {
        let desired = Desired::parse(FILE.as_bytes()).unwrap();
        let vms = [
            vm("vm-1", "db-01"),
            vm("vm-2", "web-01"),
            vm("vm-3", "web-test-01"),
            vm("vm-4", "app-01"),
        ];
        let resolved = desired.resolve(&vms);
        let got: Vec<(String, u32, String, String)> = resolved
            .wanted
            .iter()
            .map(|w| {
                (
                    w.vm_name.clone(),
                    w.spec.settings.rpo,
                    w.spec.target_datastore.clone(),
                    w.from.to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("db-01".into(), 15, "ds-gold".into(), "row 2".into()),
                (
                    "web-01".into(),
                    30,
                    "ds-silver".into(),
                    "rule \"web\"".into()
                ),
            ]
        );
        assert_eq!(
            resolved.wanted[0].spec.pairing.as_deref(),
            Some("vc-site-b")
        );
    }

    #[test]
    fn the_sample_file_reads() {
        let sample = Desired::parse(include_bytes!("../../../samples/desired.toml")).unwrap();
        assert_eq!(sample.rows.len(), 2);
        assert_eq!(sample.rules.len(), 3);
        assert_eq!(sample.rules[2].profile.rpo, Some(240));
        assert_eq!(
            sample.rules[0].profile.target_datastore.as_deref(),
            Some("ds-silver-01"),
            "a profile falls back to the file's [defaults]"
        );
    }

    #[test]
    fn every_problem_of_the_file_at_once() {
        let bad = r#"
rows = '''
vm_name,target_datastore,rpo
db-01,ds-gold,2
'''
[[rule]]
match = ["web-*"]
[rule.profile]
rpo = 30
"#;
        let Err(DesiredError::Input(errors)) = Desired::parse(bad.as_bytes()) else {
            panic!("refused")
        };
        let text = errors.to_string();
        assert!(text.contains("rows:"), "{text}");
        assert!(text.contains("rule 1"), "{text}");
        assert!(text.contains("target_datastore"), "{text}");
        let Err(DesiredError::Input(_)) = Desired::parse(b"colour = 1") else {
            panic!("unknown keys refused")
        };
    }

    fn replication(rpo: i64, quiesce: bool) -> ReplicationInfo {
        ReplicationInfo {
            id: "GID-1".into(),
            vm_id: Some("vm-1".into()),
            rpo: Some(rpo),
            quiescing_enabled: Some(quiesce),
            network_compression_enabled: Some(false),
            encryption_enabled: Some(false),
            auto_replicate_new_disks_enabled: Some(false),
            mpit_enabled: Some(false),
            ..ReplicationInfo::default()
        }
    }

    #[test]
    fn differences_say_old_and_new_and_change_only_those() {
        let desired = Desired::parse(FILE.as_bytes()).unwrap();
        let spec = &desired.rows[0];
        let (changes, change) = differences(spec, &replication(60, true));
        let said: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(said, ["rpo 60 → 15", "quiesce on → off"]);
        assert_eq!(
            change,
            SettingsChange {
                rpo: Some(15),
                quiesce: Some(false),
                ..SettingsChange::default()
            }
        );
        let (none, empty) = differences(spec, &replication(15, false));
        assert!(none.is_empty() && empty.is_empty(), "{none:?}");
    }

    #[test]
    fn only_replications_vrbulk_created_are_changed_or_removed() {
        let desired = Desired::parse(FILE.as_bytes()).unwrap();
        let vms = [
            vm("vm-1", "db-01"),
            vm("vm-5", "old-01"),
            vm("vm-6", "other-01"),
        ];
        let resolved = desired.resolve(&vms);
        let mut old = replication(15, false);
        old.id = "GID-5".into();
        old.vm_id = Some("vm-5".into());
        let mut other = old.clone();
        other.id = "GID-6".into();
        other.vm_id = Some("vm-6".into());
        let live = Live {
            remote_vc: "vc-site-b".into(),
            vms: vms.to_vec(),
            replications: HashMap::from([
                ("vm-1".to_string(), replication(60, false)),
                ("vm-5".to_string(), old),
                ("vm-6".to_string(), other),
            ]),
            configure_verdicts: HashMap::new(),
            calls: 0,
            target: None,
        };
        let recorded = |batch| Recorded {
            batch,
            job: 1,
            spec: desired.rows[0].clone(),
        };
        let created = Created(HashMap::from([("GID-5".to_string(), recorded(2))]));
        let d = diff(&resolved, &live, &created, &[]);
        let actions: Vec<(&str, Action)> = d
            .rows
            .iter()
            .map(|r| (r.vm_name.as_str(), r.action))
            .collect();
        assert_eq!(
            actions,
            [
                ("db-01", Action::Cannot),
                ("old-01", Action::Remove),
                ("other-01", Action::NotManaged),
            ]
        );
        assert!(d.rows[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("not created by vrbulk"));
        let created = Created(HashMap::from([
            ("GID-1".to_string(), recorded(1)),
            ("GID-5".to_string(), recorded(2)),
        ]));
        let d = diff(&resolved, &live, &created, &["other-*".to_string()]);
        assert_eq!(d.rows[0].action, Action::Reconfigure);
        assert_eq!(d.rows[2].action, Action::Remove);
        let csvs = reconfigure_csvs(&d.rows).unwrap();
        assert_eq!(
            String::from_utf8(csvs[&1].clone()).unwrap(),
            "vm_id,rpo,mpit_instances,mpit_days,quiesce,network_compression,lwd_encryption,\
             auto_replicate_new_disks,storage_policy,replication_server\nvm-1,15,,,,,,,,\n"
        );
    }
}
