//! The labs' programs, run by the bridge on real sockets on 127.0.0.1 and driven over the real
//! WebSocket protocol, with python3 stdlib sockets as outside peers.

mod common;

use common::*;
use serde_json::json;
use shared::{ClosedBy, ErrorKind, EventKind};

#[tokio::test]
async fn uppercase_one_shot_server_and_bridge_client() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let (server, client) = c
        .tcp_pair(json!({"behaviour": {"kind": "uppercase"}}))
        .await;
    assert_eq!(client.peer, server.local);
    c.ok(send_text(client.id, None, "hello world")).await;
    let reply = c
        .wait_for("the reply", |e| {
            e.endpoint == client.id && matches!(e.kind, EventKind::Recv { .. })
        })
        .await;
    assert_eq!(text(&reply), "HELLO WORLD");
    c.wait_for("client closed", |e| e.endpoint == client.id && is_close(e))
        .await;
    c.wait_for("connection closed", |e| {
        e.endpoint == server.id && is_close(e)
    })
    .await;

    assert_eq!(
        c.kinds(server.id, None),
        ["socket", "bind", "listen", "accept", "recv", "send", "close"]
    );
    assert_eq!(
        c.kinds(client.id, None),
        [
            "socket",
            "connecting",
            "connect",
            "send",
            "recv",
            "eof",
            "close"
        ]
    );
    // Causality holds across the two sockets: send before recv, request before reply.
    let seq = |endpoint: u32, kind: &str| {
        c.events
            .iter()
            .find(|e| e.endpoint == endpoint && e.kind.name() == kind)
            .unwrap()
            .seq
    };
    assert!(seq(client.id, "send") < seq(server.id, "recv"));
    assert!(seq(server.id, "send") < seq(client.id, "recv"));
    let recv = c
        .events
        .iter()
        .find(|e| e.endpoint == server.id && e.kind.name() == "recv")
        .unwrap();
    assert_eq!(text(recv), "hello world");
    assert!(recv.conn.is_some());
    // Timestamps are monotonic.
    assert!(c
        .events
        .windows(2)
        .all(|w| w[0].t_us <= w[1].t_us && w[0].seq < w[1].seq));
}

#[tokio::test]
async fn thanks_for_connecting_shows_two_ephemeral_ports() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let server = c
        .endpoint(cmd(
            json!({"op": "tcp_server_start", "port": 0, "backlog": 5,
            "behaviour": {"kind": "fixed", "reply": "Thanks for connecting"}}),
        ))
        .await;
    let mut client_ports = Vec::new();
    for _ in 0..2 {
        let client = c
            .endpoint(cmd(
                json!({"op": "tcp_client_connect", "port": port_of(&server)}),
            ))
            .await;
        c.ok(send_text(client.id, None, "Hai from client")).await;
        c.wait_for("client closed", |e| e.endpoint == client.id && is_close(e))
            .await;
        assert_eq!(
            received(&c.events, client.id, None),
            b"Thanks for connecting"
        );
        client_ports.push(client.local.unwrap());
    }
    let accepted: Vec<String> = c
        .events
        .iter()
        .filter(|e| e.endpoint == server.id && e.kind == EventKind::Accept)
        .map(|e| e.peer.clone().unwrap())
        .collect();
    assert_eq!(
        accepted, client_ports,
        "accept() shows each client's own ephemeral port"
    );
    assert_ne!(accepted[0], accepted[1]);
}

