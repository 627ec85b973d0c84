//! The one small value a socket task and its helpers work with: where the socket is (its
//! origin), the event log everything is recorded in, and the lifeline that says when to stop.
//! Helpers take a `&Ctx` instead of reaching through the bridge's state for the log.

use std::net::SocketAddr;
use std::sync::Arc;

use shared::EventKind;

use super::event_log::{EventLog, Origin};
use super::lifeline::Lifeline;

/// See the module header.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) origin: Origin,
    pub(crate) log: Arc<EventLog>,
    pub(crate) life: Lifeline,
}

impl Ctx {
    /// Records an event at this socket.
    pub(crate) fn emit(&self, kind: EventKind) {
        self.log.emit(&self.origin, kind);
    }

    /// The same socket, talking to `peer` (a UDP socket's datagram to or from one address).
    pub(crate) fn with_peer(&self, peer: SocketAddr) -> Ctx {
        Ctx {
            origin: Origin {
                peer: Some(peer.to_string()),
                ..self.origin.clone()
            },
            ..self.clone()
        }
    }

    /// The peer's address in words, for explanations.
    pub(crate) fn peer_name(&self) -> &str {
        self.origin.peer.as_deref().unwrap_or("the peer")
    }
}
