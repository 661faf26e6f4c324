//! End-to-end tests of the simulator over real sockets on 127.0.0.1 port 0, driven with raw reqwest
//! and hand-written JSON (no vrbulk client code), so they pin the wire contract itself.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::*;

mod lifecycle;
mod operations;
mod pairings;
// The integration tests' wait-for-a-condition helper, the same file: this binary uses part of it.
#[allow(dead_code)]
#[path = "../../tests/support/wait.rs"]
mod wait;

use wait::eventually;

const USER: &str = "administrator@vsphere.local";
const PASSWORD: &str = "VMware1!";

struct Harness {
    sim: Simulator,
    http: reqwest::Client,
}

impl Harness {
    /// Without the rate limiter: these tests speak to the API itself, as fast as they like; the
    /// limiter's tests use [`Harness::limited`].
    async fn start(cfg: SimConfig) -> Harness {
        Harness::limited(SimConfig {
            limits: None,
            ..cfg
        })
        .await
    }

    async fn limited(cfg: SimConfig) -> Harness {
        let sim = Simulator::start(cfg).await.unwrap();
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        Harness { sim, http }
    }

    async fn plain(cfg: SimConfig) -> Harness {
        Harness::start(SimConfig { tls: false, ..cfg }).await
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/rest/vr/v2{path}", self.sim.url())
    }

    fn inv(&self) -> Inventory {
        self.sim.inventory()
    }

    fn pairing(&self) -> String {
        self.inv().pairing_id
    }

    /// `POST /session` as `USER` with `password`.
    async fn post_session(&self, password: &str) -> reqwest::Response {
        self.http
            .post(self.api("/session"))
            .basic_auth(USER, Some(password))
            .send()
            .await
            .unwrap()
    }

    async fn login(&self) -> String {
        let r = self.post_session(PASSWORD).await;
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        v["session_id"].as_str().unwrap().to_string()
    }

