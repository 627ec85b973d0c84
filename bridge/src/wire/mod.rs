//! Packets on the wire (issue 19): the TCP segments, UDP datagrams and ICMP messages of the
//! playground's own sockets and of traced programs, captured on loopback and shown as
//! `packet` events beside the calls that caused them, and kept (bounded) for a pcapng file
//! Wireshark opens.
//!
//! How: an `AF_PACKET` raw socket bound to the loopback interface (with `--allow-lan`, to
//! every interface, so a LAN endpoint's packets are seen where they cross), with a kernel filter
//! ([`bpf`]) on the ports the bridge's endpoints use. The registry tells the capture of each
//! port before its first packet ([`Registry::watch_ports`]): a server's port when it starts, a
//! client's server port before it connects, every address an endpoint learns. The filter is
//! replaced whenever the set grows, so unrelated traffic never reaches user space. The
//! socket's receive buffer is fixed; what the kernel had to drop is read from
//! `PACKET_STATISTICS` and shown as a `dropped` event, never made up.
//!
//! It needs root or `CAP_NET_RAW`. Without it the bridge runs as ever, and the welcome says
//! what to run to allow it ([`Capture::status`]).

mod bpf;
mod decode;

use std::collections::{BTreeSet, VecDeque};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shared::{CaptureStatus, EndpointId, EventKind};
use tokio::io::unix::AsyncFd;

use crate::core::event_log::{EventLog, Origin};
use crate::core::registry::{Owner, Registry};

/// Packets kept for a pcapng file, at most, and of one endpoint (a flood on one keeps the
/// others' packets).
const HISTORY_PACKETS: usize = 20_000;
const ENDPOINT_PACKETS: usize = 5_000;
/// Bytes of packets kept, at most (each is cut to [`KEPT_BYTES`]).
const HISTORY_BYTES: usize = 2 << 20;
/// Bytes of each packet kept for the pcapng file: its headers and the start of its payload
/// (the file says each packet's length on the wire).
const KEPT_BYTES: usize = 512;
/// Packet events shown at once before the rate applies, and per second after: a flood's
/// packets are all kept for the pcapng file, but only so many become events (the rest are
/// counted in a `dropped` event).
const EVENT_BURST: f64 = 2000.0;
const EVENT_RATE: f64 = 500.0;
/// Packets of one socket shown as events; after these only its SYN, FIN and RST segments
/// are (a bulk transfer's thousands of data segments are counted, and kept for pcapng).
const PER_SOCKET: u32 = 200;
/// The capture socket's receive buffer: what the kernel holds while the bridge is busy.
const RECEIVE_BUFFER: libc::c_int = 8 << 20;
/// How often the kernel's drop count is read.
const DROPS_EVERY: Duration = Duration::from_secs(1);

/// One captured frame, as it was on the wire.
struct Frame {
    since_epoch: Duration,
    /// The index of the interface it crossed.
    interface: i32,
    /// Its first [`KEPT_BYTES`] bytes.
    data: Vec<u8>,
    /// Its length on the wire.
    wire_len: usize,
    owner: Option<Owner>,
}

/// The packets kept, oldest first, with each endpoint's in its own list too: when one
/// endpoint has more than [`ENDPOINT_PACKETS`], its oldest leaves a hole where it was (holes
/// leave with the packets before them, and count toward twice [`HISTORY_PACKETS`]).
#[derive(Default)]
struct History {
    frames: VecDeque<Option<Frame>>,
    /// The number of `frames[0]` (each frame is numbered as it is kept).
    first: u64,
    /// Packets and bytes kept (the holes not counted).
    live: usize,
    bytes: usize,
    /// Each endpoint's kept packets by number, oldest first (`None`: no socket's).
    of: std::collections::HashMap<Option<EndpointId>, VecDeque<u64>>,
}

impl History {
    fn keep(&mut self, frame: Frame) {
        let number = self.first + self.frames.len() as u64;
        let key = frame.owner.map(|o| o.endpoint);
        self.live += 1;
        self.bytes += frame.data.len();
        self.frames.push_back(Some(frame));
        let mine = self.of.entry(key).or_default();
        mine.push_back(number);
        if mine.len() > ENDPOINT_PACKETS {
            if let Some(oldest) = mine.pop_front() {
                let slot = (oldest - self.first) as usize;
                if let Some(gone) = self.frames.get_mut(slot).and_then(Option::take) {
                    self.live -= 1;
                    self.bytes -= gone.data.len();
                }
            }
        }
        while self.live > HISTORY_PACKETS
            || self.bytes > HISTORY_BYTES
            || self.frames.len() > 2 * HISTORY_PACKETS
        {
            let Some(slot) = self.frames.pop_front() else {
                break;
            };
            self.first += 1;
            if let Some(gone) = slot {
                self.live -= 1;
                self.bytes -= gone.data.len();
                let key = gone.owner.map(|o| o.endpoint);
                if let Some(theirs) = self.of.get_mut(&key) {
                    theirs.pop_front();
                    if theirs.is_empty() {
                        self.of.remove(&key);
                    }
                }
            }
        }
    }

