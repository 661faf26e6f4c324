//! Settings: `vrbulk.toml`, then the environment, then the flags, in that order.
//!
//! The file holds no secrets: passwords come from `VRBULK_PASSWORD` / `VRBULK_REMOTE_PASSWORD`
//! or an interactive prompt, never from a flag (shell history) or the file (backups, tickets).
//! Turning raw values into validated settings happens once, here: the connection into a
//! [`ClientSettings`], and what a run goes by, the connection with the run's options
//! ([`crate::settings`]), in one place of precedence ([`ConfigFile::for_run`]).
//!
//! Every command reads the file through [`ConfigFile::load`], which checks the whole file by the
//! same rules that turn it into settings ([`ConfigFile::problems`]): a file that `config check`
//! refuses is refused by `import`, `run` and the rest alike, with every problem at once and
//! before anything is written. (`import` once wrote batches from files whose `[run]` said
//! `submit_group = 0`, because it read only `[defaults]`.) What only a connection needs, the URL
//! and the user, may come from the environment instead, so their absence is said by the commands
//! that connect.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use thiserror::Error;

use crate::domain::CapacityLimits;
use crate::secret::Secret;
use crate::settings::{RunOptions, RunSettings, Written};
use crate::vr::{ApiVersion, ClientSettings, Credentials, Limits, Thumbprint, TlsTrust};

pub const DEFAULT_CONFIG: &str = "vrbulk.toml";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },

    #[error("{field}: {message}")]
    Invalid { field: String, message: String },

    #[error("{what} is not set: {hint}")]
    Missing { what: String, hint: String },

    /// The settings file's every problem (each an `Invalid`).
    #[error("config file {}{}", path.display(), listing(problems))]
    File {
        path: PathBuf,
        problems: Vec<ConfigError>,
    },
}

/// `: the problem`, or ` has N problems:` and one a line.
fn listing(problems: &[ConfigError]) -> String {
    match problems {
        [one] => format!(": {one}"),
        many => {
            let lines: String = many.iter().map(|p| format!("\n  {p}")).collect();
            format!(" has {} problems:{lines}", many.len())
        }
    }
}

impl ConfigError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The file as written, before validation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub source: SourceSection,
    #[serde(default)]
    pub target: TargetSection,
    /// Replication settings that CSV cells and inventory selections fall back to.
    #[serde(default)]
    pub defaults: crate::input::Defaults,
    /// How a run works through a batch (flags override each key).
    #[serde(default)]
    pub run: RunSettings,
    /// The appliance's capacity, where it differs from the defaults of its version.
    #[serde(default)]
    pub limits: CapacityLimits,
    /// Where notifications go (`[[notify.webhook]]`, `[[notify.syslog]]`, `[[notify.email]]`).
    #[serde(default)]
    pub notify: crate::notify::NotifySettings,
    /// How `vrbulk monitor` judges what it sees.
    #[serde(default)]
    pub monitor: crate::monitor::MonitorSettings,
    /// Where the file was read from; relative paths inside it are relative to its folder.
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    pub url: Option<String>,
    pub user: Option<String>,
    pub api_version: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub thumbprint: Option<String>,
    #[serde(default)]
    pub insecure: bool,
    pub timeout_seconds: Option<u64>,
    pub page_size: Option<u32>,
    /// The appliance's DR REST API rate limiter, if its admin changed the defaults: requests
    /// per window for one session, and for one client IP address.
    pub requests_per_minute: Option<u32>,
    pub requests_per_minute_per_ip: Option<u32>,
    /// The limiter's window; the two quotas above are per window. 60 unless changed.
    pub rate_window_seconds: Option<f64>,
}

/// The checks of `[run]` values and the flags over them, collecting every problem; a value
/// with a problem leaves the built-in default in its place.
#[derive(Default)]
struct RunChecks {
    problems: Vec<ConfigError>,
}

impl RunChecks {
    /// The flag's value, else the key's, with its name for a message: `--workers` or
    /// `[run] workers`.
    fn origin<T>(
        flag: Option<T>,
        flag_name: &str,
        key: Option<T>,
        key_name: &str,
    ) -> Option<(T, String)> {
        match (flag, key) {
            (Some(v), _) => Some((v, format!("--{flag_name}"))),
            (None, Some(v)) => Some((v, format!("[run] {key_name}"))),
            (None, None) => None,
        }
    }

    fn count(
        &mut self,
        value: Option<(usize, String)>,
        range: std::ops::RangeInclusive<usize>,
    ) -> Option<usize> {
        let (n, field) = value?;
        if range.contains(&n) {
            return Some(n);
        }
        self.problems.push(ConfigError::invalid(
            field,
            format!(
                "must be between {} and {}, got {n}",
                range.start(),
                range.end()
            ),
        ));
        None
    }

