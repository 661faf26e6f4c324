//! `vrbulk monitor`: after the wave, keep following every replication of the chosen batches and
//! say what goes wrong, quietly. Each cycle reads the batches' replications with grouped calls
//! (the same budget and client as a run), keeps the protection record current, turns what it
//! sees into sightings (behind RPO, error, paused, not active, removed outside vrbulk, and for
//! inventory batches a VM the selection covers without a replication), and lets the queue judge
//! them against the grace and hold times ([`Queue::judge_findings`]). Whatever opened or cleared
//! in the cycle becomes one digest in the outbox, delivered at the end of the cycle.
//!
//! A batch whose replications could not be read in a cycle is left out of that cycle's
//! judgement: its findings neither open nor clear on a silence.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use tokio::sync::watch;

use crate::domain::Operation;
use crate::input::glob_match;
use crate::notify::{deliver_due, Notice, NotifySettings};
use crate::queue::findings::{FindingChange, FindingKind, Rule, Sighting};
use crate::queue::{Batch, BatchId, JobState, Queue, QueueError, Readiness, ReplicationSeen};
use crate::vr::error::error_chain;
use crate::vr::model::{Pairing, ReplicationInfo, ReplicationStatus};
use crate::vr::{ApiError, Client, ClientSettings, Politeness};
use crate::workflow::choose_pairing;
use crate::workflow::protection::{replicated_bytes, seen};
use crate::workflow::reads::replications_of;

/// `[monitor]`: how long a condition lasts before it is a finding, and how long an RPO
/// violation must be gone before its finding clears. Minutes; fractions allowed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSettings {
    /// Seconds between two cycles [default: 300].
    pub interval: Option<f64>,
    /// An RPO violation is a finding once the appliance's `current_rpo_violation` reaches this
    /// [default: 15].
    pub rpo_grace_minutes: Option<f64>,
    /// A violation's finding clears after the replication has been within its RPO this long
    /// [default: 30].
    pub rpo_hold_minutes: Option<f64>,
    /// A paused replication is a finding after this long [default: 240].
    pub paused_after_minutes: Option<f64>,
    /// A replication `NOT_ACTIVE` (VM powered off) is a finding after this long [default: 60].
    pub not_active_after_minutes: Option<f64>,
}

impl MonitorSettings {
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut check = |key: &str, v: Option<f64>, min: f64| {
            if let Some(v) = v {
                if !v.is_finite() || v < min || v > 525_600.0 {
                    out.push((
                        format!("[monitor] {key}"),
                        format!("must be between {min} and 525600, got {v}"),
                    ));
                }
            }
        };
        check("interval", self.interval, 0.1);
        check("rpo_grace_minutes", self.rpo_grace_minutes, 0.0);
        check("rpo_hold_minutes", self.rpo_hold_minutes, 0.0);
        check("paused_after_minutes", self.paused_after_minutes, 0.0);
        check(
            "not_active_after_minutes",
            self.not_active_after_minutes,
            0.0,
        );
        out
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(self.interval.unwrap_or(300.0).max(0.1))
    }

    /// The grace and hold of each kind of finding. Errors, removals and uncovered VMs are
    /// findings at once and clear at once: none of them comes and goes by itself.
    pub fn rule(&self, kind: FindingKind) -> Rule {
        let ms = |minutes: f64| (minutes * 60_000.0) as i64;
        match kind {
            FindingKind::RpoViolation => Rule {
                grace_ms: ms(self.rpo_grace_minutes.unwrap_or(15.0)),
                hold_ms: ms(self.rpo_hold_minutes.unwrap_or(30.0)),
            },
            FindingKind::Paused => Rule {
                grace_ms: ms(self.paused_after_minutes.unwrap_or(240.0)),
                hold_ms: 0,
            },
            FindingKind::NotActive => Rule {
                grace_ms: ms(self.not_active_after_minutes.unwrap_or(60.0)),
                hold_ms: 0,
            },
            FindingKind::Error | FindingKind::Removed | FindingKind::Uncovered => Rule::default(),
        }
    }
}

