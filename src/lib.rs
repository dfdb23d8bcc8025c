//! scangate keeps vulnerable images out of Kubernetes clusters.
//!
//! One binary, two roles: an admission webhook (`server`, deciding with `admission`) and a
//! controller process (`controller`) that composes the scan lifecycle (`scan`), the runtime view
//! (`runtime`), the verdict mirror (`mirror`) and the results page (`web`). The roles share only
//! the core below them: `api`, `image`, `index`, `report`, `policy`, `sandbox`, `registry`,
//! `attest`, `tls`, `admin`, `rate`. Decisions are pure functions; I/O lives at the edges.
//!
//! No unsafe code: the binary's allocator (`src/main.rs`: which one, and the controller's purge
//! delay) is the only unsafe code.

#![forbid(unsafe_code)]

pub mod admin;
pub mod admission;
pub mod api;
pub mod attest;
pub mod cli;
pub mod cmd;
pub mod controller;
pub mod image;
pub mod index;
pub mod mirror;
pub mod policy;
pub mod rate;
pub mod registry;
pub mod report;
pub mod runtime;
pub mod sandbox;
pub mod scan;
pub mod server;
pub mod svr;
pub mod tls;
pub mod web;
