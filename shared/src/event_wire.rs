//! How an [`Event`] is read from JSON. The wire format is the derived one (the kind's fields
//! flattened next to the common ones, `kind` naming the variant), read with plain field reads
//! ([`crate::json`]): the WebAssembly page reads 100,000 of them.

use crate::json::{Fields, FromJson, Json};
use crate::{
    ClosedBy, DatagramReport, Direction, ErrorInfo, ErrorKind, Event, EventKind, Payload,
    TransferEnd, TransferReport,
};

impl FromJson for Event {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        let kind = f.tag("kind")?;
        // Only an error formats anything: this runs for every event the page reads.
        let k = &*kind;
        let event_kind = (|| {
            Ok(match k {
                "socket" => EventKind::Socket {
                    spec: f.req("spec")?,
                },
                "bind" => EventKind::Bind,
                "listen" => EventKind::Listen {
                    backlog: f.req("backlog")?,
                },
                "backlog" => EventKind::Backlog {
                    waiting: f.req("waiting")?,
                },
                "accept" => EventKind::Accept,
                "connecting" => EventKind::Connecting,
                "connect" => EventKind::Connect,
                "send" => EventKind::Send {
                    data: f.req("data")?,
                },
                "recv" => EventKind::Recv {
                    data: f.req("data")?,
                    rtt_us: f.opt("rtt_us")?,
                },
                "send_to" => EventKind::SendTo {
                    data: f.req("data")?,
                },
                "recv_from" => EventKind::RecvFrom {
                    data: f.req("data")?,
                    rtt_us: f.opt("rtt_us")?,
                },
                "eof" => EventKind::Eof,
                "shutdown" => EventKind::Shutdown,
                "close" => EventKind::Close {
                    by: f.req("by")?,
                    reason: f.req("reason")?,
                },
                "timeout" => EventKind::Timeout {
                    op: f.req("op")?,
                    after_ms: f.req("after_ms")?,
                },
                "error" => EventKind::Error {
                    op: f.req("op")?,
                    error: f.req("error")?,
                },
                "reset" => EventKind::Reset,
                "progress" => EventKind::Progress {
                    file: f.req("file")?,
                    bytes: f.req("bytes")?,
                    total: f.opt("total")?,
                },
                "transfer" => EventKind::Transfer(TransferReport::from_fields(&mut f)?),
                "packet" => EventKind::Packet(Box::new(crate::PacketInfo {
                    proto: f.req("proto")?,
                    dir: f.req("dir")?,
                    wire_us: f.req("wire_us")?,
                    src: f.req("src")?,
                    dst: f.req("dst")?,
                    flags: f.or("flags", String::new)?,
                    tcp_seq: f.opt("tcp_seq")?,
                    tcp_ack: f.opt("tcp_ack")?,
                    window: f.opt("window")?,
                    options: f.or("options", String::new)?,
                    data: f.req("data")?,
                    detail: f.or("detail", String::new)?,
                })),
                "encrypted" => EventKind::Encrypted {
                    plaintext: f.req("plaintext")?,
                },
                "decrypted" => EventKind::Decrypted {
                    plaintext: f.req("plaintext")?,
                },
                "auth" => EventKind::Auth {
                    ok: f.req("ok")?,
                    detail: f.req("detail")?,
                },
                "fetch" => EventKind::Fetch {
                    url: f.req("url")?,
                    status: f.req("status")?,
                    bytes: f.req("bytes")?,
                },
                "fetch_step" => EventKind::FetchStep {
                    step: f.req("step")?,
                    detail: f.req("detail")?,
                },
                "impaired" => EventKind::Impaired {
                    action: f.req("action")?,
                    bytes: f.req("bytes")?,
                },
                "tcp_state" => EventKind::TcpState {
                    state: f.req("state")?,
                },
                "tcp_counters" => EventKind::TcpCounters(crate::TcpCounters {
                    segs_out: f.req("segs_out")?,
                    segs_in: f.req("segs_in")?,
                    retransmits: f.req("retransmits")?,
                    bytes_acked: f.req("bytes_acked")?,
                    bytes_received: f.req("bytes_received")?,
                    window: f.req("window")?,
                    rtt_us: f.req("rtt_us")?,
                }),
                "relayed" => EventKind::Relayed {
                    data: f.req("data")?,
                    members: f.req("members")?,
                },
                "waiting" => EventKind::Waiting { op: f.req("op")? },
                "call" => EventKind::Call {
                    op: f.req("op")?,
                    detail: f.req("detail")?,
                },
                "output" => EventKind::Output {
                    stream: f.req("stream")?,
                    data: f.req("data")?,
                    read_us: f.opt("read_us")?,
                },
                "exit" => EventKind::Exit {
                    code: f.opt("code")?,
                    signal: f.opt("signal")?,
                    detail: f.req("detail")?,
                },
                "dropped" => EventKind::Dropped {
                    what: f.req("what")?,
                    count: f.req("count")?,
                },
                "check_started" => EventKind::CheckStarted {
                    lab: f.req("lab")?,
                    title: f.req("title")?,
                    steps: f.req("steps")?,
                },
                "check_step" => EventKind::CheckStep {
                    index: f.req("index")?,
                    verdict: f.req("verdict")?,
                    explanation: f.req("explanation")?,
                },
                other => return Err(format!("unknown event kind `{other}`")),
            })
        })()
        .map_err(|e: String| format!("a {k} event {e}"))?;
        Ok(Event {
            seq: f.req("seq")?,
            t_us: f.req("t_us")?,
            endpoint: f.req("endpoint")?,
            conn: f.opt("conn")?,
            local: f.opt("local")?,
            peer: f.opt("peer")?,
            at: f.opt("at")?,
            kind: event_kind,
        })
    }
}

