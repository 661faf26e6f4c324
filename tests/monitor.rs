//! `vrbulk monitor` and the notifications, end to end: the simulator's admin routes make
//! replications fall behind their RPO, fail, vanish, and VMs appear; the monitor's findings are
//! checked in the queue, and what the channels sent is checked on real receivers (rsyslog,
//! aiosmtpd, an HTTP server), never on vrbulk's own counters.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use vrbulk::domain::VmRef;
use vrbulk::queue::findings::{FindingKind, Rule, Sighting};
use vrbulk::queue::{InputKind, JobState, Queue};
use vrbulk::runner::{self, InitialSyncs, RunOptions};
use vrbulk::sim::{SimConfig, Simulator};

use crate::support::cmd::{spawn_vrbulk, vrbulk, Ran};
use crate::support::fixtures::{self, config_for, new_batch, queue_at, spec};
use crate::support::harness::{settings_for, start};
use crate::support::receivers::{free_port, SmtpSink, Syslog, WebhookSink};
use crate::support::wait::eventually;

/// What `got` returns once it holds exactly `n` things (a receiver's messages, say).
async fn exactly<T>(n: usize, what: &str, got: impl Fn() -> Vec<T>) -> Vec<T> {
    eventually(Duration::from_secs(10), what, async || {
        let now = got();
        (now.len() == n).then_some(now)
    })
    .await
}

/// What the simulator's admin routes are told, as anyone on the loopback would.
async fn admin(sim: &Simulator, method: reqwest::Method, path: &str) {
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let answer = http
        .request(method.clone(), format!("{}{path}", sim.url()))
        .send()
        .await
        .unwrap();
    assert!(
        answer.status().is_success(),
        "{method} {path}: {} {}",
        answer.status(),
        answer.text().await.unwrap_or_default()
    );
}

/// `METHOD /__sim/replications/{vm}{rest}` for each of `vms`.
async fn to_each<S: AsRef<str>>(
    sim: &Simulator,
    method: reqwest::Method,
    vms: impl IntoIterator<Item = S>,
    rest: &str,
) {
    for vm in vms {
        let path = format!("/__sim/replications/{}{rest}", encoded(vm.as_ref()));
        admin(sim, method.clone(), &path).await;
    }
}

