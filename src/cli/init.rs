//! `vrbulk init`: a commented `vrbulk.toml` and an example `vms.csv` in the current folder, the
//! starting point for an operator's first batch. The templates are `samples/`, embedded.

use crate::exit::Exit;
use std::path::Path;

use clap::Args;

/// The commented settings file: every key, its default and when to change it.
pub const CONFIG_TEMPLATE: &str = include_str!("../../samples/vrbulk.toml");
/// An example inventory of VMs, one row per VM.
pub const CSV_TEMPLATE: &str = include_str!("../../samples/vms.csv");

pub const CONFIG_FILE: &str = crate::config::DEFAULT_CONFIG;

/// A file `init` would write is there already: nothing was written (exit 2).
#[derive(Debug, thiserror::Error)]
#[error(
    "{} already exists; vrbulk init leaves it as it is. Move it away, or run `vrbulk init \
     --force` to overwrite vrbulk.toml and vms.csv",
    .0.display()
)]
pub struct Exists(pub std::path::PathBuf);
pub const CSV_FILE: &str = "vms.csv";

#[derive(Debug, Args)]
#[command(after_help = "Example:
  mkdir wave-1 && cd wave-1 && vrbulk init")]
pub struct InitArgs {
    /// Overwrite vrbulk.toml and vms.csv when they exist.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: InitArgs) -> anyhow::Result<Exit> {
    write_templates(Path::new("."), args.force)
}

/// Writes both templates into `dir`. Without `force`, an existing file stops everything
/// before anything is written: exit 2, naming the file.
pub fn write_templates(dir: &Path, force: bool) -> anyhow::Result<Exit> {
    let files = [(CONFIG_FILE, CONFIG_TEMPLATE), (CSV_FILE, CSV_TEMPLATE)];
    if !force {
        if let Some((name, _)) = files.iter().find(|(name, _)| dir.join(name).exists()) {
            return Err(Exists(dir.join(name)).into());
        }
    }
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    println!(
        "
Next steps:
  1. Edit vrbulk.toml: [source] url and user of your source site's vSphere Replication
     appliance, and how to trust its certificate (ca_file or thumbprint).
  2. Edit vms.csv: one row per VM, with its target datastore (or set [defaults]).
     `vrbulk inventory export -o vms.csv` writes one from the live inventory.
  3. export VRBULK_PASSWORD=…           # never in a file or on the command line
  4. vrbulk config check --connect       # logs in to both sites, lists the pairings
  5. vrbulk import vms.csv               # validates every row, creates the batch
  6. vrbulk plan                         # what would happen, changes nothing
  7. vrbulk run                          # configures replication; resumable
To try it all first against the built-in simulator: `vrbulk demo`."
    );
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigFile;

    /// The template with every `# key = value` line of `[defaults]`, `[run]`, `[limits]` and
    /// `[monitor]` made live.
    fn examples_made_live(template: &str) -> String {
        let mut section = "";
        template
            .lines()
            .map(|line| {
                if line.starts_with('[') {
                    section = line;
                }
                let live = line.strip_prefix("# ").filter(|rest| {
                    rest.split_once(" = ").is_some_and(|(key, _)| {
                        !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    })
                });
                match live {
                    Some(rest)
                        if ["[defaults]", "[run]", "[limits]", "[monitor]"].contains(&section) =>
                    {
                        rest.to_string()
                    }
                    _ => line.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn every_example_value_of_defaults_run_and_limits_is_valid() {
        let live = examples_made_live(CONFIG_TEMPLATE);
        let file = ConfigFile::parse(&live).unwrap_or_else(|e| panic!("{e}\n{live}"));
        file.defaults.validate().unwrap();
        // Each key of both sections is shown, so that an operator sees them all.
        assert!(file.defaults.rpo.is_some() && file.defaults.disk_format.is_some());
        let d = &file.defaults;
        let shown = [
            d.pairing.is_some(),
            d.target_datastore.is_some(),
            d.storage_policy.is_some(),
            d.replication_server.is_some(),
            d.mpit_instances.is_some(),
            d.mpit_days.is_some(),
            d.quiesce.is_some(),
            d.network_compression.is_some(),
            d.lwd_encryption.is_some(),
            d.auto_replicate_new_disks.is_some(),
        ];
        assert!(shown.iter().all(|s| *s), "{d:?}");
        let r = &file.run;
        assert!(
            r.workers.is_some()
                && r.lookup_group.is_some()
                && r.submit_group.is_some()
                && r.max_attempts.is_some()
                && r.poll_interval_seconds.is_some()
                && r.request_retries.is_some()
                && r.lease_seconds.is_some(),
            "{r:?}"
        );
        file.for_run(
            &crate::config::FixedEnvironment::default(),
            &crate::settings::RunSettings::default(),
        )
        .unwrap();
        let l = file.capacity().unwrap();
        assert!(
            l.replications_per_server.is_some()
                && l.replications_per_appliance.is_some()
                && l.replications_per_vcenter.is_some(),
            "{l:?}"
        );
        let m = &file.monitor;
        assert!(m.problems().is_empty(), "{:?}", m.problems());
        assert!(
            m.interval.is_some()
                && m.rpo_grace_minutes.is_some()
                && m.rpo_hold_minutes.is_some()
                && m.paused_after_minutes.is_some()
                && m.not_active_after_minutes.is_some(),
            "{m:?}"
        );
        for key in [
            "requests_per_minute",
            "requests_per_minute_per_ip",
            "rate_window_seconds",
        ] {
            assert!(CONFIG_TEMPLATE.contains(&format!("# {key} = ")), "{key}");
        }
    }

    #[test]
    fn the_notification_examples_are_valid_once_uncommented() {
        let from = CONFIG_TEMPLATE
            .find("#  [[notify.webhook]]")
            .expect("the template shows the notification channels");
        let live: String = CONFIG_TEMPLATE[from..]
            .lines()
            .map(|l| l.strip_prefix("#  ").unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let file = ConfigFile::parse(&live).unwrap_or_else(|e| panic!("{e}\n{live}"));
        assert!(
            file.notify.problems().is_empty(),
            "{:?}",
            file.notify.problems()
        );
        assert_eq!(file.notify.channels().len(), 3);
    }

    #[test]
    fn the_template_points_at_the_simulator_and_leaves_settings_to_the_built_in_defaults() {
        let file = ConfigFile::parse(CONFIG_TEMPLATE).unwrap();
        assert_eq!(file.source.url.as_deref(), Some("https://127.0.0.1:8443"));
        assert_eq!(file.defaults, Default::default());
    }
}
