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

use super::scenario::{Check, Step, Transport};
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
}

pub type Output = Arc<Printed>;

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
    },
    Udp {
        socket: UdpSocket,
        last_sent: String,
    },
}

/// Shows a text the way the report quotes it: in double quotes, cut at 200 characters.
pub fn quote(text: &str) -> String {
    let mut shown: String = text.chars().take(200).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

fn describe(step: &Step) -> String {
    match step {
        Step::Connect { client } => format!("connect client {client}"),
        Step::Send {
            client,
            text,
            bytes,
            pause_ms,
        } => {
            let what = match (text, bytes) {
                (Some(t), _) => quote(t),
                (None, Some(n)) => format!("{n} bytes"),
                (None, None) => String::new(),
            };
            match pause_ms {
                Some(ms) => format!("send {what} from {client}, in two pieces {ms} ms apart"),
                None => format!("send {what} from {client}"),
            }
        }
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
        Step::ExpectClose { client, .. } => format!("the server closes {client}'s connection"),
        Step::ExpectOpen { client, for_ms, .. } => {
            format!("the server keeps {client}'s connection open for {for_ms} ms")
        }
        Step::ExpectSilence { client, for_ms } => {
            format!("no reply to {client} within {for_ms} ms")
        }
        Step::ExpectOutput { contains, .. } => format!("the program prints {}", quote(contains)),
        Step::Close { client } => format!("close client {client}"),
        Step::Abort { client } => {
            format!("client {client} is killed (its kernel resets the connection)")
        }
        Step::Wait { ms } => format!("wait {ms} ms"),
    }
}

/// Runs `check` against the server at `target`. `output` is what the program prints, when
/// the checker runs it (for `expect_output`, and to say what a crashed server said last).
pub async fn run(check: &Check, target: SocketAddr, output: Option<&Output>) -> Vec<StepResult> {
    let mut steps: Vec<(Step, bool)> = check.steps.iter().map(|s| (s.clone(), false)).collect();
    if check.robustness {
        for step in robustness(check) {
            steps.push((step, true));
        }
        for step in &check.steps {
            steps.push((step.renamed("-again"), false));
        }
    }
    let mut clients: HashMap<String, Client> = HashMap::new();
    let mut results = Vec::new();
    let mut failed = false;
    for (step, lenient) in &steps {
        let what = describe(step);
        if failed {
            results.push(StepResult {
                what,
                verdict: Verdict::Skipped("not run: an earlier step failed".into()),
            });
            continue;
        }
        let mut verdict = one(check, step, target, output, &mut clients).await;
        // The unkind clients' own sends may fail (the server closed on them): only what the
        // server does next counts.
        if *lenient && matches!(verdict, Verdict::Failed(_)) {
            verdict = Verdict::Passed;
        }
        if let Verdict::Failed(why) = &verdict {
            failed = true;
            let why = match output.map(tail) {
                Some(last) if !last.is_empty() => {
                    format!("{why}\nThe program's last output:\n{last}")
                }
                _ => why.clone(),
            };
            verdict = Verdict::Failed(why);
        }
        results.push(StepResult { what, verdict });
    }
    results
}

/// The last lines the program printed (at most 12).
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
    output: Option<&Output>,
    clients: &mut HashMap<String, Client>,
) -> Verdict {
    let timeout = |ms: &Option<u64>| Duration::from_millis(ms.unwrap_or(check.timeout_ms));
    match step {
        Step::Connect { client } => match check.transport {
            Transport::Tcp => {
                let connect = TcpStream::connect(target);
                match tokio::time::timeout(Duration::from_millis(check.timeout_ms), connect).await {
                    Ok(Ok(stream)) => {
                        let _ = stream.set_nodelay(true);
                        clients.insert(
                            client.clone(),
                            Client::Tcp {
                                stream,
                                buf: Vec::new(),
                                closed: false,
                                last_sent: String::new(),
                            },
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
                                socket,
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
        } => {
            let data = match (text, bytes) {
                (Some(t), _) => t.as_bytes().to_vec(),
                (None, Some(n)) => generated(*n),
                (None, None) => Vec::new(),
            };
            let shown = text
                .clone()
                .unwrap_or_else(|| format!("{} bytes", data.len()));
            match clients.get_mut(client) {
                Some(Client::Tcp {
                    stream, last_sent, ..
                }) => {
                    *last_sent = shown;
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
                Some(Client::Udp { socket, last_sent }) => {
                    *last_sent = shown;
                    match socket.send_to(&data, target).await {
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
                    last_sent,
                }) => {
                    let done = |buf: &[u8]| {
                        if whole {
                            buf.len() >= wanted.len()
                        } else {
                            String::from_utf8_lossy(buf).contains(wanted)
                        }
                    };
                    let how = read_until(stream, buf, closed, wait, done).await;
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
                Some(Client::Udp { socket, last_sent }) => {
                    let mut datagram = vec![0u8; 65536];
                    match tokio::time::timeout(wait, socket.recv_from(&mut datagram)).await {
                        Ok(Ok((n, from))) => {
                            let got = String::from_utf8_lossy(&datagram[..n]).into_owned();
                            if from.port() != target.port() {
                                return Verdict::Failed(format!(
                                    "the reply came from {from}, not from the server's port {}: reply with the server's own socket",
                                    target.port()
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
            let expected = if whole {
                format!("expected {} back", quote(wanted))
            } else {
                format!("expected a reply containing {}", quote(wanted))
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
        Step::ExpectClose {
            client,
            timeout_ms,
            why,
        } => {
            let wait = timeout(timeout_ms);
            let Some(Client::Tcp {
                stream,
                buf,
                closed,
                ..
            }) = clients.get_mut(client)
            else {
                return Verdict::Failed(format!("client {client} is not a TCP connection"));
            };
            let before = buf.len();
            match read_until(stream, buf, closed, wait, |_| false).await {
                Read::Closed => Verdict::Passed,
                Read::Error(_) => Verdict::Passed,
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
            let Some(Client::Tcp {
                stream,
                buf,
                closed,
                ..
            }) = clients.get_mut(client)
            else {
                return Verdict::Failed(format!("client {client} is not a TCP connection"));
            };
            match read_until(stream, buf, closed, Duration::from_millis(*for_ms), |_| {
                false
            })
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
                    ..
                }) => {
                    read_until(stream, buf, closed, wait, |b| !b.is_empty()).await;
                    if buf.is_empty() {
                        Verdict::Passed
                    } else {
                        Verdict::Failed(format!(
                            "expected no reply, got {}: this server only prints what it receives",
                            quote(&String::from_utf8_lossy(buf))
                        ))
                    }
                }
                Some(Client::Udp { socket, .. }) => {
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
        Step::Close { client } => {
            if let Some(Client::Tcp { mut stream, .. }) = clients.remove(client) {
                let _ = stream.shutdown().await;
            }
            Verdict::Passed
        }
        Step::Abort { client } => {
            if let Some(Client::Tcp { stream, .. }) = clients.remove(client) {
                reset(&stream);
            }
            Verdict::Passed
        }
        Step::Wait { ms } => {
            tokio::time::sleep(Duration::from_millis(*ms)).await;
            Verdict::Passed
        }
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
                return Read::Closed;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => {
                *closed = true;
                return Read::Error(explain(&e, Op::Recv, Proto::Tcp, "the server").explanation);
            }
        }
    }
}

/// Closes with a reset (SO_LINGER 0), as the kernel does for a killed program with unread
/// data or a crash: the server's next recv() fails instead of returning 0.
fn reset(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads `size_of::<linger>()` bytes from a live struct.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