fn encoded(vm: &str) -> String {
    percent_encoding::utf8_percent_encode(vm, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The names of the simulator's normal VMs (`app-001`, `db-003`, `web-007`, …), `n` of them.
fn normal_names(sim: &Simulator, n: usize) -> Vec<String> {
    let names: Vec<String> = sim
        .inventory()
        .vms
        .iter()
        .filter(|v| v.kind == vrbulk::sim::VmKind::Normal)
        .map(|v| v.vm.name.clone())
        .take(n)
        .collect();
    assert_eq!(names.len(), n);
    names
}

/// An inventory batch of `names` selected by `patterns`, configured by the library's runner
/// and synced to the end (the simulator's clock moved a day ahead).
async fn protected(sim: &Simulator, db: &Path, names: &[String], patterns: &[&str]) -> i64 {
    let batch = vrbulk::queue::NewBatch {
        input_kind: InputKind::Inventory,
        settings: json!({ "match": patterns, "exclude": [] }),
        ..new_batch("wave")
    };
    let specs: Vec<_> = names
        .iter()
        .map(|n| vrbulk::domain::JobSpec {
            vm: VmRef {
                name: Some(n.clone()),
                id: None,
            },
            ..spec(n)
        })
        .collect();
    let id = fixtures::import(db, &batch, &specs);
    // Every VM at once: the wave is the monitor's setting, and its syncs last real hours until
    // the clock is moved below.
    let opts = RunOptions {
        batch: Some(id),
        poll_interval: Duration::from_millis(200),
        retry_base: Duration::from_millis(100),
        retry_cap: Duration::from_secs(1),
        max_initial_syncs: InitialSyncs::All,
        ..RunOptions::default()
    };
    let (_stop, stop_rx) = watch::channel(false);
    let outcome = runner::run(Queue::open(db).unwrap(), settings_for(sim), opts, stop_rx)
        .await
        .unwrap();
    assert_eq!(outcome.counts[&JobState::Succeeded], names.len() as u64);
    sim.skip(Duration::from_secs(90 * 86_400));
    crate::support::harness::until_synced(sim).await;
    id
}

/// A fast simulator with `n` of its normal VMs protected as one inventory batch that selects
/// them by their exact names (so that no other VM is "uncovered").
struct Wave {
    dir: tempfile::TempDir,
    sim: Simulator,
    db: std::path::PathBuf,
    names: Vec<String>,
    batch: i64,
}

async fn wave(n: usize) -> Wave {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(SimConfig::fast()).await;
    let db = dir.path().join("vrbulk.db");
    let names = normal_names(&sim, n);
    let exact: Vec<&str> = names.iter().map(String::as_str).collect();
    let batch = protected(&sim, &db, &names, &exact).await;
    Wave {
        dir,
        sim,
        db,
        names,
        batch,
    }
}

/// `vrbulk monitor --once` with `[monitor]` settings `rules`.
async fn monitor_once(w: &Wave, rules: &str) -> Ran {
    let config = config_for(&w.sim, w.dir.path(), &format!("[monitor]\n{rules}"));
    vrbulk(&w.db, &config, &["monitor", "--once"]).await
}

fn findings_by_kind(db: &Path, batch: i64) -> Vec<(FindingKind, String, bool)> {
    let q = Queue::open(db).unwrap();
    let mut out: Vec<_> = q
        .findings(batch)
        .unwrap()
        .into_iter()
        .map(|f| {
            let open = f.is_open();
            (f.kind, f.vm_name.unwrap_or(f.vm_id), open)
        })
        .collect();
    out.sort();
    out
}

fn count(found: &[(FindingKind, String, bool)], kind: FindingKind, open: bool) -> usize {
    found
        .iter()
        .filter(|(k, _, o)| *k == kind && *o == open)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notify_test_sends_one_message_to_every_channel_and_names_the_one_that_failed() {
    let dir = tempfile::tempdir().unwrap();
    let (Some(smtp), Some(syslog)) = (SmtpSink::start(dir.path()), Syslog::start(dir.path()))
    else {
        return;
    };
    let hook = WebhookSink::start().await;
    let dead = free_port();
    let config = dir.path().join("vrbulk.toml");
    std::fs::write(
        &config,
        format!(
            "{}{}{}[[notify.webhook]]\nname = \"nobody-home\"\nurl = \"http://127.0.0.1:{dead}/hook\"\n",
            hook.channel(),
            syslog.channels(),
            smtp.channel()
        ),
    )
    .unwrap();
    let db = dir.path().join("vrbulk.db");
    let ran = vrbulk(&db, &config, &["notify", "test"]).await;
    let out = ran.stdout();
    assert_eq!(ran.output.status.code(), Some(1), "{out}\n{}", ran.stderr());
    for ok in ["webhook-1", "syslog-udp", "syslog-tcp", "email-1"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(ok) && l.ends_with(": ok")),
            "{ok} ok:\n{out}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("nobody-home") && l.contains("FAILED") && l.contains("refused")),
        "{out}"
    );

    // What arrived: one message on each receiver, all with the same id.
    let id = eventually(Duration::from_secs(10), "one hook", async || {
        let hooks = hook.hooks();
        (hooks.len() == 1).then(|| hooks[0].id.clone().unwrap())
    })
    .await;
    assert_eq!(hook.hooks()[0].body["kind"], "test");
    assert_eq!(hook.hooks()[0].body["id"], id.as_str());
    let records = exactly(2, "two syslog records", || syslog.records()).await;
    for r in &records {
        assert_eq!(
            (r.version.as_str(), r.app.as_str(), r.msgid.as_str()),
            ("1", "vrbulk", "test")
        );
        assert!(
            r.structured_data
                .starts_with(&format!("[vrbulk@32473 id=\"{id}\" kind=\"test\"")),
            "{r:?}"
        );
    }
    let mails = exactly(1, "one mail", || smtp.mails()).await;
    assert!(
        mails[0].contains(&format!("Message-ID: <{id}@vrbulk>")),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("To: dr-team@example.org"), "{}", mails[0]);

    // The failed channel's message waits in the outbox; nothing else does.
    let q = Queue::open(&db).unwrap();
    let waiting: Vec<_> = q
        .outbox()
        .unwrap()
        .into_iter()
        .filter(|r| r.delivered_at.is_none())
        .collect();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].channel, "nobody-home");
    assert_eq!(waiting[0].message_id, id);
    assert!(waiting[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("refused"));
}

/// The scenario: 300 replications, of which 20 fall behind their RPO for less than the
/// grace, 5 for longer, 3 go to error, 2 are removed out of band and 4 new VMs match the
/// selection. One cycle opens exactly 5 + 3 + 2 + 4 findings and sends one digest to each
/// channel; a quiet cycle sends nothing; the recovery clears what recovered in one digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_monitor_opens_exactly_the_findings_past_their_grace_and_sends_one_digest_a_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let (Some(smtp), Some(syslog)) = (SmtpSink::start(dir.path()), Syslog::start(dir.path()))
    else {
        return;
    };
    let hook = WebhookSink::start().await;
    let sim = start(SimConfig {
        vms: 305,
        ..SimConfig::fast()
    })
    .await;
    let db = dir.path().join("vrbulk.db");
    let names = normal_names(&sim, 300);
    // db-nvme-01 (not suitable) is left out by the patterns: `db-` then a digit.
    let patterns = ["app-*", "web-*", "db-0*", "db-1*", "db-2*", "db-3*"];
    let batch = protected(&sim, &db, &names, &patterns).await;
    let config = config_for(
        &sim,
        dir.path(),
        &format!(
            "[monitor]\nrpo_grace_minutes = 15\nrpo_hold_minutes = 0\n{}{}{}",
            hook.channel(),
            syslog.channels(),
            smtp.channel()
        ),
    );

    // A first cycle on a healthy wave: nothing found, nothing sent.
    let ran = vrbulk(&db, &config, &["monitor", "--once"]).await;
    ran.expect_code(0);
    assert!(
        ran.stdout()
            .contains("300 replications looked at, 0 opened, 0 cleared, 0 open"),
        "{}",
        ran.stdout()
    );

    let (short, rest) = names.split_at(20);
    let (long, rest) = rest.split_at(5);
    let (failing, rest) = rest.split_at(3);
    let removed = &rest[..2];
    use reqwest::Method;
    to_each(&sim, Method::POST, short, "/rpo-violation?minutes=5").await;
    to_each(&sim, Method::POST, long, "/rpo-violation?minutes=40").await;
    to_each(
        &sim,
        Method::POST,
        failing,
        "/error?message=No%20connection%20to%20VR%20Server",
    )
    .await;
    to_each(&sim, Method::DELETE, removed, "").await;
    for i in 1..=4 {
        admin(&sim, Method::POST, &format!("/__sim/vms?name=app-90{i}")).await;
    }

    let ran = vrbulk(&db, &config, &["monitor", "--once"]).await;
    ran.expect_code(4);
    let found = findings_by_kind(&db, batch);
    assert_eq!(
        count(&found, FindingKind::RpoViolation, true),
        5,
        "{found:?}"
    );
    assert_eq!(count(&found, FindingKind::Error, true), 3, "{found:?}");
    assert_eq!(count(&found, FindingKind::Removed, true), 2, "{found:?}");
    assert_eq!(count(&found, FindingKind::Uncovered, true), 4, "{found:?}");
    assert_eq!(found.len(), 14, "{found:?}");
    let rpo: Vec<&String> = found
        .iter()
        .filter(|(k, _, _)| *k == FindingKind::RpoViolation)
        .map(|(_, vm, _)| vm)
        .collect();
    assert!(
        rpo.iter().all(|vm| long.contains(vm)),
        "only the long violations: {rpo:?}"
    );

    // One digest on each channel, with the fourteen findings.
    let hooks = exactly(1, "one digest hook", || hook.hooks()).await;
    let digest = &hooks[0].body;
    assert_eq!(digest["kind"], "monitor_digest");
    assert_eq!(digest["findings"].as_array().unwrap().len(), 14);
    assert!(digest["text"]
        .as_str()
        .unwrap()
        .starts_with("vrbulk monitor: 14 findings opened, 0 cleared, 14 open"));
    let id = hooks[0].id.clone().unwrap();
    let records = exactly(2, "a digest on each syslog channel", || syslog.records()).await;
    for r in &records {
        assert_eq!(r.msgid, "monitor_digest");
        assert!(r.structured_data.contains(&format!("id=\"{id}\"")), "{r:?}");
        assert_eq!(r.structured_data.matches("finding=").count(), 14, "{r:?}");
        assert!(r.structured_data.contains("finding=\"uncovered\""), "{r:?}");
    }
    let mails = exactly(1, "one digest mail", || smtp.mails()).await;
    assert!(
        mails[0].contains("Subject: vrbulk monitor: 14 findings opened"),
        "{}",
        mails[0]
    );

    // A cycle that changes nothing sends nothing.
    let ran = vrbulk(&db, &config, &["monitor", "--once"]).await;
    assert!(
        ran.stdout().contains("0 opened, 0 cleared, 14 open"),
        "{}",
        ran.stdout()
    );

    // The simulator recovers: the violations and errors clear in one digest.
    to_each(
        &sim,
        Method::DELETE,
        short.iter().chain(long),
        "/rpo-violation",
    )
    .await;
    to_each(&sim, Method::DELETE, failing, "/error").await;
    let ran = vrbulk(&db, &config, &["monitor", "--once"]).await;
    assert!(
        ran.stdout().contains("0 opened, 8 cleared, 6 open"),
        "{}",
        ran.stdout()
    );
    let found = findings_by_kind(&db, batch);
    assert_eq!(count(&found, FindingKind::RpoViolation, false), 5);
    assert_eq!(count(&found, FindingKind::Error, false), 3);
    let hooks = exactly(2, "the second digest", || hook.hooks()).await;
    assert_eq!(hooks[1].body["findings"].as_array().unwrap().len(), 8);
    eventually(
        Duration::from_secs(10),
        "the second digest on syslog and mail",
        async || syslog.records().len() == 4 && smtp.mails().len() == 2,
    )
    .await;

    // `status` says the posture by batch, and the report the findings since configured.
    let ran = vrbulk(&db, &config, &["status", "--batch", &batch.to_string()]).await;
    let posture = ran.stdout();
    assert!(
        posture.contains(&format!(
            "batch {batch} \"wave\": protected 298, behind RPO 0, error 0, removed outside vrbulk 2; 6 open findings"
        )),
        "{posture}"
    );
    let ran = vrbulk(
        &db,
        &config,
        &["report", "--batch", &batch.to_string(), "--format", "md"],
    )
    .await;
    let report = ran.stdout();
    assert!(
        report.contains("## Compliance since configured"),
        "{report}"
    );
    assert!(
        report.contains("(4 cycles): 14 findings, 6 still open."),
        "{report}"
    );
    let section = &report[report.find("## Compliance since configured").unwrap()..];
    assert_eq!(section.matches("| open |").count(), 6, "{section}");

    // The monitor's reads kept to the appliance's rate limit, by the appliance's own count.
    let refused: u64 = sim.stats().limiter.refused.values().sum();
    assert_eq!(refused, 0, "no 429");
    sim.shutdown().await;
}

