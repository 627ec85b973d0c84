//! Hostile peers, most without the token (docs/security.md, "Hostile peers"): each test is one
//! attack on real sockets, bounded in time, with the bridge's memory and `/status` latency
//! measured from outside where the attack aims at them.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::hostile::*;
use common::*;
use serde_json::json;
use shared::{Command, ErrorKind, EventKind, ServerMessage, TransferEnd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Samples a bridge process while `attack` runs: (peak resident KiB, slowest `/status`).
async fn watch_during(
    bridge: &BridgeProcess,
    attack: impl std::future::Future<Output = ()>,
) -> (u64, Duration) {
    let (pid, addr) = (bridge.pid(), bridge.addr);
    let done = tokio_util::sync::CancellationToken::new();
    let stop = done.clone();
    let watcher = tokio::spawn(async move {
        let (mut peak, mut slowest) = (0, Duration::ZERO);
        while !stop.is_cancelled() {
            let asked = Instant::now();
            bridge_status(addr).await;
            slowest = slowest.max(asked.elapsed());
            peak = peak.max(resident_kib(pid));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (peak, slowest)
    });
    attack.await;
    done.cancel();
    watcher.await.unwrap()
}

#[tokio::test]
async fn a_ping_flood_without_the_token_is_cut_off_and_memory_stays_flat() {
    let bridge = BridgeProcess::start(&[]).await;
    let before = resident_kib(bridge.pid());
    let mut stream = stingy_connection(bridge.addr).await;
    handshake(&mut stream, bridge.addr).await;
    let mut cut_off = false;
    let (peak, slowest) = watch_during(&bridge, async {
        cut_off = flood_pings(&mut stream, Duration::from_secs(5)).await;
    })
    .await;
    assert!(
        cut_off,
        "a peer that floods pings before its hello is closed"
    );
    assert!(
        peak < before + 32 * 1024,
        "memory grew from {before} KiB to {peak} KiB"
    );
    assert!(slowest < Duration::from_secs(1), "/status took {slowest:?}");
}

#[tokio::test]
async fn a_session_that_floods_pings_and_never_reads_holds_a_bounded_buffer() {
    let bridge = BridgeProcess::start(&[]).await;
    let before = resident_kib(bridge.pid());
    let mut stream = stingy_connection(bridge.addr).await;
    handshake(&mut stream, bridge.addr).await;
    stream.write_all(&hello_frame()).await.unwrap();
    // Each ping is owed a pong that this peer never reads: they must not pile up.
    let (peak, slowest) = watch_during(&bridge, async {
        flood_pings(&mut stream, Duration::from_secs(5)).await;
    })
    .await;
    assert!(
        peak < before + 32 * 1024,
        "memory grew from {before} KiB to {peak} KiB"
    );
    assert!(slowest < Duration::from_secs(1), "/status took {slowest:?}");
}

/// Three 12-byte header words, big-endian.
fn udp_header(seq: u32, count: u32, chunk: u32) -> Vec<u8> {
    [seq, count, chunk]
        .iter()
        .flat_map(|w| w.to_be_bytes())
        .collect()
}

#[tokio::test]
async fn one_hostile_datagram_to_a_udp_saver_costs_nothing() {
    let data = TempDir::new("hostile-udp");
    let bridge = BridgeProcess::start(&["--data-dir", data.0.to_str().unwrap()]).await;
    let mut c = bridge.client().await;
    let server = c
        .endpoint(cmd(json!({"op": "udp_server_start", "port": 0,
            "behaviour": {"kind": "save_to_file", "file": "got.bin"}})))
        .await;
    let to: SocketAddr = server.local.clone().unwrap().parse().unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let before = resident_kib(bridge.pid());
    let (peak, slowest) = watch_during(&bridge, async {
        // The datagram of the report: count 2^32-1, seq 16519, 65000-byte chunks, one byte.
        let mut hostile = udp_header(16_519, u32::MAX, 65_000);
        hostile.push(b'x');
        peer.send_to(&hostile, to).await.unwrap();
        // A plausible first datagram of a 4 GiB file, then silence: no hash of 4 GiB at the end.
        let mut first = udp_header(0, shared::MAX_DATAGRAMS, 1024);
        first.extend_from_slice(&[b'a'; 1024]);
        peer.send_to(&first, to).await.unwrap();
        // Claims that contradict the first datagram's.
        let mut other = udp_header(1, 7, 1024);
        other.extend_from_slice(&[b'b'; 1024]);
        peer.send_to(&other, to).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
    })
    .await;
    let refused = c
        .wait_for("the hostile header refused", |e| {
            matches!(&e.kind, EventKind::Error { op, error } if op == "save"
                && error.explanation.contains("announces 4294967295 datagrams"))
        })
        .await;
    assert_eq!(refused.endpoint, server.id);
    c.wait_for("the contradicting datagram ignored", |e| {
        matches!(&e.kind, EventKind::Error { error, .. }
            if error.explanation.contains("another file"))
    })
    .await;
    let report = c.report_of(server.id).await;
    assert!(!report.complete);
    assert_eq!(report.ended, Some(TransferEnd::Quiet));
    assert_eq!(report.bytes, 1024);
    assert_eq!(
        report.sha256, "",
        "an incomplete file has no hash worth comparing"
    );
    let part = std::fs::metadata(data.0.join("got.bin.part")).unwrap();
    assert_eq!(part.len(), 1024, "nothing written at a peer's far offset");
    assert!(peak < before + 32 * 1024, "memory {before} -> {peak} KiB");
    assert!(slowest < Duration::from_secs(1), "/status took {slowest:?}");
    // And the server still saves a real file.
    std::fs::write(data.0.join("real.txt"), b"a real file, sent in datagrams").unwrap();
    let client = c
        .endpoint(cmd(json!({"op": "udp_client_open", "port": to.port()})))
        .await;
    let sent = c
        .transfer(cmd(json!({"op": "send_file", "endpoint": client.id,
            "file": "real.txt", "datagram_size": 8})))
        .await;
    let got = c
        .wait_for("the real file saved", |e| {
            matches!(&e.kind, EventKind::Transfer(r) if r.complete
                && r.direction == shared::Direction::Received)
        })
        .await;
    let EventKind::Transfer(got) = got.kind else {
        unreachable!()
    };
    assert_eq!(got.sha256, sent.sha256);
    assert_eq!(got.ended, Some(TransferEnd::AllDatagrams));
}

#[tokio::test]
async fn a_line_without_its_newline_is_cut_off_at_the_limit() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let key = match c.ok(cmd(json!({"op": "fernet_key"}))).await {
        shared::ReplyData::Key { key } => key,
        other => panic!("{other:?}"),
    };
    let server = c
        .endpoint(cmd(json!({"op": "tcp_server_start", "port": 0,
            "concurrency": "concurrent", "policy": {"kind": "persistent"},
            "behaviour": {"kind": "fernet_echo", "key": key}})))
        .await;
    let mut plain = TcpStream::connect(("127.0.0.1", port_of(&server)))
        .await
        .unwrap();
    let block = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    for _ in 0..64 {
        if plain.write_all(&block).await.is_err() {
            break;
        }
        sent += block.len();
    }
    let closed = c
        .wait_for("the connection cut off", |e| {
            matches!(&e.kind, EventKind::Close { reason, .. } if reason.contains("without its newline"))
        })
        .await;
    let taken = received(&c.events, server.id, closed.conn).len();
    assert!(
        taken <= 64 * 1024 + 1024,
        "{taken} of {sent} bytes were taken before the cut"
    );
}

#[tokio::test]
async fn simulated_trouble_is_bounded() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    for (impair, what) in [
        (json!({"delay_ms": 60_000}), "delay_ms may be at most 10000"),
        (json!({"loss_percent": 101}), "loss_percent is a percentage"),
    ] {
        let refused = c
            .err(cmd(
                json!({"op": "udp_server_start", "port": 0, "impair": impair}),
            ))
            .await;
        assert_eq!(refused.kind, ErrorKind::InvalidRequest);
        assert!(
            refused.explanation.contains(what),
            "{}",
            refused.explanation
        );
    }
    let echo = c
        .endpoint(cmd(json!({"op": "udp_server_start", "port": 0,
            "impair": {"delay_ms": 5000}})))
        .await;
    let refused = c
        .err(cmd(json!({"op": "impair", "endpoint": echo.id,
            "impairment": {"delay_ms": 4_000_000_000u32}})))
        .await;
    assert_eq!(refused.kind, ErrorKind::InvalidRequest);
    // A flood of requests, each owed a delayed reply: only so many wait, the rest are dropped.
    let to: SocketAddr = echo.local.clone().unwrap().parse().unwrap();
    let flood = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let datagram = [b'd'; 512];
    for _ in 0..3000 {
        flood.send_to(&datagram, to).await.unwrap();
        tokio::task::yield_now().await;
    }
    c.wait_for("replies dropped once the delay queue is full", |e| {
        matches!(&e.kind, EventKind::Impaired { action, .. } if action.contains("already wait"))
    })
    .await;
    // Reset: what waited never goes out.
    c.ok(cmd(json!({"op": "reset"}))).await;
    let mut buf = [0u8; 1024];
    let late = tokio::time::timeout(Duration::from_secs(6), flood.recv_from(&mut buf)).await;
    assert!(late.is_err(), "a delayed reply went out after the reset");
}

