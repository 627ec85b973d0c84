//! Throughput benchmarks, run by `cargo xtask bench` (never as tests), each next to the tools
//! people would use instead, in the same run: TCP bulk memory to memory against `iperf3` (and
//! `iperf3` through a `socat` relay), and a 1 GiB file copy into a "save to file" server against
//! the lab's Python pair (`sendfile` client, `recv(1024)` + `write` receiver). Each prints one
//! `BENCH` line with medians over several rounds and the ratios.

// The bridge's own test harness: one set of helpers for its tests and these.
#[path = "../../bridge/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

const GIB: u64 = 1 << 30;
/// Rounds per benchmark; every figure is the median over them.
const ROUNDS: usize = 3;
/// The longest any one transfer of a benchmark may take.
const LIMIT: Duration = Duration::from_secs(120);

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Waits (bounded) until something listens on 127.0.0.1:`port`, read from /proc/net/tcp so
/// that no probe connection reaches the program (iperf3 -1 would take it for its one test).
async fn listening(port: u16) {
    let wanted = format!("0100007F:{port:04X}");
    let deadline = Instant::now() + WAIT;
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let found = table.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3 && fields[1] == wanted && fields[3] == "0A"
        });
        if found {
            return;
        }
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn spawn(program: &str, args: &[&str]) -> Child {
    Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{program} runs (cargo xtask bench installs it): {e}"))
}

/// iperf3, one stream of `bytes`, straight or through a socat relay; returns bytes/s received.
async fn iperf3(bytes: u64, through_socat: bool) -> f64 {
    let server_port = free_tcp_port();
    let _server = spawn(
        "iperf3",
        &[
            "-s",
            "-1",
            "-B",
            "127.0.0.1",
            "-p",
            &server_port.to_string(),
        ],
    );
    listening(server_port).await;
    let mut port = server_port;
    let _relay = if through_socat {
        port = free_tcp_port();
        let relay = spawn(
            "socat",
            &[
                &format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"),
                &format!("TCP:127.0.0.1:{server_port}"),
            ],
        );
        listening(port).await;
        Some(relay)
    } else {
        None
    };
    let client = spawn(
        "iperf3",
        &[
            "-c",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-n",
            &bytes.to_string(),
            "-J",
        ],
    );
    let out = tokio::time::timeout(LIMIT, client.wait_with_output())
        .await
        .expect("iperf3 finished in time")
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3 reported no rate: {report}"))
        / 8.0
}

/// The bridge's TCP client sends `bytes` of test data to its own discard server; bytes/s from
/// the command to the receiver's report.
async fn bridge_bulk(c: &mut Client, bytes: u64) -> f64 {
    let (server, client) = c.tcp_pair(json!({"behaviour": {"kind": "discard"}})).await;
    let started = Instant::now();
    c.send_request(cmd(
        json!({"op": "send_bulk", "endpoint": client.id, "bytes": bytes}),
    ))
    .await;
    // The sender's reply comes with its own report; the receiver's report ends the clock.
    let report = c.report_within(server.id, LIMIT).await;
    let seconds = started.elapsed().as_secs_f64();
    assert!(report.complete && report.bytes == bytes, "{report:?}");
    c.ok(cmd(json!({"op": "reset"}))).await;
    bytes as f64 / seconds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with cargo xtask bench"]
async fn tcp_bulk_memory_to_memory() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let (mut direct, mut relayed, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        direct.push(iperf3(GIB, false).await);
        relayed.push(iperf3(GIB, true).await);
        ours.push(bridge_bulk(&mut c, GIB).await);
    }
    let (direct, relayed, ours) = (median(direct), median(relayed), median(ours));
    let mb = |rate: f64| rate / 1e6;
    println!(
        "BENCH TCP bulk, 1 GiB memory to memory (MB/s, median of {ROUNDS}): iperf3 -n 1G single stream \
         {:.0}; iperf3 through a socat relay {:.0}; bridge client to bridge discard server {:.0}: \
         {:.2}x iperf3 (target at least 0.5x), {:.2}x the socat relay",
        mb(direct),
        mb(relayed),
        mb(ours),
        ours / direct,
        ours / relayed
    );
}

/// The lab's receiver: `recv(1024)` and `write` until EOF. Prints the seconds from the first
/// byte to the file closed. With a third argument `sync`, it also waits for the disk
/// (`os.fsync`) before closing, as the bridge does before it reports a file saved.
const LAB_RECEIVER: &str = r#"
import os, socket, sys, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
print(server.getsockname()[1], flush=True)
conn, _ = server.accept()
started = None
with open(sys.argv[1], "wb") as f:
    while True:
        data = conn.recv(int(sys.argv[2]))
        if started is None:
            started = time.perf_counter()
        if not data:
            break
        f.write(data)
    if sys.argv[3:] == ["sync"]:
        f.flush()
        os.fsync(f.fileno())
print(time.perf_counter() - started, flush=True)
"#;

/// The lab's client: `sendfile` the whole file, then close.
const LAB_SENDER: &str = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
with open(sys.argv[2], "rb") as f:
    s.sendfile(f)
s.close()
"#;

async fn python_sender(port: u16, file: &Path) {
    let sender = Command::new("python3")
        .args(["-c", LAB_SENDER, &port.to_string(), file.to_str().unwrap()])
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(LIMIT, sender)
        .await
        .expect("the sender finished in time")
        .unwrap();
    assert!(status.success());
}

/// Writes every dirty page back to disk (`sync`), so that no copy pays for another's.
async fn settle() {
    let status = Command::new("sync").status().await.unwrap();
    assert!(status.success());
}

