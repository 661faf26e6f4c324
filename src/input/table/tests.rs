//! Unit tests of the CSV rules, one behaviour each; the file corpus in `tests/data/` covers
//! whole realistic files.

use super::*;
use crate::vr::model::DiskFormat;

const ID: &str = "VirtualMachine:vm-1001:0f0e7f53-31c8-4f3b-9a0e-5c1e3a4b2d10";

fn parse(text: &str) -> Result<Vec<JobSpec>, InputErrors> {
    parse_csv(text.as_bytes(), &Defaults::default())
}

/// The errors of `text`, displayed.
fn errors(text: &str) -> Vec<String> {
    errors_with(text.as_bytes(), &Defaults::default())
}

fn errors_with(bytes: &[u8], defaults: &Defaults) -> Vec<String> {
    match parse_csv(bytes, defaults) {
        Ok(jobs) => panic!("expected errors, parsed {} jobs", jobs.len()),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn one_error(text: &str) -> String {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.into_iter().next().unwrap_or_default()
}

#[test]
fn minimal_row_gets_the_builtin_defaults() {
    let jobs = parse("vm_name,target_datastore\napp-001,ds-gold-01\n").unwrap();
    assert_eq!(
        jobs,
        [JobSpec {
            line: Some(2),
            vm: VmRef {
                name: Some("app-001".into()),
                id: None
            },
            pairing: None,
            target_datastore: "ds-gold-01".into(),
            storage_policy: None,
            replication_server: None,
            settings: ReplicationSettings::default(),
            change_ticket: None,
            notes: None,
        }]
    );
}

#[test]
fn every_column_is_read() {
    let text = format!(
        "vm_name,vm_id,pairing,target_datastore,storage_policy,rpo,mpit_instances,mpit_days,\
         quiesce,network_compression,lwd_encryption,auto_replicate_new_disks,disk_format,\
         replication_server,change_ticket,notes\n\
         app-001,{ID},vc-site-b.corp.local,ds-gold-01,VR Gold,15,4,3,yes,1,true,y,thin,\
         vrs-target-02,CHG0012345,  keep as is  \n"
    );
    let job = parse(&text).unwrap().remove(0);
    assert_eq!(job.vm.id.as_deref(), Some(ID));
    assert_eq!(job.pairing.as_deref(), Some("vc-site-b.corp.local"));
    assert_eq!(job.storage_policy.as_deref(), Some("VR Gold"));
    assert_eq!(job.replication_server.as_deref(), Some("vrs-target-02"));
    assert_eq!(job.change_ticket.as_deref(), Some("CHG0012345"));
    assert_eq!(job.notes.as_deref(), Some("keep as is"));
    assert_eq!(
        job.settings,
        ReplicationSettings {
            rpo: 15,
            mpit_instances: 4,
            mpit_days: 3,
            quiesce: true,
            network_compression: true,
            lwd_encryption: true,
            auto_replicate_new_disks: true,
            disk_format: DiskFormat::Thin,
        }
    );
}

#[test]
fn row_values_override_defaults_which_override_builtins() {
    let defaults = Defaults {
        target_datastore: Some("ds-silver-01".into()),
        storage_policy: Some("VR Silver".into()),
        rpo: Some(30),
        quiesce: Some(true),
        replication_server: Some("vrs-target-01".into()),
        mpit_days: Some(5),
        ..Defaults::default()
    };
    let text = "vm_name,target_datastore,rpo,quiesce,replication_server,mpit_instances\n\
                app-001,,,,,\n\
                app-002,ds-gold-01,240,no,auto,2\n";
    let jobs = parse_csv(text.as_bytes(), &defaults).unwrap();
    assert_eq!(jobs[0].target_datastore, "ds-silver-01");
    assert_eq!(jobs[0].storage_policy.as_deref(), Some("VR Silver"));
    assert_eq!(jobs[0].settings.rpo, 30);
    assert!(jobs[0].settings.quiesce);
    assert_eq!(jobs[0].replication_server.as_deref(), Some("vrs-target-01"));
    assert_eq!(
        (jobs[0].settings.mpit_instances, jobs[0].settings.mpit_days),
        (0, 0),
        "default days alone do not turn MPIT on"
    );
    assert_eq!(jobs[1].target_datastore, "ds-gold-01");
    assert_eq!(jobs[1].settings.rpo, 240);
    assert!(!jobs[1].settings.quiesce);
    assert_eq!(
        jobs[1].replication_server, None,
        "auto overrides the default"
    );
    assert_eq!(
        (jobs[1].settings.mpit_instances, jobs[1].settings.mpit_days),
        (2, 5)
    );
    assert!(!jobs[1].settings.network_compression);
}

#[test]
fn defaults_errors_are_reported_with_the_file_errors() {
    let defaults = Defaults {
        rpo: Some(1),
        ..Defaults::default()
    };
    let errors = errors_with(b"vm_name,target_datastore,rpo\napp-001,ds,2\n", &defaults);
    assert_eq!(
        errors,
        [
            "column rpo: expected minutes between 5 and 1440, got 1 (in [defaults])",
            "line 2, column rpo: expected minutes between 5 and 1440, got \"2\"",
        ]
    );
}

#[test]
fn header_names_are_case_insensitive_and_trimmed() {
    let jobs = parse(" VM_Name ;  Target_DataStore ; RPO \napp-001;ds-gold-01;15\n").unwrap();
    assert_eq!(jobs[0].vm.name.as_deref(), Some("app-001"));
    assert_eq!(jobs[0].settings.rpo, 15);
}

#[test]
fn semicolon_is_sniffed_from_the_header_outside_quotes() {
    assert_eq!(sniff_delimiter("vm_name;target_datastore\n"), b';');
    assert_eq!(sniff_delimiter("vm_name,target_datastore\n"), b',');
    assert_eq!(sniff_delimiter("\"a;b\",c\n"), b',');
    assert_eq!(
        sniff_delimiter("\n\nvm_name;rpo\n"),
        b';',
        "blank lines first"
    );
    assert_eq!(sniff_delimiter("vm_name\na;b;c\n"), b',', "header only");
    let jobs = parse("vm_name\napp-001\n");
    // A single column is allowed by the parser; the datastore is what it lacks.
    assert!(jobs.is_err());
    let defaults = Defaults {
        target_datastore: Some("ds".into()),
        ..Defaults::default()
    };
    let jobs = parse_csv(b"vm_name\napp-001\n\"Finance, Server\"\n", &defaults).unwrap();
    assert_eq!(jobs[1].vm.name.as_deref(), Some("Finance, Server"));
}

#[test]
fn quoted_fields_keep_delimiters_and_newlines_and_lines_are_physical() {
    let text = "vm_name,target_datastore,notes\n\
                app-001,ds,\"first, with a comma\"\n\
                app-002,ds,\"two\nlines\"\n\
                app-003,ds,\"say \"\"hi\"\"\"\n";
    let jobs = parse(text).unwrap();
    assert_eq!(jobs[0].notes.as_deref(), Some("first, with a comma"));
    assert_eq!(jobs[1].notes.as_deref(), Some("two\nlines"));
    assert_eq!(jobs[2].notes.as_deref(), Some("say \"hi\""));
    let lines: Vec<_> = jobs.iter().map(|j| j.line).collect();
    assert_eq!(lines, [Some(2), Some(3), Some(5)]);
}

#[test]
fn bom_and_crlf_are_accepted() {
    let jobs = parse_csv(
        b"\xEF\xBB\xBFvm_name,target_datastore\r\napp-001,ds\r\n\r\napp-002,ds\r\n",
        &Defaults::default(),
    )
    .unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].vm.name.as_deref(), Some("app-001"));
    assert_eq!(jobs[1].line, Some(4));
}

