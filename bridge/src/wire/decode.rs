//! A captured frame, decoded with `etherparse` into what the page shows of it
//! ([`shared::PacketInfo`]): the addresses, TCP flags, sequence and acknowledgement numbers
//! relative to each side's first (as Wireshark shows them), the window, the handshake's
//! options, the payload, and for ICMP the datagram it is about.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use etherparse::{LaxNetSlice, LaxSlicedPacket, TcpOptionElement, TransportSlice};
use shared::{PacketInfo, Payload};

/// Bytes of a packet's payload kept in its event (the length stays exact): enough to match
/// it with the send() that made it, little enough for a bulk transfer's thousands of
/// segments (the pcapng file keeps more of each).
const KEPT: usize = 128;
/// Flows whose first sequence numbers are remembered; past this the oldest are forgotten.
const MAX_FLOWS: usize = 4096;

/// A decoded packet: what the event says, and the addresses whose socket it belongs to (for
/// ICMP, those of the datagram it is about, sender first).
pub(crate) struct Decoded {
    pub(crate) info: PacketInfo,
    pub(crate) from: String,
    pub(crate) to: String,
}

/// What decoding keeps between packets: each direction's first sequence number, and the
/// end of the furthest sequence it has sent (relative), so a segment that sends again what
/// was sent before is marked a retransmission, as Wireshark marks it.
#[derive(Default)]
pub(crate) struct Decoder {
    isn: HashMap<(SocketAddr, SocketAddr), u32>,
    sent_to: HashMap<(SocketAddr, SocketAddr), u32>,
}

