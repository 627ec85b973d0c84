//! The kernel's own TCP state of a socket (ESTABLISHED, CLOSE_WAIT, TIME_WAIT, ...), read from
//! the OS as the connection lives and, once the socket is closed, from the system's connection
//! table, where TIME_WAIT lingers. Each system has its own way, behind [`of_socket`] and
//! `in_table`; states keep Linux's names everywhere:
//!
//! | system  | open socket                      | after close (TIME_WAIT)            |
//! |---------|----------------------------------|------------------------------------|
//! | Linux   | `TCP_INFO`                       | `/proc/net/tcp`, `/proc/net/tcp6`  |
//! | macOS   | `TCP_CONNECTION_INFO`            | not followed (no table to read)    |
//! | Windows | `SIO_TCP_INFO` (10, 1703 and on) | `GetTcpTable2` (IPv4)              |
//!
//! Where a system gives nothing, the welcome says so in one line ([`note`]). Whether some
//! program listens on a port ([`listening`], for checks, and [`listening_on`], for the hint of
//! a refused connect) is read from the same tables: Linux's
//! `/proc/net`, Windows' `GetTcpTable2`/`GetTcp6Table2`/`GetUdpTable`/`GetUdp6Table`, and on
//! macOS, which has no such table to read, `lsof`.

use std::net::SocketAddr;
use std::time::Duration;

use shared::EventKind;
use tokio::sync::Semaphore;

use crate::core::ctx::Ctx;

/// How often a connected socket's state is looked at.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// The names Linux uses, by `tcpi_state` number.
#[cfg(target_os = "linux")]
fn name(state: u8) -> Option<&'static str> {
    Some(match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        _ => return None,
    })
}

/// What the system says of an open socket: its state, and its counters where it keeps them.
#[derive(Clone, Copy)]
pub(crate) struct Reading {
    state: Option<&'static str>,
    counters: Option<shared::TcpCounters>,
}

/// The state of an open socket, from TCP_INFO. CLOSE is left out: once the peer's FIN has come
/// after this side's own, Linux hands the connection over to a small TIME_WAIT entry in its
/// table and calls the socket itself CLOSE, which would show FIN_WAIT2, CLOSE, TIME_WAIT. The
/// state after close comes from the table instead ([`after_close`]), CLOSE included.
#[cfg(target_os = "linux")]
pub(crate) fn of_socket(fd: Handle) -> Option<Reading> {
    // SAFETY: tcp_info is plain old data, and getsockopt writes at most `len` bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0).then(|| Reading {
        state: name(info.tcpi_state).filter(|state| *state != "CLOSE"),
        // Fields an older kernel does not fill stay zero (the struct was zeroed).
        counters: Some(shared::TcpCounters {
            segs_out: info.tcpi_segs_out,
            segs_in: info.tcpi_segs_in,
            retransmits: info.tcpi_total_retrans,
            bytes_acked: info.tcpi_bytes_acked,
            bytes_received: info.tcpi_bytes_received,
            window: info.tcpi_snd_wnd,
            rtt_us: info.tcpi_rtt,
        }),
    })
}

/// macOS: `TCP_CONNECTION_INFO`, whose states are BSD's (`netinet/tcp_fsm.h`).
#[cfg(target_os = "macos")]
pub(crate) fn of_socket(fd: Handle) -> Option<Reading> {
    // SAFETY: tcp_connection_info is plain old data; getsockopt writes at most `len` bytes.
    let mut info: libc::tcp_connection_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_connection_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CONNECTION_INFO,
            (&mut info as *mut libc::tcp_connection_info).cast(),
            &mut len,
        )
    };
    let state = match info.tcpi_state {
        1 => "LISTEN",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "ESTABLISHED",
        5 => "CLOSE_WAIT",
        6 => "FIN_WAIT1",
        7 => "CLOSING",
        8 => "LAST_ACK",
        9 => "FIN_WAIT2",
        10 => "TIME_WAIT",
        _ => return None,
    };
    let clip = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    (rc == 0).then(|| Reading {
        state: Some(state),
        counters: Some(shared::TcpCounters {
            segs_out: clip(info.tcpi_txpackets),
            segs_in: clip(info.tcpi_rxpackets),
            // Bytes, not segments, are what macOS counts again: in segments of the MSS.
            retransmits: clip(info.tcpi_txretransmitbytes / u64::from(info.tcpi_maxseg.max(1))),
            bytes_acked: info.tcpi_txbytes,
            bytes_received: info.tcpi_rxbytes,
            window: info.tcpi_snd_wnd,
            // Milliseconds there.
            rtt_us: info.tcpi_srtt.saturating_mul(1000),
        }),
    })
}

