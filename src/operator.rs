//! Who runs vrbulk and where: the operator and host of the audit record, and the owner of
//! a run's leases.

/// Who runs this and where, for the audit record.
pub fn who() -> (String, String) {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let operator = env("USER")
        .or_else(|| env("USERNAME"))
        .or_else(login_name)
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| env("HOSTNAME"))
        .or_else(|| env("COMPUTERNAME"))
        .unwrap_or_else(|| "unknown".into());
    (operator, host)
}

/// The account's name from the password database, for sessions (cron, CI) without `$USER`.
#[cfg(unix)]
fn login_name() -> Option<String> {
    // SAFETY: getpwuid returns a pointer into static storage or null; it is read at once, on
    // this thread, before any other call could overwrite it.
    unsafe {
        let entry = libc::getpwuid(libc::getuid());
        if entry.is_null() || (*entry).pw_name.is_null() {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr((*entry).pw_name)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

#[cfg(not(unix))]
fn login_name() -> Option<String> {
    None
}