    /// The remote-site login for this session, as `USER` with `password`.
    async fn remote_login_with(&self, sid: &str, password: &str) -> StatusCode {
        self.http
            .post(self.api(&format!("/pairings/{}/remote-session", self.pairing())))
            .header("x-dr-session", sid)
            .basic_auth(USER, Some(password))
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn remote_login(&self, sid: &str) -> StatusCode {
        self.remote_login_with(sid, PASSWORD).await
    }

    /// A local session with the remote-site login done.
    async fn login_both(&self) -> String {
        let sid = self.login().await;
        assert_eq!(self.remote_login(&sid).await, StatusCode::NO_CONTENT);
        sid
    }

    /// `GET url` (a full URL) with the session header.
    async fn get_url(&self, sid: &str, url: &str) -> reqwest::Response {
        self.http
            .get(url)
            .header("x-dr-session", sid)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, sid: &str, path: &str) -> (StatusCode, Value) {
        let r = self.get_url(sid, &self.api(path)).await;
        let status = r.status();
        let body = r.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// `POST /pairings/{p}/replications` with a raw body of `content_type`.
    async fn post_replications(
        &self,
        sid: &str,
        content_type: &str,
        body: String,
    ) -> reqwest::Response {
        self.http
            .post(self.api(&format!("/pairings/{}/replications", self.pairing())))
            .header("x-dr-session", sid)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn configure(&self, sid: &str, body: &Value) -> (StatusCode, Value) {
        let r = self
            .post_replications(sid, "application/json", body.to_string())
            .await;
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Configures `body`, which must be refused with 400; the error body.
    async fn rejected(&self, sid: &str, body: &Value) -> Value {
        let (s, b) = self.configure(sid, body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        b
    }

    /// Polls `GET /tasks/{id}` until the task has ended; its last answer.
    async fn wait_task(&self, sid: &str, id: &str) -> Value {
        eventually(
            Duration::from_secs(10),
            format!("task {id} to end"),
            async || {
                let (s, t) = self.get(sid, &format!("/tasks/{id}")).await;
                assert_eq!(s, StatusCode::OK, "{t}");
                match t["status"].as_str() {
                    Some("SUCCESS" | "ERROR" | "CANCELLED") => Ok(t),
                    _ => Err(t),
                }
            },
        )
        .await
    }
}

/// A correct spec for `vm_name`, every disk onto `datastore`, built as a client would from the
/// listing (the disks sent back verbatim).
fn spec_for(inv: &Inventory, vm_name: &str, datastore: &str) -> Value {
    let vm = inv.vm_by_name(vm_name).unwrap();
    let ds = inv.datastore_by_name(datastore).unwrap();
    let disks: Vec<Value> = vm
        .disks()
        .iter()
        .map(|d| {
            json!({
                "vm_disk": serde_json::to_value(d).unwrap(),
                "enabled_for_replication": d.is_supported(),
                "destination_datastore_id": ds.id,
                "destination_disk_format": "SAME_AS_SOURCE",
                "destination_storage_policy_id": null,
                "destination_path": null,
            })
        })
        .collect();
    json!({
        "vm_id": vm.vm.id,
        "target_vc_id": inv.remote_vc.id,
        "rpo": 60,
        "network_compression_enabled": true,
        "mpit_enabled": false,
        "auto_replicate_new_disks": false,
        "lwd_encryption_enabled": false,
        "quiesce_enabled": false,
        "target_replication_server_id": null,
        "disks": disks,
    })
}

/// Bytes the initial sync of `vm_name` copies in the seed-1 inventory of `vms` VMs: its
/// supported disks.
pub(super) fn sync_bytes(vms: usize, vm_name: &str) -> f64 {
    let inv = Inventory::generate(vms, 1);
    inv.vm_by_name(vm_name)
        .unwrap()
        .disks()
        .iter()
        .filter(|d| d.is_supported())
        .map(|d| d.capacity.unwrap() as f64 * 1024.0)
        .sum()
}

/// Tasks of 0.2 s, and a time scale at which `vm_name` alone syncs in `seconds` at the default
/// ceiling of 200 Mbit/s (25 MB/s).
pub(super) fn syncing_in(vm_name: &str, seconds: f64) -> SimConfig {
    SimConfig {
        task_seconds: 0.2,
        sync_time_scale: sync_bytes(40, vm_name) / (25e6 * seconds),
        ..SimConfig::default()
    }
}

fn message(body: &Value) -> String {
    body["message"].as_str().unwrap_or_default().to_string()
}

/// The `name` of every item of a list answer, in order.
fn names(body: &Value) -> Vec<String> {
    body["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect()
}

/// The item of a list answer called `name`.
fn named<'b>(body: &'b Value, name: &str) -> &'b Value {
    body["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap()
}

/// The VM listing of the source vCenter.
fn local_vms(inv: &Inventory) -> String {
    format!(
        "/pairings/{}/vcenters/{}/vms",
        inv.pairing_id, inv.local_vc.id
    )
}

/// A simulator on plain HTTP.
async fn plain_sim(cfg: SimConfig) -> Simulator {
    Simulator::start(SimConfig { tls: false, ..cfg })
        .await
        .unwrap()
}

fn fast() -> SimConfig {
    SimConfig {
        task_seconds: 0.2,
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn login_succeeds_and_bad_or_missing_credentials_get_401() {
    let h = Harness::start(SimConfig::default()).await;
    let sid = h.login().await;
    assert!(!sid.is_empty());
    let (s, who) = h.get(&sid, "/session").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(who["username"], USER);

    let bad = h.post_session("wrong").await;
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let body: Value = bad.json().await.unwrap();
    assert!(message(&body).contains("wrong user name or password"));
    assert!(body["op_id"].is_string());

    let none = h.http.post(h.api("/session")).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.sim.stats().logins, 1);
}

#[tokio::test]
async fn calls_without_a_live_session_get_401_and_logout_ends_it() {
    let h = Harness::plain(SimConfig::default()).await;
    let r = h.http.get(h.api("/pairings")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (s, _) = h.get("bm90LWEtc2Vzc2lvbg==", "/pairings").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let sid = h.login().await;
    let (s, pairings) = h.get(&sid, "/pairings").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(pairings["list"][0]["pairing_id"], h.pairing().as_str());
    assert_eq!(
        pairings["list"][0]["remote_vc_server"]["name"],
        "vc-site-b.corp.local"
    );
    let r = h
        .http
        .delete(h.api("/session"))
        .header("x-dr-session", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (s, _) = h.get(&sid, "/pairings").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn target_site_calls_need_the_remote_login_of_this_session() {
    let h = Harness::plain(SimConfig::default()).await;
    let inv = h.inv();
    let p = &inv.pairing_id;
    let sid = h.login().await;

    let remote_ds = format!("/pairings/{p}/vcenters/{}/datastores", inv.remote_vc.id);
    let (s, body) = h.get(&sid, &remote_ds).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(message(&body).contains("remote site login is missing"));
    for path in [
        format!(
            "/pairings/{p}/vcenters/{}/storage-policies",
            inv.remote_vc.id
        ),
        format!(
            "/pairings/{p}/vrs/{}/replication-servers",
            inv.remote_vrms.id
        ),
        format!("/pairings/{p}/replications"),
        format!("/pairings/{p}/remote-session"),
    ] {
        assert_eq!(
            h.get(&sid, &path).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    let (s, _) = h.configure(&sid, &json!([])).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // The source site needs no remote login.
    let local_ds = format!("/pairings/{p}/vcenters/{}/datastores", inv.local_vc.id);
    let (s, body) = h.get(&sid, &local_ds).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["list"][0]["name"], "src-ds-01");

    assert_eq!(
        h.remote_login_with(&sid, "nope").await,
        StatusCode::UNAUTHORIZED
    );

    assert_eq!(h.remote_login(&sid).await, StatusCode::NO_CONTENT);
    let (s, body) = h.get(&sid, &remote_ds).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        names(&body),
        ["ds-gold-01", "ds-silver-01", "ds-bronze-01", "ds-full-01"]
    );
    let (s, who) = h.get(&sid, &format!("/pairings/{p}/remote-session")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(who["username"], USER);
    let (s, servers) = h
        .get(
            &sid,
            &format!(
                "/pairings/{p}/vrs/{}/replication-servers",
                inv.remote_vrms.id
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(servers["list"][1]["name"], "vrs-target-02");

    // A new local session starts without a remote login.
    let other = h.login().await;
    assert_eq!(h.get(&other, &remote_ds).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn vrs_lists_both_vrms_with_their_vcenter() {
    let h = Harness::plain(SimConfig::default()).await;
    let inv = h.inv();
    let sid = h.login().await;
    let (s, body) = h
        .get(&sid, &format!("/pairings/{}/vrs", inv.pairing_id))
        .await;
    assert_eq!(s, StatusCode::OK);
    let list = body["list"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let remote = list
        .iter()
        .find(|v| v["vc_guid"] == inv.remote_vc.id.as_str())
        .unwrap();
    assert_eq!(remote["id"], inv.remote_vrms.id.as_str());
    assert_eq!(remote["name"], "vrms-site-b.corp.local");
}

#[tokio::test]
async fn vm_listing_pages_past_100_with_meta_and_links() {
    let h = Harness::plain(SimConfig {
        vms: 250,
        ..SimConfig::default()
    })
    .await;
    let inv = h.inv();
    let sid = h.login().await;
    let base = local_vms(&inv);

    let (s, first) = h.get(&sid, &base).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(first["list"].as_array().unwrap().len(), 100);
    assert_eq!(first["_meta"]["total"], 250);
    assert_eq!(first["_meta"]["offset"], 0);
    assert_eq!(first["_meta"]["limit"], 100);
    assert!(first["_meta"]["links"].get("previous").is_none());
    let next = first["_meta"]["links"]["next"]["href"].as_str().unwrap();
    assert!(next.starts_with(h.sim.url()), "{next}");
    assert!(next.contains("offset=100"), "{next}");
    // Disks come embedded, VM home first.
    assert_eq!(first["list"][0]["disks"][0]["is_vm_home"], true);

    // Following the link gives the next page.
    let second: Value = h.get_url(&sid, next).await.json().await.unwrap();
    assert_eq!(second["_meta"]["offset"], 100);
    assert_ne!(second["list"][0]["id"], first["list"][0]["id"]);

    let (_, last) = h.get(&sid, &format!("{base}?limit=100&offset=200")).await;
    assert_eq!(last["list"].as_array().unwrap().len(), 50);
    assert!(last["_meta"]["links"].get("next").is_none());
    assert!(last["_meta"]["links"]["previous"]["href"]
        .as_str()
        .unwrap()
        .contains("offset=100"));

    let (_, all) = h.get(&sid, &format!("{base}?limit=5000")).await;
    assert_eq!(all["list"].as_array().unwrap().len(), 250);
    assert_eq!(all["_meta"]["limit"], MAX_PAGE_SIZE);

    let (s, _) = h.get(&sid, &format!("{base}?limit=ten")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // An offset past everything is an empty page, however large (it once overflowed).
    let (s, past) = h.get(&sid, &format!("{base}?offset={}", usize::MAX)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(past["list"].as_array().unwrap().len(), 0);
    assert!(past["_meta"]["links"].get("next").is_none());
}

#[tokio::test]
async fn repeated_filter_values_select_several_vms_by_name() {
    let h = Harness::plain(SimConfig::default()).await;
    let inv = h.inv();
    let sid = h.login().await;
    let base = local_vms(&inv);
    let unusual = listing::encode(UNUSUAL_NAME_VM);
    let (s, body) = h
        .get(
            &sid,
            &format!(
                "{base}?filter_property=name&filter=app-001&filter={unusual}&filter=no-such-vm"
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut found = names(&body);
    found.sort();
    assert_eq!(found, ["Finance Server Ünïcødé 01", "app-001"]);
    assert_eq!(body["_meta"]["total"], 2);

    let (s, body) = h.get(&sid, &format!("{base}?filter=app-001")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(message(&body).contains("filter_property"));
    let (s, _) = h.get(&sid, &format!("{base}?filter_property=name")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let (_, tasks) = h.get(&sid, "/tasks?filter_property=entity&filter=x").await;
    assert_eq!(tasks["_meta"]["total"], 0);
}

#[tokio::test]
async fn suitable_for_replication_leaves_out_templates_and_replicated_vms() {
    let h = Harness::plain(SimConfig::default()).await;
    let inv = h.inv();
    let sid = h.login().await;
    let base = local_vms(&inv);
    let (_, all) = h.get(&sid, &base).await;
    let (_, suitable) = h
        .get(&sid, &format!("{base}?suitable_for_replication=true"))
        .await;
    assert_eq!(all["_meta"]["total"], 40);
    assert_eq!(suitable["_meta"]["total"], 38);
    let names = names(&suitable);
    let listed = |vm: &str| names.iter().any(|n| n == vm);
    assert!(!listed(TEMPLATE_VM));
    assert!(!listed(REPLICATED_VM));
    assert!(listed(NVME_VM) && listed(POWERED_OFF_VM));
}

#[tokio::test]
async fn capability_and_disks_explain_each_special_vm() {
    let h = Harness::plain(SimConfig::default()).await;
    let inv = h.inv();
    let sid = h.login().await;
    let vm_path = |name: &str| {
        format!(
            "{}/{}",
            local_vms(&inv),
            inv.vm_by_name(name).unwrap().vm.id
        )
    };
    let status = |v: &Value| v["vm_validation_status"].as_str().unwrap().to_string();
    let (s, c) = h
        .get(&sid, &format!("{}/capability", vm_path(TEMPLATE_VM)))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(status(&c), "IS_VM_TEMPLATE");
    let (_, c) = h
        .get(&sid, &format!("{}/capability", vm_path(REPLICATED_VM)))
        .await;
    assert_eq!(status(&c), "ALREADY_CONFIGURED");
    let (_, c) = h
        .get(&sid, &format!("{}/capability", vm_path(NVME_VM)))
        .await;
    assert_eq!(status(&c), "OK");
    assert!(c["replication_not_supported_reasons"][0]
        .as_str()
        .unwrap()
        .contains("NVME"));

    let (s, disks) = h.get(&sid, &format!("{}/disks", vm_path(NVME_VM))).await;
    assert_eq!(s, StatusCode::OK);
    let list = disks["list"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["label"], "VM home");
    assert_eq!(list[2]["supported_for_replication"], false);
    assert_eq!(list[2]["controller_label"], "NVME controller 0");

    let (_, vm) = h
        .get(
            &sid,
            &format!(
                "{}?filter_property=name&filter={POWERED_OFF_VM}",
                local_vms(&inv)
            ),
        )
        .await;
    assert_eq!(vm["list"][0]["power_state"], "POWERED_OFF");
}

#[tokio::test]
async fn unknown_pairing_vcenter_vm_and_task_get_404() {
    let h = Harness::plain(SimConfig::default()).await;
    let inv = h.inv();
    let sid = h.login_both().await;
    let p = &inv.pairing_id;
    let local = &inv.local_vc.id;
    for path in [
        "/pairings/00000000-0000-4000-8000-000000000000".to_string(),
        format!("/pairings/{p}/vcenters/00000000-0000-4000-8000-000000000000/vms"),
        format!("/pairings/{p}/vcenters/{local}/vms/VirtualMachine:vm-1:{local}/disks"),
        format!("/pairings/{p}/vcenters/{local}/vms/VirtualMachine:vm-1:{local}/capability"),
        "/tasks/HTask:nope".to_string(),
        format!("/pairings/{p}/replications/GID-nope"),
    ] {
        let (s, body) = h.get(&sid, &path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        assert!(body["error_code"].is_string(), "{path}");
    }
}

#[tokio::test]
async fn every_invalid_configure_body_is_rejected_naming_the_field() {
    let h = Harness::plain(fast()).await;
    let inv = h.inv();
    let sid = h.login_both().await;
    let good = || spec_for(&inv, "app-001", "ds-gold-01");
    let app1 = inv.vm_by_name("app-001").unwrap();
    let home_and_first = &app1.disks()[..2];
    let local_ds = inv.source_datastores[0].id.clone();

    type Mutation = Box<dyn Fn(&mut Value)>;
    let remove = |field: &'static str| -> Mutation {
        Box::new(move |v: &mut Value| {
            v.as_object_mut().unwrap().remove(field);
        })
    };
    let remove_disk_field = |field: &'static str| -> Mutation {
        Box::new(move |v: &mut Value| {
            v["disks"][1].as_object_mut().unwrap().remove(field);
        })
    };
    let mut cases: Vec<(Mutation, String)> = Vec::new();
    for f in [
        "auto_replicate_new_disks",
        "disks",
        "lwd_encryption_enabled",
        "mpit_enabled",
        "network_compression_enabled",
        "rpo",
        "target_vc_id",
        "vm_id",
    ] {
        cases.push((remove(f), format!("[0].{f}: required field is missing")));
    }
    for f in [
        "destination_datastore_id",
        "destination_disk_format",
        "enabled_for_replication",
        "vm_disk",
    ] {
        cases.push((
            remove_disk_field(f),
            format!("[0].disks[1].{f}: required field is missing"),
        ));
    }
    let case = |f: fn(&mut Value), msg: &str| -> (Mutation, String) { (Box::new(f), msg.into()) };
    cases.extend([
        case(
            |v| {
                v["disks"][0]["vm_disk"]
                    .as_object_mut()
                    .unwrap()
                    .remove("vm_id");
            },
            "[0].disks[0].vm_disk.vm_id: required field is missing",
        ),
        case(
            |v| v["rpo"] = json!("60"),
            "[0].rpo: must be an integer, got string \"60\"",
        ),
        case(|v| v["rpo"] = json!(60.5), "[0].rpo: must be an integer"),
        case(
            |v| v["rpo"] = json!(4),
            "[0].rpo: must be between 5 and 1440, got 4",
        ),
        case(
            |v| v["rpo"] = json!(1441),
            "[0].rpo: must be between 5 and 1440, got 1441",
        ),
        case(
            |v| v["mpit_enabled"] = json!("yes"),
            "[0].mpit_enabled: must be a boolean",
        ),
        case(
            |v| v["quiesce_enabled"] = Value::Null,
            "[0].quiesce_enabled: must be a boolean, got null",
        ),
        case(|v| v["disks"] = json!({}), "[0].disks: must be an array"),
        case(
            |v| v["disks"][1]["destination_disk_format"] = json!("SPARSE"),
            "[0].disks[1].destination_disk_format: must be one of SAME_AS_SOURCE",
        ),
        case(
            |v| v["disks"][1]["enabled_for_replication"] = json!(1),
            "[0].disks[1].enabled_for_replication: must be a boolean, got integer 1",
        ),
        case(
            |v| v["rpo_minutes"] = json!(60),
            "[0].rpo_minutes: unknown field",
        ),
        case(
            |v| v["mpit_enabled"] = json!(true),
            "[0].mpit_instances: required when mpit_enabled is true",
        ),
        case(
            |v| {
                v["mpit_enabled"] = json!(true);
                v["mpit_instances"] = json!(12);
                v["mpit_days"] = json!(3);
            },
            "[0].mpit_days: mpit_instances x mpit_days must not exceed 24",
        ),
        case(
            |v| v["vm_id"] = json!("VirtualMachine:vm-1:nope"),
            "[0].vm_id: unknown VM 'VirtualMachine:vm-1:nope'",
        ),
        case(
            |v| v["disks"][1]["destination_datastore_id"] = json!("Datastore:datastore-99:x"),
            "[0].disks[1].destination_datastore_id: unknown datastore 'Datastore:datastore-99:x'",
        ),
        case(
            |v| v["disks"][1]["destination_storage_policy_id"] = json!("no-such-policy"),
            "[0].disks[1].destination_storage_policy_id: unknown storage policy 'no-such-policy'",
        ),
        case(
            |v| v["target_replication_server_id"] = json!("HmsRemoteHbrServer:nope"),
            "[0].target_replication_server_id: unknown VR server 'HmsRemoteHbrServer:nope'",
        ),
        case(
            |v| {
                let extra = v["disks"][1].clone();
                v["disks"].as_array_mut().unwrap().push(extra);
            },
            "[0].disks[2].vm_disk.device_key: disk 2000 is listed twice (also at [0].disks[1])",
        ),
        case(
            |v| {
                let mut extra = v["disks"][1].clone();
                extra["vm_disk"]["device_key"] = json!(2999);
                v["disks"].as_array_mut().unwrap().push(extra);
            },
            "[0].disks[2].vm_disk.device_key: VM 'app-001' has no disk with device_key 2999",
        ),
        case(
            |v| v["disks"][1]["vm_disk"]["vm_id"] = json!("VirtualMachine:vm-9:other"),
            "[0].disks[1].vm_disk.vm_id: must equal the spec's vm_id",
        ),
        case(
            |v| v["disks"][0]["destination_path"] = json!("seeds/"),
            "[0].disks[0].destination_path: must be null for the VM home",
        ),
    ]);
    // Missing disks: keep only the VM home and the first data disk.
    let keep = home_and_first.len();
    let missing_label = app1.disks().get(2).and_then(|d| d.label.clone());
    let ld = local_ds.clone();
    cases.push((
        Box::new(move |v: &mut Value| {
            v["disks"][0]["destination_datastore_id"] = json!(ld.clone());
        }),
        "(that is a source-site datastore)".into(),
    ));
    cases.push((
        Box::new(|v: &mut Value| {
            v["disks"].as_array_mut().unwrap().remove(1);
        }),
        "[0].disks: disk 'Hard disk 1' (device_key 2000) of VM 'app-001' is missing".into(),
    ));
    let local_vc = inv.local_vc.id.clone();
    cases.push((
        Box::new(move |v: &mut Value| v["target_vc_id"] = json!(local_vc.clone())),
        "[0].target_vc_id: must be the pairing's remote vCenter".into(),
    ));
    if let Some(label) = missing_label {
        cases.push((
            Box::new(move |v: &mut Value| {
                v["disks"].as_array_mut().unwrap().truncate(keep);
            }),
            format!("[0].disks: disk '{label}' (device_key 2001)"),
        ));
    }

    for (mutate, expected) in &cases {
        let mut spec = good();
        mutate(&mut spec);
        let body = h.rejected(&sid, &json!([spec])).await;
        assert!(
            message(&body).contains(expected.as_str()),
            "expected {expected:?} in {:?}",
            message(&body)
        );
        assert!(body["error_code"].is_string());
    }

    // Whole-body problems.
    for (body, expected) in [
        (json!({"vm_id": "x"}), "body: must be a JSON array"),
        (json!([]), "body: must contain at least one"),
        (
            json!(["x"]),
            "[0]: must be a ConfigureReplicationSpec object",
        ),
    ] {
        let b = h.rejected(&sid, &body).await;
        assert!(message(&b).contains(expected), "{b}");
    }
    let r = h
        .post_replications(&sid, "application/json", "[{".into())
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = h
        .post_replications(&sid, "text/plain", json!([good()]).to_string())
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let b: Value = r.json().await.unwrap();
    assert!(message(&b).contains("Content-Type"));

    // The index path names the bad spec among good ones, and nothing is created.
    let mut third = spec_for(&inv, "app-002", "ds-gold-01");
    third["rpo"] = json!(2);
    let body = json!([good(), spec_for(&inv, "app-004", "ds-silver-01"), third]);
    let b = h.rejected(&sid, &body).await;
    assert_eq!(message(&b), "[2].rpo: must be between 5 and 1440, got 2");

    // VM-level refusals.
    for (vm, expected, code) in [
        (
            TEMPLATE_VM,
            "[0].vm_id: VM 'tmpl-rhel9-golden' is a template",
            "VM_NOT_REPLICABLE",
        ),
        (
            REPLICATED_VM,
            "is already configured for replication (GID-",
            "VM_ALREADY_CONFIGURED",
        ),
    ] {
        let b = h
            .rejected(&sid, &json!([spec_for(&inv, vm, "ds-gold-01")]))
            .await;
        assert!(message(&b).contains(expected), "{b}");
        assert_eq!(b["error_code"], code);
    }

    let mut nvme = spec_for(&inv, NVME_VM, "ds-gold-01");
    nvme["disks"][2]["enabled_for_replication"] = json!(true);
    let b = h.rejected(&sid, &json!([nvme])).await;
    assert!(
        message(&b).contains("[0].disks[2].enabled_for_replication: disk 'Hard disk 2' (device_key 31000) of VM 'db-nvme-01' is not supported"),
        "{b}"
    );

    let b = h.rejected(&sid, &json!([good(), good()])).await;
    assert!(message(&b).contains("[1].vm_id: VM"));
    assert!(message(&b).contains("appears more than once in the request (also at [0])"));

    let stats = h.sim.stats();
    assert!(stats.configure_attempts.is_empty(), "{stats:?}");
    assert_eq!(stats.configure_rejected[&app1.vm.id], 1);
    let legacy = inv.vm_by_name(REPLICATED_VM).unwrap();
    assert_eq!(stats.configure_rejected[&legacy.vm.id], 1);
    assert!(h.sim.inventory().replications.len() == 1);
}

#[tokio::test]
async fn good_configure_creates_one_task_per_spec_that_succeeds_into_a_replication() {
    // Tasks of a minute that only the test's skips move: QUEUED, RUNNING and SUCCESS each
    // last until the test moves on, however slow the machine.
    let task = Duration::from_secs(60);
    let h = Harness::plain(SimConfig {
        task_seconds: task.as_secs_f64(),
        ..SimConfig::default()
    })
    .await;
    let inv = h.inv();
    let sid = h.login_both().await;
    let names = ["app-001", NVME_VM, UNUSUAL_NAME_VM, POWERED_OFF_VM];
    let mut specs: Vec<Value> = names
        .iter()
        .map(|n| spec_for(&inv, n, "ds-silver-01"))
        .collect();
    let gold = inv.storage_policy_by_name("VR Gold").unwrap();
    specs[0]["disks"][1]["destination_storage_policy_id"] = json!(gold.storage_policy_id);
    specs[0]["rpo"] = json!(15);
    specs[0]["mpit_enabled"] = json!(true);
    specs[0]["mpit_instances"] = json!(3);
    specs[0]["mpit_days"] = json!(5);
    specs[1]["target_replication_server_id"] = json!(inv.replication_servers[1].id);

    let (s, body) = h.configure(&sid, &Value::Array(specs)).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let tasks = body["list"].as_array().unwrap();
    assert_eq!(tasks.len(), 4);
    assert_eq!(body["_meta"]["total"], 4);
    for (t, name) in tasks.iter().zip(names) {
        let vm = inv.vm_by_name(name).unwrap();
        assert_eq!(t["entity"], vm.vm.id.as_str());
        assert_eq!(t["entity_name"], name);
        assert_eq!(t["status"], "QUEUED");
        assert!(t["id"].as_str().unwrap().starts_with("HTask:"));
        assert!(t["queued_time"].as_i64().unwrap() > 1_700_000_000_000);
        assert_eq!(
            t["description_id"],
            "com.vmware.vr.ConfigureReplicationTask"
        );
    }

    // Right away the VM counts as being configured.
    let b = h
        .rejected(&sid, &json!([spec_for(&inv, "app-001", "ds-gold-01")]))
        .await;
    assert!(message(&b).contains("has a configure replication task in progress (HTask:"));

    // Past the first quarter, queued no more: running, its replication listed as in progress.
    h.sim.skip(task / 3);
    let id0 = tasks[0]["id"].as_str().unwrap();
    let (_, t) = h.get(&sid, &format!("/tasks/{id0}")).await;
    assert_eq!(t["status"], "RUNNING", "{t}");
    assert!(t["start_time"].is_i64());
    let (_, reps) = h
        .get(
            &sid,
            &format!(
                "/pairings/{}/replications?filter_property=vm_id&filter={}",
                inv.pairing_id,
                listing::encode(&inv.vm_by_name("app-001").unwrap().vm.id)
            ),
        )
        .await;
    assert_eq!(reps["list"][0]["configuration_state"], "IN_PROGRESS");

    h.sim.skip(task);
    for t in tasks {
        let done = h.wait_task(&sid, t["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "SUCCESS", "{done}");
        assert_eq!(done["progress"], 100);
        assert!(done["complete_time"].as_i64() >= done["start_time"].as_i64());
        assert!(done["result"]["replication_id"]
            .as_str()
            .unwrap()
            .starts_with("GID-"));
    }

    let (s, recent) = h.get(&sid, "/tasks").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(recent["_meta"]["total"], 4);
    assert!(recent["list"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["status"] == "SUCCESS"));

    let (s, reps) = h
        .get(&sid, &format!("/pairings/{}/replications", inv.pairing_id))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(reps["_meta"]["total"], 5);
    let app1 = named(&reps, "app-001");
    assert_eq!(app1["configuration_state"], "OK");
    assert_eq!(app1["rpo"], 15);
    assert_eq!(app1["mpit_instances"], 3);
    assert_eq!(app1["mpit_days"], 5);
    assert_eq!(app1["target_vc_id"], inv.remote_vc.id.as_str());
    assert_eq!(
        app1["vm_id"],
        inv.vm_by_name("app-001").unwrap().vm.id.as_str()
    );
    assert_eq!(
        named(&reps, NVME_VM)["replication_server_name"],
        "vrs-target-02"
    );

    let truth = h.sim.inventory();
    assert_eq!(truth.replications.len(), 5);
    let stats = h.sim.stats();
    assert_eq!(stats.configure_attempts.len(), 4);
    assert!(stats.configured_more_than_once.is_empty());
    assert_eq!(stats.calls["configureReplication"], 2);
    assert!(stats.calls["getTaskInfo"] >= 4);
    assert_eq!(stats.calls["getRecentTasksInfo"], 1);
}

#[tokio::test]
async fn full_datastore_task_ends_in_error_and_a_retry_is_a_second_attempt_not_a_second_configuration(
) {
    let h = Harness::plain(fast()).await;
    let inv = h.inv();
    let sid = h.login_both().await;
    let (s, body) = h
        .configure(&sid, &json!([spec_for(&inv, "app-002", FULL_DATASTORE)]))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let done = h
        .wait_task(&sid, body["list"][0]["id"].as_str().unwrap())
        .await;
    assert_eq!(done["status"], "ERROR");
    let msg = done["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Insufficient disk space on datastore 'ds-full-01': 1.2 GiB free,"),
        "{msg}"
    );
    assert!(msg.ends_with("GiB required"), "{msg}");
    assert!(done["result"].is_null());
    let (_, reps) = h
        .get(&sid, &format!("/pairings/{}/replications", inv.pairing_id))
        .await;
    assert_eq!(
        reps["_meta"]["total"], 1,
        "a failed configure leaves no replication"
    );

    // A failed configure frees the VM; configuring it again is accepted (and counted), and is
    // no second configuration: the first created nothing.
    let vm = inv.vm_by_name("app-002").unwrap().vm.id.clone();
    let failures = h.sim.stats().configure_failures;
    assert_eq!(failures.len(), 1);
    assert_eq!(
        (&failures[0].vm_id, &failures[0].message),
        (&vm, &msg.to_string())
    );
    let (s, body) = h
        .configure(&sid, &json!([spec_for(&inv, "app-002", "ds-gold-01")]))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let done = h
        .wait_task(&sid, body["list"][0]["id"].as_str().unwrap())
        .await;
    assert_eq!(done["status"], "SUCCESS");
    let stats = h.sim.stats();
    assert_eq!(stats.configure_attempts[&vm], 2);
    assert!(stats.configured_more_than_once.is_empty());

    // Configured, removed, configured again: that is a VM configured twice.
    let (_, reps) = h
        .get(&sid, &format!("/pairings/{}/replications", inv.pairing_id))
        .await;
    let rep = named(&reps, "app-002")["id"].as_str().unwrap().to_string();
    let resp = h
        .http
        .delete(h.api(&format!("/pairings/{}/replications/{rep}", inv.pairing_id)))
        .header("x-dr-session", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let task: Value = resp.json().await.unwrap();
    h.wait_task(&sid, task["id"].as_str().unwrap()).await;
    let (s, body) = h
        .configure(&sid, &json!([spec_for(&inv, "app-002", "ds-gold-01")]))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    h.wait_task(&sid, body["list"][0]["id"].as_str().unwrap())
        .await;
    assert_eq!(h.sim.stats().configured_more_than_once, vec![vm]);
}

#[tokio::test]
async fn fail_next_answers_the_status_before_any_effect() {
    let h = Harness::plain(fast()).await;
    let inv = h.inv();
    let sid = h.login_both().await;
    h.sim.fail_next(2, 503);
    let body = json!([spec_for(&inv, "app-001", "ds-gold-01")]);
    let (s, b) = h.configure(&sid, &body).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(b["message"].is_string());
    // Login is never failed, and does not use up the injected failures.
    let fresh = h.login().await;
    let (s, _) = h.get(&sid, "/tasks").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(h.sim.stats().configure_attempts.is_empty());
    let (s, who) = h.get(&fresh, "/session").await;
    assert_eq!((s, &who["username"]), (StatusCode::OK, &json!(USER)));
    let (s, _) = h.configure(&sid, &body).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let stats = h.sim.stats();
    assert_eq!(stats.status_5xx, 2);
    assert_eq!(stats.configure_attempts.len(), 1);
}

#[tokio::test]
async fn fail_after_commit_creates_the_task_but_answers_500() {
    let h = Harness::plain(fast()).await;
    let inv = h.inv();
    let sid = h.login_both().await;
    h.sim.fail_next_configure_after_commit(1);
    let body = json!([spec_for(&inv, "app-001", "ds-gold-01")]);
    let (s, _) = h.configure(&sid, &body).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    let vm = inv.vm_by_name("app-001").unwrap().vm.id.clone();
    // The effect happened: the task is visible and a blind retry is refused.
    let (_, tasks) = h
        .get(
            &sid,
            &format!(
                "/tasks?filter_property=entity&filter={}",
                listing::encode(&vm)
            ),
        )
        .await;
    assert_eq!(tasks["_meta"]["total"], 1);
    let (s, _) = h.configure(&sid, &body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let stats = h.sim.stats();
    assert_eq!(stats.configure_attempts[&vm], 1);
    assert_eq!(stats.configure_rejected[&vm], 1);
}

#[tokio::test]
async fn fail_rate_one_fails_everything_but_login() {
    let h = Harness::plain(SimConfig {
        fail_rate: 1.0,
        ..SimConfig::default()
    })
    .await;
    let sid = h.login().await;
    for _ in 0..5 {
        let (s, _) = h.get(&sid, "/pairings").await;
        assert!(s == 500 || s == 503, "{s}");
    }
    assert_eq!(h.sim.stats().status_5xx, 5);
}

#[tokio::test]
async fn the_rate_limiter_answers_429_per_tier_without_retry_after() {
    let h = Harness::limited(SimConfig {
        tls: false,
        limits: Some(RateLimits {
            per_session: 3,
            per_ip: 6,
            ..RateLimits::APPLIANCE
        }),
        ..SimConfig::default()
    })
    .await;
    // Login counts against the client IP only: 1 of 6.
    let sid = h.login().await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = h.get_url(&sid, &h.api("/pairings")).await;
        statuses.push(r.status().as_u16());
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers().get("retry-after").is_none());
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error_code"], "TOO_MANY_REQUESTS");
            assert!(
                body["message"].as_str().unwrap().contains("session"),
                "{body}"
            );
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    // A second session from the same address: the IP tier has one place left (the refused
    // request used its place there), which the login takes.
    let other = h.login().await;
    let r = h.get_url(&other, &h.api("/pairings")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("client IP"),
        "{body}"
    );
    let stats = h.sim.stats();
    assert_eq!(stats.status_429, 2);
    assert_eq!(stats.limiter.refused["session"], 1);
    assert_eq!(stats.limiter.refused["ip"], 1);
    assert_eq!(stats.limiter.peak_in_window["session"], 3);
    assert_eq!(stats.limiter.peak_in_window["ip"], 6);
}

#[tokio::test]
async fn retry_after_is_sent_when_asked_for() {
    let h = Harness::limited(SimConfig {
        tls: false,
        limits: Some(RateLimits {
            per_session: 1,
            retry_after: true,
            ..RateLimits::APPLIANCE
        }),
        ..SimConfig::default()
    })
    .await;
    let sid = h.login().await;
    assert_eq!(
        h.get_url(&sid, &h.api("/pairings")).await.status(),
        StatusCode::OK
    );
    let r = h.get_url(&sid, &h.api("/pairings")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let secs: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&secs), "{secs}");
}

#[tokio::test]
async fn a_configure_call_of_more_than_twenty_vms_is_refused_whole() {
    let h = Harness::plain(SimConfig {
        vms: 40,
        ..SimConfig::default()
    })
    .await;
    let sid = h.login().await;
    h.remote_login(&sid).await;
    let inv = h.inv();
    let specs: Vec<Value> = inv
        .vms
        .iter()
        .filter(|v| v.kind == VmKind::Normal)
        .take(21)
        .map(|v| spec_for(&inv, &v.vm.name, "ds-gold-01"))
        .collect();
    assert_eq!(specs.len(), 21);
    let body = h.rejected(&sid, &Value::Array(specs)).await;
    assert_eq!(body["error_code"], "VR_OPERATION_LIMIT_EXCEEDED");
    assert!(body["message"].as_str().unwrap().contains("20"), "{body}");
    assert!(h.sim.stats().configure_attempts.is_empty());
}

#[tokio::test]
async fn expired_sessions_get_401() {
    let h = Harness::plain(SimConfig {
        session_ttl: Some(Duration::from_millis(200)),
        ..SimConfig::default()
    })
    .await;
    let sid = h.login().await;
    assert_eq!(h.get(&sid, "/pairings").await.0, StatusCode::OK);
    h.sim.skip(Duration::from_millis(300));
    let (s, body) = h.get(&sid, "/pairings").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(message(&body).contains("expired"));

    let fresh = h.login().await;
    assert_eq!(h.get(&fresh, "/pairings").await.0, StatusCode::OK);
    h.sim.expire_sessions();
    assert_eq!(h.get(&fresh, "/pairings").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn latency_is_added_to_every_call() {
    let h = Harness::plain(SimConfig {
        latency_ms: 150,
        ..SimConfig::default()
    })
    .await;
    let started = Instant::now();
    let sid = h.login().await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    let started = Instant::now();
    let (s, _) = h.get(&sid, "/pairings").await;
    assert_eq!(s, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn recent_tasks_window_hides_old_tasks_but_get_by_id_still_works() {
    let h = Harness::plain(fast()).await;
    let inv = h.inv();
    let sid = h.login_both().await;
    let (_, body) = h
        .configure(&sid, &json!([spec_for(&inv, "app-001", "ds-gold-01")]))
        .await;
    let id = body["list"][0]["id"].as_str().unwrap().to_string();
    h.sim.state().set_recent_task_window(Duration::ZERO);
    h.sim.skip(Duration::from_millis(5));
    let (_, recent) = h.get(&sid, "/tasks").await;
    assert_eq!(recent["_meta"]["total"], 0);
    let (s, _) = h.get(&sid, &format!("/tasks/{id}")).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn v1_prefix_serves_the_same_api_and_stats_are_served_without_auth() {
    let h = Harness::plain(SimConfig::default()).await;
    let sid = h.login().await;
    let r = h
        .get_url(&sid, &format!("{}/api/rest/vr/v1/pairings", h.sim.url()))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = h
        .http
        .get(format!("{}/__sim/stats", h.sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let stats: SimStats = r.json().await.unwrap();
    assert_eq!(stats.calls["login"], 1);
    assert_eq!(stats.calls["getVrPairings"], 1);
    assert_eq!(stats.logins, 1);
}

#[tokio::test]
async fn same_seed_gives_the_same_inventory() {
    let seeded = |seed| {
        plain_sim(SimConfig {
            seed,
            ..SimConfig::default()
        })
    };
    let a = seeded(42).await;
    let b = seeded(42).await;
    let c = seeded(43).await;
    let json = |s: &Simulator| serde_json::to_string(&s.inventory()).unwrap();
    assert_eq!(json(&a), json(&b));
    assert_ne!(json(&a), json(&c));
    assert_eq!(a.inventory().vms.len(), 40);
    a.shutdown().await;
}

#[tokio::test]
async fn https_uses_a_self_signed_localhost_certificate_with_a_vsphere_style_thumbprint() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    assert!(sim.url().starts_with("https://127.0.0.1:"));
    let tp = sim.thumbprint().unwrap();
    let pairs: Vec<_> = tp.split(':').collect();
    assert_eq!(pairs.len(), 32);
    assert!(pairs.iter().all(|p| p.len() == 2
        && p.chars()
            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))));

    // Trusting exactly this certificate works, for the IP and for localhost.
    let pem = sim.certificate_pem().unwrap();
    let cert = reqwest::Certificate::from_pem(pem.as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(cert)
        .build()
        .unwrap();
    for url in [
        format!("{}/__sim/stats", sim.url()),
        format!("https://localhost:{}/__sim/stats", sim.addr().port()),
    ] {
        let r = http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{url}");
    }
    // The thumbprint is the certificate's.
    let der = pem_to_der(pem);
    assert_eq!(thumbprint(&der), tp);

    let plain = plain_sim(SimConfig::default()).await;
    assert!(plain.thumbprint().is_none());
    assert!(plain.url().starts_with("http://127.0.0.1:"));
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

#[tokio::test]
async fn dropping_the_simulator_stops_the_server() {
    let sim = plain_sim(SimConfig::default()).await;
    let url = format!("{}/__sim/stats", sim.url());
    let http = reqwest::Client::new();
    assert!(http.get(&url).send().await.is_ok());
    drop(sim);
    // The server stops on its own task: a new connection is refused once it has.
    eventually(
        Duration::from_secs(10),
        "the dropped simulator to refuse connections",
        async || reqwest::Client::new().get(&url).send().await.is_err(),
    )
    .await;
}

#[tokio::test]
async fn lists_sort_by_a_field_in_either_order() {
    let h = Harness::plain(SimConfig::default()).await;
    let inv = h.inv();
    let sid = h.login_both().await;
    let base = format!(
        "/pairings/{}/vcenters/{}/datastores",
        inv.pairing_id, inv.remote_vc.id
    );
    let (_, asc) = h.get(&sid, &format!("{base}?sort_by=name")).await;
    assert_eq!(
        names(&asc),
        ["ds-bronze-01", "ds-full-01", "ds-gold-01", "ds-silver-01"]
    );
    let (_, desc) = h
        .get(&sid, &format!("{base}?sort_by=free_space&order_by=desc"))
        .await;
    assert_eq!(names(&desc)[0], "ds-bronze-01");
    assert_eq!(names(&desc)[3], FULL_DATASTORE);
    let (s, _) = h.get(&sid, &format!("{base}?order_by=desc")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

/// The route table is the one source of the router and of the operation names in the stats:
/// each entry must be the spec's operation at that method and path, and be served.
#[tokio::test]
async fn every_route_is_the_specs_operation_and_is_served() {
    use axum::routing::MethodFilter;

    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/vr-api/vsphere-replication-api-v2.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let h = Harness::plain(SimConfig::default()).await;
    let mut seen = std::collections::HashSet::new();
    for (filter, path, id, _) in handlers::OPERATIONS {
        let method = [
            (MethodFilter::GET, reqwest::Method::GET),
            (MethodFilter::POST, reqwest::Method::POST),
            (MethodFilter::DELETE, reqwest::Method::DELETE),
        ]
        .into_iter()
        .find_map(|(f, m)| (f == *filter).then_some(m))
        .unwrap_or_else(|| panic!("{path}: a method the test does not know"));
        assert!(
            seen.insert((method.clone(), *path)),
            "{method} {path} twice"
        );
        let documented = &spec["paths"][*path][method.as_str().to_lowercase()]["operationId"];
        assert_eq!(documented, &json!(id), "{method} {path}");

        // Served: without credentials or a session every operation answers 401, never the
        // router's 404 or 405.
        let r = h
            .http
            .request(method.clone(), h.api(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(
            h.sim.stats().calls[*id],
            1,
            "{method} {path} counted as {id}"
        );
    }
}

#[tokio::test]
async fn a_full_vr_server_or_appliance_fails_the_configure_task_in_the_appliances_words() {
    let h = Harness::plain(SimConfig {
        max_replications_per_server: 3,
        max_replications_per_appliance: 6,
        replications_elsewhere: vec![2, 0],
        ..fast()
    })
    .await;
    let inv = h.inv();
    let sid = h.login_both().await;
    let (_, servers) = h
        .get(
            &sid,
            &format!(
                "/pairings/{}/vrs/{}/replication-servers",
                inv.pairing_id, inv.remote_vrms.id
            ),
        )
        .await;
    // The legacy VM's replication and two of other VMs' are on the first server.
    assert_eq!(servers["list"][0]["replication_count"], 3);
    let first = inv.replication_servers[0].id.clone();
    let onto_first = |vm: &str| {
        let mut spec = spec_for(&inv, vm, "ds-gold-01");
        spec["target_replication_server_id"] = json!(first);
        spec
    };
    let (s, body) = h.configure(&sid, &json!([onto_first("app-001")])).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let done = h
        .wait_task(&sid, body["list"][0]["id"].as_str().unwrap())
        .await;
    assert_eq!(done["status"], "ERROR");
    assert_eq!(
        done["error"]["message"],
        "The vSphere Replication server 'vrs-target-01' has reached the maximum number of \
         replications (3)"
    );

    // Placed automatically, VMs go to the server with room, until the appliance is full.
    let specs: Vec<Value> = ["app-002", "db-003", "app-004", "app-005"]
        .iter()
        .map(|vm| spec_for(&inv, vm, "ds-gold-01"))
        .collect();
    let (_, body) = h.configure(&sid, &json!(specs)).await;
    let mut ends = Vec::new();
    for t in body["list"].as_array().unwrap() {
        let done = h.wait_task(&sid, t["id"].as_str().unwrap()).await;
        ends.push((done["status"].clone(), done["error"]["message"].clone()));
    }
    assert_eq!(ends[..3].iter().filter(|e| e.0 == "SUCCESS").count(), 3);
    assert_eq!(ends[3].0, "ERROR");
    assert!(
        ends[3]
            .1
            .as_str()
            .unwrap()
            .starts_with("The maximum number of replications (6) supported by"),
        "{ends:?}"
    );
}

#[tokio::test]
async fn the_appliance_says_its_release_everywhere_and_enforces_that_releases_capacity() {
    // VR 8.8 unless told: GET /info, the pairing and its VRMS agree.
    let h = Harness::plain(fast()).await;
    let sid = h.login_both().await;
    let (s, info) = h.get(&sid, "/info").await;
    assert_eq!(s, StatusCode::OK, "{info}");
    assert_eq!(info["version"], DEFAULT_VERSION);
    assert_eq!(info["id"], h.inv().local_vrms.id.as_str());
    let (_, pairings) = h.get(&sid, "/pairings").await;
    assert_eq!(pairings["list"][0]["local_vrms"]["version"], "8.8.0");
    let (_, vrs) = h.get(&sid, &format!("/pairings/{}/vrs", h.pairing())).await;
    assert_eq!(vrs["list"][1]["version"], "8.8.0");
    assert_eq!(h.sim.stats().calls["getVrInfo"], 1);

    // VR 9.0: a new appliance takes 400 replications in all.
    let cfg = fast().with_version("9.0.2");
    assert_eq!(cfg.max_replications_per_appliance, 400);
    assert_eq!(SimConfig::default().max_replications_per_appliance, 2000);
    let h = Harness::plain(SimConfig {
        replications_elsewhere: vec![199, 199],
        ..cfg
    })
    .await;
    let inv = h.inv();
    let sid = h.login_both().await;
    assert_eq!(h.get(&sid, "/info").await.1["version"], "9.0.2");
    // 398 elsewhere and the legacy VM's: one more fits.
    let specs: Vec<Value> = ["app-001", "app-002"]
        .iter()
        .map(|vm| spec_for(&inv, vm, "ds-gold-01"))
        .collect();
    let (_, body) = h.configure(&sid, &json!(specs)).await;
    let mut ends = Vec::new();
    for t in body["list"].as_array().unwrap() {
        let done = h.wait_task(&sid, t["id"].as_str().unwrap()).await;
        ends.push((done["status"].clone(), done["error"]["message"].clone()));
    }
    assert_eq!(ends[0].0, "SUCCESS", "{ends:?}");
    assert_eq!(
        ends[1].1,
        "The maximum number of replications (400) supported by the vSphere Replication \
         Management Server has been reached"
    );
}

#[tokio::test]
async fn a_server_whose_real_limit_is_lower_shows_it_only_by_refusing() {
    let h = Harness::plain(SimConfig {
        max_replications_by_server: vec![2],
        ..fast()
    })
    .await;
    let inv = h.inv();
    let sid = h.login_both().await;
    let onto = |vm: &str, server: usize| {
        let mut spec = spec_for(&inv, vm, "ds-gold-01");
        spec["target_replication_server_id"] = json!(inv.replication_servers[server].id);
        spec
    };
    // The legacy VM's replication is on the first server: one more fits there.
    let specs = json!([onto("app-001", 0), onto("app-002", 0), onto("db-003", 1)]);
    let (_, body) = h.configure(&sid, &specs).await;
    let mut ends = Vec::new();
    for t in body["list"].as_array().unwrap() {
        ends.push(h.wait_task(&sid, t["id"].as_str().unwrap()).await["status"].clone());
    }
    assert_eq!(ends, ["SUCCESS", "ERROR", "SUCCESS"]);
    let (_, servers) = h
        .get(
            &sid,
            &format!(
                "/pairings/{}/vrs/{}/replication-servers",
                inv.pairing_id, inv.remote_vrms.id
            ),
        )
        .await;
    // Its count says nothing of its limit.
    assert_eq!(servers["list"][0]["replication_count"], 2);
    let stats = h.sim.stats();
    assert_eq!(stats.configure_failures.len(), 1);
    let refused = &stats.configure_failures[0];
    assert_eq!(refused.vm_name, "app-002");
    assert_eq!(refused.server.as_deref(), Some("vrs-target-01"));
    assert_eq!(
        refused.message,
        "The vSphere Replication server 'vrs-target-01' has reached the maximum number of \
         replications (2)"
    );
    let on: Vec<_> = stats
        .replications
        .values()
        .map(|r| (r.vm_name.as_str(), r.server.as_deref()))
        .collect();
    assert!(on.contains(&("app-001", Some("vrs-target-01"))), "{on:?}");
    assert!(on.contains(&("db-003", Some("vrs-target-02"))), "{on:?}");
}

#[tokio::test]
async fn replica_disks_take_datastore_space_until_the_replication_is_removed() {
    let h = Harness::plain(fast()).await;
    let inv = h.inv();
    let sid = h.login_both().await;
    let before = free_on(&h, &sid, "ds-silver-01").await;
    let (_, body) = h
        .configure(&sid, &json!([spec_for(&inv, "app-001", "ds-silver-01")]))
        .await;
    let done = h
        .wait_task(&sid, body["list"][0]["id"].as_str().unwrap())
        .await;
    assert_eq!(done["status"], "SUCCESS");
    let vm = inv.vm_by_name("app-001").unwrap();
    let bytes: i64 = vm
        .disks()
        .iter()
        .filter(|d| d.is_supported())
        .filter_map(|d| d.capacity)
        .sum::<i64>()
        * 1024;
    assert_eq!(free_on(&h, &sid, "ds-silver-01").await, before - bytes);
}

/// What the target datastore `name` has free, as the API lists it.
async fn free_on(h: &Harness, sid: &str, name: &str) -> i64 {
    let inv = h.inv();
    let path = format!(
        "/pairings/{}/vcenters/{}/datastores",
        inv.pairing_id, inv.remote_vc.id
    );
    let (_, list) = h.get(sid, &path).await;
    list["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap()["free_space"]
        .as_i64()
        .unwrap()
}
