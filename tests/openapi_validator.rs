//! Tests of `support::openapi`, the spec validator the other integration tests rely on: valid
//! documents pass, and each kind of violation is reported at its exact JSON path.

use serde_json::{json, Value};

use crate::support::openapi::Spec;

fn task() -> Value {
    json!({
        "id": "HmsTask:task-42",
        "description": "Configure replication",
        "description_id": "com.vmware.hms.configure",
        "entity": "VirtualMachine:vm-80",
        "entity_name": "web-01",
        "status": "RUNNING",
        "error": null,
        "result": null,
        "progress": 40,
        "queued_time": 1_700_000_000_000_i64,
        "start_time": 1_700_000_000_500_i64,
        "complete_time": null
    })
}

fn vm_disk(capacity: Value) -> Value {
    json!({
        "vm_id": "VirtualMachine:vm-80:e594ad24-5f75-41e3-a276-88a2116dbed0",
        "device_key": 2000,
        "is_vm_home": false,
        "capacity": capacity,
        "source_disk_format": "THIN",
        "source_path": { "datastore_id": "Datastore:datastore-16", "path": null },
        "label": "Hard disk 1",
        "controller_key": 1000,
        "controller_label": null,
        "supported_for_replication": true
    })
}

fn configure_spec() -> Value {
    json!({
        "vm_id": "VirtualMachine:vm-80:e594ad24-5f75-41e3-a276-88a2116dbed0",
        "rpo": 15,
        "network_compression_enabled": true,
        "mpit_enabled": true,
        "mpit_instances": 3,
        "mpit_days": 5,
        "auto_replicate_new_disks": true,
        "lwd_encryption_enabled": false,
        "target_vc_id": "2c5e1b4e-0f3a-4d3c-9a55-31e0d4f7c1aa",
        "target_replication_server_id": null,
        "disks": [{
            "vm_disk": vm_disk(json!(16_777_216)),
            "enabled_for_replication": true,
            "destination_datastore_id": "Datastore:datastore-16:ff4a23e7-2fed-4be0-be39-479ae372badd",
            "destination_disk_format": "SAME_AS_SOURCE",
            "destination_storage_policy_id": null
        }]
    })
}

fn vm_list(capacity: Value) -> Value {
    json!({
        "list": [
            { "id": "VirtualMachine:vm-79", "name": "db-01", "power_state": "POWERED_ON",
              "connection_state": "CONNECTED", "template": false, "managed_by_info": null,
              "vr_privilege_granted": true, "disks": [] },
            { "id": "VirtualMachine:vm-80", "name": "web-01", "power_state": "POWERED_OFF",
              "connection_state": "CONNECTED", "template": false, "vr_privilege_granted": true,
              "disks": [vm_disk(capacity)] }
        ],
        "_meta": { "total": 2, "offset": 0, "limit": 100, "errors": [] }
    })
}

fn errors_of(result: Result<(), Vec<String>>) -> Vec<String> {
    result.expect_err("expected violations, the value passed")
}

#[test]
fn a_valid_task_passes() {
    let spec = Spec::load();

    assert_eq!(spec.validate_schema("Task", &task()), Ok(()));
}

#[test]
fn a_valid_configure_replication_spec_passes_as_schema_and_as_request_body() {
    let spec = Spec::load();

    assert_eq!(
        spec.validate_schema("ConfigureReplicationSpec", &configure_spec()),
        Ok(())
    );
    let body = json!([configure_spec()]);
    let result = spec.validate_request_body("POST", "/pairings/p-1/replications", Some(&body));
    assert_eq!(result, Ok(()));
}

#[test]
fn a_valid_vm_list_with_disks_passes() {
    let spec = Spec::load();

    let result = spec.validate_schema("VirtualMachineDrResponseList", &vm_list(json!(1024)));

    assert_eq!(result, Ok(()));
}