/// Grace and hysteresis by the queue's own clock: a violation shorter than the grace leaves no
/// trace, one that outlasts it opens once, and it clears only after a whole hold within RPO.
#[test]
fn a_violation_opens_after_its_grace_and_clears_after_its_hold() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let batch = fixtures::import(&db, &new_batch("wave"), &[spec("web-01")]);
    let (mut q, now) = queue_at(&db, 1_000_000);
    let minute = 60_000;
    let rule = |_: FindingKind| Rule {
        grace_ms: 15 * minute,
        hold_ms: 30 * minute,
    };
    let behind = |minutes: i64| Sighting {
        batch,
        job: None,
        vm_id: "vm-1".into(),
        vm_name: Some("web-01".into()),
        kind: FindingKind::RpoViolation,
        detail: None,
        lasted_ms: Some(minutes * minute),
    };
    let cycle = |q: &mut Queue, seen: &[Sighting]| {
        q.judge_findings(&[batch], seen, rule, |_| None)
            .unwrap()
            .into_iter()
            .map(|c| c.change)
            .collect::<Vec<_>>()
    };
    let advance = |m: i64| now.fetch_add(m * minute, std::sync::atomic::Ordering::SeqCst);

    // 5 minutes behind, then back: nothing recorded.
    assert!(cycle(&mut q, &[behind(5)]).is_empty());
    advance(5);
    assert!(cycle(&mut q, &[]).is_empty());
    assert!(q.findings(batch).unwrap().is_empty());

    // Behind past the grace: opens once.
    assert!(cycle(&mut q, &[behind(10)]).is_empty());
    advance(5);
    assert_eq!(cycle(&mut q, &[behind(16)]), ["opened"]);
    advance(5);
    assert!(cycle(&mut q, &[behind(21)]).is_empty());

    // Within RPO for 20 minutes, then one late sync again: still the same open finding.
    assert!(cycle(&mut q, &[]).is_empty());
    advance(20);
    assert!(cycle(&mut q, &[]).is_empty());
    assert!(cycle(&mut q, &[behind(1)]).is_empty());
    // A whole hold within RPO from then on: cleared, once.
    assert!(cycle(&mut q, &[]).is_empty());
    advance(29);
    assert!(cycle(&mut q, &[]).is_empty());
    advance(1);
    assert_eq!(cycle(&mut q, &[]), ["cleared"]);
    assert!(cycle(&mut q, &[]).is_empty());
    let f = q.findings(batch).unwrap();
    assert_eq!(f.len(), 1);
    assert!(f[0].cleared_at.is_some() && f[0].opened_at.is_some());
}