#[test]
fn blank_lines_and_rows_of_bare_delimiters_are_skipped() {
    let jobs = parse("\nvm_name;target_datastore\n\napp-001;ds\n  \n;\n;;\napp-002;ds\n").unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].line, Some(4));
    assert_eq!(jobs[1].line, Some(8));
}

#[test]
fn not_utf8_names_the_line_and_offset() {
    let bytes = b"vm_name,target_datastore\napp-001,ds\nFinance Server \xDCn\xEFc\xF8d\xE9,ds\n";
    let errors = errors_with(bytes, &Defaults::default());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("line 3: the file is not UTF-8: byte 0xDC at offset 51"),
        "{}",
        errors[0]
    );
}

#[test]
fn utf16_is_recognised() {
    let errors = errors_with(b"\xFF\xFEv\0m\0", &Defaults::default());
    assert!(errors[0].starts_with("the file is UTF-16"), "{errors:?}");
}

#[test]
fn empty_file_and_header_only_are_errors() {
    for empty in ["", "   \n\n", "\u{feff}", ";;;\n"] {
        assert!(
            one_error(empty).starts_with("the file is empty: expected a header row"),
            "{empty:?}"
        );
    }
    assert_eq!(
        one_error("vm_name,target_datastore\n"),
        "no VM rows: the header on line 1 has no rows below it"
    );
}

