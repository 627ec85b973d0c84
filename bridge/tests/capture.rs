//! Packets on the wire (issue 19), captured by a real bridge (CI runs as root; the tests
//! insist on capture there) on loopback: the handshake before accept() returns, each send's
//! bytes in a data segment, FIN both ways, RST for a close with unread data, ICMP port
//! unreachable for a datagram to a closed port; the pcapng file read back by Debian's tshark;
//! a SYN dropped by a full accept queue, retransmitted and marked; and without CAP_NET_RAW
//! (dropped with setpriv) the welcome says what to run, the kernel's TCP_INFO counters are
//! shown instead, and everything else works.

mod common;

use std::process::Stdio;

use common::*;
use serde_json::json;
use shared::{Event, EventKind, PacketInfo, ReplyData};

/// The packet events seen so far, with their endpoint and connection.
fn packets(events: &[Event]) -> Vec<(u32, Option<u32>, PacketInfo, u64)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Packet(p) => Some((e.endpoint, e.conn, (**p).clone(), e.seq)),
            _ => None,
        })
        .collect()
}

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[tokio::test]
async fn a_tcp_conversation_and_a_lost_datagram_on_the_wire() {
    let data = TempDir::new("capture");
    let dir = data.0.clone();
    let bridge = Bridge::start_with(move |c| c.data_dir = dir).await;
    let mut page = bridge.client().await;
    let status = page
        .welcome
        .capture
        .clone()
        .expect("the welcome says whether it captures");
    if !status.on {
        assert!(!root(), "as root the bridge captures: {}", status.detail);
        eprintln!("skipped: {}", status.detail);
        return;
    }
    let server = page
        .endpoint(cmd(json!({"op": "tcp_server_start", "port": 0,
                             "behaviour": {"kind": "echo"}, "policy": {"kind": "persistent"},
                             "concurrency": "concurrent"})))
        .await;
    let port = port_of(&server);
    let client = page
        .endpoint(cmd(json!({"op": "tcp_client_connect", "port": port})))
        .await;
    let client_addr = client.local.clone().unwrap();
    let accept = page
        .wait_for("accept", |e| {
            e.endpoint == server.id && matches!(e.kind, EventKind::Accept)
        })
        .await;
    let conn = accept.conn.unwrap();
    // The three-way handshake, in order on the wire, before accept() returned.
    page.wait_until("the handshake's three packets", |events| {
        packets(events).len() >= 3
    })
    .await;
    let shake: Vec<_> = packets(&page.events).into_iter().take(3).collect();
    let flags: Vec<&str> = shake.iter().map(|p| p.2.flags.as_str()).collect();
    assert_eq!(flags, ["SYN", "SYN,ACK", "ACK"], "{shake:#?}");
    assert_eq!(shake[0].0, client.id, "the SYN is the client's");
    assert_eq!(shake[0].2.dir, "out");
    assert_eq!(shake[0].2.src, client_addr);
    assert_eq!((shake[0].2.tcp_seq, shake[0].2.tcp_ack), (Some(0), None));
    assert!(
        shake[0].2.options.contains("mss"),
        "{:?}",
        shake[0].2.options
    );
    assert_eq!(shake[1].0, server.id, "the SYN-ACK is the server's");
    assert_eq!((shake[1].2.tcp_seq, shake[1].2.tcp_ack), (Some(0), Some(1)));
    assert_eq!((shake[2].2.tcp_seq, shake[2].2.tcp_ack), (Some(1), Some(1)));
    assert!(shake[0].2.wire_us <= shake[1].2.wire_us && shake[1].2.wire_us <= shake[2].2.wire_us);
    assert!(
        shake[2].2.wire_us <= accept.t_us,
        "the handshake ({} us) was on the wire before accept() returned ({} us)",
        shake[2].2.wire_us,
        accept.t_us
    );

    // send(): its bytes in one data segment, and the echo's in another.
    page.ok(send_text(client.id, None, "hello wire")).await;
    page.wait_until("the data segment and its echo", |events| {
        packets(events)
            .iter()
            .filter(|p| p.2.data.len == 10)
            .count()
            >= 2
    })
    .await;
    let data_out = packets(&page.events)
        .into_iter()
        .find(|p| p.2.data.len == 10 && p.0 == client.id)
        .expect("the client's data segment");
    assert_eq!(data_out.2.data.preview, "hello wire");
    assert!(data_out.2.flags.contains("PSH"), "{:?}", data_out.2.flags);
    assert_eq!(data_out.2.tcp_seq, Some(1));
    let echoed = packets(&page.events)
        .into_iter()
        .find(|p| p.2.data.len == 10 && p.0 == server.id)
        .expect("the server's echo segment");
    assert_eq!(echoed.1, Some(conn), "tied to the accepted connection");

    // close(): FIN from each side.
    page.ok(cmd(json!({"op": "close", "endpoint": client.id})))
        .await;
    page.wait_until("FIN both ways", |events| {
        let fins = packets(events);
        fins.iter()
            .any(|p| p.0 == client.id && p.2.flags.contains("FIN"))
            && fins
                .iter()
                .any(|p| p.0 == server.id && p.2.flags.contains("FIN"))
    })
    .await;

    // A close with unread data: the kernel answers with RST.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let quiet_port = listener.local_addr().unwrap().port();
    let rude = page
        .endpoint(cmd(json!({"op": "tcp_client_connect", "port": quiet_port})))
        .await;
    let (peer, _) = listener.accept().unwrap();
    page.ok(send_text(rude.id, None, "never read")).await;
    page.wait_until("the unread data on the wire", |events| {
        packets(events)
            .iter()
            .any(|p| p.0 == rude.id && p.2.data.len == 10)
    })
    .await;
    drop(peer);
    page.wait_until("the RST of a close with unread data", |events| {
        packets(events)
            .iter()
            .any(|p| p.0 == rude.id && p.2.dir == "in" && p.2.flags.contains("RST"))
    })
    .await;

    // A datagram to a closed UDP port: ICMP port unreachable, tied to the datagram's sender.
    let closed = free_udp_port();
    let udp = page
        .endpoint(cmd(json!({"op": "udp_client_open", "port": closed})))
        .await;
    page.ok(send_text(udp.id, None, "anyone?")).await;
    page.wait_until("ICMP port unreachable", |events| {
        packets(events).iter().any(|p| {
            p.0 == udp.id && p.2.proto == "icmp" && p.2.detail.contains("port unreachable")
        })
    })
    .await;
    let datagram = packets(&page.events)
        .into_iter()
        .find(|p| p.0 == udp.id && p.2.proto == "udp")
        .expect("the datagram itself");
    assert_eq!(datagram.2.data.preview, "anyone?");

    // The pcapng file, read by tshark: the same packets.
    let ReplyData::Capture {
        file,
        packets: saved,
        captured,
        ..
    } = page.ok(cmd(json!({"op": "capture_save"}))).await
    else {
        panic!("capture_save replies with the file");
    };
    let seen = packets(&page.events).len() as u64;
    assert!(saved >= seen, "{saved} saved, {seen} shown");
    assert!(captured >= saved, "{captured} captured since the start");
    let tshark = tokio::process::Command::new("tshark")
        .args(["-r"])
        .arg(data.0.join(&file))
        .args([
            "-T",
            "fields",
            "-e",
            "tcp.flags.str",
            "-e",
            "udp.length",
            "-e",
            "icmp.type",
        ])
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("tshark runs (cargo xtask test installs it)");
    let lines = String::from_utf8_lossy(&tshark.stdout).into_owned();
    assert!(
        tshark.status.success(),
        "{}",
        String::from_utf8_lossy(&tshark.stderr)
    );
    assert_eq!(lines.lines().count() as u64, saved, "{lines}");
    let syns = lines
        .lines()
        .filter(|l| l.contains("S") && !l.contains("A") && l.contains("·"))
        .count();
    assert!(syns >= 2, "two SYNs in the file:\n{lines}");
    assert!(
        lines.lines().any(|l| l.ends_with("\t3")),
        "the ICMP message:\n{lines}"
    );
    // One connection's packets alone.
    let ReplyData::Capture { packets: one, .. } = page
        .ok(cmd(json!({"op": "capture_save", "endpoint": rude.id})))
        .await
    else {
        panic!("capture_save of one endpoint");
    };
    assert!(one >= 2 && one < saved, "{one} of {saved}");
    bridge.shutdown().await;
}

