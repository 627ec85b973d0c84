//! The channel a traced program's shim reports on: a Unix datagram socket pair, one end
//! inherited by the program (and by the processes it forks; each record is one datagram, so
//! records of several processes never interleave), the other read here. When the reader falls
//! behind, the kernel's queue fills and the program's next report waits, as under strace:
//! nothing is lost and nothing grows without bound.
//!
//! A blocking call is reported twice: a `wait` record before it and its own record after. Most
//! return at once, so a wait is held back here and shown only once the call has waited
//! [`SHOW_WAIT_AFTER`]; the call's own record then says how long it blocked. A student sees
//! "accept() waiting" where the program is stuck, not before every recv().
//!
//! Used by the bridge for the programs it runs and by `bridge trace` for a terminal's.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use shared::TraceRecord;
use tokio::net::UnixDatagram;

/// How long a call must block before the page is told it waits.
pub(crate) const SHOW_WAIT_AFTER: Duration = Duration::from_millis(100);
/// The environment variable that names the program's end of the channel.
pub(crate) const FD_VAR: &str = "SOCKET_PLAYGROUND_TRACE_FD";
/// Largest record read (the shim keeps 64 KiB of data a call, 87 KiB in base64).
const MAX_RECORD: usize = 256 * 1024;

/// The channel: [`Channel::program_end`] goes to the program, the rest stays here.
pub(crate) struct Channel {
    ours: UnixDatagram,
    theirs: Option<std::os::unix::net::UnixDatagram>,
    buf: Vec<u8>,
    waits: Waits,
}

impl Channel {
    pub(crate) fn new() -> io::Result<Channel> {
        let (ours, theirs) = std::os::unix::net::UnixDatagram::pair()?;
        ours.set_nonblocking(true)?;
        Ok(Channel {
            ours: UnixDatagram::from_std(ours)?,
            theirs: Some(theirs),
            buf: vec![0; MAX_RECORD],
            waits: Waits::default(),
        })
    }

    /// The descriptor the program inherits (see [`inherit`]).
    pub(crate) fn program_end(&self) -> RawFd {
        self.theirs.as_ref().map_or(-1, |s| s.as_raw_fd())
    }

    /// Closes this process's copy of the program's end, once the program has it.
    pub(crate) fn spawned(&mut self) {
        self.theirs = None;
    }

    /// The next records to show, in order: waits for as long as [`SHOW_WAIT_AFTER`], then
    /// whatever arrives. Cancel-safe.
    pub(crate) async fn next(&mut self) -> io::Result<Vec<TraceRecord>> {
        loop {
            let due = self.waits.next_due();
            let received = match due {
                Some(due) => tokio::select! {
                    received = self.ours.recv(&mut self.buf) => Some(received?),
                    _ = tokio::time::sleep_until(due.into()) => None,
                },
                None => Some(self.ours.recv(&mut self.buf).await?),
            };
            let shown = match received {
                Some(n) => self.parse(n),
                None => self.waits.due(Instant::now()),
            };
            if !shown.is_empty() {
                return Ok(shown);
            }
        }
    }

    /// Records that have already arrived, without waiting (what a program that just exited
    /// still had in the queue); at most `limit` datagrams.
    pub(crate) fn drain(&mut self, limit: usize) -> Vec<TraceRecord> {
        let mut shown = Vec::new();
        for _ in 0..limit {
            match self.ours.try_recv(&mut self.buf) {
                Ok(n) => shown.extend(self.parse(n)),
                Err(_) => break,
            }
        }
        shown
    }

    fn parse(&mut self, n: usize) -> Vec<TraceRecord> {
        match serde_json::from_slice::<TraceRecord>(&self.buf[..n]) {
            Ok(record) => self.waits.take(record, Instant::now()),
            // Not the shim's: nothing to show (the channel is the program's to write).
            Err(_) => Vec::new(),
        }
    }
}

