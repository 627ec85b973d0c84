//! `cargo xtask soak [SECONDS]`: the soak test (bench/tests/soak.rs), SECONDS of clients
//! connecting, sending and disconnecting (default 180), with optimisations. Never part of
//! `cargo xtask test`.

use crate::tools::{cargo, run, seconds_arg};

pub(crate) fn soak(args: &[String]) -> Result<(), String> {
    let seconds = seconds_arg(args, 180, "soak", "a number of seconds")?;
    std::env::set_var("SOAK_SECONDS", seconds.to_string());
    run(
        &cargo(),
        &["build", "--release", "-p", "bridge", "--bin", "bridge"],
    )?;
    run(
        &cargo(),
        &[
            "test",
            "--release",
            "-p",
            "bench",
            "--test",
            "soak",
            "--",
            "--ignored",
            "--nocapture",
        ],
    )
}
