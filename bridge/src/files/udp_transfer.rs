//! UDP file transfers: numbered datagrams of a file (a 12-byte header: sequence number,
//! datagram count, size of the full datagrams), the sender and the receiver. The receiver
//! trusts nothing in a header beyond sane limits, and writes and hashes on a thread of its own.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use shared::{
    DatagramReport, Direction, ErrorInfo, ErrorKind, EventKind, TransferEnd, TransferReport,
    DATAGRAM_HEADER, MAX_DATAGRAM, MAX_DATAGRAMS,
};
use tokio::io::AsyncReadExt;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use super::datadir::{self, DataDir, PartFile};
use super::{disk_error, progress, socket_failed, Ticker};
use crate::core::ctx::Ctx;
use crate::explain::{Op, Proto};

/// A UDP receiver that hears nothing for this long ends its transfer as incomplete.
pub(crate) const UDP_IDLE: Duration = Duration::from_secs(2);

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
    pub(crate) trouble: &'a mut crate::core::impair::UdpTrouble,
    pub(crate) to: std::net::SocketAddr,
}

/// Sends `file` as numbered datagrams of `chunk` payload bytes each.
pub(crate) async fn send_udp(
    ctx: &Ctx,
    data: &DataDir,
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
    let (std_file, total) = data.open(file)?;
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
    progress(ctx, file, 0, Some(total));
    for seq in 0..count {
        if ctx.life.is_stopped() {
            break;
        }
        let n = read_full(&mut input, &mut datagram[DATAGRAM_HEADER..])
            .await
            .map_err(|e| disk_error(file, &e))?;
        datagram[..DATAGRAM_HEADER].copy_from_slice(&datagram_header(seq, count, chunk as u32));
        // The simulated trouble applies to files too: that is the point of sending one by UDP.
        let plan = trouble.plan(ctx, &datagram[..DATAGRAM_HEADER + n], to);
        if plan.delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(u64::from(plan.delay_ms))).await;
        }
        let mut failed = false;
        for _ in 0..plan.copies {
            if let Err(err) = socket.send_to(&datagram[..DATAGRAM_HEADER + n], to).await {
                socket_failed(ctx, &err, Op::SendTo, Proto::Udp);
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
            progress(ctx, file, bytes, Some(total));
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
    ctx.emit(EventKind::Transfer(report.clone()));
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
        ctx: &Ctx,
        data: &DataDir,
        tasks: &TaskTracker,
        file: &str,
        from: std::net::SocketAddr,
        header: Header,
    ) -> Result<UdpTransfer, ErrorInfo> {
        let size = u64::from(header.count) * u64::from(header.chunk);
        let part = data.create_part(file, None)?;
        data.check_room(file, size)?;
        let (datagrams, incoming) = mpsc::channel(UDP_QUEUE);
        let writer = UdpWriter {
            ctx: ctx.clone(),
            file: file.to_string(),
            part,
            header,
        };
        tasks.spawn_blocking(move || writer.run(incoming));
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
    ctx: Ctx,
    file: String,
    part: PartFile,
    header: Header,
}

impl UdpWriter {
    fn run(self, mut incoming: mpsc::Receiver<(u32, Vec<u8>)>) {
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
                break if self.ctx.life.is_stopped() {
                    TransferEnd::Stopped
                } else {
                    TransferEnd::Quiet
                };
            };
            if is_seen(&seen, seq) {
                duplicates += 1;
                continue;
            }
            if let Err(err) = write_all_at(&self.part.file, &payload, offset(seq)) {
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
                    if let Err(err) =
                        read_exact_at(&self.part.file, &mut back[..len], offset(hashed))
                    {
                        self.error(&err);
                        break;
                    }
                    hasher.update(&back[..len]);
                    hashed += 1;
                }
            }
            if ticker.due() {
                progress(&self.ctx, &self.file, bytes, None);
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
        self.ctx.emit(EventKind::Transfer(TransferReport {
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
        }));
    }

    fn error(&self, err: &std::io::Error) {
        let error = disk_error(&self.file, err);
        self.ctx.emit(EventKind::Error {
            op: "write".into(),
            error,
        });
    }
}

/// Writes `data` at `offset` of `file`, whatever its cursor (datagrams arrive out of order).
#[cfg(unix)]
fn write_all_at(file: &std::fs::File, data: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, data, offset)
}

/// Reads `buf.len()` bytes at `offset` of `file`, whatever its cursor.
#[cfg(unix)]
fn read_exact_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

/// Windows' positioned write may write less than asked: the rest follows.
#[cfg(windows)]
fn write_all_at(file: &std::fs::File, mut data: &[u8], mut offset: u64) -> std::io::Result<()> {
    while !data.is_empty() {
        match std::os::windows::fs::FileExt::seek_write(file, data, offset)? {
            0 => return Err(std::io::ErrorKind::WriteZero.into()),
            n => {
                data = &data[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// Windows' positioned read may read less than asked: the rest follows.
#[cfg(windows)]
fn read_exact_at(file: &std::fs::File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
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
