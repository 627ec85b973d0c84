//! How [`ServerMessage`], [`Reply`] and [`ReplyData`] and what they carry are read from JSON.
//! The wire format is the derived one (an internal `type`/`kind` tag, the reply's `ok`/`error`
//! flattened), read with plain field reads ([`crate::json`]), the same in the page and in
//! native viewers.

use crate::json::{Fields, FromJson, Json};
use crate::{
    CheckInfo, CompareReport, ConnInfo, EndpointInfo, FileInfo, FileRace, Limits, Outcome,
    Recording, Reply, ReplyData, RoundTrips, Scope, ServerMessage, Snapshot, Spread,
    TransferReport, Welcome,
};

/// A reply's outcome: exactly one of `ok` and `error`.
fn outcome(f: &mut Fields<'_>) -> Result<Outcome, String> {
    match (f.opt("ok")?, f.opt("error")?) {
        (Some(data), None) => Ok(Outcome::Ok(data)),
        (None, Some(error)) => Ok(Outcome::Error(error)),
        _ => Err("a reply needs exactly one of `ok` and `error`".into()),
    }
}

impl FromJson for ServerMessage {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        let kind = f.tag("type")?;
        let k = &*kind;
        (|| {
            Ok(match k {
                "welcome" => ServerMessage::Welcome(Box::new(Welcome {
                    protocol: f.req("protocol")?,
                    bridge_version: f.req("bridge_version")?,
                    started_unix_ms: f.req("started_unix_ms")?,
                    now_us: f.req("now_us")?,
                    scope: f.req("scope")?,
                    limits: f.req("limits")?,
                    data_dir: f.or("data_dir", String::new)?,
                    capture: f.opt("capture")?,
                    snapshot: f.req("snapshot")?,
                })),
                "reply" => ServerMessage::Reply(Reply {
                    id: f.opt("id")?,
                    outcome: outcome(&mut f)?,
                }),
                "events" => ServerMessage::Events {
                    events: f.req("events")?,
                },
                "missed" => ServerMessage::Missed {
                    count: f.req("count")?,
                },
                "fatal" => ServerMessage::Fatal {
                    error: f.req("error")?,
                },
                other => return Err(format!("unknown message type `{other}`")),
            })
        })()
        .map_err(|e: String| format!("a {k} message {e}"))
    }
}

impl FromJson for Reply {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        Ok(Reply {
            id: f.opt("id")?,
            outcome: outcome(&mut f)?,
        })
    }
}

impl FromJson for ReplyData {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        let kind = f.tag("kind")?;
        let k = &*kind;
        (|| {
            Ok(match k {
                "endpoint" => ReplyData::Endpoint(EndpointInfo::from_fields(&mut f)?),
                "sent" => ReplyData::Sent {
                    bytes: f.req("bytes")?,
                },
                "done" => ReplyData::Done,
                "reset" => ReplyData::Reset {
                    closed: f.req("closed")?,
                },
                "transfer" => ReplyData::Transfer(TransferReport::from_fields(&mut f)?),
                "compare" => ReplyData::Compare(Box::new(CompareReport {
                    tcp: f.req("tcp")?,
                    udp: f.req("udp")?,
                    file: f.opt("file")?,
                })),
                "upload" => ReplyData::Upload {
                    upload: f.req("upload")?,
                },
                "uploaded" => ReplyData::Uploaded {
                    bytes: f.req("bytes")?,
                    sha256: f.opt("sha256")?,
                },
                "program" => ReplyData::Program {
                    file: f.req("file")?,
                    code: f.req("code")?,
                },
                "key" => ReplyData::Key { key: f.req("key")? },
                "files" => ReplyData::Files {
                    files: f.req("files")?,
                },
                "capture" => ReplyData::Capture {
                    file: f.req("file")?,
                    packets: f.req("packets")?,
                    captured: f.req("captured")?,
                    dropped: f.req("dropped")?,
                },
                "checks" => ReplyData::Checks {
                    checks: f.req("checks")?,
                },
                "check" => ReplyData::Check {
                    lab: f.req("lab")?,
                    passed: f.req("passed")?,
                    total: f.req("total")?,
                },
                other => return Err(format!("unknown reply kind `{other}`")),
            })
        })()
        .map_err(|e: String| format!("a {k} reply {e}"))
    }
}

