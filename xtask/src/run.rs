//! `cargo xtask run`: builds the bridge in release mode and starts it; it prints the URL to
//! open. Flags after `run` go to the bridge (`cargo xtask run -- --help` lists them).

use crate::tools::{cargo, run as run_command};

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let cargo = cargo();
    let mut command = vec!["run", "--release", "--package", "bridge", "--"];
    command.extend(args.iter().map(String::as_str).filter(|a| *a != "--"));
    run_command(&cargo, &command)
}
