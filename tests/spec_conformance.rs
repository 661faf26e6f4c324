//! The simulator answers as the spec says (status codes, envelopes, field types, enums), and the
//! client's configure body is what the spec asks for: both checked against the OpenAPI document
//! itself, with raw HTTP so that neither side's models can hide a mistake.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use vrbulk::domain::{Placement, ReplicationSettings};
use vrbulk::sim::{SimConfig, Simulator, VmKind};
use vrbulk::workflow::build_spec;

use crate::support::openapi::Spec;

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
    tokio::time::sleep(Duration::from_millis(500)).await;
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
