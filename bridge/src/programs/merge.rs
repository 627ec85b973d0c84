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
//! after a call is shown after it; each line also says when it was read (`read_us`), since
//! while programs are held it is shown later.

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
/// reads (CPython: `CLOCK_MONOTONIC` on Linux, `mach_absolute_time`, which is
/// `CLOCK_UPTIME_RAW`, on macOS; `QueryPerformanceCounter` on Windows, since Python 3.13).
#[cfg(unix)]
pub(crate) fn now_us() -> u64 {
    #[cfg(target_vendor = "apple")]
    const CLOCK: libc::clockid_t = libc::CLOCK_UPTIME_RAW;
    #[cfg(not(target_vendor = "apple"))]
    const CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct given.
    unsafe {
        libc::clock_gettime(CLOCK, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// Windows: the performance counter, as Python 3.13's `time.monotonic()` reads it (an older
/// Python's clock differs: its reports are then timed as they arrive, see [`PLAUSIBLE`]).
#[cfg(windows)]
pub(crate) fn now_us() -> u64 {
    use windows_sys::Win32::System::Performance::{
        QueryPerformanceCounter, QueryPerformanceFrequency,
    };
    let (mut ticks, mut per_second) = (0i64, 0i64);
    // SAFETY: each writes the i64 given.
    unsafe {
        QueryPerformanceCounter(&mut ticks);
        QueryPerformanceFrequency(&mut per_second);
    }
    (ticks.max(0) as u128 * 1_000_000 / per_second.max(1) as u128) as u64
}

/// When a record's call counts as having happened (see the module header), on the system's
/// monotonic clock, if the record says it and its clock is this machine's (`now`, read from
/// [`now_us`]).
fn moment(record: &TraceRecord, now: u64) -> Option<u64> {
    let waits_for_peer = matches!(record.op.as_str(), "accept" | "recv" | "recvfrom")
        || (record.op == "call" && record.call.as_deref() == Some("select"));
    let key = if waits_for_peer {
        record.end_us.or(record.t_us)
    } else {
        record.t_us.or(record.end_us)
    };
    key.filter(|k| k.abs_diff(now) < PLAUSIBLE)
}

/// The place of a record in the merged order: its call's moment, else when it arrives.
fn key_of(record: &TraceRecord, now: u64) -> u64 {
    moment(record, now).unwrap_or(now)
}

/// When a record's call happened on the events' clock (`log_now` is that clock read now), for
/// `CodeAt::call_us`: the event is shown later (batched, held), and packets, timed on the
/// wire, are compared with this.
pub(crate) fn on_log_clock(record: &TraceRecord, log_now: u64) -> Option<u64> {
    let now = now_us();
    moment(record, now).map(|at| moved(at, now, log_now))
}

/// A moment `at` of the system's monotonic clock (read `now`) on the events' clock (read
/// `log_now` at about the same time).
fn moved(at: u64, now: u64, log_now: u64) -> u64 {
    log_now.saturating_sub(now.saturating_sub(at))
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
        Item::Program(mut kind) => {
            if let Some(tracer) = slot.as_ref() {
                if let EventKind::Output { read_us, .. } = &mut kind {
                    // Read at `key`, shown now (after the other programs' calls of before).
                    let log_now = tracer.program().ctx.log.now_us();
                    *read_us = Some(moved(pending.key, now_us(), log_now));
                }
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