    /// The kept packets, oldest first.
    fn frames(&self) -> impl Iterator<Item = &Frame> {
        self.frames.iter().flatten()
    }
}

struct Inner {
    fd: AsyncFd<OwnedFd>,
    /// Packets read, and dropped by the kernel, since the start.
    captured: std::sync::atomic::AtomicU64,
    dropped: std::sync::atomic::AtomicU64,
    /// Of those drops, how many a `dropped` event has shown.
    reported: std::sync::atomic::AtomicU64,
    ports: Mutex<BTreeSet<u16>>,
    history: Mutex<History>,
    /// Bound to every interface (`--allow-lan`): loopback's index, for the filter.
    lan: Option<u32>,
}

/// The bridge's packet capture: on, or off with the reason.
pub(crate) struct Capture {
    inner: Option<Arc<Inner>>,
    status: CaptureStatus,
}

impl Capture {
    /// Opens the capture socket if the bridge may (on every interface when `lan`); the
    /// reading task starts with [`run`].
    pub(crate) fn open(registry: &Registry, lan: bool) -> Capture {
        match open_socket(lan) {
            Ok((fd, lan)) => {
                let inner = Arc::new(Inner {
                    fd,
                    captured: Default::default(),
                    dropped: Default::default(),
                    reported: Default::default(),
                    ports: Mutex::new(BTreeSet::new()),
                    history: Mutex::default(),
                    lan,
                });
                let where_ = if lan.is_some() {
                    "on loopback and on the network interfaces (--allow-lan)"
                } else {
                    "on loopback"
                };
                let watcher = inner.clone();
                registry.watch_ports(Box::new(move |port| watcher.watch(port)));
                Capture {
                    inner: Some(inner),
                    status: CaptureStatus {
                        on: true,
                        detail: format!("The packets of the playground's sockets {where_} are captured: each TCP segment, UDP datagram and ICMP message is shown beside the call that caused it."),
                        hint: None,
                    },
                }
            }
            Err(e) => Capture {
                inner: None,
                status: CaptureStatus {
                    on: false,
                    detail: format!(
                        "Packets are not captured: opening a packet socket needs root or the CAP_NET_RAW capability ({e}). Everything else works as usual."
                    ),
                    hint: Some(match std::env::current_exe() {
                        Ok(exe) => format!("sudo setcap cap_net_raw+ep {}", exe.display()),
                        Err(_) => "sudo setcap cap_net_raw+ep PATH-OF-THE-BRIDGE".into(),
                    }),
                },
            },
        }
    }

