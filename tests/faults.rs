//! Every command that talks to the appliance is as robust as `run`: with a tenth of the calls
//! answered 500 or 503, `plan`, `inventory export` and `import --inventory` give exactly the
//! answers they give without faults, and a plan that finds a VM that would fail says so with
//! exit 1.

use std::fs;
use std::path::Path;

use vrbulk::queue::Queue;
use vrbulk::sim::{SimConfig, Simulator};

use crate::support::cmd::Cmd;
use crate::support::fixtures::config_for;
use crate::support::harness::start;

/// What the three commands answered, read back from their output and the queue.
#[derive(Debug, PartialEq)]
struct Answers {
    export: String,
    plan: String,
    plan_exit: Option<i32>,
    imported: Vec<(String, Option<String>)>,
}

fn answers(sim: &Simulator, dir: &Path) -> Answers {
    let config = config_for(
        sim,
        dir,
        "[defaults]\ntarget_datastore = \"ds-silver-01\"\n",
    );
    let base = |db: &Path| {
        Cmd::new()
            .env("VRBULK_PASSWORD", "VMware1!")
            .config(&config)
            .db(db)
    };
    let export = dir.join("export.csv");
    base(&dir.join("unused.db"))
        .args([
            "inventory".as_ref(),
            "export".as_ref(),
            "-o".as_ref(),
            export.as_os_str(),
        ])
        .assert_exit(0);

    let selected = dir.join("selected.db");
    base(&selected)
        .args(["import", "--inventory", "--match", "app-0*", "--rpo", "15"])
        .assert_exit(0);
    let imported = Queue::open(&selected)
        .unwrap()
        .jobs(1)
        .unwrap()
        .into_iter()
        .map(|j| (j.vm_label().to_string(), j.spec.vm.id.clone()))
        .collect();

    // A plan of a CSV with a VM that does not exist: it would fail.
    let csv = dir.join("wave.csv");
    fs::write(
        &csv,
        "vm_name,target_datastore\napp-001,ds-gold-01\napp-002,ds-gold-01\nno-such-vm,ds-gold-01\n\
         tmpl-rhel9-golden,ds-gold-01\nlegacy-erp-01,ds-gold-01\n",
    )
    .unwrap();
    let planned = dir.join("planned.db");
    base(&planned)
        .args(["import".as_ref(), csv.as_os_str()])
        .assert_exit(0);
    let plan = base(&planned).args(["plan", "--json"]).run();
    Answers {
        export: fs::read_to_string(&export).unwrap(),
        plan: plan.stdout(),
        plan_exit: plan.output.status.code(),
        imported,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_export_and_inventory_import_answer_the_same_under_server_errors() {
    let healthy = start(SimConfig::fast()).await;
    let faulty = start(SimConfig {
        fail_rate: 0.1,
        ..SimConfig::fast()
    })
    .await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (pa, pb) = (a.path().to_path_buf(), b.path().to_path_buf());
    let (healthy, faulty) = tokio::task::spawn_blocking(move || {
        let without = answers(&healthy, &pa);
        // Three times, so that the faults hit every command somewhere.
        let with: Vec<Answers> = (0..3)
            .map(|i| {
                let dir = pb.join(i.to_string());
                fs::create_dir(&dir).unwrap();
                answers(&faulty, &dir)
            })
            .collect();
        (without, (with, faulty.stats()))
    })
    .await
    .unwrap();
    let (with, stats) = faulty;
    assert!(stats.status_5xx > 0, "no fault was injected: {stats:?}");
    for answered in with {
        assert_eq!(answered, healthy);
    }
    assert_eq!(
        healthy.plan_exit,
        Some(1),
        "a VM would fail: {}",
        healthy.plan
    );
    assert!(healthy.plan.contains("no-such-vm"), "{}", healthy.plan);
    assert!(!healthy.imported.is_empty());
}
