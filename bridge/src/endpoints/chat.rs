//! The chat server behaviour: a room per server, line-based. Each member has its own bounded
//! outbox drained by its own writer task. A member that reads slowly but steadily slows the
//! sender down (flow control, nothing is dropped); a member whose writer has made no progress
//! for [`STUCK_AFTER`] is disconnected, so a stuck client holds up the room for at most that.
//!
//! A room of more than [`SHOWN_ROOM`] members is run for scale instead of for show: each line
//! is one `relayed` event instead of an event per member's send(), and joins and leaves are no
//! longer announced to everyone (that alone would be N² lines for N members joining).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shared::{ClosedBy, ConnId, EventKind, Payload, TcpServerSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::tcp_stream::{authenticate, recv_failed, send_all};
use crate::events::Origin;
use crate::hub::Hub;
use crate::hub::{ConnHandle, Control};

/// Messages that may wait for one member.
const OUTBOX: usize = 1024;
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

/// One line waiting in a member's outbox.
#[derive(Clone)]
struct Outgoing {
    text: Arc<[u8]>,
    /// Recorded as this member's own `send` event (false in a big room: counted in `relayed`).
    shown: bool,
}

impl Outgoing {
    fn shown(text: &[u8]) -> Self {
        Outgoing {
            text: Arc::from(text),
            shown: true,
        }
    }
}

struct Member {
    nick: Option<String>,
    outbox: mpsc::Sender<Outgoing>,
    /// Stops the member when it is stuck.
    life: crate::hub::Lifeline,
    /// When its writer last got a message out, in ms since the room opened.
    progress: Arc<AtomicU64>,
}

/// Everyone connected to one chat server.
pub(crate) struct Room {
    members: Mutex<BTreeMap<ConnId, Member>>,
    opened: Instant,
    /// Where a big room's `relayed` events go: the server endpoint.
    hub: Arc<Hub>,
    server: Origin,
}

impl Room {
    pub(crate) fn new(hub: Arc<Hub>, server: Origin) -> Self {
        Room {
            members: Mutex::new(BTreeMap::new()),
            opened: Instant::now(),
            hub,
            server,
        }
    }

    fn members(&self) -> std::sync::MutexGuard<'_, BTreeMap<ConnId, Member>> {
        self.members.lock().expect("chat room lock")
    }

    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    /// Queues `text` for every named member but `except`. Waits for a slow member's outbox,
    /// but never longer than a stuck one deserves; stuck members are stopped.
    async fn broadcast(&self, except: Option<ConnId>, text: &str) {
        let targets: Vec<_> = self
            .members()
            .iter()
            .filter(|(id, m)| Some(**id) != except && m.nick.is_some())
            .map(|(_, m)| (m.outbox.clone(), m.life.clone(), m.progress.clone()))
            .collect();
        let shown = targets.len() <= SHOWN_ROOM;
        let message = Outgoing {
            text: Arc::from(text.as_bytes()),
            shown,
        };
        if !shown {
            self.hub.log.emit(
                &self.server,
                EventKind::Relayed {
                    data: Payload::from_bytes(text.as_bytes()),
                    members: targets.len() as u32,
                },
            );
        }
        for (outbox, life, progress) in targets {
            let Err(mpsc::error::TrySendError::Full(message)) = outbox.try_send(message.clone())
            else {
                continue;
            };
            let idle = Duration::from_millis(
                self.now_ms()
                    .saturating_sub(progress.load(Ordering::Relaxed)),
            );
            let patience = STUCK_AFTER.saturating_sub(idle);
            if tokio::time::timeout(patience, outbox.send(message))
                .await
                .is_err()
            {
                life.stop(
                    ClosedBy::Local,
                    format!(
                        "too slow: {OUTBOX} chat messages waited and none went out for {} s",
                        STUCK_AFTER.as_secs()
                    ),
                );
            }
        }
    }

    /// Whether joins and leaves are still announced to everyone.
    fn small(&self) -> bool {
        self.members().len() <= SHOWN_ROOM
    }

    fn tell(&self, id: ConnId, text: &str) {
        if let Some(member) = self.members().get(&id) {
            let _ = member.outbox.try_send(Outgoing::shown(text.as_bytes()));
        }
    }

    fn who(&self) -> String {
        let members = self.members();
        let named = members.values().filter(|m| m.nick.is_some()).count();
        let names: Vec<&str> = members
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
        let taken = |name: &str| {
            members
                .iter()
                .any(|(other, m)| *other != id && m.nick.as_deref() == Some(name))
        };
        let mut nick = base.clone();
        let mut n = 2;
        while taken(&nick) {
            nick = format!("{base}{n}");
            n += 1;
        }
        let old = members
            .get_mut(&id)
            .and_then(|m| m.nick.replace(nick.clone()));
        (old, nick)
    }

    fn leave(&self, id: ConnId) -> Option<String> {
        self.members().remove(&id).and_then(|m| m.nick)
    }
}