/// A bridge whose data directory holds these handout programs (tests/fixtures/programs), and
/// a page connected to it; `None` (the test is skipped) where the bridge may not capture.
async fn capturing_bridge(tag: &str, programs: &[&str]) -> Option<(TempDir, Bridge, Client)> {
    let data = TempDir::new(tag);
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/programs");
    for file in programs {
        std::fs::copy(fixtures.join(file), data.0.join(file)).unwrap();
    }
    let dir = data.0.clone();
    let bridge = Bridge::start_with(move |c| c.data_dir = dir).await;
    let page = bridge.client().await;
    if !page.welcome.capture.as_ref().is_some_and(|c| c.on) {
        assert!(!root(), "as root the bridge captures");
        eprintln!("skipped: no capture");
        return None;
    }
    Some((data, bridge, page))
}

/// Packets the capture has read since the bridge started (`capture_save`'s count).
async fn captured(page: &mut Client) -> u64 {
    match page.ok(cmd(json!({"op": "capture_save"}))).await {
        ReplyData::Capture { captured, .. } => captured,
        other => panic!("capture_save replies with the counts: {other:?}"),
    }
}

/// Runs the handout's kurose client from the page against `port`, and waits for its prompt
/// (it is traced then, and waits in input()); returns its program endpoint.
async fn kurose_client_at_its_prompt(page: &mut Client, port: u16) -> u32 {
    let client = run_program(page, "kurose_tcp_client.py", &[&port.to_string()]).await;
    page.wait_until("the client's prompt", |events| {
        events
            .iter()
            .any(|e| e.endpoint == client && matches!(e.kind, EventKind::Output { .. }))
    })
    .await;
    client
}

