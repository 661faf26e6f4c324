//! The CSV input against files: `tests/data/bad-csv/` holds realistic mistakes, each with the
//! exact list of problems the operator must be shown; `tests/data/good-csv/` and
//! `samples/vms.csv` must import cleanly with the values they say.
//!
//! A corpus file `NN-name.csv` may have a sibling `NN-name.toml` with a `[defaults]` section to
//! parse it over. `NN-name.expect` lists one problem a line (`#` lines are comments): the
//! problem's position (`line 3, column rpo`, or nothing for the file as a whole) and as much of
//! its message as the line gives. Positions must match exactly, messages must start with it, and
//! the count must match, so a missing, extra or misplaced problem fails the test.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use vrbulk::domain::JobSpec;
use vrbulk::input::{parse_csv, summarize, Defaults, InputError};
use vrbulk::vr::model::DiskFormat;

fn data_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn csv_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    files
}

/// The `[defaults]` of the file's sibling `.toml`, if it has one.
fn defaults_for(csv: &Path) -> Defaults {
    #[derive(Deserialize)]
    struct Settings {
        defaults: Defaults,
    }
    match fs::read_to_string(csv.with_extension("toml")) {
        Ok(text) => {
            toml::from_str::<Settings>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", csv.display()))
                .defaults
        }
        Err(_) => Defaults::default(),
    }
}

fn parse_file(path: &Path) -> Result<Vec<JobSpec>, Vec<InputError>> {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_csv(&bytes, &defaults_for(path)).map_err(|e| e.0)
}

/// Why `actual` does not answer `expected`, if it does not.
fn mismatch(expected: &str, actual: &InputError) -> Option<String> {
    let shown = actual.to_string();
    let position = actual.position();
    let expected_position = if position.is_empty() {
        ""
    } else {
        expected.split(": ").next().unwrap_or_default()
    };
    if expected_position != position {
        return Some(format!(
            "position differs: expected `{expected}`, got `{shown}`"
        ));
    }
    if !shown.starts_with(expected) {
        return Some(format!(
            "message differs: expected `{expected}…`, got `{shown}`"
        ));
    }
    None
}

