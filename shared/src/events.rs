//! Events: one per socket call on every endpoint, in the order they happened.

use serde::Serialize;

use crate::{CodeAt, ConnId, EndpointId, EndpointSpec, ErrorInfo, Payload};

/// One thing that happened on a socket. Read from JSON by `event_wire`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Position in the bridge's event log, from 1, without gaps: a viewer can tell exactly what
    /// it missed.
    pub seq: u64,
    /// Microseconds since the bridge started, from a monotonic clock.
    pub t_us: u64,
    /// The endpoint (0: the bridge itself).
    pub endpoint: EndpointId,
    /// The accepted connection, for events on one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn: Option<ConnId>,
    /// The socket's own address, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// The address of the other side, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The line of code that made the call, for a traced program's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Box<CodeAt>>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    /// When it happened, to order calls and packets by: a packet when it crossed the wire, a
    /// traced program's call when it was made, a program's console line when the bridge read
    /// it, anything else when the bridge recorded it (`t_us` of those is when the bridge
    /// showed them, a little later).
    pub fn when(&self) -> u64 {
        match (&self.kind, &self.at) {
            (EventKind::Packet(p), _) => p.wire_us,
            (
                EventKind::Output {
                    read_us: Some(read),
                    ..
                },
                _,
            ) => *read,
            (_, Some(at)) => at.call_us.unwrap_or(self.t_us),
            _ => self.t_us,
        }
    }
}

/// Who ended a connection or endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosedBy {
    /// This endpoint chose to: a person's close, the quit word, the one-shot policy.
    Local,
    /// The peer closed (or reset) first, and this side closed in turn.
    Peer,
    /// The bridge closed it: a stopped server, a reset, the bridge shutting down.
    Bridge,
}

