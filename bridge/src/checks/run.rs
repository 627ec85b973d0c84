//! Runs a check's steps against the student's server with real sockets on this machine, and
//! says for each step whether it passed, in words a student understands: what was sent, what
//! was expected, what came back, and (from the scenario's hints) what that usually means.
//!
//! Steps run in order; the first that fails ends the run (the steps after it depend on it) and
//! the rest are reported as not run. With `robustness`, three unkind clients follow the
//! scenario and the scenario then runs once more: a server that crashed or hangs on them fails
//! there, with its last output.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use super::scenario::{Check, Role, Step, Transport};
use crate::explain::{explain, Op, Proto};

/// What the program has printed so far (stdout and stderr), when the checker runs it: kept up
/// to [`Printed::LIMIT`], and `expect_output` waits on it without polling.
#[derive(Default)]
pub struct Printed {
    text: Mutex<String>,
    more: tokio::sync::Notify,
}

impl Printed {
    /// What is kept of a program's output: the start, which is what a check looks for.
    pub const LIMIT: usize = 256 * 1024;

    pub fn push(&self, chunk: &str) {
        if let Ok(mut text) = self.text.lock() {
            let room = Self::LIMIT.saturating_sub(text.len());
            let mut cut = chunk.len().min(room);
            while !chunk.is_char_boundary(cut) {
                cut -= 1;
            }
            text.push_str(&chunk[..cut]);
        }
        self.more.notify_waiters();
    }

    pub fn text(&self) -> String {
        self.text.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Waits until nothing more is printed for `quiet` (at most `most` in all): a program that
    /// just failed a step is often still writing why (a thread's traceback comes after the
    /// connection it dropped), and the explanation should show it.
    pub async fn settle(&self, quiet: Duration, most: Duration) {
        let deadline = Instant::now() + most;
        loop {
            let more = self.more.notified();
            let until = (Instant::now() + quiet).min(deadline);
            if tokio::time::timeout_at(until, more).await.is_err() || Instant::now() >= deadline {
                return;
            }
        }
    }
}

pub type Output = Arc<Printed>;

/// What the checker's own sockets did, as playground events: a run's recording, which the
/// page's Replay shows like any other (each client an endpoint, each send and recv an event).
/// Bounded: at most [`Recorder::MAX_EVENTS`] events, each keeping at most 4 KiB of its data.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Recorded>>);

#[derive(Default)]
struct Recorded {
    events: Vec<shared::Event>,
    began: Option<Instant>,
    endpoints: u32,
    /// A run from the page: each client is also an endpoint of the bridge, its events in the
    /// live log as they happen (recording id to handle).
    live: Option<Arc<crate::core::registry::Registry>>,
    handles: HashMap<u32, crate::core::registry::Handle>,
}

impl Recorder {
    pub const MAX_EVENTS: usize = 10_000;
    const KEPT: usize = 4096;

    /// A recorder whose clients are also the bridge's endpoints, shown live (`check_run`).
    pub(crate) fn live(registry: Arc<crate::core::registry::Registry>) -> Recorder {
        let recorder = Recorder::default();
        if let Ok(mut r) = recorder.0.lock() {
            r.live = Some(registry);
        }
        recorder
    }

    /// A new endpoint for a client of the checker's: its `socket` event. Returns its id.
    fn endpoint(&self, spec: shared::EndpointSpec) -> u32 {
        let (id, live) = self.0.lock().map_or((0, None), |mut r| {
            r.endpoints += 1;
            (r.endpoints, r.live.clone())
        });
        // Live, the bridge's endpoint limit applies: past it the client is only recorded.
        if let Some(handle) = live.and_then(|registry| registry.create_endpoint(spec.clone()).ok())
        {
            if let Ok(mut r) = self.0.lock() {
                r.handles.insert(id, handle);
            }
        }
        self.emit(id, None, None, shared::EventKind::Socket { spec });
        id
    }

    fn emit(
        &self,
        endpoint: u32,
        local: Option<SocketAddr>,
        peer: Option<SocketAddr>,
        kind: shared::EventKind,
    ) {
        let Ok(mut r) = self.0.lock() else {
            return;
        };
        // The live endpoint's event (its socket event came with the handle).
        match (&kind, r.handles.contains_key(&endpoint)) {
            (_, false) | (shared::EventKind::Socket { .. }, _) => {}
            (shared::EventKind::Connect, true) => {
                if let (Some(handle), Some(local)) = (r.handles.get_mut(&endpoint), local) {
                    handle.set_addresses(
                        local.to_string(),
                        peer.map(|p| p.to_string()),
                        shared::EventKind::Connect,
                    );
                }
            }
            (shared::EventKind::Close { reason, .. }, true) => {
                if let Some(handle) = r.handles.remove(&endpoint) {
                    handle.close(shared::ClosedBy::Local, reason.clone());
                }
            }
            (_, true) => {
                if let Some(handle) = r.handles.get(&endpoint) {
                    handle.emit(kind.clone());
                }
            }
        }
        if r.events.len() >= Self::MAX_EVENTS {
            return;
        }
        let began = *r.began.get_or_insert_with(Instant::now);
        let seq = r.events.len() as u64 + 1;
        r.events.push(shared::Event {
            seq,
            t_us: began.elapsed().as_micros() as u64,
            endpoint,
            conn: None,
            local: local.map(|a| a.to_string()),
            peer: peer.map(|a| a.to_string()),
            at: None,
            kind,
        });
    }

    fn data(bytes: &[u8]) -> shared::Payload {
        shared::Payload::from_head(&bytes[..bytes.len().min(Self::KEPT)], bytes.len())
    }

