//! The `[defaults]` section of `vrbulk.toml`: the values a CSV cell falls back to when it is
//! empty (or its column absent), and the whole profile of an inventory selection. Its keys are
//! the CSV's column names and obey the same rules.

use clap::Args;
use serde::{Deserialize, Serialize};

use super::cells::{self, Text};
use super::{InputError, InputErrors};
use crate::domain::{JobSpec, ReplicationSettings};
use crate::vr::model::DiskFormat;

/// Replication settings, each optional: `[defaults]` of vrbulk.toml (serde reads it), and the
/// settings flags every command that takes them shares (clap flattens it into `import`, `retry`
/// and `reconfigure`), a flag winning over its key ([`over`](Self::over)). A setting left out
/// falls back to the built-in default ([`ReplicationSettings::default`]: RPO 60,
/// `SAME_AS_SOURCE`, everything off, no MPIT).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Remote vCenter name or pairing id.
    #[arg(long)]
    pub pairing: Option<String>,
    /// Datastore name on the target site.
    #[arg(long)]
    pub target_datastore: Option<String>,
    /// Storage policy name on the target site.
    #[arg(long)]
    pub storage_policy: Option<String>,
    /// Target VR server name, or `auto`.
    #[arg(long)]
    pub replication_server: Option<String>,
    /// Recovery point objective in minutes (5..1440).
    #[arg(long)]
    pub rpo: Option<u32>,
    /// Point-in-time instances to keep per day (0: MPIT off).
    #[arg(long)]
    pub mpit_instances: Option<u32>,
    /// Days of point-in-time instances.
    #[arg(long)]
    pub mpit_days: Option<u32>,
    /// Quiesce the guest OS (true/false).
    #[arg(long, value_name = "BOOL")]
    pub quiesce: Option<bool>,
    /// Compress replication traffic (true/false).
    #[arg(long, value_name = "BOOL")]
    pub network_compression: Option<bool>,
    /// Encrypt replication traffic (true/false).
    #[arg(long, value_name = "BOOL")]
    pub lwd_encryption: Option<bool>,
    /// Replicate disks added to the VM later (true/false).
    #[arg(long, value_name = "BOOL")]
    pub auto_replicate_new_disks: Option<bool>,
    /// Disk format on the target (e.g. SAME_AS_SOURCE, THIN).
    #[arg(long)]
    pub disk_format: Option<String>,
}

impl Defaults {
    /// These settings (flags) over `base` (`[defaults]`): a setting given here wins.
    pub fn over(&self, base: &Defaults) -> Defaults {
        let (p, b) = (self.clone(), base.clone());
        Defaults {
            pairing: p.pairing.or(b.pairing),
            target_datastore: p.target_datastore.or(b.target_datastore),
            storage_policy: p.storage_policy.or(b.storage_policy),
            replication_server: p.replication_server.or(b.replication_server),
            rpo: p.rpo.or(b.rpo),
            mpit_instances: p.mpit_instances.or(b.mpit_instances),
            mpit_days: p.mpit_days.or(b.mpit_days),
            quiesce: p.quiesce.or(b.quiesce),
            network_compression: p.network_compression.or(b.network_compression),
            lwd_encryption: p.lwd_encryption.or(b.lwd_encryption),
            auto_replicate_new_disks: p.auto_replicate_new_disks.or(b.auto_replicate_new_disks),
            disk_format: p.disk_format.or(b.disk_format),
        }
    }