#[test]
fn unknown_column_suggests_the_closest() {
    let errors = errors("vm_name,target_datastor\napp-001,ds\n");
    assert_eq!(
        errors,
        ["line 1, column target_datastor: unknown column; did you mean `target_datastore`?"]
    );
    assert!(one_error("vm_name,target_datastore,VM Id\napp-001,ds,\n")
        .ends_with("did you mean `vm_id`?"));
    assert!(one_error("vm_name,target_datastore,ticket\napp-001,ds,\n")
        .ends_with("did you mean `change_ticket`?"));
    let far = one_error("vm_name,target_datastore,owner\napp-001,ds,x\n");
    assert!(
        far.starts_with("line 1, column owner: unknown column; the columns are vm_name, vm_id"),
        "{far}"
    );
}

#[test]
fn mixed_delimiters_in_the_header_are_named() {
    let error = one_error("vm_name,target_datastore;rpo\napp-001,ds;15\n");
    assert!(
        error.starts_with(
            "line 1, column target_datastore;rpo: unknown column: the header mixes `,` and `;`"
        ),
        "{error}"
    );
}

#[test]
fn row_with_the_other_delimiter_is_named() {
    let error = one_error("vm_name;target_datastore;rpo\napp-001,ds,15\n");
    assert_eq!(
        error,
        "line 2: expected 3 fields as in the header, found 1; this line seems to use `,` \
         where the header uses `;`"
    );
}

#[test]
fn duplicate_column_and_missing_vm_columns_are_errors() {
    assert_eq!(
        one_error("vm_name,rpo,target_datastore,RPO\napp-001,15,ds,30\n"),
        "line 1, column rpo: duplicate column: rpo is also column 2; keep one of them"
    );
    let both = errors("name_of_vm,target_datastore\napp-001,ds\n");
    assert_eq!(both.len(), 2, "{both:#?}");
    assert!(both[0].starts_with("line 1, column name_of_vm: unknown column;"));
    assert!(both[1].starts_with("line 1: no vm_name or vm_id column"));
    let errors = errors("target_datastore,rpo\nds,15\n");
    assert_eq!(
        errors,
        ["line 1: no vm_name or vm_id column: the header must name the VM in at least one of them"]
    );
}

#[test]
fn missing_datastore_column_is_one_error_unless_defaulted() {
    assert_eq!(
        errors("vm_name,rpo\napp-001,15\napp-002,15\n"),
        ["line 1: no target_datastore column: it is required unless [defaults] target_datastore is set"]
    );
    let defaults = Defaults {
        target_datastore: Some("ds-bronze-01".into()),
        ..Defaults::default()
    };
    let jobs = parse_csv(b"vm_name,rpo\napp-001,15\n", &defaults).unwrap();
    assert_eq!(jobs[0].target_datastore, "ds-bronze-01");
}

#[test]
fn empty_datastore_cell_without_default_is_an_error() {
    assert_eq!(
        one_error("vm_name,target_datastore\napp-001,\n"),
        "line 2, column target_datastore: required unless [defaults] target_datastore is set"
    );
}

#[test]
fn field_count_must_match_the_header() {
    assert_eq!(
        one_error("vm_name,target_datastore,rpo\napp-001,ds,15,extra\n"),
        "line 2: expected 3 fields as in the header, found 4; a value that contains `,` must \
         be in double quotes"
    );
    assert_eq!(
        one_error("vm_name,target_datastore,rpo\napp-001,ds\n"),
        "line 2: expected 3 fields as in the header, found 2"
    );
    assert!(one_error("vm_name,target_datastore\napp-001,ds,\n").ends_with("a trailing delimiter?"));
}

#[test]
fn nameless_trailing_columns_are_ignored_while_empty() {
    let jobs = parse("vm_name;target_datastore;;\napp-001;ds;;\napp-002;ds\n").unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(
        one_error("vm_name;target_datastore;;\napp-001;ds;;oops\n"),
        "line 2: value \"oops\" in field 4, which has no column name in the header"
    );
}