#[tokio::test]
async fn persistent_echo_until_exit_and_long_message_in_chunks() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let server = c
        .endpoint(cmd(json!({"op": "tcp_server_start", "port": 0,
            "policy": {"kind": "persistent", "quit_word": "exit"}, "recv_buffer": 1024})))
        .await;
    let client = c
        .endpoint(cmd(
            json!({"op": "tcp_client_connect", "port": port_of(&server), "recv_buffer": 8192}),
        ))
        .await;
    c.ok(send_text(client.id, None, "one")).await;
    c.wait_until("echo of one", |ev| received(ev, client.id, None) == b"one")
        .await;
    c.ok(send_text(client.id, None, "two")).await;
    c.wait_until("echo of two", |ev| {
        received(ev, client.id, None) == b"onetwo"
    })
    .await;

    let long: String = (0..5000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    c.ok(send_text(client.id, None, &long)).await;
    let expected = format!("onetwo{long}");
    c.wait_until("echo of the long message", |ev| {
        received(ev, client.id, None).len() >= expected.len()
    })
    .await;
    assert_eq!(received(&c.events, client.id, None), expected.as_bytes());
    let server_chunks: Vec<usize> = c
        .events
        .iter()
        .filter(|e| e.endpoint == server.id && matches!(e.kind, EventKind::Recv { .. }))
        .map(|e| e.kind.data().unwrap().len)
        .collect();
    assert!(
        server_chunks.len() >= 2 + 5,
        "5000 bytes need at least 5 recv(1024): {server_chunks:?}"
    );
    assert!(
        server_chunks.iter().all(|n| *n <= 1024),
        "{server_chunks:?}"
    );
    assert_eq!(server_chunks.iter().sum::<usize>(), expected.len());

    c.ok(send_text(client.id, None, "exit")).await;
    let closed = c
        .wait_for("server closes on exit", |e| {
            e.endpoint == server.id && is_close(e)
        })
        .await;
    assert!(
        matches!(&closed.kind, EventKind::Close { by: ClosedBy::Local, reason } if reason.contains("quit word"))
    );
    c.wait_for("client sees EOF", |e| {
        e.endpoint == client.id && e.kind == EventKind::Eof
    })
    .await;
    assert_eq!(
        received(&c.events, client.id, None),
        expected.as_bytes(),
        "exit is not echoed"
    );
}

/// Two clients of one server; returns (server id, A's conn close seq, B's accept seq, whether B
/// got its echo before A closed).
async fn two_clients(concurrency: &str) -> (u64, u64, bool) {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let server = c
        .endpoint(cmd(
            json!({"op": "tcp_server_start", "port": 0, "backlog": 4,
            "policy": {"kind": "persistent"}, "concurrency": concurrency}),
        ))
        .await;
    let port = port_of(&server);
    let a = c
        .endpoint(cmd(json!({"op": "tcp_client_connect", "port": port})))
        .await;
    c.ok(send_text(a.id, None, "from a")).await;
    c.wait_until("a's echo", |ev| received(ev, a.id, None) == b"from a")
        .await;
    let b = c
        .endpoint(cmd(json!({"op": "tcp_client_connect", "port": port})))
        .await;
    c.ok(send_text(b.id, None, "from b")).await;
    if concurrency == "one_at_a_time" {
        // B's connect() succeeded, but the server has not accepted it: it waits in the backlog.
        c.wait_for("b waits in the backlog", |e| {
            e.endpoint == server.id && e.kind == EventKind::Backlog { waiting: 1 }
        })
        .await;
    } else {
        c.wait_until("b's echo", |ev| received(ev, b.id, None) == b"from b")
            .await;
    }
    let b_echoed_while_a_open = received(&c.events, b.id, None) == b"from b";
    c.ok(cmd(json!({"op": "close", "endpoint": a.id}))).await;
    c.wait_until("b's echo", |ev| received(ev, b.id, None) == b"from b")
        .await;
    let a_peer = a.local.clone().unwrap();
    let b_peer = b.local.clone().unwrap();
    c.wait_for("a's connection closed", |e| {
        e.endpoint == server.id && is_close(e) && e.peer.as_deref() == Some(&a_peer)
    })
    .await;
    let seq = |peer: &str, kind: &str| {
        c.events
            .iter()
            .find(|e| {
                e.endpoint == server.id && e.peer.as_deref() == Some(peer) && e.kind.name() == kind
            })
            .unwrap()
            .seq
    };
    (
        seq(&a_peer, "close"),
        seq(&b_peer, "accept"),
        b_echoed_while_a_open,
    )
}