impl EndpointInfo {
    fn from_fields(f: &mut Fields<'_>) -> Result<Self, String> {
        Ok(EndpointInfo {
            id: f.req("id")?,
            spec: f.req("spec")?,
            local: f.opt("local")?,
            peer: f.opt("peer")?,
            connections: f.or("connections", Vec::new)?,
        })
    }
}

impl FromJson for EndpointInfo {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        EndpointInfo::from_fields(&mut Fields::of(value)?)
    }
}

impl FromJson for TransferReport {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        TransferReport::from_fields(&mut Fields::of(value)?)
    }
}

impl FromJson for ConnInfo {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        Ok(ConnInfo {
            id: f.req("id")?,
            peer: f.req("peer")?,
            local: f.req("local")?,
        })
    }
}

impl FromJson for Limits {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        Ok(Limits {
            max_message_bytes: f.req("max_message_bytes")?,
            max_frame_bytes: f.req("max_frame_bytes")?,
            max_endpoints: f.req("max_endpoints")?,
            max_connections_per_server: f.req("max_connections_per_server")?,
            history_events: f.req("history_events")?,
        })
    }
}

impl FromJson for Snapshot {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        Ok(Snapshot {
            endpoints: f.req("endpoints")?,
            events: f.req("events")?,
            history_dropped: f.req("history_dropped")?,
        })
    }
}

impl FromJson for FileInfo {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        Ok(FileInfo {
            name: f.req("name")?,
            bytes: f.req("bytes")?,
            modified_unix_ms: f.req("modified_unix_ms")?,
        })
    }
}

impl FromJson for crate::CaptureStatus {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        Ok(crate::CaptureStatus {
            on: f.req("on")?,
            detail: f.req("detail")?,
            hint: f.opt("hint")?,
        })
    }
}

impl FromJson for CheckInfo {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        Ok(CheckInfo {
            lab: f.req("lab")?,
            title: f.req("title")?,
            about: f.req("about")?,
            program: f.req("program")?,
            transport: f.req("transport")?,
            port: f.req("port")?,
        })
    }
}

impl FromJson for RoundTrips {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        Ok(RoundTrips {
            messages: f.req("messages")?,
            size: f.req("size")?,
            lost: f.req("lost")?,
            rtt_us: f.req("rtt_us")?,
            samples_us: f.req("samples_us")?,
            duration_us: f.req("duration_us")?,
            bytes_per_second: f.req("bytes_per_second")?,
        })
    }
}

impl FromJson for Spread {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        Ok(Spread {
            min: f.req("min")?,
            p50: f.req("p50")?,
            p90: f.req("p90")?,
            p99: f.req("p99")?,
            max: f.req("max")?,
            mean: f.req("mean")?,
        })
    }
}

impl FromJson for FileRace {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        Ok(FileRace {
            bytes: f.req("bytes")?,
            tcp_duration_us: f.req("tcp_duration_us")?,
            tcp_bytes_per_second: f.req("tcp_bytes_per_second")?,
            udp_duration_us: f.req("udp_duration_us")?,
            udp_datagrams_sent: f.req("udp_datagrams_sent")?,
            udp_datagrams_received: f.req("udp_datagrams_received")?,
            udp_bytes_received: f.req("udp_bytes_received")?,
            udp_bytes_per_second: f.req("udp_bytes_per_second")?,
        })
    }
}

impl FromJson for Recording {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        Ok(Recording {
            format: f.req("format")?,
            protocol: f.req("protocol")?,
            started_unix_ms: f.req("started_unix_ms")?,
            events: f.req("events")?,
        })
    }
}

crate::json_names!(Scope {
    "loopback" => Scope::Loopback,
    "lan" => Scope::Lan,
});

crate::via_json!(
    ServerMessage,
    Reply,
    ReplyData,
    EndpointInfo,
    TransferReport,
    ConnInfo,
    Limits,
    Snapshot,
    FileInfo,
    RoundTrips,
    Spread,
    FileRace,
    Recording,
    Scope,
);
