//! The `vrbulk` binary as an operator uses it: import (CSV and inventory), inventory export,
//! config check, and the exit codes of the operator contract.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vrbulk::queue::Queue;

use crate::support::cmd::Cmd;
use crate::support::fixtures::config_for;
use crate::support::harness::{sim_config, start};

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// How many rows each table holds and its newest id: equal before and after means nothing
/// was written.
fn snapshot(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    ["batches", "jobs", "job_events"]
        .iter()
        .map(|t| {
            conn.query_row(
                &format!("SELECT '{t}=' || COUNT(*) || '/' || IFNULL(MAX(id), 0) FROM {t}"),
                [],
                |r| r.get::<_, String>(0),
            )
            .unwrap()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `vrbulk --db db import file`.
fn import(db: &Path, file: &Path) -> Cmd {
    Cmd::new()
        .db(db)
        .args([OsStr::new("import"), file.as_os_str()])
}

/// `vrbulk --config config config check`.
fn check(config: &Path) -> Cmd {
    Cmd::new().config(config).args(["config", "check"])
}

#[test]
fn bad_csv_files_exit_2_name_each_problem_and_leave_the_db_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    import(&db, &data("samples/vms.csv")).assert_exit(0);
    let before = snapshot(&db);

    let mut files: Vec<PathBuf> = fs::read_dir(data("tests/data/bad-csv"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    assert!(files.len() >= 25, "the corpus has {} files", files.len());
    for csv in &files {
        let mut cmd = Cmd::new().db(&db);
        let toml = csv.with_extension("toml");
        if toml.exists() {
            cmd = cmd.config(&toml);
        }
        let ran = cmd
            .args(["import".as_ref(), csv.as_os_str()])
            .assert_exit(2);
        let expected = fs::read_to_string(csv.with_extension("expect")).unwrap();
        for line in expected
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let position = line.split(": ").next().unwrap();
            // A settings file with bad [defaults] is refused as a settings file, before the
            // CSV is read (as every command refuses it): its keys are named, the rows not yet.
            let position = match (toml.exists(), position.strip_prefix("column ")) {
                (true, Some(key)) => format!("[defaults] {key}: "),
                (true, None) => continue,
                (false, _) => position.to_string(),
            };
            assert!(
                ran.stderr().contains(&position),
                "{}: stderr lacks `{position}`:\n{}",
                csv.display(),
                ran.stderr()
            );
        }
    }
    assert_eq!(
        snapshot(&db),
        before,
        "a rejected import wrote to the queue"
    );
}

#[test]
fn a_rejected_import_creates_no_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("never.db");
    import(&db, &data("tests/data/bad-csv/01-rpo-too-small.csv"))
        .assert_exit(2)
        .stderr_contains("nothing written");
    assert!(!db.exists());
    // A file that cannot be read is the operator's input too (exit 2, as for reconfigure).
    let missing = dir.path().join("missing.csv");
    import(&db, &missing)
        .assert_exit(2)
        .stderr_contains(&format!("error: cannot read {}: ", missing.display()));
    assert!(!db.exists());
}

/// Regression: a file of a million bad rows printed 72 MB of errors. The first problems are
/// listed in line order with their line and column, the rest counted; `--all-errors` lists
/// every one. Either way nothing is imported.
#[test]
fn a_file_of_many_bad_rows_lists_the_first_problems_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let csv = dir.path().join("bad.csv");
    let rows = 10_000;
    let mut text = String::from("vm_name,target_datastore,rpo,quiesce\n");
    for i in 0..rows {
        text.push_str(&format!("app-{i:05},ds-gold-01,2,maybe\n"));
    }
    fs::write(&csv, text).unwrap();

    let ran = import(&db, &csv).assert_exit(2);
    let stderr = ran.stderr();
    assert!(stderr.len() < 10_000, "{} bytes of errors", stderr.len());
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines[0],
        "error: 20000 problems in the input, nothing written:"
    );
    assert_eq!(
        lines[1],
        "  line 2, column rpo: expected minutes between 5 and 1440, got \"2\""
    );
    assert!(
        lines[2].starts_with("  line 2, column quiesce: "),
        "{stderr}"
    );
    assert!(
        lines[50].starts_with("  line 26, column quiesce: "),
        "{stderr}"
    );
    assert_eq!(
        lines[51],
        "  … and 19950 more (the first 50 of 20000 are shown; 10000 rows have problems); \
         --all-errors lists every one"
    );
    assert_eq!(lines.len(), 52, "{stderr}");

    let every = import(&db, &csv).args(["--all-errors"]).assert_exit(2);
    let listed: Vec<String> = every.stderr().lines().skip(1).map(str::to_owned).collect();
    assert_eq!(listed.len(), 20_000);
    assert!(listed[19_999].starts_with(&format!("  line {}, column quiesce", rows + 1)));
    assert!(!db.exists(), "a refused import created the queue");
}

