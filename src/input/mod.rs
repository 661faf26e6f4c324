//! What the operator hands in, turned into validated [`JobSpec`]s: one per VM, from a CSV file
//! ([`parse_csv`]) or from an inventory selection ([`jobs_for_inventory`], with [`glob_match`]
//! for the name patterns), both over the `[defaults]` profile of `vrbulk.toml` ([`Defaults`]).
//! A reconfigure's changes come in the same CSV shape ([`read_changes`]) or as flags
//! ([`check_change`]), checked by the same rules.
//!
//! This module never touches the network or the database: the queue stores what it returns, the
//! workflow resolves the names in it against the API, once each name is one vSphere could hold
//! ([`Text`]). Every problem of an input is collected at once, positioned by line and column
//! ([`InputErrors`], whose message lists the first [`PROBLEMS_SHOWN`] and counts the rest);
//! nothing is returned unless the whole input is valid, so a batch is never half imported.

mod cells;
mod changes;
mod defaults;
mod glob;
mod summary;
mod table;

use std::fmt;

use crate::domain::{JobSpec, VmRef};

pub use cells::Text;
pub use changes::{
    change_of_flags, check_change, mpit_problem, parse_changes_csv, read_changes, ChangeRow,
    SETTINGS,
};
pub use defaults::Defaults;
pub use glob::glob_match;
pub use summary::{summarize, Summary};
pub use table::{parse_csv, Column};

/// One problem of an input, positioned as precisely as it can be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InputError {
    /// Physical line of the file (the header is line 1); `None` for the file as a whole or for
    /// `[defaults]`.
    pub line: Option<u64>,
    /// The column's name as the header spells it (lower-cased for known columns), or the
    /// `[defaults]` key.
    pub column: Option<String>,
    pub message: String,
}

impl InputError {
    pub fn new(line: Option<u64>, column: Option<&str>, message: impl Into<String>) -> Self {
        InputError {
            line,
            column: column.map(str::to_owned),
            message: message.into(),
        }
    }

    /// `line 7, column rpo`, `line 7`, `column rpo` or empty: the part of the message before
    /// the colon, which is what the corpus tests compare.
    pub fn position(&self) -> String {
        match (self.line, &self.column) {
            (Some(line), Some(column)) => format!("line {line}, column {column}"),
            (Some(line), None) => format!("line {line}"),
            (None, Some(column)) => format!("column {column}"),
            (None, None) => String::new(),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let position = self.position();
        if position.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{position}: {}", self.message)
        }
    }
}

/// All problems of one input, in line order (problems of the file as a whole, and of
/// `[defaults]`, first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InputErrors(pub Vec<InputError>);

/// How many problems an error lists before it only counts the rest: a file of a million bad rows
/// once printed 72 MB of them. Every problem is still found; `--all-errors` lists every one.
pub const PROBLEMS_SHOWN: usize = 50;

impl InputErrors {
    /// Orders the problems by line, keeping the order they were found in within a line (which
    /// is column order).
    fn sorted(mut errors: Vec<InputError>) -> Self {
        errors.sort_by_key(|e| e.line);
        InputErrors(errors)
    }

    /// Every problem, however many (the plain `Display` lists the first [`PROBLEMS_SHOWN`]).
    pub fn every(&self) -> impl fmt::Display + '_ {
        Listing {
            errors: self,
            shown: usize::MAX,
        }
    }

    /// How many rows (distinct lines) have a problem.
    fn rows(&self) -> usize {
        let mut lines: Vec<u64> = self.0.iter().filter_map(|e| e.line).collect();
        lines.sort_unstable();
        lines.dedup();
        lines.len()
    }
}

struct Listing<'a> {
    errors: &'a InputErrors,
    shown: usize,
}

impl fmt::Display for Listing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = &self.errors.0;
        let n = all.len();
        write!(
            f,
            "{n} {} in the input, nothing written:",
            if n == 1 { "problem" } else { "problems" }
        )?;
        for error in all.iter().take(self.shown) {
            write!(f, "\n  {error}")?;
        }
        if n > self.shown {
            write!(
                f,
                "\n  … and {} more (the first {} of {n} are shown; {} rows have problems); \
                 --all-errors lists every one",
                n - self.shown,
                self.shown,
                self.errors.rows()
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for InputErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Listing {
            errors: self,
            shown: PROBLEMS_SHOWN,
        }
        .fmt(f)
    }
}

