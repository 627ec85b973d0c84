//! One WebSocket session: the hello (version and token), then requests in, each carried out
//! on its own (a connect may take seconds) and answered with one reply; what goes out to the
//! page is `viewer`'s job.
//!
//! Until its hello is accepted a connection holds only a place among the waiting ones (a
//! newcomer pushes the oldest out, `admission`) and may send no more than a few control
//! frames; only then does it take one of the `max_sessions` places. A session runs at most
//! so many sockets and commands at once, carries out its uploads in order, and its uploads
//! (and a comparison it asked for) end with it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use shared::{
    close_code, ClientMessage, ErrorInfo, ErrorKind, Event, Hello, Outcome, Reply, ServerMessage,
    Snapshot, Welcome, PROTOCOL_VERSION,
};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use super::admission::Ticket;
use super::viewer::{
    close_message, take_batch, write_loop, Outgoing, Viewer, Writer, CLOSE_GOING_AWAY, WRITER_WAIT,
};
use crate::core::event_log::{Feed, Subscription};
use crate::hub::Hub;

/// How long a new session may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Control frames (pings, pongs) a connection may send before its hello. A browser sends
/// none; each ping is owed a pong, so a peer without the token that floods them is closed
/// rather than answered.
const MAX_CONTROL_BEFORE_HELLO: usize = 8;
/// Most commands one session may have running at once.
const MAX_IN_FLIGHT: usize = 32;
/// Standard close code for a message over the size limit.
const CLOSE_TOO_BIG: u16 = 1009;
/// Standard close code for a peer that broke the rules (control frames before its hello).
const CLOSE_POLICY: u16 = 1008;

type Stream = SplitStream<WebSocket>;

/// Runs a session until the client leaves, the socket fails or the bridge shuts down.
/// `waiting` is this connection's place among those that have not said hello; `sessions`
/// the places of accepted sessions.
pub(crate) async fn run(
    socket: WebSocket,
    hub: Arc<Hub>,
    waiting: Ticket,
    sessions: Arc<Semaphore>,
) {
    let (sink, mut stream) = socket.split();
    let mut sink = Writer {
        sink,
        stall: WRITER_WAIT,
    };
    let said = tokio::select! {
        said = hello(&mut stream, &hub) => said,
        _ = waiting.evicted() => Err((
            close_code::TOO_MANY_SESSIONS,
            ErrorInfo::new(
                ErrorKind::LimitReached,
                "Too many connections were waiting to say hello; this one had waited longest.",
            ),
        )),
    };
    drop(waiting);
    let watch = said.as_ref().map_or(true, |hello| hello.watch);
    let admitted = said.and_then(|_| {
        sessions.try_acquire_owned().map_err(|_| {
            (
                close_code::TOO_MANY_SESSIONS,
                ErrorInfo::new(
                    ErrorKind::LimitReached,
                    format!(
                        "{} sessions are open, the most this bridge allows.",
                        hub.config.max_sessions
                    ),
                )
                .with_hint("Close another tab of the playground, then reload this one."),
            )
        })
    });
    let _permit = match admitted {
        Ok(permit) => permit,
        Err((code, error)) => {
            tracing::info!(code, "refused a session: {}", error.explanation);
            // A peer that does not read must not hold this task either (each write has
            // WRITER_WAIT).
            if sink.json(&ServerMessage::Fatal { error }).await.is_ok() {
                let _ = sink.send(close_message(code, "session refused")).await;
            }
            return;
        }
    };
    let (endpoints, mut subscription) = hub.registry.subscribe(hub.config.viewer_bytes);
    if !watch {
        // Replies only: no history, and a feed the log does not fill.
        subscription = Subscription {
            history: Default::default(),
            history_dropped: 0,
            feed: Feed::detached(),
        };
    }
    let mut history = subscription.history;
    let (first, _) = take_batch(&mut history);
    let welcome = ServerMessage::Welcome(Box::new(Welcome {
        protocol: PROTOCOL_VERSION,
        bridge_version: env!("CARGO_PKG_VERSION").to_string(),
        started_unix_ms: hub.log.started_unix_ms(),
        now_us: hub.log.now_us(),
        scope: hub.config.scope,
        limits: hub.config.limits(),
        data_dir: std::path::absolute(&hub.config.data_dir)
            .unwrap_or_else(|_| hub.config.data_dir.clone())
            .display()
            .to_string(),
        capture: Some(hub.capture_status()),
        snapshot: Snapshot {
            endpoints,
            events: first.iter().map(|e| Event::clone(e)).collect(),
            history_dropped: subscription.history_dropped,
        },
    }));
    subscription.feed.lock().history = history;
    let viewer = Viewer {
        welcome,
        feed: subscription.feed,
    };
    let (outgoing, outbox) = mpsc::channel(64);
    let writer_done = CancellationToken::new();
    let writer = tokio::spawn(write_loop(
        sink.sink,
        viewer,
        outbox,
        hub.clone(),
        writer_done.clone(),
    ));
    read_loop(stream, &hub, outgoing, writer_done).await;
    // A page that stopped reading may never take the close frame: give up on it after a while
    // (dropping the socket closes it).
    let abort = writer.abort_handle();
    if tokio::time::timeout(WRITER_WAIT, writer).await.is_err() {
        abort.abort();
    }
}

