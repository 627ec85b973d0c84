//! Turns what a traced program's shim reports ([`TraceRecord`]s, in order) into events of the
//! kinds the playground's own sockets make, each carrying the line of code that made the call.
//!
//! The program is an endpoint; each socket it opens becomes an endpoint naming it, and each
//! connection it accepts a connection of that socket, so every view treats them like the
//! playground's own. Records beyond a rate are counted instead of shown (a program in a
//! tight loop must not flood every page), except those that keep the picture right (a socket
//! opened, accepted, closed).

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use shared::{
    ClosedBy, CodeAt, EndpointId, EndpointSpec, ErrorInfo, ErrorKind, EventKind, Payload,
    TraceRecord, TracedSpec,
};

use crate::core::registry::{Handle, Registry};
use crate::explain::{explain, Op, Proto};

/// Calls shown at once before the rate applies.
const BURST: f64 = 5_000.0;
/// Calls shown per second after the burst.
const RATE: f64 = 2_000.0;
/// How long a call must have waited for its event to say so.
const MIN_BLOCKED_US: u64 = 1000;
/// Longest file name, source line and thread name kept from a record.
const MAX_AT_TEXT: usize = 300;

/// One socket of the program: an endpoint, or an accepted connection of one.
struct Sock {
    handle: Handle,
    udp: bool,
}

/// See the module header. One per running program.
pub(crate) struct Tracer {
    registry: Arc<Registry>,
    program: Handle,
    socks: HashMap<String, Sock>,
    /// The program's label, for its sockets' specs.
    label: String,
    tokens: f64,
    refilled: Instant,
    dropped: u64,
    /// The last call that failed, so the exception it raises is explained the same way.
    last_error: Option<(i32, ErrorInfo)>,
}

impl Tracer {
    pub(crate) fn new(registry: Arc<Registry>, program: Handle) -> Self {
        let label = match program.info().map(|info| info.spec) {
            Some(EndpointSpec::Program(spec)) => spec.label(),
            _ => "program".into(),
        };
        Tracer {
            registry,
            program,
            label,
            socks: HashMap::new(),
            tokens: BURST,
            refilled: Instant::now(),
            dropped: 0,
            last_error: None,
        }
    }

    /// The program endpoint.
    pub(crate) fn program_id(&self) -> EndpointId {
        self.program.ctx.origin.endpoint
    }

    /// The program endpoint's handle, for its console and exit.
    pub(crate) fn program(&self) -> &Handle {
        &self.program
    }