    fn seconds(&mut self, value: Option<(f64, String)>, min: f64) -> Option<Duration> {
        let (secs, field) = value?;
        if secs.is_finite() && (min..=86_400.0).contains(&secs) {
            return Some(Duration::from_secs_f64(secs));
        }
        self.problems.push(ConfigError::invalid(
            field,
            format!("must be between {min} and 86400 seconds, got {secs}"),
        ));
        None
    }

    /// A value that was read as written: what it means, or its problem.
    fn written<T>(&mut self, value: Option<(Written<T>, String)>) -> Option<T> {
        let (written, field) = value?;
        written
            .map_err(|message| self.problems.push(ConfigError::invalid(field, message)))
            .ok()
    }
}

/// `flags` over `file` (the `[run]` keys) over the built-in defaults: the options, and every
/// problem of them, each named where its value came from.
fn run_options(file: &RunSettings, flags: &RunSettings) -> (RunOptions, Vec<ConfigError>) {
    use RunChecks as C;
    let d = RunOptions::default();
    let mut c = RunChecks::default();
    let workers = c.count(
        C::origin(flags.workers, "workers", file.workers, "workers"),
        1..=64,
    );
    let lookup_group = c.count(
        C::origin(
            flags.lookup_group,
            "lookup-group",
            file.lookup_group,
            "lookup_group",
        ),
        1..=200,
    );
    // The appliance takes at most 20 VMs in one configure operation.
    let submit_group = c.count(
        C::origin(
            flags.submit_group,
            "submit-group",
            file.submit_group,
            "submit_group",
        ),
        1..=20,
    );
    let max_attempts = c
        .count(
            C::origin(
                flags.max_attempts.map(|k| k as usize),
                "max-attempts",
                file.max_attempts.map(|k| k as usize),
                "max_attempts",
            ),
            1..=100,
        )
        .map(|k| k as u32);
    let poll_interval = c.seconds(
        C::origin(
            flags.poll_interval_seconds,
            "poll-interval",
            file.poll_interval_seconds,
            "poll_interval_seconds",
        ),
        0.1,
    );
    // Quick retries of one request, each waiting up to the backoff's cap: more than ten
    // would hold a worker for minutes on an appliance that is down.
    let request_retries = c.count(
        C::origin(
            None,
            "",
            file.request_retries.map(|n| n as usize),
            "request_retries",
        ),
        0..=10,
    );
    let lease = c.seconds(
        C::origin(
            None,
            "",
            file.lease_seconds.map(|s| s as f64),
            "lease_seconds",
        ),
        1.0,
    );
    let max_initial_syncs = c.written(C::origin(
        flags.max_initial_syncs.clone(),
        "max-initial-syncs",
        file.max_initial_syncs.clone(),
        "max_initial_syncs",
    ));
    let order = c.written(C::origin(
        flags.order.clone(),
        "order",
        file.order.clone(),
        "order",
    ));
    let options = RunOptions {
        workers: workers.unwrap_or(d.workers),
        max_attempts,
        until: flags.until,
        lookup_group: lookup_group.unwrap_or(d.lookup_group),
        submit_group: submit_group.unwrap_or(d.submit_group),
        poll_interval: poll_interval.unwrap_or(d.poll_interval),
        request_retries: request_retries.map_or(d.request_retries, |n| n as u32),
        lease: lease.unwrap_or(d.lease),
        max_initial_syncs: max_initial_syncs.unwrap_or(d.max_initial_syncs),
        order: order.unwrap_or(d.order),
        ..d
    };
    (options, c.problems)
}

/// What a run goes by, settled: [`ConfigFile::for_run`].
#[derive(Debug, Clone, PartialEq)]
pub struct RunSetup {
    /// The appliance, its users and its rate limiter, without the passwords.
    pub connection: Connection,
    pub options: RunOptions,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    pub user: Option<String>,
}