#[test]
fn a_good_import_prints_the_batch_and_its_settings_and_refuses_the_same_vms_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let csv = data("samples/vms.csv");
    import(&db, &csv)
        .args(["--name", "wave 1"])
        .assert_exit(0)
        .stdout_contains("batch 1 \"wave 1\": 40 jobs")
        .stdout_contains("ds-full-01 2");
    let q = Queue::open(&db).unwrap();
    let batch = q.batch(1).unwrap();
    assert_eq!(batch.input_sha256.as_deref().map(str::len), Some(64));
    assert_eq!(q.jobs(1).unwrap().len(), 40);
    drop(q);

    // The same VMs from the file imported again on purpose: still refused while batch 1 has
    // them unfinished.
    import(&db, &csv)
        .args(["--again"])
        .assert_exit(2)
        .stderr_contains("line 2, column vm_name: VM `app-001` is already in unfinished batch 1");
}

#[test]
fn a_file_imported_before_is_refused_naming_its_batch_unless_imported_again_on_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let csv = dir.path().join("night-1.csv");
    fs::copy(data("samples/vms.csv"), &csv).unwrap();
    import(&db, &csv).args(["--name", "night-1"]).assert_exit(0);
    // The batch ran: two VMs configured, one failed, the rest cancelled.
    let created = {
        let mut q = Queue::open(&db).unwrap();
        let held = q
            .claim(Some(1), 3, "jump01:1:run", Duration::from_secs(60))
            .unwrap();
        for job in &held[..2] {
            q.succeed(&job.lease().unwrap(), Some("GID-1"), "configured")
                .unwrap();
        }
        q.fail(&held[2].lease().unwrap(), "VM not found", Some(404))
            .unwrap();
        q.cancel(1, "cancelled by test").unwrap();
        q.batch(1).unwrap().created_at
    };
    let before = snapshot(&db);

    import(&db, &csv)
        .args(["--name", "night-2"])
        .assert_exit(2)
        .stderr_contains(&format!(
            "{} was imported on {} as batch 1 \"night-1\" (jobs: 2 succeeded, 1 failed, 37 \
             cancelled); to import it again as a new batch, repeat the command with --again: \
             vrbulk import --again {}",
            csv.display(),
            vrbulk::timefmt::utc(created),
            csv.display()
        ));
    // The same content under another name is the same import.
    let copy = dir.path().join("copy.csv");
    fs::copy(&csv, &copy).unwrap();
    import(&db, &copy).assert_exit(2).stderr_contains(&format!(
        "{} has the same content as {}, which was imported on",
        copy.display(),
        fs::canonicalize(&csv).unwrap().display()
    ));
    assert_eq!(snapshot(&db), before, "a refused import wrote to the queue");

    import(&db, &csv)
        .args(["--again", "--name", "night-2"])
        .assert_exit(0)
        .stdout_contains("batch 2 \"night-2\": 40 jobs");
    let q = Queue::open(&db).unwrap();
    assert_eq!(
        q.batch(2).unwrap().input_sha256,
        q.batch(1).unwrap().input_sha256
    );
    drop(q);
    import(&db, &csv)
        .assert_exit(2)
        .stderr_contains("as batch 2 \"night-2\" (jobs: 40 pending) (and before that as batch 1)");

    // Another file is another import; an inventory selection has no file to compare.
    let other = dir.path().join("night-3.csv");
    fs::write(&other, "vm_name,target_datastore\nweb-99,ds-gold-01\n").unwrap();
    import(&db, &other).assert_exit(0);
    Cmd::new()
        .db(&db)
        .args(["import", "--inventory", "--match", "*", "--again"])
        .assert_exit(2)
        .stderr_contains("--again");
}

#[tokio::test]
async fn import_check_finds_the_names_the_live_inventory_lacks_by_line_and_column() {
    let sim = start(sim_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&sim, dir.path(), "");
    let db = dir.path().join("q.db");
    let bad = dir.path().join("bad.csv");
    fs::write(
        &bad,
        "vm_name,pairing,target_datastore,storage_policy,replication_server\n\
         app-001,,ds-gold-01,VR Gold,auto\n\
         app-0002,,ds-gold-01,,\n\
         app-002,,ds-platinum-01,,\n\
         db-003,,ds-gold-01,VR Platinum,vrs-target-09\n\
         app-004,vc-site-z.corp.local,ds-gold-01,,\n\
         tmpl-rhel9-golden,,ds-silver-01,,\n",
    )
    .unwrap();
    let good = dir.path().join("good.csv");
    fs::write(
        &good,
        "vm_name,target_datastore,storage_policy\napp-001,ds-gold-01,VR Gold\ndb-003,ds-silver-01,\n",
    )
    .unwrap();
    let (db2, config2) = (db.clone(), config.clone());
    tokio::task::spawn_blocking(move || {
        let check = |file: &Path| {
            Cmd::new()
                .env("VRBULK_PASSWORD", "VMware1!")
                .config(&config2)
                .db(&db2)
                .args(["import".as_ref(), file.as_os_str(), "--check".as_ref()])
        };
        let ran = check(&bad).assert_exit(2);
        let err = ran.stderr();
        for expected in [
            "5 problems in the input, nothing written:",
            "line 3, column vm_name: VM `app-0002` not found on vc-site-a.corp.local",
            "line 4, column target_datastore: datastore `ds-platinum-01` not found on vc-site-b.corp.local",
            "line 5, column storage_policy: storage policy `VR Platinum` not found",
            "line 5, column replication_server: VR server `vrs-target-09` not found",
            "line 6, column pairing:",
        ] {
            assert!(err.contains(expected), "{expected}\n{err}");
        }
        // A template is not the file's mistake: run skips it.
        assert!(!err.contains("line 7"), "{err}");
        assert!(!db2.exists(), "a refused import creates no database");
        check(&good)
            .assert_exit(0)
            .stdout_contains("checked against the live inventory")
            .stdout_contains("2 jobs imported");
    })
    .await
    .unwrap();
}