/// A digest queued while the webhook's receiver is down survives a kill of the monitor and
/// arrives once the receiver is up, with the id the outbox gave it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_digest_survives_a_kill_of_the_monitor_and_keeps_its_id() {
    let Wave {
        dir,
        sim,
        db,
        names,
        batch,
    } = wave(4).await;
    let port = free_port();
    let config = config_for(
        &sim,
        dir.path(),
        &format!("[[notify.webhook]]\nurl = \"http://127.0.0.1:{port}/hook\"\n"),
    );
    admin(
        &sim,
        reqwest::Method::POST,
        &format!("/__sim/replications/{}/error", encoded(&names[0])),
    )
    .await;

    let mut monitor = spawn_vrbulk(
        &db,
        &config,
        &[
            "monitor",
            "--interval",
            "0.2",
            "--batch",
            &batch.to_string(),
        ],
        std::process::Stdio::null(),
    );
    let waiting = eventually(
        Duration::from_secs(30),
        "a failed delivery in the outbox",
        async || {
            let rows = Queue::open(&db).unwrap().outbox().unwrap();
            rows.into_iter()
                .find(|r| r.attempts >= 1 && r.delivered_at.is_none())
        },
    )
    .await;
    monitor.kill().unwrap();
    monitor.wait().unwrap();

    let hook = WebhookSink::on(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap()).await;
    let ran = vrbulk(&db, &config, &["notify", "flush"]).await;
    ran.expect_code(0);
    let hooks = hook.hooks();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0].id.as_deref(), Some(waiting.message_id.as_str()));
    assert_eq!(hooks[0].body["id"], waiting.message_id.as_str());
    assert_eq!(hooks[0].body["findings"][0]["finding"], "error");
    // Nothing is left to send, and another cycle finds nothing new to say.
    let ran = vrbulk(&db, &config, &["monitor", "--once"]).await;
    assert!(
        ran.stdout().contains("0 opened, 0 cleared, 1 open"),
        "{}",
        ran.stdout()
    );
    assert_eq!(hook.hooks().len(), 1);
    sim.shutdown().await;
}

