//! The VR client against the in-process simulator: every endpoint of the configure workflow and
//! of the day-2 operations, paging, filters, re-login, throttling, typed errors and TLS trust.

use std::time::Duration;

use vrbulk::domain::{Placement, ReplicationSettings};
use vrbulk::sim::{RateLimits, SimConfig, VmKind};
use vrbulk::vr::model::{
    ConfigurationState, ConfigureReplicationVmDisk, DiskFormat, ReconfigureReplicationSpec,
    ReplicationStatus, TaskStatus,
};
use vrbulk::vr::{
    ApiError, Client, ErrorClass, Filter, Politeness, RetryPolicy, Thumbprint, TlsTrust,
};
use vrbulk::workflow::build_spec;

use crate::support::harness::{client_for, settings_for, sim_config, start};
use crate::support::wait::eventually;

#[tokio::test]
async fn logs_in_and_reads_its_session() {
    let sim = start(sim_config()).await;
    let client = client_for(&sim).await;
    let info = client.session_info().await.unwrap();
    assert_eq!(
        info.username.as_deref(),
        Some("administrator@vsphere.local")
    );
    client.logout().await.unwrap();
    let stats = sim.stats();
    assert_eq!(stats.calls.get("login"), Some(&1));
    assert_eq!(stats.calls.get("logout"), Some(&1));
}

#[tokio::test]
async fn a_wrong_password_is_refused_once_and_never_sent_again() {
    let sim = start(sim_config()).await;
    let mut settings = settings_for(&sim);
    settings.source.password = vrbulk::secret::Secret::new("wrong");
    let client = Client::new(settings).unwrap();
    let err = client.login().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Credentials, "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("the source site refused the login of administrator@vsphere.local")
            && text.contains("POST /session: HTTP 401"),
        "{text}"
    );
    // Asked again, the client answers from what it learnt: an SSO server counts every try.
    let again = client.login().await.unwrap_err();
    assert_eq!(again.class(), ErrorClass::Credentials);
    let refused = sim.stats().refused_logins;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].site, "source");
}

#[tokio::test]
async fn a_wrong_target_password_costs_one_refused_login_even_on_an_expired_session() {
    let sim = start(sim_config()).await;
    let inv = sim.inventory();
    let mut settings = settings_for(&sim);
    settings.target.password = vrbulk::secret::Secret::new("wrong");
    let client = Client::connect(settings).await.unwrap();
    for expire in [false, true] {
        if expire {
            sim.expire_sessions();
        }
        let err = client.remote_login(&inv.pairing_id).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Credentials, "{err}");
        assert!(
            err.to_string().starts_with(&format!(
                "the target site of pairing {} refused the login",
                inv.pairing_id
            )),
            "{err}"
        );
    }
    let refused = sim.stats().refused_logins;
    assert_eq!(refused.len(), 1, "one refused login per site: {refused:?}");
    assert_eq!(refused[0].site, inv.pairing_id);
}

#[tokio::test]
async fn a_remote_login_on_an_expired_session_logs_in_again_without_a_refusal() {
    let sim = start(sim_config()).await;
    let inv = sim.inventory();
    let client = client_for(&sim).await;
    sim.expire_sessions();
    client.remote_login(&inv.pairing_id).await.unwrap();
    let stats = sim.stats();
    assert!(
        stats.refused_logins.is_empty(),
        "{:?}",
        stats.refused_logins
    );
    assert_eq!(stats.logins, 2);
    assert_eq!(client.metrics().relogins, 1);
}

#[tokio::test]
async fn a_transient_failure_of_the_first_login_is_retried_as_any_call() {
    let sim = start(sim_config()).await;
    sim.fail_next_login(1, 503);
    let client = Client::connect(settings_for(&sim)).await.unwrap();
    client.pairings().await.unwrap();
    let stats = sim.stats();
    let logins: Vec<u16> = stats
        .journal
        .iter()
        .filter(|r| r.op == "login")
        .map(|r| r.status)
        .collect();
    assert_eq!(logins, [503, 200]);
    assert_eq!(client.metrics().calls("login"), 2);
}

