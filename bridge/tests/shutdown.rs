//! The real `bridge` binary: it prints the URL with the token in the fragment, never logs the
//! token, and on Ctrl-C (SIGINT) closes every socket and exits cleanly.

mod common;

use std::process::Stdio;

use common::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

#[tokio::test]
async fn ctrl_c_closes_every_socket_and_exits_cleanly() {
    let mut child = tokio::process::Command::new(common::bridge_binary())
        .args(["--listen", "127.0.0.1:0", "--token", TOKEN])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = tokio::time::timeout(WAIT, stdout.next_line())
            .await
            .expect("the URL in time")
            .unwrap()
            .expect("a URL line before stdout ends");
        if let Some(url) = line.strip_prefix("URL: ") {
            break url.to_string();
        }
    };
    let (base, fragment) = url.split_once("/#").unwrap();
    assert_eq!(
        fragment,
        format!("token={TOKEN}"),
        "the token rides in the fragment only"
    );
    let addr: std::net::SocketAddr = base.strip_prefix("http://").unwrap().parse().unwrap();
    assert!(addr.ip().is_loopback(), "listens on loopback by default");

    // Start a server and connect a plain TCP peer to it.
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let mut c = Client::hello(ws, TOKEN).await.expect("welcome");
    let server = c
        .endpoint(cmd(
            json!({"op": "tcp_server_start", "port": 0, "policy": {"kind": "persistent"}}),
        ))
        .await;
    let port = port_of(&server);
    let mut peer = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    c.wait_for("accepted", |e| {
        e.endpoint == server.id && e.kind == shared::EventKind::Accept
    })
    .await;

    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("exits in time")
        .unwrap();
    assert!(exit.success(), "clean exit, got {exit:?}");

    // The peer's connection was closed, and the port is free.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, peer.read_to_end(&mut rest))
        .await
        .expect("EOF in time");
    assert!(read.is_ok() && rest.is_empty());
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
    // The session was told, and the token never reached the log.
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .await
        .unwrap();
    assert!(log.contains("every socket closed"), "{log}");
    assert!(!log.contains(TOKEN), "the token must not be logged");
}
