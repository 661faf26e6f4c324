//! The simulator answers as the spec says (status codes, envelopes, field types, enums), for the
//! configure workflow, the life of a replication and the day-2 operations alike, and the client's
//! configure and reconfigure bodies are what the spec asks for: both checked against the OpenAPI
//! document itself, with raw HTTP so that neither side's models can hide a mistake.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use vrbulk::domain::{Placement, ReplicationSettings};
use vrbulk::sim::{Inventory, LinkModel, SimConfig, Simulator, VmKind};
use vrbulk::vr::model::{
    ConfigureReplicationVmDisk, DiskFormat, ReconfigureReplicationSpec, ReplicatedVmDisk,
};
use vrbulk::workflow::build_spec;

use crate::support::openapi::Spec;
use crate::support::wait::eventually;

struct Raw {
    http: reqwest::Client,
    base: String,
    session: Option<String>,
    spec: Spec,
    checked: usize,
}

impl Raw {
    /// Calls `path` (relative to the API prefix) and validates the answer against the spec.
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Option<Value>) {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(s) = &self.session {
            req = req.header("x-dr-session", s);
        }
        if path == "/session" && method == Method::POST || path.ends_with("/remote-session") {
            req = req.basic_auth("administrator@vsphere.local", Some("VMware1!"));
        }
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value: Option<Value> = (!text.is_empty()).then(|| serde_json::from_str(&text).unwrap());
        let mut verdict =
            self.spec
                .validate_response(method.as_str(), path, status, value.as_ref());
        // The rate limiter's 429 is documented in the administration guide, not in the spec:
        // its body must be a ResponseError like every other error.
        if status == 429 {
            verdict = self
                .spec
                .validate_schema("ResponseError", value.as_ref().unwrap_or(&Value::Null));
        }
        // The spec documents 401 and 404 without a body; appliances still explain themselves
        // with a ResponseError, and so does the simulator. Such a body must then be one.
        if (status == 401 || status == 404) && value.is_some() {
            verdict = self
                .spec
                .validate_response(method.as_str(), path, status, None)
                .and_then(|()| {
                    self.spec
                        .validate_schema("ResponseError", value.as_ref().unwrap_or(&Value::Null))
                });
        }
        if let Err(errors) = verdict {
            panic!(
                "{method} {path} -> {status} does not match the spec:\n{}\n{text}",
                errors.join("\n")
            );
        }
        self.checked += 1;
        (status, value)
    }
}

