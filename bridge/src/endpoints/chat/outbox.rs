//! A chat member's way out: a round's bytes are written straight into its socket by whoever
//! delivers them (the room's fan-out task, or one of its parts), and only what the socket
//! cannot take at once waits in a bounded queue that the member's own writer task drains. `ncat --broker` gets its speed the
//! same way, by writing from the loop that read; a queue and a task wake-up per line per member
//! cost more than the write itself (measured: see docs/benchmarks.md).
//!
//! Order is kept: a line is written directly only when nothing of this member waits.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use shared::{ClosedBy, EventKind, Payload};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

use crate::core::ctx::Ctx;
use crate::core::lifeline::Lifeline;
use crate::explain::{explain, Op, Proto};

/// Bytes that may wait for one member (lines are batched, so bytes, not lines, bound memory).
pub(crate) const OUTBOX_BYTES: usize = 256 << 10;
/// Lines given to one writev().
const BATCH: usize = 64;

/// One line for one member.
#[derive(Clone)]
pub(crate) struct Outgoing {
    pub(crate) text: Arc<[u8]>,
    /// Recorded as this member's own `send` event (false in a big room: counted in `relayed`).
    pub(crate) shown: bool,
}

impl Outgoing {
    pub(crate) fn shown(text: &[u8]) -> Self {
        Outgoing {
            text: Arc::from(text),
            shown: true,
        }
    }
}

#[derive(Default)]
struct Waiting {
    lines: VecDeque<Arc<[u8]>>,
    /// Bytes of the first line already written.
    offset: usize,
    /// Bytes waiting, the first line's written part included.
    bytes: usize,
}

/// Why a line was not taken.
pub(crate) enum Refused {
    /// [`OUTBOX_BYTES`] wait already: try again later (flow control).
    Full,
    /// The member is gone (its socket failed or it was stopped).
    Gone,
}

pub(crate) struct Outbox {
    socket: OwnedWriteHalf,
    waiting: Mutex<Waiting>,
    /// Wakes the writer task when lines start to wait.
    wake: Notify,
    ctx: Ctx,
    /// When the member last took bytes, in ms since `epoch`.
    progress: AtomicU64,
    epoch: Instant,
}

impl Outbox {
    pub(crate) fn new(socket: OwnedWriteHalf, ctx: Ctx) -> Self {
        Outbox {
            socket,
            waiting: Mutex::new(Waiting::default()),
            wake: Notify::new(),
            ctx,
            progress: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().expect("outbox lock")
    }

    /// Milliseconds since the member last took any bytes.
    pub(crate) fn idle_ms(&self) -> u64 {
        let now = self.epoch.elapsed().as_millis() as u64;
        now.saturating_sub(self.progress.load(Ordering::Relaxed))
    }

    fn moved(&self) {
        self.progress
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    pub(crate) fn life(&self) -> &Lifeline {
        &self.ctx.life
    }

    /// Writes the line now if the socket takes it and nothing waits; otherwise queues it.
    pub(crate) fn deliver(&self, line: &Outgoing) -> Result<(), Refused> {
        // (No look at the lifeline here: its check takes a lock that every member shares. A
        // stopped member's socket closes; its writer task is gone.)
        let mut waiting = self.waiting();
        if waiting.bytes >= OUTBOX_BYTES {
            return Err(Refused::Full);
        }
        if line.shown {
            self.ctx.emit(EventKind::Send {
                data: Payload::from_bytes(&line.text),
            });
        }
        if waiting.lines.is_empty() {
            match self.socket.try_write(&line.text) {
                Ok(n) if n == line.text.len() => {
                    self.moved();
                    return Ok(());
                }
                Ok(n) => {
                    self.moved();
                    waiting.offset = n;
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(err) => {
                    drop(waiting);
                    self.failed(&err);
                    return Err(Refused::Gone);
                }
            }
            waiting.lines.push_back(line.text.clone());
            waiting.bytes += line.text.len();
            self.wake.notify_one();
        } else {
            waiting.lines.push_back(line.text.clone());
            waiting.bytes += line.text.len();
        }
        Ok(())
    }

    fn failed(&self, err: &std::io::Error) {
        let peer = self.ctx.peer_name();
        self.ctx.emit(EventKind::Error {
            op: Op::Send.name().into(),
            error: explain(err, Op::Send, Proto::Tcp, peer),
        });
        self.ctx
            .life
            .stop(ClosedBy::Peer, "the client stopped taking messages");
    }

    /// The writer task: drains what waits whenever the socket can take more, in batches.
    pub(crate) async fn drain(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.ctx.life.stopped() => return,
                _ = self.wake.notified() => {}
            }
            loop {
                tokio::select! {
                    _ = self.ctx.life.stopped() => return,
                    ready = self.socket.writable() => if let Err(err) = ready {
                        return self.failed(&err);
                    },
                }
                match self.write_some() {
                    Ok(true) => break, // all written: sleep until lines wait again
                    Ok(false) => continue,
                    Err(err) => return self.failed(&err),
                }
            }
        }
    }

    /// One writev() of what waits; Ok(true) once nothing is left.
    fn write_some(&self) -> std::io::Result<bool> {
        let mut waiting = self.waiting();
        while !waiting.lines.is_empty() {
            let slices: Vec<IoSlice<'_>> = waiting
                .lines
                .iter()
                .take(BATCH)
                .enumerate()
                .map(|(i, line)| {
                    IoSlice::new(if i == 0 {
                        &line[waiting.offset..]
                    } else {
                        line
                    })
                })
                .collect();
            let mut written = match self.socket.try_write_vectored(&slices) {
                Ok(n) => n,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(err) => return Err(err),
            };
            drop(slices);
            self.moved();
            while written > 0 {
                let left = waiting.lines[0].len() - waiting.offset;
                if written >= left {
                    written -= left;
                    let done = waiting.lines.pop_front().map_or(0, |l| l.len());
                    waiting.bytes -= done;
                    waiting.offset = 0;
                } else {
                    waiting.offset += written;
                    written = 0;
                }
            }
        }
        Ok(true)
    }
}
