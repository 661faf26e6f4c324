//! The process exit codes of the operator contract (DESIGN.md), in one place: every command
//! ends in one of them, `main` hands it to the OS, and `--help` and the README's table list
//! them from [`Exit::ALL`] (a test holds the README to it).

/// How a command ended, as the shell sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    Ok,
    JobsFailed,
    Usage,
    Connect,
    ReplicationError,
    NotProtected,
    WindowClosed,
    Interrupted,
    ClosedPipe,
}

impl Exit {
    pub const ALL: [Exit; 9] = [
        Exit::Ok,
        Exit::JobsFailed,
        Exit::Usage,
        Exit::Connect,
        Exit::ReplicationError,
        Exit::NotProtected,
        Exit::WindowClosed,
        Exit::Interrupted,
        Exit::ClosedPipe,
    ];

    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::JobsFailed => 1,
            Exit::Usage => 2,
            Exit::Connect => 3,
            Exit::ReplicationError => 4,
            Exit::NotProtected => 5,
            Exit::WindowClosed => 6,
            Exit::Interrupted => 130,
            Exit::ClosedPipe => 141,
        }
    }

    /// What the code tells the operator, as the README's table says it.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => {
                "every job succeeded or was skipped; `plan`: no VM would fail; `watch`: every job \
                 of the batch ended and every configured VM is protected"
            }
            Exit::JobsFailed => {
                "some jobs failed (the summary lists them with the server's words); `plan`, \
                 `--plan`: some VM would fail or be refused"
            }
            Exit::Usage => {
                "usage or input error: bad flag, bad CSV, bad settings, unknown batch, a file \
                 already imported; `plan`: nothing to plan (no configure batch with jobs left); \
                 a day-2 command refused: VMs of its batch not configured yet (without `--wait` \
                 or `--only-finished`), another unfinished batch on the same VMs, or `undo` not \
                 confirmed"
            }
            Exit::Connect => {
                "cannot connect or log in (a wrong password stops at its first refusal), the \
                 certificate is not trusted, or the appliance kept failing (5xx) after the retries"
            }
            Exit::ReplicationError => {
                "`watch`: some replication is in error, or no longer exists and no vrbulk batch \
                 removed it"
            }
            Exit::NotProtected => {
                "`watch`: not every VM of the batch is protected yet (jobs not configured yet, \
                 still syncing, paused, or powered off)"
            }
            Exit::WindowClosed => {
                "the change window (`--until`) closed with work left: the VMs not sent wait in \
                 the queue for the next run"
            }
            Exit::Interrupted => "interrupted (Ctrl-C); the next run resumes",
            Exit::ClosedPipe => {
                "the output was closed before the command ended (a `head` reading it stopped): \
                 it ended quietly, as other Unix tools do (128 + SIGPIPE)"
            }
        }
    }

    /// The list `--help` ends with.
    pub fn help() -> String {
        let mut text = String::from("Exit codes:");
        for exit in Exit::ALL {
            text.push_str(&format!("\n  {:>3}  {}", exit.code(), exit.meaning()));
        }
        text
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        exit.code().into()
    }
}
