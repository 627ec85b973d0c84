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

/// A traced program's sockets are captured too: the handout's echo server, run from the page,
/// and a plain client (untraced, so only the program's own socket tells the bridge the port).
#[tokio::test]
async fn a_traced_programs_packets_are_its_own() {
    let data = TempDir::new("capture-program");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/programs/elen_echo_server.py");
    std::fs::copy(&fixture, data.0.join("elen_echo_server.py")).unwrap();
    let dir = data.0.clone();
    let bridge = Bridge::start_with(move |c| c.data_dir = dir).await;
    let mut page = bridge.client().await;
    if !page.welcome.capture.as_ref().is_some_and(|c| c.on) {
        assert!(!root(), "as root the bridge captures");
        eprintln!("skipped: no capture");
        return;
    }
    let port = free_tcp_port();
    page.endpoint(cmd(
        json!({"op": "program_run", "file": "elen_echo_server.py",
                             "args": [port.to_string()]}),
    ))
    .await;
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
