//! Pure admission decisions: workloads, scanning objects, status enrichment.

pub mod config;
pub mod status;
pub mod workload;
