//! Chromium under chromedriver (WebDriver), for the browser tests and the page benchmarks.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::io::AsyncBufReadExt;

use super::{free_tcp_port, Bridge, TOKEN, WAIT};

pub const DIST: &str = "SOCKET_PLAYGROUND_DIST";

pub fn dist() -> Option<PathBuf> {
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

/// The lab presets listen on fixed ports (12000, 12005, ...), so the tests that apply them take
/// turns: hold this from before the bridge starts until after it has shut down.
static FIXED_PORTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn fixed_ports() -> tokio::sync::MutexGuard<'static, ()> {
    FIXED_PORTS.lock().await
}

/// Chromium under chromedriver, closed when dropped.
pub struct Browser {
    pub client: Client,
    _driver: tokio::process::Child,
    /// chromedriver's port on 127.0.0.1.
    driver_port: u16,
    profile: PathBuf,
}

impl Browser {
    pub async fn start() -> Browser {
        Self::start_in(None).await
    }

    /// A browser that saves downloads into `downloads`.
    pub async fn start_in(downloads: Option<&std::path::Path>) -> Browser {
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
        let prefs = json!({
            "download.default_directory": downloads.map(|d| d.display().to_string()),
            "download.prompt_for_download": false,
        });
        let caps = json!({
            "goog:chromeOptions": {
                "prefs": prefs,
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
            driver_port: port,
            profile,
        }
    }

    /// Makes the page's CPU `rate` times slower (DevTools' `Emulation.setCPUThrottlingRate`,
    /// sent through chromedriver's `goog/cdp/execute`), as on a busy laptop: what depends on
    /// how long the page takes to draw shows on any machine, not only on a loaded one. A plain
    /// HTTP request: fantoccini has no call for chromedriver's DevTools endpoint.
    pub async fn throttle_cpu(&self, rate: u32) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let session = self.client.session_id().await.unwrap().unwrap();
        let body =
            json!({"cmd": "Emulation.setCPUThrottlingRate", "params": {"rate": rate}}).to_string();
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.driver_port))
            .await
            .unwrap();
        let request = format!(
            "POST /session/{session}/goog/cdp/execute HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        // Its status line is the answer (chromedriver keeps the connection open).
        let mut answer = vec![0u8; 12];
        tokio::time::timeout(WAIT, stream.read_exact(&mut answer))
            .await
            .expect("chromedriver answers in time")
            .unwrap();
        assert_eq!(answer, b"HTTP/1.1 200", "chromedriver ran the command");
    }

    /// Opens the page and waits until it is connected to the bridge.
    pub async fn open_connected(&self, bridge: &Bridge) {
        self.open(bridge).await;
        self.wait_text("#bridge-status", "connected").await;
    }

    /// Applies the lab preset with this id (`frontend/src/labs.rs`) from the Labs menu.
    pub async fn preset(&self, id: &str) {
        self.click(".labs summary").await;
        self.click(&format!("button[data-preset='{id}']")).await;
    }

    /// The uppercase preset with the playground's client connected to it (the lab card
    /// offers it after the student's own, since the server serves one client at a time).
    pub async fn uppercase_with_client(&self) {
        self.preset("uppercase").await;
        self.click("#lab-client").await;
        self.wait_text(".endpoint-list .label", "TCP client").await;
    }

    /// Opens the URL the bridge prints, token in the fragment.
    pub async fn open(&self, bridge: &Bridge) {
        let url = format!("http://{}/#token={TOKEN}", bridge.addr);
        self.client.goto(&url).await.unwrap();
    }

    /// What `expr` (JavaScript giving an array of strings, such as a map over elements) gives
    /// now: the order of rows or items as the page draws them.
    pub async fn strings(&self, expr: &str) -> Vec<String> {
        self.client
            .execute(&format!("return {expr}"), vec![])
            .await
            .unwrap()
            .as_array()
            .expect("an array")
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Waits until some element matching `css` has text containing `needle`; returns that text.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        self.wait_text_within(css, needle, WAIT).await
    }

    /// [`Browser::wait_text`], for what may take longer than [`WAIT`] on a busy machine.
    pub async fn wait_text_within(&self, css: &str, needle: &str, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
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

    /// How many elements match `css` now.
    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map_or(0, |found| found.len())
    }

    /// Waits until no element matches `css` (what the page stopped showing).
    pub async fn wait_gone(&self, css: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let found = self
                .client
                .find_all(Locator::Css(css))
                .await
                .unwrap_or_default();
            if found.is_empty() {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                self.screenshot("failure").await;
                panic!("'{css}' is still shown");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Makes the page's own area `width` x `height` CSS pixels (the window is larger by
    /// whatever the browser draws around the page).
    pub async fn viewport(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
        let around = self
            .client
            .execute(
                "return [outerWidth - innerWidth, outerHeight - innerHeight]",
                vec![],
            )
            .await
            .unwrap();
        let extra = |i: usize| around[i].as_u64().unwrap_or(0) as u32;
        self.client
            .set_window_size(width + extra(0), height + extra(1))
            .await
            .unwrap();
    }

    pub async fn click(&self, css: &str) {
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

    pub async fn type_into(&self, css: &str, text: &str) {
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
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
