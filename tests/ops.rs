//! Operator conveniences: `vrbulk init`, shell completions, an example in every `--help`, and
//! the log files beside the DB (their format, which commands write them, and that no secret
//! reaches them).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use clap::CommandFactory;
use vrbulk::cli::Cli;
use vrbulk::config::ConfigFile;
use vrbulk::domain::JobSpec;
use vrbulk::queue::NewBatch;
use vrbulk::sim::{SimConfig, Simulator};

use crate::support::cmd::Cmd;
use crate::support::fixtures::{config_for, import, new_batch, spec};
use crate::support::harness::start;

fn one_batch(db: &Path, vm_names: &[&str]) {
    let specs: Vec<JobSpec> = vm_names.iter().map(|name| spec(name)).collect();
    let batch = NewBatch {
        max_attempts: 8,
        ..new_batch("wave 1")
    };
    import(db, &batch, &specs);
}

/// The files of `dir/logs`, sorted; none when the folder does not exist.
fn log_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir.join("logs")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

fn all_logs(dir: &Path) -> String {
    log_files(dir)
        .iter()
        .map(|f| fs::read_to_string(f).unwrap())
        .collect()
}

#[test]
fn init_writes_a_commented_config_and_an_example_csv_that_parse_and_validate() {
    let dir = tempfile::tempdir().unwrap();
    Cmd::new()
        .current_dir(dir.path())
        .args(["init"])
        .assert_exit(0)
        .stdout_contains("export VRBULK_PASSWORD=")
        .stdout_contains("vrbulk config check --connect")
        .stdout_contains("vrbulk import vms.csv")
        .stdout_contains("vrbulk plan")
        .stdout_contains("vrbulk run");

    let toml = fs::read_to_string(dir.path().join("vrbulk.toml")).unwrap();
    let file = ConfigFile::parse(&toml).unwrap();
    file.defaults.validate().unwrap();
    assert_eq!(file.source.url.as_deref(), Some("https://127.0.0.1:8443"));
    for section in ["[source]", "[target]", "[defaults]", "[run]"] {
        assert!(toml.contains(section), "{section} missing");
    }
    for key in [
        "api_version",
        "ca_file",
        "thumbprint",
        "insecure",
        "timeout_seconds",
        "page_size",
        "target_datastore",
        "auto_replicate_new_disks",
        "disk_format",
        "requests_per_minute",
        "requests_per_minute_per_ip",
        "rate_window_seconds",
        "workers",
        "lookup_group",
        "submit_group",
        "max_attempts",
        "poll_interval_seconds",
        "lease_seconds",
    ] {
        assert!(toml.contains(&format!("# {key} = ")), "{key} not shown");
    }

    // The example CSV imports as it is, with the settings file beside it.
    let db = dir.path().join("q.db");
    Cmd::new()
        .current_dir(dir.path())
        .args([
            "--db".as_ref(),
            db.as_os_str(),
            "import".as_ref(),
            "vms.csv".as_ref(),
        ])
        .assert_exit(0)
        .stdout_contains("jobs imported");
}

#[test]
fn a_second_init_without_force_exits_2_and_leaves_the_files_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    Cmd::new()
        .current_dir(dir.path())
        .args(["init"])
        .assert_exit(0);
    let config = dir.path().join("vrbulk.toml");
    let csv = dir.path().join("vms.csv");
    fs::write(&config, "# edited by the operator\n").unwrap();
    fs::write(&csv, "vm_name\nweb-01\n").unwrap();

    Cmd::new()
        .current_dir(dir.path())
        .args(["init"])
        .assert_exit(2)
        .stderr_contains("vrbulk.toml already exists")
        .stderr_contains("--force");
    assert_eq!(
        fs::read_to_string(&config).unwrap(),
        "# edited by the operator\n"
    );
    assert_eq!(fs::read_to_string(&csv).unwrap(), "vm_name\nweb-01\n");

    // Only the CSV there: still refused, naming it, and the config is not written either.
    fs::remove_file(&config).unwrap();
    Cmd::new()
        .current_dir(dir.path())
        .args(["init"])
        .assert_exit(2)
        .stderr_contains("vms.csv already exists");
    assert!(!config.exists());

    Cmd::new()
        .current_dir(dir.path())
        .args(["init", "--force"])
        .assert_exit(0);
    assert!(fs::read_to_string(&config).unwrap().contains("[run]"));
    assert!(fs::read_to_string(&csv).unwrap().starts_with("vm_name,"));
}