#[tokio::test]
async fn every_answer_of_the_workflow_matches_the_spec() {
    let sim = Simulator::start(SimConfig {
        tls: false,
        task_seconds: 0.3,
        // The raw calls here do not pace themselves; the limiter's answers are checked below.
        limits: None,
        ..SimConfig::fast()
    })
    .await
    .unwrap();
    let inv = sim.inventory();
    let mut raw = Raw {
        http: reqwest::Client::new(),
        base: format!("{}/api/rest/vr/v2", sim.url()),
        session: None,
        spec: Spec::load(),
        checked: 0,
    };
    let (p, local, remote) = (&inv.pairing_id, &inv.local_vc.id, &inv.remote_vc.id);

    let (status, body) = raw.call(Method::POST, "/session", None).await;
    assert_eq!(status, 200);
    raw.session = Some(body.unwrap()["session_id"].as_str().unwrap().to_string());
    raw.call(Method::GET, "/session", None).await;
    raw.call(Method::GET, "/pairings", None).await;
    raw.call(Method::GET, &format!("/pairings/{p}"), None).await;
    assert_eq!(
        raw.call(Method::POST, &format!("/pairings/{p}/remote-session"), None)
            .await
            .0,
        204
    );
    raw.call(Method::GET, &format!("/pairings/{p}/remote-session"), None)
        .await;
    let (_, vrs) = raw
        .call(Method::GET, &format!("/pairings/{p}/vrs"), None)
        .await;
    for vr in vrs.unwrap()["list"].as_array().unwrap() {
        let id = vr["id"].as_str().unwrap();
        raw.call(
            Method::GET,
            &format!("/pairings/{p}/vrs/{id}/replication-servers"),
            None,
        )
        .await;
    }
    for vc in [local, remote] {
        raw.call(
            Method::GET,
            &format!("/pairings/{p}/vcenters/{vc}/datastores"),
            None,
        )
        .await;
        raw.call(
            Method::GET,
            &format!("/pairings/{p}/vcenters/{vc}/storage-policies"),
            None,
        )
        .await;
    }
    raw.call(
        Method::GET,
        &format!("/pairings/{p}/vcenters/{local}/vms?limit=20&offset=10"),
        None,
    )
    .await;
    raw.call(
        Method::GET,
        &format!("/pairings/{p}/vcenters/{local}/vms?suitable_for_replication=true"),
        None,
    )
    .await;
    for vm in &inv.vms {
        let id = &vm.vm.id;
        raw.call(
            Method::GET,
            &format!("/pairings/{p}/vcenters/{local}/vms/{id}/disks"),
            None,
        )
        .await;
        raw.call(
            Method::GET,
            &format!("/pairings/{p}/vcenters/{local}/vms/{id}/capability"),
            None,
        )
        .await;
    }
    raw.call(Method::GET, &format!("/pairings/{p}/replications"), None)
        .await;

    // One good VM onto a healthy datastore and one onto the full one: tasks end SUCCESS and ERROR.
    let vm = |kind| inv.vms.iter().find(|v| v.kind == kind).unwrap();
    let datastore = |name: &str| {
        inv.datastores
            .iter()
            .find(|d| d.name == name)
            .unwrap()
            .id
            .clone()
    };
    let specs: Vec<Value> = [
        (vm(VmKind::Normal), datastore("ds-gold-01")),
        (vm(VmKind::UnsupportedDisk), datastore("ds-full-01")),
    ]
    .iter()
    .map(|(vm, ds)| {
        let placement = Placement {
            target_vc_id: remote.clone(),
            datastore_id: ds.clone(),
            storage_policy_id: None,
            replication_server_id: None,
        };
        serde_json::to_value(build_spec(&vm.vm, &placement, &ReplicationSettings::default()).0)
            .unwrap()
    })
    .collect();
    let path = format!("/pairings/{p}/replications");
    raw.spec
        .validate_request_body("POST", &path, Some(&Value::Array(specs.clone())))
        .unwrap_or_else(|e| panic!("the client's configure body breaks the spec: {e:?}"));
    let (status, tasks) = raw
        .call(Method::POST, &path, Some(Value::Array(specs)))
        .await;
    assert_eq!(status, 202);
    let ids: Vec<String> = tasks.unwrap()["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        raw.call(Method::GET, &format!("/tasks/{id}"), None).await;
    }
    for id in &ids {
        raw.finished(id).await;
    }
    let (_, finished) = raw.call(Method::GET, "/tasks", None).await;
    let statuses: Vec<&str> = finished.as_ref().unwrap()["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.contains(&"SUCCESS") && statuses.contains(&"ERROR"),
        "{statuses:?}"
    );
    for id in &ids {
        raw.call(Method::GET, &format!("/tasks/{id}"), None).await;
    }
    raw.call(Method::GET, &format!("/pairings/{p}/replications"), None)
        .await;

    // Errors are spec-shaped too.
    let (status, _) = raw
        .call(Method::POST, &path, Some(json!([{"vm_id": "x"}])))
        .await;
    assert_eq!(status, 400);
    let (status, _) = raw
        .call(
            Method::GET,
            &format!("/pairings/{p}/vcenters/{local}/vms/nope/disks"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    raw.call(Method::GET, "/tasks/HTask:unknown", None).await;

    assert_eq!(raw.call(Method::DELETE, "/session", None).await.0, 204);
    assert_eq!(raw.call(Method::GET, "/pairings", None).await.0, 401);
    assert!(raw.checked > 2 * inv.vms.len() + 20);
}

#[tokio::test]
async fn a_refusal_of_the_rate_limiter_is_a_response_error() {
    let sim = Simulator::start(SimConfig {
        tls: false,
        ..SimConfig::fast()
    })
    .await
    .unwrap();
    let mut raw = Raw {
        http: reqwest::Client::new(),
        base: format!("{}/api/rest/vr/v2", sim.url()),
        session: None,
        spec: Spec::load(),
        checked: 0,
    };
    let (_, body) = raw.call(Method::POST, "/session", None).await;
    raw.session = Some(body.unwrap()["session_id"].as_str().unwrap().to_string());
    let quota = sim.limits().per_session as usize;
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..=quota {
            v.push(raw.call(Method::GET, "/pairings", None).await.0);
        }
        v
    };
    assert!(statuses[..quota].iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(statuses[quota], 429);
}

impl Raw {
    /// A simulator on plain HTTP, logged in on both sites, and a raw caller checking its answers.
    async fn logged_in(cfg: SimConfig) -> (Simulator, Raw) {
        let sim = Simulator::start(SimConfig {
            tls: false,
            task_seconds: 0.2,
            limits: None,
            ..cfg
        })
        .await
        .unwrap();
        let mut raw = Raw {
            http: reqwest::Client::new(),
            base: format!("{}/api/rest/vr/v2", sim.url()),
            session: None,
            spec: Spec::load(),
            checked: 0,
        };
        let (_, body) = raw.call(Method::POST, "/session", None).await;
        raw.session = Some(body.unwrap()["session_id"].as_str().unwrap().to_string());
        let p = sim.inventory().pairing_id;
        let (status, _) = raw
            .call(Method::POST, &format!("/pairings/{p}/remote-session"), None)
            .await;
        assert_eq!(status, 204);
        (sim, raw)
    }

    /// Configures the VMs (built by the client's `build_spec`) and waits for their tasks; the
    /// replication ids.
    async fn configured(&mut self, sim: &Simulator, vm_names: &[&str]) -> Vec<String> {
        let inv = sim.inventory();
        let placement = Placement {
            target_vc_id: inv.remote_vc.id.clone(),
            datastore_id: inv.datastore_by_name("ds-gold-01").unwrap().id.clone(),
            storage_policy_id: None,
            replication_server_id: None,
        };
        let specs: Vec<Value> = vm_names
            .iter()
            .map(|n| {
                let vm = &inv.vm_by_name(n).unwrap().vm;
                serde_json::to_value(build_spec(vm, &placement, &ReplicationSettings::default()).0)
                    .unwrap()
            })
            .collect();
        let path = format!("/pairings/{}/replications", inv.pairing_id);
        let (status, tasks) = self
            .call(Method::POST, &path, Some(Value::Array(specs)))
            .await;
        assert_eq!(status, 202);
        let mut ids = Vec::new();
        for t in tasks.unwrap()["list"].as_array().unwrap() {
            let done = self.finished(t["id"].as_str().unwrap()).await;
            assert_eq!(done["status"], "SUCCESS", "{done}");
            ids.push(
                done["result"]["replication_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        ids
    }

    /// Polls `GET /tasks/{id}` (every answer checked) until the task has finished.
    async fn finished(&mut self, task_id: &str) -> Value {
        eventually(
            Duration::from_secs(10),
            format!("task {task_id} to end"),
            async || {
                let (_, t) = self
                    .call(Method::GET, &format!("/tasks/{task_id}"), None)
                    .await;
                let t = t.unwrap();
                match t["status"].as_str() {
                    Some("SUCCESS" | "ERROR" | "CANCELLED") => Ok(t),
                    _ => Err(t),
                }
            },
        )
        .await
    }

    /// Polls `GET …/replications/{id}` (every answer checked) until its status is `status`.
    async fn status_becomes(&mut self, path: &str, status: &str) -> Value {
        eventually(
            Duration::from_secs(20),
            format!("{path} to be {status}"),
            async || {
                let (_, r) = self.call(Method::GET, path, None).await;
                let r = r.unwrap();
                if r["status"]["status"] == status {
                    Ok(r)
                } else {
                    Err(r)
                }
            },
        )
        .await
    }

    /// `POST {path}` that must answer `expected`; the answer.
    async fn post_expecting(&mut self, path: &str, body: Option<Value>, expected: u16) -> Value {
        let (status, answer) = self.call(Method::POST, path, body).await;
        assert_eq!(status, expected, "{path}: {answer:?}");
        answer.unwrap_or(Value::Null)
    }
}

#[tokio::test]
async fn every_answer_of_the_day2_operations_matches_the_spec() {
    // app-001 syncs in two seconds at the ceiling of 200 Mbit/s (25 MB/s).
    let bytes: i64 = Inventory::generate(40, 1)
        .vm_by_name("app-001")
        .unwrap()
        .disks()
        .iter()
        .filter_map(|d| d.capacity)
        .sum::<i64>()
        * 1024;
    let (sim, mut raw) = Raw::logged_in(SimConfig {
        sync_time_scale: bytes as f64 / (25e6 * 2.0),
        ..SimConfig::fast()
    })
    .await;
    let p = sim.inventory().pairing_id;
    let ids = raw.configured(&sim, &["app-001", "app-002"]).await;
    let rep = format!("/pairings/{p}/replications/{}", ids[0]);

    let r = raw.status_becomes(&rep, "INITIAL_FULL_SYNC").await;
    assert_eq!(r["sync_progress"]["transferred_total"], bytes);
    let refused = raw
        .post_expecting(&format!("{rep}/actions/sync"), None, 400)
        .await;
    assert_eq!(refused["error_code"], "INVALID_REPLICATION_STATE");
    let (_, disks) = raw.call(Method::GET, &format!("{rep}/disks"), None).await;
    let disks: Vec<ReplicatedVmDisk> =
        serde_json::from_value(disks.unwrap()["list"].clone()).unwrap();

    let task = raw
        .post_expecting(&format!("{rep}/actions/pause"), None, 202)
        .await;
    raw.post_expecting(&format!("{rep}/actions/resume"), None, 400)
        .await;
    raw.finished(task["id"].as_str().unwrap()).await;
    raw.status_becomes(&rep, "PAUSED").await;
    let task = raw
        .post_expecting(&format!("{rep}/actions/resume"), None, 202)
        .await;
    raw.finished(task["id"].as_str().unwrap()).await;
    raw.status_becomes(&rep, "OK").await;
    let task = raw
        .post_expecting(&format!("{rep}/actions/sync"), None, 202)
        .await;
    raw.finished(task["id"].as_str().unwrap()).await;

    // The client's reconfigure body, from the client's own models, is what the spec asks for.
    let spec = ReconfigureReplicationSpec {
        quiesce_enabled: Some(true),
        rpo: 30,
        network_compression_enabled: true,
        mpit_enabled: true,
        mpit_instances: Some(2),
        mpit_days: Some(3),
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
                destination_datastore_id: d.destination_path.unwrap().datastore_id,
                destination_disk_format: DiskFormat::SameAsSource,
                vm_disk: d.vm_disk,
            })
            .collect(),
    };
    let body = serde_json::to_value(&spec).unwrap();
    let reconfigure = format!("{rep}/actions/reconfigure");
    raw.spec
        .validate_request_body("POST", &reconfigure, Some(&body))
        .unwrap_or_else(|e| panic!("the client's reconfigure body breaks the spec: {e:?}"));
    let mut bad = body.clone();
    bad["rpo"] = json!(2);
    raw.post_expecting(&reconfigure, Some(bad), 400).await;
    let task = raw.post_expecting(&reconfigure, Some(body), 202).await;
    raw.finished(task["id"].as_str().unwrap()).await;
    let (_, r) = raw.call(Method::GET, &rep, None).await;
    assert_eq!(r.unwrap()["rpo"], 30);

    let task = raw
        .post_expecting(
            &format!("{rep}/actions/unconfigure?retain_replica_disks=true"),
            None,
            202,
        )
        .await;
    raw.finished(task["id"].as_str().unwrap()).await;
    assert_eq!(raw.call(Method::GET, &rep, None).await.0, 404);
    raw.post_expecting(&format!("{rep}/actions/pause"), None, 404)
        .await;
    raw.post_expecting(
        &format!(
            "/pairings/{p}/replications/{}/actions/unconfigure?retain_replica_disks=maybe",
            ids[1]
        ),
        None,
        400,
    )
    .await;

    let other = format!("/pairings/{p}/replications/{}", ids[1]);
    let (status, task) = raw.call(Method::DELETE, &other, None).await;
    assert_eq!(status, 202);
    raw.finished(task.unwrap()["id"].as_str().unwrap()).await;
    assert_eq!(raw.call(Method::DELETE, &other, None).await.0, 404);
    assert_eq!(
        raw.call(Method::GET, &format!("{other}/disks"), None)
            .await
            .0,
        404
    );
    assert!(raw.checked > 30, "{}", raw.checked);
}

#[tokio::test]
async fn replications_in_error_or_in_rpo_violation_match_the_spec() {
    let (sim, mut raw) = Raw::logged_in(SimConfig {
        replication_error_rate: 1.0,
        ..SimConfig::fast()
    })
    .await;
    let p = sim.inventory().pairing_id;
    raw.configured(&sim, &["app-001", "app-002", "app-004", "app-005"])
        .await;
    let (_, list) = raw
        .call(Method::GET, &format!("/pairings/{p}/replications"), None)
        .await;
    let list = list.unwrap();
    let faults: Vec<&Value> = list["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"]["status"] == "ERROR")
        .collect();
    assert_eq!(faults.len(), 4, "{list}");
    assert!(faults.iter().any(|r| r["configuration_error"].is_object()));
    assert!(faults.iter().any(|r| r["last_group_error"].is_object()));

    // At 3600x the default RPO of an hour passes in a second; the link copies any VM at once.
    let (sim, mut raw) = Raw::logged_in(SimConfig {
        rpo_violation_rate: 1.0,
        sync_time_scale: 3600.0,
        link: LinkModel {
            bandwidth_mbps: 1e9,
            per_sync_ceiling_mbps: 1e9,
            contention_threshold: 10,
            contention_falloff: 1.0,
        },
        ..SimConfig::fast()
    })
    .await;
    let p = sim.inventory().pairing_id;
    let id = &raw.configured(&sim, &["app-001"]).await[0];
    let rep = format!("/pairings/{p}/replications/{id}");
    let r = raw.status_becomes(&rep, "RPO_VIOLATION").await;
    assert_eq!(r["status"]["rpo_violation"], true);
    assert!(r["current_rpo_violation"].is_i64());
}
