//! `cargo xtask test`: what CI runs. Formatting and lints first (cheap, and they catch the
//! most), then the release build of the page (with its size budget), the lints of the Windows
//! and macOS builds and the release bridge with the page inside, then every test: the
//! native ones, the frontend's state tests, and the browser tests that drive Debian's Chromium
//! against a real bridge serving that build.

use crate::frontend;
use crate::tools::{self, cargo, no_args, run};

/// Environment variable that points the browser tests at the built page; when it is set they
/// fail rather than skip if anything they need is missing.
pub(crate) const BROWSER_TESTS: &str = "SOCKET_PLAYGROUND_DIST";
/// Environment variable that names the release bridge (the page inside it) for its test.
const RELEASE_BRIDGE: &str = "SOCKET_PLAYGROUND_RELEASE_BRIDGE";
/// Environment variable that names the Windows bridge for its test under wine.
const WINDOWS_BRIDGE: &str = "SOCKET_PLAYGROUND_WINDOWS_BRIDGE";
/// Names python.org's Windows Python for the test that runs bridge.exe under wine.
const WINDOWS_PYTHON: &str = "SOCKET_PLAYGROUND_WINDOWS_PYTHON";

pub(crate) fn test(args: &[String]) -> Result<(), String> {
    no_args(args, "test")?;
    let cargo = cargo();
    run(&cargo, &["fmt", "--all", "--", "--check"])?;
    run(&cargo, &["clippy", "--all-targets", "--", "-D", "warnings"])?;
    let wasm_lint = [
        "clippy",
        "-p",
        "frontend",
        "--target",
        "wasm32-unknown-unknown",
        "--",
        "-D",
        "warnings",
    ];
    tools::ensure_test()?;
    frontend::build()?;
    run(&cargo, &wasm_lint)?;
    // The bridge for Windows, as `cargo xtask dist` cross-compiles it: it must build, lint-clean,
    // with what is Linux-only behind its interfaces.
    crate::dist::ensure_windows_tools()?;
    run(
        &cargo,
        &[
            "clippy",
            "-p",
            "bridge",
            "--lib",
            "--bins",
            "--target",
            crate::dist::WINDOWS,
            "--",
            "-D",
            "warnings",
        ],
    )?;
    crate::dist::check_macos()?;
    // The one-file bridge a student downloads, as `cargo xtask dist` builds it: release, with
    // the page inside (its browser test runs a copy alone in an empty folder), and the Windows
    // one, which a test runs under wine.
    let release = crate::dist::build_bridge(None)?;
    let release = release.to_string_lossy().into_owned();
    let windows = crate::dist::build_bridge(Some(crate::dist::WINDOWS))?;
    let windows = windows.to_string_lossy().into_owned();
    let windows_python = crate::dist::ensure_windows_python()?;
    let windows_python = windows_python.to_string_lossy().into_owned();
    let dist = frontend::dist().to_string_lossy().into_owned();
    let env = [
        (BROWSER_TESTS, dist.as_str()),
        (RELEASE_BRIDGE, release.as_str()),
        (WINDOWS_BRIDGE, windows.as_str()),
        (WINDOWS_PYTHON, windows_python.as_str()),
    ];
    let mut passed = 0;
    let mut failed = 0;
    for command in [
        &[
            "test",
            "--workspace",
            "--exclude",
            "frontend",
            "--all-targets",
            // Every test binary runs even after one fails: the count then says everything.
            "--no-fail-fast",
        ][..],
        &["test", "-p", "frontend", "--lib"][..],
    ] {
        let (p, f) = tools::run_counting_tests(&cargo, command, &env)?;
        passed += p;
        failed += f;
    }
    // One plain closing line for the whole run, whatever the last test binary printed.
    println!("xtask test: {passed} passed, {failed} failed");
    if failed > 0 || passed == 0 {
        return Err(format!("{failed} tests failed, {passed} passed"));
    }
    Ok(())
}