#[test]
fn completions_for_each_shell_mention_vrbulk_and_its_subcommands() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let ran = Cmd::new().args(["completions", shell]).assert_exit(0);
        let script = ran.stdout();
        assert!(!script.trim().is_empty(), "{shell}: empty");
        assert!(script.contains("vrbulk"), "{shell}: no vrbulk");
        assert!(
            script.contains("import") && script.contains("status"),
            "{shell}: no subcommand names"
        );
    }
    Cmd::new()
        .args(["completions", "tcsh"])
        .assert_exit(2)
        .stderr_contains("possible values");
}

/// Every command path under `cmd` (`["config", "check"]`, ...), parents included.
fn command_paths(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let mut path = prefix.to_vec();
        path.push(sub.get_name().to_string());
        command_paths(sub, &path, out);
        out.push(path);
    }
}

#[test]
fn every_subcommand_help_has_an_example() {
    let mut paths = Vec::new();
    command_paths(&Cli::command(), &[], &mut paths);
    assert!(paths.len() >= 12, "{paths:?}");
    for path in &paths {
        let err = Cli::command()
            .try_get_matches_from(
                std::iter::once("vrbulk")
                    .chain(path.iter().map(String::as_str))
                    .chain(["--help"]),
            )
            .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp, "{path:?}");
        let help = err.to_string();
        assert!(
            help.contains("Example"),
            "`vrbulk {} --help` has no example:\n{help}",
            path.join(" ")
        );
    }
}

#[test]
fn json_log_files_sit_beside_the_db_for_a_batch_command() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("queue").join("q.db");
    fs::create_dir(db.parent().unwrap()).unwrap();
    one_batch(&db, &["web-01", "web-02"]);

    Cmd::new()
        .current_dir(dir.path())
        .args([
            "--db".as_ref(),
            db.as_os_str(),
            "--log-format".as_ref(),
            "json".as_ref(),
            "status".as_ref(),
        ])
        .assert_exit(0);

    let files = log_files(db.parent().unwrap());
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("vrbulk.log"), "{name}");
    let text = fs::read_to_string(&files[0]).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["command"] == "status" && l["level"] == "INFO"),
        "{text}"
    );
    // Beside the DB, not in the current folder.
    assert!(!dir.path().join("logs").exists());
}

#[test]
fn commands_that_touch_no_batch_create_no_logs_folder() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let config = dir.path().join("settings.toml");
    fs::write(
        &config,
        "[source]\nurl = \"https://vrms-a.corp.local\"\nuser = \"svc-vr@corp.local\"\n",
    )
    .unwrap();
    let with_db = |args: &[&str]| Cmd::new().current_dir(dir.path()).db(&db).args(args);
    with_db(&["--config", config.to_str().unwrap(), "config", "check"])
        .assert_exit(0)
        .stdout_contains("vrms-a.corp.local");
    with_db(&["completions", "bash"]).assert_exit(0);
    with_db(&["init"]).assert_exit(0);
    with_db(&["--help"]).assert_exit(0);
    // A command about a batch, with no queue there yet: exit 2 and nothing written.
    with_db(&["status"]).assert_exit(2);

    assert!(
        !dir.path().join("logs").exists(),
        "{:?}",
        log_files(dir.path())
    );
}

/// Session ids, as vSphere Replication hands them out: base64 of a UUID string. Finds them
/// in any text, whatever quotes or header names surround them.
fn session_ids_in(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')))
        .filter(|token| token.len() >= 40)
        .filter(|token| {
            base64::engine::general_purpose::STANDARD
                .decode(token)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .is_some_and(|s| {
                    s.len() == 36
                        && s.char_indices().all(|(i, c)| match i {
                            8 | 13 | 18 | 23 => c == '-',
                            _ => c.is_ascii_hexdigit(),
                        })
                })
        })
        .map(str::to_string)
        .collect()
}

