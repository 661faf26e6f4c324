//! What a reconfigure asks for, validated by the import's own rules: per VM from a CSV in the
//! import's columns ([`read_changes`]), where an empty cell leaves that setting as the
//! replication has it, or one change for every VM from flags ([`check_change`]). A column a
//! reconfigure cannot change (the datastore, the pairing, the disk format) is refused when filled,
//! rather than silently ignored.
//!
//! The cells are read by [`super::table`]'s reader and checked by [`super::cells`], so a value
//! the import refuses is refused here in the same words. Which VM a row names is matched against
//! the batch elsewhere (`workflow::day2`): this module knows no batch.

use super::cells::{self, Text};
use super::table::{self, Column, Row, SeenVms};
use super::Defaults;
use super::{InputError, InputErrors};
use crate::domain::{SettingsChange, VmRef};

/// One VM's row of a reconfigure CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRow {
    /// The physical line (the header is line 1).
    pub line: u64,
    pub vm: VmRef,
    pub change: SettingsChange,
    /// Whether the row's settings are all valid: a row with a bad value still names its VM, so
    /// that every problem of the file (that VM's too) is reported at once.
    pub valid: bool,
}

/// Columns of the import a reconfigure cannot change: why, and what to do instead besides
/// leaving the setting out.
const UNCHANGEABLE: [(Column, &str, &str); 5] = [
    (
        Column::TargetDatastore,
        "a reconfigure cannot move replica disks to another datastore",
        " (undo the replication and configure it again to move it)",
    ),
    (
        Column::Pairing,
        "a reconfigure cannot move a replication to another pairing",
        "",
    ),
    (
        Column::DiskFormat,
        "a reconfigure cannot change the replica disks' format",
        "",
    ),
    (
        Column::ChangeTicket,
        "a reconfigure keeps the change ticket of the batch that configured the VM",
        "",
    ),
    (
        Column::Notes,
        "a reconfigure keeps the notes of the batch that configured the VM",
        "",
    ),
];

/// The settings columns: a row that leaves all of them empty changes nothing.
pub const SETTINGS: [Column; 9] = [
    Column::Rpo,
    Column::MpitInstances,
    Column::MpitDays,
    Column::Quiesce,
    Column::NetworkCompression,
    Column::LwdEncryption,
    Column::AutoReplicateNewDisks,
    Column::StoragePolicy,
    Column::ReplicationServer,
];

/// Reads a reconfigure CSV: every row that names a VM, and every problem of the file.
pub fn read_changes(bytes: &[u8]) -> (Vec<ChangeRow>, Vec<InputError>) {
    let mut errors = Vec::new();
    let mut rows = Vec::new();
    match table::decode(bytes) {
        Ok(text) => {
            let mut seen = SeenVms::default();
            table::read_rows(text, false, &mut errors, |row| {
                let vm = row.vm();
                seen.check(row, &vm);
                let change = change_of(row);
                if vm.name.is_some() || vm.id.is_some() {
                    rows.push(ChangeRow {
                        line: row.line,
                        vm,
                        change,
                        valid: row.errors.is_empty(),
                    });
                }
            });
        }
        Err(error) => errors.push(error),
    }
    errors.sort_by_key(|e| e.line);
    (rows, errors)
}

/// A reconfigure CSV, all or nothing: its rows when the whole file is valid.
pub fn parse_changes_csv(bytes: &[u8]) -> Result<Vec<ChangeRow>, InputErrors> {
    match read_changes(bytes) {
        (rows, errors) if errors.is_empty() => Ok(rows),
        (_, errors) => Err(InputErrors(errors)),
    }
}

/// The change one row asks for; its problems go to the row.
fn change_of(row: &mut Row<'_>) -> SettingsChange {
    for (column, why, instead) in UNCHANGEABLE {
        if row.cell(column).is_some() {
            row.fail(column, format!("{why}; clear this cell{instead}"));
        }
    }
    let change = SettingsChange {
        rpo: row.parse(Column::Rpo, cells::parse_rpo),
        mpit_instances: row.parse(Column::MpitInstances, cells::parse_count),
        mpit_days: row.parse(Column::MpitDays, cells::parse_count),
        quiesce: row.parse(Column::Quiesce, cells::parse_bool),
        network_compression: row.parse(Column::NetworkCompression, cells::parse_bool),
        lwd_encryption: row.parse(Column::LwdEncryption, cells::parse_bool),
        auto_replicate_new_disks: row.parse(Column::AutoReplicateNewDisks, cells::parse_bool),
        storage_policy: row.text(Column::StoragePolicy),
        replication_server: row.text(Column::ReplicationServer),
    };
    if let Some((column, message)) = mpit_pair(change.mpit_instances, change.mpit_days) {
        row.fail(column, message);
    }
    if SETTINGS.iter().all(|c| row.cell(*c).is_none()) {
        row.errors.push(InputError::new(
            Some(row.line),
            None,
            "nothing to change: every setting of this row is empty; fill the settings to \
             change, or remove the row",
        ));
    }
    change
}

