//! The runtime view: the images running pods run and their verdicts now, kept current from
//! watches of Pods, ImageScans and ScanExceptions; the PolicyReports and metrics made from it;
//! first-sight scans of images that run without a trusted result, and VerdictTurned Events.
//! It looks down to the scan lifecycle ([`crate::scan`]) for scan names and cache trimming,
//! and hands each view on through [`reports::Publish`], never to the page directly.
//!
//! - [`inventory`]: what runs, and its verdicts now (pure);
//! - [`reports`]: the watches, the PolicyReports and the runtime metrics;
//! - [`first_sight`]: first-sight scans and VerdictTurned Events;
//! - [`metrics`]: the runtime's Prometheus metrics.

pub mod first_sight;
pub mod inventory;
pub mod metrics;
pub mod reports;
