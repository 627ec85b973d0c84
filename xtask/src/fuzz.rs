//! `cargo xtask fuzz [SECONDS]`: runs every cargo-fuzz target in `fuzz/` for SECONDS each
//! (default 60), after installing cargo-fuzz if it is missing. Never part of `cargo xtask test`.
//! cargo-fuzz needs nightly flags; `RUSTC_BOOTSTRAP=1` lets this machine's stable toolchain
//! accept them. A crash leaves its input in `fuzz/artifacts/<target>/`; copy it into
//! `fuzz/regressions/<target>/`, where the `fuzz_regressions` test replays every file.

use crate::tools::{output, root, run, seconds_arg};

/// The targets in fuzz/Cargo.toml.
const TARGETS: [&str; 2] = ["protocol", "data_names"];

pub(crate) fn fuzz(args: &[String]) -> Result<(), String> {
    let seconds = seconds_arg(args, 60, "fuzz", "a number of seconds per target")?;
    if output("cargo", &["fuzz", "--version"]).is_none() {
        eprintln!("xtask: installing cargo-fuzz");
        run("cargo", &["install", "cargo-fuzz", "--locked"])?;
    }
    let dir = root().join("fuzz");
    for target in TARGETS {
        eprintln!("xtask: fuzzing {target} for {seconds} s");
        let status = std::process::Command::new("cargo")
            .args([
                "fuzz",
                "run",
                target,
                "--",
                &format!("-max_total_time={seconds}"),
            ])
            .current_dir(&dir)
            .env("RUSTC_BOOTSTRAP", "1")
            .status()
            .map_err(|e| format!("cannot start cargo fuzz: {e}"))?;
        if !status.success() {
            // A crash leaves its input behind; no input means cargo fuzz failed before fuzzing
            // (a build error, say), which must not read as a crash.
            let artifacts = dir.join("artifacts").join(target);
            let kept = std::fs::read_dir(&artifacts).map_or(0, |d| d.count());
            return Err(if kept > 0 {
                format!("fuzzing {target} found a crash: its input is in fuzz/artifacts/{target}/")
            } else {
                format!(
                    "cargo fuzz run {target} failed ({status}) before finding anything; see above"
                )
            });
        }
    }
    eprintln!("xtask: no crash in {} targets", TARGETS.len());
    Ok(())
}
