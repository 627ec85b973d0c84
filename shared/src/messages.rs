//! The messages themselves, grouped by direction: [`ClientMessage`] into the bridge,
//! [`ServerMessage`] out of it.

use serde::{Deserialize, Serialize};

use crate::{Command, ConnId, EndpointId, EndpointSpec, ErrorInfo, Event};

/// A message from a client (the page, a test, a script) to the bridge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Must be the first message of a session.
    Hello(Hello),
    /// Everything after the hello.
    Request(Request),
}

/// Opens a session: the protocol version the client speaks and the bridge's token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Must equal [`crate::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The per-run secret the bridge printed (in the URL's fragment).
    pub token: String,
    /// Free text naming the client, for the bridge's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Whether this session is sent events (the default). `bridge trace`, which only reports,
    /// says `false`: its welcome carries no history, and it gets replies only.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub watch: bool,
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

/// The token is a secret: it never appears in a log line through `Debug`.
impl std::fmt::Debug for Hello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hello")
            .field("protocol", &self.protocol)
            .field("token", &"<redacted>")
            .field("client", &self.client)
            .field("watch", &self.watch)
            .finish()
    }
}

/// A command with the id its reply will carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the client; echoed in the one reply.
    pub id: u64,
    /// What to do.
    pub command: Command,
}

/// A message from the bridge to a client (read from JSON by `message_wire`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to a good hello: who the bridge is and what it runs now.
    Welcome(Box<Welcome>),
    /// The one reply to a request.
    Reply(Reply),
    /// Events, oldest first, in a batch.
    Events {
        /// The events.
        events: Vec<Event>,
    },
    /// This viewer read too slowly and the bridge dropped events for it.
    Missed {
        /// How many events it did not get.
        count: u64,
    },
    /// The session is about to be closed for this reason (bad hello, shutdown).
    Fatal {
        /// Why.
        error: ErrorInfo,
    },
}

/// The bridge's greeting, with everything a newly connected viewer needs to draw the present.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Welcome {
    /// The protocol version the bridge speaks.
    pub protocol: u32,
    /// The bridge's version.
    pub bridge_version: String,
    /// Wall-clock time at which `t_us` was 0, in milliseconds since the Unix epoch: lets a view
    /// show absolute times.
    pub started_unix_ms: u64,
    /// The bridge's monotonic clock now, in microseconds.
    pub now_us: u64,
    /// Which addresses servers and clients may use.
    pub scope: Scope,
    /// The bridge's limits.
    pub limits: Limits,
    /// Where the data directory is (an absolute path, for the person: the page shows it in
    /// its Files tab); empty from a bridge that does not say.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data_dir: String,
    /// Whether the bridge captures its sockets' packets, and if not why (absent from a
    /// bridge that does not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<crate::CaptureStatus>,
    /// The endpoints alive now, and the recent events.
    pub snapshot: Snapshot,
}

/// The addresses the bridge lets endpoints use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// 127.0.0.0/8 and ::1 only (the default).
    Loopback,
    /// Also private and link-local addresses, and binding to all interfaces (`--allow-lan`).
    Lan,
}

/// Limits a client should know to stay within them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Largest WebSocket message the bridge accepts, in bytes.
    pub max_message_bytes: usize,
    /// Largest WebSocket frame the bridge accepts, in bytes.
    pub max_frame_bytes: usize,
    /// Most endpoints alive at once.
    pub max_endpoints: usize,
    /// Most accepted connections per server at once.
    pub max_connections_per_server: usize,
    /// How many recent events the bridge keeps for new viewers.
    pub history_events: usize,
}

/// What exists now, for a viewer that has just connected.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// Endpoints alive now.
    pub endpoints: Vec<EndpointInfo>,
    /// The most recent events, oldest first; live events follow on without a gap.
    pub events: Vec<Event>,
    /// How many older events the bridge no longer keeps.
    pub history_dropped: u64,
}

/// An endpoint as it is now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointInfo {
    /// Its id.
    pub id: EndpointId,
    /// The spec it was created with.
    pub spec: EndpointSpec,
    /// Its own address (with the real port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// Its peer, for a client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Accepted connections open now, for a TCP server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<ConnInfo>,
}

/// One accepted connection of a TCP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnInfo {
    /// Its id.
    pub id: ConnId,
    /// The client's address and ephemeral port.
    pub peer: String,
    /// The server side's address.
    pub local: String,
}

/// The one reply to a [`Request`] (read from JSON by `message_wire`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reply {
    /// The request's id; `None` when the request was too malformed to have one.
    pub id: Option<u64>,
    /// What came of it.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Success with data, or a typed error.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It worked.
    Ok(ReplyData),
    /// It did not.
    Error(ErrorInfo),
}

/// What a successful command returns (read from JSON by `message_wire`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReplyData {
    /// The endpoint a start/connect/open command created.
    Endpoint(EndpointInfo),
    /// How many bytes a send handed to the OS.
    Sent {
        /// Bytes sent.
        bytes: usize,
    },
    /// Done; nothing to add.
    Done,
    /// What a reset closed.
    Reset {
        /// How many endpoints were closed.
        closed: usize,
    },
    /// How a file transfer went, from the sender's side.
    Transfer(crate::TransferReport),
    /// What a comparison measured.
    Compare(Box<crate::CompareReport>),
    /// An upload was opened.
    Upload {
        /// Names it in `upload_chunk` and `upload_finish`.
        upload: u64,
    },
    /// How many bytes an upload has so far (after a chunk), or holds (after finishing, with
    /// its SHA-256).
    Uploaded {
        bytes: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
    },
    /// A Python program mirroring an endpoint.
    Program {
        /// A file name to save it under.
        file: String,
        /// The program.
        code: String,
    },
    /// A new Fernet key.
    Key {
        /// 32 random bytes, URL-safe base64, as `Fernet.generate_key()` makes them.
        key: String,
    },
    /// The files in the data directory.
    Files {
        /// Sorted by name.
        files: Vec<FileInfo>,
    },
    /// The captured packets were saved (`capture_save`).
    Capture {
        /// The pcapng file in the data directory.
        file: String,
        /// How many packets it holds.
        packets: u64,
        /// Packets captured since the bridge started.
        captured: u64,
        /// Packets the kernel dropped before the bridge could read them, since it started.
        dropped: u64,
    },
    /// The checks there are (`check_list`).
    Checks {
        /// In the order `bridge check --list` prints them.
        checks: Vec<CheckInfo>,
    },
    /// How a check went (`check_run`); its steps came as `check_step` events.
    Check {
        /// The check's name.
        lab: String,
        /// Steps that passed.
        passed: u32,
        /// Steps in all.
        total: u32,
    },
}

/// One check a lab has (`check_list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckInfo {
    /// Its name, for `check_run`.
    pub lab: String,
    /// A title for people.
    pub title: String,
    /// What the handout asks the program to do.
    pub about: String,
    /// `server` (the checker's clients connect to it) or `client` (the checker is its server).
    pub program: String,
    /// `tcp` or `udp`.
    pub transport: String,
    /// The handout's port.
    pub port: u16,
}

/// A file in the bridge's data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileInfo {
    /// Its name (files live directly in the data directory).
    pub name: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// When it last changed, in milliseconds since the Unix epoch.
    pub modified_unix_ms: u64,
}