impl Decoder {
    /// Decodes an Ethernet frame (loopback's are Ethernet, with zero addresses), cut to its
    /// first bytes by the capture filter: the lengths come from the headers. `None` for what
    /// is not IPv4 or IPv6 TCP, UDP or ICMP.
    pub(crate) fn decode(&mut self, frame: &[u8]) -> Option<Decoded> {
        let packet = LaxSlicedPacket::from_ethernet(frame).ok()?;
        // The addresses, and how long the IP payload was on the wire.
        let (src_ip, dst_ip, ip_payload): (IpAddr, IpAddr, usize) = match packet.net.as_ref()? {
            LaxNetSlice::Ipv4(ip) => {
                let h = ip.header();
                let payload = usize::from(h.total_len()).saturating_sub(usize::from(h.ihl()) * 4);
                (h.source_addr().into(), h.destination_addr().into(), payload)
            }
            LaxNetSlice::Ipv6(ip) => {
                let h = ip.header();
                let payload = usize::from(h.payload_length());
                (h.source_addr().into(), h.destination_addr().into(), payload)
            }
            LaxNetSlice::Arp(_) => return None,
        };
        let blank = |proto: &str, src: String, dst: String, data: &[u8], len: usize| PacketInfo {
            proto: proto.into(),
            dir: String::new(),
            wire_us: 0,
            src,
            dst,
            flags: String::new(),
            tcp_seq: None,
            tcp_ack: None,
            window: None,
            options: String::new(),
            data: Payload::from_head(&data[..data.len().min(KEPT)], len.max(data.len())),
            detail: String::new(),
        };
        match packet.transport.as_ref()? {
            TransportSlice::Tcp(tcp) => {
                let src = SocketAddr::new(src_ip, tcp.source_port());
                let dst = SocketAddr::new(dst_ip, tcp.destination_port());
                if self.isn.len() >= MAX_FLOWS {
                    self.isn.clear();
                    self.sent_to.clear();
                }
                // A SYN starts the direction's numbering (a new one, a new connection on the
                // same ports); without one seen, its first packet does.
                if tcp.syn() && self.isn.get(&(src, dst)) != Some(&tcp.sequence_number()) {
                    self.isn.insert((src, dst), tcp.sequence_number());
                    self.sent_to.remove(&(src, dst));
                }
                let isn = *self.isn.entry((src, dst)).or_insert(tcp.sequence_number());
                let peer_isn = self.isn.get(&(dst, src)).copied();
                // Wireshark's order: SYN, PSH, RST and FIN before ACK.
                let mut flags = Vec::new();
                for (on, name) in [
                    (tcp.cwr(), "CWR"),
                    (tcp.ece(), "ECE"),
                    (tcp.urg(), "URG"),
                    (tcp.syn(), "SYN"),
                    (tcp.psh(), "PSH"),
                    (tcp.rst(), "RST"),
                    (tcp.fin(), "FIN"),
                    (tcp.ack(), "ACK"),
                ] {
                    if on {
                        flags.push(name);
                    }
                }
                let mut options = Vec::new();
                for option in tcp.options_iterator().flatten() {
                    match option {
                        TcpOptionElement::MaximumSegmentSize(mss) => {
                            options.push(format!("mss {mss}"))
                        }
                        TcpOptionElement::WindowScale(scale) => {
                            options.push(format!("wscale {scale}"))
                        }
                        TcpOptionElement::SelectiveAcknowledgementPermitted => {
                            options.push("sack_ok".into())
                        }
                        TcpOptionElement::Timestamp(..) if tcp.syn() => options.push("ts".into()),
                        _ => {}
                    }
                }
                let len = ip_payload.saturating_sub(usize::from(tcp.data_offset()) * 4);
                let mut info = blank("tcp", src.to_string(), dst.to_string(), tcp.payload(), len);
                info.flags = flags.join(",");
                info.tcp_seq = Some(tcp.sequence_number().wrapping_sub(isn));
                info.tcp_ack = tcp.ack().then(|| {
                    tcp.acknowledgment_number()
                        .wrapping_sub(peer_isn.unwrap_or(0))
                });
                if tcp.ack() && peer_isn.is_none() {
                    // The other side's SYN was not seen: its numbers stay as they are.
                    info.tcp_ack = Some(tcp.acknowledgment_number());
                }
                info.window = Some(u32::from(tcp.window_size()));
                info.options = options.join(", ");
                // What the segment takes of the sequence: its bytes, and one each for SYN and FIN.
                let seq = tcp.sequence_number().wrapping_sub(isn);
                let taken = len as u32 + u32::from(tcp.syn()) + u32::from(tcp.fin());
                let end = seq.wrapping_add(taken);
                if let Some(&furthest) = self.sent_to.get(&(src, dst)) {
                    // All of it sent before (a keep-alive's one old byte is not a resend).
                    let again = taken > 0 && (furthest.wrapping_sub(end) as i32) >= 0;
                    let keepalive = taken <= 1 && !tcp.syn() && !tcp.fin() && end == furthest;
                    if again && !keepalive {
                        info.detail = if tcp.syn() {
                            "retransmission: the SYN sent again, no answer came in time".into()
                        } else {
                            "retransmission: sent again, no acknowledgement came in time".into()
                        };
                    }
                }
                let furthest = self.sent_to.entry((src, dst)).or_insert(end);
                if (end.wrapping_sub(*furthest) as i32) > 0 {
                    *furthest = end;
                }
                Some(Decoded {
                    from: info.src.clone(),
                    to: info.dst.clone(),
                    info,
                })
            }
            TransportSlice::Udp(udp) => {
                let src = SocketAddr::new(src_ip, udp.source_port()).to_string();
                let dst = SocketAddr::new(dst_ip, udp.destination_port()).to_string();
                let len = usize::from(udp.length()).saturating_sub(8);
                let info = blank("udp", src.clone(), dst.clone(), udp.payload(), len);
                Some(Decoded {
                    info,
                    from: src,
                    to: dst,
                })
            }
            TransportSlice::Icmpv4(icmp) => {
                let unreachable = icmp.type_u8() == 3 && icmp.code_u8() == 3;
                let data = icmp.payload();
                let info = blank("icmp", src_ip.to_string(), dst_ip.to_string(), data, 0);
                icmp_about(info, unreachable, data)
            }
            TransportSlice::Icmpv6(icmp) => {
                let unreachable = icmp.type_u8() == 1 && icmp.code_u8() == 4;
                let data = icmp.payload();
                let info = blank("icmp", src_ip.to_string(), dst_ip.to_string(), data, 0);
                icmp_about(info, unreachable, data)
            }
            _ => None,
        }
    }
}