/// Waits for the hello and checks it; on refusal returns the close code and the reason.
async fn hello(stream: &mut Stream, hub: &Hub) -> Result<Hello, (u16, ErrorInfo)> {
    let unauthorized = |why: &str| {
        (
            close_code::UNAUTHORIZED,
            ErrorInfo::new(ErrorKind::Unauthorized, why)
                .with_hint("Open the URL the bridge printed: it carries the token."),
        )
    };
    let mut control = 0;
    let first = tokio::time::timeout(HELLO_TIMEOUT, async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(text))) => return Ok(text),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                    control += 1;
                    if control > MAX_CONTROL_BEFORE_HELLO {
                        return Err(true);
                    }
                }
                _ => return Err(false),
            }
        }
    })
    .await
    .map_err(|_| {
        (
            close_code::HELLO_TIMEOUT,
            ErrorInfo::new(
                ErrorKind::TimedOut,
                format!(
                    "No hello arrived within {} seconds.",
                    HELLO_TIMEOUT.as_secs()
                ),
            ),
        )
    })?
    .map_err(|flood| match flood {
        true => (
            CLOSE_POLICY,
            ErrorInfo::new(
                ErrorKind::InvalidRequest,
                format!(
                    "More than {MAX_CONTROL_BEFORE_HELLO} pings or pongs arrived before the hello."
                ),
            ),
        ),
        false => unauthorized("The session ended before its hello."),
    })?;
    let hello = match serde_json::from_str::<ClientMessage>(&first) {
        Ok(ClientMessage::Hello(hello)) => hello,
        _ => {
            return Err(unauthorized(
                "The first message must be a hello with the token.",
            ))
        }
    };
    if hello.protocol != PROTOCOL_VERSION {
        return Err((
            close_code::VERSION_MISMATCH,
            ErrorInfo::new(
                ErrorKind::VersionMismatch,
                format!(
                    "This bridge speaks protocol version {PROTOCOL_VERSION}, the page version {}.",
                    hello.protocol
                ),
            )
            .with_hint("Reload the page, or run the bridge and the page from the same build."),
        ));
    }
    if !hub.config.token.matches(&hello.token) {
        return Err(unauthorized("The token is missing or wrong."));
    }
    tracing::info!(client = ?hello.client, "session opened");
    Ok(hello)
}

async fn read_loop(
    mut stream: Stream,
    hub: &Arc<Hub>,
    outgoing: mpsc::Sender<Outgoing>,
    writer_done: CancellationToken,
) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let sockets = SessionSockets::new(hub.config.max_endpoints_per_session);
    // Work that belongs to this page (its uploads, a comparison) ends with it.
    let ended = CancellationToken::new();
    let _ended = ended.clone().drop_guard();
    let mut owned = SessionOwned {
        hub: hub.clone(),
        uploads: Vec::new(),
        programs: Vec::new(),
    };
    let ping_every = hub.config.ping_every;
    let mut heard = tokio::time::Instant::now();
    let mut check = tokio::time::interval(ping_every);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let message = tokio::select! {
            _ = writer_done.cancelled() => return,
            _ = check.tick() => {
                let quiet = heard.elapsed();
                if quiet >= ping_every * 3 {
                    tracing::info!("closing a session that answered nothing for {} s", quiet.as_secs());
                    let _ = outgoing.try_send(Outgoing::Close(CLOSE_GOING_AWAY, "no answer to pings"));
                    return;
                }
                if quiet >= ping_every {
                    let _ = outgoing.try_send(Outgoing::Ping);
                }
                continue;
            }
            message = stream.next() => message,
        };
        heard = tokio::time::Instant::now();
        let text = match message {
            None | Some(Ok(Message::Close(_))) => return,
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => {
                let error = invalid("The bridge reads JSON text messages, not binary ones.");
                let _ = outgoing.send(reply(None, Outcome::Error(error))).await;
                continue;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Err(err)) => {
                if is_too_big(err) {
                    tracing::warn!("closing a session that sent an oversized message");
                    let _ = outgoing
                        .send(Outgoing::Close(CLOSE_TOO_BIG, "message too big"))
                        .await;
                }
                return;
            }
        };
        let request = match serde_json::from_str::<ClientMessage>(&text) {
            Ok(ClientMessage::Request(request)) => request,
            Ok(ClientMessage::Hello(_)) => {
                let error = invalid("This session has already said hello.");
                let _ = outgoing.send(reply(None, Outcome::Error(error))).await;
                continue;
            }
            Err(err) => {
                let error = invalid(&format!("The message could not be read: {err}."));
                let _ = outgoing
                    .send(reply(request_id(&text), Outcome::Error(error)))
                    .await;
                continue;
            }
        };
        // Uploads and a terminal's trace records are carried out one after another, in the
        // order they arrived.
        if in_order(&request.command) {
            let attach = matches!(request.command, shared::Command::TraceAttach { .. });
            let outcome = crate::commands::execute(hub, request.command).await;
            match &outcome {
                Outcome::Ok(shared::ReplyData::Upload { upload }) => owned.uploads.push(*upload),
                Outcome::Ok(shared::ReplyData::Endpoint(info)) if attach => {
                    owned.programs.push(info.id)
                }
                _ => {}
            }
            let _ = outgoing.send(reply(Some(request.id), outcome)).await;
            continue;
        }
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            let error = ErrorInfo::new(
                ErrorKind::LimitReached,
                format!("This session already has {MAX_IN_FLIGHT} commands running."),
            )
            .with_hint("Wait for their replies before sending more.");
            let _ = outgoing
                .send(reply(Some(request.id), Outcome::Error(error)))
                .await;
            continue;
        };
        // A session runs at most so many sockets of its own (others may run theirs).
        let creates = creates_socket(&request.command);
        if creates {
            if let Err(error) = sockets.reserve(hub) {
                let _ = outgoing
                    .send(reply(Some(request.id), Outcome::Error(error)))
                    .await;
                continue;
            }
        }
        // Commands run on their own (a connect may take seconds) and reply when done.
        let hub = hub.clone();
        let outgoing = outgoing.clone();
        let sockets = sockets.clone();
        let page_gone =
            matches!(request.command, shared::Command::Compare(_)).then(|| ended.clone());
        tokio::spawn(async move {
            tracing::debug!(id = request.id, op = request.command.name(), "command");
            let command = crate::commands::execute(&hub, request.command);
            let outcome = match page_gone {
                None => command.await,
                Some(gone) => tokio::select! {
                    outcome = command => outcome,
                    _ = gone.cancelled() => return,
                },
            };
            if creates {
                sockets.settle(&outcome);
            }
            let _ = outgoing.send(reply(Some(request.id), outcome)).await;
            drop(permit);
        });
    }
}

