//! Pure admission decisions: workloads, scanning objects, status enrichment.