/// Logs in the way any client does, to have a real session id in hand.
async fn raw_login(sim: &Simulator, cfg: &SimConfig) -> String {
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let body: serde_json::Value = http
        .post(format!("{}/api/rest/vr/v2/session", sim.url()))
        .basic_auth(&cfg.user, Some(&cfg.password))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    body["session_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_logs_jobs_and_vms_as_fields_and_never_a_password_or_session_id() {
    let cfg = SimConfig {
        vms: 12,
        task_seconds: 0.3,
        // Sessions die during the run, so the log covers logging in again too.
        session_ttl: Some(Duration::from_millis(400)),
        password: "Pa55-for-the-log-test!".into(),
        ..SimConfig::fast()
    };
    let sim = start(cfg.clone()).await;
    let session = raw_login(&sim, &cfg).await;
    // The detector below finds a real one.
    assert_eq!(
        session_ids_in(&format!("x-dr-session: {session}")),
        std::slice::from_ref(&session)
    );

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let names: Vec<String> = sim
        .inventory()
        .vms
        .iter()
        .map(|v| v.vm.name.clone())
        .collect();
    one_batch(&db, &names.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        cfg.user,
        SimConfig::default().user,
        "the user config_for writes"
    );
    let config = config_for(
        &sim,
        dir.path(),
        // All at once: the syncs here last real hours.
        "\n[run]\nsubmit_group = 3\nlookup_group = 4\npoll_interval_seconds = 0.2\n\
         max_initial_syncs = \"all\"\n",
    );
    sim.fail_next(2, 503);

    let password = cfg.password.clone();
    let ran = tokio::task::spawn_blocking(move || {
        Cmd::new()
            .env("VRBULK_PASSWORD", &password)
            .db(&db)
            .config(&config)
            .args(["--log-format", "json", "-vv", "run"])
            .run()
    })
    .await
    .unwrap();
    assert!(
        matches!(ran.output.status.code(), Some(0 | 1)),
        "{}",
        ran.stderr()
    );
    assert!(sim.stats().logins >= 2, "{:?}", sim.stats());

    let logs = all_logs(dir.path());
    let events: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["job"].is_number() && e["vm"].is_string()),
        "no event carries job and vm:\n{logs}"
    );
    assert!(
        events.iter().any(|e| e["level"] == "DEBUG"),
        "-vv logs debug to the file"
    );
    for (what, text) in [("log files", &logs), ("stderr", &ran.stderr())] {
        assert!(
            !text.contains(&cfg.password),
            "the password is in the {what}"
        );
        assert!(!text.contains(&session), "a session id is in the {what}");
        assert!(
            session_ids_in(text).is_empty(),
            "session ids in the {what}: {:?}",
            session_ids_in(text)
        );
    }
}

/// Issue 17: `plan` counted the VM home entry of the spec as a disk ("4 disks" for a three-disk
/// VM). Its count is the VM's data disks that replicate, by the simulator's own inventory: the
/// VM home is not one, and an unsupported disk is named among the excluded instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_counts_the_data_disks_that_replicate_not_the_vm_home() {
    use vrbulk::sim::VmKind;
    let sim = start(SimConfig::fast()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let inventory = sim.inventory();
    let vms: Vec<_> = inventory
        .vms
        .iter()
        .filter(|v| v.kind == VmKind::Normal)
        .take(10)
        .chain(
            inventory
                .vms
                .iter()
                .filter(|v| v.kind == VmKind::UnsupportedDisk),
        )
        .collect();
    assert!(vms.iter().any(|v| v.kind == VmKind::UnsupportedDisk));
    let names: Vec<&str> = vms.iter().map(|v| v.vm.name.as_str()).collect();
    one_batch(&db, &names);
    let config = config_for(&sim, dir.path(), "");
    let out = tokio::task::spawn_blocking(move || {
        Cmd::new()
            .env("VRBULK_PASSWORD", "VMware1!")
            .db(&db)
            .config(&config)
            .args(["plan", "--json"])
            .assert_exit(0)
            .stdout()
    })
    .await
    .unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), vms.len());
    for vm in vms {
        let row = rows.iter().find(|r| r["vm_name"] == vm.vm.name).unwrap();
        let data: Vec<_> = vm.disks().iter().filter(|d| !d.is_vm_home()).collect();
        let replicated = data.iter().filter(|d| d.is_supported()).count();
        let excluded = data.len() - replicated;
        assert_eq!(row["disks"], replicated, "{}: {row}", vm.vm.name);
        assert_eq!(
            row["excluded_disks"].as_array().unwrap().len(),
            excluded,
            "{row}"
        );
    }
}
