//! The simulator's two kinds of failure: `SimError` for starting the server or working its knobs
//! (the caller's problem), and `ApiError` for answering a request with a spec-shaped
//! `ResponseError` (the client's problem).

use std::net::SocketAddr;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::vr::model::ResponseError;

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot bind the simulator to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate the simulator's self-signed certificate")]
    Certificate(#[from] rcgen::Error),
    #[error("cannot build the simulator's TLS configuration")]
    Tls(#[from] rustls::Error),
    #[error("the simulator has no VM with id or name '{vm}'")]
    UnknownVm { vm: String },
}

/// An error answer: status, the `error_code`/`message` of the spec's `ResponseError`, and for
/// throttling the `Retry-After` seconds.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    pub fn with_retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// An injected failure with the status a test asked for (`fail_next`, `fail_rate`).
    pub fn injected(status: StatusCode) -> ApiError {
        let code = match status.as_u16() {
            429 => "TOO_MANY_REQUESTS",
            503 => "SERVICE_UNAVAILABLE",
            s if s >= 500 => "INTERNAL_SERVER_ERROR",
            401 => "UNAUTHORIZED",
            404 => "NOT_FOUND",
            _ => "BAD_REQUEST",
        };
        let e = ApiError::new(
            status,
            code,
            format!("simulated failure ({})", status.as_u16()),
        );
        // A throttled or unavailable server says when to come back, as appliances behind a
        // load balancer do.
        if matches!(status.as_u16(), 429 | 503) {
            e.with_retry_after(1)
        } else {
            e
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ResponseError {
            error_code: Some(self.code.to_string()),
            message: Some(self.message),
            // op_id only correlates logs; it need not repeat with the seed.
            op_id: Some(random_uuid()),
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

fn random_uuid() -> String {
    let mut rng = fastrand::Rng::new();
    super::inventory::uuid(&mut rng)
}
