//! How things are written on screen: times, sizes, endpoint names and one-line descriptions of
//! events. Pure functions, shared by the views and tested natively.

use shared::{Behaviour, ClosedBy, ConnectionPolicy, EndpointSpec, Event, EventKind, Payload};

/// A class attribute from its parts, the empty ones left out. Used instead of yew's `classes!`,
/// whose ordered set brings a hash table into the page's wasm (its size budget).
pub fn classes(parts: &[&str]) -> String {
    let mut out = String::new();
    for part in parts.iter().filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(part);
    }
    out
}

/// `name` when `on`, else nothing: a class that comes and goes.
pub fn on(on: bool, name: &'static str) -> &'static str {
    if on {
        name
    } else {
        ""
    }
}

pub fn relative(t_us: u64) -> String {
    format!("{}.{:03}", t_us / 1_000_000, (t_us / 1000) % 1000)
}

/// Wall-clock time of day with milliseconds, `14:03:22.512`, for a Unix time in ms and the
/// browser's offset from UTC in minutes (as `Date.getTimezoneOffset` gives it).
pub fn clock(unix_ms: u64, offset_min: i64) -> String {
    let local_ms = unix_ms as i64 - offset_min * 60_000;
    let day_ms = local_ms.rem_euclid(86_400_000);
    let (h, m) = (day_ms / 3_600_000, (day_ms / 60_000) % 60);
    let (s, ms) = ((day_ms / 1000) % 60, day_ms % 1000);
    format!("{h:02}:{m:02}:{s:02}.{ms:03}")
}

/// `11 B`, `4.9 KiB`, `1.2 MiB`.
pub fn bytes(n: usize) -> String {
    match n {
        0..=1023 => format!("{n} B"),
        1024..=1_048_575 => format!("{} KiB", tenths(n as f64 / 1024.0)),
        _ => format!("{} MiB", tenths(n as f64 / 1_048_576.0)),
    }
}

/// A number with one decimal, `4.9`. Written with integers: the page then needs none of the
/// (large) float-formatting code.
pub fn tenths(x: f64) -> String {
    let t = (x * 10.0).round() as i64;
    format!("{}.{}", t / 10, (t % 10).abs())
}

/// The port of an address such as `127.0.0.1:12000`.
pub fn port(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(_, p)| p)
}

/// A short name for an endpoint: `TCP server :12000`, `TCP client #2 → :12000`.
pub fn endpoint_name(id: u32, spec: &EndpointSpec, local: Option<&str>) -> String {
    let own_port = local.map(port);
    match spec {
        EndpointSpec::TcpServer(s) => {
            format!(
                "TCP server :{}",
                own_port.map_or(s.port.to_string(), str::to_string)
            )
        }
        EndpointSpec::UdpServer(s) => {
            format!(
                "UDP server :{}",
                own_port.map_or(s.port.to_string(), str::to_string)
            )
        }
        EndpointSpec::TcpClient(c) => format!("TCP client #{id} → :{}", c.port),
        EndpointSpec::UdpClient(c) => format!("UDP client #{id} → :{}", c.port),
        EndpointSpec::Program(p) => p.label(),
        EndpointSpec::Traced(t) => {
            let kind = if t.is_udp() { " UDP" } else { "" };
            match own_port {
                Some(port) => format!("{}{kind} :{port}", t.label),
                None => format!("{}{kind} socket #{id}", t.label),
            }
        }
    }
}