#[tokio::test]
async fn every_byte_of_an_event_counts_and_commands_carry_bounded_texts() {
    let bridge = Bridge::start_with(|c| c.history_bytes = 256 << 10).await;
    let mut c = bridge.client().await;
    let refused = c
        .err(cmd(
            json!({"op": "tcp_client_connect", "host": "h".repeat(100_000), "port": 80}),
        ))
        .await;
    assert_eq!(refused.kind, ErrorKind::InvalidRequest);
    assert!(
        refused.explanation.contains("at most 253"),
        "{}",
        refused.explanation
    );
    assert!(
        refused.explanation.len() < 200,
        "the error does not repeat the host"
    );
    // 150 servers whose spec holds 4000 bytes each: 600 kB of specs, no payload at all.
    for _ in 0..150 {
        let server = c
            .endpoint(cmd(json!({"op": "udp_server_start", "port": 0,
                "behaviour": {"kind": "prefix", "prefix": "p".repeat(4000)}})))
            .await;
        c.ok(Command::close(server.id, None)).await;
    }
    let late = bridge.client().await;
    let kept: usize = late
        .welcome
        .snapshot
        .events
        .iter()
        .map(|e| e.kept_bytes())
        .sum();
    assert!(kept <= 256 << 10, "the history keeps {kept} bytes");
    assert!(late.welcome.snapshot.history_dropped > 0);
}

