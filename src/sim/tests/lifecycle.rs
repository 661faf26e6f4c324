//! A replication's life as a client sees it over HTTP: initial sync in bytes, `OK` with a sync
//! time, `NOT_ACTIVE` until the power-on knob, faults after configuration, RPO violation.

use super::*;
use crate::sim::LinkModel;

impl Harness {
    /// Configures `vm_name` onto ds-gold-01 and waits for its task; the replication id.
    pub(super) async fn configured(&self, sid: &str, vm_name: &str) -> String {
        let inv = self.inv();
        let (s, body) = self
            .configure(sid, &json!([spec_for(&inv, vm_name, "ds-gold-01")]))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{body}");
        let task = self
            .wait_task(sid, body["list"][0]["id"].as_str().unwrap())
            .await;
        assert_eq!(task["status"], "SUCCESS", "{task}");
        task["result"]["replication_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub(super) async fn replication(&self, sid: &str, id: &str) -> (StatusCode, Value) {
        self.get(
            sid,
            &format!("/pairings/{}/replications/{id}", self.pairing()),
        )
        .await
    }

    /// Polls the replication until its status is `status` (10 s at most); its last answer.
    pub(super) async fn wait_status(&self, sid: &str, id: &str, status: &str) -> Value {
        eventually(
            Duration::from_secs(10),
            format!("replication {id} to be {status}"),
            async || {
                let (s, r) = self.replication(sid, id).await;
                assert_eq!(s, StatusCode::OK, "{r}");
                if r["status"]["status"] == status {
                    Ok(r)
                } else {
                    Err(r)
                }
            },
        )
        .await
    }
}

#[tokio::test]
async fn a_configured_replication_copies_its_enabled_disks_then_is_ok() {
    let h = Harness::plain(syncing_in("app-001", 1.5)).await;
    let sid = h.login_both().await;
    let id = h.configured(&sid, "app-001").await;

    let (_, r) = h.replication(&sid, &id).await;
    assert_eq!(r["status"]["status"], "INITIAL_FULL_SYNC", "{r}");
    assert_eq!(r["status"]["rpo_violation"], false);
    assert_eq!(r["configuration_state"], "OK");
    assert_eq!(r["last_sync_time"], 0);
    let p = &r["sync_progress"];
    assert_eq!(
        p["transferred_total"].as_f64().unwrap(),
        sync_bytes(40, "app-001")
    );
    assert!(p["transferred_current"].as_i64().unwrap() < p["transferred_total"].as_i64().unwrap());
    assert!((0..100).contains(&p["progress"].as_i64().unwrap()), "{p}");

    let done = h.wait_status(&sid, &id, "OK").await;
    assert_eq!(done["status"]["rpo_violation"], false);
    assert_eq!(done["current_rpo_violation"], 0);
    assert!(done["sync_progress"].is_null(), "{done}");
    assert!(done["last_sync_time"].as_i64().unwrap() > 1_700_000_000_000);
    assert_eq!(
        done["last_sync_size"].as_f64().unwrap(),
        sync_bytes(40, "app-001")
    );

    let stats: SimStats = h
        .http
        .get(format!("{}/__sim/stats", h.sim.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats.peak_initial_syncs, 1);
    let line = &stats.replications[&id];
    assert_eq!(line.vm_name, "app-001");
    assert_eq!(line.bytes as f64, sync_bytes(40, "app-001"));
    let (started, ended) = (line.sync_started.unwrap(), line.sync_ended.unwrap());
    assert!(line.submitted.at_ms <= line.configured.at_ms);
    assert_eq!(
        line.configured, started,
        "a powered-on VM starts syncing at once"
    );
    assert_eq!(ended.at_ms, done["last_sync_time"].as_i64().unwrap());
    // 1.5 s of wall time, a simulated hour or so: the scale is the ratio of the two clocks.
    let wall = (ended.at_ms - started.at_ms) as f64 / 1000.0;
    assert!((1.3..2.5).contains(&wall), "{wall}");
    let simulated = (ended.sim_ms - started.sim_ms) as f64 / 1000.0;
    let scale = h.sim.state().config().sync_time_scale;
    assert!(
        (simulated / wall - scale).abs() / scale < 0.01,
        "{simulated} / {wall}"
    );
}

#[tokio::test]
async fn a_powered_off_vm_stays_not_active_until_it_is_powered_on() {
    let h = Harness::plain(syncing_in(POWERED_OFF_VM, 0.3)).await;
    let sid = h.login_both().await;
    let id = h.configured(&sid, POWERED_OFF_VM).await;
    // Powered on, it would have synced in 0.3 s: ten times as long copies nothing.
    h.sim.skip(Duration::from_secs(3));
    let (_, r) = h.replication(&sid, &id).await;
    assert_eq!(r["status"]["status"], "NOT_ACTIVE", "{r}");
    assert_eq!(r["sync_progress"]["transferred_current"], 0);
    assert_eq!(r["last_sync_time"], 0);

    let knob = |vm: &str| format!("{}/__sim/vms/{vm}/power-on", h.sim.url());
    let resp = h.http.post(knob(POWERED_OFF_VM)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = h.http.post(knob("no-such-vm")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let inv = h.inv();
    let (_, vms) = h
        .get(
            &sid,
            &format!(
                "{}?filter_property=name&filter={POWERED_OFF_VM}",
                local_vms(&inv)
            ),
        )
        .await;
    assert_eq!(vms["list"][0]["power_state"], "POWERED_ON");
    h.wait_status(&sid, &id, "OK").await;
    assert!(h.sim.stats().replications[&id].sync_started.unwrap().at_ms > 0);
}

#[tokio::test]
async fn replications_that_fail_after_configuration_say_why_in_the_specs_fields() {
    let h = Harness::plain(SimConfig {
        replication_error_rate: 1.0,
        ..syncing_in("app-001", 0.5)
    })
    .await;
    let sid = h.login_both().await;
    let mut kinds = std::collections::BTreeSet::new();
    for vm in [
        "app-001", "app-002", "app-004", "app-005", "app-006", "app-008",
    ] {
        let id = h.configured(&sid, vm).await;
        let (_, r) = h.replication(&sid, &id).await;
        assert_eq!(r["status"]["status"], "ERROR", "{r}");
        let kind = if r["configuration_state"] == "ERROR" {
            assert!(r["last_group_error"].is_null(), "{r}");
            assert!(r["configuration_error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Cannot access datastore 'ds-gold-01'"));
            "configuration_error"
        } else {
            assert_eq!(r["configuration_state"], "OK");
            assert!(r["last_group_error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("No connection to VR Server for virtual machine"));
            "last_group_error"
        };
        kinds.insert(kind);
    }
    assert_eq!(kinds.len(), 2, "both kinds of fault among six VMs");
    assert_eq!(h.sim.stats().peak_initial_syncs, 0);
}

#[tokio::test]
async fn an_ok_replication_falls_into_rpo_violation_until_a_sync() {
    // An RPO of 5 minutes passes in a second at 300x; the link copies any VM at once.
    let h = Harness::plain(SimConfig {
        task_seconds: 0.2,
        sync_time_scale: 300.0,
        rpo_violation_rate: 1.0,
        link: LinkModel {
            bandwidth_mbps: 1e9,
            per_sync_ceiling_mbps: 1e9,
            contention_threshold: 10,
            contention_falloff: 1.0,
        },
        ..SimConfig::default()
    })
    .await;
    let sid = h.login_both().await;
    let inv = h.inv();
    let mut spec = spec_for(&inv, "app-001", "ds-gold-01");
    spec["rpo"] = json!(5);
    let (_, body) = h.configure(&sid, &json!([spec])).await;
    let task = h
        .wait_task(&sid, body["list"][0]["id"].as_str().unwrap())
        .await;
    let id = task["result"]["replication_id"]
        .as_str()
        .unwrap()
        .to_string();
    h.wait_status(&sid, &id, "OK").await;
    let r = h.wait_status(&sid, &id, "RPO_VIOLATION").await;
    assert_eq!(r["status"]["rpo_violation"], true);
    assert!(r["current_rpo_violation"].as_i64().unwrap() >= 0);

    let (s, t) = h.act(&sid, &id, "sync").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{t}");
    h.wait_task(&sid, t["id"].as_str().unwrap()).await;
    let (_, r) = h.replication(&sid, &id).await;
    assert_eq!(r["status"]["status"], "OK", "{r}");
    assert_eq!(r["status"]["rpo_violation"], false);
}
