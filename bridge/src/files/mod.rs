//! The data directory and what is written to it or read from it: the directory and its names
//! (`datadir`), browser uploads (`upload`), file transfers over TCP (`tcp_transfer`) and UDP
//! (`udp_transfer`), and the per-message log a server can keep (`message_log`).
//!
//! Transfers report progress about ten times a second and a final `TransferReport` with size
//! and SHA-256, instead of one event per chunk (a 1 GiB file would flood every viewer); memory
//! stays the same whatever the file size, and the disk is written on blocking threads.

pub(crate) mod datadir;
pub(crate) mod message_log;
pub(crate) mod tcp_transfer;
pub(crate) mod udp_transfer;
pub(crate) mod upload;

use std::time::{Duration, Instant};

use shared::{ErrorInfo, ErrorKind, EventKind};

use crate::core::ctx::Ctx;
use crate::explain::{explain, Op, Proto};

/// How often progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// Bytes per read or write of a file transfer.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Reports progress at most every [`PROGRESS_EVERY`].
pub(crate) struct Ticker {
    next: Instant,
}

impl Ticker {
    pub(crate) fn new() -> Self {
        Ticker {
            next: Instant::now() + PROGRESS_EVERY,
        }
    }

    pub(crate) fn due(&mut self) -> bool {
        let now = Instant::now();
        if now < self.next {
            return false;
        }
        self.next = now + PROGRESS_EVERY;
        true
    }
}

pub(crate) fn progress(ctx: &Ctx, file: &str, bytes: u64, total: Option<u64>) {
    ctx.emit(EventKind::Progress {
        file: file.to_string(),
        bytes,
        total,
    });
}

/// Records a socket call of a transfer that failed, explained; the peer is the origin's.
pub(crate) fn socket_failed(ctx: &Ctx, err: &std::io::Error, op: Op, proto: Proto) {
    ctx.emit(EventKind::Error {
        op: op.name().into(),
        error: explain(err, op, proto, ctx.peer_name()),
    });
}

pub(crate) fn disk_error(file: &str, err: &std::io::Error) -> ErrorInfo {
    let mut info = ErrorInfo::new(
        ErrorKind::Other,
        format!("Writing or reading '{file}' in the data directory failed: {err}."),
    )
    .with_hint("Check that the disk has room and the data directory is writable.");
    info.os_message = Some(err.to_string());
    info.errno = err.raw_os_error();
    info
}