/// Regression: a 100 KB `vm_name`, or one with a NUL byte, imported; the run then failed it
/// with "builder error" after slowing its lookup group. Such names (and patterns, tickets) are
/// refused at the door, at their line and column, and the appliance hears nothing of them.
#[tokio::test]
async fn names_vsphere_cannot_hold_are_refused_at_import_and_never_reach_the_appliance() {
    let sim = start(sim_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(
        &sim,
        dir.path(),
        "[defaults]\ntarget_datastore = \"ds-silver-01\"\n",
    );
    let db = dir.path().join("q.db");
    let csv = dir.path().join("long.csv");
    fs::write(
        &csv,
        format!("vm_name\napp-001\n{}\napp\0-003\n", "a".repeat(100_000)),
    )
    .unwrap();
    let (config2, db2) = (config.clone(), db.clone());
    tokio::task::spawn_blocking(move || {
        let base = || {
            Cmd::new()
                .env("VRBULK_PASSWORD", "VMware1!")
                .config(&config2)
                .db(&db2)
        };
        let ran = base()
            .args(["import".as_ref(), csv.as_os_str()])
            .assert_exit(2)
            .stderr_contains("line 3, column vm_name: \"aaaa")
            .stderr_contains("is 100000 characters long; vSphere allows at most 80 in a VM name")
            .stderr_contains("line 4, column vm_name: \"app\\0-003\" has a control character");
        assert!(ran.stderr().len() < 1000, "{} bytes", ran.stderr().len());
        base()
            .args(["import", "--inventory", "--match", &"web-?".repeat(20)])
            .assert_exit(2)
            .stderr_contains("--match: \"web-?")
            .stderr_contains("can match no VM: it needs at least 100 characters");
        base()
            .args([
                "import",
                "--inventory",
                "--match",
                "*",
                "--exclude",
                "old\x07*",
            ])
            .assert_exit(2)
            .stderr_contains("--exclude: \"old\\u{7}*\" has a control character");
        base()
            .args(["import".as_ref(), data("samples/vms.csv").as_os_str()])
            .args(["--change-ticket", &"CHG".repeat(100)])
            .assert_exit(2)
            .stderr_contains("--change-ticket: ")
            .stderr_contains("is 300 characters long; vrbulk takes at most 255 in a change ticket");
        let ran = base()
            .args(["import".as_ref(), data("samples/vms.csv").as_os_str()])
            .args(["--target-datastore", &"d".repeat(81)])
            .assert_exit(2)
            .stderr_contains("--target-datastore: \"ddd")
            .stderr_contains(
                "is 81 characters long; vSphere allows at most 80 in a datastore name",
            );
        assert!(
            !ran.stderr().contains("[defaults]"),
            "a flag called a key: {}",
            ran.stderr()
        );
    })
    .await
    .unwrap();
    assert!(!db.exists(), "a refused import created the queue");
    assert_eq!(
        sim.stats().journal,
        [],
        "the appliance heard of a refused input"
    );
}

#[tokio::test]
async fn inventory_selection_and_export_work_against_the_simulator() {
    let sim = start(sim_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(
        &sim,
        dir.path(),
        "[defaults]\ntarget_datastore = \"ds-silver-01\"\n",
    );
    let db = dir.path().join("q.db");
    let (config2, db2, dir2) = (config.clone(), db.clone(), dir.path().to_path_buf());
    tokio::task::spawn_blocking(move || {
        let base = || {
            Cmd::new()
                .env("VRBULK_PASSWORD", "VMware1!")
                .config(&config2)
                .db(&db2)
        };
        base()
            .args([
                "import",
                "--inventory",
                "--match",
                "APP-0*",
                "--exclude",
                "app-001",
                "--rpo",
                "15",
            ])
            .assert_exit(0)
            .stdout_contains("15 min");
        let export = dir2.join("export.csv");
        base()
            .args([
                "inventory".as_ref(),
                "export".as_ref(),
                "-o".as_ref(),
                export.as_os_str(),
            ])
            .assert_exit(0);
        let text = fs::read_to_string(&export).unwrap();
        assert!(
            text.starts_with("vm_name,vm_id,pairing,target_datastore"),
            "{text}"
        );
        assert!(text.contains("already replicated (GID-"), "{text}");
        assert!(text.contains("template: cannot be replicated"), "{text}");
        // A pairing the appliance does not have is the operator's to correct (exit 2), named
        // with the pairings there are, and nothing is written.
        let nowhere = dir2.join("nowhere.csv");
        base()
            .args([
                "inventory".as_ref(),
                "export".as_ref(),
                "--pairing".as_ref(),
                "vc-nowhere".as_ref(),
                "-o".as_ref(),
                nowhere.as_os_str(),
            ])
            .assert_exit(2)
            .stderr_contains(
                "no pairing with remote vCenter or id `vc-nowhere`; known pairings: vc-site-b",
            );
        assert!(!nowhere.exists());
        // The template as exported imports again (into a fresh queue): it is a real template.
        let fresh = dir2.join("fresh.db");
        import(&fresh, &export)
            .assert_exit(0)
            .stdout_contains("ds-silver-01 40");
    })
    .await
    .unwrap();
    let q = Queue::open(&db).unwrap();
    let names: Vec<String> = q
        .jobs(1)
        .unwrap()
        .iter()
        .map(|j| j.vm_label().to_string())
        .collect();
    let inv = sim.inventory();
    let mut expected: Vec<String> = inv
        .vms
        .iter()
        .filter(|v| v.vm.name.starts_with("app-0") && v.vm.name != "app-001")
        .map(|v| v.vm.name.clone())
        .collect();
    expected.sort();
    let mut names = names;
    names.sort();
    assert_eq!(names, expected);
    assert!(q
        .jobs(1)
        .unwrap()
        .iter()
        .all(|j| j.spec.vm.id.is_some() && j.spec.settings.rpo == 15));
}

/// The cells of column `name` in CSV `text`, row by row.
fn column(text: &str, name: &str) -> Vec<String> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let index = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in:\n{text}"));
    reader
        .records()
        .map(|r| r.unwrap()[index].to_string())
        .collect()
}

#[tokio::test]
async fn an_export_keeps_each_vms_status_out_of_the_notes_and_imports_again_as_it_is() {
    let sim = start(sim_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(
        &sim,
        dir.path(),
        "[defaults]\ntarget_datastore = \"ds-silver-01\"\n",
    );
    let dir = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let export = dir.join("export.csv");
        Cmd::new()
            .env("VRBULK_PASSWORD", "VMware1!")
            .config(&config)
            .args([
                "inventory".as_ref(),
                "export".as_ref(),
                "-o".as_ref(),
                export.as_os_str(),
            ])
            .assert_exit(0);
        let text = fs::read_to_string(&export).unwrap();
        let status = column(&text, "replication_status");
        for expected in [
            "not replicated",
            "already replicated (GID-",
            "template: cannot be replicated",
        ] {
            assert!(
                status.iter().any(|s| s.starts_with(expected)),
                "no `{expected}` in replication_status:\n{text}"
            );
        }
        assert!(
            column(&text, "notes").iter().all(String::is_empty),
            "the export fills notes:\n{text}"
        );

        // The operator writes a note on the first VM and imports the rest as exported.
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header = reader.headers().unwrap().clone();
        let notes_at = header.iter().position(|h| h == "notes").unwrap();
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(&header).unwrap();
        for (i, record) in reader.records().enumerate() {
            let mut cells: Vec<String> = record.unwrap().iter().map(str::to_owned).collect();
            if i == 0 {
                cells[notes_at] = "owner: finance".into();
            }
            writer.write_record(&cells).unwrap();
        }
        let edited = dir.join("edited.csv");
        fs::write(&edited, writer.into_inner().unwrap()).unwrap();
        let db = dir.join("q.db");
        import(&db, &edited).assert_exit(0);

        let q = Queue::open(&db).unwrap();
        let notes: Vec<Option<String>> = q
            .jobs(1)
            .unwrap()
            .into_iter()
            .map(|j| j.spec.notes)
            .collect();
        assert_eq!(notes.len(), status.len());
        assert_eq!(notes[0].as_deref(), Some("owner: finance"));
        assert!(notes[1..].iter().all(Option::is_none), "{notes:?}");
        drop(q);

        let report = Cmd::new()
            .db(&db)
            .args(["report", "--format", "csv"])
            .assert_exit(0)
            .stdout();
        let mut reported = column(&report, "notes");
        reported.sort();
        reported.dedup();
        assert_eq!(reported, ["", "owner: finance"], "{report}");
        let status_json = Cmd::new()
            .db(&db)
            .args(["status", "--json"])
            .assert_exit(0)
            .stdout();
        for text in [&report, &status_json] {
            assert!(
                !text.contains("not replicated") && !text.contains("template: cannot"),
                "{text}"
            );
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn config_check_masks_secrets_and_a_wrong_password_exits_3() {
    let sim = start(sim_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&sim, dir.path(), "");
    tokio::task::spawn_blocking(move || {
        let ran = check(&config)
            .env("VRBULK_PASSWORD", "VMware1!")
            .args(["--connect"])
            .assert_exit(0)
            .stdout_contains("from VRBULK_PASSWORD")
            .stdout_contains("remote login OK");
        assert!(!ran.stdout().contains("VMware1!") && !ran.stderr().contains("VMware1!"));

        check(&config)
            .env("VRBULK_PASSWORD", "wrong")
            .args(["--connect"])
            .assert_exit(3)
            .stderr_contains("POST /session: HTTP 401");

        check(&config)
            .args(["--connect"])
            .assert_exit(2)
            .stderr_contains("VRBULK_PASSWORD");
    })
    .await
    .unwrap();
}

/// A refused login to the target site, through every command that logs in to it: exit 3, and
/// the error says the site, the pairing and the step once each (it once said 'logging in to the
/// target site vc-site-b: the target site of pairing … refused', and 'pairing …: logging in to
/// the target site: the target site of pairing … refused'). The simulator heard one refused
/// login per command.
#[tokio::test]
async fn a_refused_target_login_says_the_site_and_the_pairing_once() {
    let sim = start(sim_config()).await;
    let pairing = sim.inventory().pairing_id.to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&sim, dir.path(), "");
    let csv = dir.path().join("wave.csv");
    fs::write(&csv, "vm_name,target_datastore\napp-001,ds-gold-01\n").unwrap();
    let db = dir.path().join("q.db");
    let csv_arg = csv.display().to_string();
    let commands: Vec<Vec<String>> = [
        vec!["config", "check", "--connect"],
        vec!["inventory", "export"],
        vec!["plan"],
        vec!["import", &csv_arg, "--again", "--check"],
    ]
    .iter()
    .map(|c| c.iter().map(|a| a.to_string()).collect())
    .collect();
    let (config2, db2, pairing2) = (config.clone(), db.clone(), pairing.clone());
    let n = commands.len();
    tokio::task::spawn_blocking(move || {
        import(&db2, &csv)
            .config(&config2)
            .assert_exit(0);
        for command in commands {
            let ran = Cmd::new()
                .env("VRBULK_PASSWORD", "VMware1!")
                .env("VRBULK_REMOTE_PASSWORD", "wrong")
                .config(&config2)
                .db(&db2)
                .args(&command)
                .assert_exit(3);
            let error = ran.error_line();
            assert!(
                error.contains(&format!(
                    "the target site of pairing {pairing2} refused the login of \
                     administrator@vsphere.local (POST /pairings/{pairing2}/remote-session: HTTP 401"
                )),
                "{command:?}: {error}"
            );
            // Once in the refusal's words and once in its request line, never in front of it.
            assert_eq!(error.matches(&pairing2).count(), 2, "{command:?}: {error}");
            assert_eq!(error.matches("target site").count(), 1, "{command:?}: {error}");
        }
    })
    .await
    .unwrap();
    let refused = sim.stats().refused_logins;
    assert_eq!(refused.len(), n, "{refused:?}");
    assert!(refused.iter().all(|r| r.site == pairing), "{refused:?}");
}

#[test]
fn a_missing_settings_file_or_an_unknown_key_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    Cmd::new()
        .args(["--config", "/nonexistent/vrbulk.toml", "config", "check"])
        .assert_exit(2)
        .stderr_contains("/nonexistent/vrbulk.toml");
    let bad = dir.path().join("bad.toml");
    fs::write(&bad, "[source]\nurl = \"https://vr\"\nthumbprnt = \"x\"\n").unwrap();
    check(&bad).assert_exit(2).stderr_contains("thumbprnt");
    fs::write(
        &bad,
        "[source]\nurl = \"https://vr\"\nuser = \"u\"\n[defaults]\nrpo = 2\n",
    )
    .unwrap();
    check(&bad)
        .assert_exit(2)
        .stderr_contains("[defaults] rpo: expected minutes between 5 and 1440, got 2");
    fs::write(
        &bad,
        "[source]\nurl = \"https://vr\"\nuser = \"u\"\n[defaults]\nrpo = 15\n[run]\nworkers = 5\n",
    )
    .unwrap();
    check(&bad)
        .assert_exit(0)
        .stdout_contains("rpo = 15")
        .stdout_contains("5 requests in flight")
        .stdout_contains(
            "rate limit   50 requests per session and 100 per client IP, per 60 s window",
        );
    // A settings file of an earlier version still works; its pacing keys are said to be unused.
    fs::write(
        &bad,
        "[source]\nurl = \"https://vr\"\nuser = \"u\"\n[run]\nrate = 5\nburst = 10\n",
    )
    .unwrap();
    check(&bad)
        .assert_exit(0)
        .stderr_contains("[run] rate and burst are no longer used");
}

/// The keys of `vrbulk.toml`, each with values to put there: good ones and bad ones (out of
/// range, not a number, the wrong type, a name vSphere cannot hold, a conflict of keys).
const SETTINGS_MUTATIONS: &[(&str, &str, &[&str])] = &[
    ("source", "url", &[
        "\"https://127.0.0.1:1\"", "\"vr.corp.local\"", "\"https://vr/api/rest/vr/v2\"",
        "\"https://admin:pw@vr\"", "\"ftp://vr\"", "\"\"", "5",
    ]),
    ("source", "user", &["\"svc-vr@corp.local\"", "\"\"", "\"  \"", "\"svc\\u0007\""]),
    ("source", "api_version", &["\"v1\"", "\"v2\"", "\"v3\"", "\"\""]),
    ("source", "thumbprint", &[
        "\"AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\"",
        "\"AB:CD\"", "\"AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01\"",
    ]),
    ("source", "insecure", &["true", "false", "\"yes\""]),
    ("source", "ca_file", &["\"ca.pem\"", "\"missing.pem\""]),
    ("source", "timeout_seconds", &["30", "0", "-1", "86400000"]),
    ("source", "page_size", &["100", "0", "1001"]),
    ("source", "requests_per_minute", &["50", "0", "100001"]),
    ("source", "requests_per_minute_per_ip", &["100", "0"]),
    ("source", "rate_window_seconds", &["60", "2.5", "nan", "inf", "-1", "0.05"]),
    ("source", "colour", &["\"blue\""]),
    ("target", "user", &["\"svc-vr@site-b.local\"", "\"\""]),
    ("defaults", "target_datastore", &["\"ds-gold-01\"", "\"\"", "\"ds-0123456789012345678901234567890123456789012345678901234567890123456789012345678\""]),
    ("defaults", "storage_policy", &["\"VR Gold\"", "\"VR\\u0000Gold\""]),
    ("defaults", "rpo", &["15", "2", "1441", "\"15\""]),
    ("defaults", "mpit_instances", &["4", "30"]),
    ("defaults", "mpit_days", &["2", "0"]),
    ("defaults", "disk_format", &["\"thin\"", "\"sparse\""]),
    ("run", "workers", &["4", "0", "65"]),
    ("run", "lookup_group", &["50", "0", "201"]),
    ("run", "submit_group", &["20", "0", "21"]),
    ("run", "max_attempts", &["5", "0", "101"]),
    ("run", "poll_interval_seconds", &["2", "nan", "-1", "0", "1e300"]),
    ("run", "request_retries", &["3", "1000"]),
    ("run", "lease_seconds", &["60", "0"]),
    ("run", "max_initial_syncs", &["10", "0", "2001", "\"auto\"", "\"all\"", "\"some\""]),
    ("run", "order", &["\"input\"", "\"smallest-first\"", "\"random\""]),
    ("run", "rate", &["5"]),
];

/// The commands besides `import` that read the settings file, with what they need to run.
const OTHERS: [&[&str]; 5] = [
    &["run"],
    &["plan"],
    &["watch", "--once"],
    &["inventory", "export"],
    &["undo", "--batch", "1", "--plan"],
];

/// A seeded generator (xorshift64): the same mutations on every run, so a failure repeats.
struct Seeded(u64);

impl Seeded {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// A valid settings file with one to three keys set to values of [`SETTINGS_MUTATIONS`].
fn mutated_settings(rng: &mut Seeded) -> String {
    let mut keys: Vec<(&str, &str, &str)> = vec![
        ("source", "url", "\"https://127.0.0.1:1\""),
        ("source", "user", "\"administrator@vsphere.local\""),
        ("defaults", "target_datastore", "\"ds-gold-01\""),
        ("run", "workers", "4"),
    ];
    for _ in 0..1 + rng.below(3) {
        let (section, key, values) = SETTINGS_MUTATIONS[rng.below(SETTINGS_MUTATIONS.len())];
        let value = values[rng.below(values.len())];
        keys.retain(|(s, k, _)| (*s, *k) != (section, key));
        keys.push((section, key, value));
    }
    ["source", "target", "defaults", "run"]
        .iter()
        .map(|section| {
            let lines: String = keys
                .iter()
                .filter(|(s, _, _)| s == section)
                .map(|(_, k, v)| format!("{k} = {v}\n"))
                .collect();
            format!("[{section}]\n{lines}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// From the `error:` line on: what a command said of the settings file.
fn error_part(stderr: &str) -> String {
    stderr
        .find("error: ")
        .map(|at| stderr[at..].to_string())
        .unwrap_or_default()
}

/// Regression: 31 of 200 mutated settings files that `config check` refused still let `import`
/// write a batch. Every command that reads the file checks it by the same rules when it loads
/// it: whatever `config check` refuses, `import`, `run`, `plan`, `watch`, `inventory export`
/// and `undo` refuse with the same words (exit 2) and write nothing; whatever it accepts,
/// `import` imports and none of them calls the file wrong.
#[test]
fn every_command_that_reads_the_settings_file_refuses_what_config_check_refuses() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("ca.pem"), "a CA certificate").unwrap();
    let csv = dir.path().join("wave.csv");
    fs::write(&csv, "vm_name,target_datastore\napp-001,ds-gold-01\n").unwrap();
    // A queue with a batch, for the commands that act on one.
    let queue = dir.path().join("queue.db");
    import(&queue, &data("samples/vms.csv")).assert_exit(0);
    let before = snapshot(&queue);

    let mut rng = Seeded(0x5eed_c0ff_ee17);
    let (mut refused, mut accepted) = (0, 0);
    for i in 0..200 {
        let settings = mutated_settings(&mut rng);
        let config = dir.path().join(format!("m{i}.toml"));
        fs::write(&config, &settings).unwrap();
        let checked = check(&config).run();
        let code = checked.output.status.code();
        let db = dir.path().join(format!("m{i}.db"));
        let imported = Cmd::new()
            .config(&config)
            .db(&db)
            .args(["import".as_ref(), csv.as_os_str()])
            .run();
        let context = format!(
            "mutation {i}:\n{settings}\nconfig check:\n{}{}\nimport:\n{}{}",
            checked.stdout(),
            checked.stderr(),
            imported.stdout(),
            imported.stderr()
        );
        assert_eq!(imported.output.status.code(), code, "{context}");
        // The other commands on every third file: they load it as `import` does.
        let others = if i % 3 == 0 { &OTHERS[..] } else { &[] };
        match code {
            Some(2) => {
                refused += 1;
                let said = error_part(&checked.stderr());
                assert!(said.starts_with("error: config file "), "{context}");
                assert_eq!(error_part(&imported.stderr()), said, "{context}");
                assert!(
                    !db.exists(),
                    "a refused import created its queue: {context}"
                );
                for args in others {
                    let ran = Cmd::new()
                        .config(&config)
                        .db(&queue)
                        .args(*args)
                        .assert_exit(2);
                    assert_eq!(error_part(&ran.stderr()), said, "{args:?}, {context}");
                }
            }
            Some(0) => {
                accepted += 1;
                assert_eq!(
                    Queue::open(&db).unwrap().jobs(1).unwrap().len(),
                    1,
                    "{context}"
                );
                for args in others {
                    let ran = Cmd::new().config(&config).db(&queue).args(*args).run();
                    assert!(
                        !ran.stderr().contains("config file"),
                        "{args:?}: {}\n{context}",
                        ran.stderr()
                    );
                }
            }
            _ => panic!("config check exited {code:?}: {context}"),
        }
    }
    assert_eq!(snapshot(&queue), before, "a command wrote to the queue");
    // Both answers were put to the test, often.
    assert!(
        refused >= 50 && accepted >= 30,
        "{refused} refused, {accepted} accepted"
    );
}

#[test]
fn an_unreachable_appliance_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on: bind one, note it, let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("vrbulk.toml");
    fs::write(
        &config,
        format!("[source]\nurl = \"https://127.0.0.1:{port}\"\nuser = \"u\"\n"),
    )
    .unwrap();
    check(&config)
        .env("VRBULK_PASSWORD", "p")
        .args(["--connect"])
        .assert_exit(3)
        .stderr_contains("cannot reach https://127.0.0.1");
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_vrbulk"))
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // As `vrbulk … | head` does once it has read enough: the reader goes away.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "no panic, no error message"
    );
    assert_eq!(out.status.code(), Some(141));
}

#[test]
fn the_readme_and_help_list_every_exit_code_as_the_code_defines_it() {
    use vrbulk::exit::Exit;
    let readme = fs::read_to_string(data("README.md")).unwrap();
    let section = readme
        .split("## Exit codes")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("the README has an exit-code section");
    let rows: Vec<(u8, String)> = section
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.trim().trim_matches('|').split(" | ").collect();
            Some((
                cells.first()?.trim().parse().ok()?,
                cells.get(1)?.trim().into(),
            ))
        })
        .collect();
    let expected: Vec<(u8, String)> = Exit::ALL
        .iter()
        .map(|e| (e.code(), e.meaning().to_string()))
        .collect();
    assert_eq!(
        rows, expected,
        "README.md's exit codes differ from src/exit.rs"
    );

    for command in [&["--help"][..], &["run", "--help"]] {
        let help = Cmd::new().args(command).assert_exit(0).stdout();
        let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for exit in Exit::ALL {
            let line = format!("{} {}", exit.code(), exit.meaning());
            assert!(flat.contains(&line), "{command:?} lacks `{line}`:\n{help}");
        }
    }
}

/// Who reads a queue that must not be written to: root ignores file permissions, so as root the
/// reading command runs as `nobody`; anyone else is held by the permissions as they are.
fn reader() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    (unsafe { libc::geteuid() } == 0).then_some((65534, 65534))
}

