//! Typed errors of the VR client, classified once where the response is read.
//!
//! The rest of vrbulk matches on [`ErrorClass`], never on status codes: transient and throttled
//! failures are retried with backoff, session failures trigger a re-login, permanent ones fail the
//! job with the server's own words.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use super::tls::Thumbprint;

/// What kind of failure an [`ApiError`] is, which decides what the caller does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Connect failure, timeout, 500, 502, 503, 504: worth retrying after a backoff.
    Transient,
    /// 429: retry after the server's `Retry-After`.
    Throttled,
    /// 401: the session is gone or the credentials are wrong.
    Session,
    /// Any other 4xx, or an answer that does not decode: retrying will not help.
    Permanent,
    /// A site refused the user's credentials at login: nothing will work until the operator
    /// fixes them, and trying again only brings an SSO lockout closer.
    Credentials,
    /// Nothing was sent: the change window had closed when the request's turn came.
    NotSent,
}

impl ErrorClass {
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorClass::Transient | ErrorClass::Throttled)
    }
}

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{method} {path}: cannot reach {url}")]
    Connect {
        method: String,
        path: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },

    /// The TLS handshake failed on the certificate: a trust problem, not a network one.
    #[error(transparent)]
    Untrusted(Box<UntrustedError>),

    #[error("{method} {path}: no answer within {timeout:?}")]
    Timeout {
        method: String,
        path: String,
        timeout: Duration,
        #[source]
        source: reqwest::Error,
    },

    #[error(transparent)]
    Status(Box<StatusError>),

    #[error("{method} {path}: unexpected answer from the server: {detail}")]
    Decode {
        method: String,
        path: String,
        detail: String,
    },

    #[error(transparent)]
    Setup(#[from] SetupError),

    #[error(transparent)]
    CredentialsRefused(Box<CredentialsRefused>),

    /// A change (configure or a day-2 action) whose turn came after the end of the change
    /// window: it was not sent.
    #[error(
        "{method} {path}: not sent: the change window closed at {}",
        crate::timefmt::utc(*closed_at)
    )]
    WindowClosed {
        method: String,
        path: String,
        /// The end of the window (Unix ms).
        closed_at: i64,
    },
}

/// Which site a login is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Site {
    /// The appliance's own site (`POST /session`).
    Source,
    /// The target site of a pairing (`POST /pairings/{p}/remote-session`).
    Target { pairing_id: String },
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Site::Source => write!(f, "the source site"),
            Site::Target { pairing_id } => write!(f, "the target site of pairing {pairing_id}"),
        }
    }
}

/// A site refused the user at login (401). Said once per site and run: the client does not
/// try that site again, so a wrong password costs one refused login, not an account lockout.
#[derive(Debug, Clone, Error)]
#[error("{site} refused the login of {user} ({method} {path}: HTTP 401: {message})")]
pub struct CredentialsRefused {
    pub site: Site,
    pub user: String,
    pub method: String,
    pub path: String,
    /// The server's own words.
    pub message: String,
}

/// The appliance's certificate is not trusted. The message ends with the line to copy into the
/// settings, so it carries the handshake's reason itself instead of a source.
#[derive(Debug, Error)]
#[error(
    "{method} {path}: the certificate of {url} is not trusted ({reason}){}",
    presented.map(|t| format!(
        "; it presents the SHA-256 thumbprint {t}. If that is your appliance's certificate, \
         add this line under [source] in vrbulk.toml:\n    thumbprint = \"{t}\""
    )).unwrap_or_else(|| ": give its CA as [source] ca_file, or pin its thumbprint".into())
)]
pub struct UntrustedError {
    pub method: String,
    pub path: String,
    pub url: String,
    /// What the TLS layer said of the certificate.
    pub reason: String,
    /// The thumbprint of the certificate the server showed, when it could be read.
    pub presented: Option<Thumbprint>,
}

/// The client cannot be built from its settings; nothing was sent.
#[derive(Debug, Error)]
pub enum SetupError {
    #[error("cannot read ca_file {}", path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("ca_file {} is not PEM", path.display())]
    CaFileNotPem {
        path: PathBuf,
        #[source]
        source: reqwest::Error,
    },

    #[error("ca_file {} holds no certificate", path.display())]
    CaFileEmpty { path: PathBuf },

    #[error("cannot set up TLS")]
    Tls(#[source] rustls::Error),

    #[error("cannot build the HTTP client")]
    HttpClient(#[source] reqwest::Error),

    #[error("{url} cannot be used as a base URL")]
    BaseUrl { url: String },

    #[error("cannot encode a request body")]
    Encode(#[source] serde_json::Error),
}

/// A non-2xx answer, with the server's own words. Boxed: errors travel by value in every
/// `Result` of the client, and this is by far the largest variant.
#[derive(Debug, Error)]
#[error("{method} {path}: HTTP {status}{}: {message}", error_code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
pub struct StatusError {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// The server's `ResponseError.error_code`, when it sent one.
    pub error_code: Option<String>,
    /// The server's own words (`ResponseError.message`, or the body, or the status text).
    pub message: String,
    pub op_id: Option<String>,
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// Whether the error says itself which site it concerns (a refused login names the site
    /// that refused whom), so that a caller's words need not say it again.
    pub fn names_its_site(&self) -> bool {
        matches!(self, ApiError::CredentialsRefused(_))
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            ApiError::Connect { .. } | ApiError::Timeout { .. } => ErrorClass::Transient,
            ApiError::Status(e) => classify_status(e.status),
            ApiError::Untrusted(_) | ApiError::Decode { .. } | ApiError::Setup(_) => {
                ErrorClass::Permanent
            }
            ApiError::CredentialsRefused(_) => ErrorClass::Credentials,
            ApiError::WindowClosed { .. } => ErrorClass::NotSent,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status(e) => Some(e.status),
            _ => None,
        }
    }

    /// How long the server asked us to wait (429 / 503 `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Status(e) => e.retry_after,
            _ => None,
        }
    }

    /// The server's message alone, for reports that already name the VM and the step.
    pub fn server_message(&self) -> Option<&str> {
        match self {
            ApiError::Status(e) => Some(&e.message),
            _ => None,
        }
    }
}

/// An error and its causes in one line, each said once: reqwest's own message is terse
/// ("error sending request"), the reason is down the chain. For reasons written into a job's
/// record, where no `{:#}` will print the chain later.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

pub fn classify_status(status: u16) -> ErrorClass {
    match status {
        401 => ErrorClass::Session,
        429 => ErrorClass::Throttled,
        500 | 502 | 503 | 504 => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_the_design_says() {
        assert_eq!(classify_status(401), ErrorClass::Session);
        assert_eq!(classify_status(429), ErrorClass::Throttled);
        for s in [500, 502, 503, 504] {
            assert_eq!(classify_status(s), ErrorClass::Transient, "{s}");
        }
        for s in [400, 403, 404, 409, 501] {
            assert_eq!(classify_status(s), ErrorClass::Permanent, "{s}");
        }
    }

    #[test]
    fn status_error_shows_the_servers_code_and_words() {
        let e = ApiError::Status(Box::new(StatusError {
            method: "POST".into(),
            path: "/pairings/p/replications".into(),
            status: 400,
            error_code: Some("VR_INVALID_ARGUMENT".into()),
            message: "[0].rpo: must be between 5 and 1440".into(),
            op_id: None,
            retry_after: None,
        }));
        assert_eq!(
            e.to_string(),
            "POST /pairings/p/replications: HTTP 400 VR_INVALID_ARGUMENT: [0].rpo: must be between 5 and 1440"
        );
    }
}