impl ConfigFile {
    /// Reads `path`, or `./vrbulk.toml` when no path is given and that file exists, and checks
    /// it whole: every problem of it at once ([`ConfigError::File`]), or the file.
    pub fn load(path: Option<&Path>) -> Result<ConfigFile, ConfigError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
            None => return Ok(ConfigFile::default()),
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let mut file = ConfigFile::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.clone(),
            message,
        })?;
        file.path = Some(path.clone());
        file.notify.base = path.parent().map(Path::to_path_buf);
        let problems = file.problems();
        if !problems.is_empty() {
            return Err(ConfigError::File { path, problems });
        }
        if file.run.rate.is_some() || file.run.burst.is_some() {
            tracing::warn!(
                "[run] rate and burst are no longer used: vrbulk keeps to the appliance's own \
                 rate limit ([source] requests_per_minute, 50 by default); remove them"
            );
        }
        Ok(file)
    }

    /// The file as written, unchecked: [`load`](Self::load) is what commands use.
    pub fn parse(text: &str) -> Result<ConfigFile, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Every problem of the file's values, by the rules that turn them into settings
    /// ([`Connection::resolve`], [`ConfigFile::for_run`], [`Defaults::validate`]), so that
    /// whatever passes here resolves. A URL or user the environment overrides is still checked:
    /// the file is wrong either way.
    ///
    /// [`Defaults::validate`]: crate::input::Defaults::validate
    pub fn problems(&self) -> Vec<ConfigError> {
        let s = &self.source;
        let mut problems = Vec::new();
        let mut note = |result: Result<(), ConfigError>| {
            if let Err(problem) = result {
                problems.push(problem);
            }
        };
        if let Some(url) = &s.url {
            note(parse_url(url).map(drop));
        }
        if let Some(name) = &s.user {
            note(user_name("[source] user", name).map(drop));
        }
        if let Some(name) = &self.target.user {
            note(user_name("[target] user", name).map(drop));
        }
        note(api_version(s).map(drop));
        note(trust(self).map(drop));
        note(timeout(s).map(drop));
        note(page_size(s).map(drop));
        note(limits(s).map(drop));
        note(self.capacity().map(drop));
        problems.extend(
            self.defaults
                .problems()
                .into_iter()
                .map(|(key, message)| ConfigError::invalid(format!("[defaults] {key}"), message)),
        );
        problems.extend(run_options(&self.run, &RunSettings::default()).1);
        problems.extend(
            (self.notify.problems().into_iter())
                .chain(self.monitor.problems())
                .map(|(key, message)| ConfigError::invalid(key, message)),
        );
        problems
    }

    /// What a run goes by, each setting from this file, then the environment, then `flags`, a
    /// later one winning: the run's options (`[run]` and `[limits]` under the flags), and the
    /// connection (`[source]` and `[target]` under `VRBULK_URL`, `VRBULK_USER` and
    /// `VRBULK_REMOTE_USER`, the rate limiter under `--requests-per-minute`). Checked once: the
    /// first problem, which is a flag's (the file's own were refused when it was loaded), or a
    /// connection setting the file and the environment both lack.
    pub fn for_run(
        &self,
        env: &dyn Environment,
        flags: &RunSettings,
    ) -> Result<RunSetup, ConfigError> {
        let (options, problems) = run_options(&self.run, flags);
        if let Some(first) = problems.into_iter().next() {
            return Err(first);
        }
        let options = RunOptions {
            capacity: self.capacity()?,
            ..options
        };
        let mut connection = Connection::resolve(self, env)?;
        if let Some(n) = flags.requests_per_minute {
            connection.limits.per_session = quota("--requests-per-minute", n)?;
        }
        Ok(RunSetup {
            connection,
            options,
        })
    }

    /// `[limits]`, checked: each figure set is a whole number of replications from 1 to
    /// 100000 (the documented ones are 200 to 4000; the bound only catches typos). A figure
    /// not set follows the appliance's version when a plan or run learns it.
    pub fn capacity(&self) -> Result<CapacityLimits, ConfigError> {
        let l = self.limits;
        for (key, value) in [
            ("replications_per_server", l.replications_per_server),
            ("replications_per_appliance", l.replications_per_appliance),
            ("replications_per_vcenter", l.replications_per_vcenter),
        ] {
            if let Some(n) = value.filter(|n| !(1..=100_000).contains(n)) {
                return Err(ConfigError::Invalid {
                    field: format!("[limits] {key}"),
                    message: format!("must be between 1 and 100000 replications, got {n}"),
                });
            }
        }
        Ok(l)
    }

    fn relative(&self, p: &Path) -> PathBuf {
        match self.path.as_deref().and_then(Path::parent) {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }
}

/// Where settings come from besides the file, so tests need not touch the process environment.
pub trait Environment {
    fn var(&self, key: &str) -> Option<String>;
    /// Asks the operator, without echo; `None` when nobody can answer (no terminal).
    fn prompt_password(&self, prompt: &str) -> Option<Secret>;
}

/// The real process environment and terminal.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }

    fn prompt_password(&self, prompt: &str) -> Option<Secret> {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return None;
        }
        rpassword::prompt_password(prompt).ok().map(Secret::new)
    }
}

/// A fixed set of variables and no terminal; for tests and embedded use (the demo).
#[derive(Debug, Default, Clone)]
pub struct FixedEnvironment(pub HashMap<String, String>);

impl Environment for FixedEnvironment {
    fn var(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }

    fn prompt_password(&self, _prompt: &str) -> Option<Secret> {
        None
    }
}

/// The connection as configured, validated, without passwords: safe to print.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub url: Url,
    pub api_version: ApiVersion,
    pub trust: TlsTrust,
    pub timeout: Duration,
    pub page_size: u32,
    pub limits: Limits,
    pub user: String,
    pub target_user: String,
}