#[tokio::test]
async fn one_at_a_time_server_makes_the_second_client_wait() {
    let (a_closed, b_accepted, b_early) = two_clients("one_at_a_time").await;
    assert!(!b_early, "b must not be served while a is connected");
    assert!(
        b_accepted > a_closed,
        "b is accepted only after a's connection closed"
    );
}

#[tokio::test]
async fn concurrent_server_serves_both_at_once() {
    let (a_closed, b_accepted, b_early) = two_clients("concurrent").await;
    assert!(b_early, "b is served while a is still connected");
    assert!(b_accepted < a_closed);
}

#[tokio::test]
async fn udp_echo() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let server = c
        .endpoint(cmd(json!({"op": "udp_server_start", "port": 0})))
        .await;
    let client = c
        .endpoint(cmd(
            json!({"op": "udp_client_open", "port": port_of(&server)}),
        ))
        .await;
    c.ok(send_text(client.id, None, "ping")).await;
    let back = c
        .wait_for("the echo", |e| {
            e.endpoint == client.id && matches!(e.kind, EventKind::RecvFrom { .. })
        })
        .await;
    assert_eq!(text(&back), "ping");
    assert_eq!(back.peer, server.local);
    let got = c
        .wait_for("server got it", |e| {
            e.endpoint == server.id && matches!(e.kind, EventKind::RecvFrom { .. })
        })
        .await;
    assert_eq!(got.peer, client.local, "recvfrom() names the sender");
    assert_eq!(
        c.kinds(server.id, None),
        ["socket", "bind", "recv_from", "send_to"]
    );
    assert_eq!(
        c.kinds(client.id, None),
        ["socket", "bind", "send_to", "recv_from"]
    );
}

#[tokio::test]
async fn udp_datagram_to_a_closed_port_is_explained() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let port = free_udp_port();
    let connected = c
        .endpoint(cmd(
            json!({"op": "udp_client_open", "port": port, "connect": true}),
        ))
        .await;
    c.ok(send_text(connected.id, None, "anyone?")).await;
    let error = c
        .wait_for("port unreachable", |e| {
            e.endpoint == connected.id && e.kind.name() == "error"
        })
        .await;
    let EventKind::Error { op, error } = error.kind else {
        unreachable!()
    };
    assert_eq!(op, "recvfrom");
    assert_eq!(error.kind, ErrorKind::ConnectionRefused);
    assert!(error
        .explanation
        .contains(&format!("Nothing is listening on UDP 127.0.0.1:{port}")));
    assert!(error.hint.unwrap().contains("Start the UDP server first"));

    // Without connect() the OS says nothing: the client reports that no reply came.
    let plain = c
        .endpoint(cmd(
            json!({"op": "udp_client_open", "port": port, "recv_timeout_ms": 200}),
        ))
        .await;
    c.ok(send_text(plain.id, None, "anyone?")).await;
    let timeout = c
        .wait_for("no reply", |e| {
            e.endpoint == plain.id && e.kind.name() == "timeout"
        })
        .await;
    assert_eq!(
        timeout.kind,
        EventKind::Timeout {
            op: "recvfrom".into(),
            after_ms: 200
        }
    );
}

#[tokio::test]
async fn connect_with_no_server_is_refused_and_explained() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let port = free_tcp_port();
    let error = c
        .err(cmd(json!({"op": "tcp_client_connect", "port": port})))
        .await;
    assert_eq!(error.kind, ErrorKind::ConnectionRefused);
    assert_eq!(error.errno, Some(libc_econnrefused()));
    assert_eq!(
        error.explanation,
        format!("Connection refused: nothing is listening on 127.0.0.1:{port}.")
    );
    assert!(error
        .hint
        .as_deref()
        .unwrap()
        .contains("Start the server first"));
    // The timeline shows it too, where it happened.
    let event = c
        .wait_for("error event", |e| e.kind.name() == "error")
        .await;
    assert!(matches!(event.kind, EventKind::Error { ref op, .. } if op == "connect"));
}