/// The end of a run reaches the channels: counts, and the report attached to the mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_end_of_a_run_is_sent_with_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let Some(smtp) = SmtpSink::start(dir.path()) else {
        return;
    };
    let hook = WebhookSink::start().await;
    let sim = start(SimConfig::fast()).await;
    let db = dir.path().join("vrbulk.db");
    let names = normal_names(&sim, 3);
    let specs: Vec<_> = names.iter().map(|n| spec(n)).collect();
    let batch = fixtures::import(&db, &new_batch("wave"), &specs);
    let config = config_for(
        &sim,
        dir.path(),
        &format!("{}{}", hook.channel(), smtp.channel()),
    );
    let ran = vrbulk(&db, &config, &["run", "--batch", &batch.to_string()]).await;
    ran.expect_code(0);
    let hooks = hook.hooks();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let body = &hooks[0].body;
    assert_eq!(body["kind"], "run_ended");
    assert_eq!(body["batch"], batch);
    assert_eq!(body["counts"]["succeeded"], 3);
    let report = body["report"].as_str().unwrap();
    assert!(std::fs::read_to_string(report).unwrap().contains("wave"));
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    let file = Path::new(report)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        mails[0].contains("Content-Disposition: attachment"),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains(&file), "{}", mails[0]);
    sim.shutdown().await;
}