/// The kinds of event, named after the socket calls where there is one.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// socket(): an endpoint was created with this spec.
    Socket {
        /// The spec it was created with.
        spec: EndpointSpec,
    },
    /// bind(): the socket got its address (`local`, with the real port when 0 was asked for).
    Bind,
    /// listen(backlog).
    Listen {
        /// The backlog given to listen().
        backlog: u32,
    },
    /// How many connections wait in the listen backlog of a one-at-a-time server, when that
    /// number changes.
    Backlog {
        /// Connections the kernel completed that the server has not accept()ed yet.
        waiting: u32,
    },
    /// accept() returned a new connection (`conn`, `peer` with its ephemeral port).
    Accept,
    /// connect() started.
    Connecting,
    /// connect() succeeded (`local` shows the ephemeral port).
    Connect,
    /// send() / sendall() on TCP.
    Send {
        /// The bytes sent.
        data: Payload,
    },
    /// One recv() chunk on TCP: message boundaries are not kept, so one send may arrive as
    /// several chunks, or several sends as one.
    Recv {
        /// The bytes received.
        data: Payload,
        /// For a client: microseconds from its last send() to this first recv() after it,
        /// both measured at the socket (the round-trip time of a request and its reply). Not
        /// for a member of one of the bridge's chat rooms, where what arrives is what others
        /// said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rtt_us: Option<u64>,
    },
    /// sendto() on UDP (`peer` is the destination).
    SendTo {
        /// The datagram sent.
        data: Payload,
    },
    /// recvfrom() on UDP (`peer` is the sender).
    RecvFrom {
        /// The datagram received (cut to the buffer size, like recvfrom()).
        data: Payload,
        /// For a client: microseconds since its last sendto(), as for `recv`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rtt_us: Option<u64>,
    },
    /// recv() returned 0 bytes: the peer will send no more.
    Eof,
    /// shutdown(SHUT_WR): this side will send no more.
    Shutdown,
    /// close().
    Close {
        /// Who ended it.
        by: ClosedBy,
        /// Why, in words.
        reason: String,
    },
    /// No reply within the time given (a UDP client after a send).
    Timeout {
        /// The call that waited.
        op: String,
        /// How long it waited.
        after_ms: u64,
    },
    /// A socket call failed.
    Error {
        /// The call that failed (`connect`, `bind`, `recv`, ...).
        op: String,
        /// The error, explained.
        error: ErrorInfo,
    },
    /// Every endpoint was closed by a reset command.
    Reset,
    /// How far a file transfer has come (sent about ten times a second instead of one event
    /// per chunk, which would flood every viewer).
    Progress {
        /// The file.
        file: String,
        /// Bytes so far.
        bytes: u64,
        /// The file's size, when the sender knows it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
    },
    /// A file transfer ended (completely or not).
    Transfer(TransferReport),
    /// A packet this socket sent or received, captured on the wire (the bridge runs as root
    /// or with CAP_NET_RAW): a TCP segment, a UDP datagram, or an ICMP message about one.
    Packet(Box<crate::PacketInfo>),
    /// A chat server sent one line to many members at once. In a room this big, the members'
    /// send() calls are counted here instead of shown one by one (10,000 members would make
    /// 10,000 events per line).
    Relayed {
        /// The line.
        data: Payload,
        /// How many members it went to.
        members: u32,
    },
    /// A Fernet token was made from this plaintext (the `send` that follows carries it).
    Encrypted {
        /// What was encrypted.
        plaintext: Payload,
    },
    /// A received Fernet token decrypted to this plaintext.
    Decrypted {
        /// What it said.
        plaintext: Payload,
    },
    /// A check (`check_run`) began: its lab and the steps it will take, in order. The
    /// checker's own sockets are endpoints like any other (TCP clients); a `check_step` event
    /// follows each step, so the events between two of them are that step's.
    CheckStarted {
        /// The check's name (`kurose-uppercase-server`).
        lab: String,
        /// Its title, for people.
        title: String,
        /// What each step does, in words (`send "hello world" from a`).
        steps: Vec<String>,
    },
    /// One step of the running check is done: `passed`, `failed` (then `explanation` says
    /// why, expected against got) or `skipped` (not run: an earlier step failed).
    CheckStep {
        /// Which step, from 0, in `check_started`'s list.
        index: u32,
        /// `passed`, `failed` or `skipped`.
        verdict: String,
        /// Why it failed or was skipped; empty when it passed.
        explanation: String,
    },
    /// The simulated network trouble did something (`dropped`, `duplicated`, `delayed`,
    /// `held back`, `reading slowly`).
    Impaired {
        /// What it did.
        action: String,
        /// To how many bytes.
        bytes: usize,
    },
    /// The kernel's TCP state of this socket changed (read from the OS: TCP_INFO, and the
    /// system's connection table after close).
    TcpState {
        /// Such as `ESTABLISHED`, `CLOSE_WAIT`, `TIME_WAIT`.
        state: String,
    },
    /// The kernel's own counters of this connection (Linux `TCP_INFO`): what needs no
    /// permission to see when packets are not captured. Sent when they change, at most once
    /// a second, and the last ones when the connection ends.
    TcpCounters(crate::TcpCounters),
    /// An HTTP GET made for a `fetch_send`; the body follows as a `send`.
    Fetch {
        /// The URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// Body bytes.
        bytes: usize,
    },
    /// One step of a `fetch_send`'s HTTP GET, as it happens: `resolve` (the name and the
    /// address the policy allowed), `connect`, `tls` (the version, the cipher suite and the
    /// certificate verified), `request`, `redirect` (where to next) and `response` (status
    /// and size). The `fetch` event follows when the body is ready to send.
    FetchStep {
        /// Which step.
        step: String,
        /// What happened, in words.
        detail: String,
    },
    /// A traced program's call blocks: it has been waiting (in accept, connect, recv ...)
    /// for a while; the call's own event follows when it returns, with how long it waited.
    Waiting {
        /// The call that waits.
        op: String,
    },
    /// A traced program made a call that is neither data nor a connection step
    /// (`settimeout`, `setblocking`, `setsockopt`, `getaddrinfo`, `select` ...).
    Call {
        /// The call.
        op: String,
        /// Its arguments and result, in words.
        detail: String,
    },
    /// A program the bridge runs wrote to its console, or was given a line of input.
    Output {
        /// `stdout`, `stderr`, or `stdin` (what the page typed in).
        stream: String,
        /// What was written.
        data: Payload,
        /// When the bridge read it from the program (for `stdin`, began to write it to the
        /// program), on `t_us`'s clock. While two or more programs are traced, their console
        /// output waits with their calls to be put in one order, so `t_us` is later than this
        /// (as a traced call's `at.call_us` is earlier).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read_us: Option<u64>,
    },
    /// A program ended.
    Exit {
        /// Its exit status, when it exited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i32>,
        /// The signal that ended it, when one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        /// What happened, in words.
        detail: String,
    },
    /// A program produced more than the bridge shows (console bytes or socket calls beyond
    /// its rate), or the shim could not report some calls: counted here instead.
    Dropped {
        /// `console`, `calls`.
        what: String,
        /// How many (bytes of console, or calls).
        count: u64,
    },
    /// The challenge-response before a server serves a client.
    Auth {
        /// Whether the client proved it knows the secret.
        ok: bool,
        /// What happened, in words.
        detail: String,
    },
}

