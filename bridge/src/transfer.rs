//! File transfers and logs in the data directory: a TCP "save to file" receiver, a TCP file
//! sender, the UDP versions with numbered datagrams, and the per-message log a server can
//! keep. Transfers report progress about ten times a second and a final [`TransferReport`]
//! with size and SHA-256, instead of one event per chunk (a 1 GiB file would flood every
//! viewer); memory stays the same whatever the file size.

use std::io::Write as _;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use shared::{
    DatagramReport, Direction, ErrorInfo, ErrorKind, EventKind, TransferReport, DATAGRAM_HEADER,
    MAX_BULK, MAX_DATAGRAM,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::datadir;
use crate::events::Origin;
use crate::explain::{explain, Op, Proto};
use crate::hub::{Hub, Lifeline};

/// How often progress is reported.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// Bytes per read or write of a file transfer.
const CHUNK: usize = 64 * 1024;
/// A UDP receiver that hears nothing for this long ends its transfer as incomplete.
pub(crate) const UDP_IDLE: Duration = Duration::from_secs(2);

/// Reports progress at most every [`PROGRESS_EVERY`].
struct Ticker {
    next: Instant,
}

impl Ticker {
    fn new() -> Self {
        Ticker {
            next: Instant::now() + PROGRESS_EVERY,
        }
    }

    fn due(&mut self) -> bool {
        let now = Instant::now();
        if now < self.next {
            return false;
        }
        self.next = now + PROGRESS_EVERY;
        true
    }
}

fn progress(hub: &Hub, origin: &Origin, file: &str, bytes: u64, total: Option<u64>) {
    hub.log.emit(
        origin,
        EventKind::Progress {
            file: file.to_string(),
            bytes,
            total,
        },
    );
}

/// Records a socket call of a transfer that failed, explained; the peer is the origin's.
fn socket_failed(hub: &Hub, origin: &Origin, err: &std::io::Error, op: Op, proto: Proto) {
    let peer = origin.peer.as_deref().unwrap_or("the peer");
    hub.log.emit(
        origin,
        EventKind::Error {
            op: op.name().into(),
            error: explain(err, op, proto, peer),
        },
    );
}

fn disk_error(file: &str, err: &std::io::Error) -> ErrorInfo {
    let mut info = ErrorInfo::new(
        ErrorKind::Other,
        format!("Writing or reading '{file}' in the data directory failed: {err}."),
    )
    .with_hint("Check that the disk has room and the data directory is writable.");
    info.os_message = Some(err.to_string());
    info.errno = err.raw_os_error();
    info
}

/// Writes and hashes a received file on a thread of its own, so that the socket is read while
/// the previous chunks are hashed and written (two cores: about twice the speed of doing the
/// three in turn). The channel holds a few chunks: memory stays bounded, and a slow disk slows
/// the reading, and so the sender, instead of piling up.
struct DiskWriter {
    chunks: mpsc::Sender<Vec<u8>>,
    /// Buffers the thread is done with, to be filled again (no copy, no fresh allocation per
    /// chunk: both cost as much as the writing itself at these speeds).
    spare: mpsc::UnboundedReceiver<Vec<u8>>,
    thread: tokio::task::JoinHandle<std::io::Result<(String, Duration)>>,
}

/// Chunks in flight between the socket and the disk.
const DISK_QUEUE: usize = 8;
/// How much written data may wait before the disk is asked to start writing it back.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// Asks the kernel to start writing this range to disk now, without waiting for it: the disk
/// works while more arrives, and the fsync at the end has little left to do (instead of a
/// whole gigabyte of dirty pages at once).
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    // SAFETY: sync_file_range only reads its arguments; a failure only means no head start.
    unsafe {
        libc::sync_file_range(
            std::os::fd::AsRawFd::as_raw_fd(file),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

impl DiskWriter {
    fn start(file: std::fs::File) -> Self {
        let (chunks, mut incoming) = mpsc::channel::<Vec<u8>>(DISK_QUEUE);
        let (give_back, spare) = mpsc::unbounded_channel();
        let thread = tokio::task::spawn_blocking(move || {
            let mut out = file;
            let mut hasher = Sha256::new();
            let (mut written, mut flushed) = (0u64, 0u64);
            while let Some(chunk) = incoming.blocking_recv() {
                hasher.update(&chunk);
                out.write_all(&chunk)?;
                written += chunk.len() as u64;
                let _ = give_back.send(chunk);
                if written - flushed >= WRITEBACK_EVERY {
                    start_writeback(&out, flushed, written - flushed);
                    flushed = written;
                }
            }
            // Only what reached the disk counts as saved.
            let syncing = Instant::now();
            out.sync_all()?;
            Ok((hex::encode(hasher.finalize()), syncing.elapsed()))
        });
        DiskWriter {
            chunks,
            spare,
            thread,
        }
    }

    /// An empty buffer with room for `CHUNK * 4` bytes to read into: one given back, or a new
    /// one. Reads fill its spare capacity, so it is never zeroed first.
    fn buffer(&mut self) -> Vec<u8> {
        let mut buf = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(4 * CHUNK));
        buf.clear();
        buf
    }

    /// Queues a chunk; false if the writer stopped (a disk error, told by [`Self::finish`]).
    async fn write(&self, chunk: Vec<u8>) -> bool {
        self.chunks.send(chunk).await.is_ok()
    }

    /// Waits for everything queued to be written and synced; returns the SHA-256 and how long
    /// the final sync took.
    async fn finish(self) -> std::io::Result<(String, Duration)> {
        drop(self.chunks);
        self.thread
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
    }
}

/// Receives a TCP stream until EOF into `file`, or, without one, nowhere (the `discard`
/// behaviour: counting only, no hash). Returns whether everything arrived (and, with a file,
/// reached the disk), after recording the report (and any error) as events.
pub(crate) async fn receive_tcp(
    hub: &Hub,
    origin: &Origin,
    life: &Lifeline,
    reader: &mut OwnedReadHalf,
    file: Option<&str>,
) -> bool {
    let mut sink = match file.map(|name| hub.data.create_part(name)) {
        None => None,
        Some(Ok((std_file, part))) => Some((DiskWriter::start(std_file), part)),
        Some(Err(error)) => {
            hub.log.emit(
                origin,
                EventKind::Error {
                    op: "open".into(),
                    error,
                },
            );
            return false;
        }
    };
    let name = file.unwrap_or_default();
    // A discard server reads into one buffer; a file's chunks go to the writer thread whole.
    let mut buf = Vec::with_capacity(4 * CHUNK);
    let mut bytes = 0u64;
    let mut ticker = Ticker::new();
    let mut started = None;
    let complete = loop {
        let read = tokio::select! {
            _ = life.stopped() => break false,
            read = reader.read_buf(&mut buf) => read,
        };
        match read {
            Ok(0) => {
                hub.log.emit(origin, EventKind::Eof);
                break true;
            }
            Ok(n) => {
                started.get_or_insert_with(Instant::now);
                if let Some((writer, _)) = &mut sink {
                    let chunk = std::mem::replace(&mut buf, writer.buffer());
                    if !writer.write(chunk).await {
                        break false; // the writer failed; finish() says why
                    }
                }
                bytes += n as u64;
                buf.clear();
                if ticker.due() {
                    progress(hub, origin, name, bytes, None);
                }
            }
            Err(err) => {
                socket_failed(hub, origin, &err, Op::Recv, Proto::Tcp);
                break false;
            }
        }
    };
    let (complete, sha256, sync_us) = match sink {
        None => (complete, String::new(), None),
        Some((writer, part)) => match writer.finish().await {
            // Only a file that arrived whole, and reached the disk, loses its .part suffix.
            Ok((sha256, synced)) => (
                complete && datadir::finish(&part).is_ok(),
                sha256,
                Some(synced.as_micros() as u64),
            ),
            Err(err) => {
                let error = disk_error(name, &err);
                hub.log.emit(
                    origin,
                    EventKind::Error {
                        op: "write".into(),
                        error,
                    },
                );
                (false, String::new(), None)
            }
        },
    };
    hub.log.emit(
        origin,
        EventKind::Transfer(TransferReport {
            direction: Direction::Received,
            file: name.to_string(),
            bytes,
            sha256,
            duration_us: started.map_or(0, |s| s.elapsed().as_micros() as u64),
            complete,
            datagrams: None,
            sync_us,
        }),
    );
    complete
}

/// Where the bytes of a TCP send come from: a file of the data directory, or generated test
/// data (`send_bulk`, memory to memory, not hashed).
pub(crate) enum Source<'a> {
    File(&'a str),
    Generated(u64),
}

/// Sends all of `source` over a TCP connection, then shuts down the write side.
pub(crate) async fn send_tcp(
    hub: &Hub,
    origin: &Origin,
    life: &Lifeline,
    writer: &mut OwnedWriteHalf,
    source: Source<'_>,
) -> Result<TransferReport, ErrorInfo> {
    let (name, total, mut input, mut hasher, mut buf) = match source {
        Source::File(file) => {
            let (std_file, total) = hub.data.open(file)?;
            let input = tokio::fs::File::from_std(std_file);
            (
                file,
                total,
                Some(input),
                Some(Sha256::new()),
                vec![0u8; CHUNK],
            )
        }
        Source::Generated(total) if total > MAX_BULK => {
            return Err(ErrorInfo::new(
                ErrorKind::LimitReached,
                format!("send_bulk sends at most {MAX_BULK} bytes; {total} were asked for."),
            ))
        }
        // Larger writes than a file's: fewer system calls, as iperf3 does (128 KiB).
        Source::Generated(total) => ("", total, None, None, pattern(4 * CHUNK)),
    };
    let mut bytes = 0u64;
    let mut ticker = Ticker::new();
    let started = Instant::now();
    progress(hub, origin, name, 0, Some(total));
    let complete = loop {
        let n = match &mut input {
            Some(input) => input
                .read(&mut buf)
                .await
                .map_err(|e| disk_error(name, &e))?,
            None => buf.len().min((total - bytes) as usize),
        };
        if n == 0 {
            break true;
        }
        let written = tokio::select! {
            _ = life.stopped() => break false,
            written = writer.write_all(&buf[..n]) => written,
        };
        if let Err(err) = written {
            socket_failed(hub, origin, &err, Op::Send, Proto::Tcp);
            break false;
        }
        if let Some(hasher) = &mut hasher {
            hasher.update(&buf[..n]);
        }
        bytes += n as u64;
        if ticker.due() {
            progress(hub, origin, name, bytes, Some(total));
        }
    };
    if complete {
        hub.log.emit(origin, EventKind::Shutdown);
        let _ = writer.shutdown().await;
    }
    let report = TransferReport {
        direction: Direction::Sent,
        file: name.to_string(),
        bytes,
        sha256: hasher
            .map(|h| hex::encode(h.finalize()))
            .unwrap_or_default(),
        duration_us: started.elapsed().as_micros() as u64,
        complete,
        datagrams: None,
        sync_us: None,
    };
    hub.log.emit(origin, EventKind::Transfer(report.clone()));
    Ok(report)
}

/// Test data that is easy to recognise in a capture: the printable ASCII characters, over and
/// over, in whole cycles (about `len` bytes), so that writing the buffer again and again
/// continues the pattern without a seam.
fn pattern(len: usize) -> Vec<u8> {
    let cycle = usize::from(b'~' - b' ' + 1);
    (b' '..=b'~').cycle().take(len / cycle * cycle).collect()
}

/// The header of each datagram of a UDP file transfer: sequence number, datagram count and
/// payload size of every datagram but the last, big-endian u32 each.
pub(crate) fn datagram_header(seq: u32, count: u32, chunk: u32) -> [u8; DATAGRAM_HEADER] {
    let mut header = [0u8; DATAGRAM_HEADER];
    header[..4].copy_from_slice(&seq.to_be_bytes());
    header[4..8].copy_from_slice(&count.to_be_bytes());
    header[8..].copy_from_slice(&chunk.to_be_bytes());
    header
}

/// Where a UDP file goes: the socket, its simulated trouble, and the destination.
pub(crate) struct UdpLink<'a> {
    pub(crate) socket: &'a UdpSocket,
    pub(crate) trouble: &'a mut crate::impair::UdpTrouble,
    pub(crate) to: std::net::SocketAddr,
}

/// Sends `file` as numbered datagrams of `chunk` payload bytes each.
pub(crate) async fn send_udp(
    hub: &Hub,
    origin: &Origin,
    life: &Lifeline,
    link: UdpLink<'_>,
    file: &str,
    chunk: usize,
) -> Result<TransferReport, ErrorInfo> {
    let UdpLink {
        socket,
        trouble,
        to,
    } = link;
    if !(1..=MAX_DATAGRAM - DATAGRAM_HEADER).contains(&chunk) {
        return Err(ErrorInfo::new(
            ErrorKind::MessageTooLong,
            format!(
                "A datagram can carry 1 to {} bytes of the file after its {DATAGRAM_HEADER}-byte header.",
                MAX_DATAGRAM - DATAGRAM_HEADER
            ),
        ));
    }
    let (std_file, total) = hub.data.open(file)?;
    let count = u32::try_from(total.div_ceil(chunk as u64).max(1)).map_err(|_| {
        ErrorInfo::new(
            ErrorKind::LimitReached,
            "The file needs too many datagrams.",
        )
        .with_hint("Choose a larger datagram size.")
    })?;
    let mut input = tokio::fs::File::from_std(std_file);
    let mut hasher = Sha256::new();
    let mut datagram = vec![0u8; DATAGRAM_HEADER + chunk];
    let mut bytes = 0u64;
    let mut sent = 0u32;
    let mut ticker = Ticker::new();
    let started = Instant::now();
    progress(hub, origin, file, 0, Some(total));
    for seq in 0..count {
        if life.is_stopped() {
            break;
        }
        let n = read_full(&mut input, &mut datagram[DATAGRAM_HEADER..])
            .await
            .map_err(|e| disk_error(file, &e))?;
        datagram[..DATAGRAM_HEADER].copy_from_slice(&datagram_header(seq, count, chunk as u32));
        // The simulated trouble applies to files too: that is the point of sending one by UDP.
        let plan = trouble.plan(hub, origin, &datagram[..DATAGRAM_HEADER + n], to);
        if plan.delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(u64::from(plan.delay_ms))).await;
        }
        let mut failed = false;
        for _ in 0..plan.copies {
            if let Err(err) = socket.send_to(&datagram[..DATAGRAM_HEADER + n], to).await {
                socket_failed(hub, origin, &err, Op::SendTo, Proto::Udp);
                failed = true;
            }
        }
        if let Some((held, to)) = plan.release {
            let _ = socket.send_to(&held, to).await;
        }
        if failed {
            continue;
        }
        hasher.update(&datagram[DATAGRAM_HEADER..DATAGRAM_HEADER + n]);
        bytes += n as u64;
        sent += 1;
        if ticker.due() {
            progress(hub, origin, file, bytes, Some(total));
        }
    }
    if let Some((held, to)) = trouble.take_held() {
        let _ = socket.send_to(&held, to).await;
    }
    let report = TransferReport {
        direction: Direction::Sent,
        file: file.to_string(),
        bytes,
        sha256: hex::encode(hasher.finalize()),
        duration_us: started.elapsed().as_micros() as u64,
        complete: sent == count,
        datagrams: Some(DatagramReport {
            expected: count,
            received: sent,
            missing: count - sent,
            out_of_order: 0,
            duplicates: 0,
        }),
        sync_us: None,
    };
    hub.log.emit(origin, EventKind::Transfer(report.clone()));
    Ok(report)
}

