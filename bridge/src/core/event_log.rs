//! The event log: every socket call becomes one [`Event`] with a sequence number and a monotonic
//! timestamp, kept in a bounded history for viewers that connect later, and broadcast live
//! through a bounded channel so a slow viewer lags (and is told so) instead of blocking anyone.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use shared::{ConnId, EndpointId, Event, EventKind};
use tokio::sync::broadcast;

/// Where an event happened: the socket's identity and addresses. Endpoint tasks keep one per
/// socket and fill in addresses as they learn them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origin {
    pub(crate) endpoint: EndpointId,
    pub(crate) conn: Option<ConnId>,
    pub(crate) local: Option<String>,
    pub(crate) peer: Option<String>,
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
}

/// The bridge's event log. Cheap to share behind an `Arc`.
pub(crate) struct EventLog {
    history: Mutex<History>,
    live: broadcast::Sender<Arc<Event>>,
    start: Instant,
    started_unix_ms: u64,
    max_events: usize,
    max_bytes: usize,
}

/// What a new viewer gets: the recent past and a receiver for everything after it.
pub(crate) struct Subscription {
    /// Shared with the log: a late viewer costs a pointer per event, not a copy.
    pub(crate) history: VecDeque<Arc<Event>>,
    pub(crate) history_dropped: u64,
    pub(crate) live: broadcast::Receiver<Arc<Event>>,
}

impl EventLog {
    /// `max_events`/`max_bytes` bound the history, `live_capacity` how far a viewer may fall
    /// behind before it misses events.
    pub(crate) fn new(max_events: usize, max_bytes: usize, live_capacity: usize) -> Self {
        let (live, _) = broadcast::channel(live_capacity.max(1));
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
            }),
            live,
            start: Instant::now(),
            started_unix_ms,
            max_events,
            max_bytes,
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
        // An error here only means nobody is watching right now.
        let _ = self.live.send(event.clone());
        event
    }

    /// The history so far and a receiver that continues exactly after it: no gap, no repeat.
    pub(crate) fn subscribe(&self) -> Subscription {
        let history = self.history.lock().expect("event log lock");
        Subscription {
            history: history.events.clone(),
            history_dropped: history.dropped,
            live: self.live.subscribe(),
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
        let log = EventLog::new(3, 1000, 16);
        let origin = Origin::endpoint(1);
        for _ in 0..5 {
            log.emit(&origin, EventKind::Eof);
        }
        let sub = log.subscribe();
        assert_eq!(sub.history.len(), 3);
        assert_eq!(sub.history_dropped, 2);
        assert_eq!(sub.history[0].seq, 3);

        log.emit(&origin, recv(600));
        log.emit(&origin, recv(600));
        let sub = log.subscribe();
        assert_eq!(
            sub.history.len(),
            1,
            "two 600-byte chunks exceed 1000 bytes"
        );
    }

    #[test]
    fn history_counts_texts_not_only_payloads() {
        let log = EventLog::new(1000, 20_000, 16);
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
        let sub = log.subscribe();
        let kept: usize = sub.history.iter().map(|e| e.kept_bytes()).sum();
        assert!(kept <= 20_000, "{kept} bytes kept");
        assert!(
            sub.history.len() < 20,
            "{} events of 1.2 kB kept",
            sub.history.len()
        );
        assert!(sub.history_dropped > 80);
    }

    #[tokio::test]
    async fn subscriber_continues_where_history_ends() {
        let log = EventLog::new(100, 1 << 20, 16);
        let origin = Origin::endpoint(1);
        log.emit(&origin, EventKind::Bind);
        let mut sub = log.subscribe();
        log.emit(&origin, EventKind::Eof);
        assert_eq!(sub.history.back().unwrap().seq, 1);
        assert_eq!(sub.live.recv().await.unwrap().seq, 2);
    }

    #[tokio::test]
    async fn slow_subscriber_lags_instead_of_blocking() {
        let log = EventLog::new(100, 1 << 20, 4);
        let mut sub = log.subscribe();
        for _ in 0..10 {
            log.emit(&Origin::endpoint(1), EventKind::Eof);
        }
        match sub.live.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => assert_eq!(n, 6),
            other => panic!("expected lag, got {other:?}"),
        }
    }
}