    /// The run so far, as a recording.
    pub fn recording(&self, started_unix_ms: u64) -> shared::Recording {
        let events = self.0.lock().map(|r| r.events.clone()).unwrap_or_default();
        shared::Recording::new(started_unix_ms, events)
    }
}

/// A client's place in the recording: its endpoint and addresses.
#[derive(Clone)]
struct Rec {
    recorder: Recorder,
    id: u32,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
}

impl Rec {
    fn emit(&self, kind: shared::EventKind) {
        self.recorder.emit(self.id, self.local, self.peer, kind);
    }
}

/// The checker's listening socket, for a client program.
pub enum Listen {
    Tcp(tokio::net::TcpListener),
    Udp(Arc<UdpSocket>),
}

/// What a run has besides the target: the program's output and standard input (when the
/// checker runs it) and, for a client program, the socket it connects to.
#[derive(Default)]
pub struct Context {
    pub output: Option<Output>,
    pub stdin: Option<tokio::process::ChildStdin>,
    pub listen: Option<Listen>,
    /// The program's working folder, where `expect_file` looks.
    pub dir: Option<std::path::PathBuf>,
    /// The program, when the checker runs it: a failing step says whether it still runs.
    pub child: Option<tokio::process::Child>,
    /// What the checker's sockets did.
    pub recorder: Recorder,
    /// The checker started the program (and stops it after the run) without holding its
    /// process here: the page's run, where the bridge's program registry does.
    pub runs_program: bool,
    /// Told of each step as it ends (its index in [`plan`]): the page's run shows them so.
    pub progress: Option<Progress>,
    /// Where `type` steps write when there is no `stdin`: a program the bridge runs for the
    /// page takes its input through the bridge's program registry.
    pub input: Option<Input>,
}

/// Told of each step's result as it ends, with its index.
pub type Progress = Box<dyn FnMut(usize, &StepResult) + Send>;
/// Writes a line to the program's standard input, or says why it cannot.
pub type Input = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// How one step went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed(String),
    /// Not run: an earlier step failed, or it needs what this run does not have.
    Skipped(String),
}

/// One step's line in the report.
#[derive(Debug, Clone)]
pub struct StepResult {
    /// What the step did, as a person would say it: `send "hello world" from a`.
    pub what: String,
    pub verdict: Verdict,
}

/// A client of the checker's.
enum Client {
    Tcp {
        stream: TcpStream,
        /// Received and not yet matched by an `expect`.
        buf: Vec<u8>,
        closed: bool,
        last_sent: String,
        /// Everything this client sent, hashed, for `expect_file`'s `same_as_sent`.
        sent: Box<sha2::Sha256>,
        sent_len: u64,
        rec: Rec,
    },
    Udp {
        socket: Arc<UdpSocket>,
        /// Where this client's datagrams go, and whose it takes.
        peer: SocketAddr,
        /// A datagram that arrived before its `expect` (the one an `accept` waited for).
        pending: Option<Vec<u8>>,
        last_sent: String,
    },
}

impl Client {
    /// A new TCP client (connected or accepted): nothing received or sent yet; recorded as a
    /// connected TCP client.
    fn tcp(stream: TcpStream, recorder: &Recorder) -> Client {
        let _ = stream.set_nodelay(true);
        let (local, peer) = (stream.local_addr().ok(), stream.peer_addr().ok());
        let spec = shared::EndpointSpec::TcpClient(shared::TcpClientSpec::to(
            &peer.map_or(String::new(), |p| p.ip().to_string()),
            peer.map_or(0, |p| p.port()),
        ));
        let rec = Rec {
            id: recorder.endpoint(spec),
            recorder: recorder.clone(),
            local,
            peer,
        };
        rec.emit(shared::EventKind::Connect);
        Client::Tcp {
            rec,
            stream,
            buf: Vec::new(),
            closed: false,
            last_sent: String::new(),
            sent: Default::default(),
            sent_len: 0,
        }
    }
}

