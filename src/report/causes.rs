//! Failures grouped by cause: a failure reason in the server's words is reduced to its shape
//! ([`normalize`]: ids, sizes with their units and quoted VM names taken out) so that forty
//! "Insufficient disk space on datastore 'dr-vmfs-full': … VM 'app-0001' needs 200.1 GB" with
//! forty different VMs and sizes make one group, and each group gets the next step an operator
//! would take.

use std::collections::HashMap;

use serde::Serialize;

use crate::domain::Operation;

/// What kind of failure a cause is; decides the suggested next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseKind {
    /// The target datastore has no room for the replica.
    DatastoreFull,
    /// The target VR server or the appliance holds all the replications it takes.
    ServerFull,
    /// A VM, datastore, policy or VR server named in the input does not exist (or is ambiguous).
    NotFound,
    /// The storage policy does not fit the datastore or the VM.
    StoragePolicy,
    /// The server refused the spec (HTTP 400): the input row is wrong.
    BadRequest,
    /// Network, throttling, server errors, a dead worker: worth trying again as it is.
    Transient,
    Other,
}

impl CauseKind {
    /// The next step for failed jobs of a batch of `operation`: a configure's input rows are
    /// corrected and imported again; a day-2 operation has no input rows, it is retried or
    /// asked again with other settings.
    pub fn next_step_of(self, operation: Operation) -> &'static str {
        match (operation, self) {
            (Operation::Configure, _) | (_, CauseKind::Transient) => self.next_step(),
            (
                Operation::Reconfigure,
                CauseKind::NotFound | CauseKind::StoragePolicy | CauseKind::BadRequest,
            ) => {
                "Correct the settings the appliance refused (a storage policy or VR server the \
                 target site lacks, a value out of range), then reconfigure these VMs again with \
                 the corrected flags."
            }
            _ => {
                "Inspect the reason (and `vrbulk status`), fix on the appliance what it names, \
                 then `vrbulk retry --failed` and `vrbulk run` on this batch."
            }
        }
    }

    /// The next step for failed jobs of a configure batch.
    pub fn next_step(self) -> &'static str {
        match self {
            CauseKind::DatastoreFull => {
                "Free space on the datastore and `vrbulk retry --failed`, or send these VMs to \
                 another one: `vrbulk retry --failed --vm NAME --target-datastore OTHER`; then \
                 `vrbulk run`."
            }
            CauseKind::ServerFull => {
                "Add a VR server on the target site (or unconfigure replications no longer \
                 needed), then `vrbulk retry --failed` (with `--replication-server auto` to let \
                 vrbulk pick the server with room) and `vrbulk run`."
            }
            CauseKind::NotFound => {
                "Check the names: `vrbulk inventory export` lists the source VMs as the API \
                 knows them, and the reason lists the names the target site has. A datastore, \
                 policy or VR server: `vrbulk retry --failed --target-datastore …` (or \
                 `--storage-policy`, `--replication-server`); a VM: import the corrected rows \
                 (an ambiguous one by its vm_id)."
            }
            CauseKind::StoragePolicy => {
                "Pick another storage policy for these VMs: `vrbulk retry --failed --vm NAME \
                 --storage-policy OTHER`, then `vrbulk run`."
            }
            CauseKind::BadRequest => {
                "The server's message names what it refused: correct that setting with \
                 `vrbulk retry --failed --vm NAME --SETTING VALUE`, then `vrbulk run`."
            }
            CauseKind::Transient => {
                "Nothing to fix in the input: when the appliance is healthy again, \
                 `vrbulk retry --failed` then `vrbulk run`."
            }
            CauseKind::Other => {
                "Inspect the reason (and `vrbulk status`), fix what it names, then \
                 `vrbulk retry --failed`."
            }
        }
    }
}

/// The kind of a failure, from its reason and the HTTP status it came with.
pub fn classify(reason: &str, http_status: Option<u16>) -> CauseKind {
    let r = reason.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| r.contains(w));
    if has(&[
        "insufficient disk space",
        "not enough space",
        "no space left",
        "out of space",
        "datastore is full",
    ]) || (has(&["datastore "]) && has(&["; this vm needs"]))
    {
        CauseKind::DatastoreFull
    } else if has(&[
        "maximum number of replications",
        "replications, the most",
        "the most it takes",
        "the most one takes",
    ]) {
        CauseKind::ServerFull
    } else if has(&[
        "not found",
        "are named",
        "no such",
        "unknown datastore",
        "does not exist",
    ]) {
        CauseKind::NotFound
    } else if has(&["storage policy", "storage-policy", "policy "]) && !has(&["gave up after"]) {
        CauseKind::StoragePolicy
    } else if has(&[
        "gave up after",
        "lease expired",
        "timed out",
        "timeout",
        "no answer within",
        "cannot reach",
        "too many requests",
    ]) || matches!(http_status, Some(429 | 500 | 502 | 503 | 504))
    {
        CauseKind::Transient
    } else if http_status == Some(400) || has(&["refused the spec", "http 400"]) {
        CauseKind::BadRequest
    } else {
        CauseKind::Other
    }
}

