//! The kernel-side filter of the capture socket: a classic BPF program that keeps only the
//! packets whose TCP or UDP source or destination port is one of the playground's (and ICMP,
//! which carries the ports of the datagram it is about inside), and drops the second copy
//! loopback shows of each packet (the outgoing one). On loopback alone, or (with
//! `--allow-lan`) on every Ethernet interface too, where a packet's way out is its only copy.
//! Unrelated traffic is never copied to user space, but for one case: while a program is
//! traced, on loopback alone, every TCP and UDP port is kept but for the bridge's own (its page
//! and the programs' trace channels). A traced program's packets cross before its calls reach
//! the bridge, so its ports are not known in time (a client's first SYN to a server the bridge
//! does not run); the bridge keeps those it can tie to a traced socket, the rest not at all.
//!
//! Written by hand: the crates that compile filter expressions wrap libpcap (a C library the
//! single binary of issue 21 should not need), and the program is a few dozen instructions of
//! one fixed shape. Every jump is at most one instruction forward (each test is followed by
//! its own `ret`), so the program stays valid however many ports it lists; the one long jump,
//! to the IPv6 part, is a `ja` with a 32-bit offset.

use libc::sock_filter;

const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MSH: u16 = 0xa0;
const JA: u16 = 0x00;
const JEQ: u16 = 0x10;
const JSET: u16 = 0x40;
const K: u16 = 0x00;

/// Where the kernel's ancillary data starts (`SKF_AD_OFF`), and in it the packet type, the
/// interface's index and its hardware type.
const SKF_AD_PKTTYPE: u32 = (-0x1000i32) as u32 + 4;
const SKF_AD_IFINDEX: u32 = (-0x1000i32) as u32 + 8;
const SKF_AD_HATYPE: u32 = (-0x1000i32) as u32 + 28;
/// `ARPHRD_ETHER` and `ARPHRD_LOOPBACK`: the interfaces whose frames start with an Ethernet
/// header (loopback's with zero addresses), the only ones the offsets below fit.
const ARPHRD_ETHER: u32 = 1;
const ARPHRD_LOOPBACK: u32 = 772;
/// `PACKET_OUTGOING`: loopback's copy of a packet on its way out.
const PACKET_OUTGOING: u32 = 4;
/// Bytes of a packet copied to the bridge: its headers and the first 4 KiB of its payload,
/// what an event keeps (a 64 KiB loopback segment of a bulk transfer is not copied whole).
pub(crate) const SNAPLEN: u32 = 4096 + 256;
/// Most ports one filter lists: 8 instructions each (a test and a `ret`, for the source and
/// the destination port, over IPv4 and over IPv6), within the kernel's 4096.
pub(crate) const MAX_PORTS: usize = 500;
/// Most of the bridge's own ports left out in the wide mode (8 instructions each too; the
/// watched ports are not listed then, all being kept).
pub(crate) const MAX_OWN: usize = 64;