/// What a finished (or broken) file transfer reports on each side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferReport {
    /// `sent` or `received`.
    pub direction: Direction,
    /// The file in the data directory.
    pub file: String,
    /// Bytes sent or written.
    pub bytes: u64,
    /// SHA-256 of those bytes, lowercase hex.
    pub sha256: String,
    /// From the first to the last byte, in microseconds.
    pub duration_us: u64,
    /// Whether the whole file made it: a receiver saw EOF (TCP) or every datagram (UDP). An
    /// incomplete file keeps the `.part` suffix.
    pub complete: bool,
    /// UDP only: how the datagrams fared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datagrams: Option<DatagramReport>,
    /// A receiver that saved a file: the part of `duration_us` spent waiting for the disk
    /// to confirm the file is safe (fsync). Only then is it reported saved; this tells a
    /// student how much was the network and how much the disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_us: Option<u64>,
    /// A receiver's report: how it knew the transfer was over. Over TCP without a length
    /// announced first (as in the labs), `eof` is all a receiver can know: a sender that was
    /// killed mid-file also closes with a FIN, so "ended at EOF after N bytes" is the truth,
    /// not "the whole file".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<TransferEnd>,
}

/// How a receiver's transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferEnd {
    /// TCP: the sender closed its side (recv() returned 0 bytes).
    Eof,
    /// TCP: the connection failed (reset, or another error) before EOF.
    Broken,
    /// The endpoint was closed (by a person, a reset or the bridge shutting down).
    Stopped,
    /// More arrived than the bridge keeps in one file (`--max-file-bytes`), or the disk was
    /// nearly full.
    Limit,
    /// The disk refused a write.
    DiskError,
    /// UDP: every datagram the header announced arrived.
    AllDatagrams,
    /// UDP: the sender went quiet before every datagram arrived.
    Quiet,
}

impl TransferEnd {
    /// The snake_case name used on the wire.
    pub fn name(self) -> &'static str {
        match self {
            TransferEnd::Eof => "eof",
            TransferEnd::Broken => "broken",
            TransferEnd::Stopped => "stopped",
            TransferEnd::Limit => "limit",
            TransferEnd::DiskError => "disk_error",
            TransferEnd::AllDatagrams => "all_datagrams",
            TransferEnd::Quiet => "quiet",
        }
    }
}

/// Which side of a transfer a report is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The sender's report.
    Sent,
    /// The receiver's report.
    Received,
}

/// What a UDP file transfer's receiver saw, or its sender sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatagramReport {
    /// Datagrams the file needs.
    pub expected: u32,
    /// Distinct datagrams that arrived (or were sent).
    pub received: u32,
    /// Datagrams that never arrived.
    pub missing: u32,
    /// Datagrams that arrived after a later one.
    pub out_of_order: u32,
    /// Datagrams that arrived more than once.
    pub duplicates: u32,
}

impl TransferReport {
    /// Throughput in bytes per second.
    pub fn bytes_per_second(&self) -> f64 {
        if self.duration_us == 0 {
            return 0.0;
        }
        self.bytes as f64 * 1e6 / self.duration_us as f64
    }
}

impl Event {
    /// Roughly what keeping this event costs in memory: every string and payload it holds, and
    /// the fixed part. The bridge bounds its history and each viewer's queue by this, so that a
    /// flood of events with long texts (a spec, an error, a URL) counts as much as one of data.
    pub fn kept_bytes(&self) -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        std::mem::size_of::<Event>()
            + text(&self.local)
            + text(&self.peer)
            + self.at.as_ref().map_or(0, |at| at.kept_bytes())
            + self.kind.kept_bytes()
    }
}

