//! `vrbulk plan`: a dry run of discovery and validation for every unfinished job of a batch —
//! what would be configured where, what would be skipped or fail, and why — without
//! configuring anything or touching the jobs. Operators attach it to the change request.

use crate::exit::Exit;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use crate::config::ConfigFile;
use crate::queue::{Batch, Queue};
use crate::report::{Format, PlanReport, WaveForecast};
use crate::units::gib;
use crate::workflow::plan::{batch_to_plan, PlanTarget};
use crate::workflow::{connect, plan_jobs, Plan, PlanAction, PlanCapacity};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  vrbulk plan --batch 3 > wave-3-plan.txt
  vrbulk plan --batch 3 --format html -o wave-3-plan.html
Without --batch, the newest configure batch with jobs left, named on the first line.
Exit code 1 when any VM would fail, so that a script can stop before `vrbulk run`; 2 when
there is nothing to plan (no configure batch with jobs left, or a day-2 operation batch).")]
pub struct PlanArgs {
    /// The configure batch to plan [default: the newest with jobs left].
    #[arg(long)]
    pub batch: Option<i64>,
    /// VMs per lookup call.
    #[arg(long, default_value_t = crate::workflow::LOOKUP_GROUP)]
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

pub async fn run(args: PlanArgs, config: Option<&Path>, db: &Path) -> anyhow::Result<Exit> {
    // Refused before the appliance is asked anything, not after a long plan.
    let format = Format::for_output(args.format, args.output.as_deref())?;
    let file = ConfigFile::load(config)?;
    let limits = file.capacity()?;
    let (queue, newest) = Queue::open_batch(db, args.batch)?;
    let PlanTarget {
        batch,
        chosen_because,
    } = batch_to_plan(&queue, args.batch.map(|_| newest))?;
    let jobs = queue.jobs(batch.id)?;
    let learnt = queue.learnt_limits()?;
    drop(queue);
    let client = connect(&file).await?;
    let plan = plan_jobs(&client, &jobs, args.lookup_group, &limits, &learnt)
        .await
        .context("the plan is incomplete")?;
    client.logout().await.ok();
    let link = wave_forecasts(&Queue::open(db)?, &plan)?;
    let would_fail = plan.rows.iter().any(|p| p.action == PlanAction::Fail);
    // The table says it on its first line; a JSON or report output keeps stdout to itself.
    let quoted = chosen_because.map(|why| format!(" ({why})"));
    if args.format.is_some() || args.output.is_some() || args.json {
        if let Some(why) = &quoted {
            eprintln!("planning batch {} \"{}\"{why}", batch.id, batch.name);
        }
    }
    if args.format.is_some() || args.output.is_some() {
        let now = crate::queue::system_clock()();
        let calls = client.metrics().total_calls();
        let report = PlanReport::new(&batch, &jobs, plan.rows, calls, now)
            .with_capacity(plan.capacity)
            .with_link(link);
        super::report::write_output(&report.render(format)?, args.output.as_deref())?;
    } else if args.json {
        println!("{}", serde_json::to_string_pretty(&plan.rows)?);
    } else {
        print_table(
            &batch,
            quoted.as_deref().unwrap_or_default(),
            &plan,
            client.metrics().total_calls(),
        );
        for f in &link {
            println!("\n{}", f.words());
        }
    }
    // A script can stop before `run` when the plan already knows some VMs will fail.
    if would_fail {
        return Ok(Exit::JobsFailed);
    }
    Ok(Exit::Ok)
}

/// The plan as a table; `why` (which may be empty) follows the batch's name on the first line.
pub fn print_table(batch: &Batch, why: &str, plan: &Plan, calls: u64) {
    let planned = &plan.rows;
    let count = |a: PlanAction| planned.iter().filter(|p| p.action == a).count();
    println!(
        "plan for batch {} \"{}\"{why}: {} to configure, {} to skip, {} would fail ({calls} API calls, nothing configured)",
        batch.id,
        batch.name,
        count(PlanAction::Configure),
        count(PlanAction::Skip),
        count(PlanAction::Fail)
    );
    for line in capacity_lines(&plan.capacity) {
        println!("{line}");
    }
    let width = planned
        .iter()
        .map(|p| p.vm_name.chars().count())
        .max()
        .unwrap_or(2)
        .max(2);
    // With several target sites a datastore name may repeat: say which site.
    let mut sites: Vec<&str> = planned
        .iter()
        .filter_map(|p| p.target_site.as_deref())
        .collect();
    sites.sort_unstable();
    sites.dedup();
    for p in planned {
        let site = match (&p.target_site, sites.len()) {
            (Some(site), 2..) => format!("{site}: "),
            _ => String::new(),
        };
        let detail = match p.action {
            PlanAction::Configure => format!(
                "-> {site}{}{}{}, {}, {}",
                p.target_datastore,
                p.storage_policy
                    .as_deref()
                    .map(|s| format!(" / {s}"))
                    .unwrap_or_default(),
                p.replication_server
                    .as_deref()
                    .map(|s| format!(" via {s}"))
                    .unwrap_or_default(),
                super::count(p.disks, "disk", "disks"),
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

/// Per pairing the plan would configure VMs over, when they would be protected: by what the
/// newest run of this queue that measured the pairing found of its link, else nothing but that
/// `run` measures it.
pub fn wave_forecasts(queue: &Queue, plan: &Plan) -> anyhow::Result<Vec<WaveForecast>> {
    let size: std::collections::HashMap<i64, i64> = plan
        .rows
        .iter()
        .filter(|r| r.action == PlanAction::Configure)
        .map(|r| (r.job_id, r.capacity_bytes))
        .collect();
    let mut out = Vec::new();
    for (pairing, (target, jobs)) in &plan.pairings {
        let sizes: Vec<u64> = jobs
            .iter()
            .filter_map(|j| size.get(j))
            .map(|b| (*b).max(0) as u64)
            .collect();
        if sizes.is_empty() {
            continue;
        }
        let measured = queue
            .measured_link(pairing)
            .with_context(|| format!("reading what runs measured of pairing {pairing}"))?;
        out.push(WaveForecast::of(pairing, Some(target), &sizes, measured));
    }
    Ok(out)
}

/// What the plan counted room by: the appliance's limits and where each came from, then each
/// VR server that an earlier refusal showed to take fewer, in the appliance's words.
pub fn capacity_lines(c: &PlanCapacity) -> Vec<String> {
    let mut lines = vec![format!(
        "capacity counted by ({}): {}",
        c.limits.appliance(),
        c.limits.summary()
    )];
    for l in &c.learnt {
        lines.push(format!(
            "  VR server '{}' counted full at {} replications: the appliance refused a VM onto \
             it at {}: {}",
            l.server_name,
            l.replications,
            crate::timefmt::utc(l.learnt_at),
            l.words
        ));
    }
    lines
}
