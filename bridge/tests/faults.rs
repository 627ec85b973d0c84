//! Faults (docs/reliability.md): a peer that resets mid-transfer, a peer that never reads, a data directory
//! that cannot be written, a disk that fills, Ctrl-C in the middle of a transfer, and a page
//! that stops reading while a gigabyte streams in. Each ends as a clear event and a consistent
//! state (a partial file keeps its `.part` name), and the bridge keeps serving everything else.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use shared::{ErrorKind, EventKind};
use tokio::io::AsyncBufReadExt;

/// The bridge still does an ordinary round trip.
async fn still_serves(c: &mut Client) {
    let echo = c
        .endpoint(cmd(
            json!({"op": "udp_server_start", "port": 0, "behaviour": {"kind": "echo"}}),
        ))
        .await;
    let client = c
        .endpoint(cmd(
            json!({"op": "udp_client_open", "port": port_of(&echo), "timeout_ms": 2000}),
        ))
        .await;
    c.ok(send_text(client.id, None, "still there?")).await;
    c.wait_until("the echo", |ev| {
        String::from_utf8_lossy(&received(ev, client.id, None)).contains("still there?")
    })
    .await;
}

#[tokio::test]
async fn a_peer_that_resets_mid_transfer_leaves_a_part_file_and_a_clear_report() {
    let data = TempDir::new("reset-mid");
    let bridge = Bridge::start_with(|c| c.data_dir = data.0.clone()).await;
    let mut c = bridge.client().await;
    let server = c.save_to_file_server("upload.bin").await;
    // 4 MB, then an abortive close (SO_LINGER 0: RST instead of FIN).
    let script = r#"
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"x" * 4_000_000)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
print("reset")
"#;
    assert_eq!(
        python(script, &[&port_of(&server).to_string()])
            .await
            .trim(),
        "reset"
    );
    let report = c.report_of(server.id).await;
    assert!(
        !report.complete,
        "a reset transfer is not complete: {report:?}"
    );
    // Either the reset was seen (an error event) or it cut the stream short: never "complete".
    assert!(data.0.join("upload.bin.part").exists());
    assert!(
        !data.0.join("upload.bin").exists(),
        "never passed off as complete"
    );
    still_serves(&mut c).await;
}

#[tokio::test]
async fn a_data_directory_that_cannot_be_written_is_a_clear_error() {
    // A data directory below a plain file cannot be created, even by root.
    let scratch = TempDir::new("not-writable");
    std::fs::write(scratch.0.join("file"), "x").unwrap();
    let bridge = Bridge::start_with(|c| c.data_dir = scratch.0.join("file").join("data")).await;
    let mut c = bridge.client().await;
    let server = c.save_to_file_server("upload.bin").await;
    let script = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
try:
    s.sendall(b"hello" * 1000)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
except OSError:
    pass
print("sent")
"#;
    python(script, &[&port_of(&server).to_string()]).await;
    let error = c
        .wait_for("the open error", |e| {
            e.endpoint == server.id
                && matches!(&e.kind, EventKind::Error { op, .. } if op == "open")
        })
        .await;
    let EventKind::Error { error, .. } = error.kind else {
        unreachable!()
    };
    assert!(
        error.explanation.contains("data directory") && error.hint.is_some(),
        "the error says what and what to do: {error:?}"
    );
    // Uploads say so too, at once.
    let refused = c
        .err(cmd(
            json!({"op": "upload_start", "file": "a.bin", "size": 1}),
        ))
        .await;
    assert_ne!(refused.kind, ErrorKind::NotAllowed);
    still_serves(&mut c).await;
}

#[tokio::test]
async fn a_peer_that_never_reads_stalls_only_its_own_sender() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    // A Python server that accepts and never reads.
    let script = r#"
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
print(s.getsockname()[1], flush=True)
conn, _ = s.accept()
sys.stdin.readline()
"#;
    let mut peer = tokio::process::Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(peer.stdout.take().unwrap()).lines();
    let port: u16 = next_line(&mut lines).await.trim().parse().unwrap();
    let client = c
        .endpoint(cmd(json!({"op": "tcp_client_connect", "port": port})))
        .await;
    // 100 MB cannot go into buffers a few MB big: the sender waits, with progress events.
    c.send_request(cmd(
        json!({"op": "send_bulk", "endpoint": client.id, "bytes": 100_000_000}),
    ))
    .await;
    c.wait_for("progress while stalled", |e| {
        e.endpoint == client.id && matches!(e.kind, EventKind::Progress { .. })
    })
    .await;
    // Everything else goes on meanwhile.
    still_serves(&mut c).await;
    // Closing the stalled client ends the transfer with a clear, incomplete report.
    // (Its reply may come while the close is answered; the sender's report event is kept.)
    c.ok(cmd(json!({"op": "close", "endpoint": client.id})))
        .await;
    let report = c.report_of(client.id).await;
    assert!(!report.complete && report.bytes < 100_000_000, "{report:?}");
    let _ = peer.kill().await;
}