impl EventKind {
    /// The bytes this kind holds beyond its fixed size (see [`Event::kept_bytes`]).
    fn kept_bytes(&self) -> usize {
        match self {
            EventKind::Send { data }
            | EventKind::Recv { data, .. }
            | EventKind::SendTo { data }
            | EventKind::RecvFrom { data, .. }
            | EventKind::Relayed { data, .. }
            | EventKind::Encrypted { plaintext: data }
            | EventKind::Decrypted { plaintext: data }
            | EventKind::Output { data, .. } => data.kept_bytes(),
            // Rare (one per endpoint): measured exactly, whatever the spec holds.
            EventKind::Socket { spec } => serde_json::to_string(spec).map_or(0, |s| s.len()),
            EventKind::Close { reason: text, .. }
            | EventKind::Timeout { op: text, .. }
            | EventKind::Progress { file: text, .. }
            | EventKind::Impaired { action: text, .. }
            | EventKind::TcpState { state: text }
            | EventKind::Fetch { url: text, .. }
            | EventKind::Auth { detail: text, .. }
            | EventKind::Waiting { op: text }
            | EventKind::Exit { detail: text, .. }
            | EventKind::Dropped { what: text, .. } => text.len(),
            EventKind::CheckStarted { lab, title, steps } => {
                lab.len() + title.len() + steps.iter().map(|s| s.len() + 24).sum::<usize>()
            }
            EventKind::CheckStep {
                verdict,
                explanation,
                ..
            } => verdict.len() + explanation.len(),
            EventKind::Call { op, detail } => op.len() + detail.len(),
            EventKind::Error { op, error } => op.len() + error.kept_bytes(),
            EventKind::FetchStep { step, detail } => step.len() + detail.len(),
            EventKind::Transfer(report) => report.file.len() + report.sha256.len(),
            EventKind::Packet(p) => p.kept_bytes(),
            EventKind::TcpCounters(_) => std::mem::size_of::<crate::TcpCounters>(),
            EventKind::Bind
            | EventKind::Listen { .. }
            | EventKind::Backlog { .. }
            | EventKind::Accept
            | EventKind::Connecting
            | EventKind::Connect
            | EventKind::Eof
            | EventKind::Shutdown
            | EventKind::Reset => 0,
        }
    }

    /// The snake_case name used on the wire, for logs and filters.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Socket { .. } => "socket",
            EventKind::Bind => "bind",
            EventKind::Listen { .. } => "listen",
            EventKind::Backlog { .. } => "backlog",
            EventKind::Accept => "accept",
            EventKind::Connecting => "connecting",
            EventKind::Connect => "connect",
            EventKind::Send { .. } => "send",
            EventKind::Recv { .. } => "recv",
            EventKind::SendTo { .. } => "send_to",
            EventKind::RecvFrom { .. } => "recv_from",
            EventKind::Eof => "eof",
            EventKind::Shutdown => "shutdown",
            EventKind::Close { .. } => "close",
            EventKind::Timeout { .. } => "timeout",
            EventKind::Error { .. } => "error",
            EventKind::Reset => "reset",
            EventKind::Progress { .. } => "progress",
            EventKind::Relayed { .. } => "relayed",
            EventKind::Transfer(_) => "transfer",
            EventKind::Packet(_) => "packet",
            EventKind::Encrypted { .. } => "encrypted",
            EventKind::Decrypted { .. } => "decrypted",
            EventKind::Auth { .. } => "auth",
            EventKind::Fetch { .. } => "fetch",
            EventKind::FetchStep { .. } => "fetch_step",
            EventKind::Impaired { .. } => "impaired",
            EventKind::TcpState { .. } => "tcp_state",
            EventKind::TcpCounters(_) => "tcp_counters",
            EventKind::Waiting { .. } => "waiting",
            EventKind::Call { .. } => "call",
            EventKind::Output { .. } => "output",
            EventKind::Exit { .. } => "exit",
            EventKind::Dropped { .. } => "dropped",
            EventKind::CheckStarted { .. } => "check_started",
            EventKind::CheckStep { .. } => "check_step",
        }
    }

    /// The bytes of a data event.
    pub fn data(&self) -> Option<&Payload> {
        match self {
            EventKind::Send { data }
            | EventKind::Recv { data, .. }
            | EventKind::SendTo { data }
            | EventKind::RecvFrom { data, .. }
            | EventKind::Relayed { data, .. } => Some(data),
            _ => None,
        }
    }
}
