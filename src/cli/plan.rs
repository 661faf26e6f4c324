//! `vrbulk plan`: a dry run of discovery and validation for every unfinished job of a batch —
//! what would be configured where, what would be skipped or fail, and why — without
//! configuring anything or touching the jobs. Operators attach it to the change request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::{connect, open_batch};
use crate::config::ConfigFile;
use crate::queue::Job;
use crate::report::{Format, PlanAction, PlanReport, PlanRow};
use crate::units::gib;
use crate::vr::{Client, ErrorClass};
use crate::workflow::{decide, lookup_vms, vm_key, Decision, Discovery};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  vrbulk plan --batch 3 > wave-3-plan.txt
  vrbulk plan --batch 3 --format html -o wave-3-plan.html
Exit code 1 when any VM would fail, so that a script can stop before `vrbulk run`.")]
pub struct PlanArgs {
    /// The batch to plan [default: the newest].
    #[arg(long)]
    pub batch: Option<i64>,
    /// VMs per lookup call.
    #[arg(long, default_value_t = 50)]
    pub lookup_group: usize,
    /// Print JSON instead of a table.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Write the plan as a report: md, html, csv or json (the report's schema).
    #[arg(long, short = 'f', value_name = "FORMAT")]
    pub format: Option<Format>,
    /// Write the plan report to this file [format: --format, else the file's extension].
    #[arg(long, short = 'o', value_name = "FILE", conflicts_with = "json")]
    pub output: Option<PathBuf>,
}

pub async fn run(args: PlanArgs, config: Option<&Path>, db: &Path) -> anyhow::Result<u8> {
    let file = ConfigFile::load(config)?;
    let (queue, batch) = open_batch(db, args.batch)?;
    let jobs = queue.jobs(batch.id)?;
    drop(queue);
    let client = connect(&file).await?;
    let planned = plan_jobs(&client, &jobs, args.lookup_group).await?;
    client.logout().await.ok();
    let would_fail = planned.iter().any(|p| p.action == PlanAction::Fail);
    if args.format.is_some() || args.output.is_some() {
        let now = crate::queue::system_clock()();
        let report = PlanReport::new(&batch, &jobs, planned, client.metrics().total_calls(), now);
        let format = super::report::format_for(args.format, args.output.as_deref());
        super::report::write_output(&report.render(format)?, args.output.as_deref())?;
    } else if args.json {
        println!("{}", serde_json::to_string_pretty(&planned)?);
    } else {
        print_table(
            &batch.name,
            batch.id,
            &planned,
            client.metrics().total_calls(),
        );
    }
    // A script can stop before `run` when the plan already knows some VMs will fail.
    if would_fail {
        return Ok(super::exit::JOBS_FAILED);
    }
    Ok(super::exit::OK)
}

/// What `run` would do with each unfinished job, found with the same grouped calls.
pub async fn plan_jobs(
    client: &Client,
    jobs: &[Job],
    lookup_group: usize,
) -> anyhow::Result<Vec<PlanRow>> {
    let pairings = client.pairings().await.context("listing pairings")?;
    let mut by_pairing: HashMap<Option<String>, Vec<&Job>> = HashMap::new();
    for j in jobs.iter().filter(|j| !j.state.is_terminal()) {
        by_pairing
            .entry(j.spec.pairing.clone())
            .or_default()
            .push(j);
    }
    let mut planned = Vec::new();
    for (key, group) in by_pairing {
        let disc = match Discovery::run(client, &pairings, key.as_deref()).await {
            Ok(d) => d,
            // A server that failed to answer says nothing about the VMs: no verdict on them.
            Err(e)
                if e.api_error()
                    .is_some_and(|a| a.class() != ErrorClass::Permanent) =>
            {
                return Err(anyhow::Error::new(e).context("the plan is incomplete"));
            }
            Err(e) => {
                let reason = crate::vr::error::error_chain(&e);
                planned.extend(group.iter().map(|j| failed(j, reason.clone())));
                continue;
            }
        };
        let refs: Vec<_> = group.iter().map(|j| &j.spec.vm).collect();
        let lookups = lookup_vms(client, &disc, &refs, lookup_group)
            .await
            .with_context(|| format!("looking up the VMs on {}", disc.remote_vc_name))?;
        let mut needed: HashMap<String, i64> = HashMap::new();
        for j in group {
            let lookup = &lookups[&vm_key(&j.spec.vm)];
            let p = plan_one(j, decide(&j.spec, lookup, &disc));
            if p.action == PlanAction::Configure {
                *needed.entry(p.target_datastore.clone()).or_default() += p.capacity_bytes;
            }
            planned.push(p);
        }
        warn_about_space(&disc, &needed, &mut planned);
    }
    planned.sort_by_key(|p| p.job_id);
    Ok(planned)
}

