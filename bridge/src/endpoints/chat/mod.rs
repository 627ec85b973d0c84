//! The chat server behaviour: a room per server, line-based. What members say is gathered and
//! sent out in rounds (below): each round's bytes go straight into each member's socket, and
//! what a socket cannot take at once waits in its own bounded outbox, drained by its own writer
//! task (see `outbox`). A member that reads slowly but steadily slows the
//! sender down (flow control, nothing is dropped); a member whose writer has made no progress
//! for [`STUCK_AFTER`] is disconnected, so a stuck client holds up the room for at most that.
//!
//! A room of more than [`SHOWN_ROOM`] members is run for scale instead of for show: each line
//! is one `relayed` event instead of an event per member's send(), and joins and leaves are no
//! longer announced to everyone (that alone would be N² lines for N members joining).
//!
//! What is said goes out in rounds: one fan-out task per room takes everything said since its
//! last round and writes it to each member in one write, and a round to many members is split
//! over one task per core (see [`Room::parts`]). Members' sockets have TCP_NODELAY (the Python
//! version shows it too): the rounds already gather the room's lines, and Nagle's algorithm
//! would hold a member's next round back until the member acknowledged the last one, which a
//! delayed ACK can put off for 40 ms (measured: see docs/benchmarks.md, "Chat fan-out").

mod outbox;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shared::{ClosedBy, ConnId, EventKind, Payload, TcpServerSpec};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

use tokio_util::task::TaskTracker;

use super::tcp_stream::{authenticate, recv_failed};
use crate::core::control::Control;
use crate::core::ctx::Ctx;
use crate::core::lifeline::Lifeline;
use crate::core::registry::Handle;
use outbox::{Outbox, Outgoing, Refused, OUTBOX_BYTES};

/// A member whose full outbox has not moved for this long is stuck, and is disconnected.
const STUCK_AFTER: Duration = Duration::from_secs(1);
/// Longest line a member may send before it is cut.
const MAX_LINE: usize = 4096;
/// Longest nickname.
const MAX_NICK: usize = 24;
/// The largest room in which every member's send() is an event and joins are announced.
pub(crate) const SHOWN_ROOM: usize = 32;
/// Names `/who` lists before it only counts.
const WHO_NAMES: usize = 50;
/// Bytes said in a room that may wait for the fan-out task before speakers have to wait.
const ROOM_QUEUE_BYTES: usize = 1 << 20;
/// How often a sender looks again at a full queue.
const FULL_RETRY: Duration = Duration::from_millis(5);
/// The fewest members a part of a round is written to by a task of its own (about 2 ms of
/// send() calls, against a few µs to start the task).
const MIN_PART: usize = 500;
/// Most tasks one round is split over.
const MAX_PARTS: usize = 4;

struct Member {
    nick: Option<String>,
    out: Arc<Outbox>,
}

/// The members, and their nicknames for quick uniqueness checks (10,000 members join in
/// seconds; a scan of the room per join would make that quadratic).
#[derive(Default)]
struct Members {
    by_id: BTreeMap<ConnId, Member>,
    nicks: HashSet<String>,
}

/// Lines said in the room that the fan-out task has not sent yet.
#[derive(Default)]
struct Said {
    /// Each line with the member who said it (who does not get it back).
    lines: Vec<(Option<ConnId>, Vec<u8>)>,
    bytes: usize,
}

/// Everyone connected to one chat server.
pub(crate) struct Room {
    members: Mutex<Members>,
    said: Mutex<Said>,
    /// Wakes the fan-out task.
    wake: Notify,
    /// Where a big room's `relayed` events go: the server endpoint.
    server: Ctx,
    /// Most parts a round is split into (see [`Room::parts`]): the cores, read once (the
    /// standard library reads the cgroup's CPU quota for it).
    max_parts: usize,
}

impl Room {
    /// Opens a room and starts its fan-out task, which ends with the server.
    pub(crate) fn open(server: Ctx, tasks: &TaskTracker) -> Arc<Self> {
        let life = server.life.clone();
        let room = Arc::new(Room {
            members: Mutex::new(Members::default()),
            said: Mutex::new(Said::default()),
            wake: Notify::new(),
            server,
            max_parts: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(MAX_PARTS),
        });
        tasks.spawn(room.clone().fan_out(life));
        room
    }