/// Serves one member of the room until it leaves, the server stops, or it falls behind.
pub(crate) async fn serve(
    conn: ConnHandle,
    mut stream: TcpStream,
    mut requests: mpsc::Receiver<Control>,
    spec: TcpServerSpec,
    room: Arc<Room>,
) {
    let hub = conn.hub.clone();
    if let Some(secret) = &spec.secret {
        if let Err(why) = authenticate(&hub, &conn.origin, &conn.life, &mut stream, secret).await {
            return conn.close(ClosedBy::Local, why);
        }
    }
    let id = conn.origin.conn.unwrap_or_default();
    let (mut reader, mut writer) = stream.into_split();
    let (outbox, mut queued) = mpsc::channel::<Outgoing>(OUTBOX);
    let progress = Arc::new(AtomicU64::new(room.now_ms()));
    room.members().insert(
        id,
        Member {
            nick: None,
            outbox: outbox.clone(),
            life: conn.life.clone(),
            progress: progress.clone(),
        },
    );
    // The writer: drains this member's outbox into its socket, alone, so that a member that
    // does not read only blocks its own writer.
    let writing = {
        let (hub, origin, life) = (hub.clone(), conn.origin.clone(), conn.life.clone());
        let room = room.clone();
        tokio::spawn(async move {
            while let Some(message) = queued.recv().await {
                let sent = if message.shown {
                    send_all(&hub, &origin, &life, &mut writer, &message.text)
                        .await
                        .is_ok()
                } else {
                    tokio::select! {
                        sent = writer.write_all(&message.text) => sent.is_ok(),
                        _ = life.stopped() => false,
                    }
                };
                if !sent {
                    life.stop(ClosedBy::Peer, "the client stopped taking messages");
                    break;
                }
                progress.store(room.now_ms(), Ordering::Relaxed);
            }
        })
    };
    let _ = outbox.try_send(Outgoing::shown(
        b"* Welcome to the chat. Type your nickname first (or /nick NAME); /who lists who is here, /quit leaves.\n",
    ));
    let mut buf = vec![0u8; spec.recv_buffer];
    let mut line = Vec::new();
    let ending = loop {
        let read = tokio::select! {
            _ = conn.life.stopped() => break None,
            Some(request) = requests.recv() => {
                match request {
                    Control::Send { data, done, .. } => {
                        let n = data.len();
                        let queued = outbox.try_send(Outgoing::shown(&data)).map(|()| n).map_err(|_| {
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
                while let Some(end) = line.iter().position(|b| *b == b'\n') {
                    let text: String = String::from_utf8_lossy(&line[..end])
                        .trim_end_matches('\r')
                        .to_string();
                    line.drain(..=end);
                    quit |= handle_line(&room, id, &text).await;
                }
                if line.len() > MAX_LINE {
                    let text = String::from_utf8_lossy(&line).to_string();
                    line.clear();
                    quit |= handle_line(&room, id, &text).await;
                }
                if quit {
                    break Some((ClosedBy::Local, "the client typed /quit"));
                }
            }
            Err(err) => {
                let by = recv_failed(&hub, &conn.origin, &err);
                break Some((by, "the connection broke; counted as leaving"));
            }
        }
    };
    if let Some(nick) = room.leave(id) {
        if room.small() {
            room.broadcast(Some(id), &format!("* {nick} left\n")).await;
        }
    }
    drop(outbox);
    writing.abort();
    match ending {
        Some((by, reason)) => conn.close(by, reason),
        None => conn.close_stopped(),
    }
}

/// Acts on one line from member `id`; returns true when it asked to leave.
async fn handle_line(room: &Room, id: ConnId, text: &str) -> bool {
    let named = room.members().get(&id).is_some_and(|m| m.nick.is_some());
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
        _ => {
            let nick = room
                .members()
                .get(&id)
                .and_then(|m| m.nick.clone())
                .unwrap_or_default();
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