impl TransferReport {
    /// The report's members, from a transfer event or a transfer reply (whose `file` member is
    /// read by the caller when it can be something else).
    pub(crate) fn from_fields(f: &mut Fields<'_>) -> Result<Self, String> {
        Ok(TransferReport {
            direction: f.req("direction")?,
            file: f.req("file")?,
            bytes: f.req("bytes")?,
            sha256: f.req("sha256")?,
            duration_us: f.req("duration_us")?,
            complete: f.req("complete")?,
            datagrams: f.opt("datagrams")?,
            sync_us: f.opt("sync_us")?,
            ended: f.opt("ended")?,
        })
    }
}

impl FromJson for Payload {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        Ok(Payload {
            len: f.req("len")?,
            base64: f.req("base64")?,
            preview: f.req("preview")?,
            utf8: f.req("utf8")?,
            truncated: f.req("truncated")?,
            omitted: f.or("omitted", || 0)?,
        })
    }
}

impl FromJson for ErrorInfo {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        Ok(ErrorInfo {
            kind: f.req("kind")?,
            errno: f.opt("errno")?,
            os_message: f.opt("os_message")?,
            explanation: f.req("explanation")?,
            hint: f.opt("hint")?,
        })
    }
}

impl FromJson for DatagramReport {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        Ok(DatagramReport {
            expected: f.req("expected")?,
            received: f.req("received")?,
            missing: f.req("missing")?,
            out_of_order: f.req("out_of_order")?,
            duplicates: f.req("duplicates")?,
        })
    }
}

crate::json_names!(ClosedBy {
    "local" => ClosedBy::Local,
    "peer" => ClosedBy::Peer,
    "bridge" => ClosedBy::Bridge,
});

crate::json_names!(TransferEnd {
    "eof" => TransferEnd::Eof,
    "broken" => TransferEnd::Broken,
    "stopped" => TransferEnd::Stopped,
    "limit" => TransferEnd::Limit,
    "disk_error" => TransferEnd::DiskError,
    "all_datagrams" => TransferEnd::AllDatagrams,
    "quiet" => TransferEnd::Quiet,
});

crate::json_names!(Direction {
    "sent" => Direction::Sent,
    "received" => Direction::Received,
});

crate::json_names!(ErrorKind {
    "connection_refused" => ErrorKind::ConnectionRefused,
    "connection_reset" => ErrorKind::ConnectionReset,
    "connection_aborted" => ErrorKind::ConnectionAborted,
    "broken_pipe" => ErrorKind::BrokenPipe,
    "address_in_use" => ErrorKind::AddressInUse,
    "address_not_available" => ErrorKind::AddressNotAvailable,
    "permission_denied" => ErrorKind::PermissionDenied,
    "timed_out" => ErrorKind::TimedOut,
    "host_unreachable" => ErrorKind::HostUnreachable,
    "network_unreachable" => ErrorKind::NetworkUnreachable,
    "name_resolution_failed" => ErrorKind::NameResolutionFailed,
    "message_too_long" => ErrorKind::MessageTooLong,
    "not_allowed" => ErrorKind::NotAllowed,
    "limit_reached" => ErrorKind::LimitReached,
    "unknown_endpoint" => ErrorKind::UnknownEndpoint,
    "unsupported" => ErrorKind::Unsupported,
    "invalid_request" => ErrorKind::InvalidRequest,
    "unauthorized" => ErrorKind::Unauthorized,
    "version_mismatch" => ErrorKind::VersionMismatch,
    "other" => ErrorKind::Other,
});

