//! Day-2 operations over HTTP: each answers 202 with a task and acts when that task ends; the
//! wrong state, an operation in flight and an unknown id are refused in the spec's shapes.

use super::*;

impl Harness {
    /// `POST …/replications/{id}/actions/{action}`.
    pub(super) async fn act(&self, sid: &str, id: &str, action: &str) -> (StatusCode, Value) {
        let url = self.api(&format!(
            "/pairings/{}/replications/{id}/actions/{action}",
            self.pairing()
        ));
        let r = self
            .http
            .post(url)
            .header("x-dr-session", sid)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    async fn reconfigure(&self, sid: &str, id: &str, body: &Value) -> (StatusCode, Value) {
        let url = self.api(&format!(
            "/pairings/{}/replications/{id}/actions/reconfigure",
            self.pairing()
        ));
        let r = self
            .http
            .post(url)
            .header("x-dr-session", sid)
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    /// Runs `action` to the end of its task; the task.
    async fn done(&self, sid: &str, id: &str, action: &str) -> Value {
        let (s, task) = self.act(sid, id, action).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{action}: {task}");
        self.wait_task(sid, task["id"].as_str().unwrap()).await
    }

    /// A reconfigure body that keeps the replication as it is but for `rpo`, its disks as
    /// `GET …/disks` lists them.
    async fn reconfigure_body(&self, sid: &str, id: &str, rpo: i64) -> Value {
        let (s, disks) = self
            .get(
                sid,
                &format!("/pairings/{}/replications/{id}/disks", self.pairing()),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{disks}");
        let gold = self
            .inv()
            .datastore_by_name("ds-gold-01")
            .unwrap()
            .id
            .clone();
        let disks: Vec<Value> = disks["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                json!({
                    "vm_disk": d["vm_disk"],
                    "enabled_for_replication": d["replicated"],
                    "destination_datastore_id": d["destination_path"]["datastore_id"]
                        .as_str()
                        .unwrap_or(&gold),
                    "destination_disk_format": "SAME_AS_SOURCE",
                    "destination_storage_policy_id": d["destination_storage_policy_id"],
                })
            })
            .collect();
        json!({
            "rpo": rpo,
            "network_compression_enabled": false,
            "mpit_enabled": true,
            "mpit_instances": 4,
            "mpit_days": 2,
            "auto_replicate_new_disks": true,
            "lwd_encryption_enabled": true,
            "quiesce_enabled": true,
            "target_replication_server_id": null,
            "disks": disks,
        })
    }
}