/// An ICMP message about a datagram (its payload starts with that datagram's IP header and
/// UDP header): tied to the socket that sent the datagram.
fn icmp_about(mut info: PacketInfo, unreachable: bool, inner: &[u8]) -> Option<Decoded> {
    let (from, to) = inner_udp(inner)?;
    info.detail = if unreachable {
        format!("port unreachable: the datagram to {to} found no socket listening there")
    } else {
        format!("about the datagram from {from} to {to}")
    };
    Some(Decoded {
        info,
        from: from.to_string(),
        to: to.to_string(),
    })
}

/// The UDP addresses of the datagram an ICMP message quotes.
fn inner_udp(inner: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let ports = |at: usize| -> Option<(u16, u16)> {
        let p = inner.get(at..at + 4)?;
        Some((
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        ))
    };
    match inner.first()? >> 4 {
        4 => {
            let header = etherparse::Ipv4HeaderSlice::from_slice(inner).ok()?;
            if header.protocol() != etherparse::IpNumber::UDP {
                return None;
            }
            let (sp, dp) = ports(usize::from(header.ihl()) * 4)?;
            Some((
                SocketAddr::new(header.source_addr().into(), sp),
                SocketAddr::new(header.destination_addr().into(), dp),
            ))
        }
        6 => {
            let header = etherparse::Ipv6HeaderSlice::from_slice(inner).ok()?;
            if header.next_header() != etherparse::IpNumber::UDP {
                return None;
            }
            let (sp, dp) = ports(40)?;
            Some((
                SocketAddr::new(header.source_addr().into(), sp),
                SocketAddr::new(header.destination_addr().into(), dp),
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::Decoder;

    /// A loopback frame of one TCP segment from port 1000 to 2000.
    fn segment(seq: u32, syn: bool, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut builder = etherparse::PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .tcp(1000, 2000, seq, 65535);
        if syn {
            builder = builder.syn();
        }
        if fin {
            builder = builder.fin();
        }
        let mut frame = Vec::new();
        builder.write(&mut frame, payload).unwrap();
        frame
    }

    fn detail(decoder: &mut Decoder, frame: &[u8]) -> String {
        decoder.decode(frame).unwrap().info.detail
    }

    #[test]
    fn a_segment_sent_again_is_a_retransmission() {
        let mut d = Decoder::default();
        assert_eq!(detail(&mut d, &segment(7000, true, false, b"")), "");
        assert!(
            detail(&mut d, &segment(7000, true, false, b"")).starts_with("retransmission: the SYN")
        );
        assert_eq!(detail(&mut d, &segment(7001, false, false, b"hello")), "");
        assert_eq!(detail(&mut d, &segment(7006, false, false, b"world")), "");
        assert!(detail(&mut d, &segment(7001, false, false, b"hello"))
            .starts_with("retransmission: sent again"));
        // A keep-alive (one old byte, or none) and a bare ACK are not.
        assert_eq!(detail(&mut d, &segment(7010, false, false, b"d")), "");
        assert_eq!(detail(&mut d, &segment(7011, false, false, b"")), "");
        assert_eq!(detail(&mut d, &segment(7011, false, true, b"")), "");
        assert!(detail(&mut d, &segment(7011, false, true, b"")).starts_with("retransmission"));
        // A new connection on the same ports numbers afresh.
        assert_eq!(detail(&mut d, &segment(90, true, false, b"")), "");
        assert_eq!(detail(&mut d, &segment(91, false, false, b"hi")), "");
    }
}
