//! Who runs vrbulk and where: the operator and host of the audit record, and the owner of
//! a run's leases.

use crate::queue::Liveness;

/// Who runs this and where, for the audit record: `$USER` first, as the operator's session
/// names them, then the account's name, for sessions (cron, CI) without one.
pub fn who() -> (String, String) {
    who_with(&|k: &str| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

/// [`who`] with `env` as the environment.
fn who_with(env: &dyn Fn(&str) -> Option<String>) -> (String, String) {
    let operator = env("USER")
        .or_else(|| env("USERNAME"))
        .or_else(|| whoami::username().ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".into());
    let host = whoami::hostname()
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| env("HOSTNAME"))
        .or_else(|| env("COMPUTERNAME"))
        .unwrap_or_else(|| "unknown".into());
    (operator, host)
}

/// Whether the lease owner `host:pid:run` is a process that is gone: only a process on this
/// host can be asked; of another host's nothing is known (`false`).
pub fn owner_is_gone(owner: &str) -> bool {
    let mut parts = owner.splitn(3, ':');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<i32>() else {
        return false;
    };
    host == who().1 && !process_alive(pid)
}

/// How to judge a run's owner (`host:pid:run`) from this process: a process of this host is
/// asked whether it lives, as `run` asks before it takes a batch over; of another host's
/// nothing is known.
pub fn liveness_here() -> impl Fn(&str) -> Liveness {
    let (_, here) = who();
    move |owner: &str| {
        let mut parts = owner.splitn(3, ':');
        let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
            return Liveness::Unknown;
        };
        if host != here || pid.parse::<u32>().is_err() {
            Liveness::Unknown
        } else if owner_is_gone(owner) {
            Liveness::Gone
        } else {
            Liveness::Alive
        }
    }
}

/// Whether the lease owner `host:pid:run` is this process.
pub fn is_this_process(owner: &str) -> bool {
    let mut parts = owner.splitn(3, ':');
    parts.next() == Some(who().1.as_str())
        && parts.next() == Some(std::process::id().to_string().as_str())
}

#[cfg(unix)]
fn process_alive(pid: i32) -> bool {
    if has_exited(pid) {
        return false;
    }
    // SAFETY: signal 0 sends nothing; it only asks whether the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Whether `pid` has exited and only waits for its parent to reap it (a zombie, by Linux's
/// `/proc`; elsewhere this is not known). Such a process still answers signal 0, so a run just
/// killed would read as working for a while, though it holds nothing any more.
#[cfg(unix)]
fn has_exited(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (command) state ...`: the command may hold spaces and parentheses of its own.
    stat.rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
}

#[cfg(not(unix))]
fn process_alive(_pid: i32) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a command of the system prints, as a shell would show it.
    fn output_of(program: &str, args: &[&str]) -> String {
        let out = std::process::Command::new(program)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    #[test]
    fn without_user_variables_the_account_and_host_come_from_the_system() {
        let (operator, host) = who_with(&|_| None);
        assert_eq!(operator, output_of("id", &["-un"]));
        assert_eq!(host, output_of("hostname", &[]));
        let (operator, _) = who_with(&|k| (k == "USER").then(|| "ops".to_string()));
        assert_eq!(operator, "ops", "the session's own name wins");
    }

    #[test]
    fn this_process_is_not_gone_and_a_finished_one_is() {
        let host = who().1;
        assert!(!owner_is_gone(&format!(
            "{host}:{}:abc",
            std::process::id()
        )));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Exited and not reaped yet: gone, though it still answers signal 0.
        #[cfg(target_os = "linux")]
        {
            let stat = format!("/proc/{pid}/stat");
            let zombie = || std::fs::read_to_string(&stat).unwrap().contains(") Z");
            for _ in 0..500 {
                if zombie() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            assert!(zombie(), "`true` ends within five seconds");
            assert!(owner_is_gone(&format!("{host}:{pid}:abc")));
        }
        child.wait().unwrap();
        assert!(owner_is_gone(&format!("{host}:{pid}:abc")));
        assert!(!owner_is_gone(&format!("elsewhere.example:{pid}:abc")));
        assert!(!owner_is_gone("not an owner"));
    }
}
