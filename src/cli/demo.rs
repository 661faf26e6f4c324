//! `vrbulk demo`: the whole job, start to finish, against the built-in simulator — a simulated
//! appliance over HTTPS (trusted by its thumbprint), `samples/vms.csv` imported, the plan, the
//! run with live progress, the summary and the reports — in a folder the operator can inspect
//! afterwards with the ordinary commands.

use crate::exit::Exit;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::import::{self, ImportArgs};
use super::progress::{Progress, ProgressMode};
use super::report::write_output;
use super::summary;
use super::{plan, Profile};
use crate::queue::Queue;
use crate::report::{Format, Report};
use crate::runner::follow::{self, WatchOptions};
use crate::runner::{self, RunOptions};
use crate::secret::Secret;
use crate::sim::{SimConfig, Simulator};
use crate::vr::{ApiVersion, ClientSettings, Credentials, Thumbprint, TlsTrust};

/// The sample every operator can copy; embedded so the demo runs from any folder.
const SAMPLE_CSV: &str = include_str!("../../samples/vms.csv");

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  cargo run --release -- demo\n  vrbulk demo --dir /tmp/try-vrbulk --task-seconds 0.2"
)]
pub struct DemoArgs {
    /// Folder for the demo's settings, queue, logs and reports [default: ./vrbulk-demo-<time>].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// How long each simulated configure task takes.
    #[arg(long, default_value_t = 1.0)]
    pub task_seconds: f64,
    /// How many times as fast as the wall clock the initial syncs run (hours of copying pass
    /// in seconds).
    #[arg(long, default_value_t = 20_000.0)]
    pub sync_time_scale: f64,
    /// How to show progress.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

pub async fn run(args: DemoArgs, quiet: bool) -> anyhow::Result<Exit> {
    let dir = args.dir.clone().unwrap_or_else(default_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let db = dir.join("vrbulk.db");
    anyhow::ensure!(
        !db.exists(),
        "{} already holds a demo; pick another --dir",
        dir.display()
    );

    // The appliance's own limits: the demo shows what a real night looks like, except that
    // the initial syncs' hours pass in seconds.
    anyhow::ensure!(
        args.sync_time_scale.is_finite() && args.sync_time_scale > 0.0,
        "--sync-time-scale must be above 0"
    );
    let cfg = SimConfig {
        task_seconds: args.task_seconds,
        sync_time_scale: args.sync_time_scale,
        ..SimConfig::default()
    };
    let sim = Simulator::start(cfg.clone()).await?;
    let thumbprint = sim
        .thumbprint()
        .context("the simulator serves no certificate")?
        .to_string();
    let inv = sim.inventory();
    heading(&format!(
        "1. A simulated vSphere Replication appliance at {} ({} -> {}, {} VMs)",
        sim.url(),
        inv.local_vc.name,
        inv.remote_vc.name,
        inv.vms.len()
    ));
    println!(
        "   certificate thumbprint {thumbprint} (pinned: no certificate warning to click away)"
    );

    let config = write_settings(&dir, sim.url(), &cfg.user, &thumbprint)?;
    let csv = dir.join("vms.csv");
    std::fs::write(&csv, SAMPLE_CSV).with_context(|| format!("writing {}", csv.display()))?;

    heading("2. Import samples/vms.csv: one job per VM, validated before anything is written");
    import::run(
        ImportArgs {
            file: Some(csv.clone()),
            name: Some("demo wave 1".into()),
            inventory: false,
            patterns: Vec::new(),
            exclude: Vec::new(),
            max_attempts: 5,
            again: false,
            check: false,
            profile: Profile::default(),
        },
        Some(&config),
        &db,
    )
    .await?;

    let credentials = Credentials {
        user: cfg.user.clone(),
        password: Secret::new(cfg.password.clone()),
    };
    let settings = ClientSettings {
        url: sim.url().parse().context("simulator URL")?,
        api_version: ApiVersion::V2,
        trust: TlsTrust::Pinned(Thumbprint::parse(&thumbprint).map_err(anyhow::Error::msg)?),
        timeout: Duration::from_secs(30),
        page_size: 1000,
        source: credentials.clone(),
        target: credentials,
        limits: sim.limits(),
    };

    heading("3. Plan: what would happen to each VM, without configuring anything");
    let queue = Queue::open(&db)?;
    let batch = queue.latest_batch()?.context("the import made no batch")?;
    let jobs = queue.jobs(batch.id)?;
    drop(queue);
    let client = crate::workflow::session::login(settings.clone()).await?;
    let planned = crate::workflow::plan_jobs(
        &client,
        &jobs,
        crate::workflow::LOOKUP_GROUP,
        &Default::default(),
        &[],
    )
    .await
    .context("the plan is incomplete")?;
    client.logout().await.ok();
    plan::print_table(&batch, "", &planned, client.metrics().total_calls());

    heading(&format!(
        "4. Run: grouped lookups and submits, polls timed to the tasks, within the appliance's \
         limit of {} requests a minute; as many initial syncs at once as the link carries best \
         (`auto`: the run measures the link and adapts its cap), the smallest VMs first",
        sim.limits().quota()
    ));
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let opts = RunOptions {
        batch: Some(batch.id),
        poll_interval: Duration::from_millis(500),
        ..RunOptions::default()
    };
    let budget = crate::vr::Budget::shared(&settings.url, settings.limits);
    let progress = Progress::start(
        db.clone(),
        batch.id,
        Some(budget),
        args.progress,
        quiet,
        opts.max_initial_syncs,
    );
    let outcome = runner::run(Queue::open(&db)?, settings.clone(), opts, stop_rx).await;
    progress.finish().await;
    let outcome = outcome.context("running the demo batch")?;
    summary::print(&outcome, &db)?;
    let stats = sim.stats();
    println!(
        "   the simulator saw {} configure calls for {} VMs, and no VM configured twice: {}",
        stats
            .calls
            .get("configureReplication")
            .copied()
            .unwrap_or(0),
        stats.configure_attempts.len(),
        stats.configured_more_than_once.is_empty()
    );
    println!(
        "   (the failures are on purpose: the simulator's ds-full-01 is nearly full, and the report\n    groups them under that cause with what to do next)"
    );
    print_caps(
        &Queue::open(&db)?.link_samples(batch.id)?,
        cfg.sync_time_scale,
    );

    heading("5. Watch: the initial syncs, until every configured VM is protected");
    println!(
        "   (the simulated link carries {:.0} Mbit/s, but its hours pass {:.0}x faster than yours:\n    \
         the throughput below reads that much too high, and the time left that much too low)",
        cfg.link.bandwidth_mbps, cfg.sync_time_scale
    );
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let watching = WatchOptions {
        batch: batch.id,
        interval: Duration::from_secs(1),
        once: false,
    };
    let followed = follow::watch(Queue::open(&db)?, settings, watching, stop_rx, |round| {
        if !quiet {
            println!("   {}", super::watch::progress_line(round));
        }
    })
    .await
    .context("watching the demo batch")?;
    if let Some(last) = &followed.last {
        println!(
            "   {} VMs protected; the powered-off one waits to be powered on (`vrbulk watch` exits 5 then)",
            last.tally.count(crate::queue::Readiness::Protected)
        );
    }
    sim.shutdown().await;

    heading("6. Reports for the change board, from the queue's own record");
    let reports = dir.join("reports");
    std::fs::create_dir_all(&reports).with_context(|| format!("creating {}", reports.display()))?;
    let queue = Queue::open(&db)?;
    let report = Report::load(&queue, batch.id, crate::queue::system_clock()())?;
    for format in Format::ALL {
        let path = reports.join(format!("wave-1.{format}"));
        write_output(&report.render(format)?, Some(&path))?;
        println!("   {}", path.display());
    }

    heading("7. What to look at next");
    print_next_steps(&dir, &db, &config);
    Ok(Exit::Ok)
}

/// `./vrbulk-demo-<time>`: a new folder for each demo.
pub fn default_dir() -> PathBuf {
    PathBuf::from(format!(
        "vrbulk-demo-{}",
        jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S")
    ))
}

fn heading(text: &str) {
    println!("\n== {text}");
}

/// The settings a real run would use, pointing at the simulator, for the operator to read.
fn write_settings(dir: &Path, url: &str, user: &str, thumbprint: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join("vrbulk.toml");
    let text = format!(
        "# Written by `vrbulk demo` for its simulator, which has stopped since.\n\
         # Against a real appliance: `vrbulk init`, then edit url, user and thumbprint.\n\n\
         [source]\nurl = \"{url}\"\nuser = \"{user}\"\nthumbprint = \"{thumbprint}\"\n"
    );
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn print_next_steps(dir: &Path, db: &Path, config: &Path) {
    let vrbulk = program_name();
    let on_path = vrbulk == "vrbulk";
    let db_arg = shell_quote(&db.display().to_string());
    let report = shell_quote(&dir.join("report.html").display().to_string());
    println!("   the demo's files are in {}/", dir.display());
    println!("     {}  the settings used", config.display());
    println!(
        "     {}  the queue: batch, jobs and their event log",
        db.display()
    );
    if on_path {
        println!("   inspect them (the simulator is gone; these read the queue only):");
    } else {
        println!(
            "   inspect them (the simulator is gone; these read the queue only; they name this \
             binary in full,\n   as `vrbulk` on your PATH is missing or another build):"
        );
    }
    println!("     {vrbulk} --db {db_arg} status");
    println!("     {vrbulk} --db {db_arg} status --json");
    println!("     {vrbulk} --db {db_arg} report --format html -o {report}");
    if on_path {
        println!("   do the same against a real appliance:");
    } else {
        println!(
            "   do the same against a real appliance, once `cargo install --path .` in the source \
             folder\n   has put this build on your PATH:"
        );
    }
    println!("     vrbulk init                        # writes vrbulk.toml and an example vms.csv");
    println!("     $EDITOR vrbulk.toml vms.csv        # [source] url, user, thumbprint; your VMs");
    println!("     export VRBULK_PASSWORD='…'         # or let vrbulk ask");
    println!("     vrbulk config check --connect");
    println!("     vrbulk import vms.csv --name wave-1");
    println!("     vrbulk plan > plan.txt             # attach to the change request");
    println!(
        "     vrbulk run --until 05:30           # inside the change window, at the link's pace"
    );
    println!("     vrbulk watch                       # until every VM is protected");
}

/// How the suggested commands name this program: `vrbulk` when that is what a shell would run
/// for the name, else this binary's full path. After `cargo run -- demo` nothing is on PATH (or
/// an older install is), and a suggestion that fails, or runs another version, is worse than a
/// long one.
fn program_name() -> String {
    let exe = std::env::current_exe().ok();
    program_for(std::env::var_os("PATH").as_deref(), exe.as_deref())
}

fn program_for(path_var: Option<&OsStr>, exe: Option<&Path>) -> String {
    let Some(exe) = exe else {
        return "vrbulk".into();
    };
    let name = format!("vrbulk{}", std::env::consts::EXE_SUFFIX);
    // A shell runs the first match on PATH, so only that one counts.
    let first = path_var
        .into_iter()
        .flat_map(std::env::split_paths)
        .map(|folder| folder.join(&name))
        .find(|candidate| candidate.is_file());
    let same = match (first, std::fs::canonicalize(exe)) {
        (Some(found), Ok(this)) => std::fs::canonicalize(found).is_ok_and(|f| f == this),
        _ => false,
    };
    if same {
        "vrbulk".into()
    } else {
        shell_quote(&exe.to_string_lossy())
    }
}

/// `text` as one word for a POSIX shell, so a path with spaces can be pasted as printed.
fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The caps `auto` went through as it measured the link, in the order it set them.
fn print_caps(samples: &[crate::queue::LinkSample], scale: f64) {
    let mut caps: Vec<u32> = samples.iter().filter_map(|s| s.cap).collect();
    caps.dedup();
    let Some(best) = samples.iter().map(|s| s.mbps).reduce(f64::max) else {
        return;
    };
    let steps: Vec<String> = caps.iter().map(u32::to_string).collect();
    println!(
        "   auto: the cap on initial syncs went {} as the run measured the link ({} \
         measurements; the link carried up to {} between two of them, in the simulator's time)",
        steps.join(" -> "),
        samples.len(),
        crate::units::mbps(best / scale)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_folder_is_one_git_ignores() {
        let name = default_dir().display().to_string();
        let ignored = include_str!("../../.gitignore")
            .lines()
            .map(|line| line.trim_matches('/'))
            .any(|pattern| crate::input::glob_match(pattern, &name));
        assert!(ignored, "{name} is not in .gitignore");
    }

    #[test]
    fn commands_name_vrbulk_only_when_the_path_finds_this_binary() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("build").join("vrbulk");
        std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
        std::fs::write(&exe, b"").unwrap();
        let other = dir.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("vrbulk"), b"").unwrap();
        let path = |folders: &[&Path]| std::env::join_paths(folders).unwrap();
        let full = exe.display().to_string();

        assert_eq!(program_for(None, Some(&exe)), full);
        assert_eq!(
            program_for(Some(&path(&[dir.path()])), Some(&exe)),
            full,
            "not on PATH"
        );
        assert_eq!(
            program_for(Some(&path(&[exe.parent().unwrap()])), Some(&exe)),
            "vrbulk"
        );
        assert_eq!(
            program_for(Some(&path(&[&other, exe.parent().unwrap()])), Some(&exe)),
            full,
            "another vrbulk comes first on PATH"
        );
        assert_eq!(program_for(Some(&path(&[&other])), None), "vrbulk");
    }

    #[test]
    fn paths_are_quoted_for_the_shell_only_when_they_need_it() {
        assert_eq!(
            shell_quote("/home/op/vrbulk/target/release/vrbulk"),
            "/home/op/vrbulk/target/release/vrbulk"
        );
        assert_eq!(shell_quote("/My Files/vrbulk"), "'/My Files/vrbulk'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