    /// No capture, for this reason.
    pub(crate) fn off(why: &str) -> Capture {
        Capture {
            inner: None,
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

    /// Reads packets until `stop`: each one tied to its socket becomes a `packet` event.
    pub(crate) async fn run(
        &self,
        registry: Arc<Registry>,
        log: Arc<EventLog>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let Some(inner) = self.inner.clone() else {
            return;
        };
        // The kernel stamps packets with the wall clock; events use the log's monotonic one.
        // Both read now give the difference, to the microsecond.
        let clock_offset = (SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros() as u64)
            .saturating_sub(log.now_us());
        let mut decoder = decode::Decoder::default();
        let mut flows = Flows::default();
        let mut per_socket: std::collections::HashMap<(EndpointId, Option<shared::ConnId>), u32> =
            std::collections::HashMap::new();
        let (mut tokens, mut refilled, mut unshown) =
            (EVENT_BURST, std::time::Instant::now(), 0u64);
        // Frames come cut by the filter; the pcapng file says each one's length on the wire.
        let mut buf = vec![0u8; bpf::SNAPLEN as usize];
        let mut drops = tokio::time::interval(DROPS_EVERY);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = drops.tick() => {
                    let dropped = inner.unreported_drops();
                    if dropped > 0 {
                        log.emit(&Origin::endpoint(0), EventKind::Dropped { what: "packets".into(), count: dropped });
                    }
                    if unshown > 0 {
                        log.emit(&Origin::endpoint(0), EventKind::Dropped { what: "packet events".into(), count: std::mem::take(&mut unshown) });
                    }
                }
                ready = inner.fd.readable() => {
                    let Ok(mut guard) = ready else { return };
                    // Everything waiting, then back to waiting.
                    loop {
                        // SAFETY: an all-zero sockaddr_ll is a valid value.
                        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                        let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                        // SAFETY: recvfrom writes at most `buf.len()` bytes into `buf` and at
                        // most `from_len` into `from`; with MSG_TRUNC it returns the frame's
                        // length on the wire.
                        let n = unsafe {
                            libc::recvfrom(inner.fd.get_ref().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                                (&mut from as *mut libc::sockaddr_ll).cast(), &mut from_len)
                        };
                        if n < 0 {
                            guard.clear_ready();
                            break;
                        }
                        let wire_len = n as usize;
                        inner.captured.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let frame = &buf[..wire_len.min(buf.len())];
                        let since_epoch = stamp(inner.fd.get_ref());
                        let wire_us = (since_epoch.as_micros() as u64).saturating_sub(clock_offset);
                        let owner = decoder.decode(frame).and_then(|decoded| {
                            let owner = flows.owner(&registry, &decoded.from, &decoded.to)?;
                            let shown = per_socket.entry((owner.endpoint, owner.conn)).or_insert(0);
                            *shown += 1;
                            let control = ["SYN", "FIN", "RST"].iter().any(|f| decoded.info.flags.contains(f));
                            if *shown > PER_SOCKET && !control {
                                unshown += 1;
                                return Some(owner);
                            }
                            if per_socket.len() > Flows::MAX {
                                per_socket.clear();
                            }
                            let now = std::time::Instant::now();
                            tokens = (tokens + now.duration_since(refilled).as_secs_f64() * EVENT_RATE).min(EVENT_BURST);
                            refilled = now;
                            if tokens < 1.0 {
                                unshown += 1;
                                return Some(owner);
                            }
                            tokens -= 1.0;
                            let mut info = decoded.info;
                            info.dir = if owner.sent { "out" } else { "in" }.into();
                            info.wire_us = wire_us;
                            let (local, peer) = if owner.sent {
                                (decoded.from, decoded.to)
                            } else {
                                (decoded.to, decoded.from)
                            };
                            log.emit(
                                &Origin {
                                    endpoint: owner.endpoint,
                                    conn: owner.conn,
                                    local: Some(local),
                                    peer: Some(peer),
                                    at: None,
                                },
                                EventKind::Packet(Box::new(info)),
                            );
                            Some(owner)
                        });
                        inner.keep(Frame { since_epoch, interface: from.sll_ifindex, data: frame[..frame.len().min(KEPT_BYTES)].to_vec(), wire_len, owner });
                    }
                }
            }
        }
    }

    /// Packets captured and dropped by the kernel since the start (drops up to now).
    pub(crate) fn counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.inner.as_ref().map_or((0, 0), |inner| {
            inner.sync_drops();
            (inner.captured.load(Relaxed), inner.dropped.load(Relaxed))
        })
    }

    /// The kept packets (of one endpoint, and one connection of it, if given) as a pcapng
    /// file, and how many there are; `None` when nothing is captured.
    pub(crate) fn pcapng(
        &self,
        endpoint: Option<EndpointId>,
        conn: Option<shared::ConnId>,
    ) -> Option<(Vec<u8>, usize)> {
        use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
        use pcap_file::pcapng::blocks::interface_description::{
            InterfaceDescriptionBlock, InterfaceDescriptionOption,
        };
        let inner = self.inner.as_ref()?;
        let history = inner.history.lock().ok()?;
        let mut writer = pcap_file::pcapng::PcapNgWriter::new(Vec::new()).ok()?;
        // One interface block for each interface the file's packets crossed, as met.
        let mut interfaces: Vec<i32> = Vec::new();
        let mut count = 0;
        for frame in history.frames().filter(|f| {
            endpoint.is_none_or(|e| {
                f.owner
                    .is_some_and(|o| o.endpoint == e && (conn.is_none() || o.conn == conn))
            })
        }) {
            let interface_id = match interfaces.iter().position(|i| *i == frame.interface) {
                Some(known) => known,
                None => {
                    writer
                        .write_pcapng_block(InterfaceDescriptionBlock {
                            linktype: pcap_file::DataLink::ETHERNET,
                            snaplen: KEPT_BYTES as u32,
                            options: vec![
                                InterfaceDescriptionOption::IfName(
                                    interface_name(frame.interface).into(),
                                ),
                                // pcap-file writes nanoseconds.
                                InterfaceDescriptionOption::IfTsResol(9),
                            ],
                        })
                        .ok()?;
                    interfaces.push(frame.interface);
                    interfaces.len() - 1
                }
            } as u32;
            writer
                .write_pcapng_block(EnhancedPacketBlock {
                    interface_id,
                    timestamp: frame.since_epoch,
                    original_len: frame.wire_len as u32,
                    data: std::borrow::Cow::Borrowed(&frame.data),
                    options: vec![],
                })
                .ok()?;
            count += 1;
        }
        Some((writer.into_inner(), count))
    }
}

