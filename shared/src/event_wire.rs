//! How an [`Event`] is read from JSON. The wire format is the derived one (the kind's fields
//! flattened next to the common ones); reading it through a plain struct of optional fields
//! instead of serde's flatten-plus-internal-tag machinery gives the same result with far less
//! code, which matters in the WebAssembly page that reads 100,000 of them.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::{
    ClosedBy, ConnId, DatagramReport, Direction, EndpointId, EndpointSpec, ErrorInfo, Event,
    EventKind, Payload, TransferReport,
};

/// Every field any kind of event may carry.
#[derive(Deserialize)]
struct Wire {
    seq: u64,
    t_us: u64,
    endpoint: EndpointId,
    #[serde(default)]
    conn: Option<ConnId>,
    #[serde(default)]
    local: Option<String>,
    #[serde(default)]
    peer: Option<String>,
    kind: String,
    #[serde(default)]
    spec: Option<EndpointSpec>,
    #[serde(default)]
    backlog: Option<u32>,
    #[serde(default)]
    waiting: Option<u32>,
    #[serde(default)]
    data: Option<Payload>,
    #[serde(default)]
    rtt_us: Option<u64>,
    #[serde(default)]
    by: Option<ClosedBy>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    op: Option<String>,
    #[serde(default)]
    after_ms: Option<u64>,
    #[serde(default)]
    error: Option<ErrorInfo>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    bytes: Option<u64>,
    #[serde(default)]
    total: Option<u64>,
    #[serde(default)]
    direction: Option<Direction>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    duration_us: Option<u64>,
    #[serde(default)]
    complete: Option<bool>,
    #[serde(default)]
    datagrams: Option<DatagramReport>,
    #[serde(default)]
    plaintext: Option<Payload>,
    #[serde(default)]
    ok: Option<bool>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    members: Option<u32>,
}

/// A field the wire struct must have had for this kind of value (`what`: "recv event", ...).
pub(crate) fn need<T>(value: Option<T>, what: &str, field: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("a {what} needs `{field}`"))
}

impl Wire {
    fn into_event(self) -> Result<Event, String> {
        // Only an error formats anything: this runs for every event the page reads.
        let k = self.kind.as_str();
        let kind = match k {
            "socket" => EventKind::Socket {
                spec: need(self.spec, k, "spec")?,
            },
            "bind" => EventKind::Bind,
            "listen" => EventKind::Listen {
                backlog: need(self.backlog, k, "backlog")?,
            },
            "backlog" => EventKind::Backlog {
                waiting: need(self.waiting, k, "waiting")?,
            },
            "accept" => EventKind::Accept,
            "connecting" => EventKind::Connecting,
            "connect" => EventKind::Connect,
            "send" => EventKind::Send {
                data: need(self.data, k, "data")?,
            },
            "recv" => EventKind::Recv {
                data: need(self.data, k, "data")?,
                rtt_us: self.rtt_us,
            },
            "send_to" => EventKind::SendTo {
                data: need(self.data, k, "data")?,
            },
            "recv_from" => EventKind::RecvFrom {
                data: need(self.data, k, "data")?,
                rtt_us: self.rtt_us,
            },
            "eof" => EventKind::Eof,
            "shutdown" => EventKind::Shutdown,
            "close" => EventKind::Close {
                by: need(self.by, k, "by")?,
                reason: need(self.reason, k, "reason")?,
            },
            "timeout" => EventKind::Timeout {
                op: need(self.op, k, "op")?,
                after_ms: need(self.after_ms, k, "after_ms")?,
            },
            "error" => EventKind::Error {
                op: need(self.op, k, "op")?,
                error: need(self.error, k, "error")?,
            },
            "reset" => EventKind::Reset,
            "progress" => EventKind::Progress {
                file: need(self.file, k, "file")?,
                bytes: need(self.bytes, k, "bytes")?,
                total: self.total,
            },
            "transfer" => EventKind::Transfer(TransferReport {
                direction: need(self.direction, k, "direction")?,
                file: need(self.file, k, "file")?,
                bytes: need(self.bytes, k, "bytes")?,
                sha256: need(self.sha256, k, "sha256")?,
                duration_us: need(self.duration_us, k, "duration_us")?,
                complete: need(self.complete, k, "complete")?,
                datagrams: self.datagrams,
            }),
            "encrypted" => EventKind::Encrypted {
                plaintext: need(self.plaintext, k, "plaintext")?,
            },
            "decrypted" => EventKind::Decrypted {
                plaintext: need(self.plaintext, k, "plaintext")?,
            },
            "auth" => EventKind::Auth {
                ok: need(self.ok, k, "ok")?,
                detail: need(self.detail, k, "detail")?,
            },
            "fetch" => EventKind::Fetch {
                url: need(self.url, k, "url")?,
                status: need(self.status, k, "status")?,
                bytes: need(self.bytes, k, "bytes")? as usize,
            },
            "impaired" => EventKind::Impaired {
                action: need(self.action, k, "action")?,
                bytes: need(self.bytes, k, "bytes")? as usize,
            },
            "tcp_state" => EventKind::TcpState {
                state: need(self.state, k, "state")?,
            },
            "relayed" => EventKind::Relayed {
                data: need(self.data, k, "data")?,
                members: need(self.members, k, "members")?,
            },
            other => return Err(format!("unknown event kind `{other}`")),
        };
        Ok(Event {
            seq: self.seq,
            t_us: self.t_us,
            endpoint: self.endpoint,
            conn: self.conn,
            local: self.local,
            peer: self.peer,
            kind,
        })
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Wire::deserialize(deserializer)?
            .into_event()
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            EventKind::Reset,
        ];
        for kind in kinds {
            let event = Event {
                seq: 1,
                t_us: 2,
                endpoint: 3,
                conn: Some(4),
                local: Some("127.0.0.1:1".into()),
                peer: None,
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
