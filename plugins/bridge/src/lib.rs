//! `bridge`: the kubenet model. See README.md.
//!
//! The library holds the plugin; the binary (`main.rs`) only hands the process to the
//! dispatcher. [`config`] is public so that its parser can be exercised on its own (the
//! fuzz targets under `crates/fuzz` do).
#![forbid(unsafe_code)]

mod apply;
pub mod config;
mod plan;
pub mod plugin;