/// Windows: `SIO_TCP_INFO`, else (before Windows 10 version 1703, and under wine) the state
/// alone from the connection table.
#[cfg(windows)]
pub(crate) fn of_socket(socket: Handle) -> Option<Reading> {
    sio_tcp_info(socket).or_else(|| {
        use std::os::windows::io::FromRawSocket as _;
        // SAFETY: the socket stays open while this borrowed view of it lives, and the view
        // is never dropped (so never closes it).
        let stream =
            std::mem::ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_socket(socket) });
        let state = in_table(stream.local_addr().ok()?, stream.peer_addr().ok()?)??;
        Some(Reading {
            state: Some(state).filter(|state| *state != "CLOSE"),
            counters: None,
        })
    })
}

/// `SIO_TCP_INFO` (version 0), from Windows 10 version 1703 on. Windows counts bytes, not
/// segments: the segment counters stay zero.
#[cfg(windows)]
fn sio_tcp_info(socket: Handle) -> Option<Reading> {
    use windows_sys::Win32::Networking::WinSock::{TCP_INFO_v0, WSAIoctl, SIO_TCP_INFO};
    let version: u32 = 0;
    let mut info = TCP_INFO_v0::default();
    let mut returned = 0u32;
    // SAFETY: the in buffer is a u32 and the out buffer a TCP_INFO_v0, each of the size given;
    // no overlapped I/O, so the call completes before it returns.
    let rc = unsafe {
        WSAIoctl(
            socket as usize,
            SIO_TCP_INFO,
            std::ptr::addr_of!(version).cast(),
            4,
            std::ptr::addr_of_mut!(info).cast(),
            std::mem::size_of::<TCP_INFO_v0>() as u32,
            &mut returned,
            std::ptr::null_mut(),
            None,
        )
    };
    if rc != 0 {
        return None;
    }
    let state = match info.State {
        1 => "LISTEN",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "ESTABLISHED",
        5 => "FIN_WAIT1",
        6 => "FIN_WAIT2",
        7 => "CLOSE_WAIT",
        8 => "CLOSING",
        9 => "LAST_ACK",
        10 => "TIME_WAIT",
        _ => return None,
    };
    Some(Reading {
        state: Some(state),
        counters: Some(shared::TcpCounters {
            segs_out: 0,
            segs_in: 0,
            retransmits: info.BytesRetrans / info.Mss.max(1),
            bytes_acked: info.BytesOut.saturating_sub(u64::from(info.BytesInFlight)),
            bytes_received: info.BytesIn,
            window: info.SndWnd,
            rtt_us: info.RttUs,
        }),
    })
}

/// Other systems: no reading, and the welcome says so ([`note`]).
#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
pub(crate) fn of_socket(_socket: Handle) -> Option<Reading> {
    None
}

/// What the welcome adds to its capture line when packets are not captured: what the page
/// shows instead, or that this system gives no TCP states either. Found out once, on a real
/// loopback connection, so the line is true of this machine (an old Windows, or wine, may
/// refuse `SIO_TCP_INFO`).
pub(crate) fn note() -> &'static str {
    static NOTE: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    NOTE.get_or_init(|| {
        if cfg!(target_os = "linux") {
            return "Shown instead: the kernel's counters of each TCP connection.";
        }
        match probe() {
            Some(Reading {
                counters: Some(_), ..
            }) => "Shown instead: the system's state and counters of each TCP connection.",
            Some(_) => {
                "Shown instead: the system's state of each TCP connection (its counters need \
                 Windows 10 version 1703 or later)."
            }
            None => "TCP states are not shown either: this system does not report them.",
        }
    })
}

/// What can be read of an open loopback connection here, if anything.
fn probe() -> Option<Reading> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).ok()?;
    let client = std::net::TcpStream::connect(listener.local_addr().ok()?).ok()?;
    let _accepted = listener.accept();
    of_socket(handle(&client)).filter(|r| r.state == Some("ESTABLISHED"))
}

