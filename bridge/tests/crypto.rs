//! Encryption and authentication with real Python peers: Fernet tokens from Python's
//! `cryptography` both ways, a tampered token rejected, and a challenge-response that lets in
//! only clients that know the secret.

mod common;

use common::*;
use serde_json::json;
use shared::{EventKind, ReplyData};

async fn new_key(c: &mut Client) -> String {
    match c.ok(cmd(json!({"op": "fernet_key"}))).await {
        ReplyData::Key { key } => key,
        other => panic!("a key, got {other:?}"),
    }
}

fn plaintexts(events: &[shared::Event], endpoint: u32, decrypted: bool) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.endpoint == endpoint)
        .filter_map(|e| match &e.kind {
            EventKind::Decrypted { plaintext } if decrypted => Some(plaintext),
            EventKind::Encrypted { plaintext } if !decrypted => Some(plaintext),
            _ => None,
        })
        .map(|p| String::from_utf8(p.bytes().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn python_fernet_client_and_the_encrypted_echo_server() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let key = new_key(&mut c).await;
    let server = c
        .endpoint(cmd(
            json!({"op": "tcp_server_start", "port": 0, "policy": {"kind": "persistent"},
            "behaviour": {"kind": "fernet_echo", "key": key}}),
        ))
        .await;
    let script = r#"
import socket, sys
from cryptography.fernet import Fernet
f = Fernet(sys.argv[2].encode())
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
r = s.makefile("rb")
s.sendall(f.encrypt(b"meet at noon") + b"\n")
print(f.decrypt(r.readline().strip()).decode())
s.sendall(b"not a token\n")
print(r.readline().decode().strip())
"#;
    let out = python(script, &[&port_of(&server).to_string(), &key]).await;
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["meet at noon", "ERROR invalid token"]
    );
    c.wait_until("both lines handled", |ev| {
        ev.iter()
            .any(|e| e.endpoint == server.id && e.kind.name() == "error")
    })
    .await;
    assert_eq!(plaintexts(&c.events, server.id, true), ["meet at noon"]);
    // The wire carried only the token, never the plaintext.
    let wire = String::from_utf8_lossy(&received(&c.events, server.id, None)).into_owned();
    assert!(wire.starts_with("gAAAAA") && !wire.contains("meet at noon"));
}

#[tokio::test]
async fn bridge_fernet_client_talks_to_a_python_fernet_server_and_tampering_is_caught() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let key = new_key(&mut c).await;
    let script = r#"
import socket, sys
from cryptography.fernet import Fernet, InvalidToken
f = Fernet(sys.argv[1].encode())
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
print(l.getsockname()[1], flush=True)
l.settimeout(10)
c, _ = l.accept()
r = c.makefile("rb")
for _ in range(2):
    token = r.readline().strip()
    try:
        text = f.decrypt(token)
        c.sendall(f.encrypt(text.upper()) + b"\n")
        print("ok", text.decode(), flush=True)
    except InvalidToken:
        c.sendall(b"ERROR invalid token\n")
        print("rejected", flush=True)
c.close()
"#;
    let mut server = tokio::process::Command::new("python3")
        .args(["-c", script, &key])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let port = next_line(&mut lines).await;
    let client = c
        .endpoint(cmd(
            json!({"op": "tcp_client_connect", "port": port.parse::<u16>().unwrap(),
            "fernet_key": key}),
        ))
        .await;
    c.ok(send_text(client.id, None, "hello python")).await;
    c.wait_until("decrypted reply", |ev| {
        plaintexts(ev, client.id, true) == ["HELLO PYTHON"]
    })
    .await;
    assert_eq!(plaintexts(&c.events, client.id, false), ["hello python"]);
    assert_eq!(next_line(&mut lines).await, "ok hello python");
    c.ok(cmd(
        json!({"op": "send", "endpoint": client.id, "data": {"text": "pay 100"}, "tamper": true}),
    ))
    .await;
    assert_eq!(
        next_line(&mut lines).await,
        "rejected",
        "Python's Fernet rejects the flipped byte"
    );
    c.wait_until("the rejection", |ev| {
        String::from_utf8_lossy(&received(ev, client.id, None)).contains("ERROR invalid token")
    })
    .await;
}

