//! The data directory: servers that log what they receive and save files, clients that send
//! files over TCP and UDP, with real Python peers (sendfile) and SHA-256 checked on both sides.

mod common;

use common::*;
use serde_json::json;
use shared::{ErrorKind, EventKind, ReplyData};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn python_sendfile_of_100_mb_is_saved_with_the_same_sha256() {
    let data = TempDir::new("sendfile");
    let source = TempDir::new("source");
    let bridge = Bridge::start_with(|c| c.data_dir = data.0.clone()).await;
    let mut c = bridge.client().await;
    let server = c
        .endpoint(cmd(
            json!({"op": "tcp_server_start", "port": 0, "concurrency": "concurrent",
            "behaviour": {"kind": "save_to_file", "file": "upload.bin"}}),
        ))
        .await;
    let path = source.0.join("big.bin");
    write_pattern(&path, 100 << 20);
    let script = r#"
import hashlib, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
with open(sys.argv[2], "rb") as f:
    sent = s.sendfile(f)
s.shutdown(socket.SHUT_WR)
s.recv(1)
s.close()
print(sent)
"#;
    let before = resident_kib(std::process::id());
    let out = python(
        script,
        &[&port_of(&server).to_string(), path.to_str().unwrap()],
    )
    .await;
    assert_eq!(out.trim(), (100u64 << 20).to_string());
    let report = c.report_of(server.id).await;
    let expected = python_sha256(&path).await;
    assert!(report.complete);
    assert_eq!(report.bytes, 100 << 20);
    assert_eq!(report.sha256, expected);
    // The receiver says how much of its time was the disk's confirmation (fsync).
    let sync_us = report.sync_us.expect("a saved file reports its sync");
    assert!(sync_us <= report.duration_us, "{report:?}");
    assert_eq!(python_sha256(&data.0.join("upload.bin")).await, expected);
    assert!(!data.0.join("upload.bin.part").exists());
    let progress = c
        .events
        .iter()
        .filter(|e| e.kind.name() == "progress")
        .count();
    let chunks = c.events.iter().filter(|e| e.kind.name() == "recv").count();
    assert_eq!(
        chunks, 0,
        "a file transfer reports progress, not every chunk"
    );
    assert!(progress < 1000, "progress is rate-limited: {progress}");
    // The file streamed through: the bridge (in this process) did not grow with its size.
    let grown = resident_kib(std::process::id()).saturating_sub(before);
    assert!(
        grown < 32 * 1024,
        "memory grew by {grown} KiB for a 100 MiB file"
    );
}

#[tokio::test]
async fn bridge_client_sends_a_file_to_a_bridge_server() {
    let data = TempDir::new("tcp-file");
    write_pattern(&data.0.join("lab.bin"), 3_000_000);
    let bridge = Bridge::start_with(|c| c.data_dir = data.0.clone()).await;
    let mut c = bridge.client().await;
    let server = c.save_to_file_server("copy.bin").await;
    let client = c
        .endpoint(cmd(
            json!({"op": "tcp_client_connect", "port": port_of(&server)}),
        ))
        .await;
    let sent = c
        .transfer(cmd(
            json!({"op": "send_file", "endpoint": client.id, "file": "lab.bin"}),
        ))
        .await;
    assert!(sent.complete);
    assert_eq!(sent.bytes, 3_000_000);
    let received = c.report_of(server.id).await;
    assert_eq!(received.sha256, sent.sha256);
    assert!(received.complete);
    assert!(received.sync_us.is_some() && sent.sync_us.is_none());
    assert_eq!(sent.sha256, python_sha256(&data.0.join("lab.bin")).await);
    // The client saw the server close after the file: EOF, then its own close.
    c.wait_for("client closed", |e| e.endpoint == client.id && is_close(e))
        .await;
    let ReplyData::Files { files } = c.ok(cmd(json!({"op": "list_files"}))).await else {
        panic!("a file list")
    };
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["copy.bin", "lab.bin"]);
}