/// Shows a text the way the report quotes it: in double quotes, cut at 200 characters.
pub fn quote(text: &str) -> String {
    let mut shown: String = text.chars().take(200).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

fn describe(step: &Step, role: Role) -> String {
    // A client program is the one that talks first: its steps read from its side.
    if role == Role::Client {
        match step {
            Step::Expect { text: Some(t), .. } => return format!("the program sends {}", quote(t)),
            Step::Expect {
                contains: Some(c), ..
            } => return format!("the program sends something containing {}", quote(c)),
            Step::Send { text: Some(t), .. } => return format!("the checker replies {}", quote(t)),
            Step::ExpectClose { .. } => return "the program closes its connection".into(),
            Step::ExpectOpen { for_ms, .. } => {
                return format!("the program keeps its connection open for {for_ms} ms")
            }
            _ => {}
        }
    }
    match step {
        Step::Connect { client } => format!("connect client {client}"),
        Step::Accept { client, .. } => format!("the program connects (called {client} here)"),
        Step::Type { text } => format!("type {} into the program", quote(text)),
        Step::Send {
            client,
            text,
            bytes,
            pause_ms,
            encrypt,
            tamper,
        } => {
            let what = match (text, bytes) {
                (Some(t), _) => quote(t),
                (None, Some(n)) => format!("{n} bytes"),
                (None, None) => String::new(),
            };
            match (pause_ms, encrypt, tamper) {
                (_, true, true) => {
                    format!("send {what} encrypted from {client}, the token tampered with")
                }
                (_, true, false) => format!("send {what} encrypted from {client}"),
                (Some(ms), _, _) => {
                    format!("send {what} from {client}, in two pieces {ms} ms apart")
                }
                (None, _, _) => format!("send {what} from {client}"),
            }
        }
        Step::AnswerChallenge { client, secret, .. } => {
            format!(
                "{client} answers the server's challenge with the secret {}",
                quote(secret)
            )
        }
        Step::Expect {
            client,
            text,
            contains,
            decrypt: true,
            ..
        } => match (text, contains) {
            (Some(t), _) => format!("{client} gets {} back, encrypted", quote(t)),
            (None, Some(c)) => format!("{client} gets an encrypted reply containing {}", quote(c)),
            (None, None) => String::new(),
        },
        Step::Expect {
            client,
            text,
            contains,
            ..
        } => match (text, contains) {
            (Some(t), _) => format!("{client} gets {} back", quote(t)),
            (None, Some(c)) => format!("{client} gets a reply containing {}", quote(c)),
            (None, None) => String::new(),
        },
        Step::ExpectAny { client, any_of, .. } => {
            let words: Vec<String> = any_of.iter().map(|w| quote(w)).collect();
            format!("{client} gets a line with one of {}", words.join(", "))
        }
        Step::ExpectNot {
            client, contains, ..
        } => format!("{client} does not get {} back", quote(contains)),
        Step::ExpectClose { client, .. } => format!("the server closes {client}'s connection"),
        Step::ExpectOpen { client, for_ms, .. } => {
            format!("the server keeps {client}'s connection open for {for_ms} ms")
        }
        Step::ExpectSilence { client, for_ms } => {
            format!("no reply to {client} within {for_ms} ms")
        }
        Step::ExpectOutput { contains, .. } => format!("the program prints {}", quote(contains)),
        Step::Close { client } => format!("close client {client}"),
        Step::Shutdown { client } => {
            format!("client {client} stops sending (shutdown: the end of the data)")
        }
        Step::ExpectFile {
            file,
            contains,
            same_as_sent,
            ..
        } => match (contains, same_as_sent) {
            (Some(c), _) => format!("the program's file {file} contains {}", quote(c)),
            (None, Some(client)) => {
                format!("the program's file {file} holds exactly what {client} sent")
            }
            (None, None) => String::new(),
        },
        Step::Abort { client } => {
            format!("client {client} is killed (its kernel resets the connection)")
        }
        Step::Wait { ms } => format!("wait {ms} ms"),
    }
}

/// Runs `check` against the server at `target`. `output` is what the program prints, when
/// the checker runs it (for `expect_output`, and to say what a crashed server said last).
pub async fn run(check: &Check, target: SocketAddr, ctx: &mut Context) -> Vec<StepResult> {
    let output = ctx.output.clone();
    let output = output.as_ref();
    let steps = expand(check);
    let mut clients: HashMap<String, Client> = HashMap::new();
    let mut results = Vec::new();
    let mut failed = false;
    for (step, lenient) in &steps {
        let what = describe(step, check.program);
        if failed {
            let result = StepResult {
                what,
                verdict: Verdict::Skipped("not run: an earlier step failed".into()),
            };
            if let Some(progress) = ctx.progress.as_mut() {
                progress(results.len(), &result);
            }
            results.push(result);
            continue;
        }
        let mut verdict = one(check, step, target, ctx, &mut clients).await;
        // The unkind clients' own sends may fail (the server closed on them): only what the
        // server does next counts.
        if *lenient && matches!(verdict, Verdict::Failed(_)) {
            verdict = Verdict::Passed;
        }
        if let Verdict::Failed(why) = &verdict {
            failed = true;
            if let (Some(output), true) = (output, ctx.child.is_some()) {
                output
                    .settle(Duration::from_millis(150), Duration::from_secs(1))
                    .await;
            }
            let ended = match ctx.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(status))) => {
                    format!("\nThe program is no longer running: it ended ({status}).")
                }
                _ => String::new(),
            };
            let why = format!("{why}{ended}");
            let why = match output.map(tail) {
                Some(last) if !last.is_empty() => {
                    format!("{why}\nThe program's last output:\n{last}")
                }
                _ => why.clone(),
            };
            verdict = Verdict::Failed(why);
        }
        if let Some(progress) = ctx.progress.as_mut() {
            progress(
                results.len(),
                &StepResult {
                    what: what.clone(),
                    verdict: verdict.clone(),
                },
            );
        }
        results.push(StepResult { what, verdict });
    }
    // What is still open is closed. A program the checker runs is stopped next, so a reset
    // does no harm there and leaves nothing lingering on the lab's port; a server someone
    // else runs (`--target`) gets an ordinary close, which cannot break a reply in flight.
    for (_, client) in clients {
        if let Client::Tcp {
            mut stream, rec, ..
        } = client
        {
            if ctx.child.is_some() || ctx.runs_program {
                reset(&stream);
            } else {
                let _ = stream.shutdown().await;
            }
            rec.emit(shared::EventKind::Close {
                by: shared::ClosedBy::Local,
                reason: "the check is over".into(),
            });
        }
    }
    results
}

/// The last lines the program printed (at most 12).
/// The steps a run takes: the scenario's, and with `robustness` the unkind clients (lenient:
/// their own failures do not count) and the scenario once more.
fn expand(check: &Check) -> Vec<(Step, bool)> {
    let mut steps: Vec<(Step, bool)> = check.steps.iter().map(|s| (s.clone(), false)).collect();
    if check.robustness {
        for step in robustness(check) {
            steps.push((step, true));
        }
        for step in &check.steps {
            steps.push((step.renamed("-again"), false));
        }
    }
    steps
}

/// What each step of a run does, in words, in order: the list a report (or the page) shows
/// before the verdicts come.
pub fn plan(check: &Check) -> Vec<String> {
    expand(check)
        .iter()
        .map(|(step, _)| describe(step, check.program))
        .collect()
}

fn tail(output: &Output) -> String {
    let text = output.text();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(12)..].join("\n")
}

