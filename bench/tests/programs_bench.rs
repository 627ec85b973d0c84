//! What tracing a person's Python program costs it: a Python client doing 10,000 round trips
//! of 64 bytes with a tokio echo server, run untraced, traced (`bridge trace`, shown in a
//! running release bridge) and under `strace -f -e trace=network` (its output thrown away),
//! side by side, five runs of each in turn; prints the medians of the client's own loop time
//! and the ratios (issue 16's targets: traced at most 1.5x untraced, and no slower than strace).

// The bridge's own test harness: one set of helpers for its tests and these.
#[path = "../../bridge/tests/common/mod.rs"]
mod common;

mod client_loop;

use client_loop::{loop_seconds, median};
use common::*;

const ROUND_TRIPS: usize = 10_000;
const RUNS: usize = 5;

const CLIENT: &str = r#"import socket, sys, time
n = int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
message = b"x" * 64
began = time.perf_counter()
for _ in range(n):
    s.sendall(message)
    got = 0
    while got < 64:
        got += len(s.recv(64 - got))
print("%.6f" % (time.perf_counter() - began))
s.close()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with cargo xtask bench"]
async fn a_traced_python_client_against_strace() {
    let data = TempDir::new("bench-programs");
    let client = data.0.join("round_trips.py");
    std::fs::write(&client, CLIENT).unwrap();
    let client = client.to_str().unwrap().to_string();
    let bridge = BridgeProcess::start(&["--data-dir", data.0.to_str().unwrap()]).await;
    let url = format!("http://{}/#token={TOKEN}", bridge.addr);
    let mut watcher = bridge.client().await;
    let port = tcp_echo_server().await.port().to_string();
    let n = ROUND_TRIPS.to_string();
    let binary = bridge_binary();
    let binary = binary.to_str().unwrap();
    let (mut untraced, mut traced, mut straced) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        untraced.push(loop_seconds("python3", &[&client, &port, &n]).await);
        traced.push(
            loop_seconds(
                binary,
                &["trace", "--url", &url, "--", "python3", &client, &port, &n],
            )
            .await,
        );
        // The traced run really was shown: its exit reached the bridge (read now, so this
        // viewer's queue never holds more than one run).
        watcher
            .wait_until_within("the traced run's exit", 6 * WAIT, |events| {
                events
                    .iter()
                    .filter(|e| matches!(e.kind, shared::EventKind::Exit { .. }))
                    .count()
                    > run
            })
            .await;
        straced.push(
            loop_seconds(
                "strace",
                &[
                    "-f",
                    "-e",
                    "trace=network",
                    "-o",
                    "/dev/null",
                    "python3",
                    &client,
                    &port,
                    &n,
                ],
            )
            .await,
        );
    }
    let (u, t, s) = (median(untraced), median(traced), median(straced));
    println!(
        "BENCH traced Python client, {ROUND_TRIPS} round trips of 64 B (median of {RUNS}): untraced {u:.3} s, \
         traced {t:.3} s ({:.2}x untraced, target <= 1.5x), strace -f -e trace=network {s:.3} s ({:.2}x untraced); \
         traced / strace {:.2} (target <= 1)",
        t / u,
        s / u,
        t / s
    );
}
