//! Several pairings over HTTP: each `/pairings/{p}/…` route serves pairing `p`'s own target
//! site (its remote login, VRMS, VR servers, datastores, policies, replications); a configure
//! names that site's entities or is refused naming the field; a VM is replicated through one
//! pairing at a time; the limits hold per target VR server and over every pairing together.

use super::*;

/// Three pairings (to sites B, C and D), tasks of 0.2 s, no rate limiter.
async fn three_sites() -> Harness {
    Harness::plain(SimConfig {
        pairings: 3,
        ..fast()
    })
    .await
}

impl Harness {
    /// `POST /pairings/{pairing}/remote-session` for this session.
    async fn remote_login_to(&self, sid: &str, pairing: &str) -> StatusCode {
        self.http
            .post(self.api(&format!("/pairings/{pairing}/remote-session")))
            .header("x-dr-session", sid)
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .status()
    }

    /// A session logged in to every pairing's target site.
    async fn login_everywhere(&self) -> String {
        let sid = self.login().await;
        for site in self.inv().sites() {
            let status = self.remote_login_to(&sid, site.pairing_id).await;
            assert_eq!(status, StatusCode::NO_CONTENT);
        }
        sid
    }

    /// `POST /pairings/{pairing}/replications` with `body`.
    async fn configure_through(
        &self,
        sid: &str,
        pairing: &str,
        body: &Value,
    ) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.api(&format!("/pairings/{pairing}/replications")))
            .header("x-dr-session", sid)
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    /// Configures `body` (one spec) through `pairing` and waits for its task; the task.
    async fn configured_through(&self, sid: &str, pairing: &str, body: &Value) -> Value {
        let (s, tasks) = self.configure_through(sid, pairing, body).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{tasks}");
        let id = tasks["list"][0]["id"].as_str().unwrap().to_string();
        self.wait_task(sid, &id).await
    }

    /// `POST /pairings/{pairing}/replications/{id}/actions/{action}`.
    async fn act_through(
        &self,
        sid: &str,
        pairing: &str,
        id: &str,
        action: &str,
    ) -> (StatusCode, Value) {
        let url = self.api(&format!(
            "/pairings/{pairing}/replications/{id}/actions/{action}"
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
}

/// A correct spec for `vm_name` onto `site`'s datastore `datastore`, as a client would build it
/// after discovering that site.
fn spec_onto(inv: &Inventory, site: SiteRef<'_>, vm_name: &str, datastore: &str) -> Value {
    let mut spec = spec_for(inv, vm_name, datastore);
    let ds = site.datastore_by_name(datastore).unwrap();
    spec["target_vc_id"] = json!(site.remote_vc.id);
    for disk in spec["disks"].as_array_mut().unwrap() {
        disk["destination_datastore_id"] = json!(ds.id);
    }
    spec
}

/// The replication id a successful configure task created.
fn replication_of(task: &Value) -> String {
    assert_eq!(task["status"], "SUCCESS", "{task}");
    task["result"]["replication_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The `id` of every item of a list answer.
fn ids(body: &Value) -> Vec<String> {
    body["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn every_pairing_is_listed_from_the_same_source_to_a_site_of_its_own() {
    let h = three_sites().await;
    let inv = h.inv();
    let sid = h.login().await;

    let (s, body) = h.get(&sid, "/pairings").await;
    assert_eq!(s, StatusCode::OK);
    let list = body["list"].as_array().unwrap();
    let remote: Vec<&str> = list
        .iter()
        .map(|p| p["remote_vc_server"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        remote,
        [
            "vc-site-b.corp.local",
            "vc-site-c.corp.local",
            "vc-site-d.corp.local"
        ]
    );
    assert_eq!(body["_meta"]["total"], 3);
    for (p, site) in list.iter().zip(inv.sites()) {
        assert_eq!(p["pairing_id"], site.pairing_id);
        assert_eq!(p["local_vc_server"]["id"], inv.local_vc.id.as_str());
        assert_eq!(p["remote_vc_server"]["id"], site.remote_vc.id.as_str());
        assert_eq!(p["remote_vrms"]["name"], site.remote_vrms.name.as_str());
        let (s, one) = h.get(&sid, &format!("/pairings/{}", site.pairing_id)).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(&one, p);
    }

    // Pairing 1 is the one a simulator of one pairing serves, to the id.
    let single = Simulator::start(SimConfig {
        tls: false,
        ..fast()
    })
    .await
    .unwrap()
    .inventory();
    assert_eq!(inv.pairing_id, single.pairing_id);
    assert_eq!(inv.remote_vc, single.remote_vc);
    assert!(single.extra_pairings.is_empty());
}

#[tokio::test]
async fn each_pairing_needs_its_own_remote_login_and_serves_its_own_site() {
    let h = three_sites().await;
    let inv = h.inv();
    let c = inv.extra_pairings[0].site();
    let sid = h.login().await;
    assert_eq!(
        h.remote_login_to(&sid, c.pairing_id).await,
        StatusCode::NO_CONTENT
    );

    let datastores = |site: SiteRef<'_>| {
        format!(
            "/pairings/{}/vcenters/{}/datastores",
            site.pairing_id, site.remote_vc.id
        )
    };
    let (s, body) = h.get(&sid, &datastores(c)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // The names a site B batch knows, with ids of site C's vCenter.
    assert_eq!(
        names(&body),
        ["ds-gold-01", "ds-silver-01", "ds-bronze-01", "ds-full-01"]
    );
    assert!(ids(&body).iter().all(|id| id.ends_with(&c.remote_vc.id)));
    // Logged in to site C only: sites B and D still want their own login.
    for site in [inv.first_site(), inv.extra_pairings[1].site()] {
        let (s, body) = h.get(&sid, &datastores(site)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{}", site.remote_vc.name);
        assert!(message(&body).contains(site.pairing_id), "{body}");
    }

    let (s, vrms) = h
        .get(&sid, &format!("/pairings/{}/vrs", c.pairing_id))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        names(&vrms),
        ["vrms-site-a.corp.local", "vrms-site-c.corp.local"]
    );
    assert_eq!(
        named(&vrms, "vrms-site-c.corp.local")["vc_guid"],
        c.remote_vc.id.as_str()
    );
    let (s, servers) = h
        .get(
            &sid,
            &format!(
                "/pairings/{}/vrs/{}/replication-servers",
                c.pairing_id, c.remote_vrms.id
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(names(&servers), ["vrs-site-c-01", "vrs-site-c-02"]);
    assert_eq!(servers["list"][0]["internally_managed"], true);

    let (s, policies) = h
        .get(
            &sid,
            &format!(
                "/pairings/{}/vcenters/{}/storage-policies",
                c.pairing_id, c.remote_vc.id
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let gold = &policies["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["storage_policy_name"] == "VR Gold")
        .unwrap()["storage_policy_id"];
    assert_eq!(
        gold,
        c.storage_policy_by_name("VR Gold")
            .unwrap()
            .storage_policy_id
            .as_str()
    );
    assert_ne!(
        gold,
        inv.storage_policy_by_name("VR Gold")
            .unwrap()
            .storage_policy_id
            .as_str()
    );

    // The same source VMs through every pairing.
    let local = format!(
        "/pairings/{}/vcenters/{}/vms",
        c.pairing_id, inv.local_vc.id
    );
    let (s, vms) = h.get(&sid, &local).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(vms["_meta"]["total"], inv.vms.len());

    let stats = h.sim.stats();
    assert_eq!(stats.remote_logins.get(c.pairing_id), Some(&1));
    assert_eq!(stats.remote_logins.len(), 1, "{:?}", stats.remote_logins);
}

#[tokio::test]
async fn a_pairing_knows_only_its_own_target_vcenter_and_vrms() {
    let h = three_sites().await;
    let inv = h.inv();
    let (b, c) = (inv.first_site(), inv.extra_pairings[0].site());
    let sid = h.login_everywhere().await;
    for path in [
        format!(
            "/pairings/{}/vcenters/{}/datastores",
            c.pairing_id, b.remote_vc.id
        ),
        format!(
            "/pairings/{}/vcenters/{}/storage-policies",
            b.pairing_id, c.remote_vc.id
        ),
        format!(
            "/pairings/{}/vrs/{}/replication-servers",
            c.pairing_id, b.remote_vrms.id
        ),
        format!("/pairings/{}/vrs/{}", b.pairing_id, c.remote_vrms.id),
    ] {
        let (s, body) = h.get(&sid, &path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {body}");
    }
}

#[tokio::test]
async fn a_replication_is_listed_and_operated_on_through_its_own_pairing_only() {
    let h = three_sites().await;
    let inv = h.inv();
    let (b, c) = (inv.first_site(), inv.extra_pairings[0].site());
    let sid = h.login_everywhere().await;
    let task = h
        .configured_through(
            &sid,
            c.pairing_id,
            &json!([spec_onto(&inv, c, "app-001", "ds-silver-01")]),
        )
        .await;
    let id = replication_of(&task);

    let replications = |site: SiteRef<'_>| format!("/pairings/{}/replications", site.pairing_id);
    let (s, on_c) = h.get(&sid, &replications(c)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&on_c), [id.as_str()]);
    let r = &on_c["list"][0];
    assert_eq!(r["target_vc_id"], c.remote_vc.id.as_str());
    assert_eq!(r["target_site_name"], "vc-site-c.corp.local");
    assert_eq!(r["replication_server_name"], "vrs-site-c-01");
    let (_, on_b) = h.get(&sid, &replications(b)).await;
    assert_eq!(names(&on_b), [REPLICATED_VM], "only the legacy VM's");
    let d = inv.extra_pairings[1].site();
    let (_, on_d) = h.get(&sid, &replications(d)).await;
    assert!(ids(&on_d).is_empty(), "{on_d}");

    // Through another pairing the id is unknown, whatever is asked of it.
    let through_b = format!("/pairings/{}/replications/{id}", b.pairing_id);
    assert_eq!(h.get(&sid, &through_b).await.0, StatusCode::NOT_FOUND);
    let disks_b = format!("{through_b}/disks");
    assert_eq!(h.get(&sid, &disks_b).await.0, StatusCode::NOT_FOUND);
    let (s, body) = h.act_through(&sid, b.pairing_id, &id, "pause").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{body}");
    assert!(h.sim.stats().operations.is_empty());

    let through_c = format!("/pairings/{}/replications/{id}", c.pairing_id);
    let (s, one) = h.get(&sid, &through_c).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(one["name"], "app-001");
    let (s, disks) = h.get(&sid, &format!("{through_c}/disks")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        disks["list"][0]["destination_path"]["datastore_name"],
        "ds-silver-01"
    );
    let (s, task) = h.act_through(&sid, c.pairing_id, &id, "pause").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{task}");
    let done = h.wait_task(&sid, task["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "SUCCESS");
    let (_, one) = h.get(&sid, &through_c).await;
    assert_eq!(one["status"]["status"], "PAUSED");
}

#[tokio::test]
async fn a_configure_through_one_pairing_onto_another_site_is_refused_naming_the_field() {
    let h = three_sites().await;
    let inv = h.inv();
    let (b, c) = (inv.first_site(), inv.extra_pairings[0].site());
    let sid = h.login_everywhere().await;
    let refused = |body: Value| {
        let h = &h;
        let sid = sid.clone();
        async move {
            let (s, answer) = h
                .configure_through(&sid, c.pairing_id, &json!([body]))
                .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{answer}");
            assert_eq!(answer["error_code"], "ENTITY_NOT_FOUND", "{answer}");
            message(&answer)
        }
    };

    // Site B's vCenter through site C's pairing.
    let mut spec = spec_onto(&inv, c, "app-001", "ds-gold-01");
    spec["target_vc_id"] = json!(b.remote_vc.id);
    let m = refused(spec).await;
    assert!(
        m.starts_with("[0].target_vc_id: must be the pairing's remote vCenter"),
        "{m}"
    );
    assert!(
        m.contains("the remote vCenter of vc-site-b.corp.local"),
        "{m}"
    );

    // Site B's ds-gold-01: the same name, another site's datastore.
    let m = refused(spec_for(&inv, "app-001", "ds-gold-01")).await;
    let b_gold = &b.datastore_by_name("ds-gold-01").unwrap().id;
    assert!(
        m.contains("[0].target_vc_id: must be the pairing's remote vCenter"),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "[0].disks[0].destination_datastore_id: unknown datastore '{b_gold}' on the target \
             vCenter (that is a datastore of vc-site-b.corp.local, another pairing's target site)"
        )),
        "{m}"
    );

    let mut spec = spec_onto(&inv, c, "app-001", "ds-gold-01");
    let b_policy = &b
        .storage_policy_by_name("VR Gold")
        .unwrap()
        .storage_policy_id;
    spec["disks"][1]["destination_storage_policy_id"] = json!(b_policy);
    let m = refused(spec).await;
    assert!(
        m.contains("[0].disks[1].destination_storage_policy_id: unknown storage policy")
            && m.contains("a storage policy of vc-site-b.corp.local"),
        "{m}"
    );

    let mut spec = spec_onto(&inv, c, "app-001", "ds-gold-01");
    spec["target_replication_server_id"] = json!(b.replication_servers[0].id);
    let m = refused(spec).await;
    assert!(
        m.contains("[0].target_replication_server_id: unknown VR server")
            && m.contains("a VR server of vc-site-b.corp.local"),
        "{m}"
    );

    assert!(h.sim.stats().configure_attempts.is_empty());
    // Site C's own, named by id, is accepted.
    let mut spec = spec_onto(&inv, c, "app-001", "ds-gold-01");
    spec["target_replication_server_id"] = json!(c.replication_servers[1].id);
    let task = h
        .configured_through(&sid, c.pairing_id, &json!([spec]))
        .await;
    let id = replication_of(&task);
    let (_, r) = h
        .get(
            &sid,
            &format!("/pairings/{}/replications/{id}", c.pairing_id),
        )
        .await;
    assert_eq!(r["replication_server_name"], "vrs-site-c-02");
}

#[tokio::test]
async fn a_reconfigure_keeps_to_the_site_of_the_replications_pairing() {
    let h = three_sites().await;
    let inv = h.inv();
    let (b, c) = (inv.first_site(), inv.extra_pairings[0].site());
    let sid = h.login_everywhere().await;
    let spec = spec_onto(&inv, c, "app-001", "ds-silver-01");
    let id = replication_of(
        &h.configured_through(&sid, c.pairing_id, &json!([spec.clone()]))
            .await,
    );
    // A configure spec without what a replication cannot change is a reconfigure body.
    let reconfigure = |mut body: Value| {
        let object = body.as_object_mut().unwrap();
        object.remove("vm_id");
        object.remove("target_vc_id");
        body
    };
    let post = |body: Value| {
        let url = h.api(&format!(
            "/pairings/{}/replications/{id}/actions/reconfigure",
            c.pairing_id
        ));
        let request = h.http.post(url).header("x-dr-session", &sid).json(&body);
        async move {
            let r = request.send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    let mut onto_b = reconfigure(spec_onto(&inv, b, "app-001", "ds-gold-01"));
    onto_b["target_replication_server_id"] = json!(b.replication_servers[1].id);
    let (s, answer) = post(onto_b).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{answer}");
    let m = message(&answer);
    assert!(
        m.contains("body.target_replication_server_id: unknown VR server")
            && m.contains("body.disks[0].destination_datastore_id: unknown datastore")
            && m.contains("of vc-site-b.corp.local, another pairing's target site"),
        "{m}"
    );

    let mut onto_c = reconfigure(spec_onto(&inv, c, "app-001", "ds-gold-01"));
    onto_c["target_replication_server_id"] = json!(c.replication_servers[1].id);
    let (s, task) = post(onto_c).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{task}");
    h.wait_task(&sid, task["id"].as_str().unwrap()).await;
    let (_, r) = h
        .get(
            &sid,
            &format!("/pairings/{}/replications/{id}", c.pairing_id),
        )
        .await;
    assert_eq!(r["replication_server_name"], "vrs-site-c-02");
    assert_eq!(r["target_vc_id"], c.remote_vc.id.as_str());
}

#[tokio::test]
async fn a_vm_is_replicated_through_one_pairing_at_a_time() {
    let h = three_sites().await;
    let inv = h.inv();
    let (b, c) = (inv.first_site(), inv.extra_pairings[0].site());
    let sid = h.login_everywhere().await;
    let task = h
        .configured_through(
            &sid,
            b.pairing_id,
            &json!([spec_for(&inv, "app-001", "ds-gold-01")]),
        )
        .await;
    let id = replication_of(&task);

    for vm in ["app-001", REPLICATED_VM] {
        let (s, answer) = h
            .configure_through(
                &sid,
                c.pairing_id,
                &json!([spec_onto(&inv, c, vm, "ds-gold-01")]),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error_code"], "VM_ALREADY_CONFIGURED");
        assert!(
            message(&answer).contains("is already configured for replication (GID-"),
            "{answer}"
        );
    }
    // Every pairing's capability check says so, and its suitable VMs leave it out.
    let vm_id = &inv.vm_by_name("app-001").unwrap().vm.id;
    let (_, cap) = h
        .get(
            &sid,
            &format!(
                "/pairings/{}/vcenters/{}/vms/{vm_id}/capability",
                c.pairing_id, inv.local_vc.id
            ),
        )
        .await;
    assert_eq!(cap["vm_validation_status"], "ALREADY_CONFIGURED");
    let (_, suitable) = h
        .get(
            &sid,
            &format!(
                "/pairings/{}/vcenters/{}/vms?suitable_for_replication=true&limit=500",
                c.pairing_id, inv.local_vc.id
            ),
        )
        .await;
    assert!(!names(&suitable).contains(&"app-001".to_string()));
    let stats = h.sim.stats();
    assert_eq!(stats.configure_rejected.get(vm_id), Some(&1));
    assert_eq!(stats.configure_attempts.get(vm_id), Some(&1));

    // Once unconfigured through its pairing, the VM may go through another.
    let (s, task) = h.act_through(&sid, b.pairing_id, &id, "unconfigure").await;
    assert_eq!(s, StatusCode::ACCEPTED, "{task}");
    h.wait_task(&sid, task["id"].as_str().unwrap()).await;
    let task = h
        .configured_through(
            &sid,
            c.pairing_id,
            &json!([spec_onto(&inv, c, "app-001", "ds-gold-01")]),
        )
        .await;
    replication_of(&task);
}

#[tokio::test]
async fn a_vr_server_takes_its_limit_and_the_appliance_its_own_over_every_pairing() {
    // One replication a server; four in all, the legacy VM's on site B included.
    let h = Harness::plain(SimConfig {
        pairings: 2,
        max_replications_per_server: 1,
        max_replications_per_appliance: 4,
        ..fast()
    })
    .await;
    let inv = h.inv();
    let c = inv.extra_pairings[0].site();
    let sid = h.login_everywhere().await;
    let mut errors = Vec::new();
    for vm in ["app-001", "app-002", "db-003"] {
        let task = h
            .configured_through(
                &sid,
                c.pairing_id,
                &json!([spec_onto(&inv, c, vm, "ds-gold-01")]),
            )
            .await;
        if task["status"] == "ERROR" {
            errors.push(task["error"]["message"].as_str().unwrap().to_string());
        }
    }
    // Automatic placement filled site C's two servers, one each; the third found both full.
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("The vSphere Replication server 'vrs-site-c-0")
            && errors[0].ends_with("has reached the maximum number of replications (1)"),
        "{errors:?}"
    );
    let servers = h.inv().extra_pairings[0].replication_servers.clone();
    assert!(
        servers.iter().all(|s| s.replication_count == Some(1)),
        "{servers:?}"
    );

    // Site B's second server is free, but the appliance holds 3 + this one = 4.
    let b_second = &inv.replication_servers[1].id;
    let mut spec = spec_for(&inv, "app-004", "ds-gold-01");
    spec["target_replication_server_id"] = json!(b_second);
    let task = h
        .configured_through(&sid, &inv.pairing_id, &json!([spec]))
        .await;
    replication_of(&task);
    let mut spec = spec_for(&inv, "app-005", "ds-gold-01");
    spec["target_replication_server_id"] = json!(b_second);
    let task = h
        .configured_through(&sid, &inv.pairing_id, &json!([spec]))
        .await;
    assert_eq!(task["status"], "ERROR");
    assert!(
        task["error"]["message"]
            .as_str()
            .unwrap()
            .contains("The maximum number of replications (4)"),
        "{task}"
    );
}

#[test]
fn extra_sites_leave_pairing_one_as_it_was_and_repeat_its_names_under_other_ids() {
    let one = Inventory::generate(40, 1);
    let mut three = Inventory::generate(40, 1);
    three.add_pairings(3, 1);
    let extra = std::mem::take(&mut three.extra_pairings);
    assert_eq!(
        serde_json::to_value(&one).unwrap(),
        serde_json::to_value(&three).unwrap()
    );
    assert_eq!(extra.len(), 2);
    // Site C does not depend on how many sites follow it.
    let mut two = Inventory::generate(40, 1);
    two.add_pairings(2, 1);
    assert_eq!(
        serde_json::to_value(&two.extra_pairings[0]).unwrap(),
        serde_json::to_value(&extra[0]).unwrap()
    );

    let big = {
        let mut inv = Inventory::generate(450, 1);
        inv.add_pairings(2, 1);
        inv
    };
    for inv in [&three, &big] {
        let mut all_ids = Vec::new();
        for site in inv.sites() {
            assert_eq!(
                site.replication_servers.len(),
                inv.replication_servers.len()
            );
            for (ds, first) in site.datastores.iter().zip(&inv.datastores) {
                assert_eq!(
                    (&ds.name, ds.capacity, ds.free_space),
                    (&first.name, first.capacity, first.free_space)
                );
            }
            all_ids.push(site.pairing_id.to_string());
            all_ids.push(site.remote_vc.id.clone());
            all_ids.push(site.remote_vrms.id.clone());
            all_ids.extend(site.datastores.iter().map(|d| d.id.clone()));
            all_ids.extend(
                site.storage_policies
                    .iter()
                    .map(|p| p.storage_policy_id.clone()),
            );
            all_ids.extend(site.replication_servers.iter().map(|s| s.id.clone()));
        }
        let n = all_ids.len();
        all_ids.sort();
        all_ids.dedup();
        assert_eq!(all_ids.len(), n, "an id repeats across sites");
    }
    assert_eq!(big.extra_pairings[0].replication_servers.len(), 4);
    assert_eq!(
        big.extra_pairings[0].replication_servers[3].name.as_deref(),
        Some("vrs-site-c-04")
    );
}
