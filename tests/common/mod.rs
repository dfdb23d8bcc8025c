//! Support shared by the integration tests.
#![allow(dead_code)] // each test binary uses part of it

pub mod browser;
pub mod cluster;
pub mod controller;
pub mod controlplane;
pub mod enforced;
pub mod exports;
pub mod fixtures;
pub mod front;
pub mod hostile;
pub mod mirror;
pub mod net;
pub mod policy_reports;
pub mod prom;
pub mod registry;
pub mod webhook;