#[test]
fn a_task_entity_is_checked_against_its_all_of_member_and_its_own_properties() {
    let spec = Spec::load();
    let mut entity = task();
    entity["_meta"] = json!({ "errors": [{ "field": "$.progress", "message": "late" }] });
    assert_eq!(
        spec.validate_schema("TaskDrResponseEntity", &entity),
        Ok(())
    );

    entity["status"] = json!("DONE");
    entity["_meta"] = json!({ "errors": [{ "message": "no field" }] });
    let errors = errors_of(spec.validate_schema("TaskDrResponseEntity", &entity));

    assert_eq!(
        errors,
        [
            "$._meta.errors[0].field: missing required property",
            "$.status: \"DONE\" is not one of \"QUEUED\", \"RUNNING\", \"SUCCESS\", \"ERROR\", \"CANCELLED\"",
        ]
    );
}

#[test]
fn a_requirement_repeated_by_an_entity_and_its_all_of_member_is_reported_once() {
    let spec = Spec::load();
    let mut entity = task();
    entity.as_object_mut().unwrap().remove("id");

    let errors = errors_of(spec.validate_schema("TaskDrResponseEntity", &entity));

    assert_eq!(errors, ["$.id: missing required property"]);
}

#[test]
fn a_wrong_type_is_reported_at_its_nested_path() {
    let spec = Spec::load();

    let errors =
        errors_of(spec.validate_schema("VirtualMachineDrResponseList", &vm_list(json!("1024"))));

    assert_eq!(
        errors,
        ["$.list[1].disks[0].capacity: expected integer, got string"]
    );
}

#[test]
fn a_number_with_a_fraction_is_not_an_integer() {
    let spec = Spec::load();

    let errors =
        errors_of(spec.validate_schema("VirtualMachineDrResponseList", &vm_list(json!(1024.0))));

    assert_eq!(
        errors,
        ["$.list[1].disks[0].capacity: expected integer, got number"]
    );
}

#[test]
fn a_missing_required_property_is_reported_where_it_should_be() {
    let spec = Spec::load();
    let mut body = configure_spec();
    body.as_object_mut().unwrap().remove("rpo");
    body["disks"][0]["vm_disk"]
        .as_object_mut()
        .unwrap()
        .remove("vm_id");

    let errors = errors_of(spec.validate_schema("ConfigureReplicationSpec", &body));

    assert_eq!(
        errors,
        [
            "$.disks[0].vm_disk.vm_id: missing required property",
            "$.rpo: missing required property",
        ]
    );
}

#[test]
fn a_value_outside_the_enum_is_reported() {
    let spec = Spec::load();
    let mut body = configure_spec();
    body["disks"][0]["destination_disk_format"] = json!("thin");

    let errors = errors_of(spec.validate_schema("ConfigureReplicationSpec", &body));

    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with(
            "$.disks[0].destination_disk_format: \"thin\" is not one of \"SAME_AS_SOURCE\""
        ),
        "{errors:?}"
    );
}

#[test]
fn null_is_rejected_on_a_non_nullable_property_and_accepted_on_a_nullable_one() {
    let spec = Spec::load();
    let mut body = task();
    body["entity"] = Value::Null;
    body["error"] = Value::Null; // TaskError itself is nullable, behind a $ref
    body["progress"] = Value::Null;
    body["status"] = Value::Null;

    let errors = errors_of(spec.validate_schema("Task", &body));

    assert_eq!(
        errors,
        [
            "$.progress: expected integer, got null",
            "$.status: expected string, got null",
        ]
    );
}

#[test]
fn null_is_accepted_on_a_nullable_enum_but_not_on_a_plain_string() {
    let spec = Spec::load();
    let mut list = vm_list(json!(1));
    list["list"][0]["power_state"] = Value::Null;
    list["list"][0]["connection_state"] = Value::Null;
    assert_eq!(
        spec.validate_schema("VirtualMachineDrResponseList", &list),
        Ok(())
    );

    list["list"][0]["name"] = Value::Null;
    let errors = errors_of(spec.validate_schema("VirtualMachineDrResponseList", &list));

    assert_eq!(errors, ["$.list[0].name: expected string, got null"]);
}

#[test]
fn an_rpo_outside_five_to_1440_minutes_is_reported() {
    let spec = Spec::load();
    let mut low = configure_spec();
    low["rpo"] = json!(2);
    let mut high = configure_spec();
    high["rpo"] = json!(1441);
    let mut edge = configure_spec();
    edge["rpo"] = json!(5);

    let body = json!([low, high, edge]);
    let errors =
        errors_of(spec.validate_request_body("POST", "/pairings/p-1/replications", Some(&body)));

    assert_eq!(
        errors,
        [
            "$[0].rpo: 2 is below minimum 5",
            "$[1].rpo: 1441 is above maximum 1440"
        ]
    );
}