fn libc_econnrefused() -> i32 {
    std::io::Error::from(std::io::ErrorKind::ConnectionRefused)
        .raw_os_error()
        .unwrap_or(111)
}

#[tokio::test]
async fn binding_a_port_in_use_is_explained() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let error = c
        .err(cmd(json!({"op": "tcp_server_start", "port": port})))
        .await;
    assert_eq!(error.kind, ErrorKind::AddressInUse);
    assert!(error.explanation.contains(&format!("127.0.0.1:{port}")));
    assert!(error.hint.unwrap().contains("pick another port"));
    let udp_taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_port = udp_taken.local_addr().unwrap().port();
    let error = c
        .err(cmd(json!({"op": "udp_server_start", "port": udp_port})))
        .await;
    assert_eq!(error.kind, ErrorKind::AddressInUse);
}

#[tokio::test]
async fn python_client_talks_to_a_bridge_server() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let server = c
        .endpoint(cmd(
            json!({"op": "tcp_server_start", "port": 0, "behaviour": {"kind": "uppercase"}}),
        ))
        .await;
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect(("127.0.0.1", int(sys.argv[1])))
print(s.getsockname()[1])
s.send(b"hello from python")
print(s.recv(1024).decode())
s.close()
"#;
    let out = python(script, &[&port_of(&server).to_string()]).await;
    let mut lines = out.lines();
    let python_port = lines.next().unwrap();
    assert_eq!(lines.next(), Some("HELLO FROM PYTHON"));
    let accept = c
        .wait_for("accept", |e| {
            e.endpoint == server.id && e.kind == EventKind::Accept
        })
        .await;
    assert_eq!(accept.peer, Some(format!("127.0.0.1:{python_port}")));
    let recv = c
        .wait_for("recv", |e| {
            e.endpoint == server.id && matches!(e.kind, EventKind::Recv { .. })
        })
        .await;
    assert_eq!(text(&recv), "hello from python");
}

#[tokio::test]
async fn bridge_client_talks_to_a_python_server() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let script = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
s.listen(1)
print(s.getsockname()[1], flush=True)
s.settimeout(10)
conn, addr = s.accept()
data = conn.recv(1024)
conn.send(data.upper())
conn.close()
print(addr[1], data.decode(), flush=True)
"#;
    let mut child = tokio::process::Command::new("python3")
        .args(["-c", script])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let port: u16 = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    let client = c
        .endpoint(cmd(json!({"op": "tcp_client_connect", "port": port})))
        .await;
    c.ok(send_text(client.id, None, "hi python")).await;
    c.wait_for("closed by the server", |e| {
        e.endpoint == client.id && is_close(e)
    })
    .await;
    assert_eq!(received(&c.events, client.id, None), b"HI PYTHON");
    let report = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let client_port = client
        .local
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .1
        .to_string();
    assert_eq!(report, format!("{client_port} hi python"));
    assert!(tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap()
        .success());
}

#[tokio::test]
async fn reconnecting_viewer_gets_the_snapshot() {
    let bridge = Bridge::start().await;
    let mut first = bridge.client().await;
    let (server, client) = first
        .tcp_pair(json!({"policy": {"kind": "persistent"}}))
        .await;
    first.ok(send_text(client.id, None, "before reload")).await;
    first
        .wait_until("echo", |ev| {
            received(ev, client.id, None) == b"before reload"
        })
        .await;
    drop(first);

    let mut second = bridge.client().await;
    let snapshot = &second.welcome.snapshot;
    let ids: Vec<u32> = snapshot.endpoints.iter().map(|e| e.id).collect();
    assert_eq!(ids, [server.id, client.id]);
    let listed = &snapshot.endpoints[0];
    assert_eq!(listed.local, server.local);
    assert_eq!(listed.connections.len(), 1);
    assert_eq!(Some(&listed.connections[0].peer), client.local.as_ref());
    assert_eq!(
        received(&snapshot.events, client.id, None),
        b"before reload"
    );
    let seqs: Vec<u64> = snapshot.events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "history from the start, no gaps"
    );

    // The live stream continues right after the snapshot.
    let last = *seqs.last().unwrap();
    second.ok(send_text(client.id, None, "after")).await;
    second
        .wait_until("live echo", |ev| received(ev, client.id, None) == b"after")
        .await;
    assert_eq!(second.events[0].seq, last + 1);
}