#[tokio::test]
async fn a_session_is_renewed_before_the_lifetime_the_appliance_showed() {
    let ttl = Duration::from_millis(600);
    let sim = start(SimConfig {
        session_ttl: Some(ttl),
        ..sim_config()
    })
    .await;
    let client = client_for(&sim).await;
    // The first two sessions end unannounced: two ends alike teach the lifetime (one alone
    // could be an appliance restart). The client learns it on its own clock, the wall clock,
    // which no test can move: the sleep is the lifetime passing, not a wait for something.
    for _ in 0..2 {
        tokio::time::sleep(ttl + Duration::from_millis(100)).await;
        client.pairings().await.unwrap();
    }
    let refused_before = sim.stats().status_4xx;
    assert_eq!(refused_before, 2, "the first two ends of a session are met");
    // From then on a session is renewed before its end: no request meets a 401. Requests
    // spread over four lifetimes, paced on purpose so that some fall near each session's end.
    let deadline = std::time::Instant::now() + ttl * 4;
    while std::time::Instant::now() < deadline {
        client.pairings().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = sim.stats();
    assert_eq!(
        stats.status_4xx, refused_before,
        "no later request was refused"
    );
    assert!(stats.logins >= 4, "renewed: {} logins", stats.logins);
}

#[tokio::test]
async fn a_change_whose_turn_comes_after_the_change_window_is_not_sent() {
    // One request a session per 2 s: a configure asked for right after a read waits ~2 s for
    // its slot, and the window closes meanwhile.
    let limits = RateLimits {
        per_session: 2,
        ..RateLimits::scaled(Duration::from_secs(2))
    };
    let sim = start(SimConfig {
        limits: Some(limits),
        ..sim_config()
    })
    .await;
    let inv = sim.inventory();
    let mut settings = settings_for(&sim);
    settings.limits = limits.client_limits();
    let client = Client::connect(settings).await.unwrap();
    client.remote_login(&inv.pairing_id).await.unwrap();
    let vm = inv.vms.iter().find(|v| v.kind == VmKind::Normal).unwrap();
    let placement = Placement {
        target_vc_id: inv.remote_vc.id.clone(),
        datastore_id: inv.datastore_by_name("ds-gold-01").unwrap().id.clone(),
        storage_policy_id: None,
        replication_server_id: None,
    };
    let (spec, _) = build_spec(&vm.vm, &placement, &ReplicationSettings::default());
    let until = vrbulk::queue::system_clock()() + 1_500;
    client.close_changes_at(Some(until));

    let err = client
        .configure_replications(&inv.pairing_id, &[spec])
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::WindowClosed { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::NotSent);
    let stats = sim.stats();
    assert_eq!(stats.accepted_changes().count(), 0, "{:?}", stats.journal);
    assert!(!stats.journal.iter().any(|r| r.op == "configureReplication"));
    // Reads still go: what was sent before the close is followed to its end.
    client.pairings().await.unwrap();
}

#[tokio::test]
async fn reads_every_discovery_endpoint_of_the_workflow() {
    let sim = start(sim_config()).await;
    let inv = sim.inventory();
    let client = client_for(&sim).await;

    let pairings = client.pairings().await.unwrap();
    assert_eq!(pairings.len(), 1);
    let p = &pairings[0];
    assert_eq!(p.pairing_id, inv.pairing_id);
    assert_eq!(
        p.remote_vc_server.id.as_deref(),
        Some(inv.remote_vc.id.as_str())
    );

    client.remote_login(&p.pairing_id).await.unwrap();
    let remote = client.remote_session_info(&p.pairing_id).await.unwrap();
    assert!(remote.username.is_some());

    let vrms = client.vrms(&p.pairing_id).await.unwrap();
    let target = vrms
        .iter()
        .find(|v| v.vc_guid.as_deref() == Some(inv.remote_vc.id.as_str()))
        .expect("a VRMS for the remote vCenter");
    let servers = client
        .replication_servers(&p.pairing_id, &target.id)
        .await
        .unwrap();
    assert_eq!(servers.len(), inv.replication_servers.len());

    let datastores = client
        .datastores(&p.pairing_id, &inv.remote_vc.id)
        .await
        .unwrap();
    let names: Vec<&str> = datastores.iter().map(|d| d.name.as_str()).collect();
    for expected in ["ds-gold-01", "ds-silver-01", "ds-bronze-01", "ds-full-01"] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let policies = client
        .storage_policies(&p.pairing_id, &inv.remote_vc.id)
        .await
        .unwrap();
    assert!(policies
        .iter()
        .any(|sp| sp.storage_policy_name == "VR Gold"));

    let vms = client
        .vms(&p.pairing_id, &inv.local_vc.id, false, None)
        .await
        .unwrap();
    assert_eq!(vms.len(), inv.vms.len());
    assert!(vms
        .iter()
        .all(|vm| vm.disks.as_ref().is_some_and(|d| !d.is_empty())));

    let nvme = inv
        .vms
        .iter()
        .find(|v| v.kind == VmKind::UnsupportedDisk)
        .unwrap();
    let disks = client
        .vm_disks(&p.pairing_id, &inv.local_vc.id, &nvme.vm.id)
        .await
        .unwrap();
    assert!(disks.iter().any(|d| !d.is_supported()));

    let template = inv.vms.iter().find(|v| v.kind == VmKind::Template).unwrap();
    let cap = client
        .vm_capability(&p.pairing_id, &inv.local_vc.id, &template.vm.id)
        .await
        .unwrap();
    assert_eq!(
        cap.vm_validation_status,
        Some(vrbulk::vr::model::VmValidationStatus::IsVmTemplate)
    );

    let replicated = inv
        .vms
        .iter()
        .find(|v| v.kind == VmKind::AlreadyReplicated)
        .unwrap();
    let replications = client.replications(&p.pairing_id, None).await.unwrap();
    assert!(replications
        .iter()
        .any(|r| r.vm_id.as_deref() == Some(replicated.vm.id.as_str())));
}

#[tokio::test]
async fn lists_follow_paging_past_one_hundred_items() {
    let sim = start(SimConfig {
        vms: 250,
        ..sim_config()
    })
    .await;
    let inv = sim.inventory();
    let client = client_for(&sim).await;
    let vms = client
        .vms(&inv.pairing_id, &inv.local_vc.id, false, None)
        .await
        .unwrap();
    assert_eq!(vms.len(), 250);
    let mut ids: Vec<&str> = vms.iter().map(|v| v.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 250, "pages overlapped or repeated");
    assert_eq!(sim.stats().calls.get("getLocalVms"), Some(&3));
}

#[tokio::test]
async fn repeated_filter_values_select_exactly_those_vms() {
    let sim = start(sim_config()).await;
    let inv = sim.inventory();
    let client = client_for(&sim).await;
    let unusual = inv
        .vms
        .iter()
        .find(|v| v.kind == VmKind::UnusualName)
        .unwrap();
    let wanted = [
        inv.vms[0].vm.name.clone(),
        unusual.vm.name.clone(),
        "no-such-vm".to_string(),
    ];
    let vms = client
        .vms(
            &inv.pairing_id,
            &inv.local_vc.id,
            false,
            Some(&Filter::new("name", wanted.clone())),
        )
        .await
        .unwrap();
    let mut got: Vec<&str> = vms.iter().map(|v| v.name.as_str()).collect();
    got.sort();
    let mut expected = vec![wanted[0].as_str(), wanted[1].as_str()];
    expected.sort();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn an_expired_session_is_renewed_once_with_its_remote_login() {
    let sim = start(sim_config()).await;
    let inv = sim.inventory();
    let client = client_for(&sim).await;
    client.remote_login(&inv.pairing_id).await.unwrap();

    sim.expire_sessions();
    // A target-site call: it needs the remote login too, which the re-login must restore.
    let datastores = client
        .datastores(&inv.pairing_id, &inv.remote_vc.id)
        .await
        .unwrap();
    assert!(!datastores.is_empty());

    assert_eq!(client.metrics().relogins, 1);
    let stats = sim.stats();
    assert_eq!(stats.calls.get("login"), Some(&2));
    assert_eq!(stats.calls.get("createRemoteSession"), Some(&2));
}

#[tokio::test]
async fn concurrent_callers_share_one_relogin() {
    let sim = start(sim_config()).await;
    let inv = sim.inventory();
    let client = client_for(&sim).await;
    client.remote_login(&inv.pairing_id).await.unwrap();
    sim.expire_sessions();

    let calls = (0..16).map(|_| {
        let client = client.clone();
        let (p, vc) = (inv.pairing_id.clone(), inv.remote_vc.id.clone());
        tokio::spawn(async move { client.storage_policies(&p, &vc).await })
    });
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(
        sim.stats().calls.get("login"),
        Some(&2),
        "one re-login, not one each"
    );
    assert_eq!(client.metrics().relogins, 1);
}

#[tokio::test]
async fn a_session_past_its_ttl_is_renewed_transparently() {
    let sim = start(SimConfig {
        session_ttl: Some(Duration::from_millis(300)),
        ..sim_config()
    })
    .await;
    let client = client_for(&sim).await;
    client.pairings().await.unwrap();
    sim.skip(Duration::from_millis(400));
    client.pairings().await.unwrap();
    assert_eq!(client.metrics().relogins, 1);
}

#[tokio::test]
async fn a_refusal_is_waited_out_for_the_next_window_not_returned() {
    // The appliance allows 4 requests a session per second; the client believes the defaults.
    let sim = start(SimConfig {
        limits: Some(RateLimits {
            per_session: 4,
            ..RateLimits::scaled(Duration::from_secs(1))
        }),
        ..sim_config()
    })
    .await;
    let mut settings = settings_for(&sim);
    settings.limits = RateLimits::scaled(Duration::from_secs(1)).client_limits();
    let client = Client::connect(settings).await.unwrap();
    let started = std::time::Instant::now();
    for _ in 0..10 {
        client.pairings().await.expect("throttling is waited out");
    }
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "a window was waited for"
    );
    let refused = sim.stats().status_429;
    assert!(refused >= 1);
    assert_eq!(client.metrics().total().throttled, refused);
    assert_eq!(
        client.metrics().total().retries,
        0,
        "refusals are not retries"
    );
    let status = client.budget().status();
    assert_eq!(status.stats.refusals, refused);
    assert!(status.quota <= 4, "the budget learnt the quota: {status:?}");
}

#[tokio::test]
async fn a_client_told_not_to_wait_sees_throttling_as_a_typed_error() {
    let sim = start(SimConfig {
        limits: Some(RateLimits {
            per_session: 1,
            retry_after: true,
            ..RateLimits::scaled(Duration::from_secs(30))
        }),
        ..sim_config()
    })
    .await;
    let mut settings = settings_for(&sim);
    settings.limits = RateLimits::scaled(Duration::from_secs(30)).client_limits();
    let impatient = RetryPolicy {
        max_throttled: Duration::ZERO,
        ..RetryPolicy::default()
    };
    let client = Client::with_politeness(settings, Politeness::new(1, impatient)).unwrap();
    client.login().await.unwrap();
    client.pairings().await.unwrap();
    let err = client.pairings().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Throttled, "{err}");
    assert_eq!(err.status(), Some(429));
    assert!(
        err.retry_after()
            .is_some_and(|d| d >= Duration::from_secs(1)),
        "{err:?}"
    );
}

