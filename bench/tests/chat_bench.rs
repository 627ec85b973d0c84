//! The chat fan-out benchmark, run by `cargo xtask bench` (never as a test). The bridge runs as
//! its own process (so its memory can be read), the load generator (`chat_load`) as another,
//! from four 127.0.0.x source addresses. Side by side with `ncat --broker` at the largest load
//! ncat can hold (it multiplexes with select(), which stops at file descriptor 1024), then the
//! bridge alone at 10,000 clients, with its peak memory per client.

// The bridge's own test harness: one set of helpers for its tests and these.
#[path = "../../bridge/tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::process::Command;

/// Clients both servers can hold: ncat --broker refuses fd 1024 ("Attempt to FD_SET fd 1024").
const SIDE_BY_SIDE: usize = 1000;
/// The load, for the bridge alone.
const FULL: usize = 10_000;
/// Lines a second in the 10,000-client paced phase (each one is 9,999 deliveries).
const FULL_RATE: u32 = 5;

/// The bridge binary with room for `connections` chat members.
async fn bridge_process(connections: usize) -> BridgeProcess {
    BridgeProcess::start(&["--max-connections", &connections.to_string()]).await
}

/// Runs the load generator against `target`; returns its RESULT fields and, when `watch` is
/// given, the peak resident memory (KiB) of that process while the load ran.
async fn load(
    target: SocketAddr,
    clients: usize,
    nick: bool,
    connecting: usize,
    rate: u32,
    watch: Option<u32>,
) -> (HashMap<String, f64>, u64) {
    let mut args = vec![
        "--rate".to_string(),
        rate.to_string(),
        "--target".into(),
        target.to_string(),
        "--clients".into(),
        clients.to_string(),
        "--connecting".into(),
        connecting.to_string(),
    ];
    if nick {
        args.push("--nick".into());
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat_load"))
        .args(&args)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let reading = tokio::spawn(async move {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut out, &mut text)
            .await
            .unwrap();
        text
    });
    let mut peak = 0;
    let status = tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            if let Some(pid) = watch {
                peak = peak.max(resident_kib(pid));
            }
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the load generator finished in time");
    let text = reading.await.unwrap();
    assert!(status.success(), "chat_load failed: {text}");
    let result = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .expect("a RESULT line");
    let fields = result
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap_or(f64::NAN)))
        .collect();
    (fields, peak)
}

/// Starts a chat room on the bridge at `addr`; returns its address.
async fn chat_room(addr: SocketAddr) -> (Client, SocketAddr) {
    let mut c = Bridge::elsewhere(addr).client().await;
    let room = c
        .endpoint(cmd(
            json!({"op": "tcp_server_start", "port": 0, "backlog": 128,
                             "behaviour": {"kind": "chat"}}),
        ))
        .await;
    let port = port_of(&room);
    (c, SocketAddr::from(([127, 0, 0, 1], port)))
}

fn summary(fields: &HashMap<String, f64>, rate: u32) -> String {
    format!(
        "{:.0} deliveries/s (median of 5 bursts; {} of {} delivered); at {rate} lines/s, delivered \
         in p50 {:.1} ms, p99 {:.1} ms",
        fields["burst_per_s"],
        fields["burst_delivered"],
        fields["burst_expected"],
        fields["paced_p50_us"] / 1000.0,
        fields["paced_p99_us"] / 1000.0
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with cargo xtask bench"]
async fn chat_fan_out() {
    // ncat --broker with the largest load it holds.
    let ncat_port = free_tcp_port();
    let mut ncat = Command::new("ncat")
        .args([
            "-n",
            "--broker",
            "--listen",
            "127.0.0.1",
            &ncat_port.to_string(),
            "--max-conns",
            &(SIDE_BY_SIDE + 50).to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ncat runs (cargo xtask bench installs it)");
    let ncat_addr = SocketAddr::from(([127, 0, 0, 1], ncat_port));
    let deadline = std::time::Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(ncat_addr).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "ncat listens");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (ncat_result, _) = load(ncat_addr, SIDE_BY_SIDE, false, 8, 20, None).await;
    let _ = ncat.kill().await;

    // The bridge with the same load.
    let mut bridge = bridge_process(FULL + 100).await;
    let (_viewer, room) = chat_room(bridge.addr).await;
    let (ours, _) = load(room, SIDE_BY_SIDE, true, 64, 20, None).await;
    let _ = bridge.child.kill().await;

    // The bridge alone at 10,000 clients, in a fresh process, with its peak memory.
    let mut bridge = bridge_process(FULL + 100).await;
    let (_viewer, room) = chat_room(bridge.addr).await;
    let baseline = resident_kib(bridge.pid());
    let (full, peak) = load(room, FULL, true, 64, FULL_RATE, Some(bridge.pid())).await;
    let _ = bridge.child.kill().await;
    let per_client = (peak.saturating_sub(baseline)) as f64 * 1024.0 / FULL as f64;

    println!(
        "BENCH chat fan-out, {SIDE_BY_SIDE} clients from 4 source addresses, 10 senders (ncat cannot \
         hold more: select() stops at fd 1024): ncat --broker {}; bridge chat room {}; ratio {:.2} \
         (target at least 2x)",
        summary(&ncat_result, 20),
        summary(&ours, 20),
        ours["burst_per_s"] / ncat_result["burst_per_s"]
    );
    println!(
        "BENCH chat fan-out, bridge alone with {FULL} clients: {}; connected in {:.1} s; peak \
         memory {:.1} MB over {:.1} MB at rest = {:.1} KB per client (target at most 16 KB, p99 \
         under 100 ms)",
        summary(&full, FULL_RATE),
        full["connect_s"],
        peak as f64 / 1024.0,
        baseline as f64 / 1024.0,
        per_client / 1024.0
    );
}

/// The smoke version CI runs (`cargo xtask test`): the load generator against a bridge
/// process with 1,200 clients, enough for the room to split its rounds over the cores (parts
/// of at least 500 members); every line must reach every member once, each speaker's lines in
/// order. Never timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_chat_load() {
    let mut bridge = bridge_process(1300).await;
    let (_viewer, room) = chat_room(bridge.addr).await;
    let (result, _) = load(room, 1200, true, 16, 20, None).await;
    let _ = bridge.child.kill().await;
    assert_eq!(result["paced_delivered"], result["paced_expected"]);
    assert_eq!(result["burst_delivered"], result["burst_expected"]);
    assert_eq!(result["dropped"], 0.0);
    assert_eq!(
        result["misordered"], 0.0,
        "each speaker's lines in order, once"
    );
}