impl Connection {
    pub fn resolve(file: &ConfigFile, env: &dyn Environment) -> Result<Connection, ConfigError> {
        let s = &file.source;
        let url_text = env.var("VRBULK_URL").or_else(|| s.url.clone()).ok_or_else(|| {
            ConfigError::Missing {
                what: "the appliance URL".into(),
                hint: "set [source] url = \"https://vr-appliance.example.com\" in vrbulk.toml, or VRBULK_URL"
                    .into(),
            }
        })?;
        let url = parse_url(&url_text)?;
        let api_version = api_version(s)?;
        let trust = trust(file)?;
        if url.scheme() == "http" && trust != TlsTrust::Verify {
            tracing::warn!("{url} is plain HTTP: the TLS settings of [source] have no effect");
        }
        let user =
            match env.var("VRBULK_USER") {
                Some(name) => user_name("VRBULK_USER", &name)?,
                None => match &s.user {
                    Some(name) => user_name("[source] user", name)?,
                    None => return Err(ConfigError::Missing {
                        what: "the source user".into(),
                        hint: "set [source] user = \"administrator@vsphere.local\", or VRBULK_USER"
                            .into(),
                    }),
                },
            };
        let target_user = match (env.var("VRBULK_REMOTE_USER"), &file.target.user) {
            (Some(name), _) => user_name("VRBULK_REMOTE_USER", &name)?,
            (None, Some(name)) => user_name("[target] user", name)?,
            (None, None) => user.clone(),
        };
        Ok(Connection {
            url,
            api_version,
            trust,
            timeout: timeout(s)?,
            page_size: page_size(s)?,
            limits: limits(s)?,
            user,
            target_user,
        })
    }

    /// Where the source and the target password will come from, for `config check`; asks
    /// nothing.
    pub fn password_sources(&self, env: &dyn Environment) -> (String, String) {
        let source = if env.var("VRBULK_PASSWORD").is_some() {
            "from VRBULK_PASSWORD"
        } else {
            "asked at start (or export VRBULK_PASSWORD)"
        };
        let target = if env.var("VRBULK_REMOTE_PASSWORD").is_some() {
            "from VRBULK_REMOTE_PASSWORD".to_string()
        } else if self.target_user == self.user {
            format!("same as the source ({source})")
        } else {
            "asked at start (or export VRBULK_REMOTE_PASSWORD)".to_string()
        };
        (source.to_string(), target)
    }

    /// Adds the passwords: from the environment, else asked on the terminal.
    pub fn with_passwords(self, env: &dyn Environment) -> Result<ClientSettings, ConfigError> {
        let password = match env.var("VRBULK_PASSWORD") {
            Some(p) => Secret::new(p),
            None => env
                .prompt_password(&format!("Password for {} at {}: ", self.user, self.url))
                .ok_or_else(|| ConfigError::Missing {
                    what: "the source password".into(),
                    hint: "export VRBULK_PASSWORD, or run on a terminal to be asked".into(),
                })?,
        };
        // Sites that share one SSO domain use one account; only a different user needs its own
        // password.
        let target_password = match env.var("VRBULK_REMOTE_PASSWORD") {
            Some(p) => Secret::new(p),
            None if self.target_user == self.user => password.clone(),
            None => env
                .prompt_password(&format!(
                    "Password for {} at the target site: ",
                    self.target_user
                ))
                .ok_or_else(|| ConfigError::Missing {
                    what: "the target site password".into(),
                    hint: "export VRBULK_REMOTE_PASSWORD, or run on a terminal to be asked".into(),
                })?,
        };
        Ok(ClientSettings {
            url: self.url,
            api_version: self.api_version,
            trust: self.trust,
            timeout: self.timeout,
            page_size: self.page_size,
            limits: self.limits,
            source: Credentials {
                user: self.user,
                password,
            },
            target: Credentials {
                user: self.target_user,
                password: target_password,
            },
        })
    }
}

/// The file plus the environment, validated, with passwords: ready for [`crate::vr::Client`].
pub fn client_settings(
    file: &ConfigFile,
    env: &dyn Environment,
) -> Result<ClientSettings, ConfigError> {
    Connection::resolve(file, env)?.with_passwords(env)
}

fn parse_url(text: &str) -> Result<Url, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        field: "[source] url".into(),
        message,
    };
    let url = Url::parse(text.trim()).map_err(|e| {
        invalid(format!(
            "`{text}` is not a URL ({e}); expected https://host[:port]"
        ))
    })?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(invalid(format!("`{text}`: expected https://host[:port]")));
    }
    if url.path().contains("/api/") {
        return Err(invalid(format!(
            "`{text}`: give the appliance address only; vrbulk adds /api/rest/vr/{{version}} itself"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "credentials do not belong in the URL; use [source] user and VRBULK_PASSWORD".into(),
        ));
    }
    Ok(url)
}

fn api_version(s: &SourceSection) -> Result<ApiVersion, ConfigError> {
    match &s.api_version {
        Some(v) => v
            .parse()
            .map_err(|message: String| ConfigError::invalid("[source] api_version", message)),
        None => Ok(ApiVersion::V2),
    }
}

