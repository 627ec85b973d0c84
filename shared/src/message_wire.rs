//! How [`ServerMessage`], [`Reply`] and [`ReplyData`] are read from JSON. The wire format is the
//! derived one (an internal `type`/`kind` tag, the reply's `ok`/`error` flattened); reading it
//! through plain structs of optional fields avoids serde's buffering of whole messages (a batch
//! of a thousand events was copied into an intermediate tree before), and keeps that machinery
//! out of the WebAssembly page.

use serde::de::{Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::event_wire::need;
use crate::{
    CompareReport, ConnInfo, DatagramReport, Direction, EndpointId, EndpointInfo, EndpointSpec,
    ErrorInfo, Event, FileInfo, FileRace, Limits, Outcome, Reply, ReplyData, RoundTrips, Scope,
    ServerMessage, Snapshot, TransferReport, Welcome,
};

#[derive(Deserialize)]
struct ServerWire {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    protocol: Option<u32>,
    #[serde(default)]
    bridge_version: Option<String>,
    #[serde(default)]
    started_unix_ms: Option<u64>,
    #[serde(default)]
    now_us: Option<u64>,
    #[serde(default)]
    scope: Option<Scope>,
    #[serde(default)]
    limits: Option<Limits>,
    #[serde(default)]
    snapshot: Option<Snapshot>,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    ok: Option<ReplyData>,
    #[serde(default)]
    error: Option<ErrorInfo>,
    #[serde(default)]
    events: Option<Vec<Event>>,
    #[serde(default)]
    count: Option<u64>,
}

fn outcome(ok: Option<ReplyData>, error: Option<ErrorInfo>) -> Result<Outcome, String> {
    match (ok, error) {
        (Some(data), None) => Ok(Outcome::Ok(data)),
        (None, Some(error)) => Ok(Outcome::Error(error)),
        _ => Err("a reply needs exactly one of `ok` and `error`".into()),
    }
}

impl ServerWire {
    fn into_message(self) -> Result<ServerMessage, String> {
        let k = self.kind.as_str();
        Ok(match k {
            "welcome" => ServerMessage::Welcome(Box::new(Welcome {
                protocol: need(self.protocol, k, "protocol")?,
                bridge_version: need(self.bridge_version, k, "bridge_version")?,
                started_unix_ms: need(self.started_unix_ms, k, "started_unix_ms")?,
                now_us: need(self.now_us, k, "now_us")?,
                scope: need(self.scope, k, "scope")?,
                limits: need(self.limits, k, "limits")?,
                snapshot: need(self.snapshot, k, "snapshot")?,
            })),
            "reply" => ServerMessage::Reply(Reply {
                id: self.id,
                outcome: outcome(self.ok, self.error)?,
            }),
            "events" => ServerMessage::Events {
                events: need(self.events, k, "events")?,
            },
            "missed" => ServerMessage::Missed {
                count: need(self.count, k, "count")?,
            },
            "fatal" => ServerMessage::Fatal {
                error: need(self.error, k, "error")?,
            },
            other => return Err(format!("unknown message type `{other}`")),
        })
    }
}

impl<'de> Deserialize<'de> for ServerMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ServerWire::deserialize(deserializer)?
            .into_message()
            .map_err(D::Error::custom)
    }
}

#[derive(Deserialize)]
struct ReplyWire {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    ok: Option<ReplyData>,
    #[serde(default)]
    error: Option<ErrorInfo>,
}

impl<'de> Deserialize<'de> for Reply {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = ReplyWire::deserialize(deserializer)?;
        Ok(Reply {
            id: wire.id,
            outcome: outcome(wire.ok, wire.error).map_err(D::Error::custom)?,
        })
    }
}

/// `file` is a name in transfer reports and programs, and the file race of a comparison.
enum FileField {
    Name(String),
    Race(FileRace),
}

impl<'de> Deserialize<'de> for FileField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = FileField;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a file name or a file race")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<FileField, E> {
                Ok(FileField::Name(name.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FileField, A::Error> {
                FileRace::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(FileField::Race)
            }
        }
        deserializer.deserialize_any(Either)
    }
}

#[derive(Deserialize)]
struct ReplyDataWire {
    kind: String,
    #[serde(default)]
    id: Option<EndpointId>,
    #[serde(default)]
    spec: Option<EndpointSpec>,
    #[serde(default)]
    local: Option<String>,
    #[serde(default)]
    peer: Option<String>,
    #[serde(default)]
    connections: Vec<ConnInfo>,
    #[serde(default)]
    bytes: Option<u64>,
    #[serde(default)]
    closed: Option<usize>,
    #[serde(default)]
    direction: Option<Direction>,
    #[serde(default)]
    file: Option<FileField>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    duration_us: Option<u64>,
    #[serde(default)]
    complete: Option<bool>,
    #[serde(default)]
    datagrams: Option<DatagramReport>,
    #[serde(default)]
    tcp: Option<RoundTrips>,
    #[serde(default)]
    udp: Option<RoundTrips>,
    #[serde(default)]
    upload: Option<u64>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    files: Option<Vec<FileInfo>>,
}

impl ReplyDataWire {
    fn file_name(&mut self, what: &str) -> Result<String, String> {
        match self.file.take() {
            Some(FileField::Name(name)) => Ok(name),
            _ => Err(format!("a {what} reply needs a `file` name")),
        }
    }

    fn into_data(mut self) -> Result<ReplyData, String> {
        let kind = std::mem::take(&mut self.kind);
        let k = kind.as_str();
        Ok(match k {
            "endpoint" => ReplyData::Endpoint(EndpointInfo {
                id: need(self.id, k, "id")?,
                spec: need(self.spec, k, "spec")?,
                local: self.local,
                peer: self.peer,
                connections: self.connections,
            }),
            "sent" => ReplyData::Sent {
                bytes: need(self.bytes, k, "bytes")? as usize,
            },
            "done" => ReplyData::Done,
            "reset" => ReplyData::Reset {
                closed: need(self.closed, k, "closed")?,
            },
            "transfer" => ReplyData::Transfer(TransferReport {
                file: self.file_name(k)?,
                direction: need(self.direction, k, "direction")?,
                bytes: need(self.bytes, k, "bytes")?,
                sha256: need(self.sha256, k, "sha256")?,
                duration_us: need(self.duration_us, k, "duration_us")?,
                complete: need(self.complete, k, "complete")?,
                datagrams: self.datagrams,
            }),
            "compare" => ReplyData::Compare(Box::new(CompareReport {
                tcp: need(self.tcp, k, "tcp")?,
                udp: need(self.udp, k, "udp")?,
                file: match self.file {
                    Some(FileField::Race(race)) => Some(race),
                    _ => None,
                },
            })),
            "upload" => ReplyData::Upload {
                upload: need(self.upload, k, "upload")?,
            },
            "uploaded" => ReplyData::Uploaded {
                bytes: need(self.bytes, k, "bytes")?,
                sha256: self.sha256,
            },
            "program" => ReplyData::Program {
                file: self.file_name(k)?,
                code: need(self.code, k, "code")?,
            },
            "key" => ReplyData::Key {
                key: need(self.key, k, "key")?,
            },
            "files" => ReplyData::Files {
                files: need(self.files, k, "files")?,
            },
            other => return Err(format!("unknown reply kind `{other}`")),
        })
    }
}

impl<'de> Deserialize<'de> for ReplyData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ReplyDataWire::deserialize(deserializer)?
            .into_data()
            .map_err(D::Error::custom)
    }
}
