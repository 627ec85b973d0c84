//! `cargo xtask bench`: speed is measured here, never in the tests. Builds the page, runs the
//! ignored benchmark tests with optimisations (each measures its anchors in the same run), and
//! writes their results, with the machine and versions, into docs/benchmarks.md between the
//! `bench:start` and `bench:end` markers.

use crate::frontend;
use crate::test::BROWSER_TESTS;
use crate::tools::{cargo, no_args, output, root, run, run_tests};

const START: &str = "<!-- bench:start -->";
const END: &str = "<!-- bench:end -->";

pub(crate) fn bench(args: &[String]) -> Result<(), String> {
    no_args(args, "bench")?;
    let size = frontend::build()?;
    crate::tools::ensure_test()?;
    crate::tools::ensure_bench_anchors()?;
    let mut results = vec![format!(
        "page size: wasm + JS {:.1} KB gzipped (budget {} KB)",
        size as f64 / 1000.0,
        frontend::BUDGET_GZIP_BYTES / 1000
    )];
    let dist = frontend::dist().to_string_lossy().into_owned();
    // The benchmarks start the bridge binary as a process of its own.
    run(
        &cargo(),
        &["build", "--release", "-p", "bridge", "--bin", "bridge"],
    )?;
    for bench in [
        "bridge_bench",
        "throughput_bench",
        "chat_bench",
        "page_bench",
        "programs_bench",
        "checks_bench",
        "capture_bench",
        "native_bench",
    ] {
        let command = [
            "test",
            "--release",
            "-p",
            "bench",
            "--test",
            bench,
            "--",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ];
        let (_, failed, lines) = run_tests(&cargo(), &command, &[(BROWSER_TESTS, dist.as_str())])?;
        if failed > 0 {
            return Err(format!("the {bench} benchmarks failed"));
        }
        results.extend(lines);
    }
    write_results(&results)
}

/// Replaces the marked section of docs/benchmarks.md with this run's results.
fn write_results(results: &[String]) -> Result<(), String> {
    let path = root().join("docs").join("benchmarks.md");
    let doc = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (Some(start), Some(end)) = (doc.find(START), doc.find(END)) else {
        return Err(format!(
            "{} has no {START} ... {END} section",
            path.display()
        ));
    };
    let first_line = |program: &str, args: &[&str]| {
        output(program, args)
            .and_then(|o| o.lines().next().map(str::to_string))
            .unwrap_or_else(|| "?".into())
    };
    let mut section = format!("{START}\n");
    section.push_str(&format!(
        "Run of `cargo xtask bench` on {} ({} cores, {}; {}; {}):\n\n",
        first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        first_line("nproc", &[]),
        first_line("uname", &["-m"]),
        first_line("rustc", &["--version"]),
        first_line("chromium", &["--version"]),
    ));
    for result in results {
        section.push_str(&format!("- {result}\n"));
    }
    let updated = format!("{}{section}{}", &doc[..start], &doc[end..]);
    std::fs::write(&path, updated).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("xtask: wrote the results into {}", path.display());
    Ok(())
}
