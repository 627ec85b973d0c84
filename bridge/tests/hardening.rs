//! Hostile clients of the bridge itself (docs/security.md): requests that trickle their headers or send
//! far too many, floods of idle connections, pages that stop answering, and the headers that
//! keep the token out of other sites' hands. Every wait is bounded.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the bridge closes the connection; returns what it sent and when it closed.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Instant>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, Some(Instant::now())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, None),
        }
    }
}

#[tokio::test]
async fn a_request_that_trickles_its_headers_is_closed_within_10_s() {
    let bridge = Bridge::start().await;
    let mut stream = TcpStream::connect(bridge.addr).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(format!("GET / HTTP/1.1\r\nHost: {}\r\n", bridge.addr).as_bytes())
        .await
        .unwrap();
    // One more header line a second, never the blank line that ends them (slowloris).
    let mut closed = None;
    for i in 0..20 {
        if stream
            .write_all(format!("X-Slow-{i}: a\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = Some(Instant::now());
            break;
        }
        let (_, at) = until_closed(&mut stream, Duration::from_secs(1)).await;
        if at.is_some() {
            closed = at;
            break;
        }
    }
    let closed = closed.expect("the bridge closed the trickling request");
    let took = closed - started;
    assert!(
        took <= Duration::from_millis(10_500),
        "closed after {took:?}, not within 10 s"
    );
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_within_10_s() {
    let bridge = Bridge::start().await;
    let mut stream = TcpStream::connect(bridge.addr).await.unwrap();
    let started = Instant::now();
    let (_, closed) = until_closed(&mut stream, Duration::from_secs(15)).await;
    let took = closed.expect("the bridge closed the silent connection") - started;
    assert!(
        took <= Duration::from_millis(10_500),
        "closed after {took:?}"
    );
}

#[tokio::test]
async fn a_megabyte_of_headers_is_refused_at_once() {
    let bridge = Bridge::start().await;
    let mut stream = TcpStream::connect(bridge.addr).await.unwrap();
    let started = Instant::now();
    let mut request = format!("GET / HTTP/1.1\r\nHost: {}\r\n", bridge.addr).into_bytes();
    let filler = format!("X-Filler: {}\r\n", "a".repeat(1000));
    while request.len() < 1 << 20 {
        request.extend_from_slice(filler.as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    // The bridge may close before all of it is written; that is the point.
    let _ = stream.write_all(&request).await;
    let (answer, closed) = until_closed(&mut stream, WAIT).await;
    assert!(closed.is_some(), "the connection was closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "refused as too large: {answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // And the bridge still serves everyone else.
    let mut c = bridge.client().await;
    c.ok(cmd(json!({"op": "list_files"}))).await;
}

#[tokio::test]
async fn a_flood_of_idle_connections_is_capped_and_the_bridge_recovers() {
    let bridge = Bridge::start().await;
    let mut idle = Vec::new();
    for _ in 0..bridge::MAX_HTTP_CONNECTIONS {
        idle.push(TcpStream::connect(bridge.addr).await.unwrap());
    }
    // One over the cap pushes out the oldest idle one, which is closed without an answer.
    let _newest = TcpStream::connect(bridge.addr).await.unwrap();
    let (answer, closed) = until_closed(&mut idle[0], WAIT).await;
    assert!(closed.is_some() && answer.is_empty());
    // Meanwhile a page still connects and says hello.
    let page = bridge.client().await;
    assert_eq!(page.welcome.protocol, shared::PROTOCOL_VERSION);
    drop(idle);
    // Once they are gone, a page can connect again (bounded retries while they close).
    let deadline = Instant::now() + WAIT;
    loop {
        let origin = format!("http://{}", bridge.addr);
        match bridge
            .raw(Some(&bridge.addr.to_string()), Some(&origin))
            .await
        {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < deadline, "no recovery: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_session_that_stops_answering_pings_is_closed() {
    let bridge = Bridge::start_with(|c| {
        c.ping_every = Duration::from_millis(200);
        c.max_sessions = 1;
    })
    .await;
    // A page that answers (this client reads, and tungstenite answers pings as it reads).
    let mut alive = bridge.client().await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        alive.ok(cmd(json!({"op": "list_files"}))).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(alive);
    // A page that went away without closing: it never reads, so it never answers a ping.
    let silent = bridge.client().await;
    let started = Instant::now();
    // The one session slot frees once the bridge has given up on it.
    let origin = format!("http://{}", bridge.addr);
    let mut second = loop {
        let ws = bridge
            .raw(Some(&bridge.addr.to_string()), Some(&origin))
            .await;
        // Refused with "too many sessions" (4429) while the silent one holds the place.
        if let Ok(ws) = ws {
            match Client::hello(ws, TOKEN).await {
                Ok(client) => break client,
                Err((_, code)) => assert_eq!(code, Some(shared::close_code::TOO_MANY_SESSIONS)),
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the silent session was never closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let gave_up = started.elapsed();
    assert!(
        gave_up >= Duration::from_millis(400),
        "closed too soon: {gave_up:?}"
    );
    second.ok(cmd(json!({"op": "list_files"}))).await;
    drop(silent);
}

#[tokio::test]
async fn pages_carry_no_referrer_and_cannot_be_framed() {
    let dist = TempDir::new("dist");
    std::fs::write(dist.0.join("index.html"), "<!doctype html><title>t</title>").unwrap();
    let bridge = Bridge::start_with(|c| c.static_dir = Some(dist.0.clone())).await;
    let mut stream = TcpStream::connect(bridge.addr).await.unwrap();
    stream
        .write_all(
            format!(
                "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                bridge.addr
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let (answer, _) = until_closed(&mut stream, WAIT).await;
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("referrer-policy: no-referrer"), "{answer}");
    assert!(answer.contains("x-frame-options: deny"), "{answer}");
}

#[tokio::test]
async fn sessions_endpoints_and_connections_are_capped_with_clear_errors() {
    let bridge = Bridge::start_with(|c| {
        c.max_sessions = 2;
        c.max_endpoints = 2;
        c.max_connections_per_server = 2;
    })
    .await;
    let mut c = bridge.client().await;
    let _second = bridge.client().await;
    // A third session: its hello is refused with a reason and close code 4429.
    let origin = format!("http://{}", bridge.addr);
    let third = bridge
        .raw(Some(&bridge.addr.to_string()), Some(&origin))
        .await
        .unwrap();
    match Client::hello(third, TOKEN).await {
        Err((Some(error), code)) => {
            assert_eq!(error.kind, shared::ErrorKind::LimitReached);
            assert!(
                error.explanation.contains("2 sessions are open"),
                "{error:?}"
            );
            assert_eq!(code, Some(shared::close_code::TOO_MANY_SESSIONS));
        }
        Err(other) => panic!("refused without a reason: {other:?}"),
        Ok(_) => panic!("a third session was let in"),
    }
    // Endpoints: the third is refused as a limit.
    let server = c
        .endpoint(cmd(
            json!({"op": "tcp_server_start", "port": 0, "concurrency": "concurrent"}),
        ))
        .await;
    c.endpoint(cmd(json!({"op": "udp_server_start", "port": 0})))
        .await;
    let refused = c
        .err(cmd(json!({"op": "udp_server_start", "port": 0})))
        .await;
    assert_eq!(refused.kind, shared::ErrorKind::LimitReached);
    // Connections: the third client of a full server is turned away with an event.
    let port = port_of(&server);
    let _a = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _b = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    c.wait_until("two accepted", |ev| {
        ev.iter()
            .filter(|e| e.kind == shared::EventKind::Accept)
            .count()
            == 2
    })
    .await;
    let mut third = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (_, closed) = until_closed(&mut third, WAIT).await;
    assert!(closed.is_some(), "the third connection was closed");
    let turned_away = c
        .wait_for("the turned-away event", |e| {
            matches!(&e.kind, shared::EventKind::Error { error, .. }
                if error.kind == shared::ErrorKind::LimitReached)
        })
        .await;
    assert_eq!(turned_away.endpoint, server.id);
}

/// Every path the page can name a file by (download, send, save, log, upload), with a corpus of
/// traversal payloads: none reaches a file outside the data directory.
#[tokio::test]
async fn traversal_payloads_never_leave_the_data_directory() {
    let outer = TempDir::new("traversal");
    let data = outer.0.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let secret = "the-secret-beside-the-data-directory";
    std::fs::write(outer.0.join("secret.txt"), secret).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(outer.0.join("secret.txt"), data.join("link.txt")).unwrap();
    let bridge = Bridge::start_with(|c| c.data_dir = data.clone()).await;
    let names = [
        "../secret.txt",
        "..\\secret.txt",
        "....//secret.txt",
        "/etc/passwd",
        "%2e%2e%2fsecret.txt",
        "..%2fsecret.txt",
        "..%252fsecret.txt",
        "secret.txt\0.bin",
        ".",
        "..",
        "",
        "link.txt",
        "data/../../secret.txt",
        "\u{2024}\u{2024}/secret.txt",
        "C:\\secret.txt",
    ];
    // Downloads, with the right token, percent-encoded as a browser would send them.
    for name in names {
        let encoded: String = name
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        for path in [format!("/files/{encoded}"), format!("/files/{name}")] {
            if path.contains(['\0', '\r', '\n', ' ']) {
                continue;
            }
            let mut stream = TcpStream::connect(bridge.addr).await.unwrap();
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n",
                bridge.addr
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            let (answer, _) = until_closed(&mut stream, WAIT).await;
            let answer = String::from_utf8_lossy(&answer);
            assert!(!answer.contains(secret), "{path} leaked the secret");
            assert!(!answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        }
    }
    // Commands that take a file name.
    let mut c = bridge.client().await;
    let client = c
        .endpoint(cmd(json!({"op": "udp_client_open", "port": 9})))
        .await;
    // Reading through the link is refused (O_NOFOLLOW); writing to its name would replace the
    // link by a new file (a .part renamed over it), which is no way out either.
    let error = c
        .err(cmd(
            json!({"op": "send_file", "endpoint": client.id, "file": "link.txt"}),
        ))
        .await;
    assert_eq!(error.kind, shared::ErrorKind::NotAllowed);
    for name in names.iter().filter(|n| **n != "link.txt") {
        for command in [
            json!({"op": "send_file", "endpoint": client.id, "file": name}),
            json!({"op": "upload_start", "file": name, "size": 1}),
            json!({"op": "tcp_server_start", "port": 0,
                   "behaviour": {"kind": "save_to_file", "file": name}}),
            json!({"op": "udp_server_start", "port": 0, "log_file": name}),
        ] {
            let error = c.err(cmd(command.clone())).await;
            assert_eq!(
                error.kind,
                shared::ErrorKind::NotAllowed,
                "{command} was not refused as it should be"
            );
        }
    }
    // Nothing was written outside, and the secret is unchanged.
    let outside: Vec<_> = std::fs::read_dir(&outer.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(outside.len(), 2, "{outside:?}");
    assert_eq!(
        std::fs::read_to_string(outer.0.join("secret.txt")).unwrap(),
        secret
    );
}

/// The bridge binary without `--token`, logging at trace level (everything) into a pipe read
/// at the end.
async fn bridge_with_fresh_token() -> BridgeProcess {
    let mut command = tokio::process::Command::new(common::bridge_binary());
    command
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "trace")
        .stderr(std::process::Stdio::piped());
    BridgeProcess::spawn(command).await
}

#[tokio::test]
async fn a_fresh_token_each_start_and_never_in_a_log_or_an_error() {
    let first = bridge_with_fresh_token().await;
    let BridgeProcess {
        child: second,
        addr,
        token: token_b,
    } = bridge_with_fresh_token().await;
    let token_a = first.token.clone();
    drop(first);
    assert_ne!(token_a, token_b, "each start makes a new token");
    assert!(token_b.len() >= 43, "256 bits, base64: {token_b}");
    // Use it: a wrong hello, a right one, a command, a failing download.
    let bridge = Bridge::elsewhere(addr);
    let origin = format!("http://{addr}");
    let ws = bridge
        .raw(Some(&addr.to_string()), Some(&origin))
        .await
        .unwrap();
    let refused = Client::hello(ws, "wrong-token-0123456789")
        .await
        .err()
        .unwrap();
    let refusal = format!("{refused:?}");
    assert!(!refusal.contains(&token_b), "the refusal shows the token");
    let ws = bridge
        .raw(Some(&addr.to_string()), Some(&origin))
        .await
        .unwrap();
    let mut c = Client::hello(ws, &token_b).await.expect("welcome");
    let error = c
        .err(cmd(json!({"op": "send_file", "endpoint": 99, "file": "x"})))
        .await;
    assert!(!format!("{error:?}").contains(&token_b));
    drop(c);
    // Stop it (SIGTERM) and read everything it logged, at trace level.
    // SAFETY: a signal to the child this test started.
    unsafe { libc::kill(second.id().unwrap() as i32, libc::SIGTERM) };
    let output = tokio::time::timeout(WAIT, second.wait_with_output())
        .await
        .expect("the bridge stopped")
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("session opened"), "the log was read: {log}");
    assert!(!log.contains(&token_b), "the token is in the log");
}

#[tokio::test]
async fn sockets_per_session_are_capped_and_freed_when_closed() {
    let bridge = Bridge::start_with(|c| c.max_endpoints_per_session = 2).await;
    let mut a = bridge.client().await;
    let first = a
        .endpoint(cmd(json!({"op": "udp_server_start", "port": 0})))
        .await;
    a.endpoint(cmd(json!({"op": "udp_server_start", "port": 0})))
        .await;
    let refused = a
        .err(cmd(json!({"op": "udp_server_start", "port": 0})))
        .await;
    assert_eq!(refused.kind, shared::ErrorKind::LimitReached);
    assert!(refused.hint.is_some());
    // Another page has its own allowance.
    let mut b = bridge.client().await;
    b.endpoint(cmd(json!({"op": "udp_server_start", "port": 0})))
        .await;
    // Closing one frees a place.
    a.ok(cmd(json!({"op": "close", "endpoint": first.id})))
        .await;
    let deadline = Instant::now() + WAIT;
    loop {
        match a
            .request(cmd(json!({"op": "udp_server_start", "port": 0})))
            .await
        {
            shared::Outcome::Ok(_) => break,
            shared::Outcome::Error(e) => {
                assert!(
                    Instant::now() < deadline,
                    "the place was never freed: {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test]
async fn status_needs_the_token_and_counts_what_runs() {
    let bridge = Bridge::start().await;
    let mut stream = TcpStream::connect(bridge.addr).await.unwrap();
    let request = format!(
        "GET /status HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        bridge.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let (answer, _) = until_closed(&mut stream, WAIT).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 401"));
    let mut c = bridge.client().await;
    c.endpoint(cmd(json!({"op": "udp_server_start", "port": 0})))
        .await;
    let status = bridge_status(bridge.addr).await;
    assert_eq!(status["endpoints"], 1);
    assert_eq!(status["sessions"], 1);
    assert!(status["tasks"].as_u64().unwrap() > 0);
}

/// CPU time (user + system, in clock ticks) a process has used, from /proc.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[tokio::test]
async fn trickling_clients_cost_no_cpu_while_they_wait() {
    let bridge = BridgeProcess::start(&[]).await;
    let (addr, pid) = (bridge.addr, bridge.pid());
    // 100 clients that each send half a request and then nothing, for 5 seconds.
    let mut idle = Vec::new();
    for _ in 0..100 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("GET / HTTP/1.1\r\nHost: {addr}\r\nX-Slow: a").as_bytes())
            .await
            .unwrap();
        idle.push(stream);
    }
    // Let the bridge take them all in, then measure only the waiting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let used = cpu_ticks(pid) - before;
    // A tick is 10 ms: the bridge slept through the wait (timers, no polling).
    assert!(used <= 5, "{used} ticks of CPU in 5 s of waiting");
    // And it closes them all once their 10 s are up.
    for mut stream in idle {
        let (_, closed) = until_closed(&mut stream, Duration::from_secs(10)).await;
        assert!(closed.is_some());
    }
    drop(bridge);
}
