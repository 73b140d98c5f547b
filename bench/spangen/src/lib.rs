//! Deterministic OTLP generators for weir's benchmarks (the archive benchmark and
//! the load generator):
//!
//! - [`synthetic`]: the load generator's spans (bench/loadgen builds its pool
//!   with it): ~700 bytes each, ten string attributes, random ids and random
//!   values in URLs and user ids.
//! - [`mesh`]: spans and logs shaped like a real service mesh: Kubernetes
//!   resource attributes, semantic-convention HTTP, gRPC and database
//!   attributes, a few routes and status codes repeated, log-normal durations,
//!   one pod per request as an SDK exports them.
//!
//! The same seed always gives the same requests (for one version of `rand`).

pub mod mesh;
pub mod synthetic;

pub mod values;

pub use mesh::Mesh;