/// A traced program's sockets are captured too: the handout's echo server, run from the page,
/// and a plain client (untraced, so only the program's own socket tells the bridge the port).
#[tokio::test]
async fn a_traced_programs_packets_are_its_own() {
    let Some((_data, bridge, mut page)) =
        capturing_bridge("capture-program", &["elen_echo_server.py"]).await
    else {
        return;
    };
    let port = free_tcp_port();
    run_program(&mut page, "elen_echo_server.py", &[&port.to_string()]).await;
    let listen = page
        .wait_for("the program's listen()", |e| {
            matches!(e.kind, EventKind::Listen { .. })
        })
        .await;
    let mut peer = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    peer.write_all(b"hi").await.unwrap();
    let mut echo = [0u8; 2];
    peer.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"hi");
    peer.write_all(b"exit").await.unwrap();
    let server_addr = format!("127.0.0.1:{port}");
    page.wait_until("the program's SYN-ACK and its echo on the wire", |events| {
        let all = packets(events);
        all.iter()
            .any(|p| p.2.src == server_addr && p.2.flags == "SYN,ACK")
            && all
                .iter()
                .any(|p| p.2.src == server_addr && p.2.data.preview == "hi")
    })
    .await;
    let all = packets(&page.events);
    let syn_ack = all
        .iter()
        .find(|p| p.2.src == server_addr && p.2.flags == "SYN,ACK")
        .unwrap();
    assert_eq!(
        syn_ack.0, listen.endpoint,
        "the program's listening socket's"
    );
    assert_eq!(syn_ack.2.dir, "out");
    let echoed = all
        .iter()
        .find(|p| p.2.src == server_addr && p.2.data.preview == "hi")
        .unwrap();
    assert_ne!(echoed.0, 0, "tied to one of the program's sockets");
    assert_eq!(echoed.2.dir, "out");
    bridge.shutdown().await;
}

