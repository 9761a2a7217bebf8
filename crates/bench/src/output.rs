//! The only place the driver prints: the console table on stdout, progress on stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

/// Prints the console report on stdout.
pub fn table(text: &str) {
    print!("{text}");
}

/// One line of progress on stderr.
pub fn progress(msg: &str) {
    eprintln!("  .. {msg}");
}

/// An error on stderr.
pub fn error(msg: &str) {
    eprintln!("ferro-bench: {msg}");
}