/// A reason reduced to its shape, so that failures of one cause make one group whatever VM,
/// id or size each names:
///
/// - a number with its unit (`200.1 GB`, `12.0 GiB`, `980 MiB`, `35 %`, `30 s`) becomes `…`,
///   unit and all, since one datastore short by MiB or by GiB is one cause;
/// - any other word holding a digit (ids: `vm-38`, `GID-…`, `HTask:…`, `task-4711`, counts)
///   becomes `…`;
/// - a name in backticks (how vrbulk quotes VM names) becomes `` `…` ``;
/// - a name in single or double quotes after a word that names a VM, a replication or an id
///   (`VM 'app-0001'`, `virtual machine '…'`, `replication 'db-01'`, `with id '…'`) becomes
///   `'…'`; other quoted names (datastores, policies, servers, hosts) stay: they are the cause;
/// - HTTP status codes stay too, since 400 and 503 call for different steps;
/// - a list of ids (`vm-1, vm-2`) reads as one `…`, and a full stop at the end goes.
///
/// An apostrophe inside a word (`VM's`) is not a quote.
pub fn normalize(reason: &str) -> String {
    let mut shape = Shape::default();
    let mut rest = reason.trim();
    while !rest.is_empty() {
        rest = shape.take(rest);
    }
    shape.finish()
}

/// A reason's shape as [`normalize`] writes it, token by token.
#[derive(Default)]
struct Shape {
    out: String,
    /// The last bare word, lower-cased without punctuation: what a quoted name is the name of.
    previous: String,
    /// The last word was `HTTP`: a status code follows.
    after_http: bool,
}

impl Shape {
    /// Writes the token `rest` starts with; what is left after it.
    fn take<'a>(&mut self, rest: &'a str) -> &'a str {
        let Some(c) = rest.chars().next() else {
            return rest;
        };
        if c.is_whitespace() {
            if !self.out.ends_with(' ') {
                self.out.push(' ');
            }
            return &rest[c.len_utf8()..];
        }
        if let Some(len) = quoted_len(rest) {
            if c == '`' || NAMES_A_SUBJECT.contains(&self.previous.as_str()) {
                self.out.extend([c, '…', c]);
            } else {
                self.out.push_str(&rest[..len]);
            }
            self.forget();
            return &rest[len..];
        }
        // An opening bracket stands alone, so that a quoted name may follow it.
        if matches!(c, '(' | '[' | '{') {
            self.out.push(c);
            return &rest[1..];
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, rest) = rest.split_at(end);
        if let Some(unit_end) = unit_after(word, rest) {
            // The unit's own trailing punctuation stays, so `… GiB.` reads `….`.
            let unit = rest[..unit_end].trim_start();
            self.out.push('…');
            self.out
                .push_str(&unit[unit.trim_end_matches(TRAILING).len()..]);
            self.forget();
            return &rest[unit_end..];
        }
        self.word(word);
        rest
    }

    /// A bare word: `…` when it holds a digit (an id, a count), unless it is an HTTP status.
    fn word(&mut self, word: &str) {
        let keep_status = self.after_http && word.len() <= 4;
        if word.chars().any(|c| c.is_ascii_digit()) && !keep_status {
            // Keep the punctuation around the word so "(…)" and "…:" still read.
            let core = word.trim_start_matches(['(', '[', '{', '"']);
            let lead = &word[..word.len() - core.len()];
            let bare = core.trim_end_matches(TRAILING);
            self.out.push_str(lead);
            self.out.push('…');
            self.out.push_str(&core[bare.len()..]);
        } else {
            self.out.push_str(word);
        }
        self.after_http = word.eq_ignore_ascii_case("http");
        self.previous = word
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_ascii_lowercase();
    }

    fn forget(&mut self) {
        self.previous.clear();
        self.after_http = false;
    }

    /// A list of ids ("vm-1, vm-2" or "a b") reads as one "…"; a full stop at the end or not
    /// is one cause.
    fn finish(self) -> String {
        let mut out = self.out.trim_end().trim_end_matches('.').to_string();
        for pair in ["…, …", "… …"] {
            while out.contains(pair) {
                out = out.replace(pair, "…");
            }
        }
        out
    }
}

