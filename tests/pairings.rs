//! A batch over several site pairs (issue 13): rows name their pairing by remote vCenter, and
//! against a simulator paired with several target sites each VM ends on the site its row named,
//! each named pairing is discovered once, nothing is refused or configured twice; `plan --json`
//! says each row's target site; a CSV naming two pairings imports and runs through the binary.

use std::collections::BTreeMap;
use std::fs;

use vrbulk::domain::{JobSpec, ReplicationSettings, VmRef};
use vrbulk::queue::{JobState, Queue};
use vrbulk::runner::Ending;
use vrbulk::sim::{Inventory, SimConfig, SiteRef, VmKind, REPLICATED_VM};

use crate::run::{import, quick_options, run_once};
use crate::support::cmd::Cmd;
use crate::support::fixtures::config_for;
use crate::support::harness::start;

const SITE_B: &str = "vc-site-b.corp.local";
const SITE_C: &str = "vc-site-c.corp.local";

/// The target site whose remote vCenter is called `name`.
fn site<'a>(inv: &'a Inventory, name: &str) -> SiteRef<'a> {
    inv.sites()
        .find(|s| s.remote_vc.name == name)
        .unwrap_or_else(|| panic!("no pairing to {name}"))
}

/// The second VR server of the site a row names, as the operator would name it.
fn second_server(site: &str) -> &'static str {
    if site == SITE_B {
        "vrs-target-02"
    } else {
        "vrs-site-c-02"
    }
}

/// One job per source VM, every other one to site C (the legacy VM too, though it is
/// replicated to site B already): datastores, policies and named servers as each site calls
/// them.
fn jobs_over_two_sites(inv: &Inventory) -> Vec<JobSpec> {
    let datastores = ["ds-gold-01", "ds-silver-01", "ds-bronze-01"];
    inv.vms
        .iter()
        .enumerate()
        .map(|(i, vm)| {
            let site = if i % 2 == 1 || vm.vm.name == REPLICATED_VM {
                SITE_C
            } else {
                SITE_B
            };
            JobSpec {
                line: Some(i as u64 + 2),
                vm: VmRef {
                    name: Some(vm.vm.name.clone()),
                    id: None,
                },
                pairing: Some(site.into()),
                target_datastore: datastores[i % 3].into(),
                storage_policy: (i % 4 == 0).then(|| "VR Gold".to_string()),
                replication_server: (i % 5 == 0).then(|| second_server(site).to_string()),
                settings: ReplicationSettings::default(),
                change_ticket: Some("CHG0013".into()),
                notes: None,
            }
        })
        .collect()
}

