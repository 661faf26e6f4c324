//! Failures grouped by cause: a failure reason in the server's words is reduced to its shape
//! (ids, numbers and quoted VM names taken out) so that forty "Insufficient disk space on
//! datastore 'ds-full-01': 12.0 GiB free, 40.5 GiB required" with forty different numbers make
//! one group, and each group gets the next step an operator would take.

use std::collections::HashMap;

use serde::Serialize;

/// What kind of failure a cause is; decides the suggested next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseKind {
    /// The target datastore has no room for the replica.
    DatastoreFull,
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
    pub fn next_step(self) -> &'static str {
        match self {
            CauseKind::DatastoreFull => {
                "Free space on the datastore, or pick another target datastore for these VMs \
                 (import them again with it), then `vrbulk retry --failed`."
            }
            CauseKind::NotFound => {
                "Check the names in the input: `vrbulk inventory export` lists the source VMs as \
                 the API knows them; name an ambiguous VM by its vm_id. Then import the corrected \
                 rows."
            }
            CauseKind::StoragePolicy => {
                "Pick another storage policy (or none, for the datastore's default) for these \
                 VMs and import the corrected rows."
            }
            CauseKind::BadRequest => {
                "Fix the row: the server's message names what it refused. Import the corrected \
                 rows as a new batch."
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
    ]) {
        CauseKind::DatastoreFull
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

/// A reason reduced to its shape: words holding a digit (ids, sizes, counts, task and
/// replication ids) become `…`, and so do names in backticks (how vrbulk quotes VM names).
/// Names in single quotes (how the server quotes datastores and policies) stay: they are the
/// cause. HTTP status codes stay too, since 400 and 503 call for different steps.
pub fn normalize(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    let mut rest = reason.trim();
    let mut after_http = false;
    while let Some(c) = rest.chars().next() {
        match c {
            '`' => {
                let end = rest[1..].find('`').map_or(rest.len(), |i| i + 2);
                out.push_str("`…`");
                rest = &rest[end..];
                after_http = false;
            }
            '\'' => {
                let end = rest[1..].find('\'').map_or(rest.len(), |i| i + 2);
                out.push_str(&rest[..end]);
                rest = &rest[end..];
                after_http = false;
            }
            c if c.is_whitespace() => {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
                rest = &rest[c.len_utf8()..];
            }
            _ => {
                let end = rest
                    .find(|c: char| c.is_whitespace() || c == '`' || c == '\'')
                    .unwrap_or(rest.len());
                let word = &rest[..end];
                rest = &rest[end..];
                let keep_status = after_http && word.len() <= 4;
                if word.chars().any(|c| c.is_ascii_digit()) && !keep_status {
                    // Keep the punctuation around the word so "(…)" and "…:" still read.
                    let core = word.trim_start_matches(['(', '[', '{', '"']);
                    let lead = &word[..word.len() - core.len()];
                    let bare = core.trim_end_matches([')', ']', '}', '"', ',', ':', ';', '.']);
                    let trail = &core[bare.len()..];
                    out.push_str(lead);
                    out.push('…');
                    out.push_str(trail);
                } else {
                    out.push_str(word);
                }
                after_http = word.eq_ignore_ascii_case("http");
            }
        }
    }
    // A list of ids ("vm-1, vm-2" or "a b") reads as one "…".
    let mut out = out.trim_end().to_string();
    for pair in ["…, …", "… …"] {
        while out.contains(pair) {
            out = out.replace(pair, "…");
        }
    }
    out
}

/// One failed job, as the grouping sees it.
#[derive(Debug, Clone)]
pub(crate) struct Failed<'a> {
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

/// Groups failures by their normalized reason: the largest group first, then by cause; VMs in
/// the order given.
pub(crate) fn group(failed: &[Failed<'_>]) -> Vec<Group> {
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

    fn failed<'a>(vm: &'a str, reason: &'a str, http_status: Option<u16>) -> Failed<'a> {
        Failed {
            vm,
            reason,
            http_status,
        }
    }

    #[test]
    fn numbers_and_ids_are_taken_out_but_datastore_names_stay() {
        assert_eq!(
            normalize("Insufficient disk space on datastore 'ds-full-01': 12.0 GiB free, 40.5 GiB required"),
            "Insufficient disk space on datastore 'ds-full-01': … GiB free, … GiB required"
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
}