/// Whose each flow's packets are, remembered while its socket lives: a socket's last
/// packets (its FIN, the final ACK) come after it has left the registry.
#[derive(Default)]
struct Flows(std::collections::HashMap<(String, String), Owner>);

impl Flows {
    /// Most flows remembered; past this the memory starts again.
    const MAX: usize = 4096;

    /// The sending socket if the bridge knows it (alive, or remembered), else the receiving
    /// one.
    fn owner(&mut self, registry: &Registry, src: &str, dst: &str) -> Option<Owner> {
        let key = (src.to_string(), dst.to_string());
        // A connection's last packets, after it left the registry, match its listener's
        // address: the connection remembered for the flow is the better answer.
        let live = registry.owner(src, dst).filter(|o| {
            o.conn.is_some() || self.0.get(&key).is_none_or(|known| known.conn.is_none())
        });
        let owner = match live {
            Some(owner) if owner.sent => Some(owner),
            _ => self.0.get(&key).copied().or(live).or_else(|| {
                self.0
                    .get(&(dst.to_string(), src.to_string()))
                    .map(|o| Owner { sent: false, ..*o })
            }),
        }?;
        if self.0.len() >= Self::MAX {
            self.0.clear();
        }
        // What this socket sends, it sends on this flow; what it receives came on the other.
        let (flow, sent) = if owner.sent {
            (key, owner)
        } else {
            (
                (dst.to_string(), src.to_string()),
                Owner {
                    sent: true,
                    ..owner
                },
            )
        };
        if live.is_some() {
            // The registry knows best (a four-tuple used again by a newer socket).
            self.0.insert(flow, sent);
        } else {
            self.0.entry(flow).or_insert(sent);
        }
        Some(owner)
    }
}

impl Inner {
    /// Adds the kernel's drops since its last count to the total (reading them resets the
    /// kernel's count).
    fn sync_drops(&self) {
        let recent = kernel_drops(self.fd.get_ref());
        self.dropped
            .fetch_add(recent, std::sync::atomic::Ordering::Relaxed);
    }

    /// Drops no `dropped` event has shown yet, now taken as shown.
    fn unreported_drops(&self) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        self.sync_drops();
        let total = self.dropped.load(Relaxed);
        total - self.reported.swap(total, Relaxed)
    }

    /// Adds `port` to the filter (now, before the socket's first packet).
    fn watch(&self, port: u16) {
        let Ok(mut ports) = self.ports.lock() else {
            return;
        };
        if !ports.insert(port) {
            return;
        }
        if ports.len() > bpf::MAX_PORTS {
            // The oldest endpoints are long gone: keep the newest ports.
            let oldest = *ports.iter().next().unwrap_or(&port);
            ports.remove(&oldest);
        }
        let list: Vec<u16> = ports.iter().copied().collect();
        let _ = attach(self.fd.get_ref(), &bpf::program(&list, self.lan));
    }

    fn keep(&self, frame: Frame) {
        if let Ok(mut history) = self.history.lock() {
            history.keep(frame);
        }
    }
}

/// The packet socket on loopback (on every interface when `lan`, with loopback's index),
/// filtered to nothing until the first port is known.
fn open_socket(lan: bool) -> std::io::Result<(AsyncFd<OwnedFd>, Option<u32>)> {
    let protocol = (libc::ETH_P_ALL as u16).to_be() as libc::c_int;
    // SAFETY: socket() returns a new descriptor or -1.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: the name is a NUL-terminated string.
    let lo = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
    if lo == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let lan = lan.then_some(lo);
    attach(&fd, &bpf::program(&[], lan))?;
    // Every packet gets the kernel's timestamp ([`stamp`] reads it).
    set_int(&fd, libc::SOL_SOCKET, SO_TIMESTAMP, 1)?;
    // A larger buffer than the default where the bridge may (root), else the default.
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        if set_int(&fd, libc::SOL_SOCKET, option, RECEIVE_BUFFER).is_ok() {
            break;
        }
    }
    // Index 0 binds to every interface.
    let index = if lan.is_some() { 0 } else { lo };
    let address = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: protocol as u16,
        sll_ifindex: index as i32,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: bind reads `size_of::<sockaddr_ll>()` bytes of a live struct.
    let bound = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&address as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if bound < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // What arrived before the filter was in place is read and thrown away.
    let mut scratch = [0u8; 64];
    // SAFETY: recv writes at most 64 bytes into `scratch`.
    while unsafe {
        libc::recv(
            fd.as_raw_fd(),
            scratch.as_mut_ptr().cast(),
            scratch.len(),
            libc::MSG_DONTWAIT,
        )
    } >= 0
    {}
    kernel_drops(&fd);
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(std::io::Error::other("no async runtime to read it in"));
    }
    // SAFETY: the descriptor is open and owned by the OwnedFd that the AsyncFd now holds
    // for its whole life.
    let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
    Ok((fd, lan))
}

