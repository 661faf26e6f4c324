//! A spec-faithful vSphere Replication REST API simulator (axum), for tests, demos and benchmarks.
