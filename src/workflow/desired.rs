//! Protection as code: the desired state of one pairing's protection, and how the appliance
//! differs from it. A desired-state file (TOML) holds rows in the import's CSV columns, one VM
//! each, and rules that select VMs of the live inventory by name pattern, with exclusions and a
//! settings profile each; a VM a row names is the row's, whatever rule matches it, and a VM two
//! rules match is the first rule's. [`read_live`] reads what is (the pairing's VMs and
//! replications, and for the VMs to configure the plan's own lookups and capacity count);
//! [`diff`] says per VM what would make it so. Which replications vrbulk created is the queue's
//! record ([`Created`]): a configure job that succeeded with that replication id. Only those
//! are ever proposed for a reconfigure or a removal; another tool's are left alone unless the
//! operator adopts them by name.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::operations::refusal;
use super::protection::status_name;
use super::{plan_jobs, Discovery, PlanAction, PlanError};
use crate::domain::{CapacityLimits, JobSpec, Operation, SettingsChange, VmRef};
use crate::input::{self, glob_match, Column, Defaults, InputError, InputErrors};
use crate::queue::{Checkpoint, Job, JobId, JobState, LearntLimit, Queue, QueueError, Step};
use crate::vr::model::{ReplicationInfo, VirtualMachine};
use crate::vr::{ApiError, Client};

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

