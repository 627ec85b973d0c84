//! The bridge's safe defaults, attacked for real: foreign Host and Origin headers, missing and
//! wrong tokens, targets beyond loopback, malformed and oversized messages.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use shared::{close_code, ErrorKind, Outcome, ServerMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{self, Message};

fn status_of(result: Result<Ws, tungstenite::Error>) -> u16 {
    match result {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other:?}"),
        Ok(_) => panic!("the handshake should have been refused"),
    }
}

#[tokio::test]
async fn foreign_host_is_refused() {
    let bridge = Bridge::start().await;
    let port = bridge.addr.port();
    // A DNS-rebinding page: its own name, pointed at 127.0.0.1.
    assert_eq!(
        status_of(
            bridge
                .raw(Some(&format!("evil.example:{port}")), None)
                .await
        ),
        403
    );
    assert_eq!(status_of(bridge.raw(Some("127.0.0.1:1"), None).await), 403);
    // Plain HTTP gets the same answer.
    let mut tcp = tokio::net::TcpStream::connect(bridge.addr).await.unwrap();
    tcp.write_all(
        format!("GET / HTTP/1.1\r\nHost: evil.example:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    // The bridge's own names work.
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let ws = bridge.raw(Some(&host), None).await.unwrap();
        Client::hello(ws, TOKEN).await.expect("welcome");
    }
}

#[tokio::test]
async fn bare_loopback_host_from_a_dev_proxy_is_accepted() {
    // `trunk serve` forwards the WebSocket with `Host: 127.0.0.1` (no port).
    let bridge = Bridge::start().await;
    for host in ["127.0.0.1", "localhost"] {
        let ws = bridge
            .raw(Some(host), Some("http://127.0.0.1:8080"))
            .await
            .unwrap();
        Client::hello(ws, TOKEN).await.expect("welcome");
    }
    assert_eq!(status_of(bridge.raw(Some("evil.example"), None).await), 403);
}

#[tokio::test]
async fn the_page_is_served_and_not_frameable() {
    let dist = std::env::temp_dir().join(format!("sp-dist-{}", std::process::id()));
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("index.html"), "<p>page</p>").unwrap();
    let bridge = Bridge::start_with(|c| c.static_dir = Some(dist.clone())).await;
    for path in ["/", "/some/deep/link"] {
        let mut tcp = tokio::net::TcpStream::connect(bridge.addr).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            bridge.addr
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(WAIT, tcp.read_to_string(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        assert!(answer
            .to_ascii_lowercase()
            .contains("x-frame-options: deny"));
        assert!(answer.ends_with("<p>page</p>"), "{answer}");
    }
    let _ = std::fs::remove_dir_all(&dist);
}

#[tokio::test]
async fn foreign_origin_is_refused() {
    let bridge = Bridge::start().await;
    let host = bridge.addr.to_string();
    for origin in [
        "https://evil.example",
        "null",
        "http://127.0.0.1:1",
        "http://localhost",
    ] {
        assert_eq!(
            status_of(bridge.raw(Some(&host), Some(origin)).await),
            403,
            "{origin}"
        );
    }
    let own = format!("http://localhost:{}", bridge.addr.port());
    for origin in [own.as_str(), "http://127.0.0.1:8080"] {
        let ws = bridge.raw(Some(&host), Some(origin)).await.unwrap();
        Client::hello(ws, TOKEN).await.expect("welcome");
    }
}

#[tokio::test]
async fn extra_origins_can_be_allowed() {
    let bridge = Bridge::start_with(|config| {
        config.extra_origins = vec!["http://192.168.1.5:8080".into()];
    })
    .await;
    let host = bridge.addr.to_string();
    let ws = bridge
        .raw(Some(&host), Some("http://192.168.1.5:8080"))
        .await
        .unwrap();
    Client::hello(ws, TOKEN).await.expect("welcome");
}

#[tokio::test]
async fn missing_or_wrong_token_is_refused() {
    let bridge = Bridge::start().await;
    let host = bridge.addr.to_string();
    for token in [
        "",
        "wrong-token-0123456789abcdef",
        &TOKEN[..TOKEN.len() - 1],
    ] {
        let ws = bridge.raw(Some(&host), None).await.unwrap();
        let (fatal, code) = Client::hello(ws, token).await.err().expect("refused");
        assert_eq!(code, Some(close_code::UNAUTHORIZED), "token {token:?}");
        assert_eq!(fatal.unwrap().kind, ErrorKind::Unauthorized);
    }
    // A request without any hello is refused the same way.
    let mut ws = bridge.raw(Some(&host), None).await.unwrap();
    ws.send(Message::text(
        json!({"type": "request", "id": 1, "command": {"op": "reset"}}).to_string(),
    ))
    .await
    .unwrap();
    let mut code = None;
    while let Ok(Some(Ok(message))) = tokio::time::timeout(WAIT, ws.next()).await {
        if let Message::Close(frame) = message {
            code = frame.map(|f| u16::from(f.code));
            break;
        }
    }
    assert_eq!(code, Some(close_code::UNAUTHORIZED));
}

#[tokio::test]
async fn wrong_protocol_version_is_refused() {
    let bridge = Bridge::start().await;
    let mut ws = bridge
        .raw(Some(&bridge.addr.to_string()), None)
        .await
        .unwrap();
    ws.send(Message::text(
        json!({"type": "hello", "protocol": 999, "token": TOKEN}).to_string(),
    ))
    .await
    .unwrap();
    let mut fatal = None;
    let mut code = None;
    while let Ok(Some(Ok(message))) = tokio::time::timeout(WAIT, ws.next()).await {
        match message {
            Message::Text(text) => {
                if let ServerMessage::Fatal { error } = serde_json::from_str(&text).unwrap() {
                    fatal = Some(error);
                }
            }
            Message::Close(frame) => {
                code = frame.map(|f| u16::from(f.code));
                break;
            }
            _ => {}
        }
    }
    assert_eq!(code, Some(close_code::VERSION_MISMATCH));
    assert_eq!(fatal.unwrap().kind, ErrorKind::VersionMismatch);
}

#[tokio::test]
async fn targets_beyond_loopback_are_refused() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    for command in [
        json!({"op": "tcp_client_connect", "host": "10.1.2.3", "port": 80}),
        json!({"op": "tcp_client_connect", "host": "192.168.1.1", "port": 12000}),
        json!({"op": "udp_client_open", "host": "8.8.8.8", "port": 53}),
        json!({"op": "tcp_server_start", "bind": "0.0.0.0", "port": 0}),
        json!({"op": "udp_server_start", "bind": "", "port": 0}),
        json!({"op": "tcp_client_connect", "host": "0.0.0.0", "port": 12000}),
    ] {
        let error = c.err(cmd(command.clone())).await;
        assert_eq!(error.kind, ErrorKind::NotAllowed, "{command}");
    }
    let error = c
        .err(cmd(
            json!({"op": "tcp_client_connect", "host": "10.1.2.3", "port": 80}),
        ))
        .await;
    assert!(error.explanation.contains("10.1.2.3 is not one"));
    assert!(error.hint.unwrap().contains("--allow-lan"));
    // A UDP send to a foreign address from a loopback client is refused too.
    let server = c
        .endpoint(cmd(json!({"op": "udp_server_start", "port": 0})))
        .await;
    let error = c
        .err(cmd(json!({"op": "send", "endpoint": server.id, "to": "192.168.1.1:9", "data": {"text": "x"}})))
        .await;
    assert_eq!(error.kind, ErrorKind::NotAllowed);
    // Names are checked after resolution: localhost is fine.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    c.endpoint(cmd(
        json!({"op": "tcp_client_connect", "host": "localhost", "port": port}),
    ))
    .await;
}