    fn members(&self) -> std::sync::MutexGuard<'_, Members> {
        self.members.lock().expect("chat room lock")
    }

    fn said(&self) -> std::sync::MutexGuard<'_, Said> {
        self.said.lock().expect("chat room lock")
    }

    /// Queues `text` for every named member but `except`; the fan-out task sends it. Waits
    /// while the room's queue is full, so a room that cannot keep up slows its speakers down.
    async fn broadcast(&self, except: Option<ConnId>, text: &str) {
        loop {
            {
                let mut said = self.said();
                if said.bytes < ROOM_QUEUE_BYTES {
                    said.bytes += text.len();
                    said.lines.push((except, text.as_bytes().to_vec()));
                    break;
                }
            }
            tokio::time::sleep(FULL_RETRY).await;
        }
        self.wake.notify_one();
    }

    /// The fan-out task: sends what was said, everything that gathered since its last round
    /// in one write per member. An idle room sends a line at once; a busy one sends fewer,
    /// larger writes (like a database's group commit): the same bytes in the same order,
    /// with far fewer system calls than a write per line per member.
    async fn fan_out(self: Arc<Self>, life: Lifeline) {
        loop {
            tokio::select! {
                _ = life.stopped() => return,
                _ = self.wake.notified() => {}
            }
            loop {
                let batch = std::mem::take(&mut *self.said());
                if batch.lines.is_empty() {
                    break;
                }
                self.send_round(batch).await;
            }
        }
    }

    /// How many parts a round to `members` members is split into, each part written by a task
    /// of its own. A round is one send() per member, and one task makes them one after another
    /// on one core: at 10,000 members the last one waited about 100 ms for the others (see
    /// docs/benchmarks.md, "Chat fan-out"). A part is at least [`MIN_PART`] members, so that a
    /// small room is not split for nothing: one task per core, at most [`MAX_PARTS`].
    fn parts(&self, members: usize) -> usize {
        self.max_parts.min(members / MIN_PART).max(1)
    }

    async fn send_round(&self, batch: Said) {
        let targets: Vec<(ConnId, Arc<Outbox>)> = self
            .members()
            .by_id
            .iter()
            .filter(|(_, m)| m.nick.is_some())
            .map(|(id, m)| (*id, m.out.clone()))
            .collect();
        let round = Arc::new(Round::new(batch, targets.len() <= SHOWN_ROOM));
        if !round.shown {
            self.server.emit(EventKind::Relayed {
                data: Payload::from_bytes(&round.all),
                members: targets.len() as u32,
            });
        }
        let parts = self.parts(targets.len());
        if parts == 1 {
            return round.deliver(&targets).await;
        }
        // Every part is a task of its own, this one only waits: a task spawned from a
        // running one goes first into that worker's slot for the next task, where no other
        // worker can take it, so a part run here would hold the one spawned last back.
        let size = targets.len().div_ceil(parts);
        let targets: Arc<[(ConnId, Arc<Outbox>)]> = targets.into();
        let helpers: Vec<_> = (0..targets.len())
            .step_by(size)
            .map(|start| {
                let (round, targets) = (round.clone(), targets.clone());
                let end = (start + size).min(targets.len());
                tokio::spawn(async move { round.deliver(&targets[start..end]).await })
            })
            .collect();
        for helper in helpers {
            let _ = helper.await;
        }
    }

    /// Whether joins and leaves are still announced to everyone.
    fn small(&self) -> bool {
        self.members().by_id.len() <= SHOWN_ROOM
    }

    fn tell(&self, id: ConnId, text: &str) {
        if let Some(member) = self.members().by_id.get(&id) {
            let _ = member.out.deliver(&Outgoing::shown(text.as_bytes()));
        }
    }

    fn who(&self) -> String {
        let members = self.members();
        let named = members.nicks.len();
        let names: Vec<&str> = members
            .by_id
            .values()
            .filter_map(|m| m.nick.as_deref())
            .take(WHO_NAMES)
            .collect();
        let more = match named - names.len() {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        format!("* {named} online: {}{more}\n", names.join(", "))
    }

    /// Gives `id` the nickname `wanted`, made unique; returns the old one.
    fn rename(&self, id: ConnId, wanted: &str) -> (Option<String>, String) {
        let clean: String = wanted
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .take(MAX_NICK)
            .collect();
        let base = if clean.is_empty() {
            format!("guest{id}")
        } else {
            clean
        };
        let mut members = self.members();
        let current = members.by_id.get(&id).and_then(|m| m.nick.clone());
        let mut nick = base.clone();
        let mut n = 2;
        while members.nicks.contains(&nick) && current.as_ref() != Some(&nick) {
            nick = format!("{base}{n}");
            n += 1;
        }
        let Some(member) = members.by_id.get_mut(&id) else {
            return (None, nick);
        };
        let old = member.nick.replace(nick.clone());
        if let Some(old) = &old {
            members.nicks.remove(old);
        }
        members.nicks.insert(nick.clone());
        (old, nick)
    }

    fn leave(&self, id: ConnId) -> Option<String> {
        let mut members = self.members();
        let nick = members.by_id.remove(&id).and_then(|m| m.nick)?;
        members.nicks.remove(&nick);
        Some(nick)
    }
}

