//! The vSphere Replication REST API: typed models of the spec, the HTTP client (sessions,
//! paging, errors, TLS). Knows nothing about jobs or batches.

pub mod client;
pub mod error;
pub mod model;
pub mod tls;

pub use client::{
    ApiVersion, Client, ClientMetrics, ClientSettings, Credentials, Filter, OpUsage, Politeness,
    RetryPolicy,
};
pub use error::{ApiError, ErrorClass, StatusError};
pub use tls::{Thumbprint, TlsTrust};
