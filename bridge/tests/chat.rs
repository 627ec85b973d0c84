//! The chat server: real Python clients (and bridge clients) in one room. Every message
//! reaches every other member exactly once, joins and leaves are announced, an abrupt
//! disconnect counts as leaving, and a stuck client cannot stall the others. A big room records
//! one `relayed` event per line instead of one send per member.

mod common;

use common::*;
use serde_json::json;
use shared::{ClosedBy, EventKind};

async fn chat_server(c: &mut Client) -> u16 {
    let server = c
        .endpoint(cmd(
            json!({"op": "tcp_server_start", "port": 0, "backlog": 64,
            "behaviour": {"kind": "chat"}}),
        ))
        .await;
    port_of(&server)
}

#[tokio::test]
async fn fifty_python_clients_each_get_every_other_message_once() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let port = chat_server(&mut c).await;
    let script = r#"
import socket, sys, threading
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
for s in socks:
    s.settimeout(20)
files = [s.makefile("r", encoding="utf-8", newline="\n") for s in socks]
for i, s in enumerate(socks):
    s.sendall(b"u%d\n" % i)
# Wait until the room knows everyone before anyone talks.
while True:
    socks[0].sendall(b"/who\n")
    line = files[0].readline()
    while not line.startswith("* %d online" % n) and not line.startswith("* ") or "online" not in line:
        line = files[0].readline()
    if line.startswith("* %d online" % n):
        break
got = [dict() for _ in range(n)]
def read(i):
    while sum(got[i].values()) < n - 1:
        line = files[i].readline()
        if not line:
            break
        if line.startswith("u") and ": hello from " in line:
            sender = line.split(":")[0]
            got[i][sender] = got[i].get(sender, 0) + 1
threads = [threading.Thread(target=read, args=(i,)) for i in range(n)]
for t in threads: t.start()
for i, s in enumerate(socks):
    s.sendall(b"hello from u%d\n" % i)
for t in threads: t.join()
bad = 0
for i in range(n):
    expected = {"u%d" % j: 1 for j in range(n) if j != i}
    if got[i] != expected:
        bad += 1
        print("client", i, "got", got[i], file=sys.stderr)
for s in socks: s.close()
print("ok" if bad == 0 else "bad %d" % bad)
"#;
    let out = python(script, &[&port.to_string(), "50"]).await;
    assert_eq!(out.trim(), "ok");
    // Every one of them left, and the timeline shows 50 accepted connections.
    c.wait_until("50 leaves", |ev| {
        ev.iter()
            .filter(|e| matches!(e.kind, EventKind::Close { .. }) && e.conn.is_some())
            .count()
            == 50
    })
    .await;
    assert_eq!(
        c.events
            .iter()
            .filter(|e| e.kind == EventKind::Accept)
            .count(),
        50
    );
    // A room this big records one `relayed` event per line instead of 49 sends.
    let said = |e: &&shared::Event| {
        e.kind
            .data()
            .and_then(|d| d.bytes())
            .is_some_and(|b| String::from_utf8_lossy(&b).contains("hello from"))
    };
    // Lines said at about the same time go out together, so count lines, not events.
    let relayed: Vec<(usize, u32)> = c
        .events
        .iter()
        .filter(said)
        .filter_map(|e| match &e.kind {
            EventKind::Relayed { data, members } => {
                let text = String::from_utf8(data.bytes().unwrap()).unwrap();
                Some((text.matches("hello from").count(), *members))
            }
            _ => None,
        })
        .collect();
    let lines: usize = relayed.iter().map(|(n, _)| n).sum();
    assert_eq!(lines, 50, "every line relayed once: {relayed:?}");
    assert!(relayed.iter().all(|(_, m)| *m >= 49), "{relayed:?}");
    let sends = c
        .events
        .iter()
        .filter(said)
        .filter(|e| e.kind.name() == "send")
        .count();
    assert_eq!(sends, 0, "members' sends are counted, not listed");
}

#[tokio::test]
async fn nicknames_who_and_leaving_abruptly() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let port = chat_server(&mut c).await;
    // Two members from the page, one from Python.
    let alice = c
        .endpoint(cmd(json!({"op": "tcp_client_connect", "port": port})))
        .await;
    let bob = c
        .endpoint(cmd(json!({"op": "tcp_client_connect", "port": port})))
        .await;
    c.ok(send_text(alice.id, None, "alice\n")).await;
    c.wait_until("alice named", |ev| {
        text_of(ev, alice.id).contains("* you are alice")
    })
    .await;
    c.ok(send_text(bob.id, None, "/nick alice\n")).await;
    c.wait_until("bob gets a unique name", |ev| {
        text_of(ev, bob.id).contains("* you are alice2")
    })
    .await;
    c.wait_until("alice sees bob join", |ev| {
        text_of(ev, alice.id).contains("* alice2 joined")
    })
    .await;
    c.ok(send_text(bob.id, None, "/nick bob\n")).await;
    c.wait_until("rename announced", |ev| {
        text_of(ev, alice.id).contains("* alice2 is now bob")
    })
    .await;

    let script = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
f = s.makefile("r")
s.sendall(b"carol\n/who\nhi all\n")
while True:
    line = f.readline()
    if line.startswith("* 3 online"):
        print(line.strip())
        break