crate::via_json!(
    Event,
    Payload,
    ErrorInfo,
    DatagramReport,
    ClosedBy,
    Direction,
    TransferEnd,
    ErrorKind
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CodeAt;

    #[test]
    fn every_kind_reads_back_what_was_written() {
        let payload = Payload::from_bytes(b"hi");
        let kinds = [
            EventKind::Bind,
            EventKind::Listen { backlog: 5 },
            EventKind::Backlog { waiting: 1 },
            EventKind::Relayed {
                data: payload.clone(),
                members: 9_999,
            },
            EventKind::Recv {
                data: payload.clone(),
                rtt_us: Some(87),
            },
            EventKind::RecvFrom {
                data: payload.clone(),
                rtt_us: None,
            },
            EventKind::Close {
                by: ClosedBy::Peer,
                reason: "bye".into(),
            },
            EventKind::Timeout {
                op: "recvfrom".into(),
                after_ms: 200,
            },
            EventKind::Progress {
                file: "f".into(),
                bytes: 3,
                total: None,
            },
            EventKind::Transfer(TransferReport {
                direction: Direction::Received,
                file: "f".into(),
                bytes: 3,
                sha256: "ab".into(),
                duration_us: 9,
                complete: false,
                datagrams: Some(DatagramReport {
                    expected: 2,
                    received: 1,
                    missing: 1,
                    out_of_order: 0,
                    duplicates: 0,
                }),
                sync_us: Some(7),
                ended: Some(TransferEnd::Eof),
            }),
            EventKind::Decrypted { plaintext: payload },
            EventKind::Auth {
                ok: false,
                detail: "no".into(),
            },
            EventKind::Fetch {
                url: "http://x/".into(),
                status: 200,
                bytes: 32,
            },
            EventKind::FetchStep {
                step: "tls".into(),
                detail: "TLS 1.3".into(),
            },
            EventKind::Reset,
            EventKind::Waiting {
                op: "accept".into(),
            },
            EventKind::Call {
                op: "settimeout".into(),
                detail: "settimeout(5.0)".into(),
            },
            EventKind::Output {
                stream: "stdout".into(),
                data: Payload::from_bytes(b"ready\n"),
                read_us: Some(1_234_000),
            },
            EventKind::Exit {
                code: Some(1),
                signal: None,
                detail: "exited with status 1".into(),
            },
            EventKind::Dropped {
                what: "console".into(),
                count: 7,
            },
            EventKind::TcpCounters(crate::TcpCounters {
                segs_out: 5,
                segs_in: 4,
                retransmits: 1,
                bytes_acked: 11,
                bytes_received: 10,
                window: 65483,
                rtt_us: 52,
            }),
            EventKind::Packet(Box::new(crate::PacketInfo {
                proto: "tcp".into(),
                dir: "out".into(),
                wire_us: 12,
                src: "127.0.0.1:5000".into(),
                dst: "127.0.0.1:12000".into(),
                flags: "SYN".into(),
                tcp_seq: Some(0),
                tcp_ack: None,
                window: Some(65495),
                options: "mss 65495, sack_ok, ts, wscale 7".into(),
                data: Payload::from_bytes(b""),
                detail: String::new(),
            })),
            EventKind::Packet(Box::new(crate::PacketInfo {
                proto: "icmp".into(),
                dir: "in".into(),
                wire_us: 13,
                src: "127.0.0.1".into(),
                dst: "127.0.0.1".into(),
                flags: String::new(),
                tcp_seq: None,
                tcp_ack: None,
                window: None,
                options: String::new(),
                data: Payload::from_bytes(b"x"),
                detail: "port unreachable".into(),
            })),
            EventKind::CheckStarted {
                lab: "kurose-uppercase-server".into(),
                title: "Kurose & Ross".into(),
                steps: vec!["connect client a".into(), "send \"hi\" from a".into()],
            },
            EventKind::CheckStep {
                index: 1,
                verdict: "failed".into(),
                explanation: "expected \"HI\" back, got \"hi\"".into(),
            },
        ];
        for (n, kind) in kinds.into_iter().enumerate() {
            let at = CodeAt {
                file: "tcp_server.py".into(),
                line: 15,
                code: "c, addr = s.accept()".into(),
                thread: "MainThread".into(),
                pid: 42,
                blocked_us: (n % 2 == 0).then_some(7),
                call_us: (n % 3 == 0).then_some(1),
            };
            let event = Event {
                seq: 1,
                t_us: 2,
                endpoint: 3,
                conn: Some(4),
                local: Some("127.0.0.1:1".into()),
                peer: None,
                at: (n % 3 == 0).then(|| Box::new(at)),
                kind,
            };
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(
                serde_json::from_str::<Event>(&json).unwrap(),
                event,
                "{json}"
            );
        }
        assert!(
            serde_json::from_str::<Event>(r#"{"seq":1,"t_us":1,"endpoint":1,"kind":"nope"}"#)
                .is_err()
        );
        assert!(
            serde_json::from_str::<Event>(r#"{"seq":1,"t_us":1,"endpoint":1,"kind":"recv"}"#)
                .is_err()
        );
    }
}
