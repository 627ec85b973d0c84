//! Developer commands for Socket Playground, run as `cargo xtask <task>` (an alias in
//! `.cargo/config.toml`). Each task installs what it needs and is missing, so the same two
//! commands work on a fresh machine and in CI.
//!
//! - `cargo xtask run [bridge flags]`: build and start the playground.
//! - `cargo xtask test`: formatting, lints, and every test.
//! - `cargo xtask bench`: benchmarks, never part of the tests.
//! - `cargo xtask fuzz [SECONDS]`: the fuzz targets, each for a bounded time.
//! - `cargo xtask soak [SECONDS]`: the soak test.
//! - `cargo xtask dist`: the release archives for students (Linux, Windows).
//! - `cargo xtask page`: only build the page (and check its size).

mod bench;
mod dist;
mod frontend;
mod fuzz;
mod run;
mod soak;
mod test;
mod tools;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    let result = match task.as_deref() {
        Some("run") => run::run(&rest),
        Some("test") => test::test(&rest),
        Some("bench") => bench::bench(&rest),
        Some("fuzz") => fuzz::fuzz(&rest),
        Some("soak") => soak::soak(&rest),
        Some("setup") => tools::ensure_build()
            .and_then(|_| tools::ensure_test())
            .and_then(|_| dist::ensure_windows_tools())
            .and_then(|_| dist::ensure_windows_python().map(|_| ())),
        Some("dist") => dist::dist(&rest),
        Some("page") => frontend::build().map(|_| ()),
        Some("help" | "--help" | "-h") | None => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!("unknown task '{other}'\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  run [flags]   build and start the playground; flags go to the bridge (see --help there)
  test          check formatting and lints, then run every test
  bench         measure the bridge and the page next to the tools people use instead
  fuzz [SECS]   run each fuzz target for SECS seconds (default 60)
  soak [SECS]   clients connect, send and disconnect for SECS seconds (default 180); no leaks
  dist          release archives: one executable with the page inside, Linux and Windows
  page          only build the page into dist/ and check its size budget
  setup         only install what run and test need (they do it themselves too)";