/// The unkind clients every server check can add.
fn robustness(check: &Check) -> Vec<Step> {
    let client = |name: &str| name.to_string();
    let mut steps = Vec::new();
    if check.transport == Transport::Tcp {
        steps.push(Step::Connect {
            client: client("silent"),
        });
        steps.push(Step::Close {
            client: client("silent"),
        });
        steps.push(Step::Connect {
            client: client("halves"),
        });
        steps.push(Step::Send {
            client: client("halves"),
            text: Some("in two pieces".into()),
            bytes: None,
            pause_ms: Some(100),
            encrypt: false,
            tamper: false,
        });
        steps.push(Step::Close {
            client: client("halves"),
        });
    }
    steps.push(Step::Connect {
        client: client("large"),
    });
    steps.push(Step::Send {
        client: client("large"),
        text: None,
        bytes: Some(3000),
        pause_ms: None,
        encrypt: false,
        tamper: false,
    });
    if check.transport == Transport::Tcp {
        steps.push(Step::Close {
            client: client("large"),
        });
    }
    // A moment for the server to deal with them before the scenario runs again.
    steps.push(Step::Wait { ms: 300 });
    steps
}

/// Generated bytes to send: readable text, so that a server that prints them prints text.
fn generated(n: usize) -> Vec<u8> {
    b"abcdefghijklmnopqrstuvwxyz"
        .iter()
        .cycle()
        .take(n)
        .copied()
        .collect()
}

