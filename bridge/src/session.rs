//! One WebSocket session: the hello (version and token), the welcome with the snapshot, then
//! requests in and replies and event batches out.
//!
//! A writer task owns the socket's sending half. Events reach it through the log's bounded
//! broadcast channel: if this viewer reads too slowly the channel overtakes it and the writer
//! sends a "missed N events" marker; nothing else waits for it.

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
use tokio::sync::{broadcast, mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

/// How long a new session may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Most events in one batch message.
const MAX_BATCH: usize = 1024;
/// Most payload bytes in one batch message (a larger single event still goes, alone): keeps
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
pub(crate) async fn run(socket: WebSocket, hub: Arc<Hub>, _permit: OwnedSemaphorePermit) {
    let (mut sink, mut stream) = socket.split();
    if let Err((code, error)) = hello(&mut stream, &hub).await {
        tracing::info!(code, "refused a session: {}", error.explanation);
        let _ = send_json(&mut sink, &ServerMessage::Fatal { error }).await;
        let _ = sink.send(close_message(code, "hello refused")).await;
        return;
    }
    let (endpoints, subscription) = hub.subscribe();
    let welcome = ServerMessage::Welcome(Box::new(Welcome {
        protocol: PROTOCOL_VERSION,
        bridge_version: env!("CARGO_PKG_VERSION").to_string(),
        started_unix_ms: hub.log.started_unix_ms(),
        now_us: hub.log.now_us(),
        scope: hub.config.scope,
        limits: hub.config.limits(),
        snapshot: Snapshot {
            endpoints,
            events: subscription.history,
            history_dropped: subscription.history_dropped,
        },
    }));
    if send_json(&mut sink, &welcome).await.is_err() {
        return;
    }
    let (outgoing, outbox) = mpsc::channel(64);
    let writer_done = CancellationToken::new();
    let writer = tokio::spawn(write_loop(
        sink,
        subscription.live,
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
    let first = tokio::time::timeout(HELLO_TIMEOUT, async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(text))) => return Some(text),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => return None,
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
    .ok_or_else(|| unauthorized("The session ended before its hello."))?;
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
        tokio::spawn(async move {
            tracing::debug!(id = request.id, op = request.command.name(), "command");
            let outcome = crate::commands::execute(&hub, request.command).await;
            if creates {
                sockets.settle(&outcome);
            }
            let _ = outgoing.send(reply(Some(request.id), outcome)).await;
            drop(permit);
        });
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

/// The events waiting for one viewer, bounded in bytes.
#[derive(Default)]
struct ViewerQueue {
    events: std::collections::VecDeque<Arc<Event>>,
    bytes: usize,
    missed: u64,
}

/// What an event costs to keep: its payload and a little more.
fn event_bytes(event: &Event) -> usize {
    256 + event.kind.data().map_or(0, |d| d.kept_bytes())
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
                    let size = event_bytes(&event);
                    while queue.bytes + size > budget {
                        let Some(old) = queue.events.pop_front() else {
                            break;
                        };
                        queue.bytes -= event_bytes(&old);
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

/// Sends replies and event batches until told to stop; cancels `done` when it ends.
async fn write_loop(
    mut sink: Sink,
    live: broadcast::Receiver<Arc<Event>>,
    mut outbox: mpsc::Receiver<Outgoing>,
    hub: Arc<Hub>,
    done: CancellationToken,
) {
    let queue = Arc::new(std::sync::Mutex::new(ViewerQueue::default()));
    let wake = Arc::new(tokio::sync::Notify::new());
    let budget = hub.config.viewer_bytes;
    // The pump stops with `done`, which this loop cancels however it ends (even aborted).
    tokio::spawn(pump(
        budget,
        live,
        queue.clone(),
        wake.clone(),
        done.clone(),
    ));
    let _done = done.drop_guard();
    loop {
        let sent = tokio::select! {
            biased;
            _ = hub.root.stopped() => {
                let error = ErrorInfo::new(ErrorKind::Other, "The bridge is shutting down.");
                let _ = send_json(&mut sink, &ServerMessage::Fatal { error }).await;
                let _ = sink.send(close_message(CLOSE_GOING_AWAY, "bridge shutting down")).await;
                return;
            }
            out = outbox.recv() => match out {
                None => return,
                Some(Outgoing::Message(message)) => send_json(&mut sink, &message).await,
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

/// The wire form of an events message, borrowing the shared events instead of copying them.
#[derive(Serialize)]
#[serde(tag = "type", rename = "events")]
struct EventsOut<'a> {
    events: &'a [Arc<Event>],
}

/// Sends what waits as one message (up to [`MAX_BATCH`] events or about [`MAX_BATCH_BYTES`]),
/// then says how many were missed, if any. An idle bridge sends each event at once; a busy one
/// sends big batches, because events pile up while a batch is written.
async fn send_waiting(
    sink: &mut Sink,
    queue: &std::sync::Mutex<ViewerQueue>,
    wake: &tokio::sync::Notify,
) -> Result<(), axum::Error> {
    let (batch, missed, more) = {
        let mut queue = queue.lock().expect("viewer queue lock");
        let mut batch = Vec::new();
        let mut payload = 0;
        while batch.len() < MAX_BATCH && payload < MAX_BATCH_BYTES {
            let Some(event) = queue.events.pop_front() else {
                break;
            };
            queue.bytes -= event_bytes(&event);
            payload += event.kind.data().map_or(0, |d| d.len);
            batch.push(event);
        }
        let missed = std::mem::take(&mut queue.missed);
        (batch, missed, !queue.events.is_empty())
    };
    if more {
        wake.notify_one();
    }
    if !batch.is_empty() {
        send_json(sink, &EventsOut { events: &batch }).await?;
    }
    if missed > 0 {
        send_json(sink, &ServerMessage::Missed { count: missed }).await?;
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