    /// Checks the keys by the CSV cells' rules; each problem names its key as the column.
    ///
    /// `mpit_days` without `mpit_instances` is allowed here (unlike in a row): it is the
    /// retention that rows turning MPIT on will get. With both, the pair must be one that
    /// vSphere Replication keeps (at least a day, at most 24 copies).
    pub fn validate(&self) -> Result<(), Vec<InputError>> {
        let errors: Vec<InputError> = self
            .problems()
            .into_iter()
            .map(|(key, message)| {
                // Said in the message too, as the same column name may also be in the CSV.
                InputError::new(None, Some(key), format!("{message} (in [defaults])"))
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Checks a profile whose values came from flags (`import --rpo 2`): each problem names its
    /// flag, where [`validate`](Self::validate) would name the `[defaults]` key.
    pub fn check_flags(&self) -> Result<(), InputErrors> {
        let errors: Vec<InputError> = self
            .problems()
            .into_iter()
            .map(|(key, message)| {
                InputError::new(
                    None,
                    None,
                    format!("--{}: {message}", key.replace('_', "-")),
                )
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(InputErrors(errors))
        }
    }

    /// Each bad key and what is wrong with it, in key order: the rules of
    /// [`validate`](Self::validate), for the settings file's own check.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        let mut check = |key: &'static str, result: Result<(), String>| {
            if let Err(message) = result {
                problems.push((key, message));
            }
        };
        for (key, value, rule) in [
            ("pairing", &self.pairing, Text::Pairing),
            ("target_datastore", &self.target_datastore, Text::Datastore),
            ("storage_policy", &self.storage_policy, Text::StoragePolicy),
            (
                "replication_server",
                &self.replication_server,
                Text::ReplicationServer,
            ),
        ] {
            match value.as_deref().map(str::trim) {
                Some("") => check(
                    key,
                    Err("must not be empty: leave the key out to have no default".into()),
                ),
                Some(name) => check(key, rule.check(name)),
                None => {}
            }
        }
        if let Some(rpo) = self.rpo {
            check("rpo", cells::check_rpo(rpo).map(drop));
        }
        if let Some(n) = self.mpit_instances {
            check("mpit_instances", cells::check_count(n).map(drop));
        }
        if let Some(n) = self.mpit_days {
            check("mpit_days", cells::check_count(n).map(drop));
        }
        if let Some(instances) = self.mpit_instances.filter(|&n| n > 0) {
            let days = self.mpit_days.unwrap_or(cells::MPIT_DEFAULT_DAYS);
            if let Err((field, message)) = cells::check_mpit(instances, days) {
                let key = match field {
                    cells::MpitField::Instances => "mpit_instances",
                    cells::MpitField::Days => "mpit_days",
                };
                check(key, Err(message));
            }
        }
        if let Some(format) = &self.disk_format {
            check(
                "disk_format",
                cells::parse_disk_format(format.trim()).map(drop),
            );
        }
        problems
    }

    /// The replication settings of a row that leaves every setting empty. Assumes
    /// [`validate`](Self::validate) passed; an invalid disk format would fall back to the
    /// built-in one.
    pub fn settings(&self) -> ReplicationSettings {
        let builtin = ReplicationSettings::default();
        let mpit_instances = self.mpit_instances.unwrap_or(builtin.mpit_instances);
        ReplicationSettings {
            rpo: self.rpo.unwrap_or(builtin.rpo),
            mpit_instances,
            // A retention without instances means nothing to the API; keep the job's settings
            // honest about MPIT being off.
            mpit_days: if mpit_instances > 0 {
                self.mpit_days.unwrap_or(cells::MPIT_DEFAULT_DAYS)
            } else {
                0
            },
            quiesce: self.quiesce.unwrap_or(builtin.quiesce),
            network_compression: self
                .network_compression
                .unwrap_or(builtin.network_compression),
            lwd_encryption: self.lwd_encryption.unwrap_or(builtin.lwd_encryption),
            auto_replicate_new_disks: self
                .auto_replicate_new_disks
                .unwrap_or(builtin.auto_replicate_new_disks),
            disk_format: self
                .disk_format
                .as_deref()
                .and_then(|f| f.parse::<DiskFormat>().ok())
                .unwrap_or(builtin.disk_format),
        }
    }

    pub fn pairing(&self) -> Option<String> {
        non_empty(&self.pairing)
    }

    pub fn target_datastore(&self) -> Option<String> {
        non_empty(&self.target_datastore)
    }

    pub fn storage_policy(&self) -> Option<String> {
        non_empty(&self.storage_policy)
    }

    /// `None` for automatic placement, also when the key says `auto`.
    pub fn replication_server(&self) -> Option<String> {
        non_empty(&self.replication_server).filter(|s| !is_auto(s))
    }

    /// The keys that are set, with their values, as the audit records a profile and
    /// `config check` shows it.
    pub fn set_keys(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(keys)) => {
                keys.into_iter().filter(|(_, v)| !v.is_null()).collect()
            }
            _ => serde_json::Map::new(),
        }
    }
}

