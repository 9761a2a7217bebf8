//! `cnictl`: run CNI network configuration lists against a network namespace, libcni-style.
//! Everything lives in the library (`ferro_cnictl`); this only wires the process to it.

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let env = ferro_spec::Env::from_process();
    let cwd = std::env::current_dir().ok();
    let status = ferro_cnictl::run(
        &argv,
        &env,
        cwd,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    ExitCode::from(status)
}
