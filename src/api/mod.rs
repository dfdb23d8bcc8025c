//! CRD types of scanning.scangate.dev/v1beta1.