/// Whether this system gives the bridge TCP states at all (found out once, with [`note`]):
/// where it does not, nothing is followed after close either, as the welcome says.
fn available() -> bool {
    !note().starts_with("TCP states are not shown")
}

/// The system's handle of a socket, to read its state with: a descriptor on Unix, a `SOCKET`
/// on Windows.
#[cfg(unix)]
pub(crate) type Handle = std::os::fd::RawFd;
/// See the Unix [`Handle`].
#[cfg(windows)]
pub(crate) type Handle = std::os::windows::io::RawSocket;

/// The handle of `stream` (tokio's or std's), valid while it is open.
#[cfg(unix)]
pub(crate) fn handle(stream: &impl std::os::fd::AsRawFd) -> Handle {
    stream.as_raw_fd()
}

/// The handle of `stream` (tokio's or std's), valid while it is open.
#[cfg(windows)]
pub(crate) fn handle(stream: &impl std::os::windows::io::AsRawSocket) -> Handle {
    stream.as_raw_socket()
}

/// How often a connection's counters are reported at most while they change.
const COUNTERS_EVERY: Duration = Duration::from_secs(1);

/// Records a socket's state each time it changes, and (where the log asks for them) its
/// counters when they change, at most every [`COUNTERS_EVERY`]; the last ones not yet
/// reported are when the watch ends with its socket.
#[derive(Default)]
pub(crate) struct Watch {
    last: Option<&'static str>,
    reported: Option<(shared::TcpCounters, std::time::Instant)>,
    /// Counters newer than the reported ones, and where to report them.
    pending: Option<(shared::TcpCounters, Ctx)>,
}

impl Watch {
    pub(crate) fn check(&mut self, ctx: &Ctx, reading: Option<Reading>) {
        let Some(reading) = reading else { return };
        self.state(ctx, reading.state);
        let Some(counters) = reading.counters.filter(|_| ctx.log.counters()) else {
            return;
        };
        match self.reported {
            Some((seen, _)) if seen == counters => self.pending = None,
            Some((_, at)) if at.elapsed() < COUNTERS_EVERY => match &mut self.pending {
                Some((newer, _)) => *newer = counters,
                None => self.pending = Some((counters, ctx.clone())),
            },
            _ => {
                ctx.emit(EventKind::TcpCounters(counters));
                self.reported = Some((counters, std::time::Instant::now()));
                self.pending = None;
            }
        }
    }

    /// Records `state` if it is new.
    pub(crate) fn state(&mut self, ctx: &Ctx, state: Option<&'static str>) {
        if state.is_some() && state != self.last {
            self.last = state;
            ctx.emit(EventKind::TcpState {
                state: state.unwrap_or_default().to_string(),
            });
        }
    }
}

impl Drop for Watch {
    /// The connection's last counters, when they were not reported yet.
    fn drop(&mut self) {
        if let Some((counters, ctx)) = self.pending.take() {
            ctx.emit(EventKind::TcpCounters(counters));
        }
    }
}

/// After close: what the system's connection table still says about this connection. The
/// side that closed first waits out TIME_WAIT there; the other side's socket is gone once the
/// last ACK came, and is then reported as CLOSE (the textbook's CLOSED). A state on the way
/// (LAST_ACK, FIN_WAIT1, FIN_WAIT2, CLOSING) is looked at again, for at most [`FOLLOW`].
pub(crate) fn after_close(ctx: Ctx) {
    let origin = &ctx.origin;
    let (Some(local), Some(peer)) = (
        origin
            .local
            .as_deref()
            .and_then(|l| l.parse::<SocketAddr>().ok()),
        origin
            .peer
            .as_deref()
            .and_then(|p| p.parse::<SocketAddr>().ok()),
    ) else {
        return;
    };
    // Each look reads the whole table: when many connections close at once (a server with
    // thousands stopped), only [`FOLLOWERS`] of them are followed.
    let Ok(permit) = FOLLOWERS.try_acquire() else {
        return;
    };
    if !available() {
        return;
    }
    tokio::spawn(async move {
        // Held until this follower ends, however it ends.
        let _permit = permit;
        let mut watch = Watch::default();
        for _ in 0..FOLLOW.as_millis() / POLL.as_millis() {
            // Give the FIN/ACK exchange a moment to finish.
            tokio::time::sleep(POLL).await;
            // No table to read here: the state after close is not known, and not guessed.
            let Some(state) = in_table(local, peer) else {
                return;
            };
            let state = state.unwrap_or("CLOSE");
            watch.state(&ctx, Some(state));
            if matches!(state, "CLOSE" | "TIME_WAIT") {
                return;
            }
        }
    });
}

