//! Packets on the wire, as the bridge captures them (issue 19): one [`PacketInfo`] per TCP
//! segment, UDP datagram or ICMP message of the playground's sockets, tied to the socket that
//! sent or received it, so the page shows each beside the call that caused it.

use serde::Serialize;

use crate::Payload;

/// One captured packet, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PacketInfo {
    /// `tcp`, `udp` or `icmp`.
    pub proto: String,
    /// `out` when the event's socket sent it, `in` when it received it.
    pub dir: String,
    /// When it crossed the wire, by the kernel's timestamp, on the bridge's clock (`t_us` is
    /// when the bridge read it, a little later): the order of packets and calls.
    pub wire_us: u64,
    /// Where it came from and went to (`127.0.0.1:12000`; for ICMP, the addresses only).
    pub src: String,
    pub dst: String,
    /// TCP flags in the order Wireshark shows them, joined by commas: `SYN`, `SYN,ACK`,
    /// `PSH,ACK`, `FIN,ACK`, `RST`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub flags: String,
    /// TCP: sequence and acknowledgement numbers relative to each side's first (the SYN's),
    /// as Wireshark shows them (named apart from the event's own `seq`); the window as sent
    /// (unscaled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_seq: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_ack: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u32>,
    /// TCP options of the handshake, in words: `mss 65495, sack_ok, ts, wscale 7`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub options: String,
    /// The payload (TCP data, the UDP datagram), its length exact and its first bytes kept.
    pub data: Payload,
    /// ICMP: what it says, and about which datagram (`port unreachable: the datagram to
    /// 127.0.0.1:9 found no socket`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl PacketInfo {
    /// The bytes it holds (see `Event::kept_bytes`): a packet waiting to be shown counts
    /// toward the capture's bound with this, as a shown one counts toward the history's.
    pub fn kept_bytes(&self) -> usize {
        std::mem::size_of::<PacketInfo>()
            + self.data.kept_bytes()
            + self.src.len()
            + self.dst.len()
            + self.flags.len()
            + self.options.len()
            + self.detail.len()
    }
}

/// Whether and how the bridge captures packets, for the page to say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaptureStatus {
    /// Packets are captured.
    pub on: bool,
    /// What is captured, or why nothing is.
    pub detail: String,
    /// What would allow it (`sudo setcap cap_net_raw+ep /path/to/bridge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// A TCP connection's counters as the kernel keeps them (`TCP_INFO`), read without any
/// permission: segments each way, segments sent again, the peer's window and the round trip.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TcpCounters {
    /// Segments sent and received, handshake included.
    pub segs_out: u32,
    pub segs_in: u32,
    /// Segments sent again since the connection began (`tcpi_total_retrans`).
    pub retransmits: u32,
    /// Bytes of this side's data the peer acknowledged, and bytes received.
    pub bytes_acked: u64,
    pub bytes_received: u64,
    /// The window the peer last advertised, in bytes (scaled).
    pub window: u32,
    /// The kernel's smoothed round-trip time, in microseconds.
    pub rtt_us: u32,
}