/// The change that the settings flags ask for (the flags `import` takes too): those of a setting
/// a reconfigure cannot change are refused, as their cells are in a CSV. [`check_change`] checks
/// the values.
pub fn change_of_flags(flags: &Defaults) -> Result<SettingsChange, InputErrors> {
    let given = |column| match column {
        Column::TargetDatastore => flags.target_datastore.is_some(),
        Column::Pairing => flags.pairing.is_some(),
        Column::DiskFormat => flags.disk_format.is_some(),
        _ => false,
    };
    let refused: Vec<InputError> = UNCHANGEABLE
        .iter()
        .filter(|(column, _, _)| given(*column))
        .map(|(column, why, instead)| {
            let flag = column.name().replace('_', "-");
            InputError::new(
                None,
                None,
                format!("--{flag}: {why}; leave it out{instead}"),
            )
        })
        .collect();
    if !refused.is_empty() {
        return Err(InputErrors(refused));
    }
    let f = flags.clone();
    Ok(SettingsChange {
        rpo: f.rpo,
        mpit_instances: f.mpit_instances,
        mpit_days: f.mpit_days,
        quiesce: f.quiesce,
        network_compression: f.network_compression,
        lwd_encryption: f.lwd_encryption,
        auto_replicate_new_disks: f.auto_replicate_new_disks,
        storage_policy: f.storage_policy,
        replication_server: f.replication_server,
    })
}