/// Closed connections followed at once, at most.
static FOLLOWERS: Semaphore = Semaphore::const_new(64);

/// How long a closed connection's way out is followed (a peer that never closes leaves this
/// side in FIN_WAIT2 for a minute; the last state seen stays on the picture).
const FOLLOW: Duration = Duration::from_secs(2);

/// Looks the connection up in /proc/net/tcp (IPv4) or /proc/net/tcp6: `Some(None)` when it
/// is not there (gone), `None` when the table cannot be read.
#[cfg(target_os = "linux")]
fn in_table(local: SocketAddr, peer: SocketAddr) -> Option<Option<&'static str>> {
    let path = if local.is_ipv4() {
        "/proc/net/tcp"
    } else {
        "/proc/net/tcp6"
    };
    let table = std::fs::read_to_string(path).ok()?;
    let (want_local, want_peer) = (hex_addr(local), hex_addr(peer));
    Some(table.lines().skip(1).find_map(|line| {
        let mut fields = line.split_whitespace().skip(1);
        let (l, p, state) = (fields.next()?, fields.next()?, fields.next()?);
        (l.eq_ignore_ascii_case(&want_local) && p.eq_ignore_ascii_case(&want_peer))
            .then(|| name(u8::from_str_radix(state, 16).ok()?))
            .flatten()
    }))
}

/// Windows: looks an IPv4 connection up in the system's table (`GetTcpTable2`), as
/// [`in_table`] on Linux; IPv6 connections are not followed.
#[cfg(windows)]
fn in_table(local: SocketAddr, peer: SocketAddr) -> Option<Option<&'static str>> {
    let (SocketAddr::V4(local), SocketAddr::V4(peer)) = (local, peer) else {
        return None;
    };
    // A connection missing from a table read a moment ago may be newer than it: read again.
    let key = (local, peer);
    let state = match tcp_table_v4(false)?.get(&key) {
        Some(state) => Some(*state),
        None => tcp_table_v4(true)?.get(&key).copied(),
    };
    Some(state.and_then(|state| {
        Some(match state {
            1 => "CLOSE",
            2 => "LISTEN",
            3 => "SYN_SENT",
            4 => "SYN_RECV",
            5 => "ESTABLISHED",
            6 => "FIN_WAIT1",
            7 => "FIN_WAIT2",
            8 => "CLOSE_WAIT",
            9 => "CLOSING",
            10 => "LAST_ACK",
            11 => "TIME_WAIT",
            _ => return None,
        })
    }))
}

/// Windows' IPv4 connections and their states (`MIB_TCP_STATE`), by local and remote
/// address. The table is read at most once per half [`POLL`] for every connection that asks:
/// with many connections followed through it (a Windows without `SIO_TCP_INFO`), each reading
/// the whole table every 50 ms would cost the square of their number. Half: a look after
/// close, which waits a whole `POLL`, never gets a table read before the close. `fresh` reads
/// it now whatever its age.
#[cfg(windows)]
fn tcp_table_v4(fresh: bool) -> Option<std::sync::Arc<TcpTable>> {
    use std::net::{Ipv4Addr, SocketAddrV4};
    use windows_sys::Win32::NetworkManagement::IpHelper::{
        GetTcpTable2, MIB_TCPROW2, MIB_TCPTABLE2,
    };
    type Cached = Option<(std::time::Instant, std::sync::Arc<TcpTable>)>;
    static CACHE: std::sync::Mutex<Cached> = std::sync::Mutex::new(None);
    let mut cache = CACHE.lock().ok()?;
    if let Some((read, table)) = &*cache {
        if !fresh && read.elapsed() < POLL / 2 {
            return Some(table.clone());
        }
    }
    let rows: Vec<MIB_TCPROW2> = windows_table(
        std::mem::offset_of!(MIB_TCPTABLE2, table),
        // SAFETY: writes at most `size` bytes into the buffer given (windows_table's contract).
        |buf, size| unsafe { GetTcpTable2(buf.cast(), size, 0) },
    )?;
    let at = |ip: u32, p: u32| SocketAddrV4::new(Ipv4Addr::from(ip.to_ne_bytes()), port(p));
    let table: TcpTable = rows
        .iter()
        .map(|r| {
            let key = (
                at(r.dwLocalAddr, r.dwLocalPort),
                at(r.dwRemoteAddr, r.dwRemotePort),
            );
            (key, r.dwState)
        })
        .collect();
    let table = std::sync::Arc::new(table);
    *cache = Some((std::time::Instant::now(), table.clone()));
    Some(table)
}