    /// Whether one more call may be shown now.
    fn allowed(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * RATE).min(BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Says how many calls went unshown, once some are shown again (or at the end).
    fn report_dropped(&mut self) {
        if self.dropped > 0 {
            let count = std::mem::take(&mut self.dropped);
            self.program.emit(EventKind::Dropped {
                what: "calls".into(),
                count,
            });
        }
    }

    /// Shows one record.
    pub(crate) fn record(&mut self, mut record: TraceRecord) {
        let essential = matches!(
            record.op.as_str(),
            "socket" | "accept" | "close" | "exception" | "fork"
        );
        if !essential && !self.allowed() {
            self.dropped += 1;
            return;
        }
        self.report_dropped();
        let mut at = record.at.take().map(|at| Box::new(trimmed(at)));
        if let Some(at) = at.as_mut() {
            at.call_us = super::merge::on_log_clock(&record, self.program.ctx.log.now_us());
        }
        if let (Some(at), Some(began), Some(ended)) = (at.as_mut(), record.t_us, record.end_us) {
            // A call that can wait says how long it did, when that was long enough to notice.
            let can_wait = matches!(
                record.op.as_str(),
                "accept" | "connect" | "recv" | "recvfrom"
            ) || record.call.as_deref() == Some("select");
            let waited = ended.saturating_sub(began);
            if can_wait && waited >= MIN_BLOCKED_US {
                at.blocked_us = Some(waited);
            }
        }
        match record.op.as_str() {
            "socket" => self.socket(&record, at),
            "exception" => self.exception(&record, at),
            "fork" => {
                let pid = at.as_ref().map_or(0, |at| at.pid);
                let parent = record.detail.clone().unwrap_or_default();
                self.on_program(at, |p| {
                    p.emit(EventKind::Call {
                        op: "fork".into(),
                        detail: format!("process {pid} was forked from process {parent}"),
                    })
                });
            }
            "lost" => self.program.emit(EventKind::Dropped {
                what: "calls".into(),
                count: record.count.unwrap_or(0),
            }),
            "wait" | "call" if record.sock.is_none() => {
                let kind = call_kind(&record);
                self.on_program(at, |p| p.emit(kind));
            }
            _ => self.on_socket(record, at),
        }
    }

    /// Runs `f` on the program's handle with `at` as the line of its events.
    fn on_program(&mut self, at: Option<Box<CodeAt>>, f: impl FnOnce(&mut Handle)) {
        self.program.ctx.origin.at = at;
        f(&mut self.program);
        self.program.ctx.origin.at = None;
    }

    fn socket(&mut self, record: &TraceRecord, at: Option<Box<CodeAt>>) {
        let Some(id) = record.sock.clone() else {
            return;
        };
        let udp = record.transport.as_deref() == Some("udp");
        let spec = EndpointSpec::Traced(TracedSpec {
            program: self.program_id(),
            label: self.label.clone(),
            transport: if udp { "udp" } else { "tcp" }.into(),
            family: record.family.clone().unwrap_or_else(|| "ipv4".into()),
            pid: at.as_ref().map_or(0, |at| at.pid),
        });
        match self.registry.create_endpoint_at(spec, at) {
            Ok(handle) => {
                self.socks.insert(id, Sock { handle, udp });
            }
            Err(error) => self.program.emit(EventKind::Error {
                op: "socket".into(),
                error,
            }),
        }
    }

    fn exception(&mut self, record: &TraceRecord, at: Option<Box<CodeAt>>) {
        let name = record.error.clone().unwrap_or_else(|| "Exception".into());
        let message = record.message.clone().unwrap_or_default();
        let mut error = match (&self.last_error, record.errno) {
            (Some((errno, error)), Some(n)) if *errno == n => error.clone(),
            _ => ErrorInfo::new(ErrorKind::Other, format!("{name}: {message}")),
        };
        error.explanation = format!(
            "Your program stopped with {name}, which nothing caught. {}",
            error.explanation
        );
        error.os_message = record.traceback.clone();
        self.on_program(at, |p| {
            p.emit(EventKind::Error {
                op: format!("uncaught {name}"),
                error,
            })
        });
    }

    fn on_socket(&mut self, record: TraceRecord, at: Option<Box<CodeAt>>) {
        let Some(id) = record.sock.clone() else {
            return;
        };
        if record.op == "close" {
            if let Some(mut sock) = self.socks.remove(&id) {
                let how = record.detail.as_deref().unwrap_or("close()");
                // A program traced by its system calls has no lines.
                let reason = match &at {
                    Some(at) if at.line > 0 => format!("{how} at line {}", at.line),
                    _ => how.to_string(),
                };
                sock.handle.ctx.origin.at = at;
                sock.handle.close(ClosedBy::Local, reason);
            }
            return;
        }
        let Some(sock) = self.socks.get_mut(&id) else {
            // A socket whose creation was not shown (over a limit, or before a fork).
            return;
        };
        let udp = sock.udp;
        sock.handle.ctx.origin.at = at;
        let failed = record.error.is_some();
        if failed {
            let error = failure(&record, &sock.handle, udp);
            if let EventKind::Error { error, .. } = &error {
                if let Some(errno) = error.errno {
                    self.last_error = Some((errno, error.clone()));
                }
            }
            if let Some(peer) = &record.peer {
                sock.handle.ctx.origin.peer = Some(peer.clone());
            }
            sock.handle.emit(error);
            sock.handle.ctx.origin.at = None;
            return;
        }
        let data = || payload(&record);
        match record.op.as_str() {
            "bind" => match record.local.clone() {
                Some(local) => sock.handle.set_addresses(local, None, EventKind::Bind),
                None => sock.handle.emit(EventKind::Bind),
            },
            "listen" => {
                sock.handle.emit(EventKind::Listen {
                    backlog: record.backlog.unwrap_or(0),
                });
            }
            "accept" => {
                let conn = sock.handle.accept_named(
                    record.local.clone().unwrap_or_default(),
                    record.peer.clone().unwrap_or_default(),
                    None,
                );
                if let Some(new) = record.new.clone() {
                    self.socks.insert(
                        new,
                        Sock {
                            handle: conn,
                            udp: false,
                        },
                    );
                }
                if let Some(sock) = self.socks.get_mut(&id) {
                    sock.handle.ctx.origin.at = None;
                }
                return;
            }
            "connect" => {
                let local = record.local.clone().unwrap_or_default();
                sock.handle
                    .set_addresses(local, record.peer.clone(), EventKind::Connect);
            }
            "send" => sock.handle.emit(EventKind::Send { data: data() }),
            "recv" if record.len == Some(0) && !udp => sock.handle.emit(EventKind::Eof),
            "recv" => sock.handle.emit(EventKind::Recv {
                data: data(),
                rtt_us: None,
            }),
            "sendto" | "recvfrom" => {
                if let (Some(local), None) = (&record.local, &sock.handle.ctx.origin.local) {
                    sock.handle.learn_local(local.clone());
                }
                let kept_peer = sock.handle.ctx.origin.peer.clone();
                sock.handle.ctx.origin.peer = record.peer.clone().or(kept_peer.clone());
                sock.handle.emit(if record.op == "sendto" {
                    EventKind::SendTo { data: data() }
                } else {
                    EventKind::RecvFrom {
                        data: data(),
                        rtt_us: None,
                    }
                });
                sock.handle.ctx.origin.peer = kept_peer;
            }
            "shutdown" => sock.handle.emit(EventKind::Shutdown),
            "wait" | "call" => sock.handle.emit(call_kind(&record)),
            _ => {}
        }
        sock.handle.ctx.origin.at = None;
    }

    /// The program ended (or stopped being traced): its sockets close, then the program.
    pub(crate) fn finish(mut self, code: Option<i32>, signal: Option<i32>, detail: String) {
        self.report_dropped();
        let mut socks: Vec<(String, Sock)> = self.socks.drain().collect();
        // Connections before the sockets that accepted them, each in the order opened.
        socks.sort_by_key(|(id, sock)| (sock.handle.ctx.origin.conn.is_none(), order(id)));
        for (_, sock) in socks {
            sock.handle
                .close(ClosedBy::Local, "the program ended without closing it");
        }
        self.program.emit(EventKind::Exit {
            code,
            signal,
            detail: detail.clone(),
        });
        self.program.close(ClosedBy::Local, detail);
    }
}

/// `PID:N` in the order the sockets were opened.
fn order(id: &str) -> (u64, u64) {
    let mut parts = id.split(':').map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// A record's line of code, its texts cut to a sensible length.
fn trimmed(mut at: CodeAt) -> CodeAt {
    for text in [&mut at.file, &mut at.code, &mut at.thread] {
        if text.len() > MAX_AT_TEXT {
            let mut end = MAX_AT_TEXT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
    }
    at
}

/// The bytes of a data record: what it carries, and its exact length.
fn payload(record: &TraceRecord) -> Payload {
    let head = record
        .data
        .as_deref()
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .unwrap_or_default();
    let len = record.len.map_or(head.len(), |n| n as usize);
    Payload::from_head(&head, len.max(head.len()))
}

/// A `call` or `wait` record as an event.
fn call_kind(record: &TraceRecord) -> EventKind {
    let call = record.call.clone().unwrap_or_else(|| record.op.clone());
    if record.op == "wait" {
        EventKind::Waiting { op: call }
    } else if record.error.is_some() {
        EventKind::Error {
            op: call.clone(),
            error: error_info(record, &call, false, record.detail.as_deref().unwrap_or("")),
        }
    } else {
        EventKind::Call {
            op: call,
            detail: record.detail.clone().unwrap_or_default(),
        }
    }
}

/// A failed call on a socket as an event: a timeout, or an explained error.
fn failure(record: &TraceRecord, handle: &Handle, udp: bool) -> EventKind {
    let op = record.call.clone().unwrap_or_else(|| record.op.clone());
    let timed_out = record.errno.is_none()
        && matches!(record.error.as_deref(), Some("TimeoutError" | "timeout"));
    if timed_out {
        return EventKind::Timeout {
            op,
            after_ms: record.timeout_ms.unwrap_or(0),
        };
    }
    let origin = &handle.ctx.origin;
    let addr = match op.as_str() {
        "bind" | "listen" | "accept" => record.local.as_deref().or(origin.local.as_deref()),
        _ => record.peer.as_deref().or(origin.peer.as_deref()),
    }
    .unwrap_or("the other side")
    .to_string();
    EventKind::Error {
        error: error_info(record, &op, udp, &addr),
        op,
    }
}

/// The error a record reports, explained like the bridge's own.
fn error_info(record: &TraceRecord, op: &str, udp: bool, addr: &str) -> ErrorInfo {
    let name = record.error.as_deref().unwrap_or("OSError");
    let message = record.message.clone().unwrap_or_default();
    if name == "gaierror" {
        return ErrorInfo {
            os_message: Some(message.clone()),
            ..ErrorInfo::new(
                ErrorKind::NameResolutionFailed,
                format!("The host name could not be resolved ({message})."),
            )
            .with_hint("Check its spelling; 'localhost' or 127.0.0.1 is this machine.")
        };
    }
    match (record.errno, op_of(op)) {
        (Some(errno), Some(op)) if errno > 0 => {
            let proto = if udp { Proto::Udp } else { Proto::Tcp };
            let mut info = explain(&io::Error::from_raw_os_error(errno), op, proto, addr);
            info.os_message = Some(format!("{name}: {message}"));
            info
        }
        (errno, _) => ErrorInfo {
            errno: errno.filter(|n| *n > 0),
            os_message: Some(format!("{name}: {message}")),
            ..ErrorInfo::new(ErrorKind::Other, format!("{op}() raised {name}: {message}"))
        },
    }
}

/// The explained call a record's operation is.
fn op_of(op: &str) -> Option<Op> {
    Some(match op {
        "bind" => Op::Bind,
        "listen" => Op::Listen,
        "accept" => Op::Accept,
        "connect" => Op::Connect,
        "send" | "sendfile" => Op::Send,
        "recv" => Op::Recv,
        "sendto" => Op::SendTo,
        "recvfrom" => Op::RecvFrom,
        "shutdown" => Op::Shutdown,
        _ => return None,
    })
}
