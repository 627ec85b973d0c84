//! The event log: every socket call becomes one [`Event`] with a sequence number and a monotonic
//! timestamp, kept in a bounded history for viewers that connect later, and put at once into
//! each viewer's own [`Feed`], bounded in bytes, so a slow viewer misses events (and is told
//! so) instead of blocking anyone or growing memory.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use shared::{CodeAt, ConnId, EndpointId, Event, EventKind};
use tokio::sync::Notify;

/// Where an event happened: the socket's identity and addresses. Endpoint tasks keep one per
/// socket and fill in addresses as they learn them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origin {
    pub(crate) endpoint: EndpointId,
    pub(crate) conn: Option<ConnId>,
    pub(crate) local: Option<String>,
    pub(crate) peer: Option<String>,
    /// The line of a traced program that made the calls recorded now (set by its tracer for
    /// each call, and only there).
    pub(crate) at: Option<Box<CodeAt>>,
}

impl Origin {
    pub(crate) fn endpoint(endpoint: EndpointId) -> Self {
        Origin {
            endpoint,
            ..Origin::default()
        }
    }
}

struct History {
    events: VecDeque<Arc<Event>>,
    /// What `events` hold in memory ([`Event::kept_bytes`]: payloads, texts, specs), so that a
    /// flood of large events cannot grow memory without bound even under the count limit.
    bytes: usize,
    dropped: u64,
    next_seq: u64,
    /// The viewers' feeds, each filled under this lock so that every feed gets the events in
    /// order; a feed whose viewer has gone is forgotten at the next event.
    feeds: Vec<Weak<Feed>>,
}

/// The bridge's event log. Cheap to share behind an `Arc`.
pub(crate) struct EventLog {
    history: Mutex<History>,
    start: Instant,
    started_unix_ms: u64,
    max_events: usize,
    max_bytes: usize,
    /// TCP sockets report the kernel's counters (`tcp_counters` events): set when packets
    /// are not captured, so the page has what needs no permission.
    counters: std::sync::atomic::AtomicBool,
}

/// The events waiting for one viewer, filled by [`EventLog::emit`] as they happen and emptied
/// by the viewer's writer.
///
/// Why a queue per viewer and no shared channel between: a shared channel holds events for
/// its slowest reader until they are read, so when the writer's task is not scheduled for a
/// moment (a loaded machine) thousands of 64 KiB recv() events piled up there beyond every
/// budget. Here the only memory a viewer costs is its budget, whatever the scheduler does.
pub(crate) struct Feed {
    queue: Mutex<FeedQueue>,
    /// Told whenever the queue gets an event.
    pub(crate) wake: Notify,
    budget: usize,
}

/// What a [`Feed`] holds.
#[derive(Default)]
pub(crate) struct FeedQueue {
    /// The history not yet sent (shared with the log, so it costs nothing extra).
    pub(crate) history: VecDeque<Arc<Event>>,
    /// Live events, at most the feed's budget of [`Event::kept_bytes`].
    pub(crate) events: VecDeque<Arc<Event>>,
    /// What `events` hold.
    pub(crate) bytes: usize,
    /// Events dropped since the viewer was last told.
    pub(crate) missed: u64,
}

impl Feed {
    /// A feed no log fills: a session that asked for replies only.
    pub(crate) fn detached() -> Arc<Feed> {
        Arc::new(Feed {
            queue: Mutex::new(FeedQueue::default()),
            wake: Notify::new(),
            budget: 0,
        })
    }

    /// Adds a live event; over budget, the oldest go: a viewer that catches up sees what is
    /// happening now, and is told how many it missed before that.
    fn push(&self, event: Arc<Event>) {
        {
            let mut queue = self.lock();
            let size = event.kept_bytes();
            while queue.bytes + size > self.budget {
                let Some(old) = queue.events.pop_front() else {
                    break;
                };
                queue.bytes -= old.kept_bytes();
                queue.missed += 1;
            }
            queue.bytes += size;
            queue.events.push_back(event);
        }
        self.wake.notify_one();
    }

    /// The queue, for the viewer's writer to take from.
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, FeedQueue> {
        self.queue.lock().expect("viewer feed lock")
    }
}

/// What a new viewer gets: the recent past, and its feed, which continues exactly after it.
pub(crate) struct Subscription {
    /// Shared with the log: a late viewer costs a pointer per event, not a copy.
    pub(crate) history: VecDeque<Arc<Event>>,
    pub(crate) history_dropped: u64,
    /// Live events from here on, bounded by the budget given to [`EventLog::subscribe`].
    pub(crate) feed: Arc<Feed>,
}

