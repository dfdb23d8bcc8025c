//! CRD types of `scanning.scangate.dev/v1beta1`, the scan status contract and phase derivation.

pub mod annotation;
mod crds;
mod duration;
mod exception;
mod mirror;
mod policy;
mod scan;
mod severity;
mod status;
mod template;

pub use crds::{all_crds, crds_yaml};
pub use duration::{DurationError, parse_duration};
pub use exception::*;
pub use mirror::*;
pub use policy::*;
pub use scan::*;
pub use severity::{ALL_SEVERITIES, Severity};
pub use status::*;
pub use template::*;

/// The API group of every scangate kind.
pub const GROUP: &str = "scanning.scangate.dev";
/// The API version of every scangate kind.
pub const VERSION: &str = "v1beta1";
