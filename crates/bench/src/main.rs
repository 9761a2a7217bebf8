//! `ferro-bench`: see the library documentation and `scripts/bench.sh`.

use std::process::ExitCode;

use ferro_bench::cli::{self, Parsed};
use ferro_bench::{output, write_atomic, Error};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match cli::parse(&args) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            output::table(cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            output::error(&format!("{e}\n\n{}", cli::USAGE));
            return ExitCode::from(2);
        }
    };
    let report = match ferro_bench::bench(&opts) {
        Ok(r) => r,
        Err(e @ Error::Usage(_)) => {
            output::error(&e.to_string());
            return ExitCode::from(2);
        }
        Err(e) => {
            output::error(&e.to_string());
            return ExitCode::FAILURE;
        }
    };
    let written = report.console().and_then(|console| {
        output::table(&console);
        write_atomic(&opts.out, &report.markdown()?)
    });
    if let Err(e) = written {
        output::error(&e.to_string());
        return ExitCode::FAILURE;
    }
    output::progress(&format!("report written to {}", opts.out.display()));
    if report.has_failures() {
        output::error("some measurements failed: see the report");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