#[test]
fn empty_vm_is_an_error() {
    assert_eq!(
        one_error("vm_name,vm_id,target_datastore\n,,ds\n"),
        "line 2, column vm_name: no VM: vm_name and vm_id are both empty"
    );
    assert_eq!(
        one_error("vm_id,target_datastore\n  ,ds\n"),
        "line 2, column vm_id: no VM: vm_id is empty"
    );
}

#[test]
fn vm_id_alone_is_enough_and_must_look_like_an_api_id() {
    let jobs = parse(&format!("vm_id,target_datastore\n{ID},ds\n")).unwrap();
    assert_eq!(jobs[0].vm.display(), ID);
    let error = one_error("vm_id,target_datastore\nvm-1001,ds\n");
    assert!(
        error.starts_with("line 2, column vm_id: expected VirtualMachine:vm-38:"),
        "{error}"
    );
}

#[test]
fn duplicate_vm_names_the_first_line() {
    assert_eq!(
        one_error("vm_name,target_datastore\napp-001,ds\napp-002,ds\napp-001,ds2\n"),
        "line 4, column vm_name: VM \"app-001\" is already listed on line 2"
    );
    // Names compare exactly, as vCenter does.
    assert!(parse("vm_name,target_datastore\napp-001,ds\nAPP-001,ds\n").is_ok());
}

#[test]
fn duplicate_vm_id_is_one_error_even_when_the_name_repeats_too() {
    let text = format!(
        "vm_name,vm_id,target_datastore\napp-001,{ID},ds\napp-001,{ID},ds\nother,{ID},ds\n"
    );
    assert_eq!(
        errors(&text),
        [
            format!("line 3, column vm_id: VM id {ID} is already listed on line 2"),
            format!("line 4, column vm_id: VM id {ID} is already listed on line 2"),
        ]
    );
}

#[test]
fn same_name_with_different_ids_is_two_vms() {
    let other = ID.replace("vm-1001", "vm-1002");
    let text = format!("vm_name,vm_id,target_datastore\napp-001,{ID},ds\napp-001,{other},ds\n");
    assert_eq!(parse(&text).unwrap().len(), 2);
    let text = format!("vm_name,vm_id,target_datastore\napp-001,{ID},ds\napp-001,,ds\n");
    assert_eq!(
        errors(&text),
        ["line 3, column vm_name: VM \"app-001\" is already listed on line 2"]
    );
}

#[test]
fn cell_rules_are_positioned_by_column() {
    let text = "vm_name,target_datastore,rpo,quiesce,disk_format,mpit_instances,mpit_days\n\
                app-001,ds,2,maybe,sparse,-1,x\n";
    let errors = errors(text);
    let positions: Vec<&str> = errors
        .iter()
        .map(|e| e.split(": ").next().unwrap_or_default())
        .collect();
    assert_eq!(
        positions,
        [
            "line 2, column rpo",
            "line 2, column quiesce",
            "line 2, column disk_format",
            "line 2, column mpit_instances",
            "line 2, column mpit_days",
        ],
        "{errors:#?}"
    );
}

#[test]
fn mpit_days_without_instances_in_a_row_is_an_error() {
    let error = one_error("vm_name,target_datastore,mpit_instances,mpit_days\napp-001,ds,0,3\n");
    assert!(
        error.starts_with("line 2, column mpit_days: mpit_days is 3 but mpit_instances is 0"),
        "{error}"
    );
    let error = one_error("vm_name,target_datastore,mpit_days\napp-001,ds,3\n");
    assert!(error.starts_with("line 2, column mpit_days:"), "{error}");
    // Zero days with zero instances says "off" twice: fine.
    assert!(parse("vm_name,target_datastore,mpit_instances,mpit_days\napp-001,ds,0,0\n").is_ok());
}

#[test]
fn replication_server_auto_is_none_in_any_case() {
    let jobs = parse(
        "vm_name,target_datastore,replication_server\na,ds,AUTO\nb,ds,vrs-target-01\nc,ds,\n",
    )
    .unwrap();
    let servers: Vec<_> = jobs
        .iter()
        .map(|j| j.replication_server.as_deref())
        .collect();
    assert_eq!(servers, [None, Some("vrs-target-01"), None]);
}

