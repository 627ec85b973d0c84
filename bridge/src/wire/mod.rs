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
//! replaced whenever the set grows, so unrelated traffic never reaches user space, but while
//! a program is traced ([`Registry::watch_programs`]): a traced socket's first packets cross
//! before its calls reach the bridge, so the filter then keeps every loopback port but the
//! bridge's own ([`Capture::leave_out`]), and what no socket of the bridge owns and no watched
//! port names is dropped as read, neither shown nor kept. The socket's receive buffer is
//! fixed; what the kernel had to drop is read from `PACKET_STATISTICS` and shown as a
//! `dropped` event, never made up.
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
/// How long a packet whose sender the bridge does not know yet waits for it, while programs
/// are traced: a traced program's calls reach the bridge in batches (at least every 100 ms)
/// and are held 120 ms more to be put in order with other programs', so its packets come
/// first. Waiting, the packet is shown on the socket that sent it (its `connect()`, its
/// `accept()`), not on the listening socket or the peer that received it.
pub(crate) const WAIT_FOR_SENDER: Duration = Duration::from_millis(300);
/// Bytes of packets waiting at most (each about a KiB: its first [`KEPT_BYTES`] and its
/// decoded headers, with at most 128 bytes of payload); past this the oldest is shown at once.
const WAITING_BYTES: usize = 4 << 20;
/// Frames read from the kernel in one go before those read are shown: a burst waits in the
/// kernel's fixed buffer, not in this process, where each frame costs about a KiB once
/// decoded (the read loop used to drain the buffer whole, while a fast stream refilled it).
const READ_BATCH: usize = 64;

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
    /// The bridge's own ports (its page's first, then the trace channels' of the programs
    /// traced now, newest last): left out while the filter is wide.
    own: Mutex<Vec<u16>>,
    /// Programs are traced: the filter keeps every loopback port but `own` (see [`bpf`]).
    wide: std::sync::atomic::AtomicBool,
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
                    own: Mutex::default(),
                    wide: Default::default(),
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
                let widener = inner.clone();
                registry.watch_programs(Box::new(move || widener.set_wide(true)));
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

    /// A port of the bridge's own traffic (its page's, a trace channel's): not captured while
    /// the returned guard lives. A port is a name only while its listener lives: once that has
    /// closed, the system may give the port to a traced program's socket, to be captured.
    pub(crate) fn leave_out(&self, port: u16) -> LeftOut {
        LeftOut {
            inner: self.inner.clone().filter(|inner| inner.leave_out(port)),
            port,
        }
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
        let mut shown = Shown {
            flows: Flows::default(),
            per_socket: std::collections::HashMap::new(),
            tokens: EVENT_BURST,
            refilled: std::time::Instant::now(),
            unshown: 0,
        };
        // Read, in order, not yet shown (see [`WAIT_FOR_SENDER`]).
        let mut waiting: VecDeque<Waiting> = VecDeque::new();
        // What `waiting` holds ([`Waiting::cost`]).
        let mut waiting_bytes = 0;
        // Frames come cut by the filter; the pcapng file says each one's length on the wire.
        let mut buf = vec![0u8; bpf::SNAPLEN as usize];
        let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeVal);
        let mut drops = tokio::time::interval(DROPS_EVERY);
        loop {
            let due = waiting.front().map(|w| w.due);
            tokio::select! {
                () = stop.cancelled() => return,
                () = async {
                    match due {
                        Some(due) => tokio::time::sleep_until(due).await,
                        None => std::future::pending().await,
                    }
                } => {}
                _ = drops.tick() => {
                    // The last traced program has ended: back to the playground's own ports.
                    if !registry.traces_programs() {
                        inner.set_wide(false);
                    }
                    let dropped = inner.unreported_drops();
                    if dropped > 0 {
                        log.emit(&Origin::endpoint(0), EventKind::Dropped { what: "packets".into(), count: dropped });
                    }
                    if shown.unshown > 0 {
                        log.emit(&Origin::endpoint(0), EventKind::Dropped { what: "packet events".into(), count: std::mem::take(&mut shown.unshown) });
                    }
                }
                ready = inner.fd.readable() => {
                    let Ok(mut guard) = ready else { return };
                    let due = tokio::time::Instant::now() + WAIT_FOR_SENDER;
                    // Up to a batch; once all is read, back to waiting for more. Left ready
                    // after a full batch, the socket is read again at the loop's next turn.
                    for _ in 0..READ_BATCH {
                        let Some((wire_len, interface, since_epoch)) = read_frame(inner.fd.get_ref(), &mut buf, &mut cmsg) else {
                            guard.clear_ready();
                            break;
                        };
                        inner.captured.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let frame = &buf[..wire_len.min(buf.len())];
                        let read = Waiting {
                            decoded: decoder.decode(frame),
                            wire_us: (since_epoch.as_micros() as u64).saturating_sub(clock_offset),
                            frame: Frame { since_epoch, interface, data: frame[..frame.len().min(KEPT_BYTES)].to_vec(), wire_len, owner: None },
                            due,
                        };
                        waiting_bytes += read.cost();
                        waiting.push_back(read);
                    }
                }
            }
            // In the order read: each once its sender is known, or once it has waited long
            // enough, or at once while no program is traced.
            let traced = registry.traces_programs();
            let now = tokio::time::Instant::now();
            while let Some(next) = waiting.front() {
                let wait = traced
                    && next.due > now
                    && waiting_bytes <= WAITING_BYTES
                    && next
                        .decoded
                        .as_ref()
                        .is_some_and(|d| !shown.sender_known(&registry, d));
                if wait {
                    break;
                }
                let Some(next) = waiting.pop_front() else {
                    break;
                };
                waiting_bytes -= next.cost();
                let Waiting {
                    decoded,
                    wire_us,
                    mut frame,
                    ..
                } = next;
                // The narrow filter lets through only the watched ports. Of the wide one's
                // catch, only what is a socket's of the bridge, or on a port it watches, is
                // kept: other programs' traffic is none of its business.
                let wide = inner.is_wide();
                let watched = !wide || decoded.as_ref().is_some_and(|d| inner.watches(d));
                frame.owner = decoded.and_then(|d| shown.show(&registry, &log, d, wire_us));
                if frame.owner.is_some() || watched {
                    inner.keep(frame);
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

/// A port left out of the capture until this is dropped ([`Capture::leave_out`]).
#[must_use = "the port is captured again once this is dropped"]
pub(crate) struct LeftOut {
    /// `None` where the port was left out already (by whoever left it out first).
    inner: Option<Arc<Inner>>,
    port: u16,
}

impl Drop for LeftOut {
    fn drop(&mut self) {
        if let Some(inner) = &self.inner {
            inner.take_back(self.port);
        }
    }
}

/// A packet read and not yet shown.
struct Waiting {
    decoded: Option<decode::Decoded>,
    wire_us: u64,
    /// Its owner is filled in when it is shown.
    frame: Frame,
    /// When it is shown even if its sender is still not known.
    due: tokio::time::Instant,
}

impl Waiting {
    /// The bytes it holds: the frame's kept bytes, and the decoded packet's texts and payload.
    fn cost(&self) -> usize {
        std::mem::size_of::<Waiting>()
            + self.frame.data.len()
            + self
                .decoded
                .as_ref()
                .map_or(0, |d| d.from.len() + d.to.len() + d.info.kept_bytes())
    }
}

/// Packets shown as events: whose they are, and the limits on how many.
struct Shown {
    flows: Flows,
    /// Packets of each socket so far (see [`PER_SOCKET`]).
    per_socket: std::collections::HashMap<(EndpointId, Option<shared::ConnId>), u32>,
    /// The rate's token bucket (see [`EVENT_RATE`]).
    tokens: f64,
    refilled: std::time::Instant,
    /// Packets not shown as events since the last `dropped` event.
    unshown: u64,
}

impl Shown {
    /// Whether the socket that sent it is known by its addresses (a listener's packets may be
    /// a connection's that a traced program has not shown yet), in the registry or
    /// remembered.
    fn sender_known(&self, registry: &Registry, d: &decode::Decoded) -> bool {
        registry
            .owner(&d.from, &d.to)
            .is_some_and(|o| o.sent && o.exact)
            || self
                .flows
                .0
                .get(&(d.from.clone(), d.to.clone()))
                .is_some_and(|o| o.exact)
    }

    /// Shows a packet as an event on its socket (within the limits); returns whose it is.
    fn show(
        &mut self,
        registry: &Registry,
        log: &EventLog,
        decoded: decode::Decoded,
        wire_us: u64,
    ) -> Option<Owner> {
        let owner = self.flows.owner(registry, &decoded.from, &decoded.to)?;
        let shown = self
            .per_socket
            .entry((owner.endpoint, owner.conn))
            .or_insert(0);
        *shown += 1;
        let control = ["SYN", "FIN", "RST"]
            .iter()
            .any(|f| decoded.info.flags.contains(f));
        if *shown > PER_SOCKET && !control {
            self.unshown += 1;
            return Some(owner);
        }
        if self.per_socket.len() > Flows::MAX {
            self.per_socket.clear();
        }
        let now = std::time::Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.refilled).as_secs_f64() * EVENT_RATE)
            .min(EVENT_BURST);
        self.refilled = now;
        if self.tokens < 1.0 {
            self.unshown += 1;
            return Some(owner);
        }
        self.tokens -= 1.0;
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
    }
}

/// Whose each flow's packets are, remembered while its socket lives: a socket's last
/// packets (its FIN, the final ACK) come after it has left the registry.
#[derive(Default)]
struct Flows(std::collections::HashMap<(String, String), Owner>);

impl Flows {
    /// Most flows remembered; past this the memory starts again.
    const MAX: usize = 4096;

    /// The sending socket if the bridge knows it (alive, closed a moment ago, or
    /// remembered), else the receiving one.
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
        self.refilter(&ports);
    }

    /// Whether a port of the packet is one the playground's sockets use.
    fn watches(&self, d: &decode::Decoded) -> bool {
        let port = |addr: &str| {
            addr.rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
        };
        self.ports.lock().is_ok_and(|ports| {
            [port(&d.from), port(&d.to)]
                .into_iter()
                .flatten()
                .any(|p| ports.contains(&p))
        })
    }

    fn is_wide(&self) -> bool {
        self.wide.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Widens the filter while programs are traced (`on`), or narrows it again.
    fn set_wide(&self, on: bool) {
        let Ok(ports) = self.ports.lock() else {
            return;
        };
        if self.wide.swap(on, std::sync::atomic::Ordering::Relaxed) != on {
            self.refilter(&ports);
        }
    }

    /// Leaves a port of the bridge's own traffic out of the wide filter (its page's port is
    /// the first one given, and kept; past [`bpf::MAX_OWN`] the oldest channel's goes).
    /// Whether it was added: a port left out already stays the first giver's to take back
    /// (a `trace_attach` naming the page's port cannot end with the page's traffic copied).
    fn leave_out(&self, port: u16) -> bool {
        let Ok(ports) = self.ports.lock() else {
            return false;
        };
        if let Ok(mut own) = self.own.lock() {
            if own.contains(&port) {
                return false;
            }
            if own.len() >= bpf::MAX_OWN {
                own.remove(1);
            }
            own.push(port);
        }
        if self.is_wide() {
            self.refilter(&ports);
        }
        true
    }

    /// `port` is no longer the bridge's own ([`LeftOut`]).
    fn take_back(&self, port: u16) {
        let Ok(ports) = self.ports.lock() else {
            return;
        };
        if let Ok(mut own) = self.own.lock() {
            let before = own.len();
            own.retain(|p| *p != port);
            if own.len() == before {
                return;
            }
        }
        if self.is_wide() {
            self.refilter(&ports);
        }
    }

    /// Installs the filter for `ports` (the lock on them held: one change at a time).
    fn refilter(&self, ports: &BTreeSet<u16>) {
        let list: Vec<u16> = ports.iter().copied().collect();
        let own = self.own.lock().map(|own| own.clone()).unwrap_or_default();
        let wide = self.is_wide().then_some(own.as_slice());
        let _ = attach(self.fd.get_ref(), &bpf::program(&list, self.lan, wide));
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
    attach(&fd, &bpf::program(&[], lan, None))?;
    // Every packet gets the kernel's timestamp ([`read_frame`] reads it).
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

/// `SO_TIMESTAMP` of Linux's generic socket ABI; the libc crate does not name it for this
/// target.
const SO_TIMESTAMP: libc::c_int = 29;

/// Reads the next waiting frame into `buf` (cut to its length, `MSG_TRUNC` says its length on
/// the wire): that length, the interface it crossed, and when it crossed (the kernel's
/// timestamp, `SCM_TIMESTAMP`, taken as the packet was sent: the bridge may read it
/// milliseconds later); `None` when nothing waits. (Not `SIOCGSTAMP` after the read: for a
/// packet socket with `SO_TIMESTAMP` it has nothing to say, and the time of the read is what
/// a fallback would show.)
fn read_frame(fd: &OwnedFd, buf: &mut [u8], cmsg: &mut [u8]) -> Option<(usize, i32, Duration)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, LinkAddr, MsgFlags};
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let got = recvmsg::<LinkAddr>(
        fd.as_raw_fd(),
        &mut iov,
        Some(cmsg),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
    )
    .ok()?;
    let stamp = got.cmsgs().ok().and_then(|mut all| {
        all.find_map(|c| match c {
            ControlMessageOwned::ScmTimestamp(tv) => Some(
                Duration::from_secs(tv.tv_sec().max(0) as u64)
                    + Duration::from_micros(tv.tv_usec().max(0) as u64),
            ),
            _ => None,
        })
    });
    let interface = got.address.map_or(0, |a| a.ifindex() as i32);
    let since_epoch = stamp.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    });
    Some((got.bytes, interface, since_epoch))
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
                exact: true,
            }),
        }
    }

    /// A packet the bridge reads late (a busy runtime, a burst) still says when it crossed
    /// loopback: the calls of a traced program are ordered against this time. Where the
    /// bridge may not capture (not root), there is nothing to read.
    #[tokio::test]
    async fn a_packet_read_late_says_when_it_crossed_not_when_it_was_read() {
        let Ok((fd, _)) = open_socket(false) else {
            // SAFETY: geteuid has no preconditions.
            assert_ne!(unsafe { libc::geteuid() }, 0, "root may capture");
            eprintln!("skipped: this user may not capture");
            return;
        };
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = receiver.local_addr().unwrap().port();
        attach(fd.get_ref(), &bpf::program(&[port], None, None)).unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let sent = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        sender.send_to(b"late", ("127.0.0.1", port)).unwrap();
        // The subject of the test, not a wait for something: the read comes 200 ms late.
        std::thread::sleep(Duration::from_millis(200));
        let read = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let mut buf = vec![0u8; bpf::SNAPLEN as usize];
        let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeVal);
        let (len, interface, crossed) =
            read_frame(fd.get_ref(), &mut buf, &mut cmsg).expect("the datagram was captured");
        assert_eq!(&buf[len - 4..len], b"late");
        assert!(interface > 0, "loopback's index");
        assert!(
            crossed >= sent && crossed < read - Duration::from_millis(100),
            "sent at {sent:?}, crossed at {crossed:?}, read at {read:?}"
        );
        assert!(
            read_frame(fd.get_ref(), &mut buf, &mut cmsg).is_none(),
            "one copy of it"
        );
    }

    /// A port is left out while its guard lives; a second guard for a port left out already
    /// (a `trace_attach` naming the page's port) gives nothing back when dropped.
    #[tokio::test]
    async fn a_port_is_left_out_while_its_first_guard_lives() {
        let log = Arc::new(EventLog::new(100, 1 << 20));
        let registry = Registry::new(log, 8, crate::core::lifeline::Lifeline::root());
        let capture = Capture::open(&registry, false);
        let Some(inner) = capture.inner.clone() else {
            // SAFETY: geteuid has no preconditions.
            assert_ne!(unsafe { libc::geteuid() }, 0, "root may capture");
            eprintln!("skipped: this user may not capture");
            return;
        };
        let own = || inner.own.lock().unwrap().clone();
        let page = capture.leave_out(7777);
        let channel = capture.leave_out(40405);
        assert_eq!(own(), [7777, 40405]);
        let again = capture.leave_out(7777);
        drop(again);
        assert_eq!(own(), [7777, 40405], "the page's port stays left out");
        drop(channel);
        assert_eq!(own(), [7777], "a channel's port is given back");
        drop(page);
        assert!(own().is_empty());
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