/// The SHA-256 of an input file, in lowercase hex, as its batch records it: how a file
/// imported twice is recognised, and what the audit names the file by.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// Checks a name or text given as a flag (`--change-ticket`) by the rule its column has in a
/// CSV; the problem names the flag.
pub fn check_flag(flag: &str, rule: Text, value: &str) -> Result<(), InputErrors> {
    rule.check(value.trim())
        .map_err(|message| InputErrors(vec![flag_error(flag, message)]))
}

fn flag_error(flag: &str, message: String) -> InputError {
    InputError::new(None, None, format!("--{flag}: {message}"))
}

/// Checks the name patterns of an inventory selection before anyone logs in: at least one
/// `--match`, and every pattern one that could match a VM name (see [`Text::Pattern`]).
pub fn check_selection(patterns: &[String], exclude: &[String]) -> Result<(), InputErrors> {
    let mut errors = Vec::new();
    if patterns.is_empty() {
        errors.push(InputError::new(
            None,
            None,
            "--inventory needs at least one --match GLOB (use --match '*' for every VM)",
        ));
    }
    for (flag, pattern) in patterns
        .iter()
        .map(|p| ("match", p))
        .chain(exclude.iter().map(|p| ("exclude", p)))
    {
        if let Err(message) = Text::Pattern.check(pattern) {
            errors.push(flag_error(flag, message));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(InputErrors(errors))
    }
}

/// Jobs for VMs picked from the live inventory (`import --inventory`): the `[defaults]` profile
/// applies to all of them, so it must name a target datastore.
pub fn jobs_for_inventory(
    vms: impl IntoIterator<Item = VmRef>,
    defaults: &Defaults,
) -> Result<Vec<JobSpec>, InputErrors> {
    let mut errors = defaults.validate().err().unwrap_or_default();
    let target_datastore = defaults.target_datastore();
    if target_datastore.is_none() {
        errors.push(InputError::new(
            None,
            Some("target_datastore"),
            "an inventory selection needs [defaults] target_datastore",
        ));
    }
    if !errors.is_empty() {
        return Err(InputErrors::sorted(errors));
    }
    let settings = defaults.settings();
    let jobs: Vec<JobSpec> = vms
        .into_iter()
        .map(|vm| JobSpec {
            line: None,
            vm,
            pairing: defaults.pairing(),
            target_datastore: target_datastore.clone().unwrap_or_default(),
            storage_policy: defaults.storage_policy(),
            replication_server: defaults.replication_server(),
            settings: settings.clone(),
            change_ticket: None,
            notes: None,
        })
        .collect();
    if jobs.is_empty() {
        return Err(InputErrors(vec![InputError::new(
            None,
            None,
            "no VM matches the selection",
        )]));
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_the_sha256_in_lowercase_hex() {
        assert_eq!(
            digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn vm_ref_displays_name_else_id() {
        let both = VmRef {
            name: Some("app-001".into()),
            id: Some("VirtualMachine:vm-1:x".into()),
        };
        assert_eq!(both.display(), "app-001");
        let id = VmRef {
            name: None,
            id: Some("VirtualMachine:vm-1:x".into()),
        };
        assert_eq!(id.display(), "VirtualMachine:vm-1:x");
    }

    #[test]
    fn error_display_omits_missing_parts() {
        let full = InputError::new(
            Some(7),
            Some("rpo"),
            "expected minutes between 5 and 1440, got \"2\"",
        );
        assert_eq!(
            full.to_string(),
            "line 7, column rpo: expected minutes between 5 and 1440, got \"2\""
        );
        assert_eq!(InputError::new(Some(3), None, "x").to_string(), "line 3: x");
        assert_eq!(
            InputError::new(None, Some("rpo"), "x").to_string(),
            "column rpo: x"
        );
        assert_eq!(InputError::new(None, None, "x").to_string(), "x");
    }

    #[test]
    fn errors_display_a_count_header_and_one_problem_per_line() {
        let errors = InputErrors(vec![
            InputError::new(Some(2), Some("rpo"), "a"),
            InputError::new(Some(3), None, "b"),
        ]);
        assert_eq!(
            errors.to_string(),
            "2 problems in the input, nothing written:\n  line 2, column rpo: a\n  line 3: b"
        );
    }

    #[test]
    fn many_errors_show_the_first_ones_in_order_then_count_the_rest() {
        let errors = InputErrors(
            (2..=1001)
                .flat_map(|line| {
                    [
                        InputError::new(Some(line), Some("rpo"), "bad rpo"),
                        InputError::new(Some(line), Some("quiesce"), "bad quiesce"),
                    ]
                })
                .collect(),
        );
        let shown = errors.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 1 + PROBLEMS_SHOWN + 1, "{shown}");
        assert_eq!(lines[0], "2000 problems in the input, nothing written:");
        assert_eq!(lines[1], "  line 2, column rpo: bad rpo");
        assert_eq!(lines[50], "  line 26, column quiesce: bad quiesce");
        assert_eq!(
            lines[51],
            "  … and 1950 more (the first 50 of 2000 are shown; 1000 rows have problems); \
             --all-errors lists every one"
        );
        assert_eq!(errors.every().to_string().lines().count(), 2001);
        // Up to the limit, every problem and no count.
        errors_of(PROBLEMS_SHOWN).to_string().lines().for_each(|l| {
            assert!(!l.contains("more"), "{l}");
        });
    }

    fn errors_of(n: usize) -> InputErrors {
        InputErrors(
            (0..n)
                .map(|i| InputError::new(Some(i as u64 + 2), None, "x"))
                .collect(),
        )
    }

    #[test]
    fn inventory_jobs_take_the_defaults_profile() {
        let defaults = Defaults {
            target_datastore: Some("ds-gold-01".into()),
            rpo: Some(15),
            replication_server: Some("AUTO".into()),
            ..Defaults::default()
        };
        let vm = VmRef {
            name: Some("app-001".into()),
            id: Some("VirtualMachine:vm-1001:x".into()),
        };
        let jobs = jobs_for_inventory([vm.clone()], &defaults).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].line, None);
        assert_eq!(jobs[0].vm, vm);
        assert_eq!(jobs[0].target_datastore, "ds-gold-01");
        assert_eq!(jobs[0].replication_server, None);
        assert_eq!(jobs[0].settings.rpo, 15);
    }

    #[test]
    fn a_selection_needs_a_match_and_patterns_that_could_match_a_vm_name() {
        assert!(check_selection(&["web-*".into()], &["*-old".into()]).is_ok());
        let none = check_selection(&[], &[]).unwrap_err();
        assert!(none.0[0].message.contains("at least one --match"), "{none}");
        let long = "x".repeat(81);
        let errors = check_selection(&["web-*".into()], &[long, "a\0*".into()]).unwrap_err();
        let shown: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(shown[0].starts_with("--exclude: \"xxx"), "{shown:?}");
        assert!(shown[0].contains("can match no VM"), "{shown:?}");
        assert!(shown[1].contains("control character"), "{shown:?}");
    }

    #[test]
    fn a_change_ticket_flag_obeys_the_column_rule() {
        assert!(check_flag("change-ticket", Text::ChangeTicket, "CHG0012345").is_ok());
        let err = check_flag("change-ticket", Text::ChangeTicket, &"C".repeat(256)).unwrap_err();
        assert!(
            err.0[0].message.starts_with("--change-ticket: \"CCC"),
            "{err}"
        );
    }

    #[test]
    fn inventory_jobs_need_a_default_datastore() {
        let vm = VmRef {
            name: Some("app-001".into()),
            id: None,
        };
        let errors = jobs_for_inventory([vm], &Defaults::default()).unwrap_err();
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].column.as_deref(), Some("target_datastore"));
    }
}