#[tokio::test]
async fn server_errors_are_transient_and_carry_the_servers_words() {
    let sim = start(sim_config()).await;
    let inv = sim.inventory();
    // No retries: this client shows every failure as it comes.
    let client = Client::new(settings_for(&sim)).unwrap();
    client.login().await.unwrap();

    sim.fail_next(1, 503);
    let err = client.pairings().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err}");
    assert_eq!(err.status(), Some(503));

    let err = client
        .vm_disks(
            &inv.pairing_id,
            &inv.local_vc.id,
            "VirtualMachine:vm-999999:nope",
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert_eq!(err.status(), Some(404));
    assert!(err.server_message().is_some_and(|m| !m.is_empty()), "{err}");
}

#[tokio::test]
async fn a_rejected_configure_names_the_offending_field() {
    let sim = start(sim_config()).await;
    let inv = sim.inventory();
    let client = client_for(&sim).await;
    client.remote_login(&inv.pairing_id).await.unwrap();
    let vm = inv.vms.iter().find(|v| v.kind == VmKind::Normal).unwrap();
    let placement = Placement {
        target_vc_id: inv.remote_vc.id.clone(),
        datastore_id: inv.datastores[0].id.clone(),
        storage_policy_id: None,
        replication_server_id: None,
    };
    let (mut spec, _) = build_spec(&vm.vm, &placement, &ReplicationSettings::default());
    spec.rpo = 2;
    let err = client
        .configure_replications(&inv.pairing_id, &[spec])
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.class(), ErrorClass::Permanent);
    let ApiError::Status(status) = &err else {
        panic!("{err:?}")
    };
    assert!(status.message.contains("rpo"), "{}", status.message);
    assert!(status.error_code.is_some());
    assert!(sim.stats().configure_attempts.is_empty());
}

