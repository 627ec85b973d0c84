//! What the tracing benchmarks share: running a client that times its own loop and prints
//! the seconds, and the median of runs.

use std::process::Stdio;

/// Runs `program args...` and returns the loop time the client printed (seconds).
pub async fn loop_seconds(program: &str, args: &[&str]) -> f64 {
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(300),
        tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("the client ends")
    .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{program} {args:?}: {printed} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    printed
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no time in {printed:?}"))
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