/// Whether a command is part of an upload or of a terminal's trace (carried out in order, in
/// the session's loop).
fn in_order(command: &shared::Command) -> bool {
    use shared::Command::*;
    matches!(
        command,
        UploadStart { .. }
            | UploadChunk { .. }
            | UploadFinish { .. }
            | TraceAttach { .. }
            | TraceRecords { .. }
            | TraceExit { .. }
    )
}

/// What a session started that ends with it: uploads still open are dropped, and programs a
/// terminal attached are shown as ended (`bridge trace` went away without saying).
struct SessionOwned {
    hub: Arc<Hub>,
    uploads: Vec<u64>,
    programs: Vec<shared::EndpointId>,
}

impl Drop for SessionOwned {
    fn drop(&mut self) {
        for id in &self.uploads {
            self.hub.uploads.abort(*id);
        }
        crate::programs::detach_all(&self.hub, &self.programs);
    }
}

/// Whether a command makes a new endpoint (a socket that stays open).
fn creates_socket(command: &shared::Command) -> bool {
    use shared::Command::*;
    matches!(
        command,
        TcpServerStart(_) | UdpServerStart(_) | TcpClientConnect(_) | UdpClientOpen(_)
    )
}

/// The endpoints one session made that still run, and the ones being made.
#[derive(Clone)]
struct SessionSockets {
    max: usize,
    state: Arc<std::sync::Mutex<(Vec<shared::EndpointId>, usize)>>,
}

impl SessionSockets {
    fn new(max: usize) -> Self {
        SessionSockets {
            max,
            state: Arc::default(),
        }
    }

    /// Counts one more socket in the making, unless the session is at its limit.
    fn reserve(&self, hub: &Hub) -> Result<(), ErrorInfo> {
        let mut state = self.state.lock().expect("session sockets lock");
        let (ids, pending) = &mut *state;
        ids.retain(|id| hub.registry.alive(*id));
        if ids.len() + *pending >= self.max {
            return Err(ErrorInfo::new(
                ErrorKind::LimitReached,
                format!("This page already runs {} sockets, its most.", self.max),
            )
            .with_hint("Close or reset some of them first."));
        }
        *pending += 1;
        Ok(())
    }

    /// The socket in the making is made (and counted until it closes), or failed.
    fn settle(&self, outcome: &Outcome) {
        let mut state = self.state.lock().expect("session sockets lock");
        state.1 -= 1;
        if let Outcome::Ok(shared::ReplyData::Endpoint(info)) = outcome {
            state.0.push(info.id);
        }
    }
}

fn invalid(why: &str) -> ErrorInfo {
    ErrorInfo::new(ErrorKind::InvalidRequest, why)
}

fn reply(id: Option<u64>, outcome: Outcome) -> Outgoing {
    Outgoing::Message(Box::new(ServerMessage::Reply(Reply { id, outcome })))
}

/// The id of a request that failed to parse as a whole, so its reply can still name it.
fn request_id(text: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()?
        .get("id")?
        .as_u64()
}

/// Whether a read failed because a message or frame was over the size limit.
fn is_too_big(err: axum::Error) -> bool {
    let inner = err.into_inner();
    matches!(
        inner.downcast_ref::<tokio_tungstenite::tungstenite::Error>(),
        Some(tokio_tungstenite::tungstenite::Error::Capacity(_))
    )
}
