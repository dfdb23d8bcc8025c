//! Image reference parsing and normalization.
