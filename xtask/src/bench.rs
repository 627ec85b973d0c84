//! `cargo xtask bench`: speed is measured here, never in the tests. Builds the page, then runs
//! the ignored benchmark tests with optimisations and prints their medians (copy them into
//! docs/benchmarks.md).

use crate::frontend;
use crate::test::BROWSER_TESTS;
use crate::tools::{cargo, run_counting_tests};

pub(crate) fn bench(args: &[String]) -> Result<(), String> {
    if let Some(extra) = args.first() {
        return Err(format!("`bench` takes no arguments, got '{extra}'"));
    }
    let size = frontend::build()?;
    println!(
        "page size: wasm + JS {:.1} KB gzipped (budget {} KB)",
        size as f64 / 1024.0,
        frontend::BUDGET_GZIP_BYTES / 1024
    );
    let dist = frontend::dist().to_string_lossy().into_owned();
    run_counting_tests(
        &cargo(),
        &[
            "test",
            "--release",
            "-p",
            "bridge",
            "--test",
            "page_bench",
            "--",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ],
        &[(BROWSER_TESTS, dist.as_str())],
    )
    .map(|_| ())
}