impl Defaults {
    /// `job` corrected by the keys given here (an operator's fix to a failed job): the keys
    /// replace the job's own, the others stay. Assumes [`validate`](Self::validate) passed.
    /// Returns the corrected job and each change in words (`rpo 60 -> 15`), for the record.
    pub fn correct(&self, job: &JobSpec) -> (JobSpec, Vec<String>) {
        let mut fixed = job.clone();
        let mut changes = Vec::new();
        let mut note = |key: &str, before: String, after: String| {
            if before != after {
                changes.push(format!("{key} {before} -> {after}"));
            }
        };
        let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        if let Some(ds) = self.target_datastore() {
            note("target_datastore", job.target_datastore.clone(), ds.clone());
            fixed.target_datastore = ds;
        }
        if let Some(policy) = self.storage_policy() {
            note("storage_policy", shown(&job.storage_policy), policy.clone());
            fixed.storage_policy = Some(policy);
        }
        if self.replication_server.is_some() {
            let server = self.replication_server();
            let auto = |v: &Option<String>| v.clone().unwrap_or_else(|| "auto".into());
            note(
                "replication_server",
                auto(&job.replication_server),
                auto(&server),
            );
            fixed.replication_server = server;
        }
        if let Some(pairing) = self.pairing() {
            note("pairing", shown(&job.pairing), pairing.clone());
            fixed.pairing = Some(pairing);
        }
        let s = &mut fixed.settings;
        let before = job.settings.clone();
        if let Some(v) = self.rpo {
            s.rpo = v;
        }
        if let Some(v) = self.mpit_instances {
            s.mpit_instances = v;
            s.mpit_days = if v > 0 {
                self.mpit_days
                    .unwrap_or(before.mpit_days.max(cells::MPIT_DEFAULT_DAYS))
            } else {
                0
            };
        } else if let Some(v) = self.mpit_days.filter(|_| before.mpit_instances > 0) {
            s.mpit_days = v;
        }
        s.quiesce = self.quiesce.unwrap_or(s.quiesce);
        s.network_compression = self.network_compression.unwrap_or(s.network_compression);
        s.lwd_encryption = self.lwd_encryption.unwrap_or(s.lwd_encryption);
        s.auto_replicate_new_disks = self
            .auto_replicate_new_disks
            .unwrap_or(s.auto_replicate_new_disks);
        if let Some(f) = self.disk_format.as_deref().and_then(|f| f.parse().ok()) {
            s.disk_format = f;
        }
        let after = fixed.settings.clone();
        note("rpo", before.rpo.to_string(), after.rpo.to_string());
        note(
            "mpit",
            format!("{}x{}", before.mpit_instances, before.mpit_days),
            format!("{}x{}", after.mpit_instances, after.mpit_days),
        );
        for (key, b, a) in [
            ("quiesce", before.quiesce, after.quiesce),
            (
                "network_compression",
                before.network_compression,
                after.network_compression,
            ),
            (
                "lwd_encryption",
                before.lwd_encryption,
                after.lwd_encryption,
            ),
            (
                "auto_replicate_new_disks",
                before.auto_replicate_new_disks,
                after.auto_replicate_new_disks,
            ),
        ] {
            note(key, b.to_string(), a.to_string());
        }
        note(
            "disk_format",
            before.disk_format.to_string(),
            after.disk_format.to_string(),
        );
        (fixed, changes)
    }
}