/// `vrbulk --db db args…` run as [`reader`], with its output.
fn read_as_reader(db: &Path, args: &[&str]) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vrbulk"));
    command.arg("--db").arg(db).args(args);
    if let Some((uid, gid)) = reader() {
        command.uid(uid).gid(gid);
    }
    command.output().unwrap()
}

/// The files of `dir`, sorted, and a digest of the queue's bytes.
fn files_and_digest(dir: &Path, db: &Path) -> (Vec<String>, Vec<u8>) {
    use sha2::{Digest, Sha256};
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    (names, Sha256::digest(fs::read(db).unwrap()).to_vec())
}

/// Asserts that `status`, `report` and `batches` read the queue at `db` as [`reader`], and
/// that `status` says `expect`.
fn reading_commands_read(db: &Path, expect: &str) {
    for args in [&["status"][..], &["report"], &["batches"]] {
        let out = read_as_reader(db, args);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(0), "{args:?}\n{stdout}\n{stderr}");
        assert!(!stderr.contains("error:"), "{args:?}: {stderr}");
        if args == ["status"] {
            assert!(stdout.contains(expect), "{stdout}");
        }
    }
}

/// Regression: a read-only queue (a copied queue, a mounted backup) could not even be read by
/// `status` or `report` ("attempt to write a readonly database"). Reading commands open it
/// read-only: a file without write permission, and one in a folder without it, read; neither
/// the file nor its folder changes (no index files left beside it); and a live writer's latest
/// commit is seen through its own index.
#[test]
fn reading_commands_read_a_queue_they_cannot_write() {
    use std::os::unix::fs::{chown, PermissionsExt};
    let root = tempfile::tempdir().unwrap();
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let owner = reader().map(|(uid, gid)| (Some(uid), Some(gid)));

    // A file without write permission, in a folder the reader may write to.
    let dir = root.path().join("copied");
    fs::create_dir(&dir).unwrap();
    let db = dir.join("q.db");
    import(&db, &data("samples/vms.csv")).assert_exit(0);
    fs::remove_dir_all(dir.join("logs")).unwrap();
    fs::set_permissions(&db, fs::Permissions::from_mode(0o444)).unwrap();
    if let Some((uid, gid)) = owner {
        chown(&dir, uid, gid).unwrap();
        chown(&db, uid, gid).unwrap();
    }
    let before = files_and_digest(&dir, &db);
    reading_commands_read(&db, "batch 1 \"vms\"");
    let mut after = files_and_digest(&dir, &db);
    // The log files of a reading command are its own, not the queue's.
    after.0.retain(|name| name != "logs");
    assert_eq!(
        after, before,
        "reading changed the queue or left files beside it"
    );

    // A folder without write permission, while a writer holds the queue open: the reader
    // sees the writer's latest commit, still in its write-ahead log.
    let dir = root.path().join("mounted");
    fs::create_dir(&dir).unwrap();
    let db = dir.join("q.db");
    import(&db, &data("samples/vms.csv")).assert_exit(0);
    fs::remove_dir_all(dir.join("logs")).unwrap();
    let mut writer = Queue::open(&db).unwrap();
    writer
        .create_batch(
            &crate::support::fixtures::new_batch("written-while-read"),
            &crate::support::fixtures::specs(1),
        )
        .unwrap();
    assert!(
        dir.join("q.db-wal").exists(),
        "the writer keeps a write-ahead log"
    );
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).unwrap();
    reading_commands_read(&db, "batch 2 \"written-while-read\"");
    drop(writer);
    // Closed: the writer could not remove its log in a read-only folder; the reader reads on.
    reading_commands_read(&db, "batch 2 \"written-while-read\"");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A queue whose schema is older than this vrbulk: a reading command says so and leaves it as
/// it is, rather than upgrading it (or failing obscurely on a read-only copy).
#[test]
fn a_reading_command_does_not_upgrade_an_older_queue_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    for migration in ["0001_queue.sql", "0002_runs_and_api_usage.sql"] {
        conn.execute_batch(&fs::read_to_string(data("migrations").join(migration)).unwrap())
            .unwrap();
    }
    conn.pragma_update(None, "user_version", 2).unwrap();
    drop(conn);
    let before = fs::read(&db).unwrap();
    for command in ["status", "report", "batches"] {
        Cmd::new()
            .db(&db)
            .args([command])
            .assert_exit(2)
            .stderr_contains(
                "was written by an older vrbulk (schema version 2; this vrbulk reads version",
            )
            .stderr_contains(
                "any command that writes to it (run, retry, cancel, import) upgrades it first",
            );
    }
    assert_eq!(
        fs::read(&db).unwrap(),
        before,
        "a reading command changed the queue"
    );
}