impl EventLog {
    /// Whether TCP sockets report the kernel's counters ([`Self::show_counters`]).
    pub(crate) fn counters(&self) -> bool {
        self.counters.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// TCP sockets report the kernel's counters from now on (packets are not captured).
    pub(crate) fn show_counters(&self) {
        self.counters
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// `max_events`/`max_bytes` bound the history.
    pub(crate) fn new(max_events: usize, max_bytes: usize) -> Self {
        let started_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        EventLog {
            history: Mutex::new(History {
                events: VecDeque::new(),
                bytes: 0,
                dropped: 0,
                next_seq: 1,
                feeds: Vec::new(),
            }),
            start: Instant::now(),
            started_unix_ms,
            max_events,
            max_bytes,
            counters: Default::default(),
        }
    }

    /// Microseconds since the bridge started.
    pub(crate) fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    pub(crate) fn started_unix_ms(&self) -> u64 {
        self.started_unix_ms
    }

    /// Records an event and sends it to every viewer. Never blocks on a viewer.
    pub(crate) fn emit(&self, origin: &Origin, kind: EventKind) -> Arc<Event> {
        let mut history = self.history.lock().expect("event log lock");
        let event = Arc::new(Event {
            seq: history.next_seq,
            t_us: self.now_us(),
            endpoint: origin.endpoint,
            conn: origin.conn,
            local: origin.local.clone(),
            peer: origin.peer.clone(),
            at: origin.at.clone(),
            kind,
        });
        history.next_seq += 1;
        history.bytes += event.kept_bytes();
        history.events.push_back(event.clone());
        while history.events.len() > self.max_events
            || (history.bytes > self.max_bytes && history.events.len() > 1)
        {
            if let Some(old) = history.events.pop_front() {
                history.bytes -= old.kept_bytes();
                history.dropped += 1;
            }
        }
        history.feeds.retain(|feed| match feed.upgrade() {
            Some(feed) => {
                feed.push(event.clone());
                true
            }
            None => false,
        });
        event
    }

    /// The history so far and a feed that continues exactly after it (no gap, no repeat),
    /// holding at most `budget` bytes of events the viewer has not taken.
    pub(crate) fn subscribe(&self, budget: usize) -> Subscription {
        let mut history = self.history.lock().expect("event log lock");
        let feed = Arc::new(Feed {
            queue: Mutex::new(FeedQueue::default()),
            wake: Notify::new(),
            budget,
        });
        history.feeds.push(Arc::downgrade(&feed));
        Subscription {
            history: history.events.clone(),
            history_dropped: history.dropped,
            feed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::Payload;

    fn recv(n: usize) -> EventKind {
        EventKind::Recv {
            data: Payload::from_bytes(&vec![b'x'; n]),
            rtt_us: None,
        }
    }

    #[test]
    fn history_is_bounded_by_count_and_bytes() {
        let log = EventLog::new(3, 1000);
        let origin = Origin::endpoint(1);
        for _ in 0..5 {
            log.emit(&origin, EventKind::Eof);
        }
        let sub = log.subscribe(0);
        assert_eq!(sub.history.len(), 3);
        assert_eq!(sub.history_dropped, 2);
        assert_eq!(sub.history[0].seq, 3);

        log.emit(&origin, recv(600));
        log.emit(&origin, recv(600));
        let sub = log.subscribe(0);
        assert_eq!(
            sub.history.len(),
            1,
            "two 600-byte chunks exceed 1000 bytes"
        );
    }

    #[test]
    fn history_counts_texts_not_only_payloads() {
        let log = EventLog::new(1000, 20_000);
        let origin = Origin {
            peer: Some("p".repeat(200)),
            ..Origin::endpoint(1)
        };
        for _ in 0..100 {
            let error = shared::ErrorInfo::new(shared::ErrorKind::Other, "e".repeat(1000));
            log.emit(
                &origin,
                EventKind::Error {
                    op: "connect".into(),
                    error,
                },
            );
        }
        let sub = log.subscribe(0);
        let kept: usize = sub.history.iter().map(|e| e.kept_bytes()).sum();
        assert!(kept <= 20_000, "{kept} bytes kept");
        assert!(
            sub.history.len() < 20,
            "{} events of 1.2 kB kept",
            sub.history.len()
        );
        assert!(sub.history_dropped > 80);
    }

    #[test]
    fn subscriber_continues_where_history_ends() {
        let log = EventLog::new(100, 1 << 20);
        let origin = Origin::endpoint(1);
        log.emit(&origin, EventKind::Bind);
        let sub = log.subscribe(1 << 20);
        log.emit(&origin, EventKind::Eof);
        assert_eq!(sub.history.back().unwrap().seq, 1);
        let queue = sub.feed.lock();
        let seqs: Vec<u64> = queue.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [2]);
    }

    #[test]
    fn slow_subscriber_misses_the_oldest_instead_of_blocking() {
        let log = EventLog::new(100, 1 << 20);
        let sub = log.subscribe(4 * 1000);
        for _ in 0..10 {
            log.emit(&Origin::endpoint(1), recv(1000));
        }
        let queue = sub.feed.lock();
        assert!(queue.bytes <= 4000, "{} bytes waiting", queue.bytes);
        assert_eq!(queue.missed + queue.events.len() as u64, 10);
        assert!(queue.missed >= 6, "{} missed", queue.missed);
        assert_eq!(queue.events.back().unwrap().seq, 10, "the newest are kept");
    }

    #[test]
    fn a_gone_viewer_is_forgotten() {
        let log = EventLog::new(100, 1 << 20);
        let sub = log.subscribe(1 << 20);
        let feed = Arc::downgrade(&sub.feed);
        drop(sub);
        log.emit(&Origin::endpoint(1), EventKind::Eof);
        assert!(feed.upgrade().is_none());
        assert!(log.history.lock().unwrap().feeds.is_empty());
    }
}