/// An interface's name (`lo`, `eth0`), for the pcapng file; its number if it is gone.
fn interface_name(index: i32) -> String {
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: if_indextoname writes at most IF_NAMESIZE bytes, NUL included, into `name`.
    let found = unsafe { libc::if_indextoname(index as u32, name.as_mut_ptr()) };
    if found.is_null() {
        return format!("interface {index}");
    }
    // SAFETY: on success `name` holds a NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn attach(fd: &OwnedFd, program: &[libc::sock_filter]) -> std::io::Result<()> {
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: setsockopt reads the program through `fprog` while `program` lives.
    let done = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if done < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn set_int(
    fd: &OwnedFd,
    level: libc::c_int,
    option: libc::c_int,
    value: libc::c_int,
) -> std::io::Result<()> {
    // SAFETY: setsockopt reads one c_int.
    let done = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if done < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `SO_TIMESTAMP` and `SIOCGSTAMP` (struct timeval) of Linux's generic socket ABI; the libc
/// crate names neither for this target.
const SO_TIMESTAMP: libc::c_int = 29;
const SIOCGSTAMP: libc::c_ulong = 0x8906;

/// When the packet just read crossed loopback (the kernel's timestamp), since the epoch;
/// the time now should the kernel not say.
fn stamp(fd: &OwnedFd) -> Duration {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: the ioctl writes one timeval.
    let done = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCGSTAMP, &mut tv as *mut libc::timeval) };
    if done == 0 && tv.tv_sec > 0 {
        Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64)
    } else {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// Packets the kernel dropped since the last call (reading the statistics resets them).
fn kernel_drops(fd: &OwnedFd) -> u64 {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `stats`.
    let done = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut stats as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    if done < 0 {
        0
    } else {
        u64::from(stats.tp_drops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(endpoint: EndpointId, len: usize) -> Frame {
        Frame {
            since_epoch: Duration::ZERO,
            interface: 1,
            data: vec![0; len],
            wire_len: len,
            owner: Some(Owner {
                endpoint,
                conn: None,
                sent: true,
            }),
        }
    }

    #[test]
    fn a_flooding_endpoint_keeps_its_newest_and_leaves_the_others_theirs() {
        let mut history = History::default();
        for _ in 0..10 {
            history.keep(frame(1, 10));
        }
        for _ in 0..3 * ENDPOINT_PACKETS {
            history.keep(frame(2, 10));
        }
        let count = |h: &History, e| {
            h.frames()
                .filter(|f| f.owner.unwrap().endpoint == e)
                .count()
        };
        assert_eq!(count(&history, 1), 10, "the quiet endpoint's packets stay");
        assert_eq!(count(&history, 2), ENDPOINT_PACKETS);
        assert_eq!(history.live, 10 + ENDPOINT_PACKETS);
        assert_eq!(history.bytes, 10 * history.live);
        assert!(
            history.frames.len() <= 2 * HISTORY_PACKETS,
            "holes are bounded"
        );
        // Many endpoints: the total stays bounded, the oldest go first.
        for e in 3..3 + 2 * HISTORY_PACKETS as u32 {
            history.keep(frame(e, 10));
        }
        assert_eq!(history.live, HISTORY_PACKETS);
        assert_eq!(history.frames().count(), HISTORY_PACKETS);
        assert!(history.of.len() <= HISTORY_PACKETS);
        assert_eq!(count(&history, 1), 0);
        // Bytes bound it too.
        let mut big = History::default();
        for e in 0..ENDPOINT_PACKETS as u32 {
            big.keep(frame(e, KEPT_BYTES));
        }
        assert_eq!(big.live, HISTORY_BYTES / KEPT_BYTES);
        assert!(big.bytes <= HISTORY_BYTES);
    }
}