#[tokio::test]
async fn stop_a_server_closes_its_connections() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let server = c
        .endpoint(cmd(
            json!({"op": "tcp_server_start", "port": 0, "policy": {"kind": "persistent"},
            "concurrency": "concurrent"}),
        ))
        .await;
    let port = port_of(&server);
    let client = c
        .endpoint(cmd(json!({"op": "tcp_client_connect", "port": port})))
        .await;
    c.wait_for("accepted", |e| {
        e.endpoint == server.id && e.kind == EventKind::Accept
    })
    .await;
    c.ok(cmd(json!({"op": "close", "endpoint": server.id})))
        .await;
    c.wait_for("client sees EOF", |e| {
        e.endpoint == client.id && e.kind == EventKind::Eof
    })
    .await;
    let closes: Vec<_> = c
        .events
        .iter()
        .filter(|e| e.endpoint == server.id && is_close(e))
        .collect();
    assert_eq!(closes.len(), 2, "the connection and the server itself");
    assert!(closes[0].conn.is_some() && closes[1].conn.is_none());
    let error = c
        .err(cmd(json!({"op": "tcp_client_connect", "port": port})))
        .await;
    assert_eq!(error.kind, ErrorKind::ConnectionRefused);
    let error = c.err(send_text(server.id, None, "x")).await;
    assert_eq!(error.kind, ErrorKind::UnknownEndpoint);
}

#[tokio::test]
async fn half_close_and_manual_replies() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let (server, client) = c
        .tcp_pair(json!({"behaviour": {"kind": "manual"}, "policy": {"kind": "persistent"}}))
        .await;
    c.ok(send_text(client.id, None, "question")).await;
    let recv = c
        .wait_for("server got it", |e| {
            e.endpoint == server.id && matches!(e.kind, EventKind::Recv { .. })
        })
        .await;
    // A person answers by hand, on that connection; hex works as well as text.
    c.ok(cmd(
        json!({"op": "send", "endpoint": server.id, "conn": recv.conn,
        "data": {"hex": "61 6e 73 77 65 72"}}),
    ))
    .await;
    c.wait_until("answer", |ev| received(ev, client.id, None) == b"answer")
        .await;
    // The client says it is done sending; the server sees EOF and closes; the client sees EOF.
    c.ok(cmd(json!({"op": "shutdown_write", "endpoint": client.id})))
        .await;
    c.wait_for("server EOF", |e| {
        e.endpoint == server.id && e.kind == EventKind::Eof
    })
    .await;
    c.wait_for("client EOF", |e| {
        e.endpoint == client.id && e.kind == EventKind::Eof
    })
    .await;
    assert_eq!(
        c.kinds(client.id, None),
        [
            "socket",
            "connecting",
            "connect",
            "send",
            "recv",
            "shutdown",
            "eof",
            "close"
        ]
    );
}

#[tokio::test]
async fn reset_closes_everything() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let tcp = c
        .endpoint(cmd(json!({"op": "tcp_server_start", "port": 0})))
        .await;
    c.endpoint(cmd(json!({"op": "udp_server_start", "port": 0})))
        .await;
    c.endpoint(cmd(json!({"op": "udp_client_open", "port": port_of(&tcp)})))
        .await;
    let data = c.ok(cmd(json!({"op": "reset"}))).await;
    assert_eq!(data, shared::ReplyData::Reset { closed: 3 });
    c.wait_for("reset", |e| e.kind == EventKind::Reset).await;
    let closed: Vec<_> = c
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::Close {
                    by: ClosedBy::Bridge,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(closed.len(), 3);
    let again = bridge.client().await;
    assert!(again.welcome.snapshot.endpoints.is_empty());
    // The port is free again.
    std::net::TcpListener::bind(("127.0.0.1", port_of(&tcp))).unwrap();
}