async fn read_full(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// A UDP receiver's transfer in progress: datagrams are written where they belong, whatever
/// order they arrive in, and counted.
pub(crate) struct UdpTransfer {
    file: String,
    out: std::fs::File,
    part: std::path::PathBuf,
    seen: Vec<bool>,
    received: u32,
    out_of_order: u32,
    duplicates: u32,
    highest: Option<u32>,
    bytes: u64,
    started: Instant,
    ticker: Ticker,
}

impl UdpTransfer {
    /// Starts receiving into `file` on the first datagram.
    pub(crate) fn start(hub: &Hub, file: &str, count: u32) -> Result<UdpTransfer, ErrorInfo> {
        let (out, part) = hub.data.create_part(file)?;
        Ok(UdpTransfer {
            file: file.to_string(),
            out,
            part,
            seen: vec![false; count as usize],
            received: 0,
            out_of_order: 0,
            duplicates: 0,
            highest: None,
            bytes: 0,
            started: Instant::now(),
            ticker: Ticker::new(),
        })
    }

    /// Parses a transfer datagram: (seq, count, chunk, payload).
    pub(crate) fn parse(datagram: &[u8]) -> Option<(u32, u32, u32, &[u8])> {
        if datagram.len() < DATAGRAM_HEADER {
            return None;
        }
        let word = |i: usize| u32::from_be_bytes(datagram[i..i + 4].try_into().unwrap());
        let (seq, count, chunk) = (word(0), word(4), word(8));
        (count > 0 && seq < count && chunk > 0).then_some((
            seq,
            count,
            chunk,
            &datagram[DATAGRAM_HEADER..],
        ))
    }

    /// Takes one datagram; returns true once every datagram has arrived.
    pub(crate) fn take(
        &mut self,
        hub: &Hub,
        origin: &Origin,
        seq: u32,
        chunk: u32,
        payload: &[u8],
    ) -> bool {
        use std::os::unix::fs::FileExt;
        let Some(seen) = self.seen.get_mut(seq as usize) else {
            return false;
        };
        if *seen {
            self.duplicates += 1;
            return false;
        }
        if let Err(err) = self
            .out
            .write_all_at(payload, u64::from(seq) * u64::from(chunk))
        {
            let error = disk_error(&self.file, &err);
            hub.log.emit(
                origin,
                EventKind::Error {
                    op: "write".into(),
                    error,
                },
            );
            return false;
        }
        *seen = true;
        self.received += 1;
        self.bytes += payload.len() as u64;
        if self.highest.is_some_and(|h| seq < h) {
            self.out_of_order += 1;
        }
        self.highest = self.highest.max(Some(seq));
        if self.ticker.due() {
            progress(hub, origin, &self.file, self.bytes, None);
        }
        self.received as usize == self.seen.len()
    }

    /// Ends the transfer (all arrived, or the sender went quiet) and reports it.
    pub(crate) fn finish(mut self, hub: &Hub, origin: &Origin) {
        let expected = self.seen.len() as u32;
        let complete = self.received == expected;
        let _ = self.out.flush();
        let syncing = Instant::now();
        let synced = self.out.sync_all().is_ok();
        let sync_us = syncing.elapsed().as_micros() as u64;
        let sha256 = hash_file(&self.part).unwrap_or_default();
        let complete = complete && synced && datadir::finish(&self.part).is_ok();
        hub.log.emit(
            origin,
            EventKind::Transfer(TransferReport {
                direction: Direction::Received,
                file: self.file,
                bytes: self.bytes,
                sha256,
                duration_us: self.started.elapsed().as_micros() as u64,
                complete,
                datagrams: Some(DatagramReport {
                    expected,
                    received: self.received,
                    missing: expected - self.received,
                    out_of_order: self.out_of_order,
                    duplicates: self.duplicates,
                }),
                sync_us: Some(sync_us),
            }),
        );
    }
}

fn hash_file(path: &std::path::Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

/// The log a server keeps of what it receives: one line per message, written through at once
/// so that a crash loses nothing already shown.
pub(crate) struct MessageLog {
    file: std::fs::File,
    name: String,
}

impl MessageLog {
    /// The log a server spec asks for, if any; a file that cannot be opened is reported as an
    /// error event and the server runs without its log.
    pub(crate) fn for_spec(hub: &Hub, origin: &Origin, name: Option<&str>) -> Option<MessageLog> {
        match MessageLog::open(hub, name?) {
            Ok(log) => Some(log),
            Err(error) => {
                hub.log.emit(
                    origin,
                    EventKind::Error {
                        op: "log".into(),
                        error,
                    },
                );
                None
            }
        }
    }

    pub(crate) fn open(hub: &Hub, name: &str) -> Result<MessageLog, ErrorInfo> {
        Ok(MessageLog {
            file: hub.data.append(name)?,
            name: name.to_string(),
        })
    }

    /// Appends `2026-11-22T00:19:01.123Z 127.0.0.1:50770 hello` (control characters escaped).
    pub(crate) fn write(&mut self, hub: &Hub, origin: &Origin, peer: &str, data: &[u8]) {
        let text: String = String::from_utf8_lossy(data)
            .trim_end_matches(['\r', '\n'])
            .escape_debug()
            .collect();
        let line = format!("{} {peer} {text}\n", utc_now());
        if let Err(err) = self.file.write_all(line.as_bytes()) {
            let error = disk_error(&self.name, &err);
            hub.log.emit(
                origin,
                EventKind::Error {
                    op: "log".into(),
                    error,
                },
            );
        }
    }
}

/// The time now as `2026-11-22T00:19:01.123Z`.
fn utc_now() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        (rest / 60) % 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_headers() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_414), (2025, 11, 22));
        let mut datagram = datagram_header(3, 10, 1024).to_vec();
        datagram.extend_from_slice(b"abc");
        assert_eq!(
            UdpTransfer::parse(&datagram),
            Some((3, 10, 1024, &b"abc"[..]))
        );
        assert_eq!(UdpTransfer::parse(&datagram_header(10, 10, 1)), None);
        assert_eq!(UdpTransfer::parse(b"short"), None);
    }
}