/// Why a desired-state file (or the state around it) could not be read.
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

    #[error(transparent)]
    Queue(#[from] QueueError),

    #[error("reading the live state")]
    Live(#[source] Box<LiveError>),
}

/// Reading the appliance failed: nothing is said about the VMs.
#[derive(Debug, Error)]
pub enum LiveError {
    #[error("listing the pairings")]
    Pairings(#[source] ApiError),

    #[error("listing the source VMs")]
    Vms(#[source] ApiError),

    #[error(transparent)]
    Discovery(super::DiscoveryError),

    #[error("planning the VMs to configure")]
    Plan(#[source] PlanError),
}

impl From<LiveError> for DesiredError {
    fn from(e: LiveError) -> Self {
        DesiredError::Live(Box::new(e))
    }
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

/// What the appliance shows, read once for a diff.
#[derive(Debug, Clone)]
pub struct Live {
    /// The pairing's remote vCenter, by name.
    pub remote_vc: String,
    pub vms: Vec<VirtualMachine>,
    /// The pairing's replications by VM id.
    pub replications: HashMap<String, ReplicationInfo>,
    /// For each VM to configure (by VM id): what `plan` says `run` would do, `None` when it
    /// would configure it, else why not.
    pub configure_verdicts: HashMap<String, Option<String>>,
    /// API calls the read took.
    pub calls: u64,
    /// The target site's names (VR servers), for a reconfigure that names one; `None` when
    /// not read.
    pub target: Option<Discovery>,
}

/// Reads what a diff needs of the pairing `desired` describes: its source VMs (one list), its
/// discovery (target site login, names and the replication list), then for the wanted VMs that
/// have no replication the plan's grouped lookups and capacity count. A handful of calls.
pub async fn read_live(
    client: &Client,
    desired: &Desired,
    limits: &CapacityLimits,
    learnt: &[LearntLimit],
) -> Result<(Live, Resolved), LiveError> {
    let mut live = read_protection(client, desired.pairing.as_deref()).await?;
    let resolved = desired.resolve(&live.vms);
    // The plan decides, for the VMs to configure, what `run` would: it looks them up and counts
    // the room on the VR servers, datastores and appliance, as the run does.
    let jobs: Vec<Job> = resolved
        .wanted
        .iter()
        .filter(|w| !live.replications.contains_key(&w.vm_id))
        .enumerate()
        .map(|(i, w)| planned_job(i as i64 + 1, &w.spec))
        .collect();
    let mut configure_verdicts = HashMap::new();
    if !jobs.is_empty() {
        let plan = plan_jobs(client, &jobs, super::LOOKUP_GROUP, limits, learnt)
            .await
            .map_err(LiveError::Plan)?;
        for (job, row) in jobs.iter().zip(&plan.rows) {
            let verdict = match row.action {
                PlanAction::Configure => None,
                PlanAction::Skip | PlanAction::Fail => Some(
                    row.reason
                        .clone()
                        .unwrap_or_else(|| "the plan would not configure it".into()),
                ),
            };
            configure_verdicts.insert(job.spec.vm.id.clone().unwrap_or_default(), verdict);
        }
    }
    live.configure_verdicts = configure_verdicts;
    live.calls = client.metrics().total_calls();
    Ok((live, resolved))
}

/// What the pairing `wanted` names (or the only one) protects now: its discovery (the target
/// site's login, names and replication list) and its source VMs.
pub async fn read_protection(client: &Client, wanted: Option<&str>) -> Result<Live, LiveError> {
    let pairings = client.pairings().await.map_err(LiveError::Pairings)?;
    let mut disc = Discovery::run(client, &pairings, wanted)
        .await
        .map_err(LiveError::Discovery)?;
    let vms = client
        .vms(&disc.pairing.pairing_id, &disc.local_vc_id, false, None)
        .await
        .map_err(LiveError::Vms)?;
    let mut live = Live {
        remote_vc: disc.remote_vc_name.clone(),
        vms,
        replications: HashMap::new(),
        configure_verdicts: HashMap::new(),
        calls: client.metrics().total_calls(),
        target: None,
    };
    live.replications = std::mem::take(&mut disc.replications);
    live.target = Some(disc);
    Ok(live)
}

/// A job as the plan takes it: pending, not started.
fn planned_job(id: i64, spec: &JobSpec) -> Job {
    Job {
        id,
        batch_id: 0,
        spec: spec.clone(),
        state: JobState::Pending,
        step: Step::ResolveVm,
        attempt: 0,
        max_attempts: 1,
        scheduled_at: 0,
        lease_owner: None,
        lease_expires_at: None,
        in_doubt: false,
        checkpoint: Checkpoint::default(),
        reason: None,
        last_error: None,
        last_http_status: None,
        created_at: 0,
        started_at: None,
        finished_at: None,
        updated_at: 0,
        acts_on_job: None,
        operation: None,
    }
}

/// What would make a VM as desired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Desired, not protected.
    Configure,
    /// Protected by a replication vrbulk created, with settings other than desired.
    Reconfigure,
    /// Protected by a replication vrbulk created (or one adopted), no longer desired.
    Remove,
    /// Would fail, or is not vrbulk's to change: the reason says which.
    Cannot,
    Unchanged,
    /// Protected by a replication vrbulk did not create, and not desired: left alone.
    NotManaged,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Configure,
        Action::Reconfigure,
        Action::Remove,
        Action::Cannot,
        Action::Unchanged,
        Action::NotManaged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Configure => "configure",
            Action::Reconfigure => "reconfigure",
            Action::Remove => "remove",
            Action::Cannot => "cannot",
            Action::Unchanged => "unchanged",
            Action::NotManaged => "not managed",
        }
    }

    /// Drift: something an apply does, or the operator must look at.
    pub fn is_drift(self) -> bool {
        matches!(
            self,
            Action::Configure | Action::Reconfigure | Action::Remove | Action::Cannot
        )
    }
}

/// One setting as the replication has it and as desired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub setting: &'static str,
    pub from: String,
    pub to: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} → {}", self.setting, self.from, self.to)
    }
}

/// One VM of the diff.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffRow {
    pub vm_name: String,
    pub vm_id: Option<String>,
    pub action: Action,
    /// The VM's replication, when it has one.
    pub replication_id: Option<String>,
    /// Its status as the appliance words it.
    pub status: Option<String>,
    /// The configure batch that created the replication, when vrbulk did.
    pub created_by_batch: Option<i64>,
    /// Where the desire comes from: `row 4`, `rule "web"`; none for a removal.
    pub desired_by: Option<String>,
    /// A reconfigure's settings, old → new.
    pub changes: Vec<Change>,
    /// Why it cannot be done, or is left alone.
    pub reason: Option<String>,
    /// A configure's job, a reconfigure's change, a removal's configure job.
    #[serde(skip)]
    pub work: Option<Work>,
}