#[tokio::test]
async fn configures_and_follows_tasks_by_id() {
    let sim = start(sim_config()).await;
    let inv = sim.inventory();
    let client = client_for(&sim).await;
    client.remote_login(&inv.pairing_id).await.unwrap();
    let vm = inv
        .vms
        .iter()
        .find(|v| v.kind == VmKind::PoweredOff)
        .unwrap();
    let placement = Placement {
        target_vc_id: inv.remote_vc.id.clone(),
        datastore_id: inv
            .datastores
            .iter()
            .find(|d| d.name == "ds-silver-01")
            .unwrap()
            .id
            .clone(),
        storage_policy_id: None,
        replication_server_id: Some(inv.replication_servers[1].id.clone()),
    };
    let (spec, _) = build_spec(&vm.vm, &placement, &ReplicationSettings::default());
    let tasks = client
        .configure_replications(&inv.pairing_id, &[spec])
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1);
    let task = finished(&client, &tasks[0].id).await;
    assert_eq!(task.status, TaskStatus::Success, "{task:?}");
    let recent = client
        .tasks(Some(&Filter::new("id", [task.id.clone()])))
        .await
        .unwrap();
    assert_eq!(recent.len(), 1);
}

#[tokio::test]
async fn a_pinned_thumbprint_is_trusted_and_any_other_certificate_refused() {
    let sim = start(sim_config()).await;
    let client = Client::connect(settings_for(&sim)).await;
    assert!(client.is_ok(), "pinned thumbprint accepted");
    let presented = sim.thumbprint().unwrap();

    let mut wrong_pin = settings_for(&sim);
    wrong_pin.trust = TlsTrust::Pinned(Thumbprint::of_der(b"some other certificate"));
    let err = Client::connect(wrong_pin).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent, "retrying will not help");
    assert!(matches!(err, ApiError::Untrusted(_)), "{err:?}");
    let shown = err.to_string();
    assert!(shown.contains("is not trusted"), "{shown}");
    assert!(!shown.contains("cannot reach"), "{shown}");
    assert!(
        shown.contains(&format!("thumbprint = \"{presented}\"")),
        "{shown}"
    );

    let mut default_trust = settings_for(&sim);
    default_trust.trust = TlsTrust::Verify;
    let err = Client::connect(default_trust).await.unwrap_err();
    assert!(matches!(err, ApiError::Untrusted(_)), "{err:?}");
    assert!(err.to_string().contains(presented), "{err}");

    let mut insecure = settings_for(&sim);
    insecure.trust = TlsTrust::Insecure;
    assert!(Client::connect(insecure).await.is_ok());
}

