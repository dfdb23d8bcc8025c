//! Command line interface.