/// What an apply does for a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    Configure(JobSpec),
    Reconfigure {
        recorded: Recorded,
        change: SettingsChange,
    },
    Remove(Recorded),
}

/// The diff: every VM the file wants, every replication of the pairing, in VM name order.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub pairing: String,
    pub rows: Vec<DiffRow>,
    /// API calls the live read took.
    pub calls: u64,
}

impl Diff {
    pub fn count(&self, action: Action) -> usize {
        self.rows.iter().filter(|r| r.action == action).count()
    }

    /// Nothing to do and nothing to look at.
    pub fn in_sync(&self) -> bool {
        !self.rows.iter().any(|r| r.action.is_drift())
    }

    /// `3 configure, 1 reconfigure, 296 unchanged`: the actions that occur.
    pub fn summary(&self) -> String {
        let said: Vec<String> = Action::ALL
            .iter()
            .map(|a| (a, self.count(*a)))
            .filter(|(_, n)| *n > 0)
            .map(|(a, n)| format!("{n} {}", a.as_str()))
            .collect();
        if said.is_empty() {
            "no VM".into()
        } else {
            said.join(", ")
        }
    }
}

/// Compares `resolved` (what the file wants) with `live` and `created` (which replications are
/// vrbulk's). A replication vrbulk did not create is proposed for removal only when its VM's
/// name matches one of `adopt`.
pub fn diff(resolved: &Resolved, live: &Live, created: &Created, adopt: &[String]) -> Diff {
    let names: HashMap<&str, &str> = live
        .vms
        .iter()
        .map(|v| (v.id.as_str(), v.name.as_str()))
        .collect();
    let mut rows = Vec::new();
    let mut wanted_ids = HashSet::new();
    for w in &resolved.wanted {
        wanted_ids.insert(w.vm_id.as_str());
        let mut row = DiffRow {
            vm_name: w.vm_name.clone(),
            vm_id: Some(w.vm_id.clone()),
            action: Action::Unchanged,
            replication_id: None,
            status: None,
            created_by_batch: None,
            desired_by: Some(w.from.to_string()),
            changes: Vec::new(),
            reason: None,
            work: None,
        };
        let Some(rep) = live.replications.get(&w.vm_id) else {
            match live.configure_verdicts.get(&w.vm_id) {
                Some(Some(why)) => {
                    row.action = Action::Cannot;
                    row.reason = Some(why.clone());
                }
                _ => {
                    row.action = Action::Configure;
                    row.work = Some(Work::Configure(w.spec.clone()));
                }
            }
            rows.push(row);
            continue;
        };
        let ours = created.0.get(&rep.id);
        row.replication_id = Some(rep.id.clone());
        row.status = Some(status_name(rep));
        row.created_by_batch = ours.map(|r| r.batch);
        let (changes, change) = differences(&w.spec, rep);
        row.changes = changes;
        if change.is_empty() {
            rows.push(row);
            continue;
        }
        row.action = Action::Cannot;
        match ours {
            None => {
                row.reason = Some(format!(
                    "replication {} was not created by vrbulk: vrbulk changes only the \
                     replications it created",
                    rep.id
                ))
            }
            Some(recorded) => match refusal(Operation::Reconfigure, rep).or_else(|| {
                // A VR server the target site lacks: the reconfigure would fail in its run.
                let server = change.replication_server.as_deref()?;
                live.target.as_ref()?.replication_server_id(server).err()
            }) {
                Some(why) => row.reason = Some(why),
                None => match input::mpit_problem(
                    change
                        .mpit_instances
                        .unwrap_or(w.spec.settings.mpit_instances),
                    change.mpit_days.unwrap_or(w.spec.settings.mpit_days),
                ) {
                    Some(why) => row.reason = Some(why),
                    None => {
                        row.action = Action::Reconfigure;
                        row.work = Some(Work::Reconfigure {
                            recorded: recorded.clone(),
                            change,
                        });
                    }
                },
            },
        }
        rows.push(row);
    }
    for m in &resolved.missing {
        rows.push(DiffRow {
            vm_name: m.vm_name.clone(),
            vm_id: None,
            action: Action::Cannot,
            replication_id: None,
            status: None,
            created_by_batch: None,
            desired_by: Some(Origin::Row(m.line).to_string()),
            changes: Vec::new(),
            reason: Some(m.reason.clone()),
            work: None,
        });
    }
    for (vm_id, rep) in &live.replications {
        if wanted_ids.contains(vm_id.as_str()) {
            continue;
        }
        let vm_name = names
            .get(vm_id.as_str())
            .map(|n| n.to_string())
            .or_else(|| rep.name.clone())
            .unwrap_or_else(|| vm_id.clone());
        let ours = created.0.get(&rep.id);
        let adopted = adopt.iter().any(|g| glob_match(g, &vm_name));
        let (action, reason, work) = match ours {
            Some(recorded) => match refusal(Operation::Unconfigure, rep) {
                Some(why) => (Action::Cannot, Some(why), None),
                None => (Action::Remove, None, Some(Work::Remove(recorded.clone()))),
            },
            None if adopted => (
                Action::Remove,
                Some(format!(
                    "adopted: replication {} was not created by vrbulk",
                    rep.id
                )),
                None,
            ),
            None => (
                Action::NotManaged,
                Some("not created by vrbulk, not in the file: left alone".into()),
                None,
            ),
        };
        rows.push(DiffRow {
            vm_name,
            vm_id: Some(vm_id.clone()),
            action,
            replication_id: Some(rep.id.clone()),
            status: Some(status_name(rep)),
            created_by_batch: ours.map(|r| r.batch),
            desired_by: None,
            changes: Vec::new(),
            reason,
            work,
        });
    }
    rows.sort_by(|a, b| a.vm_name.cmp(&b.vm_name).then(a.vm_id.cmp(&b.vm_id)));
    Diff {
        pairing: live.remote_vc.clone(),
        rows,
        calls: live.calls,
    }
}