/// Sends `chunks` messages of 64 KiB through a TCP pair (each received one an event of its
/// 64 KiB), and waits until all arrived: a history of `chunks` × 87 KB kept.
async fn fill_history(c: &mut Client, chunks: usize) {
    let (server, client) = c
        .tcp_pair(
            json!({"behaviour": {"kind": "print_only"}, "recv_buffer": 65536,
            "policy": {"kind": "persistent"}}),
        )
        .await;
    let chunk = "z".repeat(64 * 1024);
    for _ in 0..chunks {
        c.ok(send_text(client.id, None, &chunk)).await;
    }
    c.wait_until("everything received", |ev| {
        received(ev, server.id, None).len() >= chunks * 64 * 1024
    })
    .await;
}

#[tokio::test]
async fn a_late_page_gets_a_large_history_in_batches() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    // About 15 MB of history: 120 events of 64 KiB.
    fill_history(&mut c, 120).await;
    let origin = format!("http://{}", bridge.addr);
    let mut ws = bridge
        .raw(Some(&bridge.addr.to_string()), Some(&origin))
        .await
        .unwrap();
    use futures_util::{SinkExt, StreamExt};
    ws.send(tokio_tungstenite::tungstenite::Message::text(hello_json()))
        .await
        .unwrap();
    let mut largest = 0;
    let mut history = Vec::new();
    let last_seq = c.events.last().unwrap().seq;
    while history.last().is_none_or(|seq| *seq < last_seq) {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let text = message.into_text().unwrap();
        largest = largest.max(text.len());
        match serde_json::from_str::<ServerMessage>(&text).unwrap() {
            ServerMessage::Welcome(w) => history.extend(w.snapshot.events.iter().map(|e| e.seq)),
            ServerMessage::Events { events } => history.extend(events.iter().map(|e| e.seq)),
            _ => {}
        }
    }
    assert!(largest < 2 << 20, "one message of {largest} bytes");
    assert!(
        history.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, no gap"
    );
}