/// A user name: something to log in with, and nothing a terminal would act on.
fn user_name(field: &str, name: &str) -> Result<String, ConfigError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ConfigError::invalid(
            field,
            "must not be empty: leave the key out to use the source user (or VRBULK_USER)",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ConfigError::invalid(
            field,
            "has a control character; a user name has none",
        ));
    }
    Ok(name.to_owned())
}

/// How long one request may take: at least a second, at most an hour (a longer wait is a hung
/// appliance, not a slow one).
fn timeout(s: &SourceSection) -> Result<Duration, ConfigError> {
    match s.timeout_seconds.unwrap_or(60) {
        secs @ 1..=3600 => Ok(Duration::from_secs(secs)),
        secs => Err(ConfigError::invalid(
            "[source] timeout_seconds",
            format!("must be between 1 and 3600, got {secs}"),
        )),
    }
}

/// Large pages make bulk reads (every task of a wave, every VM of a vCenter) one call instead of
/// ten; an appliance that refuses them can be given a smaller size.
fn page_size(s: &SourceSection) -> Result<u32, ConfigError> {
    match s.page_size.unwrap_or(1000) {
        n @ 1..=1000 => Ok(n),
        n => Err(ConfigError::invalid(
            "[source] page_size",
            format!("must be between 1 and 1000, got {n}"),
        )),
    }
}

/// The appliance's rate limiter: its defaults, or what its admin set.
/// A quota of the appliance's rate limiter, from `field`: requests per window.
fn quota(field: &str, n: u32) -> Result<u32, ConfigError> {
    match n {
        1..=100_000 => Ok(n),
        n => Err(ConfigError::invalid(
            field,
            format!("must be between 1 and 100000, got {n}"),
        )),
    }
}

fn limits(s: &SourceSection) -> Result<Limits, ConfigError> {
    let d = Limits::APPLIANCE;
    let quota = |key: &str, value: Option<u32>, default: u32| {
        quota(&format!("[source] {key}"), value.unwrap_or(default))
    };
    let window = match s.rate_window_seconds {
        None => d.window,
        Some(secs) if secs.is_finite() && (0.1..=3600.0).contains(&secs) => {
            Duration::from_secs_f64(secs)
        }
        Some(secs) => {
            return Err(ConfigError::Invalid {
                field: "[source] rate_window_seconds".into(),
                message: format!("must be between 0.1 and 3600, got {secs}"),
            })
        }
    };
    Ok(Limits {
        per_session: quota("requests_per_minute", s.requests_per_minute, d.per_session)?,
        per_ip: quota(
            "requests_per_minute_per_ip",
            s.requests_per_minute_per_ip,
            d.per_ip,
        )?,
        window,
    })
}