/// A run and a monitor side by side on one host keep together to the appliance's per-IP quota,
/// which is less than two sessions' quotas: the appliance's limiter refuses nothing, while both
/// kept sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_beside_a_monitor_shares_the_per_ip_quota_and_gets_no_429() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start(SimConfig {
        vms: 80,
        limits: Some(vrbulk::sim::RateLimits {
            per_session: 20,
            per_ip: 30,
            ..vrbulk::sim::RateLimits::scaled(vrbulk::sim::FAST_WINDOW)
        }),
        ..SimConfig::fast()
    })
    .await;
    let db = dir.path().join("vrbulk.db");
    drop(Queue::open(&db).unwrap());
    // This test's own calls share the quota too.
    let url: reqwest::Url = sim.url().parse().unwrap();
    vrbulk::queue::ledger::share_budget(&db, &url, sim.limits());
    let names = normal_names(&sim, 70);
    let exact: Vec<&str> = names[..20].iter().map(String::as_str).collect();
    let watched = protected(&sim, &db, &names[..20], &exact).await;
    let wave = fixtures::import(
        &db,
        &new_batch("wave-2"),
        &names[20..].iter().map(|n| spec(n)).collect::<Vec<_>>(),
    );
    let config = config_for(&sim, dir.path(), "");

    let mut monitor = spawn_vrbulk(
        &db,
        &config,
        &[
            "monitor",
            "--interval",
            "0.1",
            "--batch",
            &watched.to_string(),
        ],
        std::fs::File::create(dir.path().join("monitor.out"))
            .unwrap()
            .into(),
    );
    let before = sim.stats().journal.len();
    // Every VM as soon as the budget lets it (the syncs here last real hours): the most
    // calls at once beside the monitor's.
    let wave_arg = wave.to_string();
    let args = ["run", "--batch", &wave_arg, "--max-initial-syncs", "all"];
    let ran = vrbulk(&db, &config, &args).await;
    monitor.kill().unwrap();
    monitor.wait().unwrap();
    ran.expect_code(0);

    let stats = sim.stats();
    let refused: u64 = stats.limiter.refused.values().sum();
    assert_eq!(refused, 0, "429s: {:?}", stats.limiter.refused);
    assert!(
        stats.limiter.peak_in_any_window["ip"] <= 30,
        "{:?}",
        stats.limiter.peak_in_any_window
    );
    // Both kept sending: the monitor's cycles went on during the run, each a read of the
    // replications the appliance received.
    let cycles = std::fs::read_to_string(dir.path().join("monitor.out"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("20 replications looked at"))
        .count();
    assert!(
        cycles >= 3,
        "the monitor ran {cycles} cycles during the run"
    );
    let lists = stats.journal[before..]
        .iter()
        .filter(|r| r.op == "getAllReplications")
        .count();
    assert!(
        lists >= cycles,
        "{lists} replication reads for {cycles} cycles"
    );
    sim.shutdown().await;
}