/// One line saying how a server behaves: `uppercase, one-shot, one at a time`.
pub fn server_summary(spec: &EndpointSpec) -> String {
    let behaviour = |b: &Behaviour| match b {
        Behaviour::PrintOnly => "print only".to_string(),
        Behaviour::Echo => "echo".to_string(),
        Behaviour::Uppercase => "uppercase".to_string(),
        Behaviour::Prefix { prefix } => format!("prefix \"{prefix}\""),
        Behaviour::Fixed { reply } => format!("reply \"{reply}\""),
        Behaviour::Manual => "you reply".to_string(),
        Behaviour::SaveToFile { file } => format!("save to {file}"),
        Behaviour::Discard => "discard (count bytes)".to_string(),
        Behaviour::Chat => "chat room".to_string(),
        Behaviour::FernetEcho { .. } => "encrypted echo (Fernet)".to_string(),
    };
    match spec {
        // A chat room and a file receiver serve everyone at once, their own way.
        EndpointSpec::TcpServer(s)
            if matches!(
                s.behaviour,
                Behaviour::Chat | Behaviour::SaveToFile { .. } | Behaviour::Discard
            ) =>
        {
            format!("{}, everyone at once", behaviour(&s.behaviour))
        }
        EndpointSpec::TcpServer(s) => {
            let policy = match &s.policy {
                ConnectionPolicy::OneShot => "one-shot".to_string(),
                ConnectionPolicy::Persistent { quit_word: Some(w) } => format!("until \"{w}\""),
                ConnectionPolicy::Persistent { quit_word: None } => "until closed".to_string(),
            };
            let concurrency = match s.concurrency {
                shared::Concurrency::OneAtATime => "one at a time",
                shared::Concurrency::Concurrent => "concurrent",
            };
            format!("{}, {policy}, {concurrency}", behaviour(&s.behaviour))
        }
        EndpointSpec::UdpServer(s) => behaviour(&s.behaviour),
        EndpointSpec::TcpClient(c) => format!("to {}:{}", c.host, c.port),
        EndpointSpec::UdpClient(c) => format!(
            "to {}:{}{}",
            c.host,
            c.port,
            if c.connect { ", connected" } else { "" }
        ),
        EndpointSpec::Program(p) => {
            let place = match p.from {
                shared::ProgramFrom::Page => "run from the page",
                shared::ProgramFrom::Terminal => "in a terminal (bridge trace)",
            };
            format!("{}, {place}, pid {}", p.argv.join(" "), p.pid)
        }
        EndpointSpec::Traced(t) => format!("a socket of {} (pid {})", t.label, t.pid),
    }
}

/// The socket call an event stands for, as a student knows it from Python. A traced program's
/// connect is its call, shown where the call began (before its SYN); the playground's own
/// client says when it is connected.
pub fn call(event: &Event) -> String {
    match &event.kind {
        EventKind::Socket { spec } => match spec {
            EndpointSpec::TcpServer(_) | EndpointSpec::TcpClient(_) => "socket(TCP)".into(),
            EndpointSpec::UdpServer(_) | EndpointSpec::UdpClient(_) => "socket(UDP)".into(),
            EndpointSpec::Program(_) => "program started".into(),
            EndpointSpec::Traced(t) if t.is_udp() => "socket(UDP)".into(),
            EndpointSpec::Traced(_) => "socket(TCP)".into(),
        },
        EventKind::Bind => "bind()".into(),
        EventKind::Listen { backlog } => format!("listen({backlog})"),
        EventKind::Backlog { .. } => "backlog".into(),
        EventKind::Accept => "accept()".into(),
        EventKind::Connecting => "connect()…".into(),
        EventKind::Connect if event.at.is_some() => "connect()".into(),
        EventKind::Connect => "connected".into(),
        EventKind::Send { .. } => "send()".into(),
        EventKind::Recv { .. } => "recv()".into(),
        EventKind::SendTo { .. } => "sendto()".into(),
        EventKind::RecvFrom { .. } => "recvfrom()".into(),
        EventKind::Eof => "recv() → EOF".into(),
        EventKind::Shutdown => "shutdown(WR)".into(),
        EventKind::Close { .. } => "close()".into(),
        EventKind::Timeout { op, .. } => format!("{op}() timeout"),
        EventKind::Error { op, .. } => format!("{op}() error"),
        EventKind::Reset => "reset".into(),
        EventKind::Progress { .. } => "transfer…".into(),
        EventKind::Relayed { .. } => "send() ×N".into(),
        EventKind::Transfer(_) => "transfer done".into(),
        EventKind::Encrypted { .. } => "encrypt".into(),
        EventKind::Decrypted { .. } => "decrypt".into(),
        EventKind::Auth { ok: true, .. } => "auth ok".into(),
        EventKind::Auth { ok: false, .. } => "auth FAILED".into(),
        EventKind::Fetch { .. } => "HTTP GET".into(),
        EventKind::FetchStep { step, .. } => format!("HTTP {step}"),
        EventKind::Impaired { .. } => "simulated".into(),
        EventKind::TcpState { .. } => "TCP state".into(),
        EventKind::TcpCounters(_) => "counters".into(),
        EventKind::Waiting { op } => format!("{op}() waiting…"),
        EventKind::Call { op, .. } => format!("{op}()"),
        EventKind::Output { stream, .. } if stream == "stdin" => "input".into(),
        EventKind::Output { stream, .. } => stream.clone(),
        EventKind::Exit { .. } => "program ended".into(),
        EventKind::Dropped { .. } => "not shown".into(),
        EventKind::CheckStarted { .. } => "check".into(),
        EventKind::Packet(p) => match p.proto.as_str() {
            "tcp" => format!("⇄ {}", p.flags),
            "udp" => "⇄ datagram".into(),
            _ => "⇄ ICMP".into(),
        },
        EventKind::CheckStep { index, verdict, .. } => format!("step {} {verdict}", index + 1),
    }
}