# Leave abruptly: reset instead of a clean close.
import struct
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
"#;
    let out = python(script, &[&port.to_string()]).await;
    assert_eq!(out.trim(), "* 3 online: alice, bob, carol");
    c.wait_until("carol's message", |ev| {
        text_of(ev, alice.id).contains("carol: hi all")
    })
    .await;
    c.wait_until("carol left", |ev| {
        text_of(ev, bob.id).contains("* carol left")
    })
    .await;
    c.ok(send_text(alice.id, None, "bye bob\n")).await;
    c.wait_until("bob reads alice", |ev| {
        text_of(ev, bob.id).contains("alice: bye bob")
    })
    .await;
    assert!(
        !text_of(&c.events, alice.id).contains("alice: bye bob"),
        "no echo to the sender"
    );
}

fn text_of(events: &[shared::Event], endpoint: u32) -> String {
    String::from_utf8_lossy(&received(events, endpoint, None)).into_owned()
}

#[tokio::test]
async fn a_stuck_client_does_not_stall_the_room() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let port = chat_server(&mut c).await;
    // The stuck member: joins with a tiny receive buffer, then never reads.
    let stuck = r#"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"stuck\n")
print("joined", flush=True)
sys.stdin.readline()
"#;
    let mut stuck = tokio::process::Command::new("python3")
        .args(["-c", stuck, &port.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stuck.stdout.take().unwrap()).lines();
    tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // A talker and a listener that reads everything.
    let script = r#"
import socket, sys, threading
port, n = int(sys.argv[1]), int(sys.argv[2])
talk = socket.create_connection(("127.0.0.1", port))
listen = socket.create_connection(("127.0.0.1", port))
listen.settimeout(20)
talk.sendall(b"talker\n")
listen.sendall(b"listener\n")
f = listen.makefile("r")
line = f.readline()
while "talker" not in line or "online" not in line:
    listen.sendall(b"/who\n")
    line = f.readline()
count = 0
def read():
    global count
    while count < n:
        l = f.readline()
        if not l: break
        if l.startswith("talker: "): count += 1
t = threading.Thread(target=read); t.start()
payload = b"x" * 1000
for i in range(n):
    talk.sendall(b"%d %s\n" % (i, payload))
t.join()
print(count)
"#;
    let out = python(script, &[&port.to_string(), "6000"]).await;
    assert_eq!(
        out.trim(),
        "6000",
        "the listener got every message despite the stuck member"
    );
    let closed = c
        .wait_for("the stuck member is dropped", |e| {
            matches!(&e.kind, EventKind::Close { by: ClosedBy::Local, reason } if reason.contains("too slow"))
        })
        .await;
    assert!(closed.conn.is_some());
    let _ = stuck.kill().await;
}

/// TCP_NODELAY of the socket in this process (the bridge runs in it) whose peer is `peer`;
/// None if there is none.
fn nodelay_towards(peer: std::net::SocketAddr) -> Option<bool> {
    let std::net::SocketAddr::V4(peer) = peer else {
        return None;
    };
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: getpeername and getsockopt only write into the buffers given, at most the
        // lengths given; on a descriptor that is not a socket (or was closed meanwhile) they
        // fail and nothing is read.
        unsafe {
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            if libc::getpeername(fd, (&mut addr as *mut libc::sockaddr_in).cast(), &mut len) != 0
                || i32::from(addr.sin_family) != libc::AF_INET
                || u16::from_be(addr.sin_port) != peer.port()
                || u32::from_be(addr.sin_addr.s_addr) != u32::from(*peer.ip())
            {
                continue;
            }
            let mut on: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            if libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&mut on as *mut libc::c_int).cast(),
                &mut len,
            ) == 0
            {
                return Some(on != 0);
            }
        }
    }
    None
}

/// The room gathers its lines into one write per member per round; Nagle's algorithm would hold
/// a member's next round back until its (delayed) ACK of the last one came, up to 40 ms.
#[tokio::test]
async fn members_sockets_send_at_once() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let port = chat_server(&mut c).await;
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (reader, mut writer) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(reader).lines();
    writer.write_all(b"nagle\n").await.unwrap();
    loop {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("an answer in time")
            .unwrap()
            .expect("the room answers");
        if line.contains("* you are nagle") {
            break;
        }
    }
    let me = writer.local_addr().unwrap();
    let room = writer.peer_addr().unwrap();
    assert_eq!(
        nodelay_towards(room),
        Some(false),
        "this client's own socket is found, with Nagle on (the default)"
    );
    assert_eq!(
        nodelay_towards(me),
        Some(true),
        "the room's socket for this member sends at once"
    );
}

/// What a member gets from the room is what others said, not a reply to its own send: no
/// round trip is shown for it (issue 17, item 4: "* dave left" showed a 5 s round trip).
#[tokio::test]
async fn a_chat_member_is_shown_no_round_trips() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let port = chat_server(&mut c).await;
    let connect = || cmd(json!({"op": "tcp_client_connect", "port": port}));
    let ada = c.endpoint(connect()).await;
    c.ok(send_text(ada.id, None, "/nick ada\n")).await;
    let dave = c.endpoint(connect()).await;
    c.ok(send_text(dave.id, None, "/nick dave\n")).await;
    c.ok(send_text(dave.id, None, "bye\n")).await;
    c.ok(shared::Command::close(dave.id, None)).await;
    c.wait_until("ada hears that dave left", |ev| {
        received(ev, ada.id, None)
            .windows(b"left".len())
            .any(|w| w == b"left")
    })
    .await;
    let timed: Vec<_> = c
        .events
        .iter()
        .filter(|e| e.endpoint == ada.id)
        .filter_map(|e| match &e.kind {
            EventKind::Recv { rtt_us, .. } => *rtt_us,
            _ => None,
        })
        .collect();
    assert!(
        timed.is_empty(),
        "round trips shown in a chat room: {timed:?}"
    );
}