/// The encrypted transports against the real receivers: syslog over TLS (RFC 5425, rsyslog's
/// gtls driver) and a mail relay that insists on STARTTLS, each trusted through `ca_file`; and
/// a relay whose certificate the channel does not trust is refused, not sent to in the clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn syslog_over_tls_and_mail_over_starttls_reach_receivers_trusted_by_their_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::support::receivers::TestCa::new(dir.path());
    let (Some(smtp), Some(syslog)) = (
        SmtpSink::with_starttls(dir.path(), &ca),
        Syslog::with_tls(dir.path(), &ca),
    ) else {
        return;
    };
    let config = dir.path().join("vrbulk.toml");
    let tls_port = syslog.tls.unwrap();
    std::fs::write(
        &config,
        format!(
            "[[notify.syslog]]\naddress = \"127.0.0.1:{tls_port}\"\ntransport = \"tls\"\nca_file = \"ca.pem\"\n\
             [[notify.email]]\nserver = \"127.0.0.1\"\nport = {port}\nsecurity = \"starttls\"\nca_file = \"ca.pem\"\n\
             from = \"vrbulk@example.org\"\nto = [\"dr-team@example.org\"]\n\
             [[notify.email]]\nname = \"untrusted\"\nserver = \"127.0.0.1\"\nport = {port}\n\
             from = \"vrbulk@example.org\"\nto = [\"dr-team@example.org\"]\n",
            port = smtp.port
        ),
    )
    .unwrap();
    let db = dir.path().join("vrbulk.db");
    let ran = vrbulk(&db, &config, &["notify", "test"]).await;
    let out = ran.stdout();
    assert!(
        out.contains("syslog-1 (syslog to 127.0.0.1") && out.contains("over TLS): ok"),
        "{out}\n{}",
        ran.stderr()
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("email-1") && l.ends_with(": ok")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("untrusted")
            && l.contains("FAILED")
            && l.contains("certificate")),
        "{out}"
    );
    let records = exactly(1, "the record over TLS", || syslog.records()).await;
    assert_eq!(records[0].msgid, "test");
    // One mail: the relay took the trusted channel's, and the untrusted one sent nothing.
    assert_eq!(smtp.mails().len(), 1);
}