/// A bridge in its own process (so it can be interrupted, limited and measured), started by
/// a shell after `shell_prefix` (limits, signal dispositions).
async fn bridge_process(data: &std::path::Path, shell_prefix: &str) -> BridgeProcess {
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(format!(
            "{shell_prefix} exec '{}' --listen 127.0.0.1:0 --token {TOKEN} --data-dir '{}'",
            common::bridge_binary().display(),
            data.display()
        ))
        .stderr(Stdio::null());
    BridgeProcess::spawn(command).await
}

#[tokio::test]
async fn a_disk_that_fills_while_saving_ends_the_transfer_as_partial() {
    let data = TempDir::new("disk-full");
    // Files may grow to 8 MiB at most (ulimit -f counts 512-byte blocks in sh), and the signal
    // that would kill the process at that size is ignored: writes then fail as on a full disk.
    let mut bridge = bridge_process(&data.0, "ulimit -f 16384; trap '' XFSZ;").await;
    let mut c = bridge.client().await;
    let server = c.save_to_file_server("big.bin").await;
    let script = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
try:
    for _ in range(32):
        s.sendall(b"y" * 1_000_000)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
except OSError:
    pass
print("done")
"#;
    python(script, &[&port_of(&server).to_string()]).await;
    let report = c.report_of(server.id).await;
    assert!(!report.complete, "{report:?}");
    let write_error = c.events.iter().find_map(|e| match &e.kind {
        EventKind::Error { op, error } if op == "write" => Some(error.clone()),
        _ => None,
    });
    let error = write_error.expect("a write error event");
    assert!(
        error.hint.unwrap_or_default().contains("room"),
        "{}",
        error.explanation
    );
    assert!(data.0.join("big.bin.part").exists());
    assert!(!data.0.join("big.bin").exists());
    still_serves(&mut c).await;
    let _ = bridge.child.kill().await;
}

