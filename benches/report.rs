//! Measured run of the report (issue 5): a 10,000-job batch, built through the library as runs
//! leave it (checkpoints with disks, every final state, API usage, runs, discovery), reported in
//! every format. Prints, per format, the time to load the model plus render it, the output size,
//! and the peak resident memory of that step alone (VmHWM, reset through
//! `/proc/self/clear_refs` before each). Run with `cargo bench --bench report`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use vrbulk::domain::ReplicationSettings;
use vrbulk::domain::{JobSpec, VmRef};
use vrbulk::queue::{Checkpoint, InputKind, NewBatch, Queue, Step};
use vrbulk::report::{Format, Report};
use vrbulk::vr::model::VmDisk;
use vrbulk::vr::OpUsage;

const JOBS: usize = 10_000;
const TARGET: Duration = Duration::from_secs(1);

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let (queue, batch) = build(&dir.path().join("bench.db"));
    println!(
        "vrbulk report benchmark: {JOBS} jobs (batch built in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    println!(
        "peak RSS after building the batch: {}",
        hwm_kib().map_or("?".into(), kib)
    );

    let started = Instant::now();
    let report = Report::load(&queue, batch, queue.now()).expect("report loads");
    println!(
        "load alone: {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    drop(report);

    println!(
        "\n{:<6} {:>12} {:>12} {:>12} {:>16}",
        "format", "load ms", "render ms", "size", "peak RSS (step)"
    );
    let mut slowest = Duration::ZERO;
    for format in Format::ALL {
        let reset = reset_hwm();
        let t = Instant::now();
        let report = Report::load(&queue, batch, queue.now()).expect("report loads");
        let loaded = t.elapsed();
        let text = report.render(format).expect("report renders");
        let total = t.elapsed();
        let peak = if reset {
            hwm_kib().map_or("?".into(), kib)
        } else {
            format!("{} (process)", hwm_kib().map_or("?".into(), kib))
        };
        println!(
            "{:<6} {:>12.1} {:>12.1} {:>12} {:>16}",
            format.as_str(),
            loaded.as_secs_f64() * 1e3,
            (total - loaded).as_secs_f64() * 1e3,
            kib(text.len() as u64 / 1024),
            peak
        );
        slowest = slowest.max(total);
        drop(text);
    }
    println!(
        "\nslowest format: {:.1} ms (load + render); target under {} ms: {}",
        slowest.as_secs_f64() * 1e3,
        TARGET.as_millis(),
        if slowest < TARGET { "met" } else { "MISSED" }
    );
}

/// A batch as runs leave it: 85 % succeeded with three disks each, failures of a few causes,
/// skips, cancels, and the runs' records.
fn build(path: &std::path::Path) -> (Queue, i64) {
    let mut queue = Queue::open(path).expect("queue opens");
    let specs: Vec<JobSpec> = (0..JOBS)
        .map(|i| JobSpec {
            line: Some(i as u64 + 2),
            vm: VmRef {
                name: Some(format!("app-{i:05}")),
                id: None,
            },
            pairing: None,
            target_datastore: ["ds-gold-01", "ds-silver-01", "ds-full-01"][i % 3].into(),
            storage_policy: (i % 2 == 0).then(|| "VR Gold".to_string()),
            replication_server: None,
            settings: ReplicationSettings {
                rpo: [15, 30, 60, 240][i % 4],
                ..ReplicationSettings::default()
            },
            change_ticket: Some(format!("CHG{:04}", i % 5)),
            notes: (i % 10 == 0).then(|| "owner: team | app".to_string()),
        })
        .collect();
    let batch = queue
        .create_batch(
            &NewBatch {
                name: "bench".into(),
                operator: "bench".into(),
                host: "bench".into(),
                input_kind: InputKind::Csv,
                input_path: Some("bench.csv".into()),
                input_sha256: Some("ab".repeat(32)),
                settings: json!({"rpo": 60}),
                max_attempts: 5,
            },
            &specs,
        )
        .expect("batch is created");
    queue
        .start_run("bench-run", batch, "bench:1:bench-run", "run", None)
        .expect("run starts");
    queue
        .record_discovery(
            batch,
            "pairing-1",
            &json!({"pairing_id": "pairing-1", "local_vc": "vc-a", "remote_vc": "vc-b"}),
        )
        .expect("discovery recorded");
    let mut n = 0usize;
    loop {
        let claimed = queue
            .claim(
                Some(batch),
                200,
                "bench:1:bench-run",
                Duration::from_secs(600),
            )
            .expect("claim");
        if claimed.is_empty() {
            break;
        }
        for job in claimed {
            let lease = job.lease().expect("a claimed job has a lease");
            let vm = format!("VirtualMachine:vm-{}:bench", job.id);
            let disks: Vec<VmDisk> = serde_json::from_value(json!([
                {"vm_id": vm, "is_vm_home": true},
                {"vm_id": vm, "device_key": 2000, "label": "Hard disk 1", "capacity": 41_943_040, "supported_for_replication": true},
                {"vm_id": vm, "device_key": 2001, "label": "Hard disk 2", "capacity": 10_485_760, "supported_for_replication": n % 20 != 0},
            ]))
            .expect("disks decode");
            let result = match n % 20 {
                0..=16 => {
                    let c = Checkpoint {
                        vm_id: Some(vm.clone()),
                        disks: Some(disks),
                        task_id: Some(format!("HmsTask-{n}")),
                        ..Checkpoint::default()
                    };
                    // Each step is saved in turn, as the runner does (the queue refuses a skip).
                    [Step::ResolveTarget, Step::Submit, Step::AwaitTask]
                        .into_iter()
                        .try_for_each(|step| queue.checkpoint(&lease, step, &c))
                        .and_then(|_| queue.succeed(&lease, Some(&format!("GID-{n}")), "configured"))
                }
                17 => queue.fail(
                    &lease,
                    &format!(
                        "Insufficient disk space on datastore 'ds-full-01': 1.0 GiB free, {}.0 GiB required",
                        40 + n % 7
                    ),
                    None,
                ),
                18 => queue.fail(&lease, &format!("VM `app-{n:05}` not found on vc-a"), None),
                _ => queue.skip(&lease, "already replicated: GID-old (OK)", Some("GID-old")),
            };
            result.expect("job completes");
            n += 1;
        }
    }
    let usage: BTreeMap<String, OpUsage> = [
        ("configureReplication", 200),
        ("getVms", 200),
        ("getTasks", 900),
    ]
    .into_iter()
    .map(|(op, calls)| {
        (
            op.to_string(),
            OpUsage {
                calls,
                ..OpUsage::default()
            },
        )
    })
    .collect();
    queue.add_api_usage(batch, &usage).expect("usage recorded");
    queue
        .finish_run("bench-run", "done", 0)
        .expect("run finishes");
    (queue, batch)
}

/// Resets the peak resident set size (Linux: writing 5 to clear_refs), so VmHWM measures the
/// next step alone. Returns false where that is not possible.
fn reset_hwm() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn kib(n: u64) -> String {
    if n >= 10 * 1024 {
        format!("{:.1} MiB", n as f64 / 1024.0)
    } else {
        format!("{n} KiB")
    }
}