/// `--all` follows the replications outside every batch too (here the one the appliance had
/// before vrbulk): their findings go under "outside vrbulk's batches", a batch's own stay the
/// batch's, and none is counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn monitor_all_records_the_replications_outside_every_batch_apart() {
    let Wave {
        dir,
        sim,
        db,
        names,
        batch,
    } = wave(2).await;
    let config = config_for(&sim, dir.path(), "");
    let outside = vrbulk::sim::REPLICATED_VM;
    to_each(
        &sim,
        reqwest::Method::POST,
        [outside, names[0].as_str()],
        "/error",
    )
    .await;
    let ran = vrbulk(&db, &config, &["monitor", "--all", "--once"]).await;
    ran.expect_code(4);
    assert!(
        ran.stdout().contains("batch 1, the rest of the appliance"),
        "{}",
        ran.stdout()
    );
    let q = Queue::open(&db).unwrap();
    let theirs: Vec<_> = q.findings(vrbulk::monitor::APPLIANCE).unwrap();
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!(theirs[0].vm_name.as_deref(), Some(outside));
    assert_eq!(theirs[0].kind, FindingKind::Error);
    let ours = q.findings(batch).unwrap();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(ours[0].vm_name.as_deref(), Some(names[0].as_str()));
    let status = vrbulk(&db, &config, &["status"]).await.stdout();
    assert!(
        status.contains("outside vrbulk's batches: 1 open findings"),
        "{status}"
    );
    sim.shutdown().await;
}

/// A change window that closed with work left is said as such, with the jobs left and how to
/// carry on: a notification of its own kind, not a run that "ended".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_window_that_closed_with_work_left_is_notified_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookSink::start().await;
    let sim = start(SimConfig::fast()).await;
    let db = dir.path().join("vrbulk.db");
    let specs: Vec<_> = normal_names(&sim, 3).iter().map(|n| spec(n)).collect();
    let batch = fixtures::import(&db, &new_batch("wave"), &specs);
    let config = config_for(&sim, dir.path(), &hook.channel());
    let ran = vrbulk(
        &db,
        &config,
        &[
            "run",
            "--batch",
            &batch.to_string(),
            "--until",
            "2000-01-01T00:00:00Z",
        ],
    )
    .await;
    ran.expect_code(6);
    let hooks = hook.hooks();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let body = &hooks[0].body;
    assert_eq!(body["kind"], "window_closed");
    assert_eq!(body["severity"], "warning");
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains("the change window closed with 3 jobs left"),
        "{text}"
    );
    assert!(
        text.contains(&format!("`vrbulk run --batch {batch}` carries on")),
        "{text}"
    );
    // Nothing was configured: the appliance received no change.
    assert!(!sim.stats().journal.iter().any(|r| r.accepted_change()));
    sim.shutdown().await;
}

/// A paused replication and a powered-off VM's are findings only after their set times: the
/// same sightings leave them pending under a long setting and open them under a short one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paused_and_not_active_replications_are_findings_after_their_set_times() {
    let w = wave(3).await;
    let (sim, names) = (&w.sim, &w.names);
    to_each(sim, reqwest::Method::POST, [&names[0]], "/pause").await;
    let vm = encoded(&names[1]);
    admin(
        sim,
        reqwest::Method::POST,
        &format!("/__sim/vms/{vm}/power-off"),
    )
    .await;
    let patient = "paused_after_minutes = 600\nnot_active_after_minutes = 600\n";
    let ran = monitor_once(&w, patient).await;
    ran.expect_code(0);
    assert!(findings_by_kind(&w.db, w.batch).is_empty());

    let prompt = "paused_after_minutes = 0\nnot_active_after_minutes = 0\n";
    let ran = monitor_once(&w, prompt).await;
    ran.expect_code(4);
    assert_eq!(
        findings_by_kind(&w.db, w.batch),
        [
            (FindingKind::Paused, names[0].clone(), true),
            (FindingKind::NotActive, names[1].clone(), true),
        ]
    );
    // Resumed and powered on: both clear at once.
    to_each(sim, reqwest::Method::DELETE, [&names[0]], "/pause").await;
    admin(
        sim,
        reqwest::Method::POST,
        &format!("/__sim/vms/{vm}/power-on"),
    )
    .await;
    let ran = monitor_once(&w, prompt).await;
    assert!(
        ran.stdout().contains("0 opened, 2 cleared, 0 open"),
        "{}",
        ran.stdout()
    );
}