/// Words after which a quoted name is a VM's, a replication's or an id, not the cause.
const NAMES_A_SUBJECT: [&str; 9] = [
    "vm",
    "vms",
    "machine",
    "machines",
    "virtualmachine",
    "replication",
    "replications",
    "id",
    "task",
];

/// Units a size, a share or a length of time is given in.
const UNITS: [&str; 26] = [
    "b", "byte", "bytes", "kb", "kib", "mb", "mib", "gb", "gib", "tb", "tib", "pb", "pib", "%",
    "ms", "s", "sec", "secs", "second", "seconds", "min", "mins", "minute", "minutes", "h",
    "hours",
];

/// Punctuation that ends a word without being part of it.
const TRAILING: [char; 8] = [')', ']', '}', '"', ',', ':', ';', '.'];

/// The length of the quoted name `rest` starts with, both quotes included: a quote closes at
/// the next same quote that no letter or digit follows, so `'it's'` holds `it's`. `None` when
/// `rest` does not start with a quote or the quote never closes (a stray apostrophe).
fn quoted_len(rest: &str) -> Option<usize> {
    let quote = rest
        .chars()
        .next()
        .filter(|c| matches!(c, '\'' | '"' | '`'))?;
    let body = &rest[1..];
    body.match_indices(quote)
        .map(|(i, _)| i)
        .find(|&i| {
            !body[i + 1..]
                .chars()
                .next()
                .is_some_and(char::is_alphanumeric)
        })
        .map(|i| i + 2)
}

/// When `word` is a number and the next word of `rest` a unit (`200.1` then `GB,`), the byte
/// offset in `rest` where that unit ends.
fn unit_after(word: &str, rest: &str) -> Option<usize> {
    let number = word.starts_with(|c: char| c.is_ascii_digit())
        && word
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ',');
    if !number {
        return None;
    }
    let start = rest.len() - rest.trim_start().len();
    let token_len = rest[start..]
        .find(char::is_whitespace)
        .unwrap_or(rest.len() - start);
    let unit = rest[start..start + token_len].trim_end_matches(TRAILING);
    UNITS
        .contains(&unit.to_ascii_lowercase().as_str())
        .then_some(start + token_len)
}

/// One job that ended with a reason (failed, or skipped), as the grouping sees it.
#[derive(Debug, Clone)]
pub(crate) struct Ended<'a> {
    pub vm: &'a str,
    pub reason: &'a str,
    pub http_status: Option<u16>,
}

/// A group of failures with one cause.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Group {
    pub kind: CauseKind,
    pub cause: String,
    pub example: String,
    pub vms: Vec<String>,
}

