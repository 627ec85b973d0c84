//! `bridge trace -- python3 tcp_server.py 12000`: runs a program in this terminal, with its
//! own stdin and stdout, traced by the same shim as the page's programs, and shows its calls in
//! the running bridge: found through the runtime file (see `runtime`), or named with `--url`.
//! A program in another language (`bridge trace -- ./server 12000`, C, Java, Go...) runs under
//! the system-call tracer instead (`ptrace`, Linux), whose records are the shim's.
//!
//! The records go to the bridge over a WebSocket session that asks for replies only
//! (`watch: false`), in `trace_records` batches (at most every [`FLUSH_EVERY`], within the
//! bridge's frame limit), in order. If the bridge goes away, the program goes on untraced.
//! Ctrl-C reaches the program (it is in the terminal's foreground group); this process waits
//! for it and exits with its status.
//!
//! On Windows, Python programs are traced as everywhere; other programs are not (no tracer).

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use shared::{ClientMessage, Hello, Outcome, ServerMessage, MAX_PROGRAM_SOURCE, PROTOCOL_VERSION};
use tokio_tungstenite::tungstenite::Message;

use super::channel::{self, Channel};
use super::shim::Shim;
use super::{process, runtime};

/// Longest time a record waits before it is sent.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Most bytes of records in one message: well under the bridge's frame limit (256 KiB).
const MAX_BATCH_BYTES: usize = 160 * 1024;
/// How long to wait for the bridge at the start and for the last reply.
const WAIT: Duration = Duration::from_secs(5);

/// What `bridge trace` was asked to do.
#[derive(Debug, Clone)]
pub struct TraceArgs {
    /// The bridge's URL with its token (`http://127.0.0.1:7777/#token=...`); the runtime file
    /// is read when there is none.
    pub url: Option<String>,
    /// The program and its arguments.
    pub command: Vec<String>,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Runs the program traced; returns the exit status to exit with.
pub async fn run(args: TraceArgs) -> i32 {
    match prepare(&args.command) {
        Err(why) => {
            eprintln!("bridge trace: {why}");
            2
        }
        Ok((argv, script, python)) => match find_bridge(args.url.as_deref()) {
            Err(why) => {
                eprintln!("bridge trace: {why}");
                2
            }
            Ok((base, token)) if python => trace(argv, script, &base, &token).await,
            Ok((base, token)) => trace_native(argv, &base, &token).await,
        },
    }
}

/// The command line to run (a `.py` file alone runs with python3), its script, and whether
/// it is Python (traced by the shim; any other program by the system-call tracer).
fn prepare(command: &[String]) -> Result<(Vec<String>, Option<String>, bool), String> {
    let Some(first) = command.first() else {
        return Err("name the program to run: bridge trace -- python3 your_program.py".into());
    };
    let mut argv = command.to_vec();
    if first.ends_with(".py") {
        argv.insert(0, crate::config::PYTHON.into());
    }
    let name = std::path::Path::new(&argv[0])
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if !name.starts_with("python") && name != "py" && name != "py.exe" {
        return Ok((argv, None, false));
    }
    let script = argv[1..]
        .iter()
        .find(|a| !a.starts_with('-'))
        .filter(|a| a.ends_with(".py"))
        .cloned();
    Ok((argv, script, true))
}

/// The bridge's base URL and token.
fn find_bridge(url: Option<&str>) -> Result<(String, String), String> {
    let running = runtime::running();
    match url {
        Some(url) => {
            let (base, fragment) = url.split_once('#').unwrap_or((url, ""));
            let base = base.trim_end_matches('/').to_string();
            if let Some(token) = fragment.strip_prefix("token=") {
                return Ok((base, token.to_string()));
            }
            running
                .into_iter()
                .find(|info| info.url.trim_end_matches('/') == base)
                .map(|info| (base, info.token))
                .ok_or_else(|| {
                    format!("{url} carries no token: give the whole URL the bridge printed (with #token=...)")
                })
        }
        None => running
            .into_iter()
            .next()
            .map(|info| (info.url.trim_end_matches('/').to_string(), info.token))
            .ok_or_else(|| {
                "no Socket Playground bridge is running on this machine.\n  \
                 Start one in another terminal (`cargo xtask run`, or the `bridge` program), \
                 then run this again;\n  or name one with --url 'http://HOST:PORT/#token=TOKEN'."
                    .to_string()
            }),
    }
}

async fn connect(base: &str, token: &str) -> Result<Socket, String> {
    let ws_url = format!(
        "{}{}",
        base.replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1),
        shared::WS_PATH
    );
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(&ws_url))
        .await
        .map_err(|_| format!("the bridge at {base} did not answer"))?
        .map_err(|e| format!("cannot reach the bridge at {base}: {e}"))?;
    let hello = ClientMessage::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        token: token.to_string(),
        client: Some("bridge trace".into()),
        watch: false,
    });
    ws.send(Message::text(json(&hello)))
        .await
        .map_err(|e| format!("the bridge at {base} closed the connection: {e}"))?;
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<ServerMessage>(&text)
            {
                Ok(ServerMessage::Welcome(_)) => return Ok(ws),
                Ok(ServerMessage::Fatal { error }) => return Err(error.to_string()),
                _ => {}
            },
            Ok(Some(Ok(_))) => {}
            _ => return Err(format!("the bridge at {base} refused the session")),
        }
    }
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("protocol messages serialize")
}