fn plan_one(job: &Job, decision: Decision) -> PlanRow {
    let mut p = failed(job, String::new());
    match decision {
        Decision::Configure {
            vm, excluded, spec, ..
        } => {
            p.action = PlanAction::Configure;
            p.reason = None;
            p.vm_id = Some(vm.id.clone());
            p.disks = spec.disks.len();
            p.capacity_bytes = spec
                .disks
                .iter()
                .filter(|d| d.enabled_for_replication)
                .filter_map(|d| d.vm_disk.capacity)
                .sum::<i64>()
                * 1024;
            if !excluded.is_empty() {
                p.warnings.push(format!(
                    "not replicated (unsupported): {}",
                    excluded.join(", ")
                ));
            }
            p.excluded_disks = excluded;
        }
        Decision::Skip { vm_id, reason, .. } => {
            p.action = PlanAction::Skip;
            p.vm_id = vm_id;
            p.reason = Some(reason);
        }
        Decision::Fail { vm_id, reason } => {
            p.vm_id = vm_id;
            p.reason = Some(reason);
        }
    }
    p
}

fn failed(job: &Job, reason: String) -> PlanRow {
    PlanRow {
        job_id: job.id,
        vm_name: job.vm_label().to_string(),
        vm_id: job.spec.vm.id.clone(),
        action: PlanAction::Fail,
        reason: Some(reason),
        target_datastore: job.spec.target_datastore.clone(),
        storage_policy: job.spec.storage_policy.clone(),
        replication_server: job.spec.replication_server.clone(),
        disks: 0,
        excluded_disks: Vec::new(),
        capacity_bytes: 0,
        warnings: Vec::new(),
        change_ticket: job.spec.change_ticket.clone(),
        notes: job.spec.notes.clone(),
    }
}

/// The server decides at configure time; the plan can only warn that a datastore looks short.
fn warn_about_space(disc: &Discovery, needed: &HashMap<String, i64>, planned: &mut [PlanRow]) {
    for (name, bytes) in needed {
        let Some(ds) = disc.datastores.iter().find(|d| &d.name == name) else {
            continue;
        };
        let Some(free) = ds.free_space else { continue };
        if *bytes > free {
            let warning = format!(
                "datastore {name} has {} free; the VMs planned onto it need up to {}",
                gib(free),
                gib(*bytes)
            );
            for p in planned
                .iter_mut()
                .filter(|p| &p.target_datastore == name && p.action == PlanAction::Configure)
            {
                p.warnings.push(warning.clone());
            }
        }
    }
}

pub fn print_table(name: &str, id: i64, planned: &[PlanRow], calls: u64) {
    let count = |a: PlanAction| planned.iter().filter(|p| p.action == a).count();
    println!(
        "plan for batch {id} \"{name}\": {} to configure, {} to skip, {} would fail ({calls} API calls, nothing configured)",
        count(PlanAction::Configure),
        count(PlanAction::Skip),
        count(PlanAction::Fail)
    );
    let width = planned
        .iter()
        .map(|p| p.vm_name.chars().count())
        .max()
        .unwrap_or(2)
        .max(2);
    for p in planned {
        let detail = match p.action {
            PlanAction::Configure => format!(
                "-> {}{}{}, {} disks, {}",
                p.target_datastore,
                p.storage_policy
                    .as_deref()
                    .map(|s| format!(" / {s}"))
                    .unwrap_or_default(),
                p.replication_server
                    .as_deref()
                    .map(|s| format!(" via {s}"))
                    .unwrap_or_default(),
                p.disks,
                gib(p.capacity_bytes)
            ),
            _ => p.reason.clone().unwrap_or_default(),
        };
        println!(
            "  {:<width$}  {:<9}  {detail}",
            p.vm_name,
            p.action.as_str()
        );
        for w in &p.warnings {
            println!("  {:<width$}  {:<9}  warning: {w}", "", "");
        }
    }
}
