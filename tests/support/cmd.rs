//! A small fluent runner for the `vrbulk` binary: arguments, environment, then assertions on
//! the exit code and the output.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

pub struct Cmd {
    command: Command,
}

pub struct Ran {
    pub output: Output,
}

impl Cmd {
    pub fn new() -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vrbulk"));
        // The tests' own environment must not leak settings into the binary.
        for var in [
            "VRBULK_URL",
            "VRBULK_USER",
            "VRBULK_PASSWORD",
            "VRBULK_REMOTE_USER",
            "VRBULK_REMOTE_PASSWORD",
            "VRBULK_LOG",
        ] {
            command.env_remove(var);
        }
        Cmd { command }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    /// `--db db`: the queue to work on.
    pub fn db(self, db: &Path) -> Self {
        self.args([OsStr::new("--db"), db.as_os_str()])
    }

    /// `--config config`: the settings file.
    pub fn config(self, config: &Path) -> Self {
        self.args([OsStr::new("--config"), config.as_os_str()])
    }

    /// Runs in `dir` (for commands that work on the current folder, such as `init`).
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn run(mut self) -> Ran {
        Ran {
            output: self.command.output().expect("vrbulk runs"),
        }
    }

    #[track_caller]
    pub fn assert_exit(self, code: i32) -> Ran {
        let ran = self.run();
        ran.expect_code(code);
        ran
    }
}

impl Ran {
    /// Asserts the exit code, showing both outputs when it differs.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Ran {
        assert_eq!(
            self.output.status.code(),
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn stdout_contains(self, text: &str) -> Self {
        assert!(
            self.stdout().contains(text),
            "stdout lacks `{text}`:\n{}",
            self.stdout()
        );
        self
    }

    /// The line of stderr that says the error (`error: …`), or nothing.
    pub fn error_line(&self) -> String {
        self.stderr()
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_default()
            .to_string()
    }

    pub fn stderr_contains(self, text: &str) -> Self {
        assert!(
            self.stderr().contains(text),
            "stderr lacks `{text}`:\n{}",
            self.stderr()
        );
        self
    }
}

/// `vrbulk --db db --config config ARGS` as a child process that a test can kill, its output
/// thrown away.
pub fn spawn(db: &Path, config: &Path, args: &[&str]) -> std::process::Child {
    spawn_vrbulk(db, config, args, std::process::Stdio::null())
}

/// `vrbulk ARGS` with the queue at `db` and the settings at `config` (the simulator's
/// password in the environment), off the async threads.
pub async fn vrbulk(db: &Path, config: &Path, args: &[&str]) -> Ran {
    let cmd = Cmd::new()
        .env("VRBULK_PASSWORD", "VMware1!")
        .db(db)
        .config(config)
        .args(args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
    tokio::task::spawn_blocking(move || cmd.run())
        .await
        .unwrap()
}

/// `vrbulk ARGS` as [`vrbulk`], left running in the background: a long-running command a test
/// ends itself; its standard output goes to `stdout`.
pub fn spawn_vrbulk(
    db: &Path,
    config: &Path,
    args: &[&str],
    stdout: std::process::Stdio,
) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_vrbulk"))
        .env("VRBULK_PASSWORD", "VMware1!")
        .arg("--db")
        .arg(db)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}