#[tokio::test]
async fn udp_transfer_reports_missing_and_out_of_order_datagrams() {
    let data = TempDir::new("udp-file");
    let bridge = Bridge::start_with(|c| c.data_dir = data.0.clone()).await;
    let mut c = bridge.client().await;
    let server = c
        .endpoint(cmd(json!({"op": "udp_server_start", "port": 0,
            "behaviour": {"kind": "save_to_file", "file": "datagrams.bin"}})))
        .await;
    // A Python sender that loses datagram 1 and sends the rest backwards: 4, 3, 2, 0 of 5.
    let script = r#"
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for seq in [4, 3, 2, 0]:
    s.sendto(struct.pack(">III", seq, 5, 4) + bytes([65 + seq]) * 4, ("127.0.0.1", int(sys.argv[1])))
print("sent")
"#;
    python(script, &[&port_of(&server).to_string()]).await;
    let report = c.report_of(server.id).await;
    let datagrams = report.datagrams.unwrap();
    assert!(!report.complete);
    assert!(
        report.sync_us.is_some(),
        "a UDP receiver syncs its file too"
    );
    assert_eq!(
        (datagrams.expected, datagrams.received, datagrams.missing),
        (5, 4, 1)
    );
    assert_eq!(
        datagrams.out_of_order, 3,
        "3, 2 and 0 came after a higher number"
    );
    assert!(
        data.0.join("datagrams.bin.part").exists(),
        "an incomplete file stays .part"
    );

    // A bridge client sending a whole file: counts add up, and the hash matches when nothing
    // was lost (on loopback nothing usually is, but UDP promises nothing).
    write_pattern(&data.0.join("small.bin"), 200_000);
    let client = c
        .endpoint(cmd(
            json!({"op": "udp_client_open", "port": port_of(&server)}),
        ))
        .await;
    let sent = c.transfer(cmd(json!({"op": "send_file", "endpoint": client.id, "file": "small.bin", "datagram_size": 1400}))).await;
    assert_eq!(sent.datagrams.as_ref().unwrap().expected, 143);
    c.wait_until("second report", |ev| {
        ev.iter()
            .filter(|e| e.endpoint == server.id && e.kind.name() == "transfer")
            .count()
            == 2
    })
    .await;
    let second = c
        .events
        .iter()
        .rev()
        .find_map(|e| match &e.kind {
            EventKind::Transfer(r) if e.endpoint == server.id => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    let d = second.datagrams.unwrap();
    assert_eq!(d.received + d.missing, 143);
    assert_eq!(second.complete, d.missing == 0);
    if second.complete {
        assert_eq!(second.sha256, sent.sha256);
    }
}

#[tokio::test]
async fn servers_log_what_they_receive_and_the_page_can_download_it() {
    let data = TempDir::new("log");
    let bridge = Bridge::start_with(|c| c.data_dir = data.0.clone()).await;
    let mut c = bridge.client().await;
    let (server, client) = c
        .tcp_pair(json!({"policy": {"kind": "persistent"}, "log_file": "received.txt"}))
        .await;
    for word in ["hello", "world\n"] {
        c.ok(send_text(client.id, None, word)).await;
        let want = word.trim();
        c.wait_until("echo", |ev| {
            String::from_utf8_lossy(&received(ev, client.id, None)).contains(want)
        })
        .await;
    }
    let log = std::fs::read_to_string(data.0.join("received.txt")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    let peer = client.local.unwrap();
    assert!(
        lines[0].ends_with(&format!(" {peer} hello")),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].ends_with(&format!(" {peer} world")),
        "{}",
        lines[1]
    );
    assert!(
        lines[0].starts_with("20") && lines[0].contains('T'),
        "a timestamp: {}",
        lines[0]
    );
    let _ = server;

    let get = |path: &str, auth: Option<&str>| {
        let addr = bridge.addr;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{}\r\n",
            auth.map(|t| format!("Authorization: Bearer {t}\r\n"))
                .unwrap_or_default()
        );
        async move {
            let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tcp.write_all(request.as_bytes()).await.unwrap();
            let mut answer = String::new();
            tokio::time::timeout(WAIT, tcp.read_to_string(&mut answer))
                .await
                .unwrap()
                .unwrap();
            answer
        }
    };
    let ok = get("/files/received.txt", Some(TOKEN)).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.ends_with(&log));
    assert!(get("/files/received.txt", None)
        .await
        .starts_with("HTTP/1.1 401"));
    assert!(get("/files/received.txt", Some("wrong-token-0123456789"))
        .await
        .starts_with("HTTP/1.1 401"));
    for bad in [
        "/files/..%2Fsecret",
        "/files/%2Fetc%2Fpasswd",
        "/files/.hidden",
    ] {
        let answer = get(bad, Some(TOKEN)).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{bad}: {answer}");
    }
    assert!(get("/files/missing.txt", Some(TOKEN))
        .await
        .starts_with("HTTP/1.1 404"));
}

