//! `vrbulk config check [--connect]`: validate the settings (by [`ConfigFile::load`], the check
//! every command makes), show them with secrets masked, and optionally prove them by logging in to
//! both sites of every pairing (and say the appliance's release, which the capacity limits not
//! set follow).

use crate::exit::Exit;
use std::path::Path;

use anyhow::Context;
use clap::Subcommand;

use crate::config::{ConfigFile, Connection, ProcessEnvironment, RunSetup};
use crate::domain::{CapacityLimits, Figure, FigureSource};
use crate::settings::RunSettings;
use crate::vr::TlsTrust;
use crate::workflow::{appliance_version, applied, session};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate vrbulk.toml and show the effective settings (passwords never shown).
    #[command(after_help = "Example:\n  VRBULK_PASSWORD=… vrbulk config check --connect")]
    Check {
        /// Also log in to the source site and to the target site of every pairing.
        #[arg(long)]
        connect: bool,
    },
}

pub async fn run(cmd: ConfigCommand, config: Option<&Path>) -> anyhow::Result<Exit> {
    let ConfigCommand::Check { connect } = cmd;
    let env = ProcessEnvironment;
    let file = ConfigFile::load(config)?;
    let RunSetup {
        connection: conn,
        options: run,
    } = file.for_run(&env, &RunSettings::default())?;
    match &file.path {
        Some(p) => println!("settings file  {}", p.display()),
        None => println!("settings file  (none; environment only)"),
    }
    print!("{}", describe(&conn, &env));
    let defaults: Vec<String> = file
        .defaults
        .set_keys()
        .into_iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    println!("[defaults]");
    if defaults.is_empty() {
        println!("  (none: every CSV row names its settings, or the built-in defaults apply)");
    }
    for d in defaults {
        println!("  {d}");
    }
    println!(
        "[run]\n  workers      {} requests in flight\n  groups       {} VMs per lookup, {} per configure call\n  attempts     {}\n  polls        at least {:.1} s apart\n  lease        {} s",
        run.workers,
        run.lookup_group,
        run.submit_group,
        run.max_attempts
            .map_or("as each batch was imported".to_string(), |k| k.to_string()),
        run.poll_interval.as_secs_f64(),
        run.lease.as_secs()
    );
    let limits = run.capacity;
    print!("{}", describe_limits(&limits));
    if !connect {
        println!("settings OK (add --connect to log in to both sites)");
        return Ok(Exit::Ok);
    }

    let settings = conn.with_passwords(&env)?;
    let client = session::login(settings).await?;
    println!("login          OK as {}", client.settings().source.user);
    let pairings = client.pairings().await.context("listing pairings")?;
    if pairings.is_empty() {
        println!("pairings       none: pair the sites in the vSphere Client first");
    }
    for p in &pairings {
        let remote = p.remote_vc_server.name.as_deref().unwrap_or("?");
        let local = p.local_vc_server.name.as_deref().unwrap_or("?");
        session::remote_login(&client, p).await?;
        println!(
            "pairing        {local} -> {remote}  ({})  remote login OK",
            p.pairing_id
        );
    }
    let version = appliance_version(&client, &pairings).await;
    let applied = crate::workflow::applied(&limits, version.as_deref());
    println!(
        "limits         {}: {}",
        applied.appliance(),
        applied.summary()
    );
    client.logout().await.context("logging out")?;
    Ok(Exit::Ok)
}

/// `[limits]`: each figure as set, or what the appliance's release makes it, which only a
/// connection tells.
fn describe_limits(limits: &CapacityLimits) -> String {
    let (v8, v9) = (applied(limits, Some("8")), applied(limits, Some("9")));
    let rows = [
        (
            "per server",
            v8.replications_per_server,
            v9.replications_per_server,
        ),
        (
            "appliance",
            v8.replications_per_appliance,
            v9.replications_per_appliance,
        ),
        (
            "one vCenter",
            v8.replications_per_vcenter,
            v9.replications_per_vcenter,
        ),
    ];
    let mut out = String::from(
        "[limits]       replications at most; unless set, by the appliance's release\n",
    );
    for (what, on8, on9) in rows {
        let line = if on8.from == FigureSource::Set {
            format!("{} (set)", on8.value)
        } else {
            let say = |f: Figure, release: &str| match f.from {
                FigureSource::Documented => format!("{} on {release}", f.value),
                _ => format!("{} on {release} (assumed)", f.value),
            };
            format!("{}, {}", say(on8, "VR 8.x"), say(on9, "VR 9.x"))
        };
        out.push_str(&format!("  {what:<13}{line}\n"));
    }
    out
}

fn describe(conn: &Connection, env: &ProcessEnvironment) -> String {
    let tls = match &conn.trust {
        TlsTrust::Verify => "verify against the system's public roots".to_string(),
        TlsTrust::VerifyWithCa(p) => format!("verify against CA file {}", p.display()),
        TlsTrust::Pinned(t) => format!("pinned to SHA-256 thumbprint {t}"),
        TlsTrust::Insecure => "NOT VERIFIED (insecure = true)".to_string(),
    };
    let (source_pw, target_pw) = conn.password_sources(env);
    let limits = conn.limits;
    format!(
        "[source]\n  url          {}\n  api_version  {}\n  user         {}\n  password     {}\n  tls          {}\n  timeout      {} s\n  page_size    {}\n  rate limit   {} requests per session and {} per client IP, per {} s window\n[target]\n  user         {}\n  password     {}\n",
        conn.url,
        conn.api_version.as_str(),
        conn.user,
        source_pw,
        tls,
        conn.timeout.as_secs(),
        conn.page_size,
        limits.per_session,
        limits.per_ip,
        limits.window.as_secs_f64(),
        conn.target_user,
        target_pw,
    )
}
