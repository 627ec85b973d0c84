//! What tracing a program in another language costs it (issue 20): a C client doing 10,000
//! round trips of 64 bytes with a tokio echo server, run untraced, under the bridge's
//! system-call tracer (`bridge trace`, shown in a running release bridge) and under
//! `strace -f -e trace=network` (its output thrown away), side by side, five runs of each in
//! turn; prints the medians of the client's own loop time and the ratios (target: the
//! bridge's tracer no slower than strace).

// The bridge's own test harness: one set of helpers for its tests and these.
#[path = "../../bridge/tests/common/mod.rs"]
mod common;

mod client_loop;

use client_loop::{loop_seconds, median};
use common::*;

const ROUND_TRIPS: usize = 10_000;
const RUNS: usize = 5;

/// The client, the textbook way: send 64 bytes, read 64 back, N times; prints its loop time.
const CLIENT: &str = r#"#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int port = atoi(argv[1]), n = atoi(argv[2]);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in server = {0};
    server.sin_family = AF_INET;
    server.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &server.sin_addr);
    if (connect(s, (struct sockaddr *)&server, sizeof server) < 0) { perror("connect"); return 1; }
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char message[64] = {'x'}, reply[64];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++) {
        send(s, message, 64, 0);
        int got = 0;
        while (got < 64) { ssize_t r = recv(s, reply + got, 64 - got, 0); if (r <= 0) return 1; got += r; }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.6f\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
    close(s);
    return 0;
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with cargo xtask bench"]
async fn a_traced_c_client_against_strace() {
    let data = TempDir::new("bench-native");
    let source = data.0.join("round_trips.c");
    std::fs::write(&source, CLIENT).unwrap();
    let client = data.0.join("round_trips");
    let built = std::process::Command::new("gcc")
        .arg("-O2")
        .arg("-o")
        .arg(&client)
        .arg(&source)
        .status()
        .expect("gcc runs (cargo xtask bench installs it)");
    assert!(built.success());
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
        untraced.push(loop_seconds(&client, &[&port, &n]).await);
        traced
            .push(loop_seconds(binary, &["trace", "--url", &url, "--", &client, &port, &n]).await);
        // The traced run really was shown: its exit reached the bridge.
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
        "BENCH traced C client, {ROUND_TRIPS} round trips of 64 B (median of {RUNS}): untraced {u:.3} s, \
         bridge's tracer {t:.3} s ({:.2}x untraced), strace -f -e trace=network {s:.3} s ({:.2}x untraced); \
         tracer / strace {:.2} (target <= 1)",
        t / u,
        s / u,
        t / s
    );
}