/// The reply to request `id` (other messages are skipped).
async fn reply(ws: &mut Socket, id: u64) -> Result<shared::ReplyData, String> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                if let Ok(ServerMessage::Reply(reply)) = serde_json::from_str(&text) {
                    if reply.id == Some(id) {
                        return match reply.outcome {
                            Outcome::Ok(data) => Ok(data),
                            Outcome::Error(error) => Err(error.to_string()),
                        };
                    }
                }
            }
            Ok(Some(Ok(_))) => {}
            _ => return Err("the bridge did not reply".into()),
        }
    }
}

async fn trace(argv: Vec<String>, script: Option<String>, base: &str, token: &str) -> i32 {
    let ws = match connect(base, token).await {
        Ok(ws) => Some(ws),
        Err(why) => {
            eprintln!("bridge trace: {why}; running the program untraced");
            None
        }
    };
    let shim = Shim::default();
    let traced = match (shim.dir(), Channel::new().await) {
        (Ok(dir), Ok(channel)) => Some((dir, channel)),
        _ => None,
    };
    let mut command = tokio::process::Command::new(&argv[0]);
    command.args(&argv[1..]).kill_on_drop(false);
    let mut channel = None;
    if let (Some((dir, chan)), Some(_)) = (traced, &ws) {
        command
            .env("PYTHONPATH", super::runner::python_path(&dir))
            .env(channel::VAR, chan.address());
        channel = Some(chan);
    }
    // Ctrl-C is for the program (it gets it too, from the terminal): wait for it to end.
    tokio::spawn(async { while tokio::signal::ctrl_c().await.is_ok() {} });
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("bridge trace: cannot run {}: {e}", argv[0]);
            return 127;
        }
    };
    let pid = child.id().unwrap_or(0);
    let channel_port = channel.as_ref().map(Channel::port);
    let mut sender = attach(ws, &argv, pid, script, channel_port, base).await;
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            records = next_records(&mut channel) => match records {
                Some(records) => {
                    for record in records {
                        sender.push(record).await;
                    }
                }
                None => channel = None,
            },
            _ = flush.tick() => sender.flush().await,
            gone = sender.closed() => if gone {
                eprintln!("bridge trace: the playground stopped showing this program; it goes on untraced");
                sender.ws = None;
            },
        }
    };
    // What it sent last is read until its connections close (what it forked may go on, so
    // within a bound).
    if let Some(chan) = channel.as_mut() {
        for record in chan.rest(Duration::from_secs(1), 10_000).await {
            sender.push(record).await;
        }
    }
    sender.flush().await;
    let (code, signal) = match &status {
        Ok(status) => process::ended(status),
        Err(_) => (None, None),
    };
    sender.exit(code, signal).await;
    match (code, signal) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        _ => 1,
    }
}

