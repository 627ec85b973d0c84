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
/// Bytes of each bulk transfer, and how many of each kind (capture on, off) run, in turns.
const BULK: u64 = 1_000_000_000;
const RUNS: usize = 5;
const LIMIT: Duration = Duration::from_secs(120);

/// A running tcpdump, and what it says on stderr as it stops.
struct Tcpdump {
    child: tokio::process::Child,
    said: tokio::task::JoinHandle<String>,
}

/// `tcpdump -i lo -w FILE FILTER`, once it says it listens.
async fn tcpdump(file: &std::path::Path, filter: &str) -> Tcpdump {
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
    let said = tokio::spawn(async move {
        let mut all = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    Tcpdump { child, said }
}

/// Stops tcpdump: the packets its file holds (tshark reads it), and how many it says its
/// filter received and the kernel dropped for it ("N packets received by filter", "N packets
/// dropped by kernel"). On loopback it sees each packet twice, on its way out and in.
async fn stop_tcpdump(mut dump: Tcpdump, file: &std::path::Path) -> (u64, u64, u64) {
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(dump.child.id().unwrap() as i32, libc::SIGINT) };
    tokio::time::timeout(LIMIT, dump.child.wait())
        .await
        .expect("tcpdump stops")
        .unwrap();
    let said = tokio::time::timeout(LIMIT, &mut dump.said)
        .await
        .expect("tcpdump's last words")
        .unwrap();
    let count = |what: &str| -> u64 {
        said.lines()
            .find_map(|l| l.strip_suffix(what))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("tcpdump says{what}: {said}"))
    };
    let (received, dropped) = (
        count(" packets received by filter"),
        count(" packets dropped by kernel"),
    );
    let out = tokio::process::Command::new("tshark")
        .arg("-r")
        .arg(file)
        .output()
        .await
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).lines().count() as u64,
        received,
        dropped,
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
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

/// One bulk transfer into a new discard server, its throughput in bytes a second (a
/// server's report comes when its client's data ends).
async fn bulk(c: &mut Client) -> f64 {
    let (server, client) = c.tcp_pair(json!({"behaviour": {"kind": "discard"}})).await;
    let started = Instant::now();
    c.send_request(cmd(
        json!({"op": "send_bulk", "endpoint": client.id, "bytes": BULK}),
    ))
    .await;
    let report = c.report_within(server.id, LIMIT).await;
    let seconds = started.elapsed().as_secs_f64();
    assert!(report.complete && report.bytes == BULK, "{report:?}");
    // (The client may have closed already, once its data was sent.)
    for id in [client.id, server.id] {
        let _ = c.request(cmd(json!({"op": "close", "endpoint": id}))).await;
    }
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
    let (theirs, their_seen, their_drops) = stop_tcpdump(dumper, &dump).await;

    // The TCP bulk transfer, captured by both (the first run); then in turns with and
    // without the bridge's capture.
    let dump = data.0.join("bulk.pcap");
    let dumper = tcpdump(&dump, "tcp").await;
    let (start, start_drops) = bridge_count(&mut c).await;
    let mut with_capture = vec![bulk(&mut c).await];
    let (end, end_drops) = bridge_count(&mut c).await;
    let (theirs_bulk, their_bulk_seen, their_bulk_drops) = stop_tcpdump(dumper, &dump).await;
    let (ours_bulk, bulk_drops) = (end - start, end_drops - start_drops);
    let off = BridgeProcess::start(&["--data-dir", &dir, "--no-capture"]).await;
    let mut c_off = off.client().await;
    let mut without = Vec::new();
    for run in 0..RUNS {
        without.push(bulk(&mut c_off).await);
        if run + 1 < RUNS {
            with_capture.push(bulk(&mut c).await);
        }
    }
    let (with_capture, without) = (median(with_capture), median(without));
    println!(
        "BENCH capture, UDP flood of {DATAGRAMS} datagrams ({:.0} k/s): bridge captured {ours}, kernel dropped {our_drops}; tcpdump -i lo -w: {their_seen} received by its filter (each twice on loopback), {theirs} in its file, kernel dropped {their_drops} (target: no more drops than tcpdump)",
        DATAGRAMS as f64 / flood_s / 1000.0
    );
    println!(
        "BENCH capture, TCP bulk of {} MB, median of {RUNS}: {:.0} MB/s with capture, {:.0} MB/s without, {:.2}x (target at least 0.8x); packets of the first run: bridge {ours_bulk} (kernel dropped {bulk_drops}), tcpdump {their_bulk_seen} received by its filter, {theirs_bulk} in its file (kernel dropped {their_bulk_drops})",
        BULK / 1_000_000,
        with_capture / 1e6,
        without / 1e6,
        with_capture / without
    );
}
