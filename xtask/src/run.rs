//! `cargo xtask run`: builds the page in release mode, then builds and starts the bridge, which
//! serves the page and prints the one URL to open (with the token in its fragment). Flags after
//! `run` go to the bridge (`cargo xtask run -- --help` lists them).

use crate::frontend;
use crate::tools::{cargo, run as run_command};

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    frontend::build()?;
    let dist = frontend::dist().to_string_lossy().into_owned();
    let cargo = cargo();
    let mut command = vec![
        "run",
        "--release",
        "--package",
        "bridge",
        "--",
        "--dist",
        &dist,
    ];
    command.extend(args.iter().map(String::as_str).filter(|a| *a != "--"));
    run_command(&cargo, &command)
}