#[tokio::test]
async fn ctrl_c_in_the_middle_of_a_transfer_keeps_the_part_file() {
    let data = TempDir::new("ctrl-c");
    let mut bridge = bridge_process(&data.0, "").await;
    let mut c = bridge.client().await;
    let server = c.save_to_file_server("slow.bin").await;
    // A sender that keeps going until it is cut off.
    let script = r#"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print("connected", flush=True)
try:
    while True:
        s.sendall(b"z" * 65536)
        time.sleep(0.01)
except OSError:
    print("cut off", flush=True)
"#;
    let mut sender = tokio::process::Command::new("python3")
        .args(["-c", script, &port_of(&server).to_string()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(sender.stdout.take().unwrap()).lines();
    assert_eq!(next_line(&mut lines).await, "connected");
    c.wait_for("progress", |e| matches!(e.kind, EventKind::Progress { .. }))
        .await;
    // Ctrl-C.
    let pid = bridge.pid() as i32;
    // SAFETY: a signal to the child this test started.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let status = tokio::time::timeout(WAIT, bridge.child.wait())
        .await
        .expect("the bridge stopped in time")
        .unwrap();
    assert!(status.success(), "a clean exit: {status}");
    // The page was told, and the file is marked partial.
    let report = {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(report) = transfer_report(&c.events, server.id) {
                break Some(report);
            }
            if Instant::now() > deadline {
                break None;
            }
            match tokio::time::timeout(Duration::from_millis(500), c.next_message()).await {
                Ok(Some(_)) => {}
                _ => break transfer_report(&c.events, server.id),
            }
        }
    };
    if let Some(report) = report {
        assert!(!report.complete, "{report:?}");
    }
    assert!(data.0.join("slow.bin.part").exists());
    assert!(!data.0.join("slow.bin").exists());
    assert_eq!(next_line(&mut lines).await, "cut off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_stops_reading_while_a_gigabyte_streams_in() {
    let data = TempDir::new("stuck-page");
    let mut bridge = bridge_process(&data.0, "").await;
    let pid = bridge.pid();
    let mut c = bridge.client().await;
    let (saver, printer) = c.saver_and_printer("stream.bin").await;
    // From here on this page reads nothing: its socket fills, then the bridge's queue for it.
    let before = allocated_kib(pid);
    let gib = 1u64 << 30;
    data.assert_room_for(gib);
    let saving_peak = stream_pattern_into(port_of(&saver), gib, pid).await;
    // Every recv() of this one is an event with its bytes (64 KiB each), which the page never
    // takes: the history and the queue are bounded, so memory is too.
    let printing_peak = stream_pattern_into(port_of(&printer), 256 << 20, pid).await;
    let peak = saving_peak.max(printing_peak);
    println!(
        "bridge allocations: {} MiB before, peaks {} MiB saving 1 GiB and {} MiB printing 256 MiB ({} MiB resident with its code)",
        before / 1024,
        saving_peak.allocated / 1024,
        printing_peak.allocated / 1024,
        peak.resident / 1024
    );
    assert!(
        peak.allocated < ALLOCATED_LIMIT_KIB,
        "the bridge's allocations peaked at {} MiB (from {} MiB)",
        peak.allocated / 1024,
        before / 1024
    );
    // Nothing saved is lost: the file is whole, with the pattern's hash.
    let saved = data.0.join("stream.bin");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !saved.exists() {
        assert!(Instant::now() < deadline, "the file was not finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(std::fs::metadata(&saved).unwrap().len(), gib);
    let check = r#"
import hashlib, sys
block = bytes(range(256)) * 4096
h = hashlib.sha256()
for _ in range(int(sys.argv[2]) // len(block)):
    h.update(block)
f = hashlib.sha256()
with open(sys.argv[1], "rb") as file:
    for chunk in iter(lambda: file.read(1 << 20), b""):
        f.update(chunk)
print(h.hexdigest() == f.hexdigest())
"#;
    let out = python(check, &[saved.to_str().unwrap(), &gib.to_string()]).await;
    assert_eq!(out.trim(), "True");
    let _ = bridge.child.kill().await;
}

#[tokio::test]
async fn logs_survive_a_crash_up_to_the_last_message_the_page_saw() {
    let data = TempDir::new("crash-log");
    let mut bridge = bridge_process(&data.0, "").await;
    let mut c = bridge.client().await;
    let server = c
        .endpoint(cmd(
            json!({"op": "tcp_server_start", "port": 0, "log_file": "messages.txt",
                             "behaviour": {"kind": "echo"}, "policy": {"kind": "persistent"}}),
        ))
        .await;
    // A client that talks until the bridge dies under it.
    let script = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
try:
    for i in range(100000):
        s.sendall(b"m%d\n" % i)
        if not s.recv(64):
            break
except OSError:
    pass
"#;
    let mut talker = tokio::process::Command::new("python3")
        .args(["-c", script, &port_of(&server).to_string()])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    c.wait_for("message 300 shown", |e| {
        e.endpoint == server.id
            && e.kind.name() == "recv"
            && e.kind.data().and_then(|d| d.bytes()).as_deref() == Some(b"m300\n")
    })
    .await;
    // The crash: no chance to flush or close anything.
    let pid = bridge.pid() as i32;
    // SAFETY: a signal to the child this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = tokio::time::timeout(WAIT, bridge.child.wait()).await;
    let _ = talker.kill().await;
    let seen: Vec<String> = c
        .events
        .iter()
        .filter(|e| e.endpoint == server.id && e.kind.name() == "recv")
        .filter_map(|e| e.kind.data().and_then(|d| d.bytes()))
        .map(|b| String::from_utf8_lossy(&b).trim_end().to_string())
        .collect();
    assert!(seen.len() > 300, "{} messages seen", seen.len());
    let log = std::fs::read_to_string(data.0.join("messages.txt")).unwrap();
    let logged: std::collections::HashSet<&str> = log
        .lines()
        .filter_map(|line| line.rsplit(' ').next())
        .collect();
    let lost: Vec<&String> = seen
        .iter()
        .filter(|m| !logged.contains(m.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "seen in the page but not in the log: {lost:?}"
    );
}
