//! `cargo xtask run`: builds the page in release mode, then builds the bridge with the page
//! inside it and starts it; it prints the one URL to open (with the token in its fragment).
//! Flags after `run` go to the bridge (`cargo xtask run -- --help` lists them). It installs
//! only what building needs (no browser, no test tools).

use crate::frontend;
use crate::tools::{cargo, run as run_command};

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    frontend::build()?;
    let cargo = cargo();
    let mut command = vec!["run", "--release", "--package", "bridge", "--"];
    command.extend(args.iter().map(String::as_str).filter(|a| *a != "--"));
    run_command(&cargo, &command)
}
