//! Test harness: a real bridge on 127.0.0.1:0 in this process, a real WebSocket client that
//! speaks the protocol, and helpers to run real python3 peers. Every wait is bounded.

#![allow(dead_code)]

pub mod browser;
pub mod hostile;
pub mod https;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use shared::{
    ClientMessage, Command, EndpointInfo, ErrorInfo, Event, EventKind, Hello, Outcome, ReplyData,
    Request, ServerMessage, Welcome, PROTOCOL_VERSION,
};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait in a test may take. Generous: CI runs the browser tests beside
/// the gigabyte ones on two cores, and a test that passes never waits it out (every wait
/// ends when its condition holds).
pub const WAIT: Duration = Duration::from_secs(20);

pub const TOKEN: &str = "test-token-0123456789abcdef";

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A bridge running in this test, stopped when dropped.
pub struct Bridge {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Bridge {
    pub async fn start() -> Bridge {
        Self::start_with(|_| {}).await
    }

    /// Starts a bridge with the default config changed by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut bridge::Config)) -> Bridge {
        Self::start_at("127.0.0.1:0".parse().unwrap(), tweak).await
    }

    /// Starts a bridge on a given address (to restart one where it was).
    pub async fn start_at(addr: SocketAddr, tweak: impl FnOnce(&mut bridge::Config)) -> Bridge {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = bridge::Config::new(bridge::Token::fixed(TOKEN).unwrap());
        tweak(&mut config);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(bridge::run(listener, config, async {
            let _ = stopped.await;
        }));
        Bridge {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A bridge running in another process (benchmarks measure its memory); not stopped here.
    pub fn elsewhere(addr: SocketAddr) -> Bridge {
        Bridge {
            addr,
            stop: None,
            task: None,
        }
    }

    /// Stops the bridge and waits until it has closed everything: at most its own two
    /// bounded waits (5 s for the web connections to drain, 5 s for the sockets' tasks), and
    /// a margin for a machine loaded by a browser (tests/shutdown.rs checks that Ctrl-C closes
    /// every socket and exits).
    pub async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(WAIT * 2, task)
            .await
            .expect("bridge shut down in time")
            .expect("the bridge's task ended without panicking")
            .expect("the bridge ended without an error");
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// A WebSocket to the bridge with the given Host and Origin (None: leave out).
    pub async fn raw(
        &self,
        host: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let mut request = self.ws_url().into_client_request().unwrap();
        let headers = request.headers_mut();
        match host {
            Some(host) => {
                headers.insert("host", HeaderValue::from_str(host).unwrap());
            }
            None => {
                headers.remove("host");
            }
        }
        if let Some(origin) = origin {
            headers.insert("origin", HeaderValue::from_str(origin).unwrap());
        }
        let (ws, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::connect_async_with_config(request, None, true),
        )
        .await
        .expect("handshake in time")?;
        Ok(ws)
    }

    /// A client that said hello with the right token and got its welcome.
    pub async fn client(&self) -> Client {
        let origin = format!("http://{}", self.addr);
        let ws = self
            .raw(Some(&self.addr.to_string()), Some(&origin))
            .await
            .unwrap();
        Client::hello(ws, TOKEN).await.expect("welcome")
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A protocol client that keeps every event it has seen.
pub struct Client {
    pub ws: Ws,
    pub welcome: Welcome,
    pub events: Vec<Event>,
    pub missed: u64,
    next_id: u64,
}

impl Client {
    /// Says hello; returns the welcome or the bridge's refusal (fatal error and close code).
    pub async fn hello(
        mut ws: Ws,
        token: &str,
    ) -> Result<Client, (Option<ErrorInfo>, Option<u16>)> {
        let hello = ClientMessage::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            token: token.to_string(),
            client: Some("bridge tests".into()),
            watch: true,
        });
        ws.send(Message::text(serde_json::to_string(&hello).unwrap()))
            .await
            .unwrap();
        let mut fatal = None;
        loop {
            let message = tokio::time::timeout(WAIT, ws.next())
                .await
                .expect("answer in time");
            match message {
                Some(Ok(Message::Text(text))) => match serde_json::from_str(&text).unwrap() {
                    ServerMessage::Welcome(welcome) => {
                        return Ok(Client {
                            ws,
                            welcome: *welcome,
                            events: Vec::new(),
                            missed: 0,
                            next_id: 1,
                        })
                    }
                    ServerMessage::Fatal { error } => fatal = Some(error),
                    other => panic!("unexpected before welcome: {other:?}"),
                },
                Some(Ok(Message::Close(frame))) => {
                    return Err((fatal, frame.map(|f| u16::from(f.code))))
                }
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => return Err((fatal, None)),
            }
        }
    }

    /// Sends raw text (for malformed-message tests).
    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_string())).await.unwrap();
    }

    /// Reads the next server message, keeping events; panics on timeout.
    pub async fn next_message(&mut self) -> Option<ServerMessage> {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a message in time")?;
            match message.ok()? {
                Message::Text(text) => {
                    let message: ServerMessage = serde_json::from_str(&text).unwrap();
                    match &message {
                        ServerMessage::Events { events } => {
                            self.events.extend(events.iter().cloned())
                        }
                        ServerMessage::Missed { count } => self.missed += count,
                        _ => {}
                    }
                    return Some(message);
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Sends a command and waits for its reply.
    pub async fn request(&mut self, command: Command) -> Outcome {
        let id = self.send_request(command).await;
        self.reply_to(Some(id)).await
    }

    /// Sends a command without waiting; returns the id its reply will carry.
    pub async fn send_request(&mut self, command: Command) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let request = ClientMessage::Request(Request { id, command });
        self.send_text(&serde_json::to_string(&request).unwrap())
            .await;
        id
    }

    /// Waits for the reply with this id.
    pub async fn reply_to(&mut self, id: Option<u64>) -> Outcome {
        loop {
            match self.next_message().await {
                Some(ServerMessage::Reply(reply)) if reply.id == id => return reply.outcome,
                Some(_) => continue,
                None => panic!("session closed while waiting for reply {id:?}"),
            }
        }
    }

    pub async fn ok(&mut self, command: Command) -> ReplyData {
        match self.request(command.clone()).await {
            Outcome::Ok(data) => data,
            Outcome::Error(e) => panic!("{command:?} failed: {e:?}"),
        }
    }

    pub async fn err(&mut self, command: Command) -> ErrorInfo {
        match self.request(command.clone()).await {
            Outcome::Error(e) => e,
            Outcome::Ok(data) => panic!("{command:?} should have failed, got {data:?}"),
        }
    }

    /// Starts a UDP server that only records what arrives (a flood's target); its address.
    pub async fn print_only_udp_server(&mut self) -> SocketAddr {
        let server = self
            .endpoint(cmd(serde_json::json!({"op": "udp_server_start", "port": 0,
                                             "behaviour": {"kind": "print_only"}})))
            .await;
        server.local.unwrap().parse().unwrap()
    }

    /// Creates an endpoint and returns its info.
    pub async fn endpoint(&mut self, command: Command) -> EndpointInfo {
        match self.ok(command).await {
            ReplyData::Endpoint(info) => info,
            other => panic!("expected an endpoint, got {other:?}"),
        }
    }

    /// The first event (seen so far or arriving within the wait) that matches.
    pub async fn wait_for(&mut self, what: &str, matches: impl Fn(&Event) -> bool) -> Event {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(found) = self.events.iter().find(|e| matches(e)) {
                return found.clone();
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.next_message()).await {
                Ok(Some(_)) => continue,
                _ => panic!(
                    "no event '{what}' in time; got:\n{}",
                    self.events
                        .iter()
                        .map(|e| format!("  {e:?}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }

    /// The events of one endpoint (and connection, if given) seen so far, as kind names; the
    /// kernel state observations (`tcp_state`) and the captured packets are left out, their
    /// timing being the OS's.
    pub fn kinds(&self, endpoint: u32, conn: Option<u32>) -> Vec<&'static str> {
        self.events
            .iter()
            .filter(|e| e.endpoint == endpoint && (conn.is_none() || e.conn == conn))
            .filter(|e| !matches!(e.kind.name(), "tcp_state" | "packet"))
            .map(|e| e.kind.name())
            .collect()
    }
}

/// The text of a data event.
pub fn text(event: &Event) -> String {
    let data = event.kind.data().expect("a data event");
    String::from_utf8(data.bytes().unwrap()).unwrap()
}

pub fn is_close(event: &Event) -> bool {
    matches!(event.kind, EventKind::Close { .. })
}

/// Runs `python3 -c script args...` and returns its stdout once it exits (bounded).
pub async fn python(script: &str, args: &[&str]) -> String {
    let child = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("python finished in time")
        .unwrap();
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The port of an endpoint's local address.
pub fn port_of(info: &EndpointInfo) -> u16 {
    info.local
        .as_deref()
        .unwrap()
        .parse::<SocketAddr>()
        .unwrap()
        .port()
}

impl Client {
    /// Waits until the events seen so far satisfy `done`.
    pub async fn wait_until(&mut self, what: &str, done: impl Fn(&[Event]) -> bool) {
        self.wait_until_within(what, WAIT, done).await;
    }

    /// Runs a command whose reply is a transfer report (`send_file`, `send_bulk`): the sender's.
    pub async fn transfer(&mut self, command: Command) -> shared::TransferReport {
        match self.ok(command).await {
            ReplyData::Transfer(report) => report,
            other => panic!("expected a transfer report, got {other:?}"),
        }
    }

    /// Waits for the first transfer report on `endpoint`, and returns it.
    pub async fn report_of(&mut self, endpoint: u32) -> shared::TransferReport {
        self.report_within(endpoint, WAIT).await
    }

    /// [`Self::report_of`] with more patience (a gigabyte to sync, say).
    pub async fn report_within(
        &mut self,
        endpoint: u32,
        patience: Duration,
    ) -> shared::TransferReport {
        self.wait_until_within("the transfer report", patience, |ev| {
            transfer_report(ev, endpoint).is_some()
        })
        .await;
        transfer_report(&self.events, endpoint).expect("seen just now")
    }

    /// [`Self::wait_until`] within `patience` instead of [`WAIT`].
    pub async fn wait_until_within(
        &mut self,
        what: &str,
        patience: Duration,
        done: impl Fn(&[Event]) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + patience;
        while !done(&self.events) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.next_message()).await {
                Ok(Some(_)) => continue,
                _ => panic!(
                    "'{what}' did not happen in time; got:\n{}",
                    self.events
                        .iter()
                        .map(|e| format!("  {e:?}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }
}

impl Client {
    /// Starts a TCP server on a free port with these extra spec fields, and connects a bridge
    /// client to it: the start of most lab scenarios.
    pub async fn tcp_pair(
        &mut self,
        server_fields: serde_json::Value,
    ) -> (EndpointInfo, EndpointInfo) {
        let mut spec = serde_json::json!({"op": "tcp_server_start", "port": 0});
        spec.as_object_mut()
            .unwrap()
            .extend(server_fields.as_object().cloned().unwrap_or_default());
        let server = self.endpoint(cmd(spec)).await;
        let client = self
            .endpoint(cmd(
                serde_json::json!({"op": "tcp_client_connect", "port": port_of(&server)}),
            ))
            .await;
        (server, client)
    }
}

impl Client {
    /// A TCP server on a free port that saves what a client sends into `file`.
    pub async fn save_to_file_server(&mut self, file: &str) -> EndpointInfo {
        self.endpoint(cmd(serde_json::json!({"op": "tcp_server_start", "port": 0,
            "behaviour": {"kind": "save_to_file", "file": file}})))
            .await
    }

    /// The two servers the slow-page tests stream a gigabyte into: one saving it to `file`, and
    /// one that shows every 64 KiB it reads (an event per read, for the page to fall behind on).
    pub async fn saver_and_printer(&mut self, file: &str) -> (EndpointInfo, EndpointInfo) {
        let saver = self.save_to_file_server(file).await;
        let printer = self
            .endpoint(cmd(serde_json::json!({"op": "tcp_server_start", "port": 0,
                "recv_buffer": 65536, "behaviour": {"kind": "print_only"},
                "policy": {"kind": "persistent"}})))
            .await;
        (saver, printer)
    }
}

/// A command from its JSON form, as a client in any language would write it.
pub fn cmd(value: serde_json::Value) -> Command {
    serde_json::from_value(value).expect("a valid command")
}

/// Sends text from an endpoint (and connection).
pub fn send_text(endpoint: u32, conn: Option<u32>, text: &str) -> Command {
    cmd(
        serde_json::json!({"op": "send", "endpoint": endpoint, "conn": conn, "data": {"text": text}}),
    )
}

/// Bytes received by an endpoint (and connection) so far, joined.
pub fn received(events: &[Event], endpoint: u32, conn: Option<u32>) -> Vec<u8> {
    events
        .iter()
        .filter(|e| e.endpoint == endpoint && (conn.is_none() || e.conn == conn))
        .filter(|e| matches!(e.kind, EventKind::Recv { .. } | EventKind::RecvFrom { .. }))
        .flat_map(|e| e.kind.data().unwrap().bytes().unwrap())
        .collect()
}

/// A loopback TCP port that a program may bind without `SO_REUSEADDR` (as the handouts'
/// servers do), taken below Linux's ephemeral range (32768-60999): a port the system chose
/// could be chosen again for a connection's own end (the shim's channel, a client) and be
/// left in TIME_WAIT when the program binds it. Each test binary walks its own stretch of
/// 20000-31999 from its process id, and each port is checked by binding it as such a program.
pub fn free_tcp_port() -> u16 {
    free_port(socket2::Type::STREAM)
}

/// The same for UDP.
pub fn free_udp_port() -> u16 {
    free_port(socket2::Type::DGRAM)
}

fn free_port(kind: socket2::Type) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    let start = std::process::id().wrapping_mul(7919) % COUNT;
    for _ in 0..COUNT {
        let port = (FIRST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % COUNT) as u16;
        let socket = socket2::Socket::new(socket2::Domain::IPV4, kind, None).unwrap();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        if socket.bind(&addr.into()).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + COUNT)
}

/// A folder for one test, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sp-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Fails plainly when this folder's disk has less than `bytes` (plus a margin) free: a test
    /// that saves a gigabyte would otherwise fail as a broken pipe, its server having ended the
    /// transfer when the disk filled (which is right, and tested on its own in faults.rs).
    pub fn assert_room_for(&self, bytes: u64) {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(self.0.as_os_str().as_bytes()).unwrap();
        // SAFETY: statvfs fills the zeroed struct it is given and reads only the path.
        let mut fs: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { libc::statvfs(path.as_ptr(), &mut fs) },
            0,
            "statvfs"
        );
        let free = fs.f_bavail as u64 * fs.f_frsize as u64;
        let margin = 512 << 20;
        assert!(
            free >= bytes + margin,
            "{} has {} MiB free; this test saves {} MiB there (and wants {} MiB to spare)",
            self.0.display(),
            free >> 20,
            bytes >> 20,
            margin >> 20
        );
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// SHA-256 of a file, by Python's hashlib (an outside opinion on the bridge's hashes).
pub async fn python_sha256(path: &std::path::Path) -> String {
    let script = "import hashlib,sys\nh=hashlib.sha256()\nf=open(sys.argv[1],'rb')\nfor b in iter(lambda: f.read(1<<20), b''): h.update(b)\nprint(h.hexdigest())";
    python(script, &[path.to_str().unwrap()])
        .await
        .trim()
        .to_string()
}

/// Writes `len` bytes of a fixed pseudo-random pattern (not compressible, not all zeros).
pub fn write_pattern(path: &std::path::Path, len: usize) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 16];
    let mut left = len;
    while left > 0 {
        for b in block.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let n = left.min(block.len());
        file.write_all(&block[..n]).unwrap();
        left -= n;
    }
    file.flush().unwrap();
}

/// The next line a child process prints (bounded wait).
pub async fn next_line(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> String {
    tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("a line in time")
        .unwrap()
        .expect("a line before the end")
}

/// `GET /status` with the token: what the bridge holds now (tasks, endpoints, sessions).
pub async fn bridge_status(addr: SocketAddr) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /status HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut answer))
        .await
        .expect("a status in time")
        .unwrap();
    let body = answer.split("\r\n\r\n").nth(1).expect("a body");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

/// Resident memory (KiB) of process `pid`, from /proc; 0 once it is gone.
pub fn resident_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// The part of process `pid`'s resident memory that it allocated itself (KiB, `RssAnon`):
/// what a peer can make it grow. The rest of its resident memory is the program's own code
/// and libraries read from disk, which grows as more of the (debug) binary runs and differs
/// from machine to machine by several MiB, not with what peers send.
pub fn allocated_kib(pid: u32) -> u64 {
    status_kib(pid, "RssAnon:")
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// What the bridge may allocate while a gigabyte streams in and no page reads (KiB): the
/// budgets (8 MiB of queued events for the page, 24 MiB of history counted as base64, 4 MiB
/// of WebSocket output) and the runtime, with room for the allocator's own overhead.
pub const ALLOCATED_LIMIT_KIB: u64 = 48 * 1024;

/// The highest memory a process reached while watched (KiB).
#[derive(Debug, Clone, Copy, Default)]
pub struct Peaks {
    /// All of its resident memory (`VmRSS`).
    pub resident: u64,
    /// What it allocated (`RssAnon`), which the tests bound.
    pub allocated: u64,
}

impl Peaks {
    /// The higher of two runs' peaks.
    pub fn max(self, other: Peaks) -> Peaks {
        Peaks {
            resident: self.resident.max(other.resident),
            allocated: self.allocated.max(other.allocated),
        }
    }
}

/// The bridge binary: cargo names it for the bridge's own tests; the bench crate's tests find
/// it beside them (`target/<profile>/bridge`, which `cargo xtask bench` and a workspace test
/// run build first).
pub fn bridge_binary() -> std::path::PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_bridge") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("bridge"))
        .expect("the test runs from target/<profile>/deps");
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo build -p bridge)",
        path.display()
    );
    path
}

/// A bridge running as its own process (to interrupt, limit or measure it).
pub struct BridgeProcess {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
    /// The token from the URL it printed.
    pub token: String,
}

impl BridgeProcess {
    /// The bridge binary with `--listen 127.0.0.1:0 --token TOKEN` and `args`.
    pub async fn start(args: &[&str]) -> BridgeProcess {
        let mut command = tokio::process::Command::new(bridge_binary());
        command
            .args(["--listen", "127.0.0.1:0", "--token", TOKEN])
            .args(args)
            .stderr(std::process::Stdio::null());
        Self::spawn(command).await
    }

    /// Spawns `command` (a bridge, or a shell that execs one; stderr as the caller set it),
    /// and waits (bounded) for the URL it prints.
    pub async fn spawn(mut command: tokio::process::Command) -> BridgeProcess {
        use tokio::io::AsyncBufReadExt;
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the bridge starts");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = next_line(&mut lines).await;
            if let Some(url) = line.strip_prefix("URL: http://") {
                break url.to_string();
            }
        };
        let (host, token) = url
            .split_once("/#token=")
            .expect("the token is in the fragment");
        BridgeProcess {
            child,
            addr: host.parse().unwrap(),
            token: token.to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the bridge runs")
    }

    /// A protocol client of this bridge (started with [`TOKEN`]).
    pub async fn client(&self) -> Client {
        Bridge::elsewhere(self.addr).client().await
    }
}

/// Streams `bytes` of a repeating 256-byte pattern into `port` from Python, then waits for the
/// server to close, while sampling the memory of process `watch`; returns the peak (KiB).
pub async fn stream_pattern_into(port: u16, bytes: u64, watch: u32) -> Peaks {
    let script = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
block = bytes(range(256)) * 4096
left = int(sys.argv[2])
while left > 0:
    n = min(left, len(block))
    s.sendall(block[:n])
    left -= n
s.shutdown(socket.SHUT_WR)
s.recv(1)
"#;
    let mut sender = tokio::process::Command::new("python3")
        .args(["-c", script, &port.to_string(), &bytes.to_string()])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut peak = Peaks::default();
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        peak = peak.max(Peaks {
            resident: resident_kib(watch),
            allocated: allocated_kib(watch),
        });
        if let Some(status) = sender.try_wait().unwrap() {
            assert!(status.success(), "the peer streamed everything");
            return peak;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stream took too long"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The first transfer report among `events` on `endpoint`.
pub fn transfer_report(events: &[Event], endpoint: u32) -> Option<shared::TransferReport> {
    events.iter().find_map(|e| match &e.kind {
        EventKind::Transfer(report) if e.endpoint == endpoint => Some(report.clone()),
        _ => None,
    })
}

/// A plain tokio TCP echo server on 127.0.0.1 (any free port) for any number of connections,
/// one task each, with Nagle off: the anchor the benchmarks compare with.
pub async fn tcp_echo_server() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            s.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => {
                            if s.write_all(&buf[..k]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// The traced sockets of program `program`.
pub fn sockets_of(events: &[Event], program: u32) -> std::collections::HashSet<u32> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Socket {
                spec: shared::EndpointSpec::Traced(t),
            } if t.program == program => Some(e.endpoint),
            _ => None,
        })
        .collect()
}

/// What program `program`'s sockets did, with the line of each call, in order (closes made
/// by the program's end carry no line and are left out).
pub fn calls(events: &[Event], program: u32) -> Vec<(&'static str, u32)> {
    let socks = sockets_of(events, program);
    events
        .iter()
        .filter(|e| socks.contains(&e.endpoint))
        .filter_map(|e| Some((e.kind.name(), e.at.as_ref()?.line)))
        .filter(|(kind, _)| *kind != "waiting")
        .collect()
}

/// Runs `file` with `args` from the page (`program_run`): its program endpoint.
pub async fn run_program(c: &mut Client, file: &str, args: &[&str]) -> u32 {
    c.endpoint(cmd(
        serde_json::json!({"op": "program_run", "file": file, "args": args}),
    ))
    .await
    .id
}

/// What program `program` wrote to stdout (and was given on stdin) so far.
pub fn console(events: &[Event], program: u32) -> String {
    events
        .iter()
        .filter(|e| e.endpoint == program)
        .filter_map(|e| match &e.kind {
            EventKind::Output { data, .. } => Some(String::from_utf8(data.bytes()?).ok()?),
            _ => None,
        })
        .collect()
}
