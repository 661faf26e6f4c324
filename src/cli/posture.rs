//! The posture lines of `vrbulk status`: for every configure batch with configured VMs, where
//! its replications stand as last seen (by a run, `watch` or `monitor`): protected, behind RPO,
//! in error, paused, not active, removed outside vrbulk; and the monitor's open findings.

use std::fmt::Write as _;

use crate::domain::Operation;
use crate::queue::{Queue, QueueError, Readiness};
use crate::timefmt::utc;

pub fn lines(q: &Queue) -> Result<String, QueueError> {
    let open = q.open_findings()?;
    let mut out = String::new();
    for b in q.batches()? {
        if b.operation != Operation::Configure {
            continue;
        }
        let records = q.protection(b.id)?;
        let count = |r: Readiness| records.iter().filter(|p| p.readiness() == r).count();
        let behind = records
            .iter()
            .filter(|p| p.readiness() == Readiness::Protected && p.rpo_violation)
            .count();
        let protected = count(Readiness::Protected) - behind;
        let syncing = count(Readiness::Syncing);
        let parts = [
            (protected, "protected"),
            (behind, "behind RPO"),
            (count(Readiness::Error), "error"),
            (count(Readiness::Paused), "paused"),
            (count(Readiness::NotActive), "not active"),
            (count(Readiness::Missing), "removed outside vrbulk"),
            (syncing, "syncing"),
        ];
        if parts.iter().all(|(n, _)| *n == 0) {
            continue;
        }
        if out.is_empty() {
            out.push_str("posture (as last seen by run, watch or monitor):\n");
        }
        let said: Vec<String> = parts
            .iter()
            .enumerate()
            // protected, behind RPO and error always; the rest when there are some
            .filter(|(i, (n, _))| *i < 3 || *n > 0)
            .map(|(_, (n, w))| format!("{w} {n}"))
            .collect();
        let _ = write!(out, "  batch {} \"{}\": {}", b.id, b.name, said.join(", "));
        let findings: u64 = open.get(&b.id).map(|m| m.values().sum()).unwrap_or(0);
        match q.monitor_looks(b.id)? {
            Some((_, last, _)) => {
                let _ = write!(
                    out,
                    "; {findings} open findings (monitor last looked {})",
                    utc(last)
                );
            }
            None => out.push_str("; not monitored"),
        }
        out.push('\n');
    }
    if let Some((_, last, _)) = q.monitor_looks(crate::monitor::APPLIANCE)? {
        let findings: u64 = open
            .get(&crate::monitor::APPLIANCE)
            .map(|m| m.values().sum())
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "  outside vrbulk's batches: {findings} open findings (monitor --all last looked {})",
            utc(last)
        );
    }
    Ok(out)
}
