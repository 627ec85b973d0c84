//! The student's own programs: the spec of a program the bridge runs (or a terminal runs under
//! `bridge trace`), the spec of each socket the program opens, the line of code an event came
//! from, and the records the Python shim reports each socket call with.
//!
//! A program is an endpoint of its own (its console, its exit); each socket it opens is an
//! endpoint naming the program, so the timeline, the conversation and the sequence diagram
//! treat the student's sockets like the playground's.

use serde::{Deserialize, Serialize};

use crate::json::{Fields, FromJson, Json};
use crate::EndpointId;

/// Most arguments a program is run with.
pub const MAX_PROGRAM_ARGS: usize = 32;
/// Longest program source `program_save` takes (and `file_read` returns).
pub const MAX_PROGRAM_SOURCE: usize = 256 * 1024;
/// Longest line of input `program_input` takes.
pub const MAX_PROGRAM_INPUT: usize = 4096;
/// Most records one `trace_records` command carries.
pub const MAX_TRACE_RECORDS: usize = 1024;

/// Where a program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgramFrom {
    /// The bridge started it from the page (`program_run`): its console is in the page, and
    /// the page can feed its stdin and stop it.
    Page,
    /// A terminal runs it under `bridge trace`: its console stays in that terminal.
    Terminal,
}

/// A program the person runs (an endpoint of type `program`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramSpec {
    /// The command line, such as `["python3", "tcp_server.py", "12000"]`.
    pub argv: Vec<String>,
    /// Where it runs.
    pub from: ProgramFrom,
    /// Its process id.
    pub pid: u32,
    /// The Python script it runs, as named on the command line (for the label and the source
    /// view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
}

impl ProgramSpec {
    /// What to call it: the script's file name, or the command.
    pub fn label(&self) -> String {
        match &self.script {
            Some(script) => script.rsplit('/').next().unwrap_or(script).to_string(),
            None => self.argv.first().cloned().unwrap_or_default(),
        }
    }
}

/// One socket of a traced program (an endpoint of type `traced`). Whether it is a server or a
/// client shows in its events (`listen`, `accept`, `connect`), as in the program itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TracedSpec {
    /// The program endpoint it belongs to.
    pub program: EndpointId,
    /// The program's label ([`ProgramSpec::label`]), so the socket is named without looking
    /// the program up.
    pub label: String,
    /// `tcp` (SOCK_STREAM) or `udp` (SOCK_DGRAM).
    pub transport: String,
    /// `ipv4` (AF_INET) or `ipv6` (AF_INET6).
    pub family: String,
    /// The process that opened it (a forked child has its own).
    pub pid: u32,
}

impl TracedSpec {
    /// Whether it is a UDP socket.
    pub fn is_udp(&self) -> bool {
        self.transport == "udp"
    }
}

/// The line of the student's program that made a call (events of traced programs carry it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeAt {
    /// The file, as Python names it (relative to where the program runs when it is there).
    pub file: String,
    /// The line number, from 1.
    pub line: u32,
    /// The line's source text, stripped.
    pub code: String,
    /// The thread that made the call (`MainThread`, `Thread-1 (handle)` ...).
    pub thread: String,
    /// The process that made it.
    pub pid: u32,
    /// How long the call waited before it returned (accept, connect, recv ... that blocked),
    /// in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_us: Option<u64>,
    /// When the call happened, on the events' clock (`t_us`'s): when it began, or when it
    /// returned for a call that waits for the other side (accept, recv, recvfrom, select).
    /// The event is shown later than that (a program's calls come in batches and are put in
    /// one order with other programs'), so its `t_us` is later; a packet's `wire_us` is on
    /// the same clock as this. Set by the bridge: what a trace record says here is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_us: Option<u64>,
}

impl CodeAt {
    /// The bytes its texts take (see `Event::kept_bytes`).
    pub fn kept_bytes(&self) -> usize {
        std::mem::size_of::<CodeAt>() + self.file.len() + self.code.len() + self.thread.len()
    }
}

/// One socket call as the Python shim reports it (see docs/protocol.md, "Tracing a program").
/// `bridge trace` forwards these in `trace_records`; the bridge turns each into events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceRecord {
    /// The call: `socket`, `bind`, `listen`, `accept`, `connect`, `send`, `recv`, `sendto`,
    /// `recvfrom`, `shutdown`, `close`, `call` (settimeout, setsockopt, getaddrinfo, select
    /// ...), `wait` (a call that blocks), `exception` (uncaught), `fork`, `lost` (records the
    /// shim could not send).
    pub op: String,
    /// The socket, `PID:N`, unique while the program runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sock: Option<String>,
    /// accept: the new connection's socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<String>,
    /// socket: `ipv4` or `ipv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// socket: `tcp` or `udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// The socket's own address after the call (`127.0.0.1:12000`, `[::1]:5000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// The other side's address (connect, accept, sendto, recvfrom).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The bytes sent or received, standard base64 (at most 64 KiB of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The exact number of bytes (data may hold fewer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<u64>,
    /// listen: the backlog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<u32>,
    /// call: what was called (`settimeout`, `getaddrinfo` ...); wait: the call that waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    /// call: its arguments and result in words; fork: the parent's pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// A failed call: the error number, when the OS gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    /// A failed call: the Python exception's class (`ConnectionRefusedError`, `TimeoutError`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A failed call: the exception's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// exception: the traceback, as Python prints it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
    /// A timed-out call: the timeout it had, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The student's line that made the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<CodeAt>,
    /// When the call began, in microseconds of the system's monotonic clock
    /// (`time.monotonic_ns() // 1000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_us: Option<u64>,
    /// When it returned, on the same clock (not on a `wait`, which is sent before its call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_us: Option<u64>,
    /// lost: how many records could not be sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

impl FromJson for ProgramSpec {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        Self::from_fields(&mut Fields::of(value)?)
    }
}

impl ProgramSpec {
    pub(crate) fn from_fields(f: &mut Fields<'_>) -> Result<Self, String> {
        Ok(ProgramSpec {
            argv: f.req("argv")?,
            from: f.req("from")?,
            pid: f.req("pid")?,
            script: f.opt("script")?,
        })
    }
}

impl FromJson for TracedSpec {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        Self::from_fields(&mut Fields::of(value)?)
    }
}

impl TracedSpec {
    pub(crate) fn from_fields(f: &mut Fields<'_>) -> Result<Self, String> {
        Ok(TracedSpec {
            program: f.req("program")?,
            label: f.req("label")?,
            transport: f.req("transport")?,
            family: f.req("family")?,
            pid: f.req("pid")?,
        })
    }
}

impl FromJson for CodeAt {
    fn from_json(value: Json<'_>) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        Ok(CodeAt {
            file: f.req("file")?,
            line: f.req("line")?,
            code: f.req("code")?,
            thread: f.req("thread")?,
            pid: f.req("pid")?,
            blocked_us: f.opt("blocked_us")?,
            call_us: f.opt("call_us")?,
        })
    }
}

crate::json_names!(ProgramFrom {
    "page" => ProgramFrom::Page,
    "terminal" => ProgramFrom::Terminal,
});

crate::via_json!(CodeAt);
