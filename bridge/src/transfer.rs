//! File transfers and logs in the data directory: a TCP "save to file" receiver, a TCP file
//! sender, the UDP versions with numbered datagrams, and the per-message log a server can
//! keep. Transfers report progress about ten times a second and a final [`TransferReport`]
//! with size and SHA-256, instead of one event per chunk (a 1 GiB file would flood every
//! viewer); memory stays the same whatever the file size.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use shared::{
    DatagramReport, Direction, ErrorInfo, ErrorKind, EventKind, TransferEnd, TransferReport,
    DATAGRAM_HEADER, MAX_BULK, MAX_DATAGRAM, MAX_DATAGRAMS,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::datadir::{self, PartFile};
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
    thread: tokio::task::JoinHandle<std::io::Result<(PartFile, String, Duration)>>,
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
    fn start(part: PartFile) -> Self {
        let (chunks, mut incoming) = mpsc::channel::<Vec<u8>>(DISK_QUEUE);
        let (give_back, spare) = mpsc::unbounded_channel();
        let thread = tokio::task::spawn_blocking(move || {
            let out = &mut &part.file;
            let mut hasher = Sha256::new();
            let (mut written, mut flushed) = (0u64, 0u64);
            while let Some(chunk) = incoming.blocking_recv() {
                hasher.update(&chunk);
                out.write_all(&chunk)?;
                written += chunk.len() as u64;
                let _ = give_back.send(chunk);
                if written - flushed >= WRITEBACK_EVERY {
                    start_writeback(&part.file, flushed, written - flushed);
                    flushed = written;
                }
            }
            // Only what reached the disk counts as saved.
            let syncing = Instant::now();
            part.file.sync_all()?;
            let synced = syncing.elapsed();
            Ok((part, hex::encode(hasher.finalize()), synced))
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

    /// Waits for everything queued to be written and synced; returns the file, its SHA-256 and
    /// how long the final sync took.
    async fn finish(self) -> std::io::Result<(PartFile, String, Duration)> {
        drop(self.chunks);
        self.thread
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
    }
}

/// How often a receiver looks at the disk's free space.
const ROOM_EVERY: u64 = 8 << 20;

/// Receives a TCP stream until EOF into `file`, or, without one, nowhere (the `discard`
/// behaviour: counting only, no hash). Returns whether it ended at EOF (and, with a file,
/// reached the disk), after recording the report (and any error) as events. A file stops at
/// `--max-file-bytes` and when the disk is nearly full.
pub(crate) async fn receive_tcp(
    hub: &Hub,
    origin: &Origin,
    life: &Lifeline,
    reader: &mut OwnedReadHalf,
    file: Option<&str>,
) -> bool {
    let mut sink = match file.map(|name| hub.data.create_part(name, None)) {
        None => None,
        Some(Ok(part)) => Some(DiskWriter::start(part)),
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
    if sink.is_some() {
        // The file is open, and this transfer's alone: say so before the first byte.
        progress(hub, origin, name, 0, None);
    }
    // A discard server reads into one buffer; a file's chunks go to the writer thread whole.
    let mut buf = Vec::with_capacity(4 * CHUNK);
    let mut bytes = 0u64;
    let mut ticker = Ticker::new();
    let mut started = None;
    let mut room_checked = 0u64;
    let ended = loop {
        let read = tokio::select! {
            _ = life.stopped() => break TransferEnd::Stopped,
            read = reader.read_buf(&mut buf) => read,
        };
        match read {
            Ok(0) => {
                hub.log.emit(origin, EventKind::Eof);
                break TransferEnd::Eof;
            }
            Ok(n) => {
                started.get_or_insert_with(Instant::now);
                bytes += n as u64;
                if let Some(writer) = &mut sink {
                    let over = hub.data.check_size(name, bytes).and_then(|()| {
                        match bytes - room_checked >= ROOM_EVERY {
                            true => {
                                room_checked = bytes;
                                hub.data.check_room(name, ROOM_EVERY)
                            }
                            false => Ok(()),
                        }
                    });
                    if let Err(error) = over {
                        hub.log.emit(
                            origin,
                            EventKind::Error {
                                op: "write".into(),
                                error,
                            },
                        );
                        bytes -= n as u64;
                        break TransferEnd::Limit;
                    }
                    let chunk = std::mem::replace(&mut buf, writer.buffer());
                    if !writer.write(chunk).await {
                        break TransferEnd::DiskError; // the writer failed; finish() says why
                    }
                }
                buf.clear();
                if ticker.due() {
                    progress(hub, origin, name, bytes, None);
                }
            }
            Err(err) => {
                socket_failed(hub, origin, &err, Op::Recv, Proto::Tcp);
                break TransferEnd::Broken;
            }
        }
    };
    let (ended, sha256, sync_us) = match sink {
        None => (ended, String::new(), None),
        Some(writer) => match writer.finish().await {
            // Only a file that ended at EOF, and reached the disk, loses its .part suffix.
            Ok((part, sha256, synced)) => {
                let kept = ended == TransferEnd::Eof && datadir::finish(part).is_ok();
                let ended = match (ended, kept) {
                    (TransferEnd::Eof, false) => TransferEnd::DiskError,
                    (ended, _) => ended,
                };
                (ended, sha256, Some(synced.as_micros() as u64))
            }
            Err(err) => {
                let error = disk_error(name, &err);
                hub.log.emit(
                    origin,
                    EventKind::Error {
                        op: "write".into(),
                        error,
                    },
                );
                (TransferEnd::DiskError, String::new(), None)
            }
        },
    };
    let complete = ended == TransferEnd::Eof;
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
            ended: Some(ended),
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
        ended: None,
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
    let count = u32::try_from(total.div_ceil(chunk as u64).max(1))
        .ok()
        .filter(|count| *count <= MAX_DATAGRAMS)
        .ok_or_else(|| {
            ErrorInfo::new(
                ErrorKind::LimitReached,
                format!(
                    "The file needs more than {MAX_DATAGRAMS} datagrams, the most a transfer has."
                ),
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
        ended: None,
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

/// What every datagram of a UDP file transfer says in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) seq: u32,
    pub(crate) count: u32,
    /// Payload bytes of every datagram but the last.
    pub(crate) chunk: u32,
}

impl Header {
    /// Reads and checks a transfer datagram against sane limits: (header, payload), or why it
    /// is not one the receiver can use. Nothing a peer claims here is trusted further than
    /// these checks: a count or size beyond them would have the receiver reserve memory or
    /// write at offsets of terabytes.
    pub(crate) fn parse(datagram: &[u8], max_file_bytes: u64) -> Result<(Header, &[u8]), String> {
        if datagram.len() < DATAGRAM_HEADER {
            return Err(format!(
                "{} bytes are shorter than the {DATAGRAM_HEADER}-byte header of a file datagram",
                datagram.len()
            ));
        }
        let word = |i: usize| u32::from_be_bytes(datagram[i..i + 4].try_into().unwrap());
        let header = Header {
            seq: word(0),
            count: word(4),
            chunk: word(8),
        };
        let payload = &datagram[DATAGRAM_HEADER..];
        let max_chunk = (MAX_DATAGRAM - DATAGRAM_HEADER) as u32;
        let last = header.seq + 1 == header.count;
        let why = if !(1..=MAX_DATAGRAMS).contains(&header.count) {
            format!(
                "it announces {} datagrams (1 to {MAX_DATAGRAMS} are possible)",
                header.count
            )
        } else if !(1..=max_chunk).contains(&header.chunk) {
            format!(
                "it announces {}-byte datagrams (1 to {max_chunk} are possible)",
                header.chunk
            )
        } else if header.seq >= header.count {
            format!("it is number {} of only {}", header.seq, header.count)
        } else if u64::from(header.count - 1) * u64::from(header.chunk) >= max_file_bytes {
            format!(
                "the file it announces is over the {max_file_bytes}-byte limit (--max-file-bytes)"
            )
        } else if (last && payload.len() > header.chunk as usize)
            || (!last && payload.len() != header.chunk as usize)
        {
            format!(
                "it carries {} bytes where its header says {}",
                payload.len(),
                header.chunk
            )
        } else {
            return Ok((header, payload));
        };
        Err(format!("not a file datagram the bridge can use: {why}"))
    }

    /// Whether this datagram belongs to the same transfer as `first`.
    pub(crate) fn same_file(&self, first: &Header) -> bool {
        self.count == first.count && self.chunk == first.chunk
    }
}

/// A UDP receiver's transfer in progress. Datagrams go to a thread of their own that writes
/// each where it belongs, whatever order they arrive in, and hashes the file as it becomes
/// whole from the start (a datagram that arrived early is read back once the gap before it
/// fills): the runtime's threads never touch the disk, and no hash of a whole file waits for
/// the end. Memory: one bit per announced datagram, bounded by [`MAX_DATAGRAMS`].
pub(crate) struct UdpTransfer {
    /// Who sends it: datagrams of anyone else are not part of it.
    pub(crate) from: std::net::SocketAddr,
    pub(crate) header: Header,
    datagrams: mpsc::Sender<(u32, Vec<u8>)>,
}

/// Datagrams waiting for the writer thread; beyond it the server stops reading its socket
/// for a moment, and the kernel drops what its buffer cannot hold, as with any slow reader.
const UDP_QUEUE: usize = 256;

impl UdpTransfer {
    /// Starts receiving into `file` on the first datagram.
    pub(crate) fn start(
        hub: &Arc<Hub>,
        origin: &Origin,
        life: &Lifeline,
        file: &str,
        from: std::net::SocketAddr,
        header: Header,
    ) -> Result<UdpTransfer, ErrorInfo> {
        let size = u64::from(header.count) * u64::from(header.chunk);
        let part = hub.data.create_part(file, None)?;
        hub.data.check_room(file, size)?;
        let (datagrams, incoming) = mpsc::channel(UDP_QUEUE);
        let writer = UdpWriter {
            hub: hub.clone(),
            origin: origin.clone(),
            life: life.clone(),
            file: file.to_string(),
            part,
            header,
        };
        hub.tasks.spawn_blocking(move || writer.run(incoming));
        Ok(UdpTransfer {
            from,
            header,
            datagrams,
        })
    }

    /// Hands one datagram to the writer; false once the transfer is over (every datagram
    /// arrived, or the disk failed), so this one belongs to a next transfer.
    pub(crate) async fn take(&self, seq: u32, payload: &[u8]) -> bool {
        self.datagrams.send((seq, payload.to_vec())).await.is_ok()
    }
}

/// The writer thread of a [`UdpTransfer`].
struct UdpWriter {
    hub: Arc<Hub>,
    origin: Origin,
    life: Lifeline,
    file: String,
    part: PartFile,
    header: Header,
}

impl UdpWriter {
    fn run(self, mut incoming: mpsc::Receiver<(u32, Vec<u8>)>) {
        use std::os::unix::fs::FileExt;
        let Header { count, chunk, .. } = self.header;
        let mut seen = vec![0u64; (count as usize).div_ceil(64)];
        let is_seen = |seen: &[u64], seq: u32| seen[seq as usize / 64] & (1 << (seq % 64)) != 0;
        let (mut received, mut out_of_order, mut duplicates) = (0u32, 0u32, 0u32);
        let (mut highest, mut bytes, mut last_len) = (None::<u32>, 0u64, 0usize);
        let mut hasher = Sha256::new();
        // The next datagram to hash: everything before it is hashed, in order.
        let mut hashed = 0u32;
        let mut back = vec![0u8; chunk as usize];
        let mut ticker = Ticker::new();
        let started = Instant::now();
        let offset = |seq: u32| u64::from(seq) * u64::from(chunk);
        let ended = loop {
            let Some((seq, payload)) = incoming.blocking_recv() else {
                break if self.life.is_stopped() {
                    TransferEnd::Stopped
                } else {
                    TransferEnd::Quiet
                };
            };
            if is_seen(&seen, seq) {
                duplicates += 1;
                continue;
            }
            if let Err(err) = self.part.file.write_all_at(&payload, offset(seq)) {
                self.error(&err);
                break TransferEnd::DiskError;
            }
            seen[seq as usize / 64] |= 1 << (seq % 64);
            received += 1;
            bytes += payload.len() as u64;
            if seq + 1 == count {
                last_len = payload.len();
            }
            if highest.is_some_and(|h| seq < h) {
                out_of_order += 1;
            }
            highest = highest.max(Some(seq));
            if seq == hashed {
                hasher.update(&payload);
                hashed += 1;
                // Datagrams that came early now follow in order: read them back.
                while hashed < count && is_seen(&seen, hashed) {
                    let len = if hashed + 1 == count {
                        last_len
                    } else {
                        chunk as usize
                    };
                    if let Err(err) = self
                        .part
                        .file
                        .read_exact_at(&mut back[..len], offset(hashed))
                    {
                        self.error(&err);
                        break;
                    }
                    hasher.update(&back[..len]);
                    hashed += 1;
                }
            }
            if ticker.due() {
                progress(&self.hub, &self.origin, &self.file, bytes, None);
            }
            if received == count {
                break TransferEnd::AllDatagrams;
            }
        };
        drop(incoming);
        let syncing = Instant::now();
        let synced = self.part.file.sync_all().is_ok();
        let sync_us = syncing.elapsed().as_micros() as u64;
        let whole = ended == TransferEnd::AllDatagrams && hashed == count && synced;
        let complete = whole && datadir::finish(self.part).is_ok();
        self.hub.log.emit(
            &self.origin,
            EventKind::Transfer(TransferReport {
                direction: Direction::Received,
                file: self.file,
                bytes,
                // Only a whole file has a hash worth comparing.
                sha256: if complete {
                    hex::encode(hasher.finalize())
                } else {
                    String::new()
                },
                duration_us: started.elapsed().as_micros() as u64,
                complete,
                datagrams: Some(DatagramReport {
                    expected: count,
                    received,
                    missing: count - received,
                    out_of_order,
                    duplicates,
                }),
                sync_us: Some(sync_us),
                ended: Some(match (ended, complete) {
                    (TransferEnd::AllDatagrams, false) => TransferEnd::DiskError,
                    (ended, _) => ended,
                }),
            }),
        );
    }

    fn error(&self, err: &std::io::Error) {
        let error = disk_error(&self.file, err);
        self.hub.log.emit(
            &self.origin,
            EventKind::Error {
                op: "write".into(),
                error,
            },
        );
    }
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
        let max = 4 << 30;
        let mut datagram = datagram_header(9, 10, 3).to_vec();
        datagram.extend_from_slice(b"abc");
        let (header, payload) = Header::parse(&datagram, max).unwrap();
        assert_eq!(
            (header.seq, header.count, header.chunk, payload),
            (9, 10, 3, &b"abc"[..])
        );
        let last_is_shorter = [&datagram_header(9, 10, 1024)[..], b"abc"].concat();
        assert!(Header::parse(&last_is_shorter, max).is_ok());
        let others_are_full = [&datagram_header(3, 10, 1024)[..], b"abc"].concat();
        assert!(Header::parse(&others_are_full, max).is_err());
        assert!(Header::parse(&datagram_header(10, 10, 1), max).is_err());
        assert!(Header::parse(b"short", max).is_err());
        // The datagram of the attack: a count of 2^32-1, a seq far out, 65000-byte chunks.
        let hostile = datagram_header(16_519, u32::MAX, 65_000);
        let why = Header::parse(&hostile, max).unwrap_err();
        assert!(why.contains("datagrams"), "{why}");
        let over_limit = [&datagram_header(0, 1 << 20, 65_000)[..], &[0u8; 65_000]].concat();
        let why = Header::parse(&over_limit, max).unwrap_err();
        assert!(why.contains("max-file-bytes"), "{why}");
    }
}