#[test]
fn an_int32_overflow_is_reported_and_the_int32_maximum_is_not() {
    let spec = Spec::load();
    let mut disk = vm_disk(json!(1));
    disk["device_key"] = json!(i64::from(i32::MAX));
    assert_eq!(spec.validate_schema("VmDisk", &disk), Ok(()));

    disk["device_key"] = json!(i64::from(i32::MAX) + 1);
    disk["controller_key"] = json!(i64::from(i32::MIN) - 1);
    let errors = errors_of(spec.validate_schema("VmDisk", &disk));

    assert_eq!(
        errors,
        [
            "$.controller_key: -2147483649 is out of int32 range",
            "$.device_key: 2147483648 is out of int32 range",
        ]
    );
}

#[test]
fn an_int64_overflow_is_reported() {
    let spec = Spec::load();

    let errors = errors_of(spec.validate_schema("CountData", &json!({ "count": u64::MAX })));

    assert_eq!(
        errors,
        ["$.count: 18446744073709551615 is out of int64 range"]
    );
}

#[test]
fn a_malformed_uuid_is_reported() {
    let spec = Spec::load();
    let good = json!({ "pairing_id": "2C5E1B4E-0f3a-4d3c-9a55-31e0d4f7c1aa" });
    assert_eq!(spec.validate_schema("Pairing", &good), Ok(()));

    for bad in [
        "2c5e1b4e0f3a4d3c9a5531e0d4f7c1aa",
        "2c5e1b4e-0f3a-4d3c-9a55-31e0d4f7c1ag",
        "",
    ] {
        let errors = errors_of(spec.validate_schema("Pairing", &json!({ "pairing_id": bad })));
        assert_eq!(errors, [format!("$.pairing_id: \"{bad}\" is not a uuid")]);
    }
}

#[test]
fn duplicate_items_in_a_unique_items_array_are_reported() {
    let spec = Spec::load();
    let error = json!({ "field": "$.rpo", "code": "E1" });
    let meta = json!({ "errors": [error, { "field": "$.name" }, error] });

    let errors = errors_of(spec.validate_schema("MetadataList", &meta));

    assert_eq!(errors, ["$.errors: items 0 and 2 are equal"]);
}

#[test]
fn an_unknown_schema_name_is_reported_as_an_unresolved_ref() {
    let spec = Spec::load();

    let errors = errors_of(spec.validate_schema("NoSuchThing", &json!({})));

    assert_eq!(
        errors,
        ["$: unresolved $ref #/components/schemas/NoSuchThing"]
    );
}

#[test]
fn a_literal_path_segment_wins_over_a_template() {
    let spec = Spec::load();

    let cases = [
        (
            "/pairings/p-1/replications/count",
            "/pairings/{pairing_id}/replications/count",
        ),
        (
            "/pairings/p-1/replications/issues",
            "/pairings/{pairing_id}/replications/issues",
        ),
        (
            "/pairings/p-1/replications/r-9",
            "/pairings/{pairing_id}/replications/{replication_id}",
        ),
        (
            "/pairings/abc/vcenters/x/vms?limit=10&offset=0",
            "/pairings/{pairing_id}/vcenters/{vcenter_id}/vms",
        ),
        ("/api/rest/vr/v2/tasks/abc", "/tasks/{task_id}"),
        ("/session", "/session"),
    ];

    for (path, template) in cases {
        assert_eq!(spec.path_template(path), Some(template), "{path}");
    }
    assert_eq!(spec.path_template("/pairings/p-1/nothing"), None);
    assert_eq!(spec.path_template("/tasks/"), None);
    assert_eq!(spec.path_template("/tasks//"), None);
}

#[test]
fn a_response_is_validated_against_the_operation_of_the_literal_path() {
    let spec = Spec::load();
    let path = "/pairings/p-1/replications/count";

    let count = json!({ "count": 3, "_meta": { "errors": [] } });
    assert_eq!(
        spec.validate_response("GET", path, 200, Some(&count)),
        Ok(())
    );

    let errors =
        errors_of(spec.validate_response("get", path, 200, Some(&json!({ "count": "3" }))));
    assert_eq!(errors, ["$.count: expected integer, got string"]);
}