/// `auto` (any case) asks the target VRMS to place the replica.
pub(super) fn is_auto(value: &str) -> bool {
    value.eq_ignore_ascii_case("auto")
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_from_toml_and_refuses_unknown_keys() {
        let defaults: Defaults = toml::from_str(
            "target_datastore = \"ds-gold-01\"\nrpo = 15\nquiesce = true\ndisk_format = \"thin\"",
        )
        .unwrap();
        assert_eq!(defaults.target_datastore.as_deref(), Some("ds-gold-01"));
        assert!(defaults.validate().is_ok());
        let settings = defaults.settings();
        assert_eq!(settings.rpo, 15);
        assert!(settings.quiesce);
        assert_eq!(settings.disk_format, DiskFormat::Thin);

        let err = toml::from_str::<Defaults>("target_datastor = \"x\"").unwrap_err();
        assert!(err.to_string().contains("target_datastor"), "{err}");
    }

    #[test]
    fn no_defaults_means_the_builtin_settings() {
        assert_eq!(
            Defaults::default().settings(),
            ReplicationSettings::default()
        );
        assert_eq!(Defaults::default().replication_server(), None);
    }

    #[test]
    fn validate_names_each_bad_key() {
        let defaults = Defaults {
            rpo: Some(2),
            disk_format: Some("sparse".into()),
            target_datastore: Some(" ".into()),
            mpit_days: Some(u32::MAX),
            ..Defaults::default()
        };
        let errors = defaults.validate().unwrap_err();
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 4, "{shown:?}");
        assert!(shown[0].starts_with("column target_datastore: must not be empty"));
        assert_eq!(
            shown[1],
            "column rpo: expected minutes between 5 and 1440, got 2 (in [defaults])"
        );
        assert!(shown[2].starts_with("column mpit_days: must be at most"));
        assert!(shown[3].starts_with("column disk_format: expected one of"));
    }

    #[test]
    fn names_obey_the_csv_rules() {
        let defaults = Defaults {
            target_datastore: Some("d".repeat(81)),
            storage_policy: Some("VR\0Gold".into()),
            ..Defaults::default()
        };
        let shown: Vec<String> = defaults
            .validate()
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(
            shown[0].starts_with("column target_datastore: ")
                && shown[0].contains("is 81 characters long; vSphere allows at most 80"),
            "{shown:?}"
        );
        assert!(shown[1].contains("control character (U+0000)"), "{shown:?}");
    }

    #[test]
    fn flags_are_named_as_flags() {
        let flags = Defaults {
            rpo: Some(2),
            target_datastore: Some("d".repeat(81)),
            ..Defaults::default()
        };
        let shown: Vec<String> = flags
            .check_flags()
            .unwrap_err()
            .0
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            shown[0].starts_with("--target-datastore: \"ddd"),
            "{shown:?}"
        );
        assert_eq!(
            shown[1],
            "--rpo: expected minutes between 5 and 1440, got 2"
        );
    }

    #[test]
    fn auto_replication_server_is_none_and_days_without_instances_are_dropped() {
        let defaults = Defaults {
            replication_server: Some("Auto".into()),
            mpit_days: Some(3),
            ..Defaults::default()
        };
        assert!(defaults.validate().is_ok());
        assert_eq!(defaults.replication_server(), None);
        assert_eq!(defaults.settings().mpit_days, 0);
    }

    #[test]
    fn mpit_defaults_obey_the_copy_limit() {
        let defaults = Defaults {
            mpit_instances: Some(6),
            mpit_days: Some(5),
            ..Defaults::default()
        };
        let errors = defaults.validate().unwrap_err();
        assert_eq!(errors[0].column.as_deref(), Some("mpit_days"));
        let one_day = Defaults {
            mpit_instances: Some(6),
            ..Defaults::default()
        };
        assert!(one_day.validate().is_ok());
        assert_eq!(one_day.settings().mpit_days, 1);
    }
}
