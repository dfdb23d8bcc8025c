//! scangate keeps vulnerable images out of Kubernetes clusters.
//!
//! One binary, two roles: an admission webhook (`server`, `admission`) and a scan controller
//! (`controller`). Everything that decides something is a pure function in `api`, `admission`,
//! `policy` and `report`; I/O lives at the edges.

pub mod admin;
pub mod admission;
pub mod api;
pub mod attest;
pub mod cli;
pub mod cmd;
pub mod controller;
pub mod image;
pub mod index;
pub mod policy;
pub mod registry;
pub mod report;
pub mod sandbox;
pub mod server;
pub mod svr;