/// Checks a change given as flags by the rules of the CSV cells: every problem, each naming its
/// flag. Nothing to change is a problem too.
pub fn check_change(change: &SettingsChange) -> Result<(), InputErrors> {
    let mut errors = Vec::new();
    if change.is_empty() {
        errors.push(InputError::new(
            None,
            None,
            "nothing to change: give at least one setting (--rpo, --mpit-instances, \
             --mpit-days, --storage-policy, --network-compression, --quiesce, \
             --lwd-encryption, --auto-replicate-new-disks, --replication-server), or a CSV",
        ));
    }
    let mut fail = |flag: &str, message: String| {
        errors.push(InputError::new(None, None, format!("--{flag}: {message}")));
    };
    if let Some(rpo) = change.rpo {
        if let Err(message) = cells::check_rpo(rpo) {
            fail("rpo", message);
        }
    }
    for (flag, value) in [
        ("mpit-instances", change.mpit_instances),
        ("mpit-days", change.mpit_days),
    ] {
        if let Some(Err(message)) = value.map(cells::check_count) {
            fail(flag, message);
        }
    }
    if let Some((column, message)) = mpit_pair(change.mpit_instances, change.mpit_days) {
        fail(&column.name().replace('_', "-"), message);
    }
    for (flag, value, rule) in [
        (
            "storage-policy",
            &change.storage_policy,
            Text::StoragePolicy,
        ),
        (
            "replication-server",
            &change.replication_server,
            Text::ReplicationServer,
        ),
    ] {
        match value.as_deref().map(str::trim) {
            Some("") => fail(
                flag,
                "must not be empty: leave the flag out to keep it".into(),
            ),
            Some(name) => {
                if let Err(message) = rule.check(name) {
                    fail(flag, message);
                }
            }
            None => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(InputErrors(errors))
    }
}

/// Whether vSphere Replication would keep `instances` point-in-time copies a day for `days`
/// days, in the import's words when not: for a plan that knows the replication's current values.
pub fn mpit_problem(instances: u32, days: u32) -> Option<String> {
    (instances > 0)
        .then(|| cells::check_mpit(instances, days).err())
        .flatten()
        .map(|(_, message)| message)
}

/// The MPIT values a change gives, checked as far as they can be without the replication's
/// current ones: days without instances keep the replication's instances, which are at least one
/// when MPIT is on, and instances without days keep its days, which are at least one.
fn mpit_pair(instances: Option<u32>, days: Option<u32>) -> Option<(Column, String)> {
    let column = |field| match field {
        cells::MpitField::Instances => Column::MpitInstances,
        cells::MpitField::Days => Column::MpitDays,
    };
    match (instances, days) {
        (Some(0), Some(d)) if d > 0 => Some((
            Column::MpitDays,
            format!(
                "mpit_days is {d} but mpit_instances is 0: point-in-time copies are kept only \
                 when mpit_instances is above zero; set it, or clear mpit_days"
            ),
        )),
        (Some(0), _) => None,
        (i, d) if i.is_some() || d.is_some() => {
            cells::check_mpit(i.unwrap_or(1), d.unwrap_or(cells::MPIT_DEFAULT_DAYS))
                .err()
                .map(|(field, message)| (column(field), message))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> (Vec<ChangeRow>, Vec<String>) {
        let (rows, errors) = read_changes(text.as_bytes());
        (rows, errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn an_empty_cell_leaves_the_setting_as_it_is() {
        let (rows, errors) = read(
            "vm_name,rpo,quiesce,storage_policy\napp-001,15,,\n\
             app-002,,yes,VR Gold\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].change,
            SettingsChange {
                rpo: Some(15),
                ..SettingsChange::default()
            }
        );
        assert_eq!(rows[1].line, 3);
        assert_eq!(rows[1].change.quiesce, Some(true));
        assert_eq!(rows[1].change.storage_policy.as_deref(), Some("VR Gold"));
        assert!(rows.iter().all(|r| r.valid));
    }

    #[test]
    fn every_problem_of_the_file_is_reported_at_once_with_line_and_column() {
        let (rows, errors) = read(
            "vm_name,target_datastore,rpo,mpit_instances,quiesce\n\
             app-001,ds-gold-01,2,,\n\
             app-002,,,30,maybe\n\
             app-003,,,,\n\
             app-001,,15,,\n",
        );
        assert_eq!(
            errors,
            [
                "line 2, column target_datastore: a reconfigure cannot move replica disks to \
                 another datastore; clear this cell (undo the replication and configure it \
                 again to move it)",
                "line 2, column rpo: expected minutes between 5 and 1440, got \"2\"",
                "line 3, column quiesce: expected one of true/false, yes/no, y/n, 1/0 (or empty \
                 for the default), got \"maybe\"",
                "line 3, column mpit_instances: vSphere Replication keeps at most 24 \
                 point-in-time copies: 30 a day for 1 day is 30",
                "line 4: nothing to change: every setting of this row is empty; fill the \
                 settings to change, or remove the row",
                "line 5, column vm_name: VM \"app-001\" is already listed on line 2",
            ]
        );
        // The rows still name their VMs, so that the batch can be checked for them too.
        assert_eq!(rows.len(), 4);
        assert!(rows.iter().all(|r| !r.valid));
    }

    #[test]
    fn the_header_is_checked_as_for_an_import_without_needing_a_datastore() {
        let (_, errors) = read("vm_nme,rpo\napp-001,15\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("did you mean `vm_name`"), "{errors:?}");
        assert!(parse_changes_csv(b"vm_id,rpo\n").is_err());
    }

    #[test]
    fn the_settings_flags_a_reconfigure_cannot_change_are_refused_not_ignored() {
        let flags = Defaults {
            rpo: Some(15),
            storage_policy: Some("VR Gold".into()),
            ..Defaults::default()
        };
        assert_eq!(
            change_of_flags(&flags).unwrap(),
            SettingsChange {
                rpo: Some(15),
                storage_policy: Some("VR Gold".into()),
                ..SettingsChange::default()
            }
        );
        let err = change_of_flags(&Defaults {
            target_datastore: Some("ds-2".into()),
            disk_format: Some("thin".into()),
            ..flags
        })
        .unwrap_err();
        let shown: Vec<String> = err.0.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "--target-datastore: a reconfigure cannot move replica disks to another \
                 datastore; leave it out (undo the replication and configure it again to move it)",
                "--disk-format: a reconfigure cannot change the replica disks' format; leave it out",
            ]
        );
    }

    #[test]
    fn flags_are_checked_by_the_cells_rules_all_at_once() {
        let err = check_change(&SettingsChange {
            rpo: Some(2),
            mpit_instances: Some(0),
            mpit_days: Some(3),
            storage_policy: Some(" ".into()),
            ..SettingsChange::default()
        })
        .unwrap_err();
        let shown: Vec<String> = err.0.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 3, "{shown:?}");
        assert_eq!(
            shown[0],
            "--rpo: expected minutes between 5 and 1440, got 2"
        );
        assert!(shown[1].starts_with("--mpit-days: mpit_days is 3 but mpit_instances is 0"));
        assert!(shown[2].starts_with("--storage-policy: must not be empty"));
        let nothing = check_change(&SettingsChange::default()).unwrap_err();
        assert!(
            nothing.0[0].message.starts_with("nothing to change"),
            "{nothing}"
        );
        assert!(check_change(&SettingsChange {
            mpit_instances: Some(6),
            mpit_days: Some(4),
            ..SettingsChange::default()
        })
        .is_ok());
    }

    #[test]
    fn names_obey_the_import_rules_in_a_file_and_in_flags() {
        let long = "v".repeat(81);
        let (_, errors) = read(&format!(
            "vm_name,rpo,storage_policy\n{long},15,\napp-002,15,VR\u{7}Gold\n"
        ));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].starts_with("line 2, column vm_name: ")
                && errors[0]
                    .ends_with("is 81 characters long; vSphere allows at most 80 in a VM name"),
            "{errors:?}"
        );
        assert!(
            errors[1].starts_with("line 3, column storage_policy: \"VR\\u{7}Gold\" has a control"),
            "{errors:?}"
        );
        let err = check_change(&SettingsChange {
            replication_server: Some("vrs\0".into()),
            ..SettingsChange::default()
        })
        .unwrap_err();
        assert!(
            err.0[0]
                .message
                .starts_with("--replication-server: \"vrs\\0\" has a control"),
            "{err}"
        );
    }

    #[test]
    fn mpit_is_judged_with_the_replications_own_values_when_the_change_gives_one() {
        assert_eq!(mpit_problem(6, 4), None);
        assert_eq!(mpit_problem(0, 40), None, "MPIT off keeps nothing");
        assert!(mpit_problem(6, 5).unwrap().contains("is 30"));
        assert!(check_change(&SettingsChange {
            mpit_instances: Some(25),
            ..SettingsChange::default()
        })
        .is_err());
    }
}