#[test]
fn an_undocumented_status_or_method_is_rejected() {
    let spec = Spec::load();

    let errors = errors_of(spec.validate_response("GET", "/tasks/abc", 204, None));
    assert_eq!(
        errors,
        ["GET /tasks/{task_id} does not document status 204 (documented: 200, 400, 401, 403, 404, 500)"]
    );

    let errors = errors_of(spec.validate_response("PUT", "/tasks/abc", 200, None));
    assert_eq!(errors, ["PUT is not documented for /tasks/{task_id}"]);
}

#[test]
fn a_body_must_be_present_exactly_when_the_response_documents_one() {
    let spec = Spec::load();

    assert_eq!(
        spec.validate_response("DELETE", "/session", 204, None),
        Ok(())
    );
    assert_eq!(
        spec.validate_response("GET", "/tasks/abc", 401, None),
        Ok(())
    );

    let errors = errors_of(spec.validate_response("DELETE", "/session", 204, Some(&json!({}))));
    assert_eq!(
        errors,
        ["response 204 of /session: documents no body, got one"]
    );
    let errors = errors_of(spec.validate_response("GET", "/tasks/abc", 200, None));
    assert_eq!(
        errors,
        ["response 200 of /tasks/{task_id}: expected a JSON body, got none"]
    );
}

#[test]
fn a_task_list_answering_configure_is_a_valid_202() {
    let spec = Spec::load();
    let body = json!({ "list": [task()], "_meta": { "total": 1 } });

    let result = spec.validate_response("POST", "/pairings/p-1/replications", 202, Some(&body));

    assert_eq!(result, Ok(()));
}

#[test]
fn operation_ids_are_found_by_method_and_concrete_path() {
    let spec = Spec::load();

    assert_eq!(
        spec.operation_id("GET", "/tasks/abc").as_deref(),
        Some("getTaskInfo")
    );
    assert_eq!(
        spec.operation_id("POST", "/pairings/p/replications")
            .as_deref(),
        Some("configureReplication")
    );
    assert_eq!(
        spec.operation_id("GET", "/pairings/p/replications/count")
            .as_deref(),
        Some("getReplicationsCount")
    );
    assert_eq!(
        spec.operation_id("DELETE", "/session").as_deref(),
        Some("logout")
    );
    assert_eq!(spec.operation_id("PUT", "/session"), None);
    assert_eq!(spec.operation_id("GET", "/nowhere"), None);
}

#[test]
fn the_spec_uses_only_keywords_the_validator_understands() {
    let spec = Spec::load();

    assert_eq!(spec.unsupported_keywords(), Vec::<String>::new());
}

#[test]
fn an_unsupported_keyword_in_a_spec_is_listed() {
    let spec = Spec::from_value(json!({
        "paths": {},
        "components": { "schemas": { "Open": {
            "type": "object",
            "additionalProperties": false,
            "properties": { "when": { "type": "string", "format": "date-time" } }
        } } }
    }));

    assert_eq!(
        spec.unsupported_keywords(),
        [
            "components.schemas.Open: additionalProperties",
            "components.schemas.Open.when: format date-time",
        ]
    );
}

#[test]
fn a_request_body_must_match_what_the_operation_documents() {
    let spec = Spec::load();
    let pause = "/pairings/p-1/replications/r-1/actions/pause";

    assert_eq!(spec.validate_request_body("POST", pause, None), Ok(()));
    let errors = errors_of(spec.validate_request_body("POST", pause, Some(&json!({}))));
    assert_eq!(
        errors,
        ["request to /pairings/{pairing_id}/replications/{replication_id}/actions/pause: documents no body, got one"]
    );
    // configure's body is optional in the spec; pairing's is required.
    assert_eq!(
        spec.validate_request_body("POST", "/pairings/p-1/replications", None),
        Ok(())
    );
    let errors = errors_of(spec.validate_request_body("POST", "/pairings", None));
    assert_eq!(
        errors,
        ["request to /pairings: expected a JSON body, got none"]
    );
}
