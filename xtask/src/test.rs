//! `cargo xtask test`: what CI runs. Formatting and lints first (cheap, and they catch the
//! most), then the frontend compiled for WebAssembly (the shared crate must stay WASM-safe),
//! then every native test.

use crate::tools::{self, cargo, run};

pub(crate) fn test(args: &[String]) -> Result<(), String> {
    if let Some(extra) = args.first() {
        return Err(format!("`test` takes no arguments, got '{extra}'"));
    }
    tools::ensure_wasm_target()?;
    tools::ensure_python()?;
    let cargo = cargo();
    run(&cargo, &["fmt", "--all", "--", "--check"])?;
    run(&cargo, &["clippy", "--all-targets", "--", "-D", "warnings"])?;
    run(
        &cargo,
        &[
            "clippy",
            "-p",
            "frontend",
            "--target",
            "wasm32-unknown-unknown",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    let (passed, failed) = tools::run_counting_tests(
        &cargo,
        &[
            "test",
            "--workspace",
            "--exclude",
            "frontend",
            "--all-targets",
        ],
    )?;
    // One plain closing line for the whole run, whatever the last test binary printed.
    println!("xtask test: {passed} passed, {failed} failed");
    if failed > 0 || passed == 0 {
        return Err(format!("{failed} tests failed, {passed} passed"));
    }
    Ok(())
}
