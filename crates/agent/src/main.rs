//! `ferro-agent --config FILE`: the node's cluster agent. Everything lives in the library
//! (`ferro_agent`); this only wires the process to it.

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    ExitCode::from(ferro_agent::main_with_args(&argv))
}