fn code(body: &Value) -> &str {
    body["error_code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn pause_resume_sync_reconfigure_and_unconfigure_act_when_their_task_ends() {
    let h = Harness::plain(syncing_in("app-001", 0.3)).await;
    let sid = h.login_both().await;
    let id = h.configured(&sid, "app-001").await;
    h.wait_status(&sid, &id, "OK").await;

    let (s, task) = h.act(&sid, &id, "pause").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{task}");
    assert_eq!(task["status"], "QUEUED");
    assert_eq!(task["description_id"], "com.vmware.vr.PauseReplicationTask");
    assert_eq!(task["entity_name"], "app-001");
    let (s, b) = h.act(&sid, &id, "resume").await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::BAD_REQUEST, "OPERATION_IN_PROGRESS")
    );
    assert!(
        message(&b).contains("a pause operation is in progress (task HTask:"),
        "{b}"
    );
    let done = h.wait_task(&sid, task["id"].as_str().unwrap()).await;
    assert_eq!(done["result"]["replication_id"], id.as_str());
    let (_, r) = h.replication(&sid, &id).await;
    assert_eq!(r["status"]["status"], "PAUSED");

    let (s, b) = h.act(&sid, &id, "pause").await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::BAD_REQUEST, "INVALID_REPLICATION_STATE")
    );
    assert!(
        message(&b).ends_with("(PAUSED): the replication is already paused."),
        "{b}"
    );
    let (s, b) = h.act(&sid, &id, "sync").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(message(&b).contains("resume it first"), "{b}");

    h.done(&sid, &id, "resume").await;
    h.wait_status(&sid, &id, "OK").await;
    let (s, b) = h.act(&sid, &id, "resume").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        message(&b).ends_with("the replication is not paused."),
        "{b}"
    );

    let (_, before) = h.replication(&sid, &id).await;
    let (s, task) = h.act(&sid, &id, "sync").await;
    assert_eq!(s, StatusCode::ACCEPTED);
    h.wait_status(&sid, &id, "SYNC").await;
    h.wait_task(&sid, task["id"].as_str().unwrap()).await;
    let (_, after) = h.replication(&sid, &id).await;
    assert_eq!(after["status"]["status"], "OK");
    assert!(after["last_sync_time"].as_i64() > before["last_sync_time"].as_i64());

    let body = h.reconfigure_body(&sid, &id, 15).await;
    let (s, task) = h.reconfigure(&sid, &id, &body).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{task}");
    h.wait_task(&sid, task["id"].as_str().unwrap()).await;
    let (_, r) = h.replication(&sid, &id).await;
    assert_eq!(r["rpo"], 15);
    assert_eq!(r["mpit_instances"], 4);
    assert_eq!(r["mpit_days"], 2);
    assert_eq!(r["network_compression_enabled"], false);
    assert_eq!(r["encryption_enabled"], true);
    assert_eq!(r["quiescing_enabled"], true);
    assert_eq!(r["auto_replicate_new_disks_enabled"], true);

    let url = h.api(&format!(
        "/pairings/{}/replications/{id}/actions/unconfigure?retain_replica_disks=true",
        h.pairing()
    ));
    let resp = h
        .http
        .post(url)
        .header("x-dr-session", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let task: Value = resp.json().await.unwrap();
    h.wait_task(&sid, task["id"].as_str().unwrap()).await;
    let (s, _) = h.replication(&sid, &id).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The VM is free again: a new configure is accepted.
    let again = h.configured(&sid, "app-001").await;
    assert_ne!(again, id);

    let stats = h.sim.stats();
    let ops = &stats.operations[&id];
    for (op, n) in [
        ("pause", 1),
        ("resume", 1),
        ("sync", 1),
        ("reconfigure", 1),
        ("unconfigure", 1),
    ] {
        assert_eq!(ops.get(op), Some(&n), "{op}: {ops:?}");
    }
    let refused = &stats.operations_refused[&id];
    assert_eq!(refused.get("pause"), Some(&1), "{refused:?}");
    assert_eq!(refused.get("resume"), Some(&2), "{refused:?}");
    assert_eq!(refused.get("sync"), Some(&1), "{refused:?}");
    assert_eq!(stats.replica_disks_retained, vec![id.clone()]);
    assert!(!stats.operations.contains_key(&again));
    let vm = h.inv().vm_by_name("app-001").unwrap().vm.id.clone();
    assert_eq!(stats.configure_attempts[&vm], 2);
}

#[tokio::test]
async fn operations_wait_for_the_configuration_and_a_sync_waits_for_the_initial_sync() {
    // Tasks of 4 s and an initial sync of 200 s, moved on by the test's skips: each state
    // lasts far longer than the machine takes to ask about it.
    let task = Duration::from_secs(4);
    let h = Harness::plain(SimConfig {
        task_seconds: task.as_secs_f64(),
        ..syncing_in("app-002", 200.0)
    })
    .await;
    let sid = h.login_both().await;
    let inv = h.inv();
    let (_, body) = h
        .configure(&sid, &json!([spec_for(&inv, "app-002", "ds-gold-01")]))
        .await;
    let vm = inv.vm_by_name("app-002").unwrap().vm.id.clone();
    let listing = format!(
        "/pairings/{}/replications?filter_property=vm_id&filter={}",
        inv.pairing_id,
        listing::encode(&vm)
    );
    // Its configure task runs once its first quarter has passed: the replication is listed.
    h.sim.skip(task / 3);
    let (_, reps) = h.get(&sid, &listing).await;
    let id = reps["list"][0]["id"].as_str().unwrap().to_string();
    let (s, b) = h.act(&sid, &id, "pause").await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::BAD_REQUEST, "OPERATION_IN_PROGRESS")
    );
    assert!(
        message(&b).contains("its configuration is in progress"),
        "{b}"
    );

    h.sim.skip(task);
    h.wait_task(&sid, body["list"][0]["id"].as_str().unwrap())
        .await;
    let (s, b) = h.act(&sid, &id, "sync").await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::BAD_REQUEST, "INVALID_REPLICATION_STATE")
    );
    assert!(
        message(&b).contains("(INITIAL_FULL_SYNC): the initial full sync is in progress ("),
        "{b}"
    );
    // A pause stops the initial sync where it is: a minute later nothing more was copied.
    let (s, pause) = h.act(&sid, &id, "pause").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{pause}");
    h.sim.skip(task);
    h.wait_task(&sid, pause["id"].as_str().unwrap()).await;
    let (_, r1) = h.replication(&sid, &id).await;
    h.sim.skip(Duration::from_secs(60));
    let (_, r2) = h.replication(&sid, &id).await;
    assert_eq!(r2["status"]["status"], "PAUSED");
    let copied = r2["sync_progress"]["transferred_current"].as_i64().unwrap();
    assert!(copied > 0 && copied < r2["sync_progress"]["transferred_total"].as_i64().unwrap());
    assert_eq!(
        r1["sync_progress"]["transferred_current"],
        r2["sync_progress"]["transferred_current"]
    );
    assert_eq!(h.sim.stats().operations_refused[&id]["sync"], 1);
}