#[test]
fn unclosed_quote_is_reported_where_it_opens() {
    let text = "vm_name,target_datastore,notes\n\
                app-001,ds,fine\n\
                app-002,ds,\"never closed\n\
                app-003,ds,lost\n";
    assert_eq!(
        errors(text),
        [
            "line 3, column notes: a quoted field opens here and is never closed, so the rest of \
          the file was read into it; close the quote (a quote inside a quoted field is written \
          twice: \"\")"
        ]
    );
    assert_eq!(unclosed_quote("a,\"b\"\"c\",d\n", b','), None);
    assert_eq!(
        unclosed_quote("a,5\" disk,d\n", b','),
        None,
        "mid-field quote is literal"
    );
    assert_eq!(unclosed_quote("a\nb,\"c\n", b','), Some(2));
}

#[test]
fn all_errors_of_a_file_come_back_in_line_order() {
    let text = "vm_name,target_datastore,rpo,quiesce\n\
                app-001,ds,abc,yes\n\
                app-002,,60,maybe\n\
                app-003,ds,60\n\
                app-001,ds,60,no\n";
    let errors = errors(text);
    let positions: Vec<&str> = errors
        .iter()
        .map(|e| e.split(": ").next().unwrap_or_default())
        .collect();
    assert_eq!(
        positions,
        [
            "line 2, column rpo",
            "line 3, column target_datastore",
            "line 3, column quiesce",
            "line 4",
            "line 5, column vm_name",
        ],
        "{errors:#?}"
    );
}

#[test]
fn cells_are_trimmed_and_unicode_names_survive() {
    let jobs = parse("vm_name;target_datastore;change_ticket\n  Finance Server Ünïcødé 01 ; ds-gold-01 ;\tCHG0012345 \n")
        .unwrap();
    assert_eq!(
        jobs[0].vm.name.as_deref(),
        Some("Finance Server Ünïcødé 01")
    );
    assert_eq!(jobs[0].target_datastore, "ds-gold-01");
    assert_eq!(jobs[0].change_ticket.as_deref(), Some("CHG0012345"));
}

#[test]
fn mpit_on_defaults_to_one_day_and_keeps_at_most_24_copies() {
    let jobs = parse("vm_name,target_datastore,mpit_instances\napp-001,ds,6\n").unwrap();
    assert_eq!(
        (jobs[0].settings.mpit_instances, jobs[0].settings.mpit_days),
        (6, 1)
    );
    let text = "vm_name,target_datastore,mpit_instances,mpit_days\n\
                app-001,ds,6,5\n\
                app-002,ds,4,0\n\
                app-004,ds,30,\n\
                app-005,ds,x,30\n";
    let positions: Vec<String> = errors(text)
        .iter()
        .map(|e| e.split(": ").next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        positions,
        [
            "line 2, column mpit_days",
            "line 3, column mpit_days",
            "line 4, column mpit_instances",
            "line 5, column mpit_instances",
        ],
        "the unparsable instances on line 5 are not also judged against the days"
    );
}

#[test]
fn the_exported_replication_status_is_read_and_ignored() {
    let jobs = parse(
        "vm_name,target_datastore,notes,replication_status\n\
         app-001,ds,,\"already replicated (GID-1, CONFIGURED)\"\n\
         app-002,ds,owner: finance,not replicated\n",
    )
    .unwrap();
    let notes: Vec<Option<&str>> = jobs.iter().map(|j| j.notes.as_deref()).collect();
    assert_eq!(notes, [None, Some("owner: finance")]);
}

#[test]
fn a_100_kb_name_or_a_nul_byte_is_refused_at_its_line_and_column_and_not_echoed() {
    let text = format!(
        "vm_name,target_datastore\napp-001,ds\n{},ds\napp\0x,ds\n",
        "a".repeat(100_000)
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0].starts_with("line 3, column vm_name: \"aaaa")
            && errors[0]
                .ends_with("is 100000 characters long; vSphere allows at most 80 in a VM name"),
        "{errors:#?}"
    );
    assert!(
        errors[0].len() < 200,
        "the name is echoed: {} bytes",
        errors[0].len()
    );
    assert!(
        errors[1].starts_with("line 4, column vm_name: \"app\\0x\" has a control character"),
        "{errors:#?}"
    );
}

#[test]
fn a_refused_name_is_not_also_called_a_duplicate() {
    let long = "b".repeat(81);
    let errors = errors(&format!("vm_name,target_datastore\n{long},ds\n{long},ds\n"));
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors.iter().all(|e| e.contains("81 characters long")),
        "{errors:#?}"
    );
}
