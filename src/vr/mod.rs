//! The vSphere Replication REST API: typed models of the spec, the HTTP client (sessions,
//! paging, errors, TLS). Knows nothing about jobs or batches.

pub mod budget;
pub mod client;
pub mod error;
pub mod model;
pub mod tls;

pub use budget::{Budget, BudgetStats, BudgetStatus, Ledger, Limits};
pub use client::{
    ApiVersion, Client, ClientMetrics, ClientSettings, Credentials, Filter, OpUsage, Page,
    Politeness, RetryPolicy,
};
pub use error::{ApiError, CredentialsRefused, ErrorClass, Site, StatusError, UntrustedError};
pub use tls::{Thumbprint, TlsTrust};
