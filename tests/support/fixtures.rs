//! Jobs, batches, queues and settings files the integration tests build again and again.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use vrbulk::domain::{JobSpec, VmRef};
use vrbulk::queue::{InputKind, NewBatch, Queue};
use vrbulk::sim::Simulator;

/// A job for VM `name` onto `ds-gold-01`, with default settings and nothing else.
pub fn spec(name: &str) -> JobSpec {
    JobSpec {
        line: None,
        vm: VmRef {
            name: Some(name.into()),
            id: None,
        },
        pairing: None,
        target_datastore: "ds-gold-01".into(),
        storage_policy: None,
        replication_server: None,
        settings: Default::default(),
        change_ticket: None,
        notes: None,
    }
}

/// `n` jobs as [`spec`] makes them, for VMs `vm-0000`, `vm-0001`, …
pub fn specs(n: usize) -> Vec<JobSpec> {
    (0..n).map(|i| spec(&format!("vm-{i:04}"))).collect()
}

/// Batch `name`, imported by `ops` on `jump01` from a CSV file, three attempts per job.
pub fn new_batch(name: &str) -> NewBatch {
    NewBatch {
        name: name.into(),
        operator: "ops".into(),
        host: "jump01".into(),
        input_kind: InputKind::Csv,
        input_path: None,
        input_sha256: None,
        settings: serde_json::json!({}),
        max_attempts: 3,
    }
}

/// Imports `specs` as `batch` into the queue at `db`; the new batch's id.
pub fn import(db: &Path, batch: &NewBatch, specs: &[JobSpec]) -> i64 {
    Queue::open(db).unwrap().create_batch(batch, specs).unwrap()
}

/// The queue at `path` with a clock the test moves by hand, standing at `start` (Unix ms).
pub fn queue_at(path: &Path, start: i64) -> (Queue, Arc<AtomicI64>) {
    let now = Arc::new(AtomicI64::new(start));
    let clock = now.clone();
    let q = Queue::open(path)
        .unwrap()
        .with_clock(Arc::new(move || clock.load(Ordering::SeqCst)));
    (q, now)
}

/// `dir/vrbulk.toml`: the simulator as source, trusted by its thumbprint, with its rate
/// limiter's quotas and window, then `extra`.
pub fn config_for(sim: &Simulator, dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("vrbulk.toml");
    let limits = sim.limits();
    fs::write(
        &path,
        format!(
            "[source]\nurl = \"{}\"\nuser = \"administrator@vsphere.local\"\nthumbprint = \"{}\"\n\
             requests_per_minute = {}\nrequests_per_minute_per_ip = {}\nrate_window_seconds = {}\n{extra}",
            sim.url(),
            sim.thumbprint().unwrap(),
            limits.per_session,
            limits.per_ip,
            limits.window.as_secs_f64()
        ),
    )
    .unwrap();
    path
}