/// What a packet's arrow says: its flags and numbers, or what kind of datagram it is.
pub fn wire_label(p: &shared::PacketInfo) -> String {
    match p.proto.as_str() {
        "tcp" => {
            let mut label = format!("[{}]", p.flags);
            if p.detail.starts_with("retransmission") {
                label = format!("retransmission {label}");
            }
            if let Some(seq) = p.tcp_seq {
                label.push_str(&format!(" seq {seq}"));
            }
            if let Some(ack) = p.tcp_ack {
                label.push_str(&format!(" ack {ack}"));
            }
            if p.data.len > 0 {
                label.push_str(&format!(" · {}", bytes(p.data.len)));
            }
            label
        }
        "udp" => format!("UDP {}", bytes(p.data.len)),
        _ => "ICMP port unreachable".into(),
    }
}

/// A connection's kernel counters in words. Segments are left out where the system counts
/// none (Windows: both 0, where any real connection has its handshake's).
pub fn counters(c: &shared::TcpCounters) -> String {
    let segments = if c.segs_out + c.segs_in > 0 {
        format!("{} segments out, {} in, ", c.segs_out, c.segs_in)
    } else {
        String::new()
    };
    format!(
        "{segments}{} sent again · {} acknowledged, {} received · window {} · round trip {} ms",
        c.retransmits,
        bytes(c.bytes_acked as usize),
        bytes(c.bytes_received as usize),
        bytes(c.window as usize),
        shared::decimal(u64::from(c.rtt_us), 3)
    )
}