fn states(events: &[shared::Event], endpoint: u32) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.endpoint == endpoint)
        .filter_map(|e| match &e.kind {
            EventKind::TcpState { state } => Some(state.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn tcp_states_as_the_kernel_reports_them() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let (server, client) = c.tcp_pair(json!({"policy": {"kind": "persistent"}})).await;
    c.wait_until("both established", |ev| {
        states(ev, client.id).contains(&"ESTABLISHED".to_string())
            && states(ev, server.id).contains(&"ESTABLISHED".to_string())
    })
    .await;
    // The client closes first: the server sees EOF while it still holds its socket (CLOSE_WAIT);
    // the client, having closed first, waits out TIME_WAIT.
    c.ok(cmd(json!({"op": "close", "endpoint": client.id})))
        .await;
    c.wait_until("close_wait on the server", |ev| {
        states(ev, server.id).contains(&"CLOSE_WAIT".to_string())
    })
    .await;
    c.wait_until("time_wait on the client", |ev| {
        states(ev, client.id).contains(&"TIME_WAIT".to_string())
    })
    .await;
    assert_eq!(
        states(&c.events, client.id).first().map(String::as_str),
        Some("ESTABLISHED")
    );
    // The server closes its side after the EOF; once the last ACK came the kernel keeps
    // nothing of it: CLOSE, not the ESTABLISHED or CLOSE_WAIT it had before.
    c.wait_until("the server's socket is gone", |ev| {
        states(ev, server.id).last().map(String::as_str) == Some("CLOSE")
    })
    .await;
    assert_eq!(
        states(&c.events, client.id).last().map(String::as_str),
        Some("TIME_WAIT")
    );

    // The other way out: the client shuts down its sending side first (FIN_WAIT1/2), the
    // server answers the EOF with its own close, and the client reads EOF. Linux then calls
    // the client's socket CLOSE and keeps the connection as a TIME_WAIT entry: the picture
    // goes from FIN_WAIT to TIME_WAIT, as in the textbook, without a CLOSE in between.
    let (server, client) = c.tcp_pair(json!({"policy": {"kind": "persistent"}})).await;
    c.ok(cmd(json!({"op": "shutdown_write", "endpoint": client.id})))
        .await;
    c.wait_until("time_wait after the client's EOF", |ev| {
        states(ev, client.id).contains(&"TIME_WAIT".to_string())
    })
    .await;
    let client_states = states(&c.events, client.id);
    assert!(
        client_states.iter().any(|s| s.starts_with("FIN_WAIT")),
        "{client_states:?}"
    );
    assert!(
        !client_states.contains(&"CLOSE".to_string()),
        "{client_states:?}"
    );
    c.wait_until("the server's socket is gone", |ev| {
        states(ev, server.id).last().map(String::as_str) == Some("CLOSE")
    })
    .await;
}

/// A print-only one-shot server closes without claiming a reply it never sent (issue 17,
/// item 4).
#[tokio::test]
async fn a_print_only_server_says_it_sent_no_reply() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let (server, client) = c
        .tcp_pair(json!({"behaviour": {"kind": "print_only"}}))
        .await;
    c.ok(send_text(client.id, None, "just printed")).await;
    let closed = c
        .wait_for("the connection's close", |e| {
            e.endpoint == server.id && e.conn.is_some() && is_close(e)
        })
        .await;
    let EventKind::Close { reason, .. } = &closed.kind else {
        unreachable!()
    };
    assert!(reason.contains("no reply"), "{reason}");
    assert!(!reason.contains("one reply"), "{reason}");
}
