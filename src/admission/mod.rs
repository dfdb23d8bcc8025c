//! Pure admission decisions: workloads, scanning objects, status enrichment.

pub mod status;