#[tokio::test]
async fn privileged_ports_are_refused_by_default() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let error = c
        .err(cmd(json!({"op": "tcp_server_start", "port": 80})))
        .await;
    assert_eq!(error.kind, ErrorKind::NotAllowed);
    assert!(error.hint.unwrap().contains("above 1024"));
    let error = c
        .err(cmd(json!({"op": "udp_server_start", "port": 53})))
        .await;
    assert_eq!(error.kind, ErrorKind::NotAllowed);
}

#[tokio::test]
async fn malformed_messages_get_error_replies_and_the_session_goes_on() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    c.send_text("{not json").await;
    let Outcome::Error(error) = c.reply_to(None).await else {
        panic!("error expected")
    };
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    c.send_text(&json!({"type": "request", "id": 41, "command": {"op": "teleport"}}).to_string())
        .await;
    let Outcome::Error(error) = c.reply_to(Some(41)).await else {
        panic!("error expected")
    };
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert!(
        error.explanation.contains("teleport"),
        "{}",
        error.explanation
    );
    c.send_text(
        &json!({"type": "request", "id": 42, "command": {"op": "tcp_client_connect"}}).to_string(),
    )
    .await;
    let Outcome::Error(error) = c.reply_to(Some(42)).await else {
        panic!("error expected")
    };
    assert!(error.explanation.contains("port"), "{}", error.explanation);
    c.ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    let Outcome::Error(error) = c.reply_to(None).await else {
        panic!("error expected")
    };
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    let error = c
        .err(cmd(
            json!({"op": "send", "endpoint": 999, "data": {"text": "x"}}),
        ))
        .await;
    assert_eq!(error.kind, ErrorKind::UnknownEndpoint);
    let error = c
        .err(cmd(
            json!({"op": "tcp_server_start", "port": 0, "recv_buffer": 0}),
        ))
        .await;
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    // Still working.
    let server = c
        .endpoint(cmd(json!({"op": "tcp_server_start", "port": 0})))
        .await;
    assert!(port_of(&server) > 0);
}