/// The lab's Python pair; returns bytes/s (first byte to file closed, after an fsync if
/// `sync`) and the copy's SHA-256.
async fn python_pair(source: &Path, target: &Path, recv_size: usize, sync: bool) -> (f64, String) {
    let mut receiver = Command::new("python3")
        .args([
            "-c",
            LAB_RECEIVER,
            target.to_str().unwrap(),
            &recv_size.to_string(),
            if sync { "sync" } else { "" },
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(receiver.stdout.take().unwrap()).lines();
    let port: u16 = next_line(&mut lines).await.trim().parse().unwrap();
    python_sender(port, source).await;
    let seconds: f64 = tokio::time::timeout(LIMIT, lines.next_line())
        .await
        .expect("the receiver finished in time")
        .unwrap()
        .expect("the receiver's time")
        .trim()
        .parse()
        .unwrap();
    let size = std::fs::metadata(source).unwrap().len();
    let hash = python_sha256(target).await;
    std::fs::remove_file(target).unwrap();
    (size as f64 / seconds, hash)
}

/// The bridge's save-to-file rates, from its report: up to the file synced to disk (what the
/// bridge waits for before it calls a file saved), and up to the last byte written, before that
/// sync (what the lab's receiver waits for).
struct Saved {
    synced: f64,
    written: f64,
}

/// The same Python sender into the bridge's "save to file" server; the rates from the bridge's
/// report (from the first byte) and the SHA-256 the bridge computed.
async fn into_bridge(c: &mut Client, data: &Path, source: &Path) -> (Saved, String) {
    let server = c.save_to_file_server("copy.bin").await;
    python_sender(port_of(&server), source).await;
    let report = c.report_within(server.id, LIMIT).await;
    assert!(report.complete, "{report:?}");
    let copy = data.join("copy.bin");
    assert_eq!(python_sha256(&copy).await, report.sha256);
    std::fs::remove_file(copy).unwrap();
    c.ok(cmd(json!({"op": "reset"}))).await;
    let sync_us = report.sync_us.expect("a saved file reports its sync");
    let rate = |us: u64| report.bytes as f64 / (us.max(1) as f64 / 1e6);
    let saved = Saved {
        synced: rate(report.duration_us),
        written: rate(report.duration_us - sync_us),
    };
    (saved, report.sha256)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with cargo xtask bench"]
async fn file_copy_of_1_gib() {
    let data = TempDir::new("copy-bench");
    let scratch = TempDir::new("copy-source");
    let bridge = Bridge::start_with(|c| c.data_dir = data.0.clone()).await;
    let mut c = bridge.client().await;
    let source = scratch.0.join("source.bin");
    write_pattern(&source, GIB as usize);
    let expected = python_sha256(&source).await;
    let target = scratch.0.join("python-copy.bin");
    let (mut lab, mut big, mut lab_synced) = (Vec::new(), Vec::new(), Vec::new());
    let (mut written, mut synced) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        // Each copy starts with nothing left to write back from the one before (a copy that
        // is not synced leaves a gigabyte of dirty pages that would slow the next one down).
        settle().await;
        let (rate, hash) = python_pair(&source, &target, 1024, false).await;
        assert_eq!(hash, expected);
        lab.push(rate);
        settle().await;
        let (rate, hash) = python_pair(&source, &target, 65536, false).await;
        assert_eq!(hash, expected);
        big.push(rate);
        settle().await;
        let (rate, hash) = python_pair(&source, &target, 1024, true).await;
        assert_eq!(hash, expected);
        lab_synced.push(rate);
        settle().await;
        let (saved, hash) = into_bridge(&mut c, &data.0, &source).await;
        assert_eq!(hash, expected);
        written.push(saved.written);
        synced.push(saved.synced);
    }
    let (lab, big, lab_synced) = (median(lab), median(big), median(lab_synced));
    let (written, synced) = (median(written), median(synced));
    println!(
        "BENCH file copy, 1 GiB, Python sendfile client (MB/s, median of {ROUNDS}, SHA-256 equal in \
         every round). Like for like, first byte to last byte written (the lab's receiver does \
         not wait for the disk): the lab's Python receiver, recv(1024) + write, {:.0}; a Python \
         receiver with recv(65536) {:.0}; the bridge's save-to-file server, hashing included, \
         {:.0}: {:.2}x the lab's pair (target at least 2x), {:.2}x the recv(65536) one. Both \
         waiting for the disk too (fsync before the file counts as saved): the lab's receiver \
         {:.0}; the bridge {:.0}: {:.2}x",
        lab / 1e6,
        big / 1e6,
        written / 1e6,
        written / lab,
        written / big,
        lab_synced / 1e6,
        synced / 1e6,
        synced / lab_synced
    );
}

/// The smoke version CI runs (`cargo xtask test`): the same paths with small sizes, checked
/// for correctness, never timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_bulk_and_file_copy() {
    let data = TempDir::new("copy-smoke");
    let scratch = TempDir::new("copy-smoke-source");
    let bridge = Bridge::start_with(|c| c.data_dir = data.0.clone()).await;
    let mut c = bridge.client().await;
    assert!(bridge_bulk(&mut c, 8 << 20).await > 0.0);
    let source = scratch.0.join("source.bin");
    write_pattern(&source, 4 << 20);
    let expected = python_sha256(&source).await;
    let (_, lab) = python_pair(&source, &scratch.0.join("copy.bin"), 1024, true).await;
    assert_eq!(lab, expected);
    let (saved, ours) = into_bridge(&mut c, &data.0, &source).await;
    assert_eq!(ours, expected);
    assert!(saved.written >= saved.synced && saved.synced > 0.0);
}