/// What else to say about an event in one line.
pub fn detail(event: &Event) -> String {
    let peer = event.peer.as_deref().unwrap_or("");
    let local = event.local.as_deref().unwrap_or("");
    match &event.kind {
        EventKind::Socket { spec } => server_summary(spec),
        EventKind::Bind => format!("on {local}"),
        EventKind::Listen { backlog } => format!("up to {backlog} waiting"),
        EventKind::Backlog { waiting } => match waiting {
            0 => "no client waiting".into(),
            1 => "1 client waits to be accepted".into(),
            n => format!("{n} clients wait to be accepted"),
        },
        EventKind::Accept => format!("from {peer}"),
        EventKind::Connecting => format!("to {peer}"),
        EventKind::Connect => format!("{local} → {peer}"),
        EventKind::Send { data } | EventKind::SendTo { data } => {
            format!("{} → {peer}: {}", bytes(data.len), preview(data))
        }
        EventKind::Recv { data, .. } | EventKind::RecvFrom { data, .. } => {
            format!("{} ← {peer}: {}", bytes(data.len), preview(data))
        }
        EventKind::Eof => "the other side will send no more".into(),
        EventKind::Shutdown => "this side will send no more".into(),
        EventKind::Close { by, reason } => format!("{}: {reason}", closed_by(*by)),
        EventKind::Timeout { after_ms, .. } => {
            format!("no reply within {after_ms} ms (UDP never says whether a datagram arrived)")
        }
        EventKind::Error { error, .. } => error.explanation.clone(),
        EventKind::Reset => "everything was closed".into(),
        EventKind::Progress {
            file,
            bytes: done,
            total,
        } => {
            let file = transfer_name(file);
            match total {
                Some(total) if *total > 0 => format!(
                    "{file}: {} of {} ({}%)",
                    bytes(*done as usize),
                    bytes(*total as usize),
                    done * 100 / total
                ),
                _ => format!("{file}: {}", bytes(*done as usize)),
            }
        }
        EventKind::Relayed { data, members } => format!(
            "{} to each of {members} members (one event for all their send() calls): {}",
            bytes(data.len),
            preview(data)
        ),
        EventKind::Encrypted { plaintext } => format!("plaintext {}", preview(plaintext)),
        EventKind::Decrypted { plaintext } => format!("plaintext {}", preview(plaintext)),
        EventKind::Auth { detail, .. } => detail.clone(),
        EventKind::Impaired { action, bytes: n } => format!("{} ({})", action, bytes(*n)),
        EventKind::TcpState { state } => format!("{state} (as the kernel reports it)"),
        EventKind::TcpCounters(c) => counters(c),
        EventKind::FetchStep { detail, .. } => detail.clone(),
        EventKind::Waiting { .. } => "the program is blocked here until this call returns".into(),
        EventKind::Call { detail, .. } => detail.clone(),
        EventKind::Output { data, .. } => preview(data),
        EventKind::Exit { detail, .. } => detail.clone(),
        EventKind::CheckStarted { title, steps, .. } => {
            format!("{title}: {} steps", steps.len())
        }
        EventKind::CheckStep { explanation, .. } => explanation.clone(),
        EventKind::Packet(p) => {
            let mut text = format!("{} → {}", p.src, p.dst);
            if let (Some(seq), ack) = (p.tcp_seq, p.tcp_ack) {
                text.push_str(&format!(" seq {seq}"));
                if let Some(ack) = ack {
                    text.push_str(&format!(" ack {ack}"));
                }
            }
            if let Some(window) = p.window {
                text.push_str(&format!(" win {window}"));
            }
            if !p.options.is_empty() {
                text.push_str(&format!(" · {}", p.options));
            }
            if p.data.len > 0 {
                text.push_str(&format!(" · {}", preview(&p.data)));
            }
            if !p.detail.is_empty() {
                text.push_str(&format!(" · {}", p.detail));
            }
            text
        }
        EventKind::Dropped { what, count } => match what.as_str() {
            "console" => format!(
                "{} of console output beyond what the page shows",
                bytes(*count as usize)
            ),
            "packets" => format!("{count} packets the kernel dropped before the bridge read them"),
            "packet events" => format!("{count} packets captured, kept for pcapng, not shown"),
            _ => format!("{count} calls beyond what the page shows (the program went on)"),
        },
        EventKind::Fetch {
            url,
            status,
            bytes: n,
        } => {
            format!("{url} → {status}, {} to send", bytes(*n))
        }
        EventKind::Transfer(report) => {
            let verb = match report.direction {
                shared::Direction::Sent => "sent",
                shared::Direction::Received => "received",
            };
            // What the receiver knows: over TCP, EOF is all it can tell (a sender killed
            // mid-file closes with a FIN too).
            use shared::TransferEnd as End;
            let state = match (report.ended, report.complete) {
                (Some(End::Eof), true) => "ended at EOF",
                (Some(End::Quiet), _) => "INCOMPLETE: the sender went quiet",
                (Some(End::Limit), _) => "INCOMPLETE: over the size limit or the disk is full",
                (Some(End::Broken), _) => "INCOMPLETE: the connection broke",
                (Some(End::Stopped), _) => "INCOMPLETE: closed before the end",
                (Some(End::DiskError), _) => "INCOMPLETE: the disk refused to write",
                (_, true) => "complete",
                (_, false) => "INCOMPLETE",
            };
            // A sender knows what it sent, never what arrived: it says so, not "complete".
            let sent = report.direction == shared::Direction::Sent;
            let state = match (sent, report.complete) {
                (true, true) => "all of it sent",
                (true, false) => "NOT all sent",
                _ => state,
            };
            let udp = report.datagrams.as_ref().map_or(String::new(), |d| {
                if sent {
                    format!(", {} of {} datagrams sent", d.received, d.expected)
                } else {
                    format!(
                        ", {}/{} datagrams arrived, {} missing, {} out of order",
                        d.received, d.expected, d.missing, d.out_of_order
                    )
                }
            });
            let what = transfer_name(&report.file);
            let hash = if report.sha256.is_empty() {
                String::new()
            } else {
                format!(
                    ", SHA-256 {}…",
                    &report.sha256[..report.sha256.len().min(12)]
                )
            };
            // Saving ends with the disk's confirmation (fsync); say how much of the time that was.
            let disk = match report.sync_us {
                Some(us) if us >= 1_000 => format!(" ({} ms of it saving to disk)", us / 1_000),
                _ => String::new(),
            };
            format!(
                "{what} {verb} {}, {state}{udp}, {} MB/s{disk}{hash}",
                bytes(report.bytes as usize),
                tenths(report.bytes_per_second() / 1e6),
            )
        }
    }
}

