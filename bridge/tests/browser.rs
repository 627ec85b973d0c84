//! The real page in Debian's Chromium, driven through chromedriver (WebDriver), against a real
//! bridge serving the release build: what a student does, checked on screen.
//!
//! `cargo xtask test` builds the page and sets SOCKET_PLAYGROUND_DIST; without it these tests
//! say so and pass without running (a plain `cargo test` has no browser build).

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const DIST: &str = "SOCKET_PLAYGROUND_DIST";

fn dist() -> Option<PathBuf> {
    match std::env::var(DIST) {
        Ok(dir) => {
            let dir = PathBuf::from(dir);
            assert!(
                dir.join("index.html").is_file(),
                "{DIST} has no index.html: {}",
                dir.display()
            );
            Some(dir)
        }
        Err(_) => {
            eprintln!("browser tests skipped: run `cargo xtask test` (it builds the page and sets {DIST})");
            None
        }
    }
}

/// Chromium under chromedriver, closed when dropped.
struct Browser {
    client: Client,
    _driver: tokio::process::Child,
    profile: PathBuf,
}

impl Browser {
    async fn start() -> Browser {
        let port = free_tcp_port();
        let mut driver = tokio::process::Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver runs (cargo xtask test installs it)");
        let mut out = tokio::io::BufReader::new(driver.stdout.take().unwrap()).lines();
        tokio::time::timeout(WAIT, async {
            while let Some(line) = out.next_line().await.unwrap() {
                if line.contains("started successfully") {
                    return;
                }
            }
            panic!("chromedriver ended before it was ready");
        })
        .await
        .expect("chromedriver ready in time");
        let profile =
            std::env::temp_dir().join(format!("sp-chromium-{}-{port}", std::process::id()));
        let caps = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1500,950",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        });
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps.as_object().unwrap().clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session");
        Browser {
            client,
            _driver: driver,
            profile,
        }
    }

    /// Opens the URL the bridge prints, token in the fragment.
    async fn open(&self, bridge: &Bridge) {
        let url = format!("http://{}/#token={TOKEN}", bridge.addr);
        self.client.goto(&url).await.unwrap();
    }

    /// Waits until some element matching `css` has text containing `needle`; returns that text.
    async fn wait_text(&self, css: &str, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            seen.clear();
            for element in self
                .client
                .find_all(Locator::Css(css))
                .await
                .unwrap_or_default()
            {
                if let Ok(text) = element.text().await {
                    if text.contains(needle) {
                        return text;
                    }
                    seen.push(text);
                }
            }
            if tokio::time::Instant::now() > deadline {
                self.screenshot("failure").await;
                panic!("no '{css}' containing {needle:?}; saw {seen:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, css: &str) {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn type_into(&self, css: &str, text: &str) {
        let input = self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap();
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    /// Saves a screenshot under artifacts/ (for people to look at) and returns its path.
    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    async fn close(self) {
        let _ = self.client.close().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

#[tokio::test]
async fn uppercase_preset_hello_in_the_page() {
    let Some(dist) = dist() else { return };
    let bridge = Bridge::start_with(|c| c.static_dir = Some(dist)).await;
    let browser = Browser::start().await;
    browser.open(&bridge).await;
    browser.wait_text("#bridge-status", "connected").await;
    // The token left the address bar (and is kept for the tab).
    let hash = browser
        .client
        .execute("return location.hash", vec![])
        .await
        .unwrap();
    assert_eq!(hash, json!(""));

    browser.click(".labs summary").await;
    browser.click("button[data-preset='0']").await;
    browser
        .wait_text(".endpoint-list .label", "TCP server :12000")
        .await;
    browser.wait_text(".conv-title", "TCP client").await;
    browser.type_into("#composer-input", "hello\u{E007}").await;
    let reply = browser.wait_text(".msg.received .text", "HELLO").await;
    assert_eq!(reply, "\"HELLO\"");
    browser.wait_text(".msg.sent .text", "hello").await;
    browser
        .wait_text(".conversation-view .line", "closed")
        .await;
    for kind in ["accept", "recv", "send", "close"] {
        browser
            .wait_text(&format!(".row[data-kind='{kind}']"), "")
            .await;
    }
    let shot = browser.screenshot("playground").await;
    assert!(
        std::fs::metadata(shot).unwrap().len() > 10_000,
        "a real picture"
    );
    browser.close().await;
}

#[tokio::test]
async fn python_client_shows_up_in_the_page() {
    let Some(dist) = dist() else { return };
    let bridge = Bridge::start_with(|c| c.static_dir = Some(dist)).await;
    let browser = Browser::start().await;
    browser.open(&bridge).await;
    browser.wait_text("#bridge-status", "connected").await;
    // A server from the form: any free port, kept open until the client closes.
    browser.type_into("#new-port", "0").await;
    browser
        .client
        .find(Locator::Css("#new-policy option[value='persistent']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.click(".new-endpoint button[type=submit]").await;
    let label = browser
        .wait_text(".endpoint-list .label", "TCP server :")
        .await;
    let port = label.rsplit(':').next().unwrap().trim().to_string();
    assert_ne!(port, "0", "the real port is shown");

    let script = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print(s.getsockname()[1], flush=True)
s.sendall(b"from python")
print(s.recv(1024).decode(), flush=True)
sys.stdin.readline()
s.close()
"#;
    let mut python = tokio::process::Command::new("python3")
        .args(["-c", script, &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(python.stdout.take().unwrap()).lines();
    let python_port = next_line(&mut lines).await;
    assert_eq!(next_line(&mut lines).await, "from python", "echoed back");
    // The page shows the accepted connection under the server, and what it sent.
    browser
        .wait_text(
            ".endpoint-list .conn .label",
            &format!("127.0.0.1:{python_port}"),
        )
        .await;
    browser
        .wait_text(".row[data-kind='recv']", "from python")
        .await;
    python.stdin.take().unwrap().write_all(b"\n").await.unwrap();
    assert!(tokio::time::timeout(WAIT, python.wait())
        .await
        .unwrap()
        .unwrap()
        .success());
    browser
        .wait_text(".row[data-kind='close']", "the other side closed")
        .await;
    browser.close().await;
}

async fn next_line(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> String {
    tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("a line in time")
        .unwrap()
        .expect("a line before the end")
}

#[tokio::test]
async fn page_says_when_the_bridge_is_gone_and_recovers() {
    let Some(dist) = dist() else { return };
    let bridge = Bridge::start_with(|c| c.static_dir = Some(dist.clone())).await;
    let addr = bridge.addr;
    let browser = Browser::start().await;
    browser.open(&bridge).await;
    browser.wait_text("#bridge-status", "connected").await;
    bridge.shutdown().await;
    browser.wait_text("#bridge-status", "reconnecting").await;
    browser.screenshot("bridge-gone").await;
    let again = Bridge::start_at(addr, |c| c.static_dir = Some(dist)).await;
    browser
        .wait_text("#bridge-status", "bridge: connected")
        .await;
    // The new bridge's (empty) state is shown.
    browser
        .wait_text(".endpoint-list", "Nothing runs yet")
        .await;
    drop(again);
    browser.close().await;
}
