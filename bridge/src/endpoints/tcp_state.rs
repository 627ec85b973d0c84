//! The kernel's own TCP state of a socket (ESTABLISHED, CLOSE_WAIT, TIME_WAIT, ...), read from
//! the OS as the connection lives (Linux `TCP_INFO`) and, once the socket is closed, from the
//! system's connection table (`/proc/net/tcp`), where TIME_WAIT lingers.

use std::net::SocketAddr;
use std::time::Duration;

use shared::EventKind;
use tokio::sync::Semaphore;

use crate::core::ctx::Ctx;

/// How often a connected socket's state is looked at.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// The names Linux uses, by `tcpi_state` number.
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

/// What TCP_INFO says of an open socket: its state, and its counters.
#[derive(Clone, Copy)]
pub(crate) struct Reading {
    state: Option<&'static str>,
    counters: shared::TcpCounters,
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
        counters: shared::TcpCounters {
            segs_out: info.tcpi_segs_out,
            segs_in: info.tcpi_segs_in,
            retransmits: info.tcpi_total_retrans,
            bytes_acked: info.tcpi_bytes_acked,
            bytes_received: info.tcpi_bytes_received,
            window: info.tcpi_snd_wnd,
            rtt_us: info.tcpi_rtt,
        },
    })
}

/// Other systems: no reading yet (their TCP state views are still to come), and the page shows
/// none.
#[cfg(not(target_os = "linux"))]
pub(crate) fn of_socket(_socket: Handle) -> Option<Reading> {
    None
}

/// The system's handle of a socket, to read its state with: a descriptor on Unix, a `SOCKET`
/// on Windows.
#[cfg(unix)]
pub(crate) type Handle = std::os::fd::RawFd;
/// See the Unix [`Handle`].
#[cfg(windows)]
pub(crate) type Handle = std::os::windows::io::RawSocket;

/// The handle of `stream`, valid while it is open.
pub(crate) fn handle(stream: &tokio::net::TcpStream) -> Handle {
    #[cfg(unix)]
    return std::os::fd::AsRawFd::as_raw_fd(stream);
    #[cfg(windows)]
    return std::os::windows::io::AsRawSocket::as_raw_socket(stream);
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
        if !ctx.log.counters() {
            return;
        }
        let counters = reading.counters;
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
    tokio::spawn(async move {
        // Held until this follower ends, however it ends.
        let _permit = permit;
        let mut watch = Watch::default();
        for _ in 0..FOLLOW.as_millis() / POLL.as_millis() {
            // Give the FIN/ACK exchange a moment to finish.
            tokio::time::sleep(POLL).await;
            let state = in_table(local, peer).unwrap_or("CLOSE");
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

/// Looks the connection up in /proc/net/tcp (IPv4) or /proc/net/tcp6.
fn in_table(local: SocketAddr, peer: SocketAddr) -> Option<&'static str> {
    let path = if local.is_ipv4() {
        "/proc/net/tcp"
    } else {
        "/proc/net/tcp6"
    };
    let table = std::fs::read_to_string(path).ok()?;
    let (want_local, want_peer) = (hex_addr(local), hex_addr(peer));
    table.lines().skip(1).find_map(|line| {
        let mut fields = line.split_whitespace().skip(1);
        let (l, p, state) = (fields.next()?, fields.next()?, fields.next()?);
        (l.eq_ignore_ascii_case(&want_local) && p.eq_ignore_ascii_case(&want_peer))
            .then(|| name(u8::from_str_radix(state, 16).ok()?))
            .flatten()
    })
}

/// The addresses of this machine where a TCP server listens on `port` (from /proc/net/tcp and
/// tcp6; empty where the system has no such table).
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
}