async fn one(
    check: &Check,
    step: &Step,
    target: SocketAddr,
    ctx: &mut Context,
    clients: &mut HashMap<String, Client>,
) -> Verdict {
    let timeout = |ms: &Option<u64>| Duration::from_millis(ms.unwrap_or(check.timeout_ms));
    let output = ctx.output.clone();
    let output = output.as_ref();
    match step {
        Step::Accept { client, timeout_ms } => {
            let wait = timeout(timeout_ms);
            let waited = format!(
                "the program did not connect to {target} within {} ms (does it use the handout's address and port?)",
                wait.as_millis()
            );
            match &ctx.listen {
                Some(Listen::Tcp(listener)) => {
                    match tokio::time::timeout(wait, listener.accept()).await {
                        Ok(Ok((stream, _))) => {
                            clients.insert(
                                client.clone(),
                                Client::tcp(stream, &ctx.recorder),
                            );
                            Verdict::Passed
                        }
                        Ok(Err(e)) => Verdict::Failed(format!("accept() failed: {e}")),
                        Err(_) => Verdict::Failed(waited),
                    }
                }
                Some(Listen::Udp(socket)) => {
                    let mut datagram = vec![0u8; 65536];
                    match tokio::time::timeout(wait, socket.recv_from(&mut datagram)).await {
                        Ok(Ok((n, peer))) => {
                            datagram.truncate(n);
                            clients.insert(
                                client.clone(),
                                Client::Udp {
                                    socket: socket.clone(),
                                    peer,
                                    pending: Some(datagram),
                                    last_sent: String::new(),
                                },
                            );
                            Verdict::Passed
                        }
                        Ok(Err(e)) => Verdict::Failed(format!("recvfrom() failed: {e}")),
                        Err(_) => Verdict::Failed(format!(
                            "no datagram from the program reached {target} within {} ms",
                            wait.as_millis()
                        )),
                    }
                }
                None => Verdict::Skipped(
                    "skipped: a client program is checked only when the checker runs it (--program)".into(),
                ),
            }
        }
        Step::Type { text } => match &mut ctx.stdin {
            Some(stdin) => {
                let line = format!("{text}\n");
                match stdin.write_all(line.as_bytes()).await {
                    Ok(()) => {
                        let _ = stdin.flush().await;
                        Verdict::Passed
                    }
                    Err(_) => Verdict::Failed(
                        "the program no longer reads its input: it ended, or closed its standard input".into(),
                    ),
                }
            }
            None => match &ctx.input {
                Some(input) => match input(&format!("{text}\n")) {
                    Ok(()) => Verdict::Passed,
                    Err(why) => Verdict::Failed(why),
                },
                None => Verdict::Skipped(
                    "skipped: typing into a program works only when the checker runs it (--program)"
                        .into(),
                ),
            },
        },
        Step::Connect { client } => match check.transport {
            Transport::Tcp => {
                let connect = TcpStream::connect(target);
                match tokio::time::timeout(Duration::from_millis(check.timeout_ms), connect).await {
                    Ok(Ok(stream)) => {
                        clients.insert(
                            client.clone(),
                            Client::tcp(stream, &ctx.recorder),
                        );
                        Verdict::Passed
                    }
                    Ok(Err(e)) => {
                        let info = explain(&e, Op::Connect, Proto::Tcp, &target.to_string());
                        Verdict::Failed(format!(
                            "could not connect to {target}: {} Is the server running, on port {}?",
                            info.explanation,
                            target.port()
                        ))
                    }
                    Err(_) => Verdict::Failed(format!(
                        "connect() to {target} did not finish within {} ms: the server's backlog is full, or it does not accept",
                        check.timeout_ms
                    )),
                }
            }
            Transport::Udp => {
                let local: SocketAddr = if target.is_ipv4() {
                    ([127, 0, 0, 1], 0).into()
                } else {
                    (std::net::Ipv6Addr::LOCALHOST, 0).into()
                };
                match UdpSocket::bind(local).await {
                    Ok(socket) => {
                        clients.insert(
                            client.clone(),
                            Client::Udp {
                                socket: Arc::new(socket),
                                peer: target,
                                pending: None,
                                last_sent: String::new(),
                            },
                        );
                        Verdict::Passed
                    }
                    Err(e) => Verdict::Failed(format!("could not open a UDP socket: {e}")),
                }
            }
        },
        Step::Send {
            client,
            text,
            bytes,
            pause_ms,
            encrypt,
            tamper,
        } => {
            let data = match (text, bytes) {
                (Some(t), _) if *encrypt => match cipher(check) {
                    Ok(cipher) => {
                        let token = cipher.encrypt(t.trim_end_matches('\n').as_bytes());
                        let token = if *tamper {
                            crate::crypto::tamper(&token)
                        } else {
                            token
                        };
                        format!("{token}\n").into_bytes()
                    }
                    Err(e) => return Verdict::Failed(e),
                },
                (Some(t), _) => t.as_bytes().to_vec(),
                (None, Some(n)) => generated(*n),
                (None, None) => Vec::new(),
            };
            let shown = text
                .clone()
                .unwrap_or_else(|| format!("{} bytes", data.len()));
            match clients.get_mut(client) {
                Some(Client::Tcp {
                    stream,
                    last_sent,
                    sent,
                    sent_len,
                    rec,
                    ..
                }) => {
                    use sha2::Digest as _;
                    *last_sent = shown;
                    sent.update(&data);
                    *sent_len += data.len() as u64;
                    rec.emit(shared::EventKind::Send {
                        data: Recorder::data(&data),
                    });
                    let (first, second) = match pause_ms {
                        Some(_) => data.split_at(data.len() / 2),
                        None => (&data[..], &[][..]),
                    };
                    let mut result = stream.write_all(first).await;
                    if let (Ok(()), Some(ms), false) = (&result, pause_ms, second.is_empty()) {
                        tokio::time::sleep(Duration::from_millis(*ms)).await;
                        result = stream.write_all(second).await;
                    }
                    match result {
                        Ok(()) => Verdict::Passed,
                        Err(e) => Verdict::Failed(format!(
                            "sending failed: {}",
                            explain(&e, Op::Send, Proto::Tcp, &target.to_string()).explanation
                        )),
                    }
                }
                Some(Client::Udp {
                    socket,
                    peer,
                    last_sent,
                    ..
                }) => {
                    *last_sent = shown;
                    match socket.send_to(&data, *peer).await {
                        Ok(_) => Verdict::Passed,
                        Err(e) => Verdict::Failed(format!(
                            "sendto() failed: {}",
                            explain(&e, Op::Send, Proto::Udp, &target.to_string()).explanation
                        )),
                    }
                }
                None => Verdict::Failed(format!("client {client} is not open")),
            }
        }
        Step::Expect {
            client,
            text,
            contains,
            timeout_ms,
            hints,
            decrypt: true,
        } => {
            let wait = timeout(timeout_ms);
            let (stream, rec, buf, closed) = match tcp(clients, client) {
                Ok(parts) => parts,
                Err(verdict) => return verdict,
            };
            let how = read_until(stream, rec, buf, closed, wait, |b| b.contains(&b'\n')).await;
            let Some(end) = buf.iter().position(|&b| b == b'\n') else {
                let got = String::from_utf8_lossy(buf).into_owned();
                return Verdict::Failed(match (how, got.is_empty()) {
                    (_, false) => format!(
                        "expected a line holding a Fernet token, got {} without its newline",
                        quote(&got)
                    ),
                    (Read::Closed, true) => "got nothing: the server closed the connection".into(),
                    (Read::Error(e), true) => format!("got nothing: {e}"),
                    (_, true) => format!("got nothing within {} ms", wait.as_millis()),
                });
            };
            let line: Vec<u8> = buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line).trim().to_string();
            let cipher = match cipher(check) {
                Ok(cipher) => cipher,
                Err(e) => return Verdict::Failed(e),
            };
            let plain = match crate::crypto::decrypt(&cipher, &line) {
                Ok(plain) => String::from_utf8_lossy(&plain).into_owned(),
                Err(_) => {
                    let hint = hints
                        .get(&line)
                        .map(|h| format!(": {h}"))
                        .unwrap_or_else(|| ": the reply must be a Fernet token of the lab's key (f.encrypt(...)), one a line".into());
                    return Verdict::Failed(format!(
                        "got {}, which the lab's key does not decrypt{hint}",
                        quote(&line)
                    ));
                }
            };
            let (wanted, matched) = match (text, contains) {
                (Some(t), _) => (t.trim_end_matches('\n'), plain == t.trim_end_matches('\n')),
                (None, Some(c)) => (c.as_str(), plain.contains(c.as_str())),
                (None, None) => ("", true),
            };
            if matched {
                Verdict::Passed
            } else {
                let hint = hints
                    .get(&plain)
                    .map(|h| format!(": {h}"))
                    .unwrap_or_default();
                Verdict::Failed(format!(
                    "expected {} once decrypted, got a token of {}{hint}",
                    quote(wanted),
                    quote(&plain)
                ))
            }
        }
        Step::AnswerChallenge {
            client,
            secret,
            timeout_ms,
        } => {
            let wait = timeout(timeout_ms);
            let (stream, rec, buf, closed) = match tcp(clients, client) {
                Ok(parts) => parts,
                Err(verdict) => return verdict,
            };
            let how = read_until(stream, rec, buf, closed, wait, |b| b.contains(&b'\n')).await;
            let Some(end) = buf.iter().position(|&b| b == b'\n') else {
                let got = String::from_utf8_lossy(buf).into_owned();
                return Verdict::Failed(match (how, got.is_empty()) {
                    (_, false) => format!("expected the challenge \"AUTH <nonce>\" and a newline, got {}", quote(&got)),
                    (Read::Closed, true) => "expected the challenge \"AUTH <nonce>\", but the server closed the connection".into(),
                    (Read::Error(e), true) => format!("expected the challenge \"AUTH <nonce>\": {e}"),
                    (_, true) => format!("expected the challenge \"AUTH <nonce>\" first, got nothing within {} ms: send it as soon as a client connects", wait.as_millis()),
                });
            };
            let line: Vec<u8> = buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line).trim().to_string();
            let Some(nonce) = line
                .strip_prefix("AUTH ")
                .map(str::trim)
                .filter(|n| !n.is_empty())
            else {
                return Verdict::Failed(format!(
                    "expected the challenge \"AUTH <nonce>\" first, got {}",
                    quote(&line)
                ));
            };
            let answer = format!("{}\n", crate::crypto::proof(secret, nonce));
            rec.emit(shared::EventKind::Send {
                data: Recorder::data(answer.as_bytes()),
            });
            match stream.write_all(answer.as_bytes()).await {
                Ok(()) => Verdict::Passed,
                Err(e) => Verdict::Failed(format!(
                    "sending the answer failed: {}",
                    explain(&e, Op::Send, Proto::Tcp, &target.to_string()).explanation
                )),
            }
        }
        Step::Expect {
            client,
            text,
            contains,
            timeout_ms,
            hints,
            decrypt: false,
        } => {
            let wait = timeout(timeout_ms);
            let (wanted, whole) = match (text, contains) {
                (Some(t), _) => (t.as_str(), true),
                (None, Some(c)) => (c.as_str(), false),
                (None, None) => ("", false),
            };
            let (got, sent, how) = match clients.get_mut(client) {
                Some(Client::Tcp {
                    stream,
                    buf,
                    closed,
                    rec,
                    last_sent,
                    ..
                }) => {
                    let done = |buf: &[u8]| {
                        if whole {
                            buf.len() >= wanted.len()
                        } else {
                            String::from_utf8_lossy(buf).contains(wanted)
                        }
                    };
                    let how = read_until(stream, rec, buf, closed, wait, done).await;
                    let got = String::from_utf8_lossy(buf).into_owned();
                    let matched = if whole {
                        buf.starts_with(wanted.as_bytes())
                    } else {
                        got.contains(wanted)
                    };
                    if matched {
                        let upto = if whole {
                            wanted.len()
                        } else {
                            got.find(wanted).map_or(0, |i| i + wanted.len())
                        };
                        buf.drain(..upto.min(buf.len()));
                        return Verdict::Passed;
                    }
                    (got, last_sent.clone(), how)
                }
                Some(Client::Udp {
                    socket,
                    peer,
                    pending,
                    last_sent,
                }) => {
                    let mut datagram = vec![0u8; 65536];
                    let received = match pending.take() {
                        Some(first) => {
                            let n = first.len();
                            datagram[..n].copy_from_slice(&first);
                            Ok(Ok((n, *peer)))
                        }
                        None => tokio::time::timeout(wait, socket.recv_from(&mut datagram)).await,
                    };
                    match received {
                        Ok(Ok((n, from))) => {
                            let got = String::from_utf8_lossy(&datagram[..n]).into_owned();
                            if from.port() != peer.port() {
                                return Verdict::Failed(format!(
                                    "the datagram came from {from}, not from {peer}: reply with the socket the datagram came to",
                                ));
                            }
                            let matched = if whole {
                                got == wanted
                            } else {
                                got.contains(wanted)
                            };
                            if matched {
                                return Verdict::Passed;
                            }
                            (got, last_sent.clone(), Read::Data)
                        }
                        Ok(Err(e)) => (
                            String::new(),
                            last_sent.clone(),
                            Read::Error(
                                explain(&e, Op::Recv, Proto::Udp, &target.to_string()).explanation,
                            ),
                        ),
                        Err(_) => (String::new(), last_sent.clone(), Read::Timeout),
                    }
                }
                None => return Verdict::Failed(format!("client {client} is not open")),
            };
            let expected = match (whole, check.program) {
                (true, Role::Server) => format!("expected {} back", quote(wanted)),
                (false, Role::Server) => format!("expected a reply containing {}", quote(wanted)),
                (true, Role::Client) => format!("expected the program to send {}", quote(wanted)),
                (false, Role::Client) => {
                    format!(
                        "expected the program to send something containing {}",
                        quote(wanted)
                    )
                }
            };
            let sent = if sent.is_empty() {
                String::new()
            } else {
                format!("sent {}, ", quote(&sent))
            };
            let got_words = match (&how, got.is_empty()) {
                (_, false) => format!("got {}", quote(&got)),
                (Read::Closed, true) => "got nothing: the server closed the connection".into(),
                (Read::Error(e), true) => format!("got nothing: {e}"),
                (_, true) => format!("got nothing within {} ms", wait.as_millis()),
            };
            let hint = hints
                .get(got.trim_end())
                .or_else(|| got.is_empty().then(|| hints.get("")).flatten())
                .map(|h| format!(": {h}"))
                .unwrap_or_default();
            Verdict::Failed(format!("{sent}{expected}, {got_words}{hint}"))
        }
        Step::ExpectAny {
            client,
            any_of,
            timeout_ms,
            hints,
        } => {
            let wait = timeout(timeout_ms);
            let (stream, rec, buf, closed) = match tcp(clients, client) {
                Ok(parts) => parts,
                Err(verdict) => return verdict,
            };
            let lower: Vec<String> = any_of.iter().map(|w| w.to_lowercase()).collect();
            // Where the first of them ends in what arrived, if one is there.
            let found = |buf: &[u8]| {
                let text = String::from_utf8_lossy(buf).to_lowercase();
                lower
                    .iter()
                    .filter_map(|w| text.find(w.as_str()).map(|i| i + w.len()))
                    .min()
            };
            let how = read_until(stream, rec, buf, closed, wait, |b| found(b).is_some()).await;
            if let Some(end) = found(buf) {
                // The rest of that line is part of it.
                let end = end.min(buf.len());
                let end = buf[end..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(end, |i| end + i + 1);
                buf.drain(..end);
                return Verdict::Passed;
            }
            let got = String::from_utf8_lossy(buf).into_owned();
            let hint = hints
                .get(got.trim_end())
                .map(|h| format!(": {h}"))
                .unwrap_or_default();
            let words: Vec<String> = any_of.iter().map(|w| quote(w)).collect();
            let got = match (how, got.is_empty()) {
                (_, false) => format!("got {}", quote(&got)),
                (Read::Closed, true) => "got nothing: the server closed the connection".into(),
                (Read::Error(e), true) => format!("got nothing: {e}"),
                (_, true) => format!("got nothing within {} ms", wait.as_millis()),
            };
            Verdict::Failed(format!(
                "expected a line with one of {}, {got}{hint}",
                words.join(", ")
            ))
        }
        Step::ExpectNot {
            client,
            contains,
            for_ms,
            why,
        } => {
            let (stream, rec, buf, closed) = match tcp(clients, client) {
                Ok(parts) => parts,
                Err(verdict) => return verdict,
            };
            let has = |b: &[u8]| String::from_utf8_lossy(b).contains(contains.as_str());
            read_until(
                stream,
                rec,
                buf,
                closed,
                Duration::from_millis(*for_ms),
                has,
            )
            .await;
            if has(buf) {
                return Verdict::Failed(format!(
                    "got {} back{}",
                    quote(&String::from_utf8_lossy(buf)),
                    why.as_deref().map(|w| format!(": {w}")).unwrap_or_default()
                ));
            }
            Verdict::Passed
        }
        Step::ExpectClose {
            client,
            timeout_ms,
            why,
        } => {
            let wait = timeout(timeout_ms);
            let (stream, rec, buf, closed) = match tcp(clients, client) {
                Ok(parts) => parts,
                Err(verdict) => return verdict,
            };
            let before = buf.len();
            match read_until(stream, rec, buf, closed, wait, |_| false).await {
                Read::Closed | Read::Error(_) => {
                    // Seen closed: answer with a reset, so that the server's side of the
                    // connection does not linger in TIME_WAIT on the lab's port (the next
                    // submission's server could not bind it without SO_REUSEADDR).
                    if let Some(Client::Tcp { stream, rec, .. }) = clients.remove(client) {
                        reset(&stream);
                        rec.emit(shared::EventKind::Close {
                            by: shared::ClosedBy::Peer,
                            reason: "the program closed the connection".into(),
                        });
                    }
                    Verdict::Passed
                }
                _ if buf.len() > before => Verdict::Failed(format!(
                    "expected the server to close the connection, but it sent {} and kept it open",
                    quote(&String::from_utf8_lossy(&buf[before..]))
                )),
                _ => Verdict::Failed(format!(
                    "the connection is still open after {} ms{}",
                    wait.as_millis(),
                    why.as_deref().map(|w| format!(": {w}")).unwrap_or_default()
                )),
            }
        }
        Step::ExpectOpen {
            client,
            for_ms,
            why,
        } => {
            let (stream, rec, buf, closed) = match tcp(clients, client) {
                Ok(parts) => parts,
                Err(verdict) => return verdict,
            };
            match read_until(
                stream,
                rec,
                buf,
                closed,
                Duration::from_millis(*for_ms),
                |_| false,
            )
            .await
            {
                Read::Closed | Read::Error(_) => Verdict::Failed(format!(
                    "the server closed the connection{}",
                    why.as_deref().map(|w| format!(": {w}")).unwrap_or_default()
                )),
                _ => Verdict::Passed,
            }
        }
        Step::ExpectSilence { client, for_ms } => {
            let wait = Duration::from_millis(*for_ms);
            match clients.get_mut(client) {
                Some(Client::Tcp {
                    stream,
                    buf,
                    closed,
                    rec,
                    ..
                }) => {
                    read_until(stream, rec, buf, closed, wait, |b| !b.is_empty()).await;
                    if buf.is_empty() {
                        Verdict::Passed
                    } else {
                        Verdict::Failed(format!(
                            "expected no reply, got {}: this server only prints what it receives",
                            quote(&String::from_utf8_lossy(buf))
                        ))
                    }
                }
                Some(Client::Udp {
                    socket, pending, ..
                }) => {
                    if let Some(first) = pending.take() {
                        return Verdict::Failed(format!(
                            "expected no reply, got {}",
                            quote(&String::from_utf8_lossy(&first))
                        ));
                    }
                    let mut datagram = vec![0u8; 65536];
                    match tokio::time::timeout(wait, socket.recv_from(&mut datagram)).await {
                        Ok(Ok((n, _))) => Verdict::Failed(format!(
                            "expected no reply, got {}",
                            quote(&String::from_utf8_lossy(&datagram[..n]))
                        )),
                        _ => Verdict::Passed,
                    }
                }
                None => Verdict::Failed(format!("client {client} is not open")),
            }
        }
        Step::ExpectOutput {
            contains,
            timeout_ms,
        } => {
            let Some(output) = output else {
                return Verdict::Skipped(
                    "skipped: what a program prints is seen only when the checker runs it (--program)"
                        .into(),
                );
            };
            let deadline = Instant::now() + timeout(timeout_ms);
            loop {
                // Registered before looking, so that nothing printed in between is missed.
                let more = output.more.notified();
                tokio::pin!(more);
                more.as_mut().enable();
                if output.text().contains(contains.as_str()) {
                    return Verdict::Passed;
                }
                if tokio::time::timeout_at(deadline, more).await.is_err() {
                    return Verdict::Failed(format!(
                        "the program did not print {} within {} ms",
                        quote(contains),
                        timeout(timeout_ms).as_millis()
                    ));
                }
            }
        }
        Step::Shutdown { client } => match clients.get_mut(client) {
            Some(Client::Tcp { stream, .. }) => match stream.shutdown().await {
                Ok(()) => Verdict::Passed,
                Err(e) => Verdict::Failed(format!("shutdown() failed: {e}")),
            },
            _ => Verdict::Failed(format!("client {client} is not a TCP connection")),
        },
        Step::ExpectFile {
            file,
            contains,
            same_as_sent,
            timeout_ms,
            why,
        } => {
            let Some(dir) = &ctx.dir else {
                return Verdict::Skipped(
                    "skipped: the program's files are seen only when the checker runs it (--program)".into(),
                );
            };
            let path = dir.join(file);
            let wanted = match same_as_sent.as_deref().map(|c| clients.get(c)) {
                Some(Some(Client::Tcp { sent, sent_len, .. })) => {
                    use sha2::Digest as _;
                    Some((hex::encode((**sent).clone().finalize()), *sent_len))
                }
                Some(_) => return Verdict::Failed("that client is not a TCP connection".into()),
                None => None,
            };
            let why = why.as_deref().map(|w| format!(": {w}")).unwrap_or_default();
            let deadline = Instant::now() + timeout(timeout_ms);
            loop {
                let (ok, state) = file_state(&path, contains.as_deref(), wanted.as_ref()).await;
                if ok {
                    return Verdict::Passed;
                }
                if Instant::now() >= deadline {
                    return Verdict::Failed(format!("{file} {state}{why}"));
                }
                // The program writes the file at its own pace; it is read again shortly.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Step::Close { client } => {
            if let Some(Client::Tcp {
                mut stream, rec, ..
            }) = clients.remove(client)
            {
                let _ = stream.shutdown().await;
                rec.emit(shared::EventKind::Close {
                    by: shared::ClosedBy::Local,
                    reason: "the checker's client closed it".into(),
                });
            }
            Verdict::Passed
        }
        Step::Abort { client } => {
            if let Some(Client::Tcp { stream, rec, .. }) = clients.remove(client) {
                reset(&stream);
                rec.emit(shared::EventKind::Close {
                    by: shared::ClosedBy::Local,
                    reason: "killed: the connection was reset".into(),
                });
            }
            Verdict::Passed
        }
        Step::Wait { ms } => {
            tokio::time::sleep(Duration::from_millis(*ms)).await;
            Verdict::Passed
        }
    }
}