/// Groups jobs by their normalized reason: the largest group first, then by cause; VMs in
/// the order given.
pub(crate) fn group(failed: &[Ended<'_>]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<(CauseKind, String), usize> = HashMap::new();
    for f in failed {
        let kind = classify(f.reason, f.http_status);
        let cause = normalize(f.reason);
        let at = *index.entry((kind, cause.clone())).or_insert_with(|| {
            groups.push(Group {
                kind,
                cause,
                example: f.reason.to_string(),
                vms: Vec::new(),
            });
            groups.len() - 1
        });
        groups[at].vms.push(f.vm.to_string());
    }
    groups.sort_by(|a, b| {
        b.vms
            .len()
            .cmp(&a.vms.len())
            .then_with(|| a.cause.cmp(&b.cause))
    });
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed<'a>(vm: &'a str, reason: &'a str, http_status: Option<u16>) -> Ended<'a> {
        Ended {
            vm,
            reason,
            http_status,
        }
    }

    #[test]
    fn numbers_and_ids_are_taken_out_but_datastore_names_stay() {
        assert_eq!(
            normalize("Insufficient disk space on datastore 'ds-full-01': 12.0 GiB free, 40.5 GiB required"),
            "Insufficient disk space on datastore 'ds-full-01': … free, … required"
        );
        // vrbulk's own capacity checks quote the name as the appliance does.
        assert_eq!(
            normalize("datastore 'ds-full-01' has 1.2 GiB free; this VM needs 230.0 GiB"),
            "datastore 'ds-full-01' has … free; this VM needs …"
        );
        assert_eq!(
            normalize("VM `app-017` not found on vc-site-a.corp.local"),
            "VM `…` not found on vc-site-a.corp.local"
        );
        assert_eq!(
            normalize("task task-4711 was cancelled on the server"),
            "task … was cancelled on the server"
        );
        assert_eq!(
            normalize("gave up after 5 attempts; last error: GET /tasks/task-9: HTTP 503: busy"),
            "gave up after … attempts; last error: GET …: HTTP 503: busy"
        );
        assert_eq!(
            normalize("2 VMs are named `web` on vc-a (vm-1, vm-2): name one by vm_id"),
            "… VMs are named `…` on vc-a (…): name one by vm_id"
        );
    }

    #[test]
    fn failures_of_one_shape_make_one_group_with_its_next_step() {
        let groups = group(&[
            failed("db-1", "Insufficient disk space on datastore 'ds-full-01': 1.0 GiB free, 9.0 GiB required", None),
            failed("ghost", "VM `ghost` not found on vc-a", None),
            failed("db-2", "Insufficient disk space on datastore 'ds-full-01': 1.0 GiB free, 12.5 GiB required", None),
            failed("db-3", "Insufficient disk space on datastore 'ds-full-02': 1.0 GiB free, 12.5 GiB required", None),
            failed("bad", "the server refused the spec: rpo out of range", Some(400)),
            failed("flaky", "gave up after 3 attempts; last error: HTTP 503", Some(503)),
            failed("odd", "something else entirely", None),
        ]);
        let summary: Vec<(CauseKind, usize)> =
            groups.iter().map(|g| (g.kind, g.vms.len())).collect();
        assert_eq!(
            summary,
            [
                (CauseKind::DatastoreFull, 2),
                (CauseKind::DatastoreFull, 1),
                (CauseKind::NotFound, 1),
                (CauseKind::Transient, 1),
                (CauseKind::Other, 1),
                (CauseKind::BadRequest, 1),
            ]
        );
        assert_eq!(groups[0].vms, ["db-1", "db-2"]);
        assert!(
            groups[0].example.contains("9.0 GiB"),
            "the first reason is the example"
        );
        assert!(CauseKind::DatastoreFull
            .next_step()
            .contains("retry --failed"));
        assert!(CauseKind::NotFound.next_step().contains("inventory export"));
    }

    #[test]
    fn kinds_follow_the_words_and_the_status() {
        // The capacity checks' own words, and the appliance's.
        for (reason, kind) in [
            (
                "datastore 'ds-full-01' has 1.2 GiB free; this VM needs 230.0 GiB",
                CauseKind::DatastoreFull,
            ),
            (
                "every connected VR server of the target site already holds 200 \
                 replications, the most one takes",
                CauseKind::ServerFull,
            ),
            (
                "The vSphere Replication server 'vrs-target-01' has reached the maximum \
                 number of replications (200)",
                CauseKind::ServerFull,
            ),
            (
                "every connected VR server of the target site holds 200 replications counting \
                 the 2 VMs placed before this one, the most one takes (VR 8.8's documented \
                 figure)",
                CauseKind::ServerFull,
            ),
            (
                "VR server 'vrs-target-01' on vc-b holds 198 replications and 2 VMs placed \
                 before this one, 200 in all, the most it takes (set in [limits])",
                CauseKind::ServerFull,
            ),
        ] {
            assert_eq!(classify(reason, None), kind, "{reason}");
        }
        assert_eq!(
            classify("HTTP 400: bad rpo", Some(400)),
            CauseKind::BadRequest
        );
        assert_eq!(classify("x", Some(503)), CauseKind::Transient);
        assert_eq!(
            classify("lease expired: the worker holding this job stopped", None),
            CauseKind::Transient
        );
        assert_eq!(
            classify("storage policy `VR Platinum` not found on vc-b", None),
            CauseKind::NotFound
        );
        assert_eq!(
            classify(
                "The storage policy is not compatible with the datastore",
                None
            ),
            CauseKind::StoragePolicy
        );
        assert_eq!(classify("who knows", None), CauseKind::Other);
    }

    #[test]
    fn vm_names_in_quotes_ids_and_sizes_with_units_do_not_split_a_cause() {
        // Issue 13: four of these made four groups of one.
        let reasons = [
            ("app-0001", "Insufficient disk space on datastore 'dr-vmfs-full' (12.4 GB free): VM 'app-0001' (vm-1001) needs 200.1 GB for its replica disks"),
            ("app-0002", "Insufficient disk space on datastore 'dr-vmfs-full' (12.4 GB free): VM 'app-0002' (vm-1002) needs 80.0 GB for its replica disks"),
            ("db-0003", "Insufficient disk space on datastore 'dr-vmfs-full' (9.8 GB free): VM 'db-0003' (vm-1003) needs 1.2 TB for its replica disks"),
            ("web", "Insufficient disk space on datastore 'dr-vmfs-full' (980.5 MB free): VM 'web' (vm-17) needs 40 GB for its replica disks."),
        ];
        let failed: Vec<Ended<'_>> = reasons
            .iter()
            .map(|(vm, reason)| failed(vm, reason, None))
            .collect();
        let groups = group(&failed);
        assert_eq!(groups.len(), 1, "{groups:#?}");
        assert_eq!(groups[0].kind, CauseKind::DatastoreFull);
        assert_eq!(
            groups[0].cause,
            "Insufficient disk space on datastore 'dr-vmfs-full' (… free): VM '…' (…) needs … for \
             its replica disks"
        );
        assert_eq!(groups[0].vms, ["app-0001", "app-0002", "db-0003", "web"]);
        assert_eq!(
            groups[0].example, reasons[0].1,
            "the server's words stay the example"
        );
    }

    #[test]
    fn another_datastore_or_host_is_another_cause() {
        let one = "Insufficient disk space on datastore 'ds-a': 1.0 GiB free, 9.0 GiB required";
        let other = "Insufficient disk space on datastore 'ds-b': 1.0 GiB free, 9.0 GiB required";
        assert_ne!(normalize(one), normalize(other));
        let host = |h: &str| {
            normalize(&format!(
                "No connection to VR Server for virtual machine 'app-{h}' on host \
                 'esx-0{h}.corp.local' in cluster 'Cluster-A' in 'Datacenter-A': Unknown"
            ))
        };
        assert_ne!(host("1"), host("2"));
        assert_eq!(
            host("1"),
            "No connection to VR Server for virtual machine '…' on host 'esx-01.corp.local' in \
             cluster 'Cluster-A' in 'Datacenter-A': Unknown"
        );
    }

    #[test]
    fn every_shape_the_simulator_and_the_runner_write_reduces_to_its_cause() {
        let cases = [
            (
                "Insufficient disk space on datastore 'ds-full-01': 1.2 GiB free, 980.0 MiB required",
                "Insufficient disk space on datastore 'ds-full-01': … free, … required",
            ),
            (
                "Cannot access datastore 'ds-gold-01' on the target site for virtual machine 'app-003' (The vSphere Replication server 'vrs-target-01' cannot reach the datastore.)",
                "Cannot access datastore 'ds-gold-01' on the target site for virtual machine '…' (The vSphere Replication server 'vrs-target-01' cannot reach the datastore.)",
            ),
            (
                "the appliance refused the pause now: Cannot pause replication 'app-001' (GID-4c8a7f1e-3b2d-4e5f-9a8b-7c6d5e4f3a2b): the operation is not allowed in the current state (PAUSED): the replication is already paused.",
                "the appliance refused the pause now: Cannot pause replication '…' (…): the operation is not allowed in the current state (PAUSED): the replication is already paused",
            ),
            (
                "the appliance refused the sync now: Cannot sync replication 'db-02' (GID-77): the operation is not allowed in the current state (INITIAL_FULL_SYNC): the initial full sync is in progress (123456 of 4567890 bytes copied).",
                "the appliance refused the sync now: Cannot sync replication '…' (…): the operation is not allowed in the current state (INITIAL_FULL_SYNC): the initial full sync is in progress (… of … copied)",
            ),
            (
                "Cannot unconfigure replication 'web-9' (GID-9): a reconfigure operation is in progress (task HTask:0f9e8d7c-1111-2222-3333-444455556666).",
                "Cannot unconfigure replication '…' (…): a reconfigure operation is in progress (task …)",
            ),
            (
                "the VM's replication is now GID-5, not GID-2 that batch 1 configured: left alone",
                "the VM's replication is now …, not … that batch … configured: left alone",
            ),
            (
                "replication_id: no replication with id 'GID-42'",
                "replication_id: no replication with id '…'",
            ),
            (
                "task_id: no task with id 'HTask:abc-1'",
                "task_id: no task with id '…'",
            ),
            (
                "no answer within 30 s; lease expired after 2 min",
                "no answer within …; lease expired after …",
            ),
        ];
        for (reason, cause) in cases {
            assert_eq!(normalize(reason), cause, "{reason}");
        }
    }

    #[test]
    fn a_stray_apostrophe_does_not_swallow_the_rest() {
        assert_eq!(
            normalize("the VM's disk vm-1-disk-2 is gone; it's 3 GiB"),
            "the VM's disk … is gone; it's …"
        );
    }
}