#[tokio::test]
async fn each_error_says_its_part_once() {
    let sim = start(sim_config()).await;
    let mut settings = settings_for(&sim);
    settings.source.password = vrbulk::secret::Secret::new("wrong");
    let err = Client::connect(settings).await.unwrap_err();
    let shown = format!("{:#}", anyhow::Error::new(err).context("logging in"));
    assert_eq!(shown.matches("HTTP 401").count(), 1, "{shown}");

    let mut unreachable = settings_for(&sim);
    unreachable.url = "https://127.0.0.1:1".parse().unwrap();
    let err = Client::connect(unreachable).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient);
    let shown = format!("{:#}", anyhow::Error::new(err));
    assert_eq!(shown.matches("127.0.0.1:1").count(), 1, "{shown}");
    assert!(shown.contains("cannot reach"), "{shown}");
}

#[tokio::test]
async fn an_unreadable_ca_file_is_a_setup_error() {
    let sim = start(sim_config()).await;
    let mut settings = settings_for(&sim);
    settings.trust = TlsTrust::VerifyWithCa("/nonexistent/vmca.pem".into());
    let err = Client::new(settings).unwrap_err();
    assert!(matches!(err, ApiError::Setup(_)), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/vmca.pem"), "{err}");
}

#[tokio::test]
async fn speaks_api_v1_as_well() {
    let sim = start(sim_config()).await;
    let mut settings = settings_for(&sim);
    settings.api_version = vrbulk::vr::ApiVersion::V1;
    let client = Client::connect(settings).await.unwrap();
    assert_eq!(client.pairings().await.unwrap().len(), 1);
}

/// Polls `GET /tasks/{id}` until the task has finished.
async fn finished(client: &Client, task_id: &str) -> vrbulk::vr::model::Task {
    eventually(
        Duration::from_secs(15),
        format!("task {task_id} to end"),
        async || {
            let t = client.task(task_id).await.unwrap();
            if t.status.is_finished() {
                Ok(t)
            } else {
                Err(format!("{t:?}"))
            }
        },
    )
    .await
}

/// Configures `vm_name` onto ds-gold-01 and waits for its task; the replication id.
async fn configured(client: &Client, inv: &vrbulk::sim::Inventory, vm_name: &str) -> String {
    let vm = inv.vm_by_name(vm_name).unwrap();
    let placement = Placement {
        target_vc_id: inv.remote_vc.id.clone(),
        datastore_id: inv.datastore_by_name("ds-gold-01").unwrap().id.clone(),
        storage_policy_id: None,
        replication_server_id: None,
    };
    let (spec, _) = build_spec(&vm.vm, &placement, &ReplicationSettings::default());
    let tasks = client
        .configure_replications(&inv.pairing_id, &[spec])
        .await
        .unwrap();
    let task = finished(client, &tasks[0].id).await;
    assert_eq!(task.status, TaskStatus::Success, "{task:?}");
    task.result.unwrap()["replication_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Polls `GET …/replications/{id}` until its status is `status`.
async fn status_becomes(
    client: &Client,
    pairing: &str,
    id: &str,
    status: ReplicationStatus,
) -> vrbulk::vr::model::ReplicationInfo {
    eventually(
        Duration::from_secs(15),
        format!("replication {id} to be {status:?}"),
        async || {
            let r = client.replication(pairing, id).await.unwrap();
            if r.status.as_ref().and_then(|s| s.status) == Some(status) {
                Ok(r)
            } else {
                Err(format!("{r:?}"))
            }
        },
    )
    .await
}

/// Syncs that end within a second or two, the appliance's limits over 2 s windows.
fn syncing_fast() -> SimConfig {
    SimConfig {
        sync_time_scale: 20_000.0,
        ..sim_config()
    }
}

#[tokio::test]
async fn follows_a_replication_and_its_disks_through_the_initial_sync() {
    let sim = start(syncing_fast()).await;
    let inv = sim.inventory();
    let client = client_for(&sim).await;
    client.remote_login(&inv.pairing_id).await.unwrap();
    let id = configured(&client, &inv, "app-001").await;

    let r = client.replication(&inv.pairing_id, &id).await.unwrap();
    assert_eq!(r.id, id);
    assert_eq!(r.configuration_state, Some(ConfigurationState::Ok));
    let disks = client
        .replication_disks(&inv.pairing_id, &id)
        .await
        .unwrap();
    let vm = inv.vm_by_name("app-001").unwrap();
    assert_eq!(disks.len(), vm.disks().len());
    assert!(disks.iter().all(|d| d.replicated == Some(true)));
    let bytes: i64 = vm.disks().iter().filter_map(|d| d.capacity).sum::<i64>() * 1024;
    if let Some(p) = &r.sync_progress {
        assert_eq!(p.transferred_total, Some(bytes));
    }

    let ok = status_becomes(&client, &inv.pairing_id, &id, ReplicationStatus::Ok).await;
    assert!(ok.last_sync_time > 0);
    assert_eq!(ok.last_sync_size, Some(bytes));
    assert_eq!(ok.current_rpo_violation, Some(0));
    let err = client
        .replication(&inv.pairing_id, "GID-nope")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(sim.stats().calls.get("getReplicatedVmDisks"), Some(&1));
}

#[tokio::test]
async fn pauses_resumes_syncs_reconfigures_and_unconfigures_one_replication() {
    let sim = start(syncing_fast()).await;
    let inv = sim.inventory();
    let p = inv.pairing_id.as_str();
    let client = client_for(&sim).await;
    client.remote_login(p).await.unwrap();
    let id = configured(&client, &inv, "app-002").await;
    status_becomes(&client, p, &id, ReplicationStatus::Ok).await;

    let task = client.pause_replication(p, &id).await.unwrap();
    assert_eq!(task.entity_name.as_deref(), Some("app-002"));
    assert_eq!(
        finished(&client, &task.id).await.status,
        TaskStatus::Success
    );
    status_becomes(&client, p, &id, ReplicationStatus::Paused).await;
    let err = client.pause_replication(p, &id).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.class(), ErrorClass::Permanent);
    let ApiError::Status(refusal) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        refusal.error_code.as_deref(),
        Some("INVALID_REPLICATION_STATE")
    );
    assert!(refusal.message.contains("already paused"), "{err}");

    let task = client.resume_replication(p, &id).await.unwrap();
    finished(&client, &task.id).await;
    let before = status_becomes(&client, p, &id, ReplicationStatus::Ok).await;
    let task = client.sync_replication(p, &id).await.unwrap();
    finished(&client, &task.id).await;
    let after = client.replication(p, &id).await.unwrap();
    assert!(after.last_sync_time > before.last_sync_time);

    let disks = client.replication_disks(p, &id).await.unwrap();
    let spec = ReconfigureReplicationSpec {
        quiesce_enabled: Some(false),
        rpo: 15,
        network_compression_enabled: true,
        mpit_enabled: false,
        mpit_instances: None,
        mpit_days: None,
        auto_replicate_new_disks: false,
        target_replication_server_id: None,
        lwd_encryption_enabled: false,
        vm_data_sets_replication_enabled: None,
        disks: disks
            .into_iter()
            .map(|d| ConfigureReplicationVmDisk {
                enabled_for_replication: d.replicated == Some(true),
                use_seeds: None,
                destination_storage_policy_id: d.destination_storage_policy_id,
                destination_path: None,
                destination_datastore_id: d
                    .destination_path
                    .map(|p| p.datastore_id)
                    .unwrap_or_default(),
                destination_disk_format: DiskFormat::SameAsSource,
                vm_disk: d.vm_disk,
            })
            .collect(),
    };
    let task = client.reconfigure_replication(p, &id, &spec).await.unwrap();
    assert_eq!(
        finished(&client, &task.id).await.status,
        TaskStatus::Success
    );
    assert_eq!(client.replication(p, &id).await.unwrap().rpo, Some(15));

    let task = client.unconfigure_replication(p, &id, true).await.unwrap();
    finished(&client, &task.id).await;
    assert_eq!(
        client.replication(p, &id).await.unwrap_err().status(),
        Some(404)
    );

    let stats = sim.stats();
    let ops = &stats.operations[&id];
    for op in ["pause", "resume", "sync", "reconfigure", "unconfigure"] {
        assert_eq!(ops.get(op), Some(&1), "{op}: {ops:?}");
    }
    assert_eq!(stats.replica_disks_retained, vec![id.clone()]);
}

#[tokio::test]
async fn destroys_a_replication_on_the_local_site() {
    let sim = start(syncing_fast()).await;
    let inv = sim.inventory();
    let p = inv.pairing_id.as_str();
    let client = client_for(&sim).await;
    client.remote_login(p).await.unwrap();
    let id = configured(&client, &inv, "app-004").await;
    let task = client.destroy_replication(p, &id, false).await.unwrap();
    assert_eq!(
        task.description_id.as_deref(),
        Some("com.vmware.vr.DestroyReplicationTask")
    );
    finished(&client, &task.id).await;
    assert!(client
        .replications(p, None)
        .await
        .unwrap()
        .iter()
        .all(|r| r.id != id));
    assert_eq!(sim.stats().operations[&id]["destroy"], 1);
    assert!(sim.stats().replica_disks_retained.is_empty());
}
