//! `ferro-fuzz-seeds DIR`: writes the seed corpus of every fuzz target into `DIR/<target>/`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: ferro-fuzz-seeds DIR");
        return ExitCode::from(2);
    };
    match ferro_fuzz::seeds::write_all(std::path::Path::new(&dir)) {
        Ok(n) => {
            eprintln!("{n} seeds written");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ferro-fuzz-seeds: {e}");
            ExitCode::FAILURE
        }
    }
}
