//! The Windows build (issue 21), run here under Debian's wine: `cargo xtask test` cross-compiles
//! `bridge.exe` with MinGW-w64 and names it in SOCKET_PLAYGROUND_WINDOWS_BRIDGE. The test
//! starts it on loopback, as a student would on Windows, and drives it over its WebSocket: an
//! echo server answers a real peer from this test, and every call is an event. Without the
//! variable (a plain `cargo test`) it says so and passes without running.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use shared::{Behaviour, Command, EventKind, TcpServerSpec};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

const WINDOWS_BRIDGE: &str = "SOCKET_PLAYGROUND_WINDOWS_BRIDGE";

/// wine's first start makes its prefix (a minute or so on 2 cores).
const FIRST_START: Duration = Duration::from_secs(180);

/// Debian's wine64 (the `wine64` package puts it outside PATH).
fn wine() -> Option<PathBuf> {
    ["/usr/lib/wine/wine64", "/usr/bin/wine64", "/usr/bin/wine"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_windows_bridge_runs_an_echo_server_under_wine() {
    let Some(exe) = std::env::var_os(WINDOWS_BRIDGE).map(PathBuf::from) else {
        eprintln!(
            "skipped: run `cargo xtask test` (it builds bridge.exe and sets {WINDOWS_BRIDGE})"
        );
        return;
    };
    let wine = wine().expect("cargo xtask test installs Debian's wine64");
    let home = TempDir::new("wine");
    // bridge.exe alone in a folder, with wine's missing piece of Windows beside it (see the
    // fixture's header).
    let alone = home.0.join("bridge.exe");
    std::fs::copy(&exe, &alone).expect("bridge.exe is there");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/wine/bcryptprimitives.c");
    let built = std::process::Command::new("x86_64-w64-mingw32-gcc")
        .args(["-shared", "-O2", "-o"])
        .arg(home.0.join("bcryptprimitives.dll"))
        .arg(&fixture)
        .arg("-ladvapi32")
        .status()
        .expect("cargo xtask test installs MinGW-w64");
    assert!(built.success(), "the ProcessPrng stand-in compiles");
    let mut child = tokio::process::Command::new(wine)
        .arg(&alone)
        .current_dir(&home.0)
        .args(["--listen", "127.0.0.1:0", "--token", TOKEN, "--no-capture"])
        .arg("--data-dir")
        .arg(home.0.join("data"))
        .env("WINEPREFIX", home.0.join("prefix"))
        .env("WINEDEBUG", "-all")
        .env_remove("DISPLAY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("wine starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(FIRST_START, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.trim_end().strip_prefix("URL: http://") {
                return url.to_string();
            }
        }
        panic!("bridge.exe ended before printing its URL");
    })
    .await
    .expect("bridge.exe prints its URL under wine in time");
    let addr = url.split_once("/#token=").expect("a token").0;
    let bridge = Bridge::elsewhere(addr.parse().unwrap());

    // The page is inside the Windows binary too.
    let mut http = tokio::net::TcpStream::connect(bridge.addr).await.unwrap();
    http.write_all(
        format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut page = String::new();
    tokio::time::timeout(WAIT, http.read_to_string(&mut page))
        .await
        .expect("the page in time")
        .unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("Socket Playground"), "{page}");

    let mut c = bridge.client().await;
    let server = c
        .endpoint(Command::TcpServerStart(TcpServerSpec {
            behaviour: Behaviour::Echo,
            ..Default::default()
        }))
        .await;
    let port = port_of(&server);
    let mut peer = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the Windows bridge's server accepts");
    peer.write_all(b"hello from linux").await.unwrap();
    let mut back = [0u8; 16];
    tokio::time::timeout(WAIT, peer.read_exact(&mut back))
        .await
        .expect("the echo in time")
        .unwrap();
    assert_eq!(&back, b"hello from linux");
    // Every call is an event, as on Linux.
    let recv = c
        .wait_for("the server's recv", |e| {
            e.endpoint == server.id && matches!(e.kind, EventKind::Recv { .. })
        })
        .await;
    assert_eq!(text(&recv), "hello from linux");
    c.wait_for("the server's send", |e| {
        e.endpoint == server.id && matches!(e.kind, EventKind::Send { .. })
    })
    .await;
    // Windows' own error numbers (WSAECONNREFUSED, 10061) are the same kinds, in the same
    // words.
    let closed = free_tcp_port();
    let refused = c
        .err(Command::TcpClientConnect(shared::TcpClientSpec::to(
            "127.0.0.1",
            closed,
        )))
        .await;
    assert_eq!(
        refused.kind,
        shared::ErrorKind::ConnectionRefused,
        "{refused:?}"
    );
    assert!(
        refused
            .explanation
            .contains(&format!("nothing is listening on 127.0.0.1:{closed}")),
        "{}",
        refused.explanation
    );
    let welcome_capture = c
        .events
        .iter()
        .any(|e| matches!(e.kind, EventKind::Packet(_)));
    assert!(!welcome_capture, "no packets are captured on Windows");
    let _ = child.kill().await;
}