/// The line of a traced program's call, `line 19`, if the event has one.
pub fn line(event: &Event) -> Option<String> {
    event.at.as_deref().map(where_at)
}

/// Where a traced call was made: its line, or for a program traced by its system calls
/// (C, Java ...: no source, line 0) its thread.
pub fn where_at(at: &shared::CodeAt) -> String {
    if at.line == 0 {
        at.thread.clone()
    } else {
        format!("line {}", at.line)
    }
}

/// Where a traced call came from, for a tooltip: `tcp_server.py:19  message = ...`, and how
/// long it waited, if it did.
pub fn code_at(event: &Event) -> Option<String> {
    let at = event.at.as_ref()?;
    let waited = at
        .blocked_us
        .filter(|us| *us >= 1000)
        .map_or(String::new(), |us| {
            format!(" (waited {} s)", shared::decimal(us / 1000, 3))
        });
    if at.line == 0 {
        return Some(format!(
            "{}, {}, process {}{waited}",
            at.file, at.thread, at.pid
        ));
    }
    Some(format!("{}:{}  {}{waited}", at.file, at.line, at.code))
}

/// What a transfer moved: its file, or "test data" for bulk data (`send_bulk`, `discard`),
/// which has no file (and no hash).
pub fn transfer_name(file: &str) -> &str {
    if file.is_empty() {
        "test data"
    } else {
        file
    }
}

/// Who closed, in words.
pub fn closed_by(by: ClosedBy) -> &'static str {
    match by {
        ClosedBy::Local => "closed here",
        ClosedBy::Peer => "the other side closed",
        ClosedBy::Bridge => "closed by the bridge",
    }
}

/// A payload as text when it is text (control characters made visible), else as hex.
pub fn preview(data: &Payload) -> String {
    if data.utf8 {
        let mut text: String = data
            .preview
            .chars()
            .map(|c| match c {
                '\n' => '↵',
                '\r' => '␍',
                '\t' => '⇥',
                c if c.is_control() => '·',
                c => c,
            })
            .collect();
        if data.truncated {
            text.push('…');
        }
        format!("\"{text}\"")
    } else {
        let bytes = data.bytes().unwrap_or_default();
        let shown: Vec<String> = bytes.iter().take(32).map(|b| format!("{b:02x}")).collect();
        let more = if bytes.len() > 32 { " …" } else { "" };
        format!("hex {}{more}", shown.join(" "))
    }
}