/// The settings of `rep` that differ from `spec`, old → new, and the reconfigure that makes
/// them so. Only what the replication list says is compared: RPO, point-in-time copies,
/// quiescing, compression, encryption, new disks and (when the file names one) the VR server.
/// The target datastore, storage policy and disk format are not in the list; they are the
/// configure's, and are not compared.
pub fn differences(spec: &JobSpec, rep: &ReplicationInfo) -> (Vec<Change>, SettingsChange) {
    let s = &spec.settings;
    let mut changes = Vec::new();
    let mut change = SettingsChange::default();
    let on_off = |b: bool| if b { "on" } else { "off" }.to_string();
    if rep.rpo != Some(i64::from(s.rpo)) {
        changes.push(Change {
            setting: "rpo",
            from: rep.rpo.map_or("?".into(), |r| r.to_string()),
            to: s.rpo.to_string(),
        });
        change.rpo = Some(s.rpo);
    }
    // MPIT off is 0 copies, whatever the days say.
    let rep_instances = if rep.mpit_enabled == Some(false) {
        0
    } else {
        rep.mpit_instances
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
    };
    if rep_instances != s.mpit_instances {
        changes.push(Change {
            setting: "mpit_instances",
            from: rep_instances.to_string(),
            to: s.mpit_instances.to_string(),
        });
        change.mpit_instances = Some(s.mpit_instances);
    }
    let rep_days = rep.mpit_days.and_then(|n| u32::try_from(n).ok());
    if s.mpit_instances > 0 && rep_days != Some(s.mpit_days) {
        changes.push(Change {
            setting: "mpit_days",
            from: rep_days.map_or("?".into(), |d| d.to_string()),
            to: s.mpit_days.to_string(),
        });
        change.mpit_days = Some(s.mpit_days);
    }
    for (setting, want, now, slot) in [
        (
            "quiesce",
            s.quiesce,
            rep.quiescing_enabled,
            &mut change.quiesce,
        ),
        (
            "network_compression",
            s.network_compression,
            rep.network_compression_enabled,
            &mut change.network_compression,
        ),
        (
            "lwd_encryption",
            s.lwd_encryption,
            rep.encryption_enabled,
            &mut change.lwd_encryption,
        ),
        (
            "auto_replicate_new_disks",
            s.auto_replicate_new_disks,
            rep.auto_replicate_new_disks_enabled,
            &mut change.auto_replicate_new_disks,
        ),
    ] {
        if now.unwrap_or(false) != want {
            changes.push(Change {
                setting,
                from: now.map_or("?".into(), on_off),
                to: on_off(want),
            });
            *slot = Some(want);
        }
    }
    if let Some(server) = spec.replication_server.as_deref() {
        let now = rep.replication_server_name.as_deref();
        if !spec.places_automatically() && !now.is_some_and(|n| n.eq_ignore_ascii_case(server)) {
            changes.push(Change {
                setting: "replication_server",
                from: now.unwrap_or("?").to_string(),
                to: server.to_string(),
            });
            change.replication_server = Some(server.to_string());
        }
    }
    (changes, change)
}