/// See [`tcp_table_v4`].
#[cfg(windows)]
type TcpTable = std::collections::HashMap<(std::net::SocketAddrV4, std::net::SocketAddrV4), u32>;

/// A port as Windows' tables keep it: in network order, in the low 16 bits.
#[cfg(windows)]
fn port(p: u32) -> u16 {
    u16::from_be(p as u16)
}

/// One of Windows' tables, read whole: its rows of type `R`, which `get` writes after a
/// `u32` count, the first at `offset`. `get(buffer, size)` is one of the `Get...Table` calls:
/// it writes at most `size` bytes, or says how many it needs (ERROR_INSUFFICIENT_BUFFER).
#[cfg(windows)]
fn windows_table<R: Copy>(offset: usize, get: impl Fn(*mut u8, &mut u32) -> u32) -> Option<Vec<R>> {
    let mut buf: Vec<u64> = Vec::new();
    let mut read = false;
    // The table may grow between the two calls: a few tries.
    for _ in 0..4 {
        let mut size = u32::try_from(buf.len() * 8).ok()?;
        match get(buf.as_mut_ptr().cast(), &mut size) {
            0 => {
                read = true;
                break;
            }
            122 => buf = vec![0u64; (size as usize).div_ceil(8) + 64],
            _ => return None,
        }
    }
    if !read || buf.is_empty() {
        return None;
    }
    let count = buf[0] as u32 as usize;
    let row = std::mem::size_of::<R>();
    let bytes = buf.len() * 8;
    Some(
        (0..count)
            .map(|i| offset + i * row)
            .take_while(|at| at + row <= bytes)
            // SAFETY: within `buf` (checked just above); a copy of plain data, unaligned.
            .map(|at| unsafe { std::ptr::read_unaligned(buf.as_ptr().cast::<u8>().add(at).cast()) })
            .collect(),
    )
}

/// Whether some socket listens on TCP `port` (or is bound to UDP `port`): `/proc/net`.
#[cfg(target_os = "linux")]
pub(crate) fn listening(port: u16, tcp: bool) -> bool {
    let (files, state) = if tcp {
        (["/proc/net/tcp", "/proc/net/tcp6"], "0A")
    } else {
        (["/proc/net/udp", "/proc/net/udp6"], "07")
    };
    let wanted = format!(":{port:04X}");
    files.iter().any(|file| {
        std::fs::read_to_string(file).is_ok_and(|table| {
            table.lines().skip(1).any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.len() > 3 && fields[1].ends_with(&wanted) && fields[3] == state
            })
        })
    })
}

/// Windows: the TCP tables' LISTEN rows (IPv4 and IPv6), or the UDP tables' bound ports.
#[cfg(windows)]
pub(crate) fn listening(wanted: u16, tcp: bool) -> bool {
    use std::mem::offset_of;
    use windows_sys::Win32::NetworkManagement::IpHelper::{
        GetTcp6Table2, GetTcpTable2, GetUdp6Table, GetUdpTable, MIB_TCP6ROW2, MIB_TCP6TABLE2,
        MIB_TCPROW2, MIB_TCPTABLE2, MIB_UDP6ROW, MIB_UDP6TABLE, MIB_UDPROW, MIB_UDPTABLE,
    };
    // SAFETY (each call): writes at most `size` bytes into the buffer given.
    if tcp {
        let v4 = windows_table::<MIB_TCPROW2>(offset_of!(MIB_TCPTABLE2, table), |b, s| unsafe {
            GetTcpTable2(b.cast(), s, 0)
        });
        let v6 = windows_table::<MIB_TCP6ROW2>(offset_of!(MIB_TCP6TABLE2, table), |b, s| unsafe {
            GetTcp6Table2(b.cast(), s, 0)
        });
        // MIB_TCP_STATE_LISTEN is 2.
        v4.is_some_and(|rows| {
            rows.iter()
                .any(|r| r.dwState == 2 && port(r.dwLocalPort) == wanted)
        }) || v6.is_some_and(|rows| {
            rows.iter()
                .any(|r| r.State == 2 && port(r.dwLocalPort) == wanted)
        })
    } else {
        let v4 = windows_table::<MIB_UDPROW>(offset_of!(MIB_UDPTABLE, table), |b, s| unsafe {
            GetUdpTable(b.cast(), s, 0)
        });
        let v6 = windows_table::<MIB_UDP6ROW>(offset_of!(MIB_UDP6TABLE, table), |b, s| unsafe {
            GetUdp6Table(b.cast(), s, 0)
        });
        v4.is_some_and(|rows| rows.iter().any(|r| port(r.dwLocalPort) == wanted))
            || v6.is_some_and(|rows| rows.iter().any(|r| port(r.dwLocalPort) == wanted))
    }
}