#[tokio::test]
async fn unknown_ids_are_404_and_a_bad_retain_flag_is_400() {
    let h = Harness::plain(syncing_in("app-001", 1.0)).await;
    let sid = h.login_both().await;
    for action in ["pause", "resume", "sync", "unconfigure"] {
        let (s, b) = h.act(&sid, "GID-nope", action).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{action}");
        assert!(
            message(&b).contains("no replication with id 'GID-nope'"),
            "{b}"
        );
    }
    let (s, _) = h
        .get(
            &sid,
            &format!("/pairings/{}/replications/GID-nope/disks", h.pairing()),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let id = h.configured(&sid, "app-004").await;
    let url = h.api(&format!(
        "/pairings/{}/replications/{id}/actions/unconfigure?retain_replica_disks=maybe",
        h.pairing()
    ));
    let resp = h
        .http
        .post(url)
        .header("x-dr-session", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(
        message(&b),
        "retain_replica_disks: must be true or false, got 'maybe'"
    );
    assert!(!h.sim.stats().operations.contains_key(&id));
}

#[tokio::test]
async fn destroy_needs_no_remote_login_and_removes_the_replication() {
    let h = Harness::plain(syncing_in("app-001", 1.0)).await;
    let sid = h.login_both().await;
    let id = h.configured(&sid, "app-005").await;
    let local_only = h.login().await;
    let url = h.api(&format!("/pairings/{}/replications/{id}", h.pairing()));
    let resp = h
        .http
        .delete(&url)
        .header("x-dr-session", &local_only)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let task: Value = resp.json().await.unwrap();
    assert_eq!(
        task["description_id"],
        "com.vmware.vr.DestroyReplicationTask"
    );
    h.wait_task(&sid, task["id"].as_str().unwrap()).await;
    assert_eq!(h.replication(&sid, &id).await.0, StatusCode::NOT_FOUND);
    // The other operations touch the target site: they need the remote login.
    let other = h.configured(&sid, "app-006").await;
    assert_eq!(
        h.act(&local_only, &other, "pause").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(h.sim.stats().operations[&id]["destroy"], 1);
}

#[tokio::test]
async fn with_the_target_site_down_only_the_local_site_answers_and_destroy_still_works() {
    let h = Harness::plain(syncing_in("app-001", 1.0)).await;
    let sid = h.login_both().await;
    let ours = h.configured(&sid, "app-005").await;
    let theirs = h.configured(&sid, "app-006").await;
    let inv = h.inv();
    let pairing = h.pairing();
    let down = h
        .http
        .post(format!("{}/__sim/target-site/down", h.sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), StatusCode::NO_CONTENT);

    // The remote login, and every call the target site serves, even for a session that had
    // logged in to it before it went down: 500, naming the site.
    let fresh = h.login().await;
    let resp = h
        .http
        .post(h.api(&format!("/pairings/{pairing}/remote-session")))
        .header("x-dr-session", &fresh)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let b: Value = resp.json().await.unwrap();
    assert_eq!(code(&b), "REMOTE_SITE_UNREACHABLE");
    assert!(message(&b).contains(&inv.remote_vc.name), "{b}");
    assert!(message(&b).contains(&inv.remote_vrms.name), "{b}");
    let reads = [
        format!("/pairings/{pairing}/replications"),
        format!("/pairings/{pairing}/replications/{ours}"),
        format!("/pairings/{pairing}/replications/{ours}/disks"),
        format!("/pairings/{pairing}/remote-session"),
        format!(
            "/pairings/{pairing}/vcenters/{}/datastores",
            inv.remote_vc.id
        ),
    ];
    for path in &reads {
        let (s, b) = h.get(&sid, path).await;
        assert_eq!(
            (s, code(&b)),
            (StatusCode::INTERNAL_SERVER_ERROR, "REMOTE_SITE_UNREACHABLE"),
            "{path}: {b}"
        );
    }
    for action in ["pause", "sync", "unconfigure"] {
        let (s, b) = h.act(&sid, &theirs, action).await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{action}: {b}");
    }
    // The local site answers, and the pairing says its far end is in error.
    let (s, _) = h.get(&fresh, &local_vms(&inv)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, p) = h.get(&fresh, &format!("/pairings/{pairing}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["remote_vc_server"]["server_status"], "ERROR");
    assert_eq!(p["local_vc_server"]["server_status"], "OK");

    // The local-only DELETE works without the target site, and its task can be followed.
    let resp = h
        .http
        .delete(h.api(&format!("/pairings/{pairing}/replications/{ours}")))
        .header("x-dr-session", &fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let task: Value = resp.json().await.unwrap();
    let done = h.wait_task(&fresh, task["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "SUCCESS");
    let (s, tasks) = h.get(&fresh, "/tasks").await;
    assert_eq!(s, StatusCode::OK, "{tasks}");

    // Back up: the remote login works again; the replication removed is gone, the other not.
    h.sim.set_target_down(false);
    assert_eq!(h.remote_login(&fresh).await, StatusCode::NO_CONTENT);
    assert_eq!(h.replication(&fresh, &ours).await.0, StatusCode::NOT_FOUND);
    assert_eq!(h.replication(&fresh, &theirs).await.0, StatusCode::OK);
    let stats = h.sim.stats();
    assert_eq!(stats.operations[&ours]["destroy"], 1);
    assert!(
        !stats.operations.contains_key(&theirs),
        "{:?}",
        stats.operations
    );
}

#[tokio::test]
async fn a_simulator_started_with_the_target_down_refuses_the_remote_login_until_it_is_up() {
    let h = Harness::plain(SimConfig {
        target_down: true,
        ..fast()
    })
    .await;
    let sid = h.login().await;
    assert_eq!(
        h.remote_login(&sid).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let up = h
        .http
        .post(format!("{}/__sim/target-site/up", h.sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), StatusCode::NO_CONTENT);
    assert_eq!(h.remote_login(&sid).await, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_reconfigure_body_is_checked_like_a_configure_and_must_list_every_disk() {
    let h = Harness::plain(syncing_in("app-001", 1.0)).await;
    let sid = h.login_both().await;
    let id = h.configured(&sid, "app-008").await;
    let good = h.reconfigure_body(&sid, &id, 30).await;

    let mut bad = good.clone();
    bad["rpo"] = json!(2);
    bad["vm_id"] = json!("x");
    bad["disks"].as_array_mut().unwrap().pop();
    let (s, b) = h.reconfigure(&sid, &id, &bad).await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::BAD_REQUEST, "INVALID_REQUEST_BODY")
    );
    let m = message(&b);
    for expected in [
        "body.vm_id: unknown field",
        "body.rpo: must be between 5 and 1440, got 2",
        "body.disks: disk 'Hard disk",
    ] {
        assert!(m.contains(expected), "{expected}: {m}");
    }

    let mut bad = good.clone();
    bad.as_object_mut()
        .unwrap()
        .remove("lwd_encryption_enabled");
    bad["target_replication_server_id"] = json!("HmsRemoteHbrServer:nope");
    let (_, b) = h.reconfigure(&sid, &id, &bad).await;
    let m = message(&b);
    assert!(
        m.contains("body.lwd_encryption_enabled: required field is missing"),
        "{m}"
    );
    assert!(
        m.contains("body.target_replication_server_id: unknown VR server"),
        "{m}"
    );

    let url = h.api(&format!(
        "/pairings/{}/replications/{id}/actions/reconfigure",
        h.pairing()
    ));
    let resp = h
        .http
        .post(url)
        .header("x-dr-session", &sid)
        .header("content-type", "text/plain")
        .body(good.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        !h.sim.stats().operations.contains_key(&id),
        "nothing accepted"
    );

    let (s, _) = h.reconfigure(&sid, &id, &good).await;
    assert_eq!(s, StatusCode::ACCEPTED);
}
