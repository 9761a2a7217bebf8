//! `flat`: the Azure CNI model (transparent mode). See README.md.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    ferro_spec::run(&ferro_flat::plugin::Flat)
}