/// The reconfigures of `rows`, grouped by the configure batch that created each replication,
/// as the CSV `vrbulk reconfigure FILE.csv --batch N` takes (by VM id; an empty cell keeps the
/// setting).
pub fn reconfigure_csvs(rows: &[DiffRow]) -> Result<BTreeMap<i64, Vec<u8>>, csv::Error> {
    let mut by_batch: BTreeMap<i64, csv::Writer<Vec<u8>>> = BTreeMap::new();
    for row in rows {
        let Some(Work::Reconfigure { recorded, change }) = &row.work else {
            continue;
        };
        let out = match by_batch.entry(recorded.batch) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let mut w = csv::Writer::from_writer(Vec::new());
                w.write_record(
                    std::iter::once(Column::VmId.name()).chain(input::SETTINGS.map(|c| c.name())),
                )?;
                e.insert(w)
            }
        };
        let vm = row.vm_id.clone().unwrap_or_default();
        out.write_record(std::iter::once(vm).chain(input::SETTINGS.map(|c| cell(change, c))))?;
    }
    by_batch
        .into_iter()
        .map(|(batch, w)| Ok((batch, w.into_inner().map_err(|e| e.into_error())?)))
        .collect()
}

/// The cell of `column` in a reconfigure CSV row that asks for `change`: empty keeps it.
fn cell(change: &SettingsChange, column: Column) -> String {
    let n = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
    let b = |v: Option<bool>| v.map(|v| v.to_string()).unwrap_or_default();
    match column {
        Column::Rpo => n(change.rpo),
        Column::MpitInstances => n(change.mpit_instances),
        Column::MpitDays => n(change.mpit_days),
        Column::Quiesce => b(change.quiesce),
        Column::NetworkCompression => b(change.network_compression),
        Column::LwdEncryption => b(change.lwd_encryption),
        Column::AutoReplicateNewDisks => b(change.auto_replicate_new_disks),
        Column::StoragePolicy => change.storage_policy.clone().unwrap_or_default(),
        Column::ReplicationServer => change.replication_server.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

/// Why no desired-state file was written.
#[derive(Debug, Error)]
pub enum ExportError {
    #[error(
        "the appliance does not say where the replica disks of VMs vrbulk did not configure \
         live ({}): give --target-datastore, which the file records in [defaults] for should \
         such a VM be configured again",
        five(.0)
    )]
    NoDatastore(Vec<String>),

    #[error("a VM name holds ''', which the file's rows cannot quote")]
    Quotes,

    #[error("writing the rows")]
    Csv(#[from] csv::Error),
}

/// `a, b, c, d, e and 7 more`.
fn five(names: &[String]) -> String {
    let mut shown = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        shown.push_str(&format!(" and {} more", names.len() - 5));
    }
    shown
}