#[derive(Debug, Error)]
pub enum MonitorError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("logging in")]
    Login(#[source] ApiError),
    #[error("listing the pairings")]
    Pairings(#[source] ApiError),
    #[error("no batch to monitor: no configure batch of this queue has a configured VM")]
    Nothing,
}

/// Where `monitor --all` records the findings of replications outside every vrbulk batch.
pub const APPLIANCE: BatchId = 0;

#[derive(Debug, Clone)]
pub struct MonitorOptions {
    /// The configure batches to follow; empty: every one with a configured VM.
    pub batches: Vec<BatchId>,
    /// Also every other replication of the appliance, on every pairing (findings under
    /// [`APPLIANCE`]).
    pub all: bool,
    pub interval: Duration,
    pub once: bool,
}

/// What one cycle did, for the caller to show.
#[derive(Debug, Clone, Default)]
pub struct Cycle {
    pub batches: Vec<BatchId>,
    /// Replications looked at.
    pub replications: usize,
    pub sightings: Vec<Sighting>,
    pub changes: Vec<FindingChange>,
    /// Open findings after the cycle, of the batches followed.
    pub open: u64,
    /// Batches that could not be read this cycle, with why.
    pub unread: Vec<(BatchId, String)>,
    /// Notifications delivered and failed at the end of the cycle.
    pub delivered: usize,
    pub undelivered: usize,
}

/// A configured VM to look at.
struct Target {
    job: i64,
    vm_id: String,
    vm_name: Option<String>,
    pairing: Option<String>,
    replication_id: Option<String>,
    bytes: Option<i64>,
}

/// Follows the batches until `stop` (or one cycle with `once`); `show` sees every cycle.
pub async fn monitor(
    queue: &mut Queue,
    settings: ClientSettings,
    rules: &MonitorSettings,
    notify: &NotifySettings,
    opts: MonitorOptions,
    mut stop: watch::Receiver<bool>,
    mut show: impl FnMut(&Cycle),
) -> Result<(), MonitorError> {
    let client =
        Client::with_politeness(settings, Politeness::standard()).map_err(MonitorError::Login)?;
    client.login().await.map_err(MonitorError::Login)?;
    let result = async {
        let pairings = client.pairings().await.map_err(MonitorError::Pairings)?;
        let mut remote: HashSet<String> = HashSet::new();
        loop {
            let cycle = cycle(queue, &client, &pairings, &mut remote, rules, notify, &opts).await?;
            show(&cycle);
            if opts.once {
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep(opts.interval) => {}
                _ = stop.wait_for(|s| *s) => return Ok(()),
            }
            if *stop.borrow() {
                return Ok(());
            }
        }
    }
    .await;
    client.logout().await.ok();
    result
}

/// The configure batches to follow: those asked for, or every one with a configured VM.
fn followed(q: &Queue, asked: &[BatchId], all: bool) -> Result<Vec<Batch>, MonitorError> {
    if !asked.is_empty() {
        // A day-2 batch (an undo, a pause) stands for the batch whose replications it acted on.
        let mut ids: Vec<BatchId> = Vec::new();
        for b in asked {
            let id = crate::runner::follow::configure_batch_of(q, *b)?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        return Ok(ids
            .iter()
            .map(|b| q.batch(*b))
            .collect::<Result<Vec<_>, _>>()?);
    }
    let mut out = Vec::new();
    for b in q.batches()? {
        if b.operation == Operation::Configure
            && q.jobs(b.id)?.iter().any(|j| j.state == JobState::Succeeded)
        {
            out.push(b);
        }
    }
    if out.is_empty() && !all {
        return Err(MonitorError::Nothing);
    }
    Ok(out)
}

/// One cycle: look, record, judge, deliver.
async fn cycle(
    queue: &mut Queue,
    client: &Client,
    pairings: &[Pairing],
    remote: &mut HashSet<String>,
    rules: &MonitorSettings,
    notify: &NotifySettings,
    opts: &MonitorOptions,
) -> Result<Cycle, MonitorError> {
    let batches = followed(queue, &opts.batches, opts.all)?;
    let mut out = Cycle::default();
    let mut judged = Vec::new();
    for batch in &batches {
        match look(queue, client, pairings, remote, batch).await {
            Ok((sightings, looked)) => {
                out.replications += looked;
                out.sightings.extend(sightings);
                judged.push(batch.id);
            }
            Err(why) => {
                tracing::warn!(batch = batch.id, error = %why, "could not read the batch's replications this cycle");
                out.unread.push((batch.id, why));
            }
        }
    }
    if opts.all {
        match look_appliance(queue, client, pairings, remote, &batches).await {
            Ok((sightings, looked)) => {
                out.replications += looked;
                out.sightings.extend(sightings);
                judged.push(APPLIANCE);
            }
            Err(why) => {
                tracing::warn!(error = %why, "could not read the appliance's replications this cycle");
                out.unread.push((APPLIANCE, why));
            }
        }
    }
    let channels: Vec<String> = notify.channels().into_iter().map(|(n, _)| n).collect();
    let open_before: u64 = open_in(queue, &judged)?;
    out.changes = queue.judge_findings(
        &judged,
        &out.sightings,
        |k| rules.rule(k),
        |changes| {
            if channels.is_empty() {
                return None;
            }
            let opened = changes.iter().filter(|c| c.change == "opened").count() as u64;
            let cleared = changes.len() as u64 - opened;
            let open_now = (open_before + opened).saturating_sub(cleared);
            Some(Notice::digest(changes, open_now).outgoing(&channels))
        },
    )?;
    for c in &out.changes {
        tracing::info!(batch = c.batch, vm = %c.vm_name.as_deref().unwrap_or(&c.vm_id), finding = c.kind.key(), change = c.change, "finding {}", c.change);
    }
    out.batches = batches.iter().map(|b| b.id).collect();
    if opts.all {
        out.batches.push(APPLIANCE);
    }
    out.open = open_in(queue, &out.batches)?;
    let delivered = deliver_due(queue, notify).await?;
    out.delivered = delivered.sent.len();
    out.undelivered = delivered.failed.len();
    Ok(out)
}

fn open_in(queue: &Queue, batches: &[BatchId]) -> Result<u64, QueueError> {
    let open = queue.open_findings()?;
    Ok(batches
        .iter()
        .filter_map(|b| open.get(b))
        .flat_map(|m| m.values())
        .sum())
}

/// The sightings of one batch, and how many replications were looked at; `Err` with the words
/// of why it could not be read whole.
async fn look(
    queue: &mut Queue,
    client: &Client,
    pairings: &[Pairing],
    remote: &mut HashSet<String>,
    batch: &Batch,
) -> Result<(Vec<Sighting>, usize), String> {
    let targets = targets(queue, batch.id).map_err(|e| e.to_string())?;
    let mut groups: HashMap<String, Vec<&Target>> = HashMap::new();
    for t in &targets {
        let p = choose_pairing(pairings, t.pairing.as_deref()).map_err(|e| e.to_string())?;
        groups.entry(p.pairing_id.clone()).or_default().push(t);
    }
    let mut sightings = Vec::new();
    let mut records = Vec::new();
    let mut looked = 0;
    for (pairing, targets) in &groups {
        if !remote.contains(pairing) {
            client
                .remote_login(pairing)
                .await
                .map_err(|e| error_chain(&e))?;
            remote.insert(pairing.clone());
        }
        let vm_ids: Vec<String> = targets.iter().map(|t| t.vm_id.clone()).collect();
        let reps = replications_of(client, pairing, &vm_ids, vm_ids.len())
            .await
            .map_err(|e| error_chain(&e))?;
        for t in targets {
            looked += 1;
            match reps.get(&t.vm_id) {
                Some(rep) => {
                    let s = seen(t.job, rep, t.bytes);
                    sightings.extend(sighting_of(
                        batch.id,
                        Some(t.job),
                        t.vm_name.as_deref(),
                        rep,
                        &s,
                    ));
                    records.push(s);
                }
                None => {
                    sightings.push(Sighting {
                        batch: batch.id,
                        job: Some(t.job),
                        vm_id: t.vm_id.clone(),
                        vm_name: t.vm_name.clone(),
                        kind: FindingKind::Removed,
                        detail: Some(
                            "the appliance no longer lists its replication, and no vrbulk undo \
                             removed it"
                                .into(),
                        ),
                        lasted_ms: None,
                    });
                    records.push(ReplicationSeen::not_listed(t.job, t.replication_id.clone()));
                }
            }
        }
    }
    if let Some(selection) = selection(batch) {
        let covered: HashSet<String> = covered_vms(queue, batch.id).map_err(|e| e.to_string())?;
        let pairing =
            choose_pairing(pairings, selection.pairing.as_deref()).map_err(|e| e.to_string())?;
        let local_vc = pairing
            .local_vc_server
            .id
            .clone()
            .ok_or("the pairing names no source vCenter")?;
        let vms = client
            .vms(&pairing.pairing_id, &local_vc, true, None)
            .await
            .map_err(|e| error_chain(&e))?;
        for vm in vms {
            let chosen = selection.patterns.iter().any(|p| glob_match(p, &vm.name))
                && !selection.exclude.iter().any(|p| glob_match(p, &vm.name));
            if chosen && !covered.contains(&vm.id) && !covered.contains(&vm.name) {
                sightings.push(Sighting {
                    batch: batch.id,
                    job: None,
                    detail: Some(format!(
                        "matches the batch's selection ({}) and has no replication",
                        selection.patterns.join(", ")
                    )),
                    vm_id: vm.id,
                    vm_name: Some(vm.name),
                    kind: FindingKind::Uncovered,
                    lasted_ms: None,
                });
            }
        }
    }
    for event in queue
        .record_protection(&records)
        .map_err(|e| e.to_string())?
    {
        tracing::info!(job = event.job, from = ?event.from_status, to = %event.to_status, "{}", event.message.as_deref().unwrap_or(""));
    }
    Ok((sightings, looked))
}

/// What the appliance says of one replication, as sightings: error first (a replication in
/// error says nothing else reliable), then paused, powered off, behind its RPO.
fn sighting_of(
    batch: BatchId,
    job: Option<i64>,
    vm_name: Option<&str>,
    rep: &ReplicationInfo,
    s: &ReplicationSeen,
) -> Option<Sighting> {
    let status = rep.status.as_ref().and_then(|c| c.status);
    let (kind, detail, lasted_ms) = if let Some(error) = &s.error {
        (FindingKind::Error, Some(error.clone()), None)
    } else if status == Some(ReplicationStatus::Paused) {
        (FindingKind::Paused, None, None)
    } else if status == Some(ReplicationStatus::NotActive) {
        (
            FindingKind::NotActive,
            Some("the VM is powered off".into()),
            None,
        )
    } else if s.rpo_violation {
        let minutes = rep.current_rpo_violation;
        let detail = match (minutes, rep.rpo) {
            (Some(m), Some(rpo)) => format!("{m} minutes past its RPO of {rpo} minutes"),
            (Some(m), None) => format!("{m} minutes past its RPO"),
            _ => "behind its RPO".into(),
        };
        (
            FindingKind::RpoViolation,
            Some(detail),
            minutes.map(|m| m.max(0) * 60_000),
        )
    } else {
        return None;
    };
    Some(Sighting {
        batch,
        job,
        vm_id: rep.vm_id.clone().unwrap_or_else(|| rep.id.clone()),
        vm_name: rep.name.clone().or_else(|| vm_name.map(String::from)),
        kind,
        detail,
        lasted_ms,
    })
}

/// `--all`: every replication of every pairing that no followed batch configured, as
/// sightings under [`APPLIANCE`]. Nothing there was configured by vrbulk, so nothing is
/// "removed outside vrbulk" or "uncovered"; the protection record is not theirs to keep.
async fn look_appliance(
    queue: &Queue,
    client: &Client,
    pairings: &[Pairing],
    remote: &mut HashSet<String>,
    batches: &[Batch],
) -> Result<(Vec<Sighting>, usize), String> {
    let mut ours: HashSet<String> = HashSet::new();
    for b in batches {
        ours.extend(
            targets(queue, b.id)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|t| t.vm_id),
        );
    }
    let mut sightings = Vec::new();
    let mut looked = 0;
    for p in pairings {
        if !remote.contains(&p.pairing_id) {
            client
                .remote_login(&p.pairing_id)
                .await
                .map_err(|e| error_chain(&e))?;
            remote.insert(p.pairing_id.clone());
        }
        let reps = client
            .replications(&p.pairing_id, None)
            .await
            .map_err(|e| error_chain(&e))?;
        for rep in reps {
            if rep.vm_id.as_ref().is_some_and(|v| ours.contains(v)) {
                continue;
            }
            looked += 1;
            let s = seen(0, &rep, None);
            sightings.extend(sighting_of(APPLIANCE, None, None, &rep, &s));
        }
    }
    Ok((sightings, looked))
}

/// The batch's configured VMs that no vrbulk undo removed.
fn targets(q: &Queue, batch: BatchId) -> Result<Vec<Target>, QueueError> {
    let unconfigured: HashSet<i64> = q
        .protection(batch)?
        .iter()
        .filter(|p| p.readiness() == Readiness::Unconfigured)
        .map(|p| p.job)
        .collect();
    Ok(q.jobs(batch)?
        .into_iter()
        .filter(|j| j.state == JobState::Succeeded && !unconfigured.contains(&j.id))
        .filter_map(|j| {
            Some(Target {
                job: j.id,
                vm_id: j.checkpoint.vm_id.clone()?,
                vm_name: j.spec.vm.name.clone(),
                pairing: j.spec.pairing.clone(),
                replication_id: j.checkpoint.replication_id.clone(),
                bytes: j.checkpoint.disks.as_deref().map(replicated_bytes),
            })
        })
        .collect())
}

/// Every VM (by id and by name) the batch has a job for, whatever became of it: those are the
/// batch's own to report, not coverage drift.
fn covered_vms(q: &Queue, batch: BatchId) -> Result<HashSet<String>, QueueError> {
    let mut out = HashSet::new();
    for j in q.jobs(batch)? {
        out.extend(j.checkpoint.vm_id.clone());
        out.extend(j.spec.vm.id.clone());
        out.extend(j.spec.vm.name.clone());
    }
    Ok(out)
}

/// An inventory batch's selection, as its import recorded it.
struct Selection {
    patterns: Vec<String>,
    exclude: Vec<String>,
    pairing: Option<String>,
}

fn selection(batch: &Batch) -> Option<Selection> {
    if batch.input_kind != "inventory" {
        return None;
    }
    let strings = |key: &str| -> Vec<String> {
        batch.settings[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let patterns = strings("match");
    if patterns.is_empty() {
        return None;
    }
    Some(Selection {
        patterns,
        exclude: strings("exclude"),
        pairing: batch.settings["defaults"]["pairing"]
            .as_str()
            .map(String::from),
    })
}
