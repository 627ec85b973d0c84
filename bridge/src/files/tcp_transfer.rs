//! TCP file transfers: the "save to file" receiver (and the `discard` counter), and the file
//! (or generated test data) sender. The receiver writes and hashes on a thread of its own.

use std::io::Write as _;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use shared::{Direction, ErrorInfo, ErrorKind, EventKind, TransferEnd, TransferReport, MAX_BULK};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use super::datadir::{self, DataDir, PartFile};
use super::{disk_error, progress, socket_failed, Ticker, CHUNK};
use crate::core::ctx::Ctx;
use crate::explain::{Op, Proto};

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
    ctx: &Ctx,
    data: &DataDir,
    reader: &mut OwnedReadHalf,
    file: Option<&str>,
) -> bool {
    let mut sink = match file.map(|name| data.create_part(name, None)) {
        None => None,
        Some(Ok(part)) => Some(DiskWriter::start(part)),
        Some(Err(error)) => {
            ctx.emit(EventKind::Error {
                op: "open".into(),
                error,
            });
            return false;
        }
    };
    let name = file.unwrap_or_default();
    if sink.is_some() {
        // The file is open, and this transfer's alone: say so before the first byte.
        progress(ctx, name, 0, None);
    }
    // A discard server reads into one buffer; a file's chunks go to the writer thread whole.
    let mut buf = Vec::with_capacity(4 * CHUNK);
    let mut bytes = 0u64;
    let mut ticker = Ticker::new();
    let mut started = None;
    let mut room_checked = 0u64;
    let ended = loop {
        let read = tokio::select! {
            _ = ctx.life.stopped() => break TransferEnd::Stopped,
            read = reader.read_buf(&mut buf) => read,
        };
        match read {
            Ok(0) => {
                ctx.emit(EventKind::Eof);
                break TransferEnd::Eof;
            }
            Ok(n) => {
                started.get_or_insert_with(Instant::now);
                bytes += n as u64;
                if let Some(writer) = &mut sink {
                    let over = data.check_size(name, bytes).and_then(|()| {
                        match bytes - room_checked >= ROOM_EVERY {
                            true => {
                                room_checked = bytes;
                                data.check_room(name, ROOM_EVERY)
                            }
                            false => Ok(()),
                        }
                    });
                    if let Err(error) = over {
                        ctx.emit(EventKind::Error {
                            op: "write".into(),
                            error,
                        });
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
                    progress(ctx, name, bytes, None);
                }
            }
            Err(err) => {
                socket_failed(ctx, &err, Op::Recv, Proto::Tcp);
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
                ctx.emit(EventKind::Error {
                    op: "write".into(),
                    error,
                });
                (TransferEnd::DiskError, String::new(), None)
            }
        },
    };
    let complete = ended == TransferEnd::Eof;
    ctx.emit(EventKind::Transfer(TransferReport {
        direction: Direction::Received,
        file: name.to_string(),
        bytes,
        sha256,
        duration_us: started.map_or(0, |s| s.elapsed().as_micros() as u64),
        complete,
        datagrams: None,
        sync_us,
        ended: Some(ended),
    }));
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
    ctx: &Ctx,
    data: &DataDir,
    writer: &mut OwnedWriteHalf,
    source: Source<'_>,
) -> Result<TransferReport, ErrorInfo> {
    let (name, total, mut input, mut hasher, mut buf) = match source {
        Source::File(file) => {
            let (std_file, total) = data.open(file)?;
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
    progress(ctx, name, 0, Some(total));
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
            _ = ctx.life.stopped() => break false,
            written = writer.write_all(&buf[..n]) => written,
        };
        if let Err(err) = written {
            socket_failed(ctx, &err, Op::Send, Proto::Tcp);
            break false;
        }
        if let Some(hasher) = &mut hasher {
            hasher.update(&buf[..n]);
        }
        bytes += n as u64;
        if ticker.due() {
            progress(ctx, name, bytes, Some(total));
        }
    };
    if complete {
        ctx.emit(EventKind::Shutdown);
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
    ctx.emit(EventKind::Transfer(report.clone()));
    Ok(report)
}

/// Test data that is easy to recognise in a capture: the printable ASCII characters, over and
/// over, in whole cycles (about `len` bytes), so that writing the buffer again and again
/// continues the pattern without a seam.
fn pattern(len: usize) -> Vec<u8> {
    let cycle = usize::from(b'~' - b' ' + 1);
    (b' '..=b'~').cycle().take(len / cycle * cycle).collect()
}
