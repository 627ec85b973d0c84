//! The Python code mirror: each generated program runs with python3 against the bridge (or the
//! bridge against it), and behaves like the endpoint it mirrors: the same replies to the same
//! messages, closing at the same moment.

mod common;

use std::process::Stdio;

use common::*;
use serde_json::json;
use shared::{EndpointSpec, EventKind, ReplyData};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// A generated program running in `dir`, with its output lines.
struct Program {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Program {
    async fn start(spec: &EndpointSpec, dir: &std::path::Path) -> Program {
        let path = dir.join(bridge::python_file_name(spec));
        std::fs::write(&path, bridge::python_program(spec)).unwrap();
        let mut child = tokio::process::Command::new("python3")
            .arg("-u")
            .arg(&path)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Program { child, lines }
    }

    /// Reads lines until one starts with `prefix`.
    async fn line_starting(&mut self, prefix: &str) -> String {
        loop {
            let line = next_line(&mut self.lines).await;
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    async fn port(&mut self) -> u16 {
        let line = self.line_starting("ready ").await;
        line["ready ".len()..].trim().parse().unwrap()
    }
}

fn server(fields: serde_json::Value) -> shared::TcpServerSpec {
    let mut spec = json!({"port": 0});
    spec.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    serde_json::from_value(spec).unwrap()
}

/// Talks to a server at `port` from a bridge client: each message, then the reply (or the
/// server closing); returns what came back and whether the server closed.
async fn converse(c: &mut Client, port: u16, messages: &[&str]) -> (Vec<u8>, bool) {
    let client = c
        .endpoint(cmd(json!({"op": "tcp_client_connect", "port": port})))
        .await;
    let closed = |ev: &[shared::Event]| ev.iter().any(|e| e.endpoint == client.id && is_close(e));
    for message in messages {
        let before = received(&c.events, client.id, None).len();
        if closed(&c.events) {
            break;
        }
        c.ok(send_text(client.id, None, message)).await;
        c.wait_until("a reply or the close", |ev| {
            received(ev, client.id, None).len() > before || closed(ev)
        })
        .await;
    }
    // The reply and the server's FIN arrive one after the other: give the close a moment
    // (bounded) before deciding that the server keeps the connection open.
    let settle = std::time::Instant::now() + std::time::Duration::from_millis(1000);
    while !closed(&c.events) && std::time::Instant::now() < settle {
        let left = settle.saturating_duration_since(std::time::Instant::now());
        let _ = tokio::time::timeout(left, c.next_message()).await;
    }
    let by_server = closed(&c.events);
    if !by_server {
        c.ok(cmd(json!({"op": "close", "endpoint": client.id})))
            .await;
    }
    (received(&c.events, client.id, None), by_server)
}

#[tokio::test]
async fn generated_servers_answer_like_the_bridge_servers_they_mirror() {
    let dir = TempDir::new("mirror");
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    let cases: Vec<(serde_json::Value, Vec<&str>)> = vec![
        (
            json!({"behaviour": {"kind": "uppercase"}}),
            vec!["hello world"],
        ),
        (
            json!({"behaviour": {"kind": "fixed", "reply": "Thanks for connecting"}, "backlog": 5}),
            vec!["Hai from client"],
        ),
        (
            json!({"behaviour": {"kind": "echo"}, "policy": {"kind": "persistent", "quit_word": "exit"}}),
            vec!["one", "two", "exit"],
        ),
        (
            json!({"behaviour": {"kind": "prefix", "prefix": "ACK: "}, "policy": {"kind": "persistent"},
            "concurrency": "concurrent"}),
            vec!["first", "second"],
        ),
    ];
    for (fields, messages) in cases {
        let spec = server(fields.clone());
        let mirrored = c
            .endpoint(shared::Command::TcpServerStart(spec.clone()))
            .await;
        let mut program = Program::start(&EndpointSpec::TcpServer(spec), &dir.0).await;
        let python_port = program.port().await;
        let from_bridge = converse(&mut c, port_of(&mirrored), &messages).await;
        let from_python = converse(&mut c, python_port, &messages).await;
        assert_eq!(
            (String::from_utf8_lossy(&from_python.0), from_python.1),
            (String::from_utf8_lossy(&from_bridge.0), from_bridge.1),
            "{fields}"
        );
        c.ok(cmd(json!({"op": "close", "endpoint": mirrored.id})))
            .await;
    }
}

#[tokio::test]
async fn generated_servers_with_logs_secrets_files_and_encryption() {
    let dir = TempDir::new("mirror-extra");
    let data = TempDir::new("mirror-data");
    let bridge = Bridge::start_with(|c| c.data_dir = data.0.clone()).await;
    let mut c = bridge.client().await;

    // A logging, secret-guarded uppercase server: a bridge client with the secret is served.
    let spec = server(
        json!({"behaviour": {"kind": "uppercase"}, "policy": {"kind": "persistent"},
        "secret": "open sesame", "log_file": "log.txt"}),
    );
    let mut program = Program::start(&EndpointSpec::TcpServer(spec), &dir.0).await;
    let port = program.port().await;
    let client = c
        .endpoint(cmd(
            json!({"op": "tcp_client_connect", "port": port, "secret": "open sesame"}),
        ))
        .await;
    c.wait_for("accepted", |e| {
        e.endpoint == client.id && matches!(e.kind, EventKind::Auth { ok: true, .. })
    })
    .await;
    c.ok(send_text(client.id, None, "log me")).await;
    c.wait_until("reply", |ev| {
        String::from_utf8_lossy(&received(ev, client.id, None)).contains("LOG ME")
    })
    .await;
    let log = std::fs::read_to_string(dir.0.join("log.txt")).unwrap();
    assert!(
        log.trim_end()
            .ends_with(&format!("{} log me", client.local.unwrap())),
        "{log}"
    );

    // A save-to-file server receives a bridge client's file with the same SHA-256.
    let spec = server(json!({"behaviour": {"kind": "save_to_file", "file": "got.bin"}}));
    let mut program = Program::start(&EndpointSpec::TcpServer(spec), &dir.0).await;
    let port = program.port().await;
    write_pattern(&data.0.join("lab.bin"), 500_000);
    let client = c
        .endpoint(cmd(json!({"op": "tcp_client_connect", "port": port})))
        .await;
    let sent = c
        .transfer(cmd(
            json!({"op": "send_file", "endpoint": client.id, "file": "lab.bin"}),
        ))
        .await;
    let saved = program.line_starting("Saved ").await;
    assert!(
        saved.starts_with("Saved 500000 bytes") && saved.ends_with(&sent.sha256),
        "{saved}"
    );

    // A Fernet echo server talks to a bridge Fernet client.
    let ReplyData::Key { key } = c.ok(cmd(json!({"op": "fernet_key"}))).await else {
        panic!("a key")
    };
    let spec = server(
        json!({"behaviour": {"kind": "fernet_echo", "key": key}, "policy": {"kind": "persistent"}}),
    );
    let mut program = Program::start(&EndpointSpec::TcpServer(spec), &dir.0).await;
    let port = program.port().await;
    let client = c
        .endpoint(cmd(
            json!({"op": "tcp_client_connect", "port": port, "fernet_key": key}),
        ))
        .await;
    c.ok(send_text(client.id, None, "attack at dawn")).await;
    c.wait_for("decrypted echo", |e| {
        e.endpoint == client.id
            && matches!(&e.kind, EventKind::Decrypted { plaintext } if plaintext.preview == "attack at dawn")
    })
    .await;

    // The chat server relays between two bridge clients.
    let spec = server(json!({"behaviour": {"kind": "chat"}}));
    let mut program = Program::start(&EndpointSpec::TcpServer(spec), &dir.0).await;
    let port = program.port().await;
    let ada = c
        .endpoint(cmd(json!({"op": "tcp_client_connect", "port": port})))
        .await;
    let bob = c
        .endpoint(cmd(json!({"op": "tcp_client_connect", "port": port})))
        .await;
    for (id, name) in [(ada.id, "ada"), (bob.id, "bob")] {
        c.ok(send_text(id, None, &format!("{name}\n"))).await;
        c.wait_until("named", |ev| {
            String::from_utf8_lossy(&received(ev, id, None)).contains("* you are")
        })
        .await;
    }
    c.ok(send_text(ada.id, None, "hi bob\n")).await;
    c.wait_until("relayed", |ev| {
        String::from_utf8_lossy(&received(ev, bob.id, None)).contains("ada: hi bob")
    })
    .await;
}

#[tokio::test]
async fn generated_udp_programs_and_clients() {
    let dir = TempDir::new("mirror-udp");
    let bridge = Bridge::start().await;
    let mut c = bridge.client().await;
    // A generated UDP echo server answers a bridge UDP client.
    let spec: shared::UdpServerSpec = serde_json::from_value(json!({"port": 0})).unwrap();
    let mut program = Program::start(&EndpointSpec::UdpServer(spec), &dir.0).await;
    let port = program.port().await;
    let client = c
        .endpoint(cmd(json!({"op": "udp_client_open", "port": port})))
        .await;
    c.ok(send_text(client.id, None, "ping")).await;
    c.wait_until("echo", |ev| received(ev, client.id, None) == b"ping")
        .await;

    // Generated clients talk to bridge servers, reading their messages from the keyboard.
    let server = c
        .endpoint(cmd(
            json!({"op": "tcp_server_start", "port": 0, "behaviour": {"kind": "uppercase"},
            "policy": {"kind": "persistent"}, "secret": "s3cret"}),
        ))
        .await;
    let spec: shared::TcpClientSpec =
        serde_json::from_value(json!({"port": port_of(&server), "secret": "s3cret"})).unwrap();
    let mut program = Program::start(&EndpointSpec::TcpClient(spec), &dir.0).await;
    let stdin = program.child.stdin.as_mut().unwrap();
    stdin.write_all(b"hello\nworld\n\n").await.unwrap();
    assert_eq!(
        program.line_starting("Server says:").await,
        "Server says: OK"
    );
    assert!(program
        .line_starting("Message")
        .await
        .ends_with("From server: HELLO"));

    let udp_server = c
        .endpoint(cmd(json!({"op": "udp_server_start", "port": 0})))
        .await;
    for (port, connect, expected) in [
        (port_of(&udp_server), false, "From server: ping"),
        (
            free_udp_port(),
            true,
            "Nothing is listening there (port unreachable)",
        ),
    ] {
        let spec: shared::UdpClientSpec = serde_json::from_value(
            json!({"port": port, "connect": connect, "recv_timeout_ms": 2000}),
        )
        .unwrap();
        let mut program = Program::start(&EndpointSpec::UdpClient(spec), &dir.0).await;
        program
            .child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(b"ping\n\n")
            .await
            .unwrap();
        let line = program.line_starting("Message").await;
        assert!(line.ends_with(expected), "{line}");
    }
}

/// Every combination a spec can turn on renders a program that Python parses (the templates'
/// `if`s cannot leave a block half open or an indentation wrong).
#[tokio::test]
async fn every_kind_of_spec_renders_python_that_parses() {
    let behaviours = [
        json!({"kind": "print_only"}),
        json!({"kind": "echo"}),
        json!({"kind": "uppercase"}),
        json!({"kind": "prefix", "prefix": "ACK: "}),
        json!({"kind": "fixed", "reply": "Thanks for connecting\n"}),
        json!({"kind": "manual"}),
        json!({"kind": "save_to_file", "file": "got.bin"}),
        json!({"kind": "discard"}),
        json!({"kind": "chat"}),
        json!({"kind": "fernet_echo", "key": "uSXH0cQh_5_x-VNPhNYD7ZfFxb4bCbTrD9q5kNp6BxI="}),
    ];
    let mut specs = Vec::new();
    for behaviour in &behaviours {
        for (secret, log, policy) in [
            (None, None, json!({"kind": "one_shot"})),
            (
                Some("s3cret"),
                Some("log.txt"),
                json!({"kind": "persistent", "quit_word": "exit"}),
            ),
        ] {
            for concurrency in ["one_at_a_time", "concurrent"] {
                specs.push(
                    json!({"type": "tcp_server", "port": 12000, "behaviour": behaviour,
                    "secret": secret, "log_file": log, "policy": policy,
                    "concurrency": concurrency}),
                );
            }
            specs.push(
                json!({"type": "udp_server", "port": 0, "behaviour": behaviour,
                "log_file": log}),
            );
        }
    }
    for (secret, key) in [(None, None), (Some("s3cret"), Some("k"))] {
        specs.push(
            json!({"type": "tcp_client", "host": "localhost", "port": 12000,
            "secret": secret, "fernet_key": key}),
        );
    }
    for connect in [false, true] {
        specs.push(json!({"type": "udp_client", "port": 12000, "connect": connect}));
    }
    let programs: Vec<String> = specs
        .iter()
        .map(|spec| {
            let spec: EndpointSpec = serde_json::from_value(spec.clone()).expect("a spec");
            bridge::python_program(&spec)
        })
        .collect();
    let checker = "import ast, json, sys\nfor code in json.load(sys.stdin):\n    ast.parse(code)\nprint('ok')\n";
    let mut child = tokio::process::Command::new("python3")
        .args(["-c", checker])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(serde_json::to_string(&programs).unwrap().as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("python3 in time")
        .unwrap();
    assert!(
        out.status.success(),
        "a program does not parse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}
