//! Bridge benchmarks, run by `cargo xtask bench` (never as tests): each is measured next to its
//! anchor in the same run, and prints one `BENCH` line with medians, p99 and ratios.

// The bridge's own test harness: one set of helpers for its tests and these.
#[path = "../../bridge/tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use shared::EventKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn spread(mut samples: Vec<u64>) -> (u64, u64) {
    samples.sort_unstable();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.99))
}

/// A direct tokio TCP echo: the anchor for round trips.
async fn direct_tcp_round_trips(n: usize) -> Vec<u64> {
    let addr = tcp_echo_server().await;
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client.set_nodelay(true).unwrap();
    let (message, mut reply) = ([b'x'; 64], [0u8; 64]);
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        client.write_all(&message).await.unwrap();
        client.read_exact(&mut reply).await.unwrap();
        samples.push(t.elapsed().as_micros() as u64);
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with cargo xtask bench"]
async fn round_trip_of_64_bytes() {
    const N: usize = 2000;
    let (direct_p50, direct_p99) = spread(direct_tcp_round_trips(N).await);
    let script = r#"
import socket, sys, threading, time
n = int(sys.argv[1])
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
def echo():
    c, _ = srv.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        d = c.recv(4096)
        if not d: return
        c.sendall(d)
threading.Thread(target=echo, daemon=True).start()
s = socket.create_connection(srv.getsockname())
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
msg = b"x" * 64
for _ in range(n):
    t = time.perf_counter_ns()
    s.sendall(msg)
    got = 0
    while got < 64:
        got += len(s.recv(64 - got))
    print((time.perf_counter_ns() - t) // 1000)
"#;
    let out = python(script, &[&N.to_string()]).await;
    let (python_p50, python_p99) = spread(out.lines().map(|l| l.parse().unwrap()).collect());

    // The bridge: a send command over the WebSocket, the bridge client's send(), the bridge
    // echo server, the client's recv(), and that recv event back over the WebSocket.
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let (_, client) = c.tcp_pair(json!({"policy": {"kind": "persistent"}})).await;
    let text = "x".repeat(64);
    let mut samples = Vec::with_capacity(N / 2);
    for i in 0..N / 2 {
        let t = Instant::now();
        c.ok(send_text(client.id, None, &text)).await;
        c.wait_until("echo", |ev| {
            ev.iter()
                .filter(|e| e.endpoint == client.id && matches!(e.kind, EventKind::Recv { .. }))
                .count()
                > i
        })
        .await;
        samples.push(t.elapsed().as_micros() as u64);
        if c.events.len() > 10_000 {
            c.events.clear();
        }
    }
    let (bridge_p50, bridge_p99) = spread(samples);
    println!(
        "BENCH round trip 64 B (us): direct tokio p50 {direct_p50} p99 {direct_p99}; python pair p50 \
         {python_p50} p99 {python_p99}; bridge p50 {bridge_p50} p99 {bridge_p99}; the bridge adds \
         {} us at p50 and {} us at p99 (targets 50 and 200)",
        bridge_p50.saturating_sub(direct_p50),
        bridge_p99.saturating_sub(direct_p99)
    );
}

async fn udp_round_trips(server: std::net::SocketAddr, n: usize) -> f64 {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    let mut buf = [0u8; 256];
    let started = Instant::now();
    let mut answered = 0;
    for _ in 0..n {
        socket.send(&[b'u'; 32]).await.unwrap();
        if tokio::time::timeout(Duration::from_millis(200), socket.recv(&mut buf))
            .await
            .is_ok()
        {
            answered += 1;
        }
    }
    answered as f64 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with cargo xtask bench"]
async fn udp_echo_of_small_datagrams() {
    const N: usize = 20_000;
    let direct = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let direct_addr = direct.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = direct.recv_from(&mut buf).await {
            let _ = direct.send_to(&buf[..n], from).await;
        }
    });
    let direct_rate = udp_round_trips(direct_addr, N).await;
    let bridge = Bridge::start().await;
    let mut viewer = bridge.client().await;
    let server = viewer
        .endpoint(cmd(json!({"op": "udp_server_start", "port": 0})))
        .await;
    // The viewer keeps reading, so events are on and delivered while the echo runs.
    let reading = tokio::spawn(async move {
        while viewer.next_message().await.is_some() {
            if viewer.events.len() > 100_000 {
                viewer.events.clear();
            }
        }
    });
    let addr: std::net::SocketAddr = server.local.unwrap().parse().unwrap();
    let bridge_rate = udp_round_trips(addr, N).await;
    reading.abort();
    println!(
        "BENCH UDP echo, 32-byte datagrams, one at a time: direct tokio {direct_rate:.0}/s; bridge \
         with events on {bridge_rate:.0}/s; ratio {:.2} (target at least 0.5)",
        bridge_rate / direct_rate
    );
}

/// Floods a print-only UDP server with `count` datagrams from this process.
async fn flood(addr: std::net::SocketAddr, count: usize) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..count {
        socket.send_to(b"flood", addr).await.unwrap();
    }
}

