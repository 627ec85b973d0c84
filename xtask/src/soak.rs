//! `cargo xtask soak [SECONDS]`: the soak test (bridge/tests/soak.rs), SECONDS of clients
//! connecting, sending and disconnecting (default 180), with optimisations. Never part of
//! `cargo xtask test`.

use crate::tools::{cargo, run};

pub(crate) fn soak(args: &[String]) -> Result<(), String> {
    let seconds: u64 = match args.first() {
        None => 180,
        Some(text) => text
            .parse()
            .map_err(|_| format!("`soak` takes a number of seconds, got '{text}'"))?,
    };
    std::env::set_var("SOAK_SECONDS", seconds.to_string());
    run(
        &cargo(),
        &[
            "test",
            "--release",
            "-p",
            "bridge",
            "--test",
            "soak",
            "--",
            "--ignored",
            "--nocapture",
        ],
    )
}
