//! CRD types of `scanning.scangate.dev/v1beta1`, the scan status contract and phase derivation.

mod status;

pub use status::*;