/// Tells the bridge about the program (`trace_attach`, with the port of the shim's channel
/// when there is one, for the capture to leave out); the sender of its records, which sends
/// nothing when the bridge did not take it.
async fn attach(
    mut ws: Option<Socket>,
    argv: &[String],
    pid: u32,
    script: Option<String>,
    channel_port: Option<u16>,
    base: &str,
) -> Sender {
    let mut program = None;
    if let Some(socket) = ws.as_mut() {
        let source = script
            .as_deref()
            .and_then(|s| std::fs::read_to_string(s).ok())
            .filter(|s| s.len() <= MAX_PROGRAM_SOURCE);
        let attach = shared::Command::TraceAttach {
            argv: argv.to_vec(),
            pid,
            script: script.clone(),
            source,
            channel_port,
        };
        let _ = socket.send(Message::text(request(1, &attach))).await;
        match reply(socket, 1).await {
            Ok(shared::ReplyData::Endpoint(info)) => {
                eprintln!(
                    "bridge trace: {} is program #{} in the playground ({base}/)",
                    argv.join(" "),
                    info.id
                );
                program = Some(info.id);
            }
            Ok(_) | Err(_) => {
                eprintln!("bridge trace: the bridge did not take the program; it runs untraced");
            }
        }
    }
    Sender {
        ws: ws.filter(|_| program.is_some()),
        program: program.unwrap_or(0),
        batch: Vec::new(),
        bytes: 0,
        next_id: 2,
    }
}

/// A program that is not Python, where there is no system-call tracer (Windows): says so.
#[cfg(not(unix))]
async fn trace_native(argv: Vec<String>, _base: &str, _token: &str) -> i32 {
    eprintln!(
        "bridge trace: {} is not a Python program: on Windows only Python programs are traced \
         in this version. Run it without `bridge trace`: it talks to the playground's servers \
         and clients as any peer does.",
        argv[0]
    );
    2
}

/// A program in any language, under the system-call tracer (on a thread of its own: ptrace
/// takes every request from the thread that started the program).
#[cfg(unix)]
async fn trace_native(argv: Vec<String>, base: &str, token: &str) -> i32 {
    use super::ptrace::Report;
    let ws = match connect(base, token).await {
        Ok(ws) => Some(ws),
        Err(why) => {
            eprintln!("bridge trace: {why}; the program runs untraced");
            None
        }
    };
    // Bounded: a tracer ahead of the bridge waits, and the program with it.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Report>(4096);
    let program = argv.clone();
    let dir = std::env::current_dir().unwrap_or_else(|_| ".".into());
    // Ctrl-C is for the program (it gets it too, from the terminal): wait for it to end.
    tokio::spawn(async { while tokio::signal::ctrl_c().await.is_ok() {} });
    std::thread::spawn(move || {
        let failed = tx.clone();
        let launch = super::ptrace::Launch {
            argv: &program,
            name: &program[0],
            dir: &dir,
            stdio: None,
        };
        if let Err(e) = super::ptrace::run(&launch, |report| {
            let _ = tx.blocking_send(report);
        }) {
            let _ = failed.blocking_send(Report::Failed(e.to_string()));
        }
    });
    let pid = match rx.recv().await {
        Some(Report::Started(pid)) => pid,
        Some(Report::Failed(why)) => return cannot_trace(&argv[0], &why),
        _ => return cannot_trace(&argv[0], "the tracer ended"),
    };
    let mut sender = attach(ws, &argv, pid, None, None, base).await;
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    let (code, signal) = loop {
        tokio::select! {
            report = rx.recv() => match report {
                Some(Report::Call(record)) => sender.push(*record).await,
                Some(Report::Exit { code, signal }) => break (code, signal),
                Some(Report::Failed(why)) => {
                    let code = cannot_trace(&argv[0], &why);
                    break (Some(code), None);
                }
                Some(Report::Started(_)) => {}
                None => break (None, None),
            },
            _ = flush.tick() => sender.flush().await,
            gone = sender.closed() => if gone {
                eprintln!("bridge trace: the playground stopped showing this program");
                sender.ws = None;
            },
        }
    };
    // What the program's children still do is reported until the tracer ends.
    while let Ok(Some(report)) = tokio::time::timeout(WAIT, rx.recv()).await {
        if let Report::Call(record) = report {
            sender.push(*record).await;
        }
    }
    sender.flush().await;
    sender.exit(code, signal).await;
    match (code, signal) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        _ => 1,
    }
}

