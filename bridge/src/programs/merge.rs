//! One order for the calls of several programs. Each program's reports arrive through its own
//! channel, read by its own task, so a client's send() could be recorded after the server's
//! recv() that it caused. Every report carries the system's monotonic time of its call, so
//! they pass through here: held for [`HOLD`] while two or more programs are traced (not held
//! for one; a shim's batches are at most about 100 ms old), and shown in the order of their
//! times. A call that waits for the other side
//! (accept, recv, recvfrom, select) counts from when it returned, every other call from when
//! it began: a send begins before the recv it feeds returns, and a connect before its accept.
//!
//! Programs' console output goes through here too, timed as it arrives, so a line printed
//! after a call is shown after it.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shared::{EndpointId, EventKind, TraceRecord};
use tokio::sync::Notify;

use super::tracer::Tracer;

/// How long reports wait for those of other programs while several are traced: a shim sends
/// what it has at least every 100 ms (and before a call blocks, at most every 20 ms).
pub(crate) const HOLD: Duration = Duration::from_millis(120);
/// A report timed further than this from now is timed as it arrives (a terminal on another
/// machine, whose clock is its own).
const PLAUSIBLE: u64 = 10_000_000;

/// A program's tracer, shared by whatever feeds it; `None` once the program has ended.
pub(crate) type Shared = Arc<Mutex<Option<Tracer>>>;

/// What to show for a program.
pub(crate) enum Item {
    /// A call.
    Record(Box<TraceRecord>),
    /// An event of the program itself (its console, what was dropped).
    #[cfg_attr(not(unix), allow(dead_code))] // only the page's own programs have one
    Program(EventKind),
    /// The program ended (or is no longer traced): its sockets close, then the program.
    Finish {
        code: Option<i32>,
        signal: Option<i32>,
        detail: String,
    },
}

struct Pending {
    key: u64,
    n: u64,
    program: EndpointId,
    tracer: Shared,
    item: Item,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.key, self.n) == (other.key, other.n)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.key, self.n).cmp(&(other.key, other.n))
    }
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Reverse<Pending>>,
    next: u64,
    /// Programs traced now.
    live: HashSet<EndpointId>,
    started: bool,
}

/// See the module header. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Merger {
    state: Arc<Mutex<State>>,
    wake: Arc<Notify>,
}

/// The system's monotonic clock in microseconds: the clock the shim's `time.monotonic_ns()`
/// reads.
#[cfg(unix)]
pub(crate) fn now_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct given.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// Where no shim reports (Windows, for now), a monotonic clock of this process's own.
#[cfg(not(unix))]
pub(crate) fn now_us() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_micros() as u64
}

/// When a record's call counts as having happened (see the module header).
fn key_of(record: &TraceRecord, now: u64) -> u64 {
    let waits_for_peer = matches!(record.op.as_str(), "accept" | "recv" | "recvfrom")
        || (record.op == "call" && record.call.as_deref() == Some("select"));
    let key = if waits_for_peer {
        record.end_us.or(record.t_us)
    } else {
        record.t_us.or(record.end_us)
    };
    key.filter(|k| k.abs_diff(now) < PLAUSIBLE).unwrap_or(now)
}

impl Merger {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("merge lock")
    }

    /// A program is traced from now on.
    pub(crate) fn register(&self, program: EndpointId) {
        self.state().live.insert(program);
    }

    /// Queues `item` of `program`, to be shown in its turn.
    pub(crate) fn push(&self, program: EndpointId, tracer: &Shared, item: Item) {
        let now = now_us();
        let key = match &item {
            Item::Record(record) => key_of(record, now),
            Item::Program(_) | Item::Finish { .. } => now,
        };
        let mut state = self.state();
        let n = state.next;
        state.next += 1;
        state.heap.push(Reverse(Pending {
            key,
            n,
            program,
            tracer: tracer.clone(),
            item,
        }));
        if !state.started {
            state.started = true;
            tokio::spawn(self.clone().run());
        }
        drop(state);
        self.wake.notify_one();
    }

    /// Shows what is due, in order, until the bridge stops (the task ends with the runtime).
    async fn run(self) {
        loop {
            let due_in = self.show_due();
            match due_in {
                Some(wait) => {
                    let _ = tokio::time::timeout(wait, self.wake.notified()).await;
                }
                None => self.wake.notified().await,
            }
        }
    }

    /// Shows every item that has waited long enough; returns how long until the next is due.
    fn show_due(&self) -> Option<Duration> {
        loop {
            let pending = {
                let mut state = self.state();
                let hold = if state.live.len() >= 2 {
                    HOLD.as_micros() as u64
                } else {
                    0
                };
                let now = now_us();
                let next = state.heap.peek()?;
                let due = next.0.key.saturating_add(hold);
                if due > now {
                    return Some(Duration::from_micros(due - now));
                }
                let Reverse(pending) = state.heap.pop()?;
                if matches!(pending.item, Item::Finish { .. }) {
                    state.live.remove(&pending.program);
                }
                pending
            };
            show(pending);
        }
    }
}

fn show(pending: Pending) {
    let mut slot = pending.tracer.lock().expect("tracer lock");
    match pending.item {
        Item::Record(record) => {
            if let Some(tracer) = slot.as_mut() {
                tracer.record(*record);
            }
        }
        Item::Program(kind) => {
            if let Some(tracer) = slot.as_ref() {
                tracer.program().emit(kind);
            }
        }
        Item::Finish {
            code,
            signal,
            detail,
        } => {
            if let Some(tracer) = slot.take() {
                tracer.finish(code, signal, detail);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(op: &str, t: u64, end: u64) -> TraceRecord {
        TraceRecord {
            op: op.into(),
            t_us: Some(t),
            end_us: Some(end),
            ..TraceRecord::default()
        }
    }

    #[test]
    fn a_send_comes_before_the_recv_it_feeds() {
        let now = 50_000_000;
        // The server's recv() began long before and returned after the client's send()
        // began; the send returned later still.
        let recv = timed("recv", 10_000_000, now - 900);
        let send = timed("send", now - 1000, now - 800);
        assert!(key_of(&send, now) < key_of(&recv, now));
        let connect = timed("connect", now - 2000, now - 500);
        let accept = timed("accept", 1_000, now - 1500);
        assert!(key_of(&connect, now) < key_of(&accept, now));
        // A clock that is not this machine's: timed on arrival.
        assert_eq!(key_of(&timed("send", 5, 6), now), now);
    }
}
