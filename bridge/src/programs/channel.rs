//! The channel a traced program's shim reports on: a Unix datagram socket pair, one end
//! inherited by the program (and by the processes it forks; each datagram carries whole
//! records, one JSON line each, so records of several processes never interleave), the other
//! read here. When the reader falls behind, the kernel's queue fills and the program's next
//! report waits, as under strace: nothing is lost and nothing grows without bound.
//!
//! The shim batches records (a datagram per call woke this reader for each, which cost more
//! than the calls) and sends them when the program is about to block, every 100 ms, before a
//! fork and at exit. A call still blocked after 100 ms is reported by the shim's watcher as a
//! `wait`, so a student sees "accept() waiting" where the program is stuck, not before every
//! recv(); the call's own record then says when it began and returned.
//!
//! Used by the bridge for the programs it runs and by `bridge trace` for a terminal's.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use shared::TraceRecord;
use tokio::net::UnixDatagram;

/// The environment variable that names the program's end of the channel.
pub(crate) const FD_VAR: &str = "SOCKET_PLAYGROUND_TRACE_FD";
/// Largest datagram read: the shim's batches are at most 32 KiB plus one record, and a record
/// keeps at most 64 KiB of data (87 KiB in base64).
const MAX_DATAGRAM: usize = 256 * 1024;

/// The channel: [`Channel::program_end`] goes to the program, the rest stays here.
pub(crate) struct Channel {
    ours: UnixDatagram,
    theirs: Option<std::os::unix::net::UnixDatagram>,
    buf: Vec<u8>,
}

impl Channel {
    pub(crate) fn new() -> io::Result<Channel> {
        let (ours, theirs) = std::os::unix::net::UnixDatagram::pair()?;
        ours.set_nonblocking(true)?;
        Ok(Channel {
            ours: UnixDatagram::from_std(ours)?,
            theirs: Some(theirs),
            buf: vec![0; MAX_DATAGRAM],
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

    /// The next records, in order. Cancel-safe.
    pub(crate) async fn next(&mut self) -> io::Result<Vec<TraceRecord>> {
        loop {
            let n = self.ours.recv(&mut self.buf).await?;
            let records = self.parse(n);
            if !records.is_empty() {
                return Ok(records);
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

    /// The records of one datagram; lines that are not the shim's records are skipped (the
    /// channel is the program's to write).
    fn parse(&self, n: usize) -> Vec<TraceRecord> {
        self.buf[..n]
            .split(|b| *b == b'\n')
            .filter_map(|line| serde_json::from_slice::<TraceRecord>(line).ok())
            .collect()
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

    #[tokio::test]
    async fn records_of_the_other_end_arrive_in_order() {
        let mut channel = Channel::new().unwrap();
        let theirs = channel.theirs.take().unwrap();
        let line = |n| {
            let mut r = record("send", "MainThread");
            r.len = Some(n);
            serde_json::to_string(&r).unwrap()
        };
        theirs.send(line(0).as_bytes()).unwrap();
        // A batch: two records, and a line that is not one.
        let batch = format!("{}\nnot a record\n{}", line(1), line(2));
        theirs.send(batch.as_bytes()).unwrap();
        let got = channel.next().await.unwrap();
        assert_eq!(got[0].len, Some(0));
        let rest = channel.drain(10);
        let lens: Vec<_> = rest.iter().map(|r| r.len).collect();
        assert_eq!(lens, [Some(1), Some(2)]);
    }
}