/// Says why the program cannot be traced (and what would allow ptrace, where that is the
/// reason); the status to exit with.
#[cfg(unix)]
fn cannot_trace(program: &str, why: &str) -> i32 {
    eprintln!("bridge trace: cannot trace {program}: {why}");
    if why.contains("not permitted") {
        eprintln!("bridge trace: {}", super::ptrace::NOT_PERMITTED_HINT);
    }
    127
}

async fn next_records(channel: &mut Option<Channel>) -> Option<Vec<shared::TraceRecord>> {
    match channel {
        Some(chan) => chan.next().await.ok(),
        None => std::future::pending().await,
    }
}

/// A request as JSON.
fn request(id: u64, command: &shared::Command) -> String {
    json(&ClientMessage::Request(shared::Request {
        id,
        command: command.clone(),
    }))
}

/// Batches records into `trace_records` and sends them.
struct Sender {
    ws: Option<Socket>,
    program: shared::EndpointId,
    /// Records already written as JSON.
    batch: Vec<String>,
    bytes: usize,
    next_id: u64,
}

impl Sender {
    async fn push(&mut self, record: shared::TraceRecord) {
        if self.ws.is_none() {
            return;
        }
        let text = json(&record);
        if self.bytes + text.len() > MAX_BATCH_BYTES
            || self.batch.len() >= shared::MAX_TRACE_RECORDS
        {
            self.flush().await;
        }
        self.bytes += text.len();
        self.batch.push(text);
    }

    async fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.batch).join(",");
        self.bytes = 0;
        let Some(ws) = self.ws.as_mut() else {
            return;
        };
        let id = self.next_id;
        self.next_id += 1;
        // Written by hand around records already serialized once.
        let text = format!(
            r#"{{"type":"request","id":{id},"command":{{"op":"trace_records","program":{},"records":[{records}]}}}}"#,
            self.program
        );
        if ws.send(Message::text(text)).await.is_err() {
            self.ws = None;
        }
    }

    /// Resolves with `true` when the bridge has stopped taking records (a reply says this
    /// program is not shown any more, or the connection ended); replies that say "ok" are read
    /// and dropped. Never resolves without a connection.
    async fn closed(&mut self) -> bool {
        let Some(ws) = self.ws.as_mut() else {
            return std::future::pending().await;
        };
        match ws.next().await {
            Some(Ok(Message::Text(text))) => matches!(
                serde_json::from_str::<ServerMessage>(&text),
                Ok(ServerMessage::Reply(shared::Reply {
                    outcome: Outcome::Error(_),
                    ..
                })) | Ok(ServerMessage::Fatal { .. })
            ),
            Some(Ok(_)) => false,
            _ => true,
        }
    }

    async fn exit(&mut self, code: Option<i32>, signal: Option<i32>) {
        let id = self.next_id;
        let program = self.program;
        let Some(ws) = self.ws.as_mut() else {
            return;
        };
        let exit = shared::Command::TraceExit {
            program,
            code,
            signal,
        };
        if ws.send(Message::text(request(id, &exit))).await.is_ok() {
            let _ = reply(ws, id).await;
        }
        let _ = ws.close(None).await;
    }
}