/// macOS, which has no table a program can read without privileges: `lsof`, which every Mac
/// has, and which finds the user's own sockets (exit status 0 when one matches).
#[cfg(not(any(target_os = "linux", windows)))]
pub(crate) fn listening(port: u16, tcp: bool) -> bool {
    let mut command = std::process::Command::new("lsof");
    command.arg("-nP");
    if tcp {
        command.args([format!("-iTCP:{port}"), "-sTCP:LISTEN".to_string()]);
    } else {
        command.arg(format!("-iUDP:{port}"));
    }
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Systems without a connection table the bridge reads (macOS): nothing is followed.
#[cfg(not(any(target_os = "linux", windows)))]
fn in_table(_local: SocketAddr, _peer: SocketAddr) -> Option<Option<&'static str>> {
    None
}

/// The addresses of this machine where a TCP server listens on `port`: Windows' TCP tables'
/// LISTEN rows, IPv4 and IPv6.
#[cfg(windows)]
pub(crate) fn listening_on(wanted: u16) -> Vec<SocketAddr> {
    use std::mem::offset_of;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use windows_sys::Win32::NetworkManagement::IpHelper::{
        GetTcp6Table2, GetTcpTable2, MIB_TCP6ROW2, MIB_TCP6TABLE2, MIB_TCPROW2, MIB_TCPTABLE2,
    };
    // SAFETY (each call): writes at most `size` bytes into the buffer given.
    let v4 = windows_table::<MIB_TCPROW2>(offset_of!(MIB_TCPTABLE2, table), |b, s| unsafe {
        GetTcpTable2(b.cast(), s, 0)
    });
    let v6 = windows_table::<MIB_TCP6ROW2>(offset_of!(MIB_TCP6TABLE2, table), |b, s| unsafe {
        GetTcp6Table2(b.cast(), s, 0)
    });
    // MIB_TCP_STATE_LISTEN is 2.
    let v4 = v4
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.dwState == 2 && port(r.dwLocalPort) == wanted)
        .map(|r| SocketAddr::from((Ipv4Addr::from(r.dwLocalAddr.to_ne_bytes()), wanted)));
    let v6 = v6
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.State == 2 && port(r.dwLocalPort) == wanted)
        // SAFETY: both views of the union are plain bytes.
        .map(|r| SocketAddr::from((Ipv6Addr::from(unsafe { r.LocalAddr.u.Byte }), wanted)));
    v4.chain(v6).collect()
}

/// The addresses of this machine where a TCP server listens on `port`: `lsof`'s listening
/// TCP sockets of this user (macOS has no table to read; another user's servers are not
/// found, and then the hint is simply absent).
#[cfg(not(any(target_os = "linux", windows)))]
pub(crate) fn listening_on(port: u16) -> Vec<SocketAddr> {
    lsof_listening_on(port)
}

/// [`listening_on`] by `lsof` (macOS's; Linux has lsof too, so it is tested there).
#[cfg_attr(any(target_os = "linux", windows), allow(dead_code))]
fn lsof_listening_on(port: u16) -> Vec<SocketAddr> {
    let out = std::process::Command::new("lsof")
        .args(["-nP", &format!("-iTCP:{port}"), "-sTCP:LISTEN", "-Fn"])
        .stderr(std::process::Stdio::null())
        .output();
    out.map(|o| lsof_names(&String::from_utf8_lossy(&o.stdout), port))
        .unwrap_or_default()
}