#[tokio::test]
async fn a_page_that_stops_reading_during_the_welcome_is_dropped() {
    // Pings every second: a page that takes nothing for 3 s is given up on.
    let bridge = Bridge::start_with(|c| c.ping_every = Duration::from_secs(1)).await;
    let mut c = bridge.client().await;
    fill_history(&mut c, 100).await;
    drop(c);
    let mut stream = stingy_connection(bridge.addr).await;
    handshake(&mut stream, bridge.addr).await;
    stream.write_all(&hello_frame()).await.unwrap();
    // This page never reads. Its session must end, and its place be free again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = bridge_status(bridge.addr).await;
        if status["sessions"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the session is still open: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A Python sender of `bytes` bytes into `port` that waits for a line on stdin before it ends
/// (and so holds its connection open meanwhile).
const HOLDING_SENDER: &str = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.argv[2].encode() * int(sys.argv[3]))
print("sent", flush=True)
sys.stdin.readline()
s.close()
"#;

#[tokio::test]
async fn two_streams_never_share_one_file() {
    let data = TempDir::new("hostile-two-streams");
    let dir = data.0.clone();
    let bridge = Bridge::start_with(move |c| c.data_dir = dir).await;
    let mut c = bridge.client().await;
    let server = c
        .endpoint(cmd(
            json!({"op": "tcp_server_start", "port": 0, "concurrency": "concurrent",
            "behaviour": {"kind": "save_to_file", "file": "upload.txt"}}),
        ))
        .await;
    let port = port_of(&server).to_string();
    let spawn = |letter: &str| {
        let mut child = tokio::process::Command::new("python3")
            .args(["-c", HOLDING_SENDER, &port, letter, "100000"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        (
            child,
            tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout)),
        )
    };
    let (mut first, mut first_out) = spawn("a");
    assert_eq!(next_line(&mut first_out).await, "sent");
    c.wait_for("the first stream's file opened", |e| {
        matches!(&e.kind, EventKind::Progress { .. }) && e.endpoint == server.id
    })
    .await;
    let (mut second, mut second_out) = spawn("b");
    assert_eq!(next_line(&mut second_out).await, "sent");
    let refused = c
        .wait_for("the second stream refused", |e| {
            matches!(&e.kind, EventKind::Error { error, .. }
                if error.explanation.contains("being received already"))
        })
        .await;
    assert_eq!(refused.endpoint, server.id);
    for child in [&mut first, &mut second] {
        child.stdin.take().unwrap().write_all(b"\n").await.unwrap();
        child.wait().await.unwrap();
    }
    let report = c.report_of(server.id).await;
    assert!(report.complete && report.bytes == 100_000, "{report:?}");
    assert_eq!(report.ended, Some(TransferEnd::Eof));
    assert_eq!(
        std::fs::read(data.0.join("upload.txt")).unwrap(),
        vec![b'a'; 100_000],
        "the file is the first stream's, whole"
    );
    assert_eq!(
        python_sha256(&data.0.join("upload.txt")).await,
        report.sha256
    );
}

#[tokio::test]
async fn a_sender_killed_mid_file_is_reported_as_ended_at_eof() {
    let data = TempDir::new("hostile-killed");
    let dir = data.0.clone();
    let bridge = Bridge::start_with(move |c| c.data_dir = dir).await;
    let mut c = bridge.client().await;
    let server = c.save_to_file_server("half.bin").await;
    let script = r#"
import os, signal, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"h" * 50000)
os.kill(os.getpid(), signal.SIGKILL)
"#;
    let status = tokio::process::Command::new("python3")
        .args(["-c", script, &port_of(&server).to_string()])
        .status()
        .await
        .unwrap();
    assert!(!status.success(), "the sender was killed");
    let report = c.report_of(server.id).await;
    assert_eq!(report.bytes, 50_000);
    assert_eq!(
        report.ended,
        Some(TransferEnd::Eof),
        "the receiver says what it knows: EOF after 50,000 bytes"
    );
}

