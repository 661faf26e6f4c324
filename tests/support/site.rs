//! A folder with a queue and a settings file for a simulator, and the binary run there: to its
//! end, or as a child process that a test can kill.

use std::path::PathBuf;

use vrbulk::sim::Simulator;

use super::cmd::{spawn, Cmd, Ran};
use super::fixtures::config_for;

pub struct Site {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub config: PathBuf,
}

impl Site {
    pub fn new(sim: &Simulator) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        // A short lease, so that a killed run's jobs come back quickly.
        let config = config_for(
            sim,
            dir.path(),
            "\n[run]\nworkers = 4\npoll_interval_seconds = 0.2\nlease_seconds = 1\n",
        );
        Site { dir, db, config }
    }

    /// `vrbulk --db … --config … ARGS`, run off the async threads (the simulator lives there).
    pub async fn vrbulk(&self, args: &[&str]) -> Ran {
        let cmd = Cmd::new()
            .env("VRBULK_PASSWORD", "VMware1!")
            .db(&self.db)
            .config(&self.config)
            .args(args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        tokio::task::spawn_blocking(move || cmd.run())
            .await
            .unwrap()
    }

    /// The binary with `args`, as a child process that a test can kill.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        spawn(&self.db, &self.config, args)
    }
}