/// One round of the fan-out: what was said since the last one.
struct Round {
    lines: Vec<(Option<ConnId>, Vec<u8>)>,
    /// All the lines, for members who said none of them.
    all: Arc<[u8]>,
    speakers: HashSet<ConnId>,
    /// Each member's send() is its own event (a small room).
    shown: bool,
}

impl Round {
    fn new(batch: Said, shown: bool) -> Self {
        let all: Arc<[u8]> = batch
            .lines
            .iter()
            .flat_map(|(_, l)| l.iter().copied())
            .collect();
        let speakers = batch.lines.iter().filter_map(|(who, _)| *who).collect();
        Round {
            lines: batch.lines,
            all,
            speakers,
            shown,
        }
    }

    /// Writes the round to each of `targets` (a speaker gets it without its own lines). A
    /// member whose outbox stays full is dropped after [`STUCK_AFTER`].
    async fn deliver(&self, targets: &[(ConnId, Arc<Outbox>)]) {
        for (id, out) in targets {
            let text = if self.speakers.contains(id) {
                self.lines
                    .iter()
                    .filter(|(who, _)| *who != Some(*id))
                    .flat_map(|(_, l)| l.iter().copied())
                    .collect()
            } else {
                self.all.clone()
            };
            if text.is_empty() {
                continue;
            }
            let line = Outgoing {
                text,
                shown: self.shown,
            };
            while let Err(Refused::Full) = out.deliver(&line) {
                let patience = STUCK_AFTER.saturating_sub(Duration::from_millis(out.idle_ms()));
                if patience.is_zero() {
                    out.life().stop(
                        ClosedBy::Local,
                        format!(
                            "too slow: {} KiB of chat waited and none went out for {} s",
                            OUTBOX_BYTES >> 10,
                            STUCK_AFTER.as_secs()
                        ),
                    );
                    break;
                }
                tokio::time::sleep(patience.min(FULL_RETRY)).await;
            }
        }
    }
}