#[tokio::test]
async fn idle_peers_without_the_token_cannot_lock_the_page_out() {
    let bridge = Bridge::start_with(|c| c.max_sessions = 4).await;
    // More WebSockets than there are sessions, none of which says hello.
    let origin = format!("http://{}", bridge.addr);
    let mut silent = Vec::new();
    for _ in 0..40 {
        if let Ok(ws) = bridge
            .raw(Some(&bridge.addr.to_string()), Some(&origin))
            .await
        {
            silent.push(ws);
        }
    }
    let page = bridge.client().await;
    assert_eq!(page.welcome.protocol, shared::PROTOCOL_VERSION);
    // And more idle HTTP connections than the bridge keeps: a page load still gets through.
    let mut idle = Vec::new();
    for _ in 0..bridge::MAX_HTTP_CONNECTIONS + 40 {
        idle.push(TcpStream::connect(bridge.addr).await.unwrap());
    }
    let status = bridge_status(bridge.addr).await;
    assert_eq!(status["sessions"], 1, "{status}");
    // The page's own session was not pushed out with them: it left the HTTP budget when it
    // became a WebSocket.
    let mut page = page;
    page.ok(cmd(json!({"op": "list_files"}))).await;
    drop((silent, idle));
}

#[tokio::test]
async fn uploads_are_bounded_ordered_and_owned_by_their_session() {
    let data = TempDir::new("hostile-uploads");
    let dir = data.0.clone();
    let bridge = Bridge::start_with(move |c| {
        c.data_dir = dir;
        c.max_file_bytes = 1 << 20;
    })
    .await;
    let mut c = bridge.client().await;
    let refused = c
        .err(cmd(
            json!({"op": "upload_start", "file": "huge.bin", "size": u64::MAX}),
        ))
        .await;
    assert_eq!(refused.kind, ErrorKind::LimitReached);
    assert!(
        refused.explanation.contains("at most 1048576 bytes"),
        "{}",
        refused.explanation
    );
    let upload = match c
        .ok(cmd(
            json!({"op": "upload_start", "file": "up.txt", "size": 6}),
        ))
        .await
    {
        shared::ReplyData::Upload { upload } => upload,
        other => panic!("{other:?}"),
    };
    // Sent without waiting: applied in the order sent, or refused.
    let first = c
        .send_request(cmd(
            json!({"op": "upload_chunk", "upload": upload, "offset": 0,
            "base64": "YWJj"}),
        ))
        .await;
    let wrong = c
        .send_request(cmd(
            json!({"op": "upload_chunk", "upload": upload, "offset": 0,
            "base64": "eHl6"}),
        ))
        .await;
    let second = c
        .send_request(cmd(
            json!({"op": "upload_chunk", "upload": upload, "offset": 3,
            "base64": "ZGVm"}),
        ))
        .await;
    assert!(matches!(
        c.reply_to(Some(first)).await,
        shared::Outcome::Ok(_)
    ));
    let shared::Outcome::Error(out_of_order) = c.reply_to(Some(wrong)).await else {
        panic!("a chunk for the wrong offset was taken")
    };
    assert!(
        out_of_order.explanation.contains("in order"),
        "{out_of_order:?}"
    );
    assert!(matches!(
        c.reply_to(Some(second)).await,
        shared::Outcome::Ok(_)
    ));
    c.ok(cmd(json!({"op": "upload_finish", "upload": upload})))
        .await;
    assert_eq!(std::fs::read(data.0.join("up.txt")).unwrap(), b"abcdef");
    // An upload left open by a page that went away frees its place (8 at most).
    for i in 0..8 {
        let mut gone = bridge.client().await;
        gone.ok(cmd(
            json!({"op": "upload_start", "file": format!("left{i}.txt"), "size": 5}),
        ))
        .await;
    }
    let deadline = Instant::now() + WAIT;
    loop {
        match c
            .request(cmd(
                json!({"op": "upload_start", "file": "after.txt", "size": 1}),
            ))
            .await
        {
            shared::Outcome::Ok(_) => break,
            shared::Outcome::Error(e) => assert!(Instant::now() < deadline, "{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_comparison_stops_at_reset_and_runs_one_at_a_time() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let long = cmd(json!({"op": "compare", "count": 100_000, "size": 64,
        "file_bytes": 1u64 << 30}));
    let running = c.send_request(long.clone()).await;
    let second = c.send_request(long).await;
    let shared::Outcome::Error(busy) = c.reply_to(Some(second)).await else {
        panic!("two comparisons ran at once")
    };
    assert_eq!(busy.kind, ErrorKind::LimitReached);
    c.ok(cmd(json!({"op": "reset"}))).await;
    let shared::Outcome::Error(stopped) = c.reply_to(Some(running)).await else {
        panic!("the comparison went on after the reset")
    };
    assert!(stopped.explanation.contains("reset"), "{stopped:?}");
}