fn op(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// `if A == k` go on, else skip one instruction.
fn is(k: u32) -> sock_filter {
    sock_filter {
        code: JMP | JEQ | K,
        jt: 0,
        jf: 1,
        k,
    }
}

/// `if A == k` skip `n` instructions, else go on.
fn skip_if(k: u32, n: u8) -> sock_filter {
    sock_filter {
        code: JMP | JEQ | K,
        jt: n,
        jf: 0,
        k,
    }
}

fn accept() -> sock_filter {
    op(RET | K, SNAPLEN)
}

fn drop() -> sock_filter {
    op(RET | K, 0)
}

/// Each port: `if A == port return the packet`.
fn ports_test(out: &mut Vec<sock_filter>, ports: &[u16]) {
    for port in ports {
        out.push(is(u32::from(*port)));
        out.push(accept());
    }
}

/// Each port: `if A == port drop the packet`.
fn ports_refused(out: &mut Vec<sock_filter>, ports: &[u16]) {
    for port in ports {
        out.push(is(u32::from(*port)));
        out.push(drop());
    }
}

/// A family's port tests, its source port loaded and its destination port loaded by `load_dst`:
/// the packets of these ports, or in the wide mode of every port but the bridge's own.
fn by_port(out: &mut Vec<sock_filter>, ports: &[u16], wide: Option<&[u16]>, load_dst: sock_filter) {
    match wide {
        None => {
            ports_test(out, ports);
            out.push(load_dst);
            ports_test(out, ports);
            out.push(drop());
        }
        Some(own) => {
            ports_refused(out, own);
            out.push(load_dst);
            ports_refused(out, own);
            out.push(accept());
        }
    }
}

/// The filter for these ports (at most [`MAX_PORTS`]; more are left out). `lan`: the socket
/// is bound to every interface, and this is loopback's index (its outgoing copies are the
/// ones dropped; other Ethernet interfaces show a packet once either way). `wide`: programs
/// are traced, so every port is kept but these (the bridge's own; at most [`MAX_OWN`]); on
/// loopback alone, never with `lan`.
pub(crate) fn program(ports: &[u16], lan: Option<u32>, wide: Option<&[u16]>) -> Vec<sock_filter> {
    let ports = &ports[..ports.len().min(MAX_PORTS)];
    let wide = wide
        .filter(|_| lan.is_none())
        .map(|own| &own[..own.len().min(MAX_OWN)]);
    let mut p = match lan {
        None => vec![
            // Loopback shows each packet twice: keep the copy that arrives.
            op(LD | W | ABS, SKF_AD_PKTTYPE),
            is(PACKET_OUTGOING),
            drop(),
        ],
        Some(lo) => vec![
            // Ethernet framing only (a tunnel's raw IP would be misread).
            op(LD | W | ABS, SKF_AD_HATYPE),
            skip_if(ARPHRD_ETHER, 2),
            skip_if(ARPHRD_LOOPBACK, 1),
            drop(),
            // Loopback's outgoing copy is dropped; elsewhere it is the packet sent.
            op(LD | W | ABS, SKF_AD_PKTTYPE),
            sock_filter {
                code: JMP | JEQ | K,
                jt: 0,
                jf: 3,
                k: PACKET_OUTGOING,
            },
            op(LD | W | ABS, SKF_AD_IFINDEX),
            is(lo),
            drop(),
        ],
    };
    let to_v6 = p.len() + 2;
    p.extend([
        op(LD | H | ABS, 12),
        is(0x86dd),
        op(0, 0), // patched below: `ja` to the IPv6 part
        skip_if(0x0800, 1),
        drop(),
        // IPv4: ICMP is kept; TCP and UDP by port, unfragmented only.
        op(LD | B | ABS, 23),
        is(1),
        accept(),
        skip_if(6, 2),
        skip_if(17, 1),
        drop(),
        op(LD | H | ABS, 20),
        sock_filter {
            code: JMP | JSET | K,
            jt: 0,
            jf: 1,
            k: 0x1fff,
        },
        drop(),
        op(LDX | B | MSH, 14),
        op(LD | H | IND, 14),
    ]);
    by_port(&mut p, ports, wide, op(LD | H | IND, 16));
    // IPv6 without extension headers (what loopback sockets send): ICMPv6 kept, TCP and UDP
    // by port.
    let v6 = p.len();
    p[to_v6] = op(JMP | JA, (v6 - to_v6 - 1) as u32);
    p.extend([
        op(LD | B | ABS, 20),
        is(58),
        accept(),
        skip_if(6, 2),
        skip_if(17, 1),
        drop(),
        op(LD | H | ABS, 54),
    ]);
    by_port(&mut p, ports, wide, op(LD | H | ABS, 56));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_jump_lands_inside_the_program() {
        let own: Vec<u16> = (40000..40000 + MAX_OWN as u16 + 3).collect();
        for (n, lan, wide) in [0usize, 1, 5, MAX_PORTS, MAX_PORTS + 10]
            .into_iter()
            .flat_map(|n| {
                [
                    (n, None, None),
                    (n, Some(1), None),
                    (n, None, Some(&own[..1])),
                    (n, None, Some(&own[..])),
                    (n, Some(1), Some(&own[..])),
                ]
            })
        {
            let ports: Vec<u16> = (1000..1000 + n as u16).collect();
            let p = program(&ports, lan, wide);
            assert!(p.len() <= 4096, "{n} ports: {} instructions", p.len());
            for (i, ins) in p.iter().enumerate() {
                if ins.code & 0x07 == JMP {
                    let far = if ins.code & 0xf0 == JA {
                        ins.k as usize
                    } else {
                        usize::from(ins.jt.max(ins.jf))
                    };
                    assert!(i + 1 + far < p.len(), "jump at {i} leaves the program");
                }
            }
            assert_eq!(p.last().map(|i| i.code), Some(RET | K));
            // The long jump lands on the IPv6 part's first load (of the next header).
            let ja = p.iter().position(|i| i.code == JMP | JA).unwrap();
            let target = &p[ja + 1 + p[ja].k as usize];
            assert_eq!((target.code, target.k), (LD | B | ABS, 20));
            // Wide (loopback only): the bridge's own ports are the only ones tested, and
            // each family ends by keeping the packet.
            let tested = |k: u32| p.iter().any(|i| i.code == JMP | JEQ | K && i.k == k);
            if wide.is_some() && lan.is_none() {
                assert!(tested(40000) && !tested(40000 + MAX_OWN as u32));
                assert!(
                    !tested(1000),
                    "watched ports need no test when all are kept"
                );
                assert_eq!(p.last().map(|i| i.k), Some(SNAPLEN));
            } else {
                assert!(!tested(40000) && (n == 0 || tested(1000)));
                assert_eq!(p.last().map(|i| i.k), Some(0));
            }
        }
    }
}