/// [`preview`] cut to about `chars` characters, for a label with little room.
pub fn short_preview(data: &Payload, chars: usize) -> String {
    let text = preview(data);
    if text.chars().count() <= chars + 1 {
        return text;
    }
    let mut short: String = text.chars().take(chars).collect();
    short.push('…');
    short
}

/// Which group of the timeline filter an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    /// socket, bind, listen, accept, connect, backlog.
    Setup,
    /// send, recv, sendto, recvfrom.
    Data,
    /// EOF, shutdown, close, reset.
    Ending,
    /// Errors and timeouts.
    Problems,
    /// Packets on the wire (captured).
    Wire,
}

impl Group {
    pub const ALL: [Group; 5] = [
        Group::Setup,
        Group::Data,
        Group::Ending,
        Group::Problems,
        Group::Wire,
    ];

    pub fn of(kind: &EventKind) -> Group {
        match kind {
            EventKind::Socket { .. }
            | EventKind::Bind
            | EventKind::Listen { .. }
            | EventKind::Backlog { .. }
            | EventKind::Accept
            | EventKind::Connecting
            | EventKind::Connect
            | EventKind::Waiting { .. }
            | EventKind::Call { .. } => Group::Setup,
            EventKind::Output { .. } => Group::Data,
            EventKind::Exit { .. } => Group::Ending,
            EventKind::Dropped { .. } => Group::Problems,
            EventKind::CheckStep { verdict, .. } if verdict == "failed" => Group::Problems,
            EventKind::CheckStarted { .. } | EventKind::CheckStep { .. } => Group::Setup,
            EventKind::Packet(_) | EventKind::TcpCounters(_) => Group::Wire,
            EventKind::Send { .. }
            | EventKind::Recv { .. }
            | EventKind::SendTo { .. }
            | EventKind::RecvFrom { .. }
            | EventKind::Relayed { .. } => Group::Data,
            EventKind::Progress { .. }
            | EventKind::Transfer(_)
            | EventKind::Encrypted { .. }
            | EventKind::Decrypted { .. } => Group::Data,
            EventKind::Auth { ok: true, .. }
            | EventKind::Fetch { .. }
            | EventKind::FetchStep { .. }
            | EventKind::TcpState { .. } => Group::Setup,
            EventKind::Impaired { .. } => Group::Problems,
            EventKind::Auth { ok: false, .. } => Group::Problems,
            EventKind::Eof | EventKind::Shutdown | EventKind::Close { .. } | EventKind::Reset => {
                Group::Ending
            }
            EventKind::Timeout { .. } | EventKind::Error { .. } => Group::Problems,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Group::Setup => "setup",
            Group::Data => "data",
            Group::Ending => "closing",
            Group::Problems => "errors",
            Group::Wire => "packets",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_programs_connect_is_its_call_and_the_playgrounds_is_connected() {
        let mut connect = Event {
            seq: 1,
            t_us: 0,
            endpoint: 1,
            conn: None,
            local: Some("127.0.0.1:50000".into()),
            peer: Some("127.0.0.1:12000".into()),
            at: None,
            kind: EventKind::Connect,
        };
        assert_eq!(call(&connect), "connected");
        connect.at = Some(Box::new(shared::CodeAt {
            file: "client.py".into(),
            line: 10,
            code: "s.connect(('127.0.0.1', 12000))".into(),
            thread: "MainThread".into(),
            pid: 7,
            blocked_us: None,
            call_us: Some(0),
        }));
        assert_eq!(call(&connect), "connect()");
    }

    #[test]
    fn what_the_capture_could_not_show_is_said_as_such() {
        let dropped = |what: &str| Event {
            seq: 1,
            t_us: 0,
            endpoint: 0,
            conn: None,
            local: None,
            peer: None,
            at: None,
            kind: EventKind::Dropped {
                what: what.into(),
                count: 7,
            },
        };
        assert!(detail(&dropped("packets")).contains("kernel dropped"));
        assert!(detail(&dropped("packet events")).contains("kept for pcapng"));
        assert!(detail(&dropped("calls")).contains("calls"));
        let retransmitted = shared::PacketInfo {
            proto: "tcp".into(),
            dir: "out".into(),
            wire_us: 0,
            src: "127.0.0.1:5000".into(),
            dst: "127.0.0.1:12000".into(),
            flags: "SYN".into(),
            tcp_seq: Some(0),
            tcp_ack: None,
            window: None,
            options: String::new(),
            data: shared::Payload::from_bytes(b""),
            detail: "retransmission: the SYN sent again".into(),
        };
        assert_eq!(wire_label(&retransmitted), "retransmission [SYN] seq 0");
        let c = shared::TcpCounters {
            segs_out: 5,
            segs_in: 4,
            retransmits: 1,
            bytes_acked: 11,
            bytes_received: 10,
            window: 65483,
            rtt_us: 52,
        };
        assert!(
            counters(&c).starts_with("5 segments out, 4 in, 1 sent again"),
            "{}",
            counters(&c)
        );
        // Windows counts no segments: none are shown, rather than a wrong 0.
        let windows = shared::TcpCounters {
            segs_out: 0,
            segs_in: 0,
            ..c
        };
        assert!(
            counters(&windows).starts_with("1 sent again"),
            "{}",
            counters(&windows)
        );
    }

    #[test]
    fn times_and_sizes() {
        assert_eq!(relative(3_512_345), "3.512");
        assert_eq!(relative(42), "0.000");
        // 1970-01-01 13:00:01.250 UTC, shown two hours ahead (offset -120).
        assert_eq!(clock(13 * 3_600_000 + 1_250, -120), "15:00:01.250");
        assert_eq!(bytes(11), "11 B");
        assert_eq!(bytes(5000), "4.9 KiB");
        assert_eq!(tenths(2.25), "2.3");
        assert_eq!(tenths(0.04), "0.0");
    }

    #[test]
    fn a_saved_file_says_how_long_the_disk_took() {
        let report = shared::TransferReport {
            direction: shared::Direction::Received,
            file: "upload.bin".into(),
            bytes: 2_000_000,
            sha256: "ab".repeat(32),
            duration_us: 1_000_000,
            complete: true,
            datagrams: None,
            sync_us: Some(250_000),
            ended: Some(shared::TransferEnd::Eof),
        };
        let event = |report| Event {
            seq: 1,
            t_us: 0,
            endpoint: 1,
            conn: None,
            local: None,
            peer: None,
            at: None,
            kind: EventKind::Transfer(report),
        };
        let text = detail(&event(report.clone()));
        assert!(
            text.contains("2.0 MB/s (250 ms of it saving to disk)"),
            "{text}"
        );
        assert!(
            text.contains("received 1.9 MiB, ended at EOF"),
            "a TCP receiver says what it knows: {text}"
        );
        let sent = detail(&event(shared::TransferReport {
            sync_us: None,
            ..report
        }));
        assert!(!sent.contains("disk"), "{sent}");
    }

    #[test]
    fn previews_show_text_or_hex() {
        assert_eq!(preview(&Payload::from_bytes(b"hi\r\n")), "\"hi␍↵\"");
        assert_eq!(preview(&Payload::from_bytes(&[0xff, 0x00])), "hex ff 00");
    }

    #[test]
    fn endpoint_names() {
        let spec: EndpointSpec =
            serde_json::from_str(r#"{"type":"tcp_client","port":12000}"#).unwrap();
        assert_eq!(endpoint_name(2, &spec, None), "TCP client #2 → :12000");
        let spec: EndpointSpec = serde_json::from_str(
            r#"{"type":"tcp_server","port":0,"behaviour":{"kind":"uppercase"}}"#,
        )
        .unwrap();
        assert_eq!(
            endpoint_name(1, &spec, Some("127.0.0.1:40000")),
            "TCP server :40000"
        );
        assert_eq!(server_summary(&spec), "uppercase, one-shot, one at a time");
    }
}