#[test]
fn bad_csv_corpus_reports_exactly_the_expected_problems() {
    let files = csv_files(&data_dir("bad-csv"));
    assert!(files.len() >= 30, "only {} bad files", files.len());
    let mut failures = Vec::new();
    for csv in &files {
        let name = csv.file_name().unwrap_or_default().to_string_lossy();
        let expect_path = csv.with_extension("expect");
        let expected: Vec<String> = fs::read_to_string(&expect_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expect_path.display()))
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        assert!(
            !expected.is_empty(),
            "{name}: the .expect file lists nothing"
        );
        let actual = match parse_file(csv) {
            Ok(jobs) => {
                failures.push(format!(
                    "{name}: parsed {} jobs, expected errors",
                    jobs.len()
                ));
                continue;
            }
            Err(errors) => errors,
        };
        let problems: Vec<String> = expected
            .iter()
            .zip(&actual)
            .filter_map(|(e, a)| mismatch(e, a))
            .collect();
        if !problems.is_empty() || expected.len() != actual.len() {
            let shown: Vec<String> = actual.iter().map(|e| format!("    {e}")).collect();
            failures.push(format!(
                "{name}: expected {} problems, got {}{}\n  got:\n{}",
                expected.len(),
                actual.len(),
                problems
                    .iter()
                    .map(|p| format!("\n  {p}"))
                    .collect::<String>(),
                shown.join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn every_bad_csv_has_an_expectation_and_nothing_is_orphaned() {
    let dir = data_dir("bad-csv");
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        match ext {
            "csv" => assert!(path.with_extension("expect").exists(), "{}", path.display()),
            "expect" | "toml" => {
                assert!(path.with_extension("csv").exists(), "{}", path.display());
            }
            _ => panic!("unexpected file {}", path.display()),
        }
    }
}

fn good(name: &str) -> Vec<JobSpec> {
    let path = data_dir("good-csv").join(name);
    parse_file(&path).unwrap_or_else(|errors| {
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("{name}:\n{}", shown.join("\n"))
    })
}

fn names(jobs: &[JobSpec]) -> Vec<&str> {
    jobs.iter().map(|j| j.vm.display()).collect()
}

#[test]
fn semicolon_excel_export_with_nameless_trailing_columns_imports() {
    let jobs = good("01-semicolon-excel.csv");
    assert_eq!(names(&jobs), ["app-001", "app-002", "db-003"]);
    assert_eq!(jobs[0].notes.as_deref(), Some("owner: finance, payroll"));
    assert!(jobs[0].settings.quiesce);
    assert_eq!(jobs[1].replication_server.as_deref(), Some("vrs-target-01"));
    assert_eq!(jobs[2].replication_server, None, "AUTO");
    assert_eq!(jobs[2].storage_policy, None);
    assert_eq!(jobs[2].notes.as_deref(), Some("quoted; with a semicolon"));
    assert_eq!(jobs[2].change_ticket.as_deref(), Some("CHG0012346"));
}

#[test]
fn bom_and_crlf_file_imports_with_physical_lines() {
    let jobs = good("02-bom-crlf.csv");
    assert_eq!(
        names(&jobs),
        ["app-001", "Finance Server Ünïcødé 01", "app-004"]
    );
    let lines: Vec<_> = jobs.iter().map(|j| j.line).collect();
    assert_eq!(lines, [Some(2), Some(4), Some(5)]);
    assert_eq!(
        (jobs[0].settings.mpit_instances, jobs[0].settings.mpit_days),
        (4, 3)
    );
    assert_eq!(jobs[1].settings.rpo, 60);
    assert_eq!(jobs[2].settings.mpit_instances, 0);
}

#[test]
fn quoted_fields_keep_commas_newlines_and_quotes() {
    let jobs = good("03-quoted-fields.csv");
    assert_eq!(jobs.len(), 4);
    assert_eq!(
        jobs[0].notes.as_deref(),
        Some("replicate first, then the database")
    );
    assert_eq!(jobs[1].target_datastore, "ds-silver-01");
    assert_eq!(jobs[1].notes.as_deref(), Some("two\nlines"));
    assert_eq!(jobs[2].line, Some(5), "the row after a two-line note");
    assert_eq!(jobs[2].change_ticket.as_deref(), Some("CHG0012346"));
    assert_eq!(jobs[2].notes.as_deref(), Some("the \"big\" one"));
    assert_eq!(jobs[3].vm.display(), "Finance Server, Ünïcødé 01");
    assert_eq!(jobs[3].settings.rpo, 60);
}

#[test]
fn mixed_case_headers_and_vm_ids_import() {
    let jobs = good("04-mixed-case-headers.csv");
    assert_eq!(jobs.len(), 2);
    assert_eq!(
        jobs[0].vm.id.as_deref(),
        Some("VirtualMachine:vm-1002:0f0e7f53-31c8-4f3b-9a0e-5c1e3a4b2d10")
    );
    assert_eq!(jobs[0].pairing.as_deref(), Some("vc-site-b.corp.local"));
    assert_eq!(jobs[0].settings.rpo, 5);
    assert!(jobs[0].settings.network_compression);
    assert!(!jobs[0].settings.lwd_encryption);
    assert!(jobs[0].settings.auto_replicate_new_disks);
    assert_eq!(jobs[0].settings.disk_format, DiskFormat::Thin);
    assert_eq!(jobs[1].vm.name, None);
    assert_eq!(jobs[1].pairing, None);
    assert_eq!(jobs[1].settings.rpo, 1440);
    assert!(jobs[1].settings.lwd_encryption);
    assert_eq!(jobs[1].settings.disk_format, DiskFormat::SameAsSource);
}

#[test]
fn defaults_fill_in_what_the_rows_leave_out() {
    let jobs = good("05-defaults-fill-in.csv");
    for job in &jobs {
        assert_eq!(job.target_datastore, "ds-silver-01");
        assert_eq!(job.storage_policy.as_deref(), Some("VR Silver"));
        assert_eq!(job.replication_server.as_deref(), Some("vrs-target-01"));
        assert!(job.settings.quiesce);
        assert_eq!(
            (job.settings.mpit_instances, job.settings.mpit_days),
            (2, 1)
        );
    }
    assert_eq!(jobs[0].settings.rpo, 60);
    assert_eq!(jobs[1].settings.rpo, 30);
}

#[test]
fn sample_vms_csv_imports_cleanly_for_the_simulator_inventory() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/vms.csv");
    let jobs = parse_file(&path).unwrap_or_else(|errors| {
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("samples/vms.csv:\n{}", shown.join("\n"))
    });
    assert_eq!(jobs.len(), 40);
    let all = names(&jobs);
    for special in [
        "tmpl-rhel9-golden",
        "db-nvme-01",
        "legacy-erp-01",
        "build-agent-07",
        "Finance Server Ünïcødé 01",
    ] {
        assert!(all.contains(&special), "{special} missing");
    }
    let summary = summarize(&jobs);
    assert_eq!(summary.counts("target_datastore").unwrap()["ds-full-01"], 2);
    let rpos: Vec<&String> = summary.counts("rpo").unwrap().keys().collect();
    assert_eq!(rpos, ["15 min", "240 min", "30 min", "60 min"]);
    assert!(summary.counts("mpit").unwrap()["off"] < 40);
    assert!(summary.counts("storage_policy").unwrap()["(datastore default)"] > 0);
}