/// A traced client to a server the bridge knows nothing of (here the test's own, in place of
/// `nc -l` or the handout's server run in a terminal): its handshake crosses before its
/// connect() reaches the bridge, so while programs are traced the capture keeps every loopback
/// port, and shows what belongs to a traced socket. Other loopback traffic in that time is
/// neither shown nor saved.
#[tokio::test]
async fn a_traced_client_to_a_server_the_bridge_does_not_run_shows_its_handshake() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some((data, bridge, mut page)) =
        capturing_bridge("capture-outside", &["kurose_tcp_client.py"]).await
    else {
        return;
    };
    let server = tokio::net::TcpListener::bind(("127.0.0.1", free_tcp_port()))
        .await
        .unwrap();
    let port = server.local_addr().unwrap().port();
    let answering = tokio::spawn(async move {
        let (mut conn, _) = server.accept().await.unwrap();
        let mut buf = [0u8; 64];
        let n = conn.read(&mut buf).await.unwrap();
        conn.write_all(&buf[..n].to_ascii_uppercase())
            .await
            .unwrap();
    });
    let client = kurose_client_at_its_prompt(&mut page, port).await;
    // Unrelated loopback traffic while the program is traced.
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut near = tokio::net::TcpStream::connect(other.local_addr().unwrap())
        .await
        .unwrap();
    let (mut far, _) = other.accept().await.unwrap();
    near.write_all(b"none of the bridge's business")
        .await
        .unwrap();
    let mut got = [0u8; 29];
    far.read_exact(&mut got).await.unwrap();
    page.ok(cmd(
        json!({"op": "program_input", "program": client, "text": "hello\n"}),
    ))
    .await;
    answering.await.unwrap();
    let connected = page
        .wait_for("the client's connect()", |e| {
            matches!(e.kind, EventKind::Connect) && e.at.as_ref().is_some_and(|a| a.line == 10)
        })
        .await;
    let socket = connected.endpoint;
    page.wait_until("the handshake and both data segments", |events| {
        let all = packets(events);
        let on_socket = |flags: &str, text: &str| {
            all.iter().any(|p| {
                p.0 == socket && p.2.flags == flags && (text.is_empty() || p.2.data.preview == text)
            })
        };
        on_socket("SYN", "")
            && on_socket("SYN,ACK", "")
            && on_socket("PSH,ACK", "hello")
            && on_socket("PSH,ACK", "HELLO")
    })
    .await;
    let all = packets(&page.events);
    let find = |flags: &str| {
        all.iter()
            .find(|p| p.0 == socket && p.2.flags == flags)
            .unwrap()
    };
    let server_addr = format!("127.0.0.1:{port}");
    assert_eq!(
        (find("SYN").2.dir.as_str(), find("SYN").2.dst.as_str()),
        ("out", server_addr.as_str())
    );
    assert_eq!(find("SYN,ACK").2.dir, "in");
    assert!(
        all.iter().all(|p| p.0 == socket),
        "only the traced socket's packets are shown: {all:#?}"
    );
    let ReplyData::Capture { file, .. } = page.ok(cmd(json!({"op": "capture_save"}))).await else {
        panic!("capture_save replies with the file");
    };
    let saved = std::fs::read(data.0.join(&file)).unwrap();
    let has = |needle: &[u8]| saved.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"hello") && has(b"HELLO"), "the client's data is saved");
    assert!(
        !has(b"none of the bridge's business"),
        "other traffic is not saved"
    );
    // Once no program is traced, the filter narrows again (within a second): other traffic
    // is no longer even copied to the bridge.
    page.wait_for("the client's exit", |e| {
        e.endpoint == client && matches!(e.kind, EventKind::Exit { .. })
    })
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let before = captured(&mut page).await;
        for _ in 0..5 {
            near.write_all(b"still none").await.unwrap();
            let mut back = [0u8; 10];
            far.read_exact(&mut back).await.unwrap();
        }
        let after = captured(&mut page).await;
        if after == before {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "other traffic is still captured after the program ended ({before} -> {after})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    bridge.shutdown().await;
}

/// The port where `bridge trace` takes the shim's reports, named in `trace_attach`, is left
/// out of the capture while that program is shown, though the filter keeps every other
/// loopback port while programs are traced: those reports are the playground's own traffic.
/// Once the program has ended, the port is the system's to give again, and captured.
#[tokio::test]
async fn a_trace_commands_channel_is_left_out_of_the_capture() {
    let Some((_data, bridge, mut page)) = capturing_bridge("capture-channel", &[]).await else {
        return;
    };
    // Stands in for the command's channel and a shim's connection to it.
    let channel = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = channel.local_addr().unwrap().port();
    let shim = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (command, _) = channel.accept().await.unwrap();
    let mut reports = (shim, command);
    let attach = |channel_port: Option<u16>| {
        cmd(json!({"op": "trace_attach", "argv": ["python3", "x.py"],
            "pid": std::process::id(), "channel_port": channel_port}))
    };
    let ReplyData::Endpoint(traced) = page.ok(attach(Some(port))).await else {
        panic!("trace_attach replies with the program");
    };
    // Another program keeps the filter wide after the first has ended.
    page.ok(attach(None)).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // Other tests' traffic may cross in a round; one quiet round is enough.
    loop {
        let copied = reports_copied(&mut page, &mut reports, deadline).await;
        if copied == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the channel's packets are captured: {copied} in the last round"
        );
    }
    page.ok(cmd(
        json!({"op": "trace_exit", "program": traced.id, "code": 0}),
    ))
    .await;
    page.wait_for("the first program's end", |e| {
        e.endpoint == traced.id && matches!(e.kind, EventKind::Exit { .. })
    })
    .await;
    loop {
        let copied = reports_copied(&mut page, &mut reports, deadline).await;
        if copied >= 20 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the port is still left out after its program ended"
        );
    }
    bridge.shutdown().await;
}

