//! Running commands and installing what a task needs, as `../shared/TOOLCHAIN.md` says works on
//! these machines; anything already present is left alone.

use std::path::PathBuf;
use std::process::Command;

/// The workspace root (the parent of this crate's folder).
pub(crate) fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// The optional `[SECONDS]` argument of `command` (`what` says what it counts), or `default`.
pub(crate) fn seconds_arg(
    args: &[String],
    default: u64,
    command: &str,
    what: &str,
) -> Result<u64, String> {
    match args.first() {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("`{command}` takes {what}, got '{text}'")),
    }
}

/// Refuses any argument to `command`, which takes none.
pub(crate) fn no_args(args: &[String], command: &str) -> Result<(), String> {
    match args.first() {
        Some(extra) => Err(format!("`{command}` takes no arguments, got '{extra}'")),
        None => Ok(()),
    }
}

/// Runs a command in the workspace root, echoing it first; fails if it fails.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<(), String> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

/// Runs a `cargo test`-like command, passing its output through, and adds up the
/// `test result: ... N passed; M failed` lines of every test binary.
pub(crate) fn run_counting_tests(
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<(u64, u64), String> {
    run_tests(program, args, env).map(|(passed, failed, _)| (passed, failed))
}

/// Like [`run_counting_tests`], also returning the lines that start with `BENCH `.
pub(crate) fn run_tests(
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<(u64, u64, Vec<String>), String> {
    use std::io::{BufRead, BufReader};
    eprintln!("$ {program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .current_dir(root())
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let (mut passed, mut failed) = (0, 0);
    let mut benches = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some(at) = line.find("BENCH ") {
                benches.push(line[at + "BENCH ".len()..].to_string());
            }
            if let Some(summary) = line.strip_prefix("test result: ") {
                passed += count_before(summary, " passed");
                failed += count_before(summary, " failed");
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("{program} did not finish: {e}"))?;
    if !status.success() && failed == 0 {
        return Err(format!("`{program} {}` failed ({status})", args.join(" ")));
    }
    Ok((passed, failed, benches))
}

/// The number just before `word` in a summary such as `ok. 10 passed; 0 failed; ...`.
fn count_before(summary: &str, word: &str) -> u64 {
    summary
        .split(';')
        .find_map(|part| part.trim().strip_suffix(word.trim_start()))
        .and_then(|n| n.trim().rsplit(' ').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Runs a command quietly and returns its stdout, or `None` if it cannot run or fails.
pub(crate) fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The cargo that runs this task (the toolchain the project builds with).
pub(crate) fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// `rustup target add wasm32-unknown-unknown`, unless it is installed.
pub(crate) fn ensure_wasm_target() -> Result<(), String> {
    ensure_target("wasm32-unknown-unknown")
}

/// `rustup target add TARGET`, unless it is installed.
pub(crate) fn ensure_target(target: &str) -> Result<(), String> {
    let installed = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if installed.lines().any(|l| l.trim() == target) {
        return Ok(());
    }
    run("rustup", &["target", "add", target])
}

/// The standard library's source (rustup's `rust-src`): the page builds its own `std`, for
/// size (`frontend::SMALL_STD`).
pub(crate) fn ensure_rust_src() -> Result<(), String> {
    let installed = output("rustup", &["component", "list", "--installed"]).unwrap_or_default();
    if installed.lines().any(|l| l.trim().starts_with("rust-src")) {
        return Ok(());
    }
    run("rustup", &["component", "add", "rust-src"])
}

/// The crates the standard library's source depends on, as its own `Cargo.lock` names them,
/// in cargo's cache: `-Zbuild-std` resolves that whole lock file (every system's crates, such
/// as `moto-rt`), and the page builds `--offline`. Nothing else fetches them: on a fresh
/// machine the page's build failed with "no matching package named `moto-rt` found".
/// Fetched once per toolchain; `--offline` first, so a machine that has them needs no network.
pub(crate) fn ensure_std_crates() -> Result<(), String> {
    let sysroot = output("rustc", &["--print", "sysroot"])
        .ok_or("cannot ask rustc where its standard library is")?;
    let manifest = PathBuf::from(sysroot.trim()).join("lib/rustlib/src/rust/library/Cargo.toml");
    let manifest = manifest.to_string_lossy();
    let fetch = |offline: bool| {
        let mut command = Command::new(cargo());
        command
            .args(["fetch", "--locked", "--manifest-path", &manifest])
            .args(offline.then_some("--offline"))
            // The library's manifest uses unstable cargo features (`profile-rustflags`).
            .env("RUSTC_BOOTSTRAP", "1")
            .current_dir(root());
        command
    };
    let quiet = fetch(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if quiet.is_ok_and(|s| s.success()) {
        return Ok(());
    }
    eprintln!("$ cargo fetch --locked --manifest-path {manifest}");
    let status = fetch(false)
        .status()
        .map_err(|e| format!("cannot start cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "cannot fetch the crates of the standard library's source ({status})"
        ))
    }
}

/// python3 is the outside peer the tests talk to; it is on every machine of this kind.
pub(crate) fn ensure_python() -> Result<(), String> {
    output("python3", &["--version"])
        .map(|_| ())
        .ok_or_else(|| "python3 is needed as a real socket peer in the tests".to_string())
}

/// Folder for tools the project installs itself (ignored by git).
pub(crate) fn tools_dir() -> PathBuf {
    root().join(".tools")
}

/// trunk 0.21 (0.22 needs a newer rustc than these machines have).
pub(crate) fn ensure_trunk() -> Result<(), String> {
    if output("trunk", &["--version"]).is_some_and(|v| v.trim().starts_with("trunk 0.21")) {
        return Ok(());
    }
    eprintln!("xtask: installing trunk 0.21 (about 8 minutes on 2 cores, once per machine)");
    run(
        &cargo(),
        &["install", "trunk", "--version", "^0.21", "--locked"],
    )
}

/// The wasm-bindgen version in Cargo.lock: the CLI must match it exactly.
pub(crate) fn wasm_bindgen_version() -> Result<String, String> {
    locked_version("wasm-bindgen")
}

/// The version of `package` in Cargo.lock (the first, if several).
pub(crate) fn locked_version(package: &str) -> Result<String, String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock"))
        .map_err(|e| format!("cannot read Cargo.lock: {e}"))?;
    let name = format!("name = \"{package}\"\n");
    lock.split("[[package]]")
        .find(|block| block.contains(&name))
        .and_then(|block| {
            block
                .lines()
                .find_map(|l| l.strip_prefix("version = \""))
                .map(|v| v.trim_end_matches('"').to_string())
        })
        .ok_or_else(|| format!("Cargo.lock has no {package} package"))
}

/// wasm-bindgen-cli at exactly the crate's version. Not `--locked`: one of its locked
/// dependencies is missing from the registry (see ../shared/TOOLCHAIN.md).
pub(crate) fn ensure_wasm_bindgen() -> Result<(), String> {
    let version = wasm_bindgen_version()?;
    let installed = output("wasm-bindgen", &["--version"]).unwrap_or_default();
    if installed.split_whitespace().nth(1) == Some(version.as_str()) {
        return Ok(());
    }
    eprintln!("xtask: installing wasm-bindgen-cli {version} (about 3 minutes, once per machine)");
    run(
        &cargo(),
        &[
            "install",
            "wasm-bindgen-cli",
            "--version",
            &format!("={version}"),
        ],
    )
}

/// binaryen 132 from npm (Debian's is too old for this rustc's wasm) and terser 5 (trunk's own
/// JavaScript minifier cannot read wasm-bindgen's `export ... as default` and leaves the glue
/// as it is); returns the folder to put on PATH so trunk finds its wasm-opt.
pub(crate) fn ensure_wasm_opt() -> Result<PathBuf, String> {
    let bin = tools_dir().join("node_modules").join(".bin");
    let wasm_opt = bin.join("wasm-opt");
    let version = output(&wasm_opt.to_string_lossy(), &["--version"]).unwrap_or_default();
    let terser = output(&bin.join("terser").to_string_lossy(), &["--version"]).unwrap_or_default();
    if version.contains("version 132") && terser.starts_with("terser 5") {
        return Ok(bin);
    }
    std::fs::create_dir_all(tools_dir()).map_err(|e| format!("cannot create .tools: {e}"))?;
    let prefix = tools_dir().to_string_lossy().into_owned();
    run(
        "npm",
        &[
            "install",
            "--prefix",
            &prefix,
            "--no-audit",
            "--no-fund",
            "binaryen@132",
            "terser@5",
        ],
    )?;
    Ok(bin)
}

/// Debian's Chromium and ChromeDriver, for the browser tests.
pub(crate) fn ensure_chromium() -> Result<(), String> {
    ensure_debian(&[(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")])
}

/// The tools the benchmarks compare the bridge with: iperf3, socat, ncat (`--broker`) and
/// strace (the anchor for tracing a program) and tcpdump (for capturing packets).
pub(crate) fn ensure_bench_anchors() -> Result<(), String> {
    ensure_debian(&[
        ("/usr/bin/iperf3", "iperf3"),
        ("/usr/bin/socat", "socat"),
        ("/usr/bin/ncat", "ncat"),
        ("/usr/bin/strace", "strace"),
        ("/usr/bin/tcpdump", "tcpdump"),
    ])
}

/// Debian's tshark (the packet-capture tests read the bridge's pcapng files with it), gcc
/// (the tracing tests compile C socket programs) and Go (a Go client, whose runtime makes its
/// system calls without libc, is traced against a C server) and wine (the Windows build runs
/// under it).
pub(crate) fn ensure_test_tools() -> Result<(), String> {
    ensure_debian(&[
        ("/usr/bin/tshark", "tshark"),
        ("/usr/bin/gcc", "gcc"),
        ("/usr/bin/go", "golang-go"),
        // The Windows build's test runs it under wine.
        ("/usr/lib/wine/wine64", "wine64"),
    ])
}

/// Installs the Debian packages whose programs (paths) are missing; skips when all are there.
pub(crate) fn ensure_debian(wanted: &[(&str, &str)]) -> Result<(), String> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(path, _)| !std::path::Path::new(path).exists())
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian's {}", missing.join(", "));
    // No questions (wireshark-common asks who may capture): the packages' defaults.
    std::env::set_var("DEBIAN_FRONTEND", "noninteractive");
    run("apt-get", &["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(missing);
    run("apt-get", &args)
}

/// Python's `cryptography` package: the labs' Fernet, used by the tests' Python peers.
pub(crate) fn ensure_python_cryptography() -> Result<(), String> {
    if output("python3", &["-c", "import cryptography.fernet"]).is_some() {
        return Ok(());
    }
    run(
        "python3",
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "cryptography",
        ],
    )
}

/// What building the page needs (also for running the playground, which builds it); returns
/// the extra PATH folder (wasm-opt, terser) that trunk must see. No browser: running the
/// playground needs none of the test tools.
pub(crate) fn ensure_build() -> Result<PathBuf, String> {
    ensure_wasm_target()?;
    ensure_rust_src()?;
    ensure_std_crates()?;
    let wasm_opt = ensure_wasm_opt()?;
    ensure_wasm_bindgen()?;
    ensure_trunk()?;
    Ok(wasm_opt)
}

/// What the tests need beyond the build: python3 and its `cryptography` (the labs' peers),
/// Debian's Chromium and ChromeDriver (browser tests), tshark, gcc and Go.
pub(crate) fn ensure_test() -> Result<(), String> {
    ensure_python()?;
    ensure_python_cryptography()?;
    ensure_chromium()?;
    ensure_test_tools()
}

/// Where Debian puts the browser and its driver.
pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";
pub(crate) const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// PATH with `dir` in front.
pub(crate) fn path_with(dir: &std::path::Path) -> String {
    let old = std::env::var("PATH").unwrap_or_default();
    format!("{}:{old}", dir.display())
}

#[cfg(test)]
mod tests {
    use super::count_before;

    #[test]
    fn reads_cargo_test_summaries() {
        let line = "ok. 10 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1s";
        assert_eq!(count_before(line, " passed"), 10);
        assert_eq!(count_before(line, " failed"), 2);
        assert_eq!(count_before("FAILED. 3 passed; 1 failed;", " failed"), 1);
    }
}
