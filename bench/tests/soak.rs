//! The soak test (docs/reliability.md), run by `cargo xtask soak [SECONDS]` (default 180), never by CI: a
//! bridge process with a logging TCP echo server and a logging UDP echo server; 64 workers
//! connect, send, read the echo and disconnect, over and over, for SECONDS. Beside them run
//! hostile peers (docs/security.md): a ping flood without the token, a page that says hello and never
//! reads, and garbage headers sent to a UDP save-to-file server. Then it checks that memory
//! stayed bounded all along, the bridge is back to its baseline (open file descriptors,
//! threads, memory within a margin), never panicked, and logged every message. Loopback only,
//! bounded in time.

// The bridge's own test harness: one set of helpers for its tests and these.
#[path = "../../bridge/tests/common/mod.rs"]
mod common;

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::hostile::*;
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// What the bridge holds: file descriptors, threads, resident KiB.
fn footprint(pid: u32) -> (usize, u64, u64) {
    (
        open_fds(pid),
        status_field(pid, "Threads:"),
        status_field(pid, "VmRSS:"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the soak test: run with cargo xtask soak"]
async fn soak() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    let data = TempDir::new("soak");
    let mut command = tokio::process::Command::new(common::bridge_binary());
    command
        .args(["--listen", "127.0.0.1:0", "--token", TOKEN])
        .args(["--max-connections", "256", "--data-dir"])
        .arg(&data.0)
        .stderr(Stdio::piped());
    let BridgeProcess {
        mut child, addr, ..
    } = BridgeProcess::spawn(command).await;
    let pid = child.id().unwrap();
    // Read all along: a full pipe would block the bridge's logging.
    let mut stderr = child.stderr.take().unwrap();
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut c = Bridge::elsewhere(addr).client().await;
    let tcp = c
        .endpoint(cmd(
            json!({"op": "tcp_server_start", "port": 0, "backlog": 128,
                             "concurrency": "concurrent", "policy": {"kind": "persistent"},
                             "behaviour": {"kind": "echo"}, "log_file": "tcp.txt"}),
        ))
        .await;
    let udp = c
        .endpoint(cmd(json!({"op": "udp_server_start", "port": 0,
                             "behaviour": {"kind": "echo"}, "log_file": "udp.txt"})))
        .await;
    // The target of the hostile peers' garbage headers, part of the baseline like the others.
    let saver = c
        .endpoint(cmd(json!({"op": "udp_server_start", "port": 0,
            "behaviour": {"kind": "save_to_file", "file": "garbage.bin"}})))
        .await;
    // The viewer keeps reading (it is a page left open), in the background.
    let viewing = tokio::spawn(async move {
        // Read raw frames: the soak's quiet end must not trip the client's own 10 s wait.
        use futures_util::StreamExt;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(30), c.ws.next()).await
        {
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline = footprint(pid);
    let tasks_before = bridge_status(addr).await["tasks"].as_u64().unwrap();
    println!(
        "soak: baseline fds {}, threads {}, {} KiB, {tasks_before} tasks",
        baseline.0, baseline.1, baseline.2
    );

    let sent_tcp = Arc::new(AtomicU64::new(0));
    let sent_udp = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for w in 0..64u64 {
        let (sent_tcp, sent_udp) = (sent_tcp.clone(), sent_udp.clone());
        let (tcp_port, udp_port) = (port_of(&tcp), port_of(&udp));
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                // A TCP client: connect, a few messages each echoed, disconnect.
                let mut s = tokio::net::TcpStream::connect(("127.0.0.1", tcp_port))
                    .await
                    .expect("connect");
                for _ in 0..3 {
                    let message = format!("w{w}-{n}\n");
                    s.write_all(message.as_bytes()).await.unwrap();
                    let mut echo = vec![0u8; message.len()];
                    tokio::time::timeout(WAIT, s.read_exact(&mut echo))
                        .await
                        .expect("an echo in time")
                        .unwrap();
                    sent_tcp.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
                drop(s);
                // A UDP datagram and its echo.
                let u = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let message = format!("u{w}-{n}");
                u.send_to(message.as_bytes(), ("127.0.0.1", udp_port))
                    .await
                    .unwrap();
                let mut buf = [0u8; 64];
                if tokio::time::timeout(Duration::from_secs(2), u.recv_from(&mut buf))
                    .await
                    .is_ok()
                {
                    sent_udp.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
        }));
    }
    let hostile = hostile_peers(addr, port_of(&saver), until);
    let mut peak = baseline;
    while workers.iter().any(|w| !w.is_finished()) {
        let now = footprint(pid);
        peak = (peak.0.max(now.0), peak.1.max(now.1), peak.2.max(now.2));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for worker in workers {
        worker.await.expect("a worker panicked");
    }
    let (floods, stuck_pages, garbage) = hostile.await.expect("the hostile peers ran");
    // Connections finish closing (a page that never read is given 5 s to take its close);
    // then everything is back to where it started.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after = footprint(pid);
    while after.0 > baseline.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = footprint(pid);
    }
    let mut status = bridge_status(addr).await;
    while status["tasks"].as_u64().unwrap() > tasks_before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        status = bridge_status(addr).await;
    }
    println!(
        "soak: status after {status}, {:?} to spare",
        deadline - Instant::now()
    );
    let tasks_after = status["tasks"].as_u64().unwrap();
    let (tcp_sent, udp_sent) = (
        sent_tcp.load(Ordering::Relaxed),
        sent_udp.load(Ordering::Relaxed),
    );
    println!(
        "soak: {seconds} s, {tcp_sent} TCP messages and {udp_sent} UDP round trips; hostile: \
         {floods} ping floods cut off, {stuck_pages} pages that never read, {garbage} garbage \
         datagrams; peak fds {}, threads {}, {} KiB; after fds {}, threads {}, {} KiB, \
         {tasks_after} tasks",
        peak.0, peak.1, peak.2, after.0, after.1, after.2
    );
    assert!(floods > 0 && stuck_pages > 0 && garbage > 0);
    // Bounded all along: the history (24 MiB), a few pages' queues (8 MiB each), buffers.
    assert!(
        peak.2 < baseline.2 + 96 * 1024,
        "memory peaked at {} KiB from {} KiB",
        peak.2,
        baseline.2
    );
    assert!(
        tasks_after <= tasks_before,
        "tasks leaked: {tasks_before} before, {tasks_after} after"
    );
    assert!(tcp_sent > 0 && udp_sent > 0);
    assert_eq!(after.0, baseline.0, "file descriptors leaked");
    assert!(
        after.1 <= baseline.1 + 2,
        "threads grew: {baseline:?} -> {after:?}"
    );
    assert!(
        after.2 < baseline.2 + 32 * 1024,
        "memory did not come back: {baseline:?} -> {after:?}"
    );
    // Every message in the logs (a UDP datagram that got its echo was logged first).
    let count = |file: &str| {
        std::fs::read_to_string(data.0.join(file))
            .unwrap()
            .lines()
            .count() as u64
    };
    assert!(
        count("tcp.txt") >= tcp_sent,
        "TCP log: {} of {tcp_sent}",
        count("tcp.txt")
    );
    assert!(
        count("udp.txt") >= udp_sent,
        "UDP log: {} of {udp_sent}",
        count("udp.txt")
    );
    // No panic, ever.
    assert!(
        child.try_wait().unwrap().is_none(),
        "the bridge is still running"
    );
    let _ = child.kill().await;
    let errors = errors.await.unwrap();
    assert!(!errors.contains("panicked"), "{errors}");
    viewing.abort();
}

/// Runs the hostile peers until `until`: returns how many ping floods the bridge cut off, how
/// many pages that never read it held, and how many garbage datagrams went to the UDP saver on
/// port `saver`.
fn hostile_peers(
    addr: std::net::SocketAddr,
    saver: u16,
    until: Instant,
) -> tokio::task::JoinHandle<(u64, u64, u64)> {
    tokio::spawn(async move {
        let flooding = tokio::spawn(async move {
            let mut cut_off = 0;
            while Instant::now() < until {
                let mut stream = stingy_connection(addr).await;
                handshake(&mut stream, addr).await;
                let left = until.saturating_duration_since(Instant::now());
                cut_off += u64::from(flood_pings(&mut stream, left).await);
            }
            cut_off
        });
        let stuck = tokio::spawn(async move {
            let mut pages = 0;
            while Instant::now() < until {
                let mut stream = stingy_connection(addr).await;
                handshake(&mut stream, addr).await;
                stream.write_all(&hello_frame()).await.unwrap();
                pages += 1;
                // Held, never read, until the bridge gives up on it or the soak ends.
                let mut one = [0u8; 1];
                let left = until.saturating_duration_since(Instant::now());
                let _ = tokio::time::timeout(left, async {
                    tokio::time::sleep(Duration::from_secs(90)).await;
                    let _ = stream.read(&mut one).await;
                })
                .await;
            }
            pages
        });
        let mut garbage = 0u64;
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        while Instant::now() < until {
            // Headers of every shape: huge counts, far sequence numbers, wrong sizes.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut datagram = x.to_be_bytes().to_vec();
            datagram.extend_from_slice(&(x as u32 % 70_000).to_be_bytes());
            datagram.resize(12 + (x % 2000) as usize, b'g');
            let _ = udp.send_to(&datagram, ("127.0.0.1", saver)).await;
            garbage += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        (flooding.await.unwrap(), stuck.await.unwrap(), garbage)
    })
}