/// Serves one member of the room until it leaves, the server stops, or it falls behind.
pub(crate) async fn serve(
    conn: Handle,
    mut stream: TcpStream,
    mut requests: mpsc::Receiver<Control>,
    spec: TcpServerSpec,
    room: Arc<Room>,
) {
    if let Some(secret) = &spec.secret {
        if let Err(why) = authenticate(&conn.ctx, &mut stream, secret).await {
            return conn.close(ClosedBy::Local, why);
        }
    }
    let id = conn.ctx.origin.conn.unwrap_or_default();
    // (See the module's notes: without it, rounds wait for the member's delayed ACKs.)
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY not set on a chat member's connection: {err}");
    }
    let (mut reader, writer) = stream.into_split();
    let out = Arc::new(Outbox::new(writer, conn.ctx.clone()));
    room.members().by_id.insert(
        id,
        Member {
            nick: None,
            out: out.clone(),
        },
    );
    // The writer task: sends what the socket could not take at once, so that a member that
    // does not read only holds up its own lines.
    let writing = tokio::spawn(out.clone().drain());
    let _ = out.deliver(&Outgoing::shown(
        b"* Welcome to the chat. Type your nickname first (or /nick NAME); /who lists who is here, /quit leaves.\n",
    ));
    let mut buf = vec![0u8; spec.recv_buffer];
    let mut line = Vec::new();
    let ending = loop {
        let read = tokio::select! {
            _ = conn.life().stopped() => break None,
            Some(request) = requests.recv() => {
                match request {
                    Control::Send { data, done, .. } => {
                        let n = data.len();
                        let queued = out.deliver(&Outgoing::shown(&data)).map(|()| n).map_err(|_| {
                            shared::ErrorInfo::new(shared::ErrorKind::LimitReached, "This client's outbox is full.")
                        });
                        let _ = done.send(queued);
                    }
                    other => other.refuse("A chat connection takes text lines only."),
                }
                continue;
            }
            read = reader.read(&mut buf) => read,
        };
        match read {
            Ok(0) => {
                conn.emit(EventKind::Eof);
                break Some((ClosedBy::Peer, "the client left the chat"));
            }
            Ok(n) => {
                conn.emit(EventKind::Recv {
                    data: Payload::from_bytes(&buf[..n]),
                    rtt_us: None,
                });
                line.extend_from_slice(&buf[..n]);
                let mut quit = false;
                // The chat lines of one recv() go out together: one write per member instead
                // of one per line (the same bytes, in the same order).
                let mut said = String::new();
                let mut start = 0;
                while let Some(end) = line[start..].iter().position(|b| *b == b'\n') {
                    let text = String::from_utf8_lossy(&line[start..start + end]);
                    quit |= handle_line(&room, id, text.trim_end_matches('\r'), &mut said).await;
                    start += end + 1;
                }
                line.drain(..start);
                if line.len() > MAX_LINE {
                    let text = String::from_utf8_lossy(&line).to_string();
                    line.clear();
                    quit |= handle_line(&room, id, &text, &mut said).await;
                }
                if !said.is_empty() {
                    room.broadcast(Some(id), &said).await;
                }
                if quit {
                    break Some((ClosedBy::Local, "the client typed /quit"));
                }
            }
            Err(err) => {
                let by = recv_failed(&conn.ctx, &err);
                break Some((by, "the connection broke; counted as leaving"));
            }
        }
    };
    if let Some(nick) = room.leave(id) {
        if room.small() {
            room.broadcast(Some(id), &format!("* {nick} left\n")).await;
        }
    }
    writing.abort();
    match ending {
        Some((by, reason)) => conn.close(by, reason),
        None => conn.close_stopped(),
    }
}

/// Acts on one line from member `id`; returns true when it asked to leave. A chat line is
/// added to `said`, for the caller to broadcast; anything else first broadcasts what was said
/// before it, so that the room sees everything in order.
async fn handle_line(room: &Room, id: ConnId, text: &str, said: &mut String) -> bool {
    let nick = room.members().by_id.get(&id).and_then(|m| m.nick.clone());
    if let Some(nick) = &nick {
        let command = text.starts_with('/') || text.trim().is_empty();
        if !command {
            said.push_str(&format!("{nick}: {text}\n"));
            return false;
        }
    }
    if !said.is_empty() {
        room.broadcast(Some(id), &std::mem::take(said)).await;
    }
    let named = nick.is_some();
    if let Some(wanted) = text.strip_prefix("/nick ") {
        let (old, nick) = room.rename(id, wanted.trim());
        match old {
            Some(old) => {
                room.broadcast(None, &format!("* {old} is now {nick}\n"))
                    .await
            }
            None => joined(room, id, &nick).await,
        }
        return false;
    }
    match text.trim() {
        "/quit" => true,
        "/who" => {
            room.tell(id, &room.who());
            false
        }
        "" => false,
        first if !named => {
            let (_, nick) = room.rename(id, first);
            joined(room, id, &nick).await;
            false
        }
        // Any other /command is said as it is.
        _ => {
            let nick = nick.unwrap_or_default();
            room.broadcast(Some(id), &format!("{nick}: {text}\n")).await;
            false
        }
    }
}

/// Announces a new member (in a small room) and tells it who is there.
async fn joined(room: &Room, id: ConnId, nick: &str) {
    if room.small() {
        room.broadcast(Some(id), &format!("* {nick} joined\n"))
            .await;
    }
    room.tell(id, &format!("* you are {nick}; {}", room.who()));
}