fn trust(file: &ConfigFile) -> Result<TlsTrust, ConfigError> {
    let s = &file.source;
    let chosen = [s.ca_file.is_some(), s.thumbprint.is_some(), s.insecure]
        .iter()
        .filter(|x| **x)
        .count();
    if chosen > 1 {
        return Err(ConfigError::Invalid {
            field: "[source]".into(),
            message: "choose one of ca_file, thumbprint and insecure".into(),
        });
    }
    if let Some(t) = &s.thumbprint {
        return Thumbprint::parse(t)
            .map(TlsTrust::Pinned)
            .map_err(|message| ConfigError::Invalid {
                field: "[source] thumbprint".into(),
                message,
            });
    }
    if let Some(ca) = &s.ca_file {
        let path = file.relative(ca);
        // Found now rather than at the first connection, which may be the night's run.
        if !path.is_file() {
            return Err(ConfigError::invalid(
                "[source] ca_file",
                format!(
                    "{} is not a file (a relative path is read from the settings file's folder)",
                    path.display()
                ),
            ));
        }
        return Ok(TlsTrust::VerifyWithCa(path));
    }
    Ok(if s.insecure {
        TlsTrust::Insecure
    } else {
        TlsTrust::Verify
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::SubmitOrder;

    fn env(pairs: &[(&str, &str)]) -> FixedEnvironment {
        FixedEnvironment(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    const FILE: &str = r#"
        [source]
        url = "https://vrms-a.corp.local"
        user = "svc-vr@corp.local"
        thumbprint = "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99"

        [target]
        user = "svc-vr@site-b.local"
    "#;

    #[test]
    fn the_environment_overrides_the_file() {
        let file = ConfigFile::parse(FILE).unwrap();
        let s = client_settings(
            &file,
            &env(&[
                ("VRBULK_URL", "https://other:8443"),
                ("VRBULK_USER", "ops@corp.local"),
                ("VRBULK_PASSWORD", "pw-a"),
                ("VRBULK_REMOTE_USER", "ops@site-b.local"),
                ("VRBULK_REMOTE_PASSWORD", "pw-b"),
            ]),
        )
        .unwrap();
        assert_eq!(s.url.as_str(), "https://other:8443/");
        assert_eq!(s.source.user, "ops@corp.local");
        assert_eq!(s.target.user, "ops@site-b.local");
        assert_eq!(s.target.password.expose(), "pw-b");
        assert!(matches!(s.trust, TlsTrust::Pinned(_)));
        assert_eq!(s.api_version, ApiVersion::V2);
    }

    #[test]
    fn a_different_target_user_needs_its_own_password() {
        let file = ConfigFile::parse(FILE).unwrap();
        let err = client_settings(&file, &env(&[("VRBULK_PASSWORD", "pw-a")])).unwrap_err();
        assert!(err.to_string().contains("VRBULK_REMOTE_PASSWORD"), "{err}");
    }

    #[test]
    fn the_same_target_user_reuses_the_source_password() {
        let mut file = ConfigFile::parse(FILE).unwrap();
        file.target.user = None;
        let s = client_settings(&file, &env(&[("VRBULK_PASSWORD", "pw-a")])).unwrap();
        assert_eq!(s.target.user, "svc-vr@corp.local");
        assert_eq!(s.target.password.expose(), "pw-a");
    }

    #[test]
    fn a_missing_password_says_how_to_give_one() {
        let file = ConfigFile::parse(FILE).unwrap();
        let err = client_settings(&file, &env(&[])).unwrap_err();
        assert!(err.to_string().contains("VRBULK_PASSWORD"), "{err}");
    }

    #[test]
    fn unknown_keys_and_conflicting_trust_settings_are_refused() {
        let err = ConfigFile::parse("[source]\nthumbprnt = \"x\"\n").unwrap_err();
        assert!(err.contains("thumbprnt"), "{err}");
        let file = ConfigFile::parse(
            "[source]\nurl = \"https://a\"\nuser = \"u\"\ninsecure = true\nca_file = \"ca.pem\"\n",
        )
        .unwrap();
        let err = client_settings(&file, &env(&[("VRBULK_PASSWORD", "p")])).unwrap_err();
        assert!(err.to_string().contains("choose one"), "{err}");
    }

    #[test]
    fn urls_with_the_api_prefix_or_credentials_are_refused() {
        for url in [
            "https://vr/api/rest/vr/v2",
            "https://admin:pw@vr",
            "vr.corp.local",
        ] {
            let file =
                ConfigFile::parse(&format!("[source]\nurl = \"{url}\"\nuser = \"u\"\n")).unwrap();
            let err = client_settings(&file, &env(&[("VRBULK_PASSWORD", "p")])).unwrap_err();
            assert!(err.to_string().contains("[source] url"), "{url}: {err}");
        }
    }

    #[test]
    fn the_rate_limiter_defaults_to_the_appliances_and_can_be_changed() {
        let file = ConfigFile::parse(FILE).unwrap();
        let c = Connection::resolve(&file, &env(&[])).unwrap();
        assert_eq!(c.limits, Limits::APPLIANCE);
        let file = ConfigFile::parse(&format!("{FILE}\n[source]\n"));
        assert!(file.is_err(), "one [source] table only");
        let text = FILE.replace(
            "[target]",
            "requests_per_minute = 20\nrequests_per_minute_per_ip = 40\nrate_window_seconds = 2.5\n[target]",
        );
        let c = Connection::resolve(&ConfigFile::parse(&text).unwrap(), &env(&[])).unwrap();
        assert_eq!(
            c.limits,
            Limits {
                per_session: 20,
                per_ip: 40,
                window: Duration::from_millis(2500)
            }
        );
        for bad in [
            "requests_per_minute = 0",
            "rate_window_seconds = -1",
            "rate_window_seconds = nan",
            "rate_window_seconds = inf",
        ] {
            let text = FILE.replace("[target]", &format!("{bad}\n[target]"));
            let err = Connection::resolve(&ConfigFile::parse(&text).unwrap(), &env(&[]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("[source]"), "{bad}: {err}");
        }
    }

    #[test]
    fn limits_are_positive_whole_numbers_and_unknown_keys_are_refused() {
        let file = ConfigFile::parse(FILE).unwrap();
        assert_eq!(file.capacity().unwrap(), CapacityLimits::default());
        let text = format!(
            "{FILE}\n[limits]\nreplications_per_server = 150\nreplications_per_appliance = 4000\n"
        );
        let limits = ConfigFile::parse(&text).unwrap().capacity().unwrap();
        assert_eq!(
            limits,
            CapacityLimits {
                replications_per_server: Some(150),
                replications_per_appliance: Some(4000),
                replications_per_vcenter: None,
            }
        );
        let zero = format!("{FILE}\n[limits]\nreplications_per_vcenter = 0\n");
        let err = ConfigFile::parse(&zero).unwrap().capacity().unwrap_err();
        assert_eq!(
            err.to_string(),
            "[limits] replications_per_vcenter: must be between 1 and 100000 replications, got 0"
        );
        for bad in [
            "replications_per_server = -1",
            "replications_per_server = 2.5",
            "replications_per_server = \"200\"",
            "replications_per_sever = 200",
        ] {
            let text = format!("{FILE}\n[limits]\n{bad}\n");
            let err = ConfigFile::parse(&text).unwrap_err();
            assert!(err.contains("replications_per_se"), "{bad}: {err}");
        }
    }

    #[test]
    fn ca_file_is_relative_to_the_config_file_and_must_be_there() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[source]\nurl = \"https://a\"\nuser = \"u\"\nca_file = \"vmca.pem\"\n";
        let config = dir.path().join("vrbulk.toml");
        std::fs::write(&config, text).unwrap();
        let err = ConfigFile::load(Some(&config)).unwrap_err().to_string();
        assert!(
            err.contains("[source] ca_file: ") && err.contains("vmca.pem is not a file"),
            "{err}"
        );
        std::fs::write(dir.path().join("vmca.pem"), "PEM").unwrap();
        let file = ConfigFile::load(Some(&config)).unwrap();
        let s = client_settings(&file, &env(&[("VRBULK_PASSWORD", "p")])).unwrap();
        assert_eq!(s.trust, TlsTrust::VerifyWithCa(dir.path().join("vmca.pem")));
    }

    #[test]
    fn load_refuses_a_file_with_every_problem_of_it_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("vrbulk.toml");
        std::fs::write(
            &config,
            "[source]\nurl = \"vr.corp.local\"\npage_size = 0\n[defaults]\nrpo = 2\n\
             [run]\nsubmit_group = 0\nmax_attempts = 0\npoll_interval_seconds = nan\n",
        )
        .unwrap();
        let err = ConfigFile::load(Some(&config)).unwrap_err();
        let ConfigError::File { problems, .. } = &err else {
            panic!("{err:?}");
        };
        let fields: Vec<String> = problems
            .iter()
            .map(|p| {
                p.to_string()
                    .split(": ")
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            fields,
            [
                "[source] url",
                "[source] page_size",
                "[defaults] rpo",
                "[run] submit_group",
                "[run] max_attempts",
                "[run] poll_interval_seconds"
            ]
        );
        let shown = err.to_string();
        assert!(
            shown.contains(" has 6 problems:\n  [source] url: "),
            "{shown}"
        );
        assert!(
            shown.contains("\n  [defaults] rpo: expected minutes between 5 and 1440, got 2\n"),
            "{shown}"
        );
    }

    /// The options of `flags` over `file`, or their first problem.
    fn options(file: &RunSettings, flags: &RunSettings) -> Result<RunOptions, ConfigError> {
        let (options, problems) = run_options(file, flags);
        match problems.into_iter().next() {
            None => Ok(options),
            Some(first) => Err(first),
        }
    }

    #[test]
    fn a_flag_is_named_as_the_flag_and_a_key_as_the_key() {
        let file = RunSettings {
            workers: Some(0),
            ..RunSettings::default()
        };
        let err = options(&file, &RunSettings::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("[run] workers: must be between 1 and 64"),
            "{err}"
        );
        let flags = RunSettings {
            workers: Some(65),
            ..RunSettings::default()
        };
        let err = options(&RunSettings::default(), &flags)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--workers: must be between 1 and 64"),
            "{err}"
        );
        let file = ConfigFile::parse("[run]\norder = \"largest-first\"\n").unwrap();
        assert_eq!(
            file.problems()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["[run] order: `largest-first`: expected input or smallest-first"],
            "a word the file's order does not know is a problem said with the others"
        );
        let flags = RunSettings {
            requests_per_minute: Some(0),
            ..RunSettings::default()
        };
        let err = ConfigFile::parse(FILE)
            .unwrap()
            .for_run(&env(&[]), &flags)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "--requests-per-minute: must be between 1 and 100000, got 0"
        );
    }

    /// The one order of precedence, setting by setting: the built-in default, then the file,
    /// then the environment, then the flags.
    #[test]
    fn a_flag_wins_over_the_environment_which_wins_over_the_file() {
        let text = FILE.replace("[target]", "requests_per_minute = 20\n[target]\n")
            + "[run]\nworkers = 3\npoll_interval_seconds = 7.5\nsubmit_group = 10\n\
               lease_seconds = 90\norder = \"smallest-first\"\n\
               [limits]\nreplications_per_server = 150\n";
        let file = ConfigFile::parse(&text).unwrap();
        let nothing = RunSettings::default();
        let setup = file.for_run(&env(&[]), &nothing).unwrap();
        assert_eq!(setup.connection.url.as_str(), "https://vrms-a.corp.local/");
        assert_eq!(setup.connection.limits.per_session, 20, "the file's");
        assert_eq!(setup.options.workers, 3, "the file's");
        assert_eq!(
            setup.options.lookup_group,
            RunOptions::default().lookup_group,
            "the built-in default"
        );
        assert_eq!(setup.options.capacity.replications_per_server, Some(150));

        let env = env(&[
            ("VRBULK_URL", "https://other:8443"),
            ("VRBULK_USER", "ops@corp.local"),
        ]);
        let flags = RunSettings {
            workers: Some(5),
            poll_interval_seconds: Some(2.0),
            max_attempts: Some(9),
            requests_per_minute: Some(30),
            order: Some(Ok(SubmitOrder::Input)),
            until: Some(1_795_757_400_000),
            ..RunSettings::default()
        };
        let setup = file.for_run(&env, &flags).unwrap();
        assert_eq!(
            setup.connection.url.as_str(),
            "https://other:8443/",
            "env over file"
        );
        assert_eq!(setup.connection.user, "ops@corp.local", "env over file");
        assert_eq!(setup.connection.limits.per_session, 30, "flag over file");
        let o = setup.options;
        assert_eq!(o.workers, 5, "flag over file");
        assert_eq!(o.poll_interval, Duration::from_secs(2), "flag over file");
        assert_eq!(o.order, SubmitOrder::Input, "flag over file");
        assert_eq!(o.max_attempts, Some(9));
        assert_eq!(o.until, Some(1_795_757_400_000));
        assert_eq!(o.submit_group, 10, "the file's, no flag");
        assert_eq!(o.lease, Duration::from_secs(90), "the file's, no flag");
    }

    #[test]
    fn out_of_range_settings_are_refused_naming_the_setting() {
        let flags = RunSettings {
            workers: Some(0),
            ..RunSettings::default()
        };
        let err = options(&RunSettings::default(), &flags).unwrap_err();
        assert!(err.to_string().contains("workers"), "{err}");
        // The appliance takes at most 20 VMs in one configure call.
        let file = RunSettings {
            submit_group: Some(21),
            ..RunSettings::default()
        };
        let err = options(&file, &RunSettings::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("submit_group"), "{err}");
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e300] {
            let file = RunSettings {
                poll_interval_seconds: Some(bad),
                ..RunSettings::default()
            };
            let err = options(&file, &RunSettings::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains("poll_interval"), "{bad}: {err}");
        }
    }

    /// Any number in any numeric setting: an answer (a value or an error naming the setting),
    /// never a panic, and never a value out of its documented range.
    mod never_panics {
        use super::*;
        use proptest::prelude::*;

        fn seconds() -> impl Strategy<Value = Option<f64>> {
            prop_oneof![
                Just(None),
                any::<f64>().prop_map(Some),
                (-10.0f64..100_000.0).prop_map(Some),
                prop::sample::select(vec![f64::NAN, f64::INFINITY, -0.0, 0.1, 86_400.0])
                    .prop_map(Some),
            ]
        }

        proptest! {
            #[test]
            fn run_settings(
                workers in any::<Option<usize>>(),
                lookup in any::<Option<usize>>(),
                submit in any::<Option<usize>>(),
                attempts in any::<Option<u32>>(),
                poll in seconds(),
                lease in any::<Option<u64>>(),
                flag_poll in seconds(),
            ) {
                let file = RunSettings {
                    workers,
                    lookup_group: lookup,
                    submit_group: submit,
                    max_attempts: attempts,
                    poll_interval_seconds: poll,
                    lease_seconds: lease,
                    ..RunSettings::default()
                };
                let flags = RunSettings {
                    poll_interval_seconds: flag_poll,
                    ..RunSettings::default()
                };
                if let Ok(o) = options(&file, &flags) {
                    prop_assert!((1..=64).contains(&o.workers));
                    prop_assert!((1..=20).contains(&o.submit_group));
                    prop_assert!(o.poll_interval >= Duration::from_millis(100));
                    prop_assert!(o.lease >= Duration::from_secs(1));
                }
            }

            #[test]
            fn rate_limits(
                session in any::<Option<u32>>(),
                ip in any::<Option<u32>>(),
                window in seconds(),
            ) {
                let s = SourceSection {
                    requests_per_minute: session,
                    requests_per_minute_per_ip: ip,
                    rate_window_seconds: window,
                    ..SourceSection::default()
                };
                if let Ok(l) = limits(&s) {
                    prop_assert!(l.quota() >= 1);
                    prop_assert!(l.window >= Duration::from_millis(100));
                }
            }

            #[test]
            fn capacity_limits(
                server in any::<Option<u32>>(),
                appliance in any::<Option<u32>>(),
                vcenter in any::<Option<u32>>(),
            ) {
                let file = ConfigFile {
                    limits: CapacityLimits {
                        replications_per_server: server,
                        replications_per_appliance: appliance,
                        replications_per_vcenter: vcenter,
                    },
                    ..ConfigFile::default()
                };
                if let Ok(l) = file.capacity() {
                    for n in [l.replications_per_server, l.replications_per_appliance, l.replications_per_vcenter].into_iter().flatten() {
                        prop_assert!((1..=100_000).contains(&n));
                    }
                }
            }

            #[test]
            fn any_text_as_a_settings_file(text in any::<String>()) {
                let _ = ConfigFile::parse(&text);
            }
        }
    }
}
