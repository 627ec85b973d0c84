//! Packet capture against tcpdump (issue 19), side by side in one run, as root: a flood of
//! small UDP datagrams and a TCP bulk transfer on loopback, captured at the same time by the
//! bridge and by `tcpdump -i lo -w`; how many packets each captured and how many the kernel
//! dropped for each; and the bulk transfer's throughput with the bridge's capture on and off
//! (`--no-capture`). Targets: no more drops than tcpdump, and at least 0.8x the throughput.

// The bridge's own test harness: one set of helpers for its tests and these.
#[path = "../../bridge/tests/common/mod.rs"]
mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use shared::ReplyData;
use tokio::io::AsyncBufReadExt;

/// Datagrams in the flood.
const DATAGRAMS: usize = 10_000;
/// Bytes of the bulk transfer.
const BULK: u64 = 200_000_000;
const LIMIT: Duration = Duration::from_secs(120);

/// `tcpdump -i lo -w FILE FILTER`, once it says it listens.
async fn tcpdump(file: &std::path::Path, filter: &str) -> tokio::process::Child {
    let mut child = tokio::process::Command::new("tcpdump")
        .args(["-i", "lo", "-w"])
        .arg(file)
        .arg(filter)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("tcpdump runs (cargo xtask bench installs it)");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::time::timeout(LIMIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("listening on lo") {
                return;
            }
        }
    })
    .await
    .expect("tcpdump listens");
    // Its closing counts come on stderr after SIGINT: keep reading them there.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

/// Stops tcpdump and counts the packets its file holds (tshark reads it).
async fn stop_tcpdump(mut child: tokio::process::Child, file: &std::path::Path) -> u64 {
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGINT) };
    tokio::time::timeout(LIMIT, child.wait())
        .await
        .expect("tcpdump stops")
        .unwrap();
    let out = tokio::process::Command::new("tshark")
        .arg("-r")
        .arg(file)
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count() as u64
}

/// Packets the bridge captured, and the kernel dropped for it, since it started.
async fn bridge_count(c: &mut Client) -> (u64, u64) {
    let ReplyData::Capture {
        captured, dropped, ..
    } = c.ok(cmd(json!({"op": "capture_save"}))).await
    else {
        panic!("capture_save");
    };
    (captured, dropped)
}

async fn bulk(c: &mut Client, server: u32, client: u32) -> f64 {
    let started = Instant::now();
    c.send_request(cmd(
        json!({"op": "send_bulk", "endpoint": client, "bytes": BULK}),
    ))
    .await;
    let report = c.report_within(server, LIMIT).await;
    let seconds = started.elapsed().as_secs_f64();
    assert!(report.complete && report.bytes == BULK, "{report:?}");
    BULK as f64 / seconds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with cargo xtask bench"]
async fn capture_against_tcpdump() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "capturing needs root");
    let data = TempDir::new("bench-capture");
    let dir = data.0.to_string_lossy().into_owned();
    let on = BridgeProcess::start(&["--data-dir", &dir]).await;
    let mut c = on.client().await;
    assert!(c.welcome.capture.as_ref().is_some_and(|s| s.on));

    // The UDP flood, to a UDP server of the bridge.
    let server = c
        .endpoint(cmd(json!({"op": "udp_server_start", "port": 0,
                             "behaviour": {"kind": "print_only"}})))
        .await;
    let port = port_of(&server);
    let dump = data.0.join("flood.pcap");
    let dumper = tcpdump(&dump, &format!("udp port {port}")).await;
    let (before, before_drops) = bridge_count(&mut c).await;
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let began = Instant::now();
    for i in 0..DATAGRAMS {
        let _ = sender.send_to(format!("{i:08}").as_bytes(), ("127.0.0.1", port));
    }
    let flood_s = began.elapsed().as_secs_f64();
    // Every datagram is accounted for (kept or dropped) within the limit.
    let deadline = Instant::now() + LIMIT;
    let (mut ours, mut our_drops) = (0, 0);
    while ours + our_drops < DATAGRAMS as u64 && Instant::now() < deadline {
        let _ = tokio::time::timeout(Duration::from_millis(200), c.next_message()).await;
        let (captured, dropped) = bridge_count(&mut c).await;
        (ours, our_drops) = (captured - before, dropped - before_drops);
    }
    let theirs = stop_tcpdump(dumper, &dump).await;

    // The TCP bulk transfer, captured by both; then without the bridge's capture.
    let dump = data.0.join("bulk.pcap");
    let (discard, client) = c.tcp_pair(json!({"behaviour": {"kind": "discard"}})).await;
    let dumper = tcpdump(&dump, &format!("tcp port {}", port_of(&discard))).await;
    let (start, start_drops) = bridge_count(&mut c).await;
    let with_capture = bulk(&mut c, discard.id, client.id).await;
    let (end, end_drops) = bridge_count(&mut c).await;
    let theirs_bulk = stop_tcpdump(dumper, &dump).await;
    let (ours_bulk, bulk_drops) = (end - start, end_drops - start_drops);
    let off = BridgeProcess::start(&["--data-dir", &dir, "--no-capture"]).await;
    let mut c_off = off.client().await;
    let (discard, client) = c_off
        .tcp_pair(json!({"behaviour": {"kind": "discard"}}))
        .await;
    let without = bulk(&mut c_off, discard.id, client.id).await;
    println!(
        "BENCH capture, UDP flood of {DATAGRAMS} datagrams ({:.0} k/s): bridge captured {ours}, kernel dropped {our_drops}; tcpdump -i lo -w {theirs} (target: no more drops than tcpdump)",
        DATAGRAMS as f64 / flood_s / 1000.0
    );
    println!(
        "BENCH capture, TCP bulk of {} MB: {:.0} MB/s with capture, {:.0} MB/s without, {:.2}x (target at least 0.8x); packets: bridge {ours_bulk} (kernel dropped {bulk_drops}), tcpdump {theirs_bulk}",
        BULK / 1_000_000,
        with_capture / 1e6,
        without / 1e6,
        with_capture / without
    );
}