/// Lets the program inherit `fd` across exec (std opens descriptors close-on-exec). Called
/// between fork and exec, so it only makes one system call.
pub(crate) fn inherit(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor this process owns; async-signal-safe.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A `wait` held back: the call may return at once.
struct Pending {
    record: TraceRecord,
    since: Instant,
    shown: bool,
}

/// The waits of each thread of each process (a thread makes one call at a time).
#[derive(Default)]
struct Waits {
    pending: HashMap<(u32, String), Pending>,
}

fn thread_of(record: &TraceRecord) -> (u32, String) {
    record
        .at
        .as_ref()
        .map_or((0, String::new()), |at| (at.pid, at.thread.clone()))
}

impl Waits {
    /// What to show now that `record` arrived.
    fn take(&mut self, mut record: TraceRecord, now: Instant) -> Vec<TraceRecord> {
        let key = thread_of(&record);
        if record.op == "wait" {
            self.pending.insert(
                key,
                Pending {
                    record,
                    since: now,
                    shown: false,
                },
            );
            return Vec::new();
        }
        if let Some(wait) = self.pending.remove(&key) {
            let blocked = now.duration_since(wait.since);
            if let Some(at) = record.at.as_mut() {
                if wait.shown || blocked >= Duration::from_millis(1) {
                    at.blocked_us = Some(blocked.as_micros() as u64);
                }
            }
        }
        vec![record]
    }

    /// When the next held-back wait is due.
    fn next_due(&self) -> Option<Instant> {
        self.pending
            .values()
            .filter(|p| !p.shown)
            .map(|p| p.since + SHOW_WAIT_AFTER)
            .min()
    }

    /// The waits that have lasted long enough to show.
    fn due(&mut self, now: Instant) -> Vec<TraceRecord> {
        let mut shown = Vec::new();
        for wait in self.pending.values_mut() {
            if !wait.shown && now >= wait.since + SHOW_WAIT_AFTER {
                wait.shown = true;
                shown.push(wait.record.clone());
            }
        }
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(op: &str, thread: &str) -> TraceRecord {
        TraceRecord {
            op: op.into(),
            sock: Some("1:1".into()),
            at: Some(shared::CodeAt {
                file: "p.py".into(),
                line: 3,
                code: "s.recv(1024)".into(),
                thread: thread.into(),
                pid: 1,
                blocked_us: None,
            }),
            ..TraceRecord::default()
        }
    }

    #[test]
    fn a_wait_shows_only_when_the_call_lasts() {
        let mut waits = Waits::default();
        let start = Instant::now();
        assert!(waits.take(record("wait", "MainThread"), start).is_empty());
        // Returned at once: no wait shown, no time blocked.
        let quick = waits.take(record("recv", "MainThread"), start);
        assert_eq!(quick.len(), 1);
        assert_eq!(quick[0].at.as_ref().unwrap().blocked_us, None);
        assert!(waits.next_due().is_none());

        assert!(waits.take(record("wait", "MainThread"), start).is_empty());
        assert!(waits.take(record("wait", "Thread-1"), start).is_empty());
        assert!(waits.due(start + Duration::from_millis(50)).is_empty());
        let later = start + SHOW_WAIT_AFTER;
        assert_eq!(waits.next_due(), Some(later));
        let shown = waits.due(later);
        assert_eq!(shown.len(), 2, "one wait per thread");
        assert!(waits.due(later).is_empty(), "each shown once");
        let done = waits.take(
            record("recv", "Thread-1"),
            later + Duration::from_millis(400),
        );
        assert_eq!(done[0].at.as_ref().unwrap().blocked_us, Some(500_000));
    }

    #[tokio::test]
    async fn records_of_the_other_end_arrive_in_order() {
        let mut channel = Channel::new().unwrap();
        let theirs = channel.theirs.take().unwrap();
        for n in 0..3 {
            let mut r = record("send", "MainThread");
            r.len = Some(n);
            theirs.send(&serde_json::to_vec(&r).unwrap()).unwrap();
        }
        theirs.send(b"not a record").unwrap();
        let got = channel.next().await.unwrap();
        assert_eq!(got[0].len, Some(0));
        let rest = channel.drain(10);
        let lens: Vec<_> = rest.iter().map(|r| r.len).collect();
        assert_eq!(lens, [Some(1), Some(2)]);
    }
}
