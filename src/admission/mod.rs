//! Pure admission decisions: workloads, scanning objects, status enrichment.

pub mod config;
pub mod pin;
pub mod pod;
pub mod pod_security;
pub mod reporter;
pub mod request;
pub mod review;
pub mod rollout;
pub mod scanning;
pub mod status;
pub mod workload;