/// The same end to end, with the real command: `bridge trace` names its channel in
/// `trace_attach`, so a terminal's program whose calls send nothing on the wire adds no
/// packet to the capture, though each of its calls is reported over loopback TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_trace_reports_are_not_captured() {
    let Some((data, bridge, mut page)) = capturing_bridge("capture-trace-command", &[]).await
    else {
        return;
    };
    // 600 calls, none of which sends a packet; then it waits for its stdin, shown and traced.
    let program = data.0.join("quiet_calls.py");
    std::fs::write(
        &program,
        "import socket, sys\n\
         for _ in range(200):\n\
         \x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         \x20   s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         \x20   s.close()\n\
         sys.stdin.readline()\n",
    )
    .unwrap();
    let url = format!("http://{}/#token={TOKEN}", bridge.addr);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // Other tests' traffic may cross in a round; one quiet round of 20 is enough.
    for round in 1..=20 {
        let seen = page.events.len();
        let before = captured(&mut page).await;
        let mut command = tokio::process::Command::new(bridge_binary());
        command
            .args(["trace", "--url", &url, "--", "python3"])
            .arg(&program)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap();
        page.wait_until("the program's 200 close() calls", |events| {
            let events = &events[seen.min(events.len())..];
            let sockets: Vec<u32> = events
                .iter()
                .filter(|e| {
                    matches!(
                        &e.kind,
                        EventKind::Socket {
                            spec: shared::EndpointSpec::Traced(_)
                        }
                    )
                })
                .map(|e| e.endpoint)
                .collect();
            events
                .iter()
                .filter(|e| matches!(e.kind, EventKind::Close { .. }))
                .filter(|e| sockets.contains(&e.endpoint))
                .count()
                >= 200
        })
        .await;
        let copied = marked(&mut page, before, deadline).await;
        drop(child.stdin.take());
        let out = tokio::time::timeout(WAIT, child.wait_with_output())
            .await
            .expect("bridge trace ends with its program")
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if copied == 0 {
            break;
        }
        assert!(
            round < 20 && std::time::Instant::now() < deadline,
            "{copied} packets captured in round {round}: the reports' channel is not left out"
        );
    }
    bridge.shutdown().await;
}

/// One round of `a_trace_commands_channel_is_left_out_of_the_capture`: 20 reports and their
/// answers over `reports`, then [`marked`]; returns how many frames the capture read in the
/// round beside the marker.
async fn reports_copied(
    page: &mut Client,
    reports: &mut (tokio::net::TcpStream, tokio::net::TcpStream),
    deadline: std::time::Instant,
) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (shim, command) = reports;
    let before = captured(page).await;
    for _ in 0..20 {
        shim.write_all(b"{\"op\":\"send\"}\n").await.unwrap();
        let mut line = [0u8; 14];
        command.read_exact(&mut line).await.unwrap();
        command.write_all(b"k").await.unwrap();
        shim.read_exact(&mut line[..1]).await.unwrap();
    }
    marked(page, before, deadline).await
}

