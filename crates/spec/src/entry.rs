//! The process entry point of a plugin binary, without Rust's runtime start-up.
//!
//! A plugin process lives a few milliseconds, and what Rust's standard library does before
//! `main` is a measurable part of them (about 0.07 ms of a 0.6–0.7 ms process here): it reads
//! `/proc/self/maps` to find the main thread's stack guard, maps an alternate signal stack
//! and installs handlers that report a stack overflow by name, and polls the three standard
//! descriptors. [`plugin_main!`](crate::plugin_main) has the C library call the plugin
//! directly (the binary is `#![no_main]`), and [`start`] keeps of that start-up what a plugin
//! relies on:
//!
//! - SIGPIPE is ignored, so a peer that stops reading (a delegated IPAM plugin that exits
//!   before reading its configuration, a runtime that closed the result pipe) is an error
//!   to handle, not a killed plugin;
//! - standard output is flushed before the process exits, as Rust's exit path would.
//!
//! What is given up: a stack overflow ends the process with SIGSEGV instead of a message
//! naming the thread.

use std::ffi::c_int;
use std::io::Write;

use crate::skel::{self, Plugin};

/// Defines the C `main` of a plugin binary that is `#![no_main]`: it runs
/// [`start`](crate::entry::start) with the plugin given.
///
/// ```text
/// #![no_main]
/// ferro_spec::plugin_main!(ferro_bridge::plugin::Bridge);
/// ```
#[macro_export]
macro_rules! plugin_main {
    ($plugin:expr) => {
        /// The process entry point the C library calls (see `ferro_spec::entry`).
        #[allow(unsafe_code)] // an entry point needs its exact, unmangled symbol name
        #[unsafe(no_mangle)]
        extern "C" fn main(
            _argc: ::std::ffi::c_int,
            _argv: *const *const ::std::ffi::c_char,
        ) -> ::std::ffi::c_int {
            $crate::entry::start(&$plugin)
        }
    };
}

/// Runs `plugin` as the whole process: SIGPIPE ignored, [`skel::run`], standard output
/// flushed; the exit status.
pub fn start(plugin: &dyn Plugin) -> c_int {
    ignore_sigpipe();
    let code = skel::run(plugin);
    let _ = std::io::stdout().flush();
    c_int::from(code)
}

/// What Rust's start-up does for every program: writes to a pipe nobody reads return
/// `EPIPE` instead of killing the process.
#[allow(unsafe_code)]
fn ignore_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: SIG_IGN installs no handler, so no code of ours can run in signal context; it
    // runs first in the process, before any thread exists.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}
