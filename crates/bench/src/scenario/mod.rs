//! The scenarios, one module each, in report order. A module holds the scenario's figures
//! and what the report makes of them (tables, targets, failures: [`crate::report::Section`]),
//! and a `run` submodule that measures them on the harness ([`crate::harness`]). Its prose
//! is a section template of the same name in `crates/bench/templates`.

pub mod agent;
pub mod cluster_ipam;
pub mod cluster_scale;
pub mod cost;
pub mod floor;
pub mod latency;
pub mod parallel;
pub mod policy;
pub mod scale;
pub mod services;
