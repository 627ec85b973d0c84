//! One WebSocket session: the hello (version and token), then requests in and replies and
//! event batches out.
//!
//! Until its hello is accepted a connection holds only a place among the waiting ones (a
//! newcomer pushes the oldest out, `admission`) and may send no more than a few control
//! frames; only then does it take one of the `max_sessions` places.
//!
//! A writer task owns the socket's sending half. It sends the welcome (the endpoints and the
//! first part of the history), then the rest of the history in batches, then events as they
//! come: a pump moves them from the log's live stream into this viewer's own queue, bounded in
//! bytes, dropping the oldest (and saying "missed N") when the page reads too slowly, so that
//! nothing else ever waits for it. A write that the page does not take within three ping
//! intervals (60 s) ends the session: the limit holds from the first byte of the welcome.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use shared::{
    close_code, ClientMessage, ErrorInfo, ErrorKind, Event, Hello, Outcome, Reply, ServerMessage,
    Snapshot, Welcome, PROTOCOL_VERSION,
};
use tokio::sync::{broadcast, mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::admission::Ticket;
use crate::hub::Hub;

/// How long a new session may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Control frames (pings, pongs) a connection may send before its hello. A browser sends
/// none; each ping is owed a pong, so a peer without the token that floods them is closed
/// rather than answered.
const MAX_CONTROL_BEFORE_HELLO: usize = 8;
/// Most events in one batch message.
const MAX_BATCH: usize = 1024;
/// Most bytes of events in one batch message (a larger single event still goes, alone): keeps
/// each message well within what browsers and client libraries accept.
const MAX_BATCH_BYTES: usize = 512 * 1024;
/// Most commands one session may have running at once.
const MAX_IN_FLIGHT: usize = 32;
/// How long a closing session waits for its last messages to go out.
const WRITER_WAIT: Duration = Duration::from_secs(5);
/// Standard close code for a message over the size limit.
const CLOSE_TOO_BIG: u16 = 1009;
/// Standard close code for a bridge that is going away.
const CLOSE_GOING_AWAY: u16 = 1001;
/// Standard close code for a peer that broke the rules (control frames before its hello).
const CLOSE_POLICY: u16 = 1008;

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

/// What the reader asks the writer to send.
enum Outgoing {
    Message(Box<ServerMessage>),
    /// A WebSocket ping: is the page still there?
    Ping,
    Close(u16, &'static str),
}

/// Runs a session until the client leaves, the socket fails or the bridge shuts down.
/// `waiting` is this connection's place among those that have not said hello; `sessions`
/// the places of accepted sessions.
pub(crate) async fn run(
    socket: WebSocket,
    hub: Arc<Hub>,
    waiting: Ticket,
    sessions: Arc<Semaphore>,
) {
    let (mut sink, mut stream) = socket.split();
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
            // A peer that does not read must not hold this task either.
            let _ = tokio::time::timeout(WRITER_WAIT, async {
                send_json(&mut sink, &ServerMessage::Fatal { error }).await?;
                sink.send(close_message(code, "session refused")).await
            })
            .await;
            return;
        }
    };
    let (endpoints, subscription) = hub.subscribe();
    let mut history = subscription.history;
    let (first, _) = take_batch(&mut history);
    let welcome = ServerMessage::Welcome(Box::new(Welcome {
        protocol: PROTOCOL_VERSION,
        bridge_version: env!("CARGO_PKG_VERSION").to_string(),
        started_unix_ms: hub.log.started_unix_ms(),
        now_us: hub.log.now_us(),
        scope: hub.config.scope,
        limits: hub.config.limits(),
        snapshot: Snapshot {
            endpoints,
            events: first.iter().map(|e| Event::clone(e)).collect(),
            history_dropped: subscription.history_dropped,
        },
    }));
    let viewer = Viewer {
        welcome,
        history,
        live: subscription.live,
    };
    let (outgoing, outbox) = mpsc::channel(64);
    let writer_done = CancellationToken::new();
    let writer = tokio::spawn(write_loop(
        sink,
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

/// What a new viewer is sent, in order: the welcome, the rest of the history, then the live
/// stream.
struct Viewer {
    welcome: ServerMessage,
    history: VecDeque<Arc<Event>>,
    live: broadcast::Receiver<Arc<Event>>,
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
    let mut uploads = SessionUploads {
        hub: hub.clone(),
        ids: Vec::new(),
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
        // Uploads are carried out one after another, in the order their chunks arrived.
        if is_upload(&request.command) {
            let outcome = crate::commands::execute(hub, request.command).await;
            if let Outcome::Ok(shared::ReplyData::Upload { upload }) = &outcome {
                uploads.ids.push(*upload);
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

/// Whether a command is part of an upload (carried out in order, in the session's loop).
fn is_upload(command: &shared::Command) -> bool {
    use shared::Command::*;
    matches!(
        command,
        UploadStart { .. } | UploadChunk { .. } | UploadFinish { .. }
    )
}

/// The uploads a session started; those still open when it ends are dropped.
struct SessionUploads {
    hub: Arc<Hub>,
    ids: Vec<u64>,
}

impl Drop for SessionUploads {
    fn drop(&mut self) {
        for id in &self.ids {
            self.hub.uploads.abort(*id);
        }
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
        ids.retain(|id| hub.alive(*id));
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

/// The events waiting for one viewer: the history not yet sent (shared with the log, so it
/// costs nothing extra), then live events, bounded in bytes.
#[derive(Default)]
struct ViewerQueue {
    history: VecDeque<Arc<Event>>,
    events: VecDeque<Arc<Event>>,
    bytes: usize,
    missed: u64,
}

/// Takes up to [`MAX_BATCH`] events or about [`MAX_BATCH_BYTES`] off the front of `from`;
/// returns them and the bytes they hold.
fn take_batch(from: &mut VecDeque<Arc<Event>>) -> (Vec<Arc<Event>>, usize) {
    let mut batch = Vec::new();
    let mut bytes = 0;
    while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
        let Some(event) = from.pop_front() else {
            break;
        };
        bytes += event.kept_bytes();
        batch.push(event);
    }
    (batch, bytes)
}

/// Moves events from the bridge's stream into this viewer's queue as they come, so that the
/// shared stream never waits for a slow viewer; drops (and counts) the oldest that do not fit.
///
/// The budget (`Config::viewer_bytes`, 8 MiB) is what a page that stops reading costs: before
/// it, the shared stream kept 4096 events for it, which at 64 KiB each was 256 MiB.
async fn pump(
    budget: usize,
    mut live: broadcast::Receiver<Arc<Event>>,
    queue: Arc<std::sync::Mutex<ViewerQueue>>,
    wake: Arc<tokio::sync::Notify>,
    done: CancellationToken,
) {
    loop {
        let received = tokio::select! {
            _ = done.cancelled() => return,
            received = live.recv() => received,
        };
        {
            let mut queue = queue.lock().expect("viewer queue lock");
            match received {
                Ok(event) => {
                    // Over budget, the oldest go: a page that catches up sees what is
                    // happening now, and is told how many it missed before that.
                    let size = event.kept_bytes();
                    while queue.bytes + size > budget {
                        let Some(old) = queue.events.pop_front() else {
                            break;
                        };
                        queue.bytes -= old.kept_bytes();
                        queue.missed += 1;
                    }
                    queue.bytes += size;
                    queue.events.push_back(event);
                }
                Err(broadcast::error::RecvError::Lagged(count)) => queue.missed += count,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
        wake.notify_one();
    }
}

/// Sends the welcome, then replies and event batches until told to stop; cancels `done` when
/// it ends. A page that takes no write within three ping intervals is given up on.
async fn write_loop(
    sink: Sink,
    viewer: Viewer,
    mut outbox: mpsc::Receiver<Outgoing>,
    hub: Arc<Hub>,
    done: CancellationToken,
) {
    let mut sink = Writer {
        sink,
        stall: hub.config.ping_every * 3,
    };
    let queue = Arc::new(std::sync::Mutex::new(ViewerQueue {
        history: viewer.history,
        ..ViewerQueue::default()
    }));
    let wake = Arc::new(tokio::sync::Notify::new());
    let budget = hub.config.viewer_bytes;
    // The pump stops with `done`, which this loop cancels however it ends (even aborted).
    tokio::spawn(pump(
        budget,
        viewer.live,
        queue.clone(),
        wake.clone(),
        done.clone(),
    ));
    let _done = done.drop_guard();
    if sink.json(&viewer.welcome).await.is_err() {
        return;
    }
    drop(viewer.welcome);
    wake.notify_one();
    loop {
        let sent = tokio::select! {
            biased;
            _ = hub.root.stopped() => {
                sink.stall = WRITER_WAIT;
                let error = ErrorInfo::new(ErrorKind::Other, "The bridge is shutting down.");
                if sink.json(&ServerMessage::Fatal { error }).await.is_ok() {
                    let _ = sink.send(close_message(CLOSE_GOING_AWAY, "bridge shutting down")).await;
                }
                return;
            }
            out = outbox.recv() => match out {
                None => return,
                Some(Outgoing::Message(message)) => sink.json(&message).await,
                Some(Outgoing::Ping) => sink.send(Message::Ping(Vec::new().into())).await,
                Some(Outgoing::Close(code, reason)) => {
                    let _ = sink.send(close_message(code, reason)).await;
                    return;
                }
            },
            _ = wake.notified() => send_waiting(&mut sink, &queue, &wake).await,
        };
        if sent.is_err() {
            return;
        }
    }
}

/// The socket's sending half, with a time limit on every write.
struct Writer {
    sink: Sink,
    /// How long one write may wait for the page to read.
    stall: Duration,
}

impl Writer {
    async fn send(&mut self, message: Message) -> Result<(), axum::Error> {
        match tokio::time::timeout(self.stall, self.sink.send(message)).await {
            Ok(sent) => sent,
            Err(_) => {
                tracing::info!(
                    "closing a session whose page took nothing for {} s",
                    self.stall.as_secs()
                );
                Err(axum::Error::new(std::io::Error::from(
                    std::io::ErrorKind::TimedOut,
                )))
            }
        }
    }

    async fn json(&mut self, message: &impl Serialize) -> Result<(), axum::Error> {
        let text = serde_json::to_string(message).map_err(axum::Error::new)?;
        self.send(Message::Text(text.into())).await
    }
}

/// The wire form of an events message, borrowing the shared events instead of copying them.
#[derive(Serialize)]
#[serde(tag = "type", rename = "events")]
struct EventsOut<'a> {
    events: &'a [Arc<Event>],
}

/// Sends what waits as one message (the history first), then says how many were missed, if
/// any. An idle bridge sends each event at once; a busy one sends big batches, because events
/// pile up while a batch is written.
async fn send_waiting(
    sink: &mut Writer,
    queue: &std::sync::Mutex<ViewerQueue>,
    wake: &tokio::sync::Notify,
) -> Result<(), axum::Error> {
    let (batch, missed, more) = {
        let mut queue = queue.lock().expect("viewer queue lock");
        let batch = if queue.history.is_empty() {
            let (batch, bytes) = take_batch(&mut queue.events);
            queue.bytes -= bytes;
            batch
        } else {
            take_batch(&mut queue.history).0
        };
        let missed = std::mem::take(&mut queue.missed);
        let more = !queue.events.is_empty() || !queue.history.is_empty();
        (batch, missed, more)
    };
    if more {
        wake.notify_one();
    }
    if !batch.is_empty() {
        sink.json(&EventsOut { events: &batch }).await?;
    }
    if missed > 0 {
        sink.json(&ServerMessage::Missed { count: missed }).await?;
    }
    Ok(())
}

async fn send_json(sink: &mut Sink, message: &impl Serialize) -> Result<(), axum::Error> {
    let text = serde_json::to_string(message).map_err(axum::Error::new)?;
    sink.send(Message::Text(text.into())).await
}

fn close_message(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}