#[tokio::test]
async fn a_fetch_url_with_credentials_is_refused() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let udp = c.print_only_udp_server().await;
    let client = c
        .endpoint(cmd(json!({"op": "udp_client_open", "port": udp.port()})))
        .await;
    let refused = c
        .err(cmd(json!({"op": "fetch_send", "endpoint": client.id,
            "url": format!("http://user:secret@{udp}/")})))
        .await;
    assert!(
        refused.explanation.contains("user name or password"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn the_page_is_served_with_a_content_security_policy() {
    let dist = TempDir::new("hostile-csp");
    std::fs::write(
        dist.0.join("index.html"),
        "<html><head><script type=\"module\">import init from '/x.js'; init();</script></head></html>",
    )
    .unwrap();
    let dir = dist.0.clone();
    let bridge = Bridge::start_with(move |c| c.static_dir = Some(dir)).await;
    let mut stream = TcpStream::connect(bridge.addr).await.unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        bridge.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let policy = answer
        .lines()
        .find_map(|l| l.strip_prefix("content-security-policy: "))
        .unwrap_or_else(|| panic!("no policy: {answer}"));
    assert!(
        policy.contains("script-src 'self' 'wasm-unsafe-eval' 'sha256-"),
        "{policy}"
    );
    assert!(policy.contains("connect-src 'self'"), "{policy}");
}

#[tokio::test]
async fn data_directory_files_that_are_not_regular_are_refused_at_once() {
    let data = TempDir::new("hostile-fifo");
    let fifo = std::ffi::CString::new(data.0.join("pipe.txt").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path only.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let dir = data.0.clone();
    let bridge = Bridge::start_with(move |c| c.data_dir = dir).await;
    let mut c = bridge.client().await;
    let (_, client) = c.tcp_pair(json!({"behaviour": {"kind": "discard"}})).await;
    // A FIFO would block the reader (and the runtime thread) until someone writes to it.
    let refused = tokio::time::timeout(
        WAIT,
        c.err(cmd(
            json!({"op": "send_file", "endpoint": client.id, "file": "pipe.txt"}),
        )),
    )
    .await
    .expect("refused at once");
    assert_eq!(refused.kind, ErrorKind::NotAllowed, "{refused:?}");
    let logging = c
        .request(cmd(
            json!({"op": "udp_server_start", "port": 0, "log_file": "pipe.txt"}),
        ))
        .await;
    assert!(
        matches!(logging, shared::Outcome::Ok(_)),
        "the server runs without its log"
    );
    c.wait_for(
        "the log refused",
        |e| matches!(&e.kind, EventKind::Error { op, .. } if op == "log"),
    )
    .await;
}