/// The addresses in `lsof -F n` output (`n127.0.0.1:12000`, `n[::1]:12000`, `n*:12000` for
/// every address), those on `port` only, each once.
#[cfg_attr(any(target_os = "linux", windows), allow(dead_code))]
fn lsof_names(text: &str, port: u16) -> Vec<SocketAddr> {
    let mut found: Vec<SocketAddr> = Vec::new();
    for name in text.lines().filter_map(|l| l.strip_prefix('n')) {
        let name = name.replacen("*:", "0.0.0.0:", 1);
        if let Ok(addr) = name.parse::<SocketAddr>() {
            if addr.port() == port && !found.contains(&addr) {
                found.push(addr);
            }
        }
    }
    found
}

/// The addresses of this machine where a TCP server listens on `port` (from /proc/net/tcp and
/// tcp6).
#[cfg(target_os = "linux")]
pub(crate) fn listening_on(port: u16) -> Vec<SocketAddr> {
    let mut found = Vec::new();
    for (path, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let Ok(table) = std::fs::read_to_string(path) else {
            continue;
        };
        for line in table.lines().skip(1) {
            let mut fields = line.split_whitespace().skip(1);
            let (Some(local), Some(_), Some("0A")) = (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if let Some(addr) = parse_hex_addr(local, v6).filter(|a| a.port() == port) {
                found.push(addr);
            }
        }
    }
    found
}

/// The reverse of [`hex_addr`].
#[cfg_attr(not(target_os = "linux"), allow(dead_code))] // Linux's /proc only
fn parse_hex_addr(text: &str, v6: bool) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok();
    let ip = if v6 {
        let mut octets = [0u8; 16];
        for i in 0..4 {
            octets[i * 4..i * 4 + 4].copy_from_slice(&word(i)?.to_le_bytes());
        }
        std::net::IpAddr::from(octets)
    } else {
        std::net::IpAddr::from(word(0)?.to_le_bytes())
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))] // the table is Linux's; tests use it
/// An address as /proc/net/tcp writes it: the IP in the kernel's byte order, then the port.
fn hex_addr(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) => format!("{:08X}", u32::from_le_bytes(v4.octets())),
        std::net::IpAddr::V6(v6) => v6
            .octets()
            .chunks(4)
            .map(|w| format!("{:08X}", u32::from_le_bytes([w[0], w[1], w[2], w[3]])))
            .collect(),
    };
    format!("{ip}:{:04X}", addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn proc_net_tcp_addresses() {
        let addr: SocketAddr = "127.0.0.1:12000".parse().unwrap();
        assert_eq!(hex_addr(addr), "0100007F:2EE0");
        assert_eq!(parse_hex_addr("0100007F:2EE0", false), Some(addr));
        let v6: SocketAddr = "[::1]:12000".parse().unwrap();
        assert_eq!(parse_hex_addr(&hex_addr(v6), true), Some(v6));
        assert_eq!(name(6), Some("TIME_WAIT"));
        assert_eq!(name(99), None);
    }

    /// macOS finds where a server listens with `lsof` (for the refused-connect hint); Linux
    /// has the same lsof, so it is run here against real listeners, and `/proc` must agree.
    #[cfg(unix)]
    #[test]
    fn lsof_finds_where_a_server_listens() {
        let text =
            "p42\nf5\nn127.0.0.1:12000\nn[::1]:12000\nn*:12000\nn127.0.0.1:12000\nn10.0.0.1:9\n";
        let found = lsof_names(text, 12000);
        let want: Vec<SocketAddr> = ["127.0.0.1:12000", "[::1]:12000", "0.0.0.0:12000"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(found, want);
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        let v6 = std::net::TcpListener::bind(("::1", port)).ok();
        if std::process::Command::new("lsof")
            .arg("-v")
            .output()
            .is_err()
        {
            eprintln!("skipped the real lsof: not installed");
            return;
        }
        let mut seen = lsof_listening_on(port);
        seen.sort();
        let mut expected = vec![v4.local_addr().unwrap()];
        expected.extend(v6.as_ref().map(|l| l.local_addr().unwrap()));
        expected.sort();
        assert_eq!(seen, expected);
        #[cfg(target_os = "linux")]
        {
            let mut proc = listening_on(port);
            proc.sort();
            assert_eq!(proc, expected, "/proc agrees");
        }
    }
}