#[tokio::test]
async fn file_names_cannot_leave_the_data_directory() {
    let data = TempDir::new("confine");
    let bridge = Bridge::start_with(|c| c.data_dir = data.0.clone()).await;
    let mut c = bridge.client().await;
    for name in ["../escape.txt", "/tmp/x", "a/b", ".hidden", ""] {
        let error = c
            .err(cmd(
                json!({"op": "tcp_server_start", "port": 0, "log_file": name}),
            ))
            .await;
        assert_eq!(error.kind, ErrorKind::NotAllowed, "{name:?}");
        let error = c
            .err(cmd(json!({"op": "udp_server_start", "port": 0,
                "behaviour": {"kind": "save_to_file", "file": name}})))
            .await;
        assert_eq!(error.kind, ErrorKind::NotAllowed, "{name:?}");
    }
    let (_, client) = c.tcp_pair(json!({"policy": {"kind": "persistent"}})).await;
    let error = c
        .err(cmd(
            json!({"op": "send_file", "endpoint": client.id, "file": "../../etc/passwd"}),
        ))
        .await;
    assert_eq!(error.kind, ErrorKind::NotAllowed);
    let error = c
        .err(cmd(
            json!({"op": "send_file", "endpoint": client.id, "file": "absent.bin"}),
        ))
        .await;
    assert_eq!(error.kind, ErrorKind::UnknownEndpoint, "{error:?}");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/hostname", data.0.join("link.txt")).unwrap();
        let error = c
            .err(cmd(
                json!({"op": "send_file", "endpoint": client.id, "file": "link.txt"}),
            ))
            .await;
        assert_eq!(error.kind, ErrorKind::NotAllowed, "{error:?}");
    }
}

#[tokio::test]
async fn browser_uploads_arrive_chunk_by_chunk() {
    use base64::Engine as _;
    let data = TempDir::new("upload");
    let source = TempDir::new("upload-src");
    let bridge = Bridge::start_with(|c| c.data_dir = data.0.clone()).await;
    let mut c = bridge.client().await;
    let path = source.0.join("photo.bin");
    write_pattern(&path, 1_000_000);
    let bytes = std::fs::read(&path).unwrap();
    let ReplyData::Upload { upload } = c
        .ok(cmd(
            json!({"op": "upload_start", "file": "photo.bin", "size": bytes.len()}),
        ))
        .await
    else {
        panic!("an upload id")
    };
    for chunk in bytes.chunks(128 * 1024) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(chunk);
        c.ok(cmd(
            json!({"op": "upload_chunk", "upload": upload, "base64": b64}),
        ))
        .await;
    }
    let ReplyData::Uploaded { bytes: n, sha256 } = c
        .ok(cmd(json!({"op": "upload_finish", "upload": upload})))
        .await
    else {
        panic!("the upload's size and hash")
    };
    assert_eq!(n, 1_000_000);
    assert_eq!(sha256.unwrap(), python_sha256(&path).await);
    assert_eq!(std::fs::read(data.0.join("photo.bin")).unwrap(), bytes);

    // An upload that stops short keeps its .part name, and the error says why.
    let ReplyData::Upload { upload } = c
        .ok(cmd(
            json!({"op": "upload_start", "file": "short.bin", "size": 10}),
        ))
        .await
    else {
        panic!("an upload id")
    };
    c.ok(cmd(
        json!({"op": "upload_chunk", "upload": upload, "base64": "AAAA"}),
    ))
    .await;
    let error = c
        .err(cmd(json!({"op": "upload_finish", "upload": upload})))
        .await;
    assert!(
        error.explanation.contains("Only 3 of 10 bytes"),
        "{}",
        error.explanation
    );
    assert!(data.0.join("short.bin.part").exists() && !data.0.join("short.bin").exists());
    let error = c
        .err(cmd(
            json!({"op": "upload_start", "file": "../x", "size": 1}),
        ))
        .await;
    assert_eq!(error.kind, ErrorKind::NotAllowed);
}

