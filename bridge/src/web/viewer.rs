//! One viewer's side of a session: what the page is sent, in order (the welcome with the
//! endpoints and the first part of the history, the rest of the history in batches, then live
//! events as they come), through a queue of its own.
//!
//! The event log puts live events straight into this viewer's feed, bounded in bytes
//! (`Config::viewer_bytes`, 8 MiB), dropping the oldest (and saying "missed N") when the page
//! reads too slowly, so that nothing else ever waits for it. A write that the page does not take within three ping intervals
//! (60 s) ends the session: the limit holds from the first byte of the welcome.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use serde::Serialize;
use shared::{ErrorInfo, ErrorKind, Event, ServerMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::core::event_log::Feed;
use crate::hub::Hub;

/// Most events in one batch message.
const MAX_BATCH: usize = 1024;
/// Most bytes of events in one batch message (a larger single event still goes, alone): keeps
/// each message well within what browsers and client libraries accept.
const MAX_BATCH_BYTES: usize = 512 * 1024;
/// How long a closing session waits for its last messages to go out.
pub(super) const WRITER_WAIT: Duration = Duration::from_secs(5);
/// Standard close code for a bridge that is going away.
pub(super) const CLOSE_GOING_AWAY: u16 = 1001;

pub(super) type Sink = SplitSink<WebSocket, Message>;

/// What the reader asks the writer to send.
pub(super) enum Outgoing {
    Message(Box<ServerMessage>),
    /// A WebSocket ping: is the page still there?
    Ping,
    Close(u16, &'static str),
}

/// What a new viewer is sent, in order: the welcome, the rest of the history (which the
/// session puts into the feed's queue), then the live events the log puts there.
pub(super) struct Viewer {
    pub(super) welcome: ServerMessage,
    pub(super) feed: Arc<Feed>,
}

/// Takes up to [`MAX_BATCH`] events or about [`MAX_BATCH_BYTES`] off the front of `from`;
/// returns them and the bytes they hold.
pub(super) fn take_batch(from: &mut VecDeque<Arc<Event>>) -> (Vec<Arc<Event>>, usize) {
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

/// Sends the welcome, then replies and event batches until told to stop; cancels `done` when
/// it ends. A page that takes no write within three ping intervals is given up on.
pub(super) async fn write_loop(
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
    let feed = viewer.feed;
    let _done = done.drop_guard();
    if sink.json(&viewer.welcome).await.is_err() {
        return;
    }
    drop(viewer.welcome);
    feed.wake.notify_one();
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
            _ = feed.wake.notified() => send_waiting(&mut sink, &feed).await,
        };
        if sent.is_err() {
            return;
        }
    }
}

/// The socket's sending half, with a time limit on every write.
pub(super) struct Writer {
    pub(super) sink: Sink,
    /// How long one write may wait for the page to read.
    pub(super) stall: Duration,
}

impl Writer {
    pub(super) async fn send(&mut self, message: Message) -> Result<(), axum::Error> {
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

    pub(super) async fn json(&mut self, message: &impl Serialize) -> Result<(), axum::Error> {
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
async fn send_waiting(sink: &mut Writer, feed: &Feed) -> Result<(), axum::Error> {
    let (batch, missed, more) = {
        let mut queue = feed.lock();
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
        feed.wake.notify_one();
    }
    if !batch.is_empty() {
        sink.json(&EventsOut { events: &batch }).await?;
    }
    if missed > 0 {
        sink.json(&ServerMessage::Missed { count: missed }).await?;
    }
    Ok(())
}

pub(super) fn close_message(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}