#[tokio::test]
async fn only_clients_that_know_the_secret_are_served() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let server = c
        .endpoint(cmd(
            json!({"op": "tcp_server_start", "port": 0, "concurrency": "concurrent",
            "policy": {"kind": "persistent"}, "behaviour": {"kind": "uppercase"},
            "secret": "correct horse"}),
        ))
        .await;
    let port = port_of(&server);
    let script = r#"
import hmac, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
r = s.makefile("rb")
nonce = r.readline().decode().split()[1]
s.sendall(hmac.new(sys.argv[2].encode(), nonce.encode(), "sha256").hexdigest().encode() + b"\n")
verdict = r.readline().decode().strip()
print(verdict)
if verdict == "OK":
    s.sendall(b"let me in")
    print(s.recv(1024).decode())
else:
    print(repr(s.recv(1024)))
"#;
    let out = python(script, &[&port.to_string(), "correct horse"]).await;
    assert_eq!(out.lines().collect::<Vec<_>>(), ["OK", "LET ME IN"]);
    let out = python(script, &[&port.to_string(), "wrong guess"]).await;
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["DENIED", "b''"],
        "refused and closed"
    );

    // A bridge client with the secret answers by itself; one with another secret is refused.
    let good = c
        .endpoint(cmd(
            json!({"op": "tcp_client_connect", "port": port, "secret": "correct horse"}),
        ))
        .await;
    c.wait_for("accepted", |e| {
        e.endpoint == good.id
            && e.kind
                == EventKind::Auth {
                    ok: true,
                    detail: "the server accepted the answer to its challenge".into(),
                }
    })
    .await;
    let bad = c
        .endpoint(cmd(
            json!({"op": "tcp_client_connect", "port": port, "secret": "nope"}),
        ))
        .await;
    c.wait_for("refused", |e| {
        e.endpoint == bad.id && matches!(e.kind, EventKind::Auth { ok: false, .. })
    })
    .await;
    c.wait_for("closed", |e| e.endpoint == bad.id && is_close(e))
        .await;
    let failures = c
        .events
        .iter()
        .filter(|e| e.endpoint == server.id && matches!(e.kind, EventKind::Auth { ok: false, .. }))
        .count();
    assert_eq!(failures, 2, "the server saw both wrong answers");
    // The secret itself never crossed the network.
    for e in &c.events {
        if let Some(data) = e.kind.data() {
            assert!(!String::from_utf8_lossy(&data.bytes().unwrap()).contains("correct horse"));
        }
    }
}

#[tokio::test]
async fn encrypted_chat_the_server_only_relays_tokens() {
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let key = new_key(&mut c).await;
    let server = c
        .endpoint(cmd(
            json!({"op": "tcp_server_start", "port": 0, "behaviour": {"kind": "chat"}}),
        ))
        .await;
    let port = port_of(&server);
    let alice = c
        .endpoint(cmd(
            json!({"op": "tcp_client_connect", "port": port, "fernet_key": key}),
        ))
        .await;
    let bob = c
        .endpoint(cmd(
            json!({"op": "tcp_client_connect", "port": port, "fernet_key": key}),
        ))
        .await;
    for (who, name) in [(alice.id, "alice"), (bob.id, "bob")] {
        c.ok(send_text(who, None, &format!("/nick {name}\n"))).await;
        c.wait_until("named", |ev| {
            String::from_utf8_lossy(&received(ev, who, None)).contains(&format!("* you are {name}"))
        })
        .await;
    }
    c.ok(send_text(alice.id, None, "the eagle has landed"))
        .await;
    c.wait_until("bob decrypts", |ev| {
        plaintexts(ev, bob.id, true) == ["the eagle has landed"]
    })
    .await;
    let relayed = String::from_utf8_lossy(&received(&c.events, server.id, None)).into_owned();
    assert!(
        !relayed.contains("eagle"),
        "the chat server saw only ciphertext: {relayed}"
    );
}