/// Whether the file is as wanted, and if not, what it is: "does not exist", "has 0 bytes",
/// "has 1000 of the 10000000 bytes sent", "has the same size but other bytes".
async fn file_state(
    path: &std::path::Path,
    contains: Option<&str>,
    wanted: Option<&(String, u64)>,
) -> (bool, String) {
    use sha2::Digest as _;
    let meta = match tokio::fs::symlink_metadata(path).await {
        Ok(meta) if meta.is_file() => meta,
        Ok(_) => return (false, "is not a regular file".into()),
        Err(_) => return (false, "does not exist".into()),
    };
    if let Some((hash, len)) = wanted {
        if meta.len() != *len {
            return (false, format!("has {} of the {len} bytes sent", meta.len()));
        }
        let bytes = tokio::fs::read(path).await.unwrap_or_default();
        let same = hex::encode(sha2::Sha256::digest(&bytes)) == *hash;
        return (
            same,
            "has as many bytes as were sent, but not the same ones (SHA-256 differs)".into(),
        );
    }
    let Some(contains) = contains else {
        return (false, String::new());
    };
    // Read at most what a check's text can be, and a little: a log, not a disk.
    let mut text = Vec::new();
    if let Ok(file) = tokio::fs::File::open(path).await {
        let _ = file
            .take(super::scenario::MAX_TEXT as u64 * 4)
            .read_to_end(&mut text)
            .await;
    }
    let text = String::from_utf8_lossy(&text);
    if text.contains(contains) {
        return (true, String::new());
    }
    (
        false,
        format!(
            "does not contain {} (it has {} bytes{})",
            quote(contains),
            meta.len(),
            if text.is_empty() {
                String::new()
            } else {
                format!(": {}", quote(&text))
            }
        ),
    )
}