/// A desired-state file that says what `live` protects now on its pairing: one row per
/// replication, its settings as the appliance lists them. Where vrbulk created the
/// replication, the target datastore and storage policy are its configure job's; for the
/// others the appliance's list does not say, and `target_datastore` stands in (written in
/// `[defaults]`, used only should such a VM be configured again).
pub fn export(
    pairing: &str,
    live: &Live,
    created: &Created,
    target_datastore: Option<&str>,
) -> Result<String, ExportError> {
    let names: HashMap<&str, &str> = live
        .vms
        .iter()
        .map(|v| (v.id.as_str(), v.name.as_str()))
        .collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for vm in &live.vms {
        *counts.entry(vm.name.as_str()).or_default() += 1;
    }
    let mut reps: Vec<(&str, &ReplicationInfo)> = live
        .replications
        .iter()
        .map(|(id, r)| (names.get(id.as_str()).copied().unwrap_or(id.as_str()), r))
        .collect();
    reps.sort_by(|a, b| a.0.cmp(b.0).then(a.1.id.cmp(&b.1.id)));
    let mut lacking = Vec::new();
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = [
        "vm_name",
        "vm_id",
        "target_datastore",
        "storage_policy",
        "rpo",
        "mpit_instances",
        "mpit_days",
        "quiesce",
        "network_compression",
        "lwd_encryption",
        "auto_replicate_new_disks",
        "replication_server",
        "notes",
    ];
    out.write_record(header)?;
    for (name, rep) in reps {
        let vm_id = rep.vm_id.clone().unwrap_or_default();
        let ours = created.0.get(&rep.id);
        let (datastore, policy) = match ours {
            Some(r) => (
                r.spec.target_datastore.clone(),
                r.spec.storage_policy.clone(),
            ),
            None => {
                if target_datastore.is_none() {
                    lacking.push(name.to_string());
                }
                (String::new(), None)
            }
        };
        let instances = if rep.mpit_enabled == Some(false) {
            0
        } else {
            rep.mpit_instances.unwrap_or(0)
        };
        let days = if instances > 0 {
            rep.mpit_days.unwrap_or(0).to_string()
        } else {
            String::new()
        };
        let flag = |b: Option<bool>| b.unwrap_or(false).to_string();
        // The id only where the name alone would not say which VM.
        let id = if counts.get(name).copied().unwrap_or(0) == 1 {
            String::new()
        } else {
            vm_id
        };
        let note = match ours {
            Some(r) => format!("created by vrbulk batch {}", r.batch),
            None => "not created by vrbulk".to_string(),
        };
        out.write_record([
            name.to_string(),
            id,
            datastore,
            policy.unwrap_or_default(),
            rep.rpo.map(|r| r.to_string()).unwrap_or_default(),
            instances.to_string(),
            days,
            flag(rep.quiescing_enabled),
            flag(rep.network_compression_enabled),
            flag(rep.encryption_enabled),
            flag(rep.auto_replicate_new_disks_enabled),
            rep.replication_server_name.clone().unwrap_or_default(),
            note,
        ])?;
    }
    if !lacking.is_empty() {
        return Err(ExportError::NoDatastore(lacking));
    }
    let rows = out
        .into_inner()
        .map_err(|e| ExportError::Csv(e.into_error().into()))?;
    let rows = String::from_utf8_lossy(&rows);
    if rows.contains("'''") {
        return Err(ExportError::Quotes);
    }
    let mut text = format!(
        "# The desired protection of pairing {pairing}, as vrbulk found it (`vrbulk export \
         --desired`).\n# `vrbulk diff` compares it with the appliance; `vrbulk apply` makes the \
         appliance so.\npairing = {}\n\n",
        toml_string(pairing)
    );
    // The rows' CSV, one line per VM: a pull request shows each VM's change on its own line.
    text.push_str("rows = '''\n");
    text.push_str(&rows);
    text.push_str("'''\n");
    if let Some(ds) = target_datastore {
        text.push_str(&format!(
            "\n# Where a VM whose row names no datastore would be configured.\n[defaults]\n\
             target_datastore = {}\n",
            toml_string(ds)
        ));
    }
    text.push_str(
        "\n# Rules select VMs of the live inventory by name; a row wins over any rule.\n\
         # [[rule]]\n# name = \"web tier\"\n# match = [\"web-*\"]\n# exclude = [\"web-test-*\"]\n\
         # [rule.profile]\n# target_datastore = \"ds-silver-01\"\n# rpo = 30\n",
    );
    Ok(text)
}

/// `s` as a TOML basic string (names hold no control characters: the import refuses them).
fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let sample = Desired::parse(include_bytes!("../../samples/desired.toml")).unwrap();
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