#[tokio::test]
async fn oversized_message_closes_that_session_only() {
    let bridge = Bridge::start().await;
    let mut other = bridge.client().await;
    let mut c = bridge.client().await;
    let huge = "x".repeat(2 << 20);
    c.send_text(&huge).await;
    let mut code = None;
    while let Ok(Some(Ok(message))) = tokio::time::timeout(WAIT, c.ws.next()).await {
        if let Message::Close(frame) = message {
            code = frame.map(|f| u16::from(f.code));
            break;
        }
    }
    assert_eq!(code, Some(1009));
    // Other sessions and new ones are still served.
    other
        .endpoint(cmd(json!({"op": "tcp_server_start", "port": 0})))
        .await;
    let mut fresh = bridge.client().await;
    fresh
        .endpoint(cmd(json!({"op": "udp_server_start", "port": 0})))
        .await;
}

#[tokio::test]
async fn slow_viewer_is_told_what_it_missed() {
    // Without packet capture: its events come on their own time, after the count is taken.
    // (The kernel's TCP counters come instead, at most once a second; see below.)
    let bridge = Bridge::start_with(|c| c.capture = false).await;
    let mut slow = bridge.client().await;
    let before = slow.welcome.snapshot.events.last().map_or(0, |e| e.seq);
    let mut fast = bridge.client().await;
    let server = fast
        .endpoint(cmd(
            json!({"op": "tcp_server_start", "port": 0, "policy": {"kind": "persistent"},
            "recv_buffer": 65536}),
        ))
        .await;
    let client = fast
        .endpoint(cmd(
            json!({"op": "tcp_client_connect", "port": port_of(&server), "recv_buffer": 65536}),
        ))
        .await;
    // `slow` reads nothing while tens of megabytes of events go by, far more than the socket
    // buffers between it and the bridge hold.
    let chunk = "z".repeat(200_000);
    for round in 1..=40 {
        fast.ok(send_text(client.id, None, &chunk)).await;
        fast.wait_until("echo", |ev| {
            received(ev, client.id, None).len() == round * chunk.len()
        })
        .await;
    }
    let last = fast.events.iter().map(|e| e.seq).max().unwrap();
    slow.wait_until("caught up", |ev| ev.last().is_some_and(|e| e.seq >= last))
        .await;
    assert!(slow.missed > 0, "the slow viewer was told it missed events");
    // Up to the first event it got at or past `last` (the kernel's counters of the two
    // connections may come on their own time after it); what it missed is told before what
    // follows.
    let reached = slow.events.last().unwrap().seq;
    let delivered = slow.events.iter().filter(|e| e.seq <= reached).count() as u64;
    assert_eq!(
        delivered + slow.missed,
        reached - before,
        "every event was either delivered or counted as missed"
    );
    // The bridge was never blocked by it: the fast viewer got every echo (checked above).
}

/// localhost is both ::1 and 127.0.0.1: a client to it tries each, the timeline shows every
/// try, and a refusal says where a server does listen when it is on the other address.
#[tokio::test]
async fn localhost_means_both_stacks() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    // A server on ::1 only; the client names localhost.
    let v6 = std::net::TcpListener::bind("[::1]:0").unwrap();
    let port = v6.local_addr().unwrap().port();
    let client = c
        .endpoint(cmd(
            json!({"op": "tcp_client_connect", "host": "localhost", "port": port}),
        ))
        .await;
    assert_eq!(
        client.peer.as_deref(),
        Some(format!("[::1]:{port}").as_str())
    );
    let tries: Vec<String> = c
        .events
        .iter()
        .filter(|e| e.endpoint == client.id && e.kind == shared::EventKind::Connecting)
        .filter_map(|e| e.peer.clone())
        .collect();
    assert!(tries.contains(&format!("[::1]:{port}")), "{tries:?}");
    // A server on 127.0.0.1 only; the client names ::1: refused, and told where it listens.
    let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = v4.local_addr().unwrap().port();
    let refused = c
        .err(cmd(
            json!({"op": "tcp_client_connect", "host": "::1", "port": port}),
        ))
        .await;
    assert_eq!(refused.kind, ErrorKind::ConnectionRefused);
    let hint = refused.hint.unwrap_or_default();
    assert!(hint.contains(&format!("127.0.0.1:{port}")), "{hint}");
    // Nothing listening on either: every address is named.
    let free = free_tcp_port();
    let none = c
        .err(cmd(
            json!({"op": "tcp_client_connect", "host": "localhost", "port": free}),
        ))
        .await;
    assert!(
        none.explanation.contains(&format!("[::1]:{free}"))
            && none.explanation.contains(&format!("127.0.0.1:{free}")),
        "{}",
        none.explanation
    );
    drop((v4, v6));
}