/// The full-size check of the issue: a 1 GiB file through a "save to file" server, with the
/// bridge's memory flat. Too slow and disk-hungry for every test run (it writes 2 GiB): run it
/// with `cargo test --release -p bridge --test files -- --ignored one_gib`.
#[tokio::test]
#[ignore = "writes 2 GiB; run on demand"]
async fn one_gib_file_with_flat_memory() {
    let data = TempDir::new("gib");
    let source = TempDir::new("gib-src");
    let bridge = Bridge::start_with(|c| c.data_dir = data.0.clone()).await;
    let mut c = bridge.client().await;
    let server = c.save_to_file_server("gib.bin").await;
    write_pattern(&source.0.join("gib.bin"), 1 << 30);
    std::fs::rename(source.0.join("gib.bin"), data.0.join("source.bin")).unwrap();
    let client = c
        .endpoint(cmd(
            json!({"op": "tcp_client_connect", "port": port_of(&server)}),
        ))
        .await;
    let before = resident_kib(std::process::id());
    let sent = c
        .transfer(cmd(
            json!({"op": "send_file", "endpoint": client.id, "file": "source.bin"}),
        ))
        .await;
    let received = c.report_of(server.id).await;
    let grown = resident_kib(std::process::id()).saturating_sub(before);
    println!(
        "1 GiB: {:.0} MB/s, memory grew {grown} KiB",
        sent.bytes_per_second() / 1e6
    );
    assert_eq!(received.sha256, sent.sha256);
    assert_eq!(received.bytes, 1 << 30);
    assert!(grown < 32 * 1024, "memory grew by {grown} KiB");
}

/// `send_bulk` into a `discard` server: memory to memory, counted on both sides, one report
/// each instead of an event per chunk; the data is the documented pattern (checked by Python).
#[tokio::test]
async fn bulk_test_data_reaches_a_discard_server_and_a_python_receiver() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let (server, client) = c.tcp_pair(json!({"behaviour": {"kind": "discard"}})).await;
    let size = 64u64 << 20;
    let sent = c
        .transfer(cmd(
            json!({"op": "send_bulk", "endpoint": client.id, "bytes": size}),
        ))
        .await;
    assert!(sent.complete);
    assert_eq!(sent.bytes, size);
    assert_eq!(sent.file, "");
    let got = c.report_of(server.id).await;
    assert!(got.complete, "{got:?}");
    assert_eq!(got.bytes, size);
    assert_eq!(got.sha256, "", "discarded data is not hashed");
    let recvs = c
        .events
        .iter()
        .filter(|e| e.kind.name() == "recv" && e.endpoint == server.id)
        .count();
    assert_eq!(recvs, 0, "discard reports once, not per chunk");

    // A Python receiver sees the printable-ASCII pattern, all of it, then EOF.
    let script = r#"
import socket, sys
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
data = bytearray()
while True:
    chunk = conn.recv(65536)
    if not chunk:
        break
    data += chunk
pattern = bytes(range(32, 127))
expected = (pattern * (len(data) // len(pattern) + 1))[:len(data)]
print(len(data), data == expected, flush=True)
"#;
    let mut child = tokio::process::Command::new("python3")
        .args(["-c", script])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let port: u16 = next_line(&mut lines).await.trim().parse().unwrap();
    let to_python = c
        .endpoint(cmd(json!({"op": "tcp_client_connect", "port": port})))
        .await;
    c.ok(cmd(
        json!({"op": "send_bulk", "endpoint": to_python.id, "bytes": 1_000_003}),
    ))
    .await;
    assert_eq!(next_line(&mut lines).await.trim(), "1000003 True");

    // Bulk data is TCP only, bounded, and a UDP server cannot discard.
    let udp = c
        .endpoint(cmd(json!({"op": "udp_client_open", "port": port})))
        .await;
    let refused = c
        .err(cmd(
            json!({"op": "send_bulk", "endpoint": udp.id, "bytes": 10}),
        ))
        .await;
    assert_eq!(refused.kind, ErrorKind::Unsupported);
    let again = c
        .endpoint(cmd(
            json!({"op": "tcp_client_connect", "port": port_of(&server)}),
        ))
        .await;
    let too_big = c
        .err(cmd(
            json!({"op": "send_bulk", "endpoint": again.id, "bytes": shared::MAX_BULK + 1}),
        ))
        .await;
    assert_eq!(too_big.kind, ErrorKind::LimitReached);
    let udp_discard = c
        .err(cmd(
            json!({"op": "udp_server_start", "port": 0, "behaviour": {"kind": "discard"}}),
        ))
        .await;
    assert_eq!(udp_discard.kind, ErrorKind::Unsupported);
}