/// Reads until `wanted` events arrived (or nothing came for 500 ms); returns how many, and
/// when the last one came.
async fn read_events(c: &mut Client, before: usize, wanted: usize) -> (usize, Instant) {
    let mut last = Instant::now();
    loop {
        let got = c.events.len() - before;
        if got >= wanted {
            return (got, last);
        }
        match tokio::time::timeout(Duration::from_millis(500), c.next_message()).await {
            Ok(Some(_)) => last = Instant::now(),
            _ => return (got, last),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with cargo xtask bench"]
async fn events_delivered_to_a_native_viewer() {
    // Room for a viewer that falls far behind (1 GiB of events), so that none is dropped here.
    let bridge = Bridge::start_with(|c| {
        c.viewer_bytes = 1 << 30;
        c.history_events = 1000;
    })
    .await;
    let mut c = bridge.client().await;
    let addr = c.print_only_udp_server().await;
    const DATAGRAMS: usize = 200_000;

    // Live: the viewer reads while the flood comes in; the source sets the pace.
    let before = c.events.len();
    let started = Instant::now();
    let sender = tokio::spawn(flood(addr, DATAGRAMS));
    let (live, last) = read_events(&mut c, before, DATAGRAMS).await;
    sender.await.unwrap();
    let live_seconds = (last - started).as_secs_f64();

    // Backlog: a second viewer does not read during a flood; then it drains what waited.
    // That measures the delivery path alone (encode, WebSocket, decode), not the socket.
    let mut late = bridge.client().await;
    let before_late = late.events.len();
    let before = c.events.len();
    flood(addr, DATAGRAMS).await;
    let (produced, _) = read_events(&mut c, before, DATAGRAMS).await;
    let started = Instant::now();
    let (drained, last) = read_events(&mut late, before_late, produced).await;
    let drain_seconds = (last - started).as_secs_f64();
    println!(
        "BENCH events to a native viewer: live, {live} events as a UDP flood arrived in {live_seconds:.2} s \
         ({:.0}/s, paced by the flood); backlog, {drained} of {produced} queued events drained in \
         {drain_seconds:.2} s: {:.0} events/s (target 500,000/s); {} reported missed",
        live as f64 / live_seconds,
        drained as f64 / drain_seconds,
        c.missed + late.missed
    );
}

#[tokio::test]
#[ignore = "a benchmark: run with cargo xtask bench"]
async fn bridge_at_rest() {
    let mut starts = Vec::new();
    let mut resident = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let mut bridge = BridgeProcess::start(&[]).await;
        starts.push(started.elapsed().as_micros() as u64);
        tokio::time::sleep(Duration::from_millis(300)).await;
        resident = resident_kib(bridge.pid());
        let _ = bridge.child.kill().await;
    }
    let (start_p50, _) = spread(starts);
    println!(
        "BENCH bridge at rest: ready to accept in {:.1} ms (median of 5 starts, target under 100); \
         {:.1} MB resident (target under 15)",
        start_p50 as f64 / 1000.0,
        resident as f64 / 1024.0
    );
}

/// The smoke version CI runs (`cargo xtask test`): a small flood, every event delivered live
/// and from a backlog. Never timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_events_live_and_backlog() {
    // Calls only: captured packets would add events of their own timing to the count.
    let bridge = Bridge::start_with(|c| {
        c.viewer_bytes = 64 << 20;
        c.capture = false;
    })
    .await;
    let mut c = bridge.client().await;
    let addr = c.print_only_udp_server().await;
    let mut late = bridge.client().await;
    let before_late = late.events.len();
    let before = c.events.len();
    flood(addr, 2000).await;
    let (live, _) = read_events(&mut c, before, 2000).await;
    // The kernel may drop datagrams of a flood; every one that arrived is an event.
    assert!(live > 0);
    read_events(&mut late, before_late, live).await;
    let floods = |events: &[shared::Event]| -> Vec<u64> {
        events
            .iter()
            .filter(|e| e.kind.name() == "recv_from")
            .map(|e| e.seq)
            .collect()
    };
    assert_eq!(floods(&late.events), floods(&c.events));
    assert_eq!(c.missed + late.missed, 0);
}