/// The check's Fernet cipher (its key was checked when the scenario was read).
fn cipher(check: &Check) -> Result<fernet::Fernet, String> {
    let key = check.fernet_key.as_deref().unwrap_or_default();
    crate::crypto::cipher(key).map_err(|e| e.explanation)
}

/// A TCP client's stream, recording, unread bytes and whether it was closed; or the verdict
/// for a step that needs a TCP connection and names something else.
#[allow(clippy::type_complexity)]
fn tcp<'a>(
    clients: &'a mut HashMap<String, Client>,
    client: &str,
) -> Result<(&'a mut TcpStream, &'a Rec, &'a mut Vec<u8>, &'a mut bool), Verdict> {
    match clients.get_mut(client) {
        Some(Client::Tcp {
            stream,
            rec,
            buf,
            closed,
            ..
        }) => Ok((stream, rec, buf, closed)),
        _ => Err(Verdict::Failed(format!(
            "client {client} is not a TCP connection"
        ))),
    }
}

/// How a read ended.
enum Read {
    /// `done` said enough arrived.
    Data,
    Timeout,
    /// The server closed its side (recv() returned 0 bytes).
    Closed,
    /// The connection broke (a reset), explained.
    Error(String),
}

/// Reads into `buf` until `done(buf)`, the connection ends, or `wait` passes.
async fn read_until(
    stream: &mut TcpStream,
    rec: &Rec,
    buf: &mut Vec<u8>,
    closed: &mut bool,
    wait: Duration,
    done: impl Fn(&[u8]) -> bool,
) -> Read {
    let deadline = Instant::now() + wait;
    let mut chunk = [0u8; 8192];
    loop {
        if done(buf) {
            return Read::Data;
        }
        if *closed {
            return Read::Closed;
        }
        // A check keeps what a reply holds, not more: a server that floods is cut off here.
        if buf.len() > super::scenario::MAX_TEXT * 2 {
            return Read::Data;
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return Read::Timeout,
            Ok(Ok(0)) => {
                *closed = true;
                rec.emit(shared::EventKind::Eof);
                return Read::Closed;
            }
            Ok(Ok(n)) => {
                rec.emit(shared::EventKind::Recv {
                    data: Recorder::data(&chunk[..n]),
                    rtt_us: None,
                });
                buf.extend_from_slice(&chunk[..n]);
            }
            Ok(Err(e)) => {
                *closed = true;
                let info = explain(&e, Op::Recv, Proto::Tcp, "the server");
                rec.emit(shared::EventKind::Error {
                    op: "recv".into(),
                    error: info.clone(),
                });
                return Read::Error(info.explanation);
            }
        }
    }
}

/// Closes with a reset (SO_LINGER 0), as the kernel does for a killed program with unread
/// data or a crash: the server's next recv() fails instead of returning 0.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}
