//! Packets on the wire where Linux's packet sockets are missing (Windows, macOS): no capture,
//! and the welcome says so in one line. The same interface as the Linux capture (`wire/mod.rs`),
//! so the rest of the bridge never asks which system it runs on; each TCP connection still
//! reports what the system's own counters say where it has them (`endpoints/tcp_state.rs`).

use std::sync::Arc;

use shared::{CaptureStatus, EndpointId};

use crate::core::event_log::EventLog;
use crate::core::registry::Registry;

/// The packet capture: always off here, with the reason.
pub(crate) struct Capture {
    status: CaptureStatus,
}

impl Capture {
    /// No capture on this system.
    pub(crate) fn open(_registry: &Registry, _lan: bool) -> Capture {
        Capture::off(
            "Packets are not captured: capturing them needs Linux (a packet socket). Everything \
             else works as usual.",
        )
    }

    /// No capture, for this reason.
    pub(crate) fn off(why: &str) -> Capture {
        Capture {
            status: CaptureStatus {
                on: false,
                detail: why.into(),
                hint: None,
            },
        }
    }

    pub(crate) fn status(&self) -> CaptureStatus {
        self.status.clone()
    }

    /// Nothing is captured, so nothing to leave out.
    pub(crate) fn leave_out(&self, _port: u16) -> LeftOut {
        LeftOut
    }

    /// Nothing to read.
    pub(crate) async fn run(
        &self,
        _registry: Arc<Registry>,
        _log: Arc<EventLog>,
        _stop: tokio_util::sync::CancellationToken,
    ) {
    }

    /// Nothing captured, nothing dropped.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (0, 0)
    }

    /// No packets to save.
    pub(crate) fn pcapng(
        &self,
        _endpoint: Option<EndpointId>,
        _conn: Option<shared::ConnId>,
    ) -> Option<(Vec<u8>, usize)> {
        None
    }
}

/// What `Capture::leave_out` returns on Linux, to take the port back when dropped; nothing
/// here.
pub(crate) struct LeftOut;
