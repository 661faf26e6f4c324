//! Measured run of the queue's hot paths (issue 3): importing a 10,000-row CSV (parse, validate,
//! one transaction of inserts) and claiming + completing 10,000 jobs. Prints rows per second and
//! the process's peak resident memory; run with `cargo bench --bench queue`.

use std::time::{Duration, Instant};

use vrbulk::input::{parse_csv, Defaults};
use vrbulk::queue::{InputKind, NewBatch, Queue};

const ROWS: usize = 10_000;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let csv = big_csv(ROWS);
    println!(
        "vrbulk queue benchmark: {ROWS} rows, CSV of {} KiB",
        csv.len() / 1024
    );
    println!("peak RSS before: {}", peak_rss());

    let started = Instant::now();
    let jobs = parse_csv(&csv, &Defaults::default()).expect("the generated CSV is valid");
    let parsed = started.elapsed();
    let mut queue = Queue::open(&dir.path().join("bench.db")).expect("queue opens");
    let new_batch = NewBatch {
        name: "bench".into(),
        operator: "bench".into(),
        host: "bench".into(),
        input_kind: InputKind::Csv,
        input_path: None,
        input_sha256: None,
        settings: serde_json::json!({}),
        max_attempts: 5,
    };
    let mut batch = queue
        .create_batch(&new_batch, &jobs)
        .expect("batch is created");
    let imported = started.elapsed();
    report("import (parse + validate + insert)", imported, ROWS);
    println!(
        "    of which parse + validate: {:.1} ms",
        parsed.as_secs_f64() * 1e3
    );
    println!("peak RSS after import: {}", peak_rss());

    for claim_size in [1usize, 50] {
        let started = Instant::now();
        let mut done = 0;
        loop {
            let claimed = queue
                .claim(Some(batch), claim_size, "bench", Duration::from_secs(60))
                .expect("claim");
            if claimed.is_empty() {
                break;
            }
            for job in &claimed {
                let lease = job.lease().expect("a claimed job has a lease");
                queue
                    .succeed(&lease, Some("GID-bench"), "done")
                    .expect("complete");
                done += 1;
            }
        }
        report(
            &format!("claim ({claim_size} at a time) + complete"),
            started.elapsed(),
            done,
        );
        assert_eq!(done, ROWS, "every job was claimed and completed once");
        // The next round claims the same VMs again, from a batch of their own (a finished job
        // is never reopened).
        batch = queue
            .create_batch(&new_batch, &jobs)
            .expect("the next round's batch is created");
    }
    println!("peak RSS at the end: {}", peak_rss());
}

fn report(what: &str, took: Duration, rows: usize) {
    println!(
        "{what}: {rows} rows in {:.1} ms = {:.0} rows/s",
        took.as_secs_f64() * 1e3,
        rows as f64 / took.as_secs_f64()
    );
}

fn big_csv(rows: usize) -> Vec<u8> {
    let mut out = String::from(
        "vm_name,target_datastore,storage_policy,rpo,mpit_instances,mpit_days,quiesce,network_compression,disk_format,replication_server,change_ticket,notes\n",
    );
    let datastores = ["ds-gold-01", "ds-silver-01", "ds-bronze-01"];
    let rpos = [15, 30, 60, 240];
    for i in 0..rows {
        out.push_str(&format!(
            "app-{i:05},{},VR Gold,{},{},{},{},yes,THIN,auto,CHG{:07},\"wave {}, rack {}\"\n",
            datastores[i % 3],
            rpos[i % 4],
            i % 3,
            usize::from(i % 3 > 0),
            i % 2 == 0,
            i / 100,
            i / 500,
            i % 42
        ));
    }
    out.into_bytes()
}

/// `VmHWM` of /proc/self/status: the most memory this process has held so far.
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown (no /proc)".into())
}