/// The VM's replication on the simulator (there is one at most, whatever the pairing).
fn replication_of<'a>(
    inv: &'a Inventory,
    vm_name: &str,
) -> Option<&'a vrbulk::vr::model::ReplicationInfo> {
    let id = &inv.vm_by_name(vm_name).unwrap().vm.id;
    let mut found = inv
        .replications
        .iter()
        .filter(|r| r.vm_id.as_deref() == Some(id));
    let first = found.next();
    assert!(found.next().is_none(), "{vm_name} replicated twice");
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_two_pairings_puts_each_vm_on_the_site_its_row_names() {
    // Three target sites, the appliance's quotas over 2 s windows; the rows name two.
    let sim = start(SimConfig {
        vms: 80,
        pairings: 3,
        ..SimConfig::fast()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let jobs = jobs_over_two_sites(&sim.inventory());
    let batch = import(&db, &jobs);

    let outcome = run_once(&db, &sim, quick_options()).await;

    assert_eq!(outcome.ending, Ending::Done);
    let inv = sim.inventory();
    let jobs = Queue::open(&db).unwrap().jobs(batch).unwrap();
    let mut configured = 0;
    for job in &jobs {
        let name = job.vm_label();
        let row_site = job.spec.pairing.as_deref().unwrap();
        let replication = replication_of(&inv, name);
        match inv.vm_by_name(name).unwrap().kind {
            VmKind::Template => assert_eq!(job.state, JobState::Skipped, "{name}"),
            VmKind::AlreadyReplicated => {
                // Replicated to site B before the batch; the row asks for site C.
                assert_eq!(job.state, JobState::Skipped, "{name}");
                let reason = job.reason.as_deref().unwrap_or_default();
                assert!(reason.contains("already configured"), "{reason}");
                let r = replication.unwrap();
                assert_eq!(r.target_site_name.as_deref(), Some(SITE_B));
            }
            _ => {
                assert_eq!(job.state, JobState::Succeeded, "{name}: {:?}", job.reason);
                configured += 1;
                let r = replication.unwrap_or_else(|| panic!("{name} not replicated"));
                let target = site(&inv, row_site);
                assert_eq!(
                    r.target_vc_id.as_deref(),
                    Some(target.remote_vc.id.as_str()),
                    "{name}"
                );
                assert_eq!(Some(&r.id), job.checkpoint.replication_id.as_ref());
                let server = r.replication_server_name.as_deref().unwrap();
                match job.spec.replication_server.as_deref() {
                    Some(named) => assert_eq!(server, named, "{name}"),
                    None => assert!(
                        target.replication_server_by_name(server).is_some(),
                        "{name} on {server}, not a server of {row_site}"
                    ),
                }
            }
        }
    }
    assert!(configured > 70, "{configured} configured");
    let on = |name: &str| {
        let id = &site(&inv, name).remote_vc.id;
        inv.replications
            .iter()
            .filter(|r| r.target_vc_id.as_ref() == Some(id))
            .count()
    };
    assert!(
        on(SITE_B) > 30 && on(SITE_C) > 30,
        "{} / {}",
        on(SITE_B),
        on(SITE_C)
    );
    assert_eq!(on("vc-site-d.corp.local"), 0);

    // Each pairing the rows name discovered once; the third never touched.
    let stats = sim.stats();
    let (b, c) = (site(&inv, SITE_B), site(&inv, SITE_C));
    let logins: BTreeMap<String, u64> = [(b.pairing_id, 1), (c.pairing_id, 1)]
        .into_iter()
        .map(|(p, n)| (p.to_string(), n))
        .collect();
    assert_eq!(stats.remote_logins, logins);
    for op in [
        "getAllVrDetailsInPairing",
        "getAllVrServersInPairing",
        "getVrCapableTargetDatastores",
        "getVcStoragePolicies",
    ] {
        assert_eq!(stats.calls.get(op), Some(&2), "{op}: {:?}", stats.calls);
    }
    assert_eq!(stats.status_429, 0, "{:?}", stats.limiter);
    assert_eq!(outcome.budget.refusals, 0);
    assert!(stats.configured_more_than_once.is_empty());
    assert!(
        stats.configure_rejected.is_empty(),
        "sent and refused: {:?}",
        stats.configure_rejected
    );
    assert_eq!(stats.configure_attempts.len(), configured);
}

#[tokio::test]
async fn plan_json_says_each_rows_target_site_and_configures_nothing() {
    let sim = start(SimConfig {
        pairings: 2,
        ..SimConfig::fast()
    })
    .await;
    let inv = sim.inventory();
    let c_id = site(&inv, SITE_C).pairing_id.to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let row = |vm: &str, pairing: &str, server: Option<&str>| JobSpec {
        pairing: Some(pairing.into()),
        replication_server: server.map(str::to_string),
        ..crate::support::fixtures::spec(vm)
    };
    import(
        &db,
        &[
            row("app-001", SITE_B, None),
            row("app-002", SITE_C, None),
            row("db-003", SITE_C, Some("vrs-site-c-02")),
            // Site B's server named on a row for site C.
            row("app-004", SITE_C, Some("vrs-target-02")),
            // By pairing id, as the CSV allows.
            row("app-005", &c_id, None),
            row("app-006", "vc-site-x.corp.local", None),
        ],
    );
    let config = config_for(&sim, dir.path(), "");
    let out = tokio::task::spawn_blocking(move || {
        Cmd::new()
            .env("VRBULK_PASSWORD", "VMware1!")
            .db(&db)
            .config(&config)
            .args(["plan", "--json"])
            .assert_exit(1)
            .stdout()
    })
    .await
    .unwrap();
    let planned: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let row = |vm: &str| planned.iter().find(|p| p["vm_name"] == vm).unwrap();
    for (vm, target) in [
        ("app-001", SITE_B),
        ("app-002", SITE_C),
        ("db-003", SITE_C),
        ("app-005", SITE_C),
    ] {
        let p = row(vm);
        assert_eq!(p["action"], "configure", "{p}");
        assert_eq!(p["target_site"], target, "{p}");
        assert_eq!(p["target_datastore"], "ds-gold-01", "{p}");
    }
    let server = |vm: &str| row(vm)["replication_server"].as_str().unwrap().to_string();
    assert!(server("app-001").starts_with("vrs-target-0"), "{planned:?}");
    assert!(server("app-002").starts_with("vrs-site-c-0"), "{planned:?}");
    assert_eq!(server("db-003"), "vrs-site-c-02");

    let wrong_server = row("app-004");
    assert_eq!(wrong_server["action"], "fail");
    assert_eq!(wrong_server["target_site"], SITE_C);
    let reason = wrong_server["reason"].as_str().unwrap();
    assert!(
        reason.contains("VR server `vrs-target-02` not found on vc-site-c.corp.local")
            && reason.contains("vrs-site-c-01, vrs-site-c-02"),
        "{reason}"
    );
    let unknown = row("app-006");
    assert_eq!(unknown["action"], "fail");
    assert_eq!(unknown["target_site"], "vc-site-x.corp.local");
    let reason = unknown["reason"].as_str().unwrap();
    assert!(
        reason.contains("no pairing with remote vCenter or id `vc-site-x.corp.local`")
            && reason.contains(SITE_C),
        "{reason}"
    );
    let stats = sim.stats();
    assert!(
        stats.configure_attempts.is_empty(),
        "plan configured something"
    );
    assert_eq!(stats.calls.get("configureReplication"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_naming_two_pairings_imports_and_runs_through_the_binary() {
    let sim = start(SimConfig {
        pairings: 2,
        ..SimConfig::fast()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("two-sites.csv");
    fs::write(
        &csv,
        "vm_name,pairing,target_datastore,storage_policy,replication_server\n\
         app-001,vc-site-b.corp.local,ds-gold-01,VR Gold,vrs-target-02\n\
         app-002,VC-SITE-C.corp.local,ds-gold-01,VR Gold,vrs-site-c-02\n\
         db-003,vc-site-c.corp.local,ds-silver-01,,auto\n\
         app-004,vc-site-b.corp.local,ds-bronze-01,,\n\
         app-005,vc-site-c.corp.local,ds-bronze-01,VR Silver,\n",
    )
    .unwrap();
    let db = dir.path().join("q.db");
    let config = config_for(&sim, dir.path(), "\n[run]\npoll_interval_seconds = 0.2\n");
    let (db2, csv2) = (db.clone(), csv.clone());
    let ran = tokio::task::spawn_blocking(move || {
        let base = || {
            Cmd::new()
                .env("VRBULK_PASSWORD", "VMware1!")
                .db(&db2)
                .config(&config)
        };
        let imported = base()
            .args(["import".as_ref(), csv2.as_os_str()])
            .assert_exit(0)
            .stdout();
        let ran = base().args(["run"]).assert_exit(0).stdout();
        (imported, ran)
    })
    .await
    .unwrap();
    let (imported, _) = ran;
    // The import's summary counts VMs per pairing as the rows spell them.
    let line = imported
        .lines()
        .find(|l| l.trim_start().starts_with("pairing"))
        .unwrap_or_else(|| panic!("no pairing line:\n{imported}"));
    assert!(
        line.contains("vc-site-b.corp.local 2")
            && line.contains("vc-site-c.corp.local 2")
            && line.contains("VC-SITE-C.corp.local 1"),
        "{line}"
    );

    let jobs = Queue::open(&db).unwrap().jobs(1).unwrap();
    assert_eq!(jobs.len(), 5);
    let inv = sim.inventory();
    for job in &jobs {
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
        let wanted = job.spec.pairing.as_deref().unwrap().to_lowercase();
        let r = replication_of(&inv, job.vm_label()).unwrap();
        assert_eq!(
            r.target_vc_id.as_deref(),
            Some(site(&inv, &wanted).remote_vc.id.as_str()),
            "{}",
            job.vm_label()
        );
    }
    let server = |vm: &str| {
        replication_of(&inv, vm)
            .unwrap()
            .replication_server_name
            .clone()
    };
    assert_eq!(server("app-001").as_deref(), Some("vrs-target-02"));
    assert_eq!(server("app-002").as_deref(), Some("vrs-site-c-02"));
    let stats = sim.stats();
    assert_eq!(stats.status_429, 0);
    assert!(stats.configured_more_than_once.is_empty());
    assert_eq!(stats.configure_attempts.len(), 5);
}