/// Sends one datagram between two loopback sockets of this test, which is captured (the
/// filter is wide while a program is traced) and read after all that crossed loopback before
/// it (the capture reads in order); returns how many frames the capture read since it
/// counted `before`, beside that datagram.
async fn marked(page: &mut Client, before: u64, deadline: std::time::Instant) -> u64 {
    let marker = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let marking = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    marking
        .send_to(b"marker", marker.local_addr().unwrap())
        .await
        .unwrap();
    marker.recv_from(&mut [0u8; 8]).await.unwrap();
    loop {
        let now = captured(page).await;
        if now > before {
            return now - before - 1;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the marker datagram was not captured: is the filter wide while traced?"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// With `--allow-lan` the capture listens on every interface (a LAN endpoint's packets cross
/// its own): loopback's packets are still each seen once, and the file names the interface.
#[tokio::test]
async fn on_every_interface_loopback_still_shows_each_packet_once() {
    let data = TempDir::new("capture-lan");
    let dir = data.0.clone();
    let bridge = Bridge::start_with(move |c| {
        c.data_dir = dir;
        c.scope = shared::Scope::Lan;
    })
    .await;
    let mut page = bridge.client().await;
    let status = page.welcome.capture.clone().unwrap();
    if !status.on {
        assert!(!root(), "as root the bridge captures: {}", status.detail);
        eprintln!("skipped: {}", status.detail);
        return;
    }
    assert!(
        status.detail.contains("network interfaces"),
        "{}",
        status.detail
    );
    let server = page
        .endpoint(cmd(json!({"op": "tcp_server_start", "port": 0,
                             "behaviour": {"kind": "echo"}, "policy": {"kind": "persistent"},
                             "concurrency": "concurrent"})))
        .await;
    let client = page
        .endpoint(cmd(
            json!({"op": "tcp_client_connect", "host": "127.0.0.1", "port": port_of(&server)}),
        ))
        .await;
    page.ok(send_text(client.id, None, "once")).await;
    page.wait_until("the data and its echo", |events| {
        packets(events).iter().filter(|p| p.2.data.len == 4).count() >= 2
    })
    .await;
    page.ok(cmd(json!({"op": "close", "endpoint": client.id})))
        .await;
    page.wait_until("FIN both ways", |events| {
        let all = packets(events);
        all.iter()
            .any(|p| p.0 == client.id && p.2.flags.contains("FIN"))
            && all
                .iter()
                .any(|p| p.0 == server.id && p.2.flags.contains("FIN"))
    })
    .await;
    let all = packets(&page.events);
    let count = |flags: &str, len: usize| {
        all.iter()
            .filter(|p| p.2.flags == flags && p.2.data.len == len)
            .count()
    };
    assert_eq!(count("SYN", 0), 1, "one SYN: {all:#?}");
    assert_eq!(count("SYN,ACK", 0), 1, "one SYN-ACK");
    assert_eq!(count("PSH,ACK", 4), 2, "the data and its echo, once each");
    let ReplyData::Capture { file, .. } = page.ok(cmd(json!({"op": "capture_save"}))).await else {
        panic!("capture_save replies with the file");
    };
    let out = tokio::process::Command::new("tshark")
        .arg("-r")
        .arg(data.0.join(&file))
        .args(["-T", "fields", "-e", "frame.interface_name"])
        .output()
        .await
        .expect("tshark runs (cargo xtask test installs it)");
    let names = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !names.is_empty() && names.lines().all(|l| l == "lo"),
        "{names}"
    );
    bridge.shutdown().await;
}

/// A real retransmission on loopback, with nothing simulated: a server whose accept queue is
/// full (listen(0), one connection waiting that nobody accepts) drops the next SYN, and the
/// client's kernel sends it again a second later. The second SYN is marked as such, and the
/// connection is made once the queue has room.
#[tokio::test]
async fn a_syn_dropped_by_a_full_accept_queue_is_retransmitted() {
    let bridge = Bridge::start().await;
    let mut page = bridge.client().await;
    if !page.welcome.capture.as_ref().is_some_and(|c| c.on) {
        assert!(!root(), "as root the bridge captures");
        eprintln!("skipped: no capture");
        return;
    }
    // SAFETY: plain socket calls on a descriptor this test owns; the listener takes it over.
    let listener = unsafe {
        use std::os::fd::FromRawFd;
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let address = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::bind(fd, (&address as *const libc::sockaddr_in).cast(), len),
            0
        );
        assert_eq!(libc::listen(fd, 0), 0);
        std::net::TcpListener::from_raw_fd(fd)
    };
    let port = listener.local_addr().unwrap().port();
    // The one place in the queue, taken.
    let _waiting = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut asker = bridge.client().await;
    let id = asker
        .send_request(cmd(
            json!({"op": "tcp_client_connect", "port": port, "timeout_ms": 8000}),
        ))
        .await;
    let to_port = format!("127.0.0.1:{port}");
    page.wait_until_within(
        "the SYN sent again",
        std::time::Duration::from_secs(5),
        |events| {
            packets(events)
                .iter()
                .filter(|p| p.2.dst == to_port && p.2.flags == "SYN")
                .count()
                >= 2
        },
    )
    .await;
    let syns: Vec<_> = packets(&page.events)
        .into_iter()
        .filter(|p| p.2.dst == to_port && p.2.flags == "SYN")
        .collect();
    assert_eq!(syns[0].2.detail, "", "the first SYN is no retransmission");
    assert!(
        syns[1].2.detail.starts_with("retransmission"),
        "{:?}",
        syns[1].2
    );
    assert_eq!(syns[1].2.tcp_seq, Some(0), "the same SYN");
    assert!(
        syns[1].2.wire_us >= syns[0].2.wire_us + 500_000,
        "sent again after the kernel's timeout (1 s): {} then {}",
        syns[0].2.wire_us,
        syns[1].2.wire_us
    );
    // Room in the queue: the next try is answered, and connect() returns.
    let (_first, _) = listener.accept().unwrap();
    match asker.reply_to(Some(id)).await {
        shared::Outcome::Ok(ReplyData::Endpoint(_)) => {}
        other => panic!("connect() returns once the server has room: {other:?}"),
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cap_net_raw_the_page_is_told_what_to_run_and_all_else_works() {
    if !root() {
        eprintln!("skipped: dropping a capability needs root (CI runs as root)");
        return;
    }
    let mut command = tokio::process::Command::new("setpriv");
    command
        .args(["--bounding-set=-net_raw", "--inh-caps=-net_raw", "--"])
        .arg(bridge_binary())
        .args(["--listen", "127.0.0.1:0", "--token", TOKEN])
        .stderr(Stdio::null());
    let bridge = BridgeProcess::spawn(command).await;
    let mut page = bridge.client().await;
    let status = page.welcome.capture.clone().unwrap();
    assert!(!status.on);
    assert!(status.detail.contains("CAP_NET_RAW"), "{}", status.detail);
    assert!(
        status
            .hint
            .as_deref()
            .is_some_and(|h| h.starts_with("sudo setcap cap_net_raw+ep /")),
        "{status:?}"
    );
    let server = page
        .endpoint(cmd(json!({"op": "tcp_server_start", "port": 0,
                             "behaviour": {"kind": "uppercase"}})))
        .await;
    let client = page
        .endpoint(cmd(
            json!({"op": "tcp_client_connect", "port": port_of(&server)}),
        ))
        .await;
    page.ok(send_text(client.id, None, "still fine")).await;
    page.wait_for("the reply", |e| {
        e.endpoint == client.id
            && matches!(e.kind, EventKind::Recv { .. })
            && text(e) == "STILL FINE"
    })
    .await;
    assert!(packets(&page.events).is_empty(), "nothing is made up");
    // What needs no permission: the kernel's own counters of the connection, as they change.
    // (The kernel counts the SYN and the FIN as a byte each.)
    let counted = page
        .wait_for("the kernel's counters after the reply", |e| {
            e.endpoint == client.id
                && matches!(&e.kind, EventKind::TcpCounters(c)
                    if c.bytes_received >= 10 && c.bytes_acked >= 10)
        })
        .await;
    let EventKind::TcpCounters(c) = counted.kind else {
        unreachable!()
    };
    assert!(c.segs_out >= 3 && c.segs_in >= 2, "{c:?}");
    assert_eq!(c.retransmits, 0, "{c:?}");
    assert!(c.window > 0 && c.rtt_us > 0, "{c:?}");
    let error = page.err(cmd(json!({"op": "capture_save"}))).await;
    assert!(error.hint.unwrap_or_default().contains("setcap"));
}

/// A traced program's calls reach the bridge in batches, after the packets they caused: each
/// call says when it was made (`at.call_us`, on the clock of `wire_us`), so the page can put
/// the handout's client's connect() before its SYN and its send() before its data, and the
/// server's accept() and recv() after what they waited for. And the bridge waits for those
/// calls before it says whose a packet is, so each is its sender's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_programs_calls_are_timed_when_made_not_when_read() {
    let Some((_data, bridge, mut page)) = capturing_bridge(
        "capture-timed",
        &["kurose_tcp_server.py", "kurose_tcp_client.py"],
    )
    .await
    else {
        return;
    };
    let port = free_tcp_port();
    run_program(&mut page, "kurose_tcp_server.py", &[&port.to_string()]).await;
    page.wait_for("the server's listen()", |e| {
        matches!(e.kind, EventKind::Listen { .. })
    })
    .await;
    let client = kurose_client_at_its_prompt(&mut page, port).await;
    page.ok(cmd(
        json!({"op": "program_input", "program": client, "text": "hello\n"}),
    ))
    .await;
    // Both sides' calls up to the client's recv() of the answer, and the packets of both.
    const CLIENT: &str = "kurose_tcp_client.py";
    const SERVER: &str = "kurose_tcp_server.py";
    let made = |events: &[Event], file: &str, kind: &str, line: u32| {
        events
            .iter()
            .find(|e| {
                e.kind.name() == kind
                    && e.at
                        .as_ref()
                        .is_some_and(|a| a.line == line && a.file.ends_with(file))
            })
            .cloned()
    };
    let carrying = |events: &[Event], text: &str| {
        packets(events)
            .into_iter()
            .find(|p| p.2.data.preview == text)
            .map(|p| p.2)
    };
    page.wait_until("the answer's recv() and both data packets", |events| {
        made(events, CLIENT, "recv", 19).is_some()
            && carrying(events, "hello").is_some()
            && carrying(events, "HELLO").is_some()
    })
    .await;
    let events = page.events.clone();
    let call = |file: &str, kind: &str, line: u32| {
        let event = made(&events, file, kind, line)
            .unwrap_or_else(|| panic!("no {kind} at line {line} of {file}"));
        let at = event.at.as_ref().unwrap();
        let when = at
            .call_us
            .unwrap_or_else(|| panic!("{kind} at line {line} says when it was made: {at:?}"));
        assert!(
            when <= event.t_us,
            "made ({when}) before it was read ({})",
            event.t_us
        );
        when
    };
    let syn = packets(&events)
        .into_iter()
        .find(|p| p.2.flags == "SYN")
        .expect("the client's SYN")
        .2;
    let hello = carrying(&events, "hello").unwrap();
    let answer = carrying(&events, "HELLO").unwrap();
    // The kernel's stamp and the calls' clock are read apart: a millisecond of slack, far
    // below the batching this is about (100 ms and more).
    const SLACK: u64 = 1_000;
    // Each packet is shown on the socket that sent it: the bridge waits for a traced
    // program's calls before it says whose a packet is.
    let sender_of = |packet: &PacketInfo| {
        events
            .iter()
            .find(|e| matches!(&e.kind, EventKind::Packet(p) if **p == *packet))
            .map(|e| (e.endpoint, e.conn))
            .unwrap()
    };
    let socket_of = |file: &str, kind: &str, line: u32| {
        made(&events, file, kind, line)
            .map(|e| (e.endpoint, e.conn))
            .unwrap()
    };
    assert_eq!(
        sender_of(&syn),
        socket_of(CLIENT, "connect", 10),
        "the SYN is the client's"
    );
    assert_eq!(
        sender_of(&hello),
        socket_of(CLIENT, "send", 16),
        "the client's data is its socket's"
    );
    assert_eq!(
        sender_of(&answer),
        socket_of(SERVER, "send", 26),
        "the answer is the server's connection's"
    );
    assert_eq!((hello.dir.as_str(), answer.dir.as_str()), ("out", "out"));
    // (whose call, which, at which line, the packet, whether the call comes before it)
    let order = [
        (
            CLIENT,
            "connect",
            10,
            &syn,
            true,
            "connect() before its SYN",
        ),
        (SERVER, "accept", 15, &syn, false, "accept() after the SYN"),
        (
            CLIENT,
            "send",
            16,
            &hello,
            true,
            "the client's send() before its data",
        ),
        (
            SERVER,
            "recv",
            19,
            &hello,
            false,
            "the server's recv() after the data",
        ),
        (
            SERVER,
            "send",
            26,
            &answer,
            true,
            "the server's send() before its data",
        ),
        (
            CLIENT,
            "recv",
            19,
            &answer,
            false,
            "the client's recv() after the answer",
        ),
    ];
    for (file, kind, line, packet, first, what) in order {
        let made = call(file, kind, line);
        let in_order = if first {
            made <= packet.wire_us + SLACK
        } else {
            made + SLACK >= packet.wire_us
        };
        assert!(
            in_order,
            "{what}: call at {made}, packet at {}",
            packet.wire_us
        );
    }
    // A line a program prints says when it was read, though with two programs traced it is
    // shown later, in one order with their calls: the server's line after accept() comes
    // between that accept() and the recv() that waited for the client's typing.
    let printed = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Output {
                data,
                read_us: Some(read),
                ..
            } if data.preview.starts_with("Connection established") => Some((*read, e.t_us)),
            _ => None,
        })
        .expect("the server's line after accept(), with when it was read");
    let (accepted, received) = (call(SERVER, "accept", 15), call(SERVER, "recv", 19));
    // Held for the other program's calls (120 ms): read that much before it was shown.
    assert!(
        printed.0 + 100_000 <= printed.1,
        "read ({}) well before shown ({})",
        printed.0,
        printed.1
    );
    assert!(
        accepted <= printed.0 + SLACK && printed.0 <= received,
        "printed at {}: accept() returned at {accepted}, recv() at {received}",
        printed.0
    );
    // What the page typed is timed as it was given, before the send() it led to.
    let typed = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Output {
                stream,
                read_us: Some(given),
                ..
            } if stream == "stdin" => Some((*given, e.t_us)),
            _ => None,
        })
        .expect("the line typed into the client, with when it was given");
    let sent = call(CLIENT, "send", 16);
    assert!(
        typed.0 <= typed.1 && typed.0 <= sent,
        "typed at {} (shown {}), sent at {sent}",
        typed.0,
        typed.1
    );
    bridge.shutdown().await;
}
