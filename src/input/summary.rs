//! What a batch asks for at a glance: how many VMs get each value of each setting. `import`
//! prints it before queueing, so a wrong column shows up as a wrong count (40 VMs on
//! `ds-full-01`) before any API call.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::JobSpec;

/// Per-setting counts of values, settings in a fixed order (where the replica goes first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub jobs: usize,
    pub settings: Vec<(&'static str, BTreeMap<String, usize>)>,
}

impl Summary {
    /// The counts of one setting, e.g. `counts("rpo")["15 min"]`.
    pub fn counts(&self, setting: &str) -> Option<&BTreeMap<String, usize>> {
        self.settings
            .iter()
            .find(|(name, _)| *name == setting)
            .map(|(_, counts)| counts)
    }
}

pub fn summarize(jobs: &[JobSpec]) -> Summary {
    type Value = fn(&JobSpec) -> String;
    let settings: [(&'static str, Value); 11] = [
        ("pairing", |j| {
            j.pairing
                .clone()
                .unwrap_or_else(|| "(the only pairing)".into())
        }),
        ("target_datastore", |j| j.target_datastore.clone()),
        ("storage_policy", |j| {
            j.storage_policy
                .clone()
                .unwrap_or_else(|| "(datastore default)".into())
        }),
        ("replication_server", |j| {
            j.replication_server
                .clone()
                .unwrap_or_else(|| "auto".into())
        }),
        ("rpo", |j| format!("{} min", j.settings.rpo)),
        ("mpit", |j| {
            if j.settings.mpit_instances == 0 {
                "off".into()
            } else {
                let days = j.settings.mpit_days;
                let unit = if days == 1 { "day" } else { "days" };
                format!("{} per day for {days} {unit}", j.settings.mpit_instances)
            }
        }),
        ("disk_format", |j| j.settings.disk_format.to_string()),
        ("quiesce", |j| yes_no(j.settings.quiesce)),
        ("network_compression", |j| {
            yes_no(j.settings.network_compression)
        }),
        ("lwd_encryption", |j| yes_no(j.settings.lwd_encryption)),
        ("auto_replicate_new_disks", |j| {
            yes_no(j.settings.auto_replicate_new_disks)
        }),
    ];
    Summary {
        jobs: jobs.len(),
        settings: settings
            .into_iter()
            .map(|(name, value)| {
                let mut counts = BTreeMap::new();
                for job in jobs {
                    *counts.entry(value(job)).or_insert(0) += 1;
                }
                (name, counts)
            })
            .collect(),
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// One line per setting, most common value first:
///
/// ```text
/// 40 VMs
///   target_datastore          ds-gold-01 18, ds-silver-01 12, ds-bronze-01 8, ds-full-01 2
///   rpo                       60 min 20, 15 min 10, 30 min 6, 240 min 4
/// ```
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.jobs,
            if self.jobs == 1 { "VM" } else { "VMs" }
        )?;
        let width = self
            .settings
            .iter()
            .map(|(name, _)| name.len())
            .max()
            .unwrap_or(0);
        for (name, counts) in &self.settings {
            let mut values: Vec<(&String, &usize)> = counts.iter().collect();
            // Most common first; ties in name order, which the map already gives.
            values.sort_by(|a, b| b.1.cmp(a.1));
            let values: Vec<String> = values.iter().map(|(v, n)| format!("{v} {n}")).collect();
            write!(f, "\n  {name:<width$}  {}", values.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ReplicationSettings;
    use crate::domain::VmRef;

    fn job(name: &str, datastore: &str, rpo: u32, mpit: u32) -> JobSpec {
        JobSpec {
            line: Some(2),
            vm: VmRef {
                name: Some(name.into()),
                id: None,
            },
            pairing: None,
            target_datastore: datastore.into(),
            storage_policy: None,
            replication_server: None,
            settings: ReplicationSettings {
                rpo,
                mpit_instances: mpit,
                mpit_days: if mpit > 0 { 2 } else { 0 },
                ..Default::default()
            },
            change_ticket: None,
            notes: None,
        }
    }

    #[test]
    fn counts_each_value_of_each_setting() {
        let jobs = [
            job("a", "ds-gold-01", 15, 0),
            job("b", "ds-gold-01", 60, 3),
            job("c", "ds-silver-01", 15, 0),
        ];
        let summary = summarize(&jobs);
        assert_eq!(summary.jobs, 3);
        let datastores = summary.counts("target_datastore").unwrap();
        assert_eq!(datastores["ds-gold-01"], 2);
        assert_eq!(datastores["ds-silver-01"], 1);
        assert_eq!(summary.counts("rpo").unwrap()["15 min"], 2);
        assert_eq!(summary.counts("mpit").unwrap()["3 per day for 2 days"], 1);
        assert_eq!(
            summary.counts("storage_policy").unwrap()["(datastore default)"],
            3
        );
        assert_eq!(summary.counts("replication_server").unwrap()["auto"], 3);
        assert_eq!(summary.counts("quiesce").unwrap()["no"], 3);
    }

    #[test]
    fn renders_most_common_value_first_one_setting_a_line() {
        let jobs = [
            job("a", "ds-silver-01", 15, 0),
            job("b", "ds-gold-01", 60, 0),
            job("c", "ds-gold-01", 15, 0),
        ];
        let text = summarize(&jobs).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "3 VMs");
        assert_eq!(lines.len(), 12);
        assert!(
            lines.contains(&"  target_datastore          ds-gold-01 2, ds-silver-01 1"),
            "{text}"
        );
        assert!(
            lines.contains(&"  rpo                       15 min 2, 60 min 1"),
            "{text}"
        );
    }
}
