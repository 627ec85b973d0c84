//! A small JSON writer for what the page writes: its hello, its commands and its recordings.
//!
//! Why not serde here: serde's derived writers are generic code for every type, every field and
//! every variant's name; with `serde_json`'s serializer they were about 7.5 KB of the page's
//! gzipped wasm (docs/benchmarks.md, "Page size"). This writes the same JSON by hand, one plain
//! function per type, into one `String`; names of values come from the reader's own tables
//! (`json_names!`). Native code keeps serde's writers; the tests hold the two to the same trees
//! (`json::same`), member for member and in order, for every kind of command and event.

use crate::{
    Behaviour, Command, ConnectionPolicy, DataInput, EndpointSpec, ErrorInfo, Event, EventKind,
    Hello, Impairment, Payload, Recording, TcpClientSpec, TcpServerSpec, UdpClientSpec,
    UdpServerSpec,
};

/// A JSON object being written: members are added in order, commas between them.
pub struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

/// Writes `text` as a JSON string.
fn string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[(c as usize) >> 4] as char);
                out.push(HEX[(c as usize) & 15] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl<'a> Obj<'a> {
    /// Opens an object in `out`; [`Obj::end`] closes it.
    pub fn open(out: &'a mut String) -> Obj<'a> {
        out.push('{');
        Obj { out, first: true }
    }

    fn key(&mut self, key: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        string(self.out, key);
        self.out.push(':');
        self.out
    }

    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        string(self.key(key), value);
        self
    }

    pub fn num(&mut self, key: &str, value: u64) -> &mut Self {
        let out = self.key(key);
        out.push_str(&value.to_string());
        self
    }

    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key).push_str(if value { "true" } else { "false" });
        self
    }

    /// A member written only when there is a value (serde's `skip_serializing_if`).
    pub fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.str(key, value);
        }
        self
    }

    /// A member that is `null` when there is no value (an `Option` serde writes always).
    pub fn null_or_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => self.str(key, value),
            None => {
                self.key(key).push_str("null");
                self
            }
        }
    }

    pub fn opt_num(&mut self, key: &str, value: Option<u64>) -> &mut Self {
        if let Some(value) = value {
            self.num(key, value);
        }
        self
    }

    /// A signed number written only when there is one.
    pub fn opt_int(&mut self, key: &str, value: Option<i32>) -> &mut Self {
        if let Some(value) = value {
            self.key(key).push_str(&value.to_string());
        }
        self
    }

    pub fn null_or_num(&mut self, key: &str, value: Option<u64>) -> &mut Self {
        match value {
            Some(value) => self.num(key, value),
            None => {
                self.key(key).push_str("null");
                self
            }
        }
    }

    /// A member whose value is an object, written by `fields`.
    pub fn obj(&mut self, key: &str, fields: &dyn Fn(&mut Obj)) -> &mut Self {
        let mut inner = Obj::open(self.key(key));
        fields(&mut inner);
        inner.end();
        self
    }

    pub fn strs(&mut self, key: &str, values: &[String]) -> &mut Self {
        let out = self.key(key);
        out.push('[');
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            string(out, value);
        }
        out.push(']');
        self
    }

    pub fn end(self) {
        self.out.push('}');
    }
}

/// The page's hello, as JSON.
pub fn hello(hello: &Hello) -> String {
    let mut text = String::new();
    let mut o = Obj::open(&mut text);
    o.str("type", "hello")
        .num("protocol", hello.protocol.into())
        .str("token", &hello.token)
        .opt_str("client", hello.client.as_deref());
    if !hello.watch {
        o.bool("watch", false);
    }
    o.end();
    text
}

/// A request carrying `command`, as JSON; `None` for the commands only `bridge trace` sends
/// (its records), which the page never writes.
pub fn request(id: u64, command: &Command) -> Option<String> {
    let mut text = String::new();
    let mut o = Obj::open(&mut text);
    o.str("type", "request").num("id", id);
    let ok = o.obj_command(command);
    o.end();
    ok.then_some(text)
}

impl Obj<'_> {
    /// `"command": {...}`; false for a command this writer does not write.
    fn obj_command(&mut self, command: &Command) -> bool {
        let mut ok = true;
        let out = self.key("command");
        let mut o = Obj::open(out);
        o.str("op", command.name());
        match command {
            Command::TcpServerStart(s) => tcp_server(&mut o, s, true),
            Command::UdpServerStart(s) => udp_server(&mut o, s),
            Command::TcpClientConnect(s) => tcp_client(&mut o, s, true),
            Command::UdpClientOpen(s) => udp_client(&mut o, s),
            Command::Send(s) => {
                o.num("endpoint", s.endpoint.into())
                    .null_or_num("conn", s.conn.map(u64::from))
                    .null_or_str("to", s.to.as_deref());
                match &s.data {
                    DataInput::Text(t) => o.obj("data", &|d| {
                        d.str("text", t);
                    }),
                    DataInput::Hex(h) => o.obj("data", &|d| {
                        d.str("hex", h);
                    }),
                };
                if s.tamper {
                    o.bool("tamper", true);
                }
            }
            Command::ShutdownWrite(t) | Command::Close(t) => {
                o.num("endpoint", t.endpoint.into())
                    .null_or_num("conn", t.conn.map(u64::from));
            }
            Command::Reset | Command::ListFiles | Command::FernetKey | Command::CheckList => {}
            Command::CaptureSave { endpoint, conn } => {
                o.opt_num("endpoint", endpoint.map(u64::from))
                    .opt_num("conn", conn.map(u64::from));
            }
            Command::CheckRun {
                lab,
                target,
                program,
                args,
            } => {
                o.str("lab", lab)
                    .opt_str("target", target.as_deref())
                    .opt_str("program", program.as_deref());
                if !args.is_empty() {
                    o.strs("args", args);
                }
            }
            Command::SendFile(s) => {
                o.num("endpoint", s.endpoint.into())
                    .str("file", &s.file)
                    .num("datagram_size", s.datagram_size as u64);
            }
            Command::SendBulk(s) => {
                o.num("endpoint", s.endpoint.into()).num("bytes", s.bytes);
            }
            Command::Compare(s) => {
                o.num("count", s.count.into())
                    .num("size", s.size as u64)
                    .num("file_bytes", s.file_bytes)
                    .num("datagram_size", s.datagram_size as u64);
            }
            Command::FetchSend(s) => {
                o.num("endpoint", s.endpoint.into())
                    .null_or_num("conn", s.conn.map(u64::from))
                    .null_or_str("to", s.to.as_deref())
                    .str("url", &s.url);
            }
            Command::UploadStart { file, size } => {
                o.str("file", file).num("size", *size);
            }
            Command::UploadChunk {
                upload,
                offset,
                base64,
            } => {
                o.num("upload", *upload);
                if let Some(offset) = offset {
                    o.num("offset", *offset);
                }
                o.str("base64", base64);
            }
            Command::UploadFinish { upload } => {
                o.num("upload", *upload);
            }
            Command::Impair {
                endpoint,
                impairment,
            } => {
                o.num("endpoint", (*endpoint).into())
                    .obj("impairment", &|i| impair_fields(i, impairment));
            }
            Command::PythonProgram { spec } => {
                o.obj("spec", &|s| endpoint_spec(s, spec, true));
            }
            Command::ProgramSave { file, source } => {
                o.str("file", file).str("source", source);
            }
            Command::FileRead { file } => {
                o.str("file", file);
            }
            Command::ProgramRun { file, args } => {
                o.str("file", file);
                if !args.is_empty() {
                    o.strs("args", args);
                }
            }
            Command::ProgramInput { program, text } => {
                o.num("program", (*program).into()).str("text", text);
            }
            Command::ProgramSource { program } => {
                o.num("program", (*program).into());
            }
            Command::TraceAttach { .. }
            | Command::TraceRecords { .. }
            | Command::TraceExit { .. } => {
                ok = false;
            }
        }
        o.end();
        ok
    }
}

/// What a recording holds instead of a shared secret or a key, when asked to leave them out.
pub const LEFT_OUT: &str = "(left out of this recording)";

/// A recording (the page's Export), as JSON; with `secrets` false, the shared secrets and
/// Fernet keys in the endpoints' specs are replaced by [`LEFT_OUT`].
pub fn recording<'e>(
    started_unix_ms: u64,
    events: impl Iterator<Item = &'e Event>,
    secrets: bool,
) -> String {
    let mut text = String::new();
    let mut o = Obj::open(&mut text);
    let r = Recording::new(started_unix_ms, Vec::new());
    o.str("format", &r.format)
        .num("protocol", r.protocol.into())
        .num("started_unix_ms", started_unix_ms);
    let out = o.key("events");
    out.push('[');
    for (i, e) in events.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut e_obj = Obj::open(out);
        event(&mut e_obj, e, secrets);
        e_obj.end();
    }
    out.push(']');
    o.end();
    text
}

fn payload(o: &mut Obj, key: &str, p: &Payload) {
    o.obj(key, &|o| {
        o.num("len", p.len as u64)
            .str("base64", &p.base64)
            .str("preview", &p.preview)
            .bool("utf8", p.utf8)
            .bool("truncated", p.truncated);
        if p.omitted > 0 {
            o.num("omitted", p.omitted as u64);
        }
    });
}

fn error(o: &mut Obj, e: &ErrorInfo) {
    o.obj("error", &|o| {
        o.str("kind", e.kind.json_name())
            .opt_int("errno", e.errno)
            .opt_str("os_message", e.os_message.as_deref())
            .str("explanation", &e.explanation)
            .opt_str("hint", e.hint.as_deref());
    });
}

/// One event's members (its kind's flattened in, as serde does).
fn event(o: &mut Obj, e: &Event, secrets: bool) {
    o.num("seq", e.seq)
        .num("t_us", e.t_us)
        .num("endpoint", e.endpoint.into())
        .opt_num("conn", e.conn.map(u64::from))
        .opt_str("local", e.local.as_deref())
        .opt_str("peer", e.peer.as_deref());
    if let Some(at) = &e.at {
        o.obj("at", &|o| {
            o.str("file", &at.file)
                .num("line", at.line.into())
                .str("code", &at.code)
                .str("thread", &at.thread)
                .num("pid", at.pid.into())
                .opt_num("blocked_us", at.blocked_us)
                .opt_num("call_us", at.call_us);
        });
    }
    o.str("kind", e.kind.name());
    match &e.kind {
        EventKind::Socket { spec } => {
            o.obj("spec", &|o| endpoint_spec(o, spec, secrets));
        }
        EventKind::Bind
        | EventKind::Accept
        | EventKind::Connecting
        | EventKind::Connect
        | EventKind::Eof
        | EventKind::Shutdown
        | EventKind::Reset => {}
        EventKind::Listen { backlog } => {
            o.num("backlog", (*backlog).into());
        }
        EventKind::Backlog { waiting } => {
            o.num("waiting", (*waiting).into());
        }
        EventKind::Send { data } | EventKind::SendTo { data } => payload(o, "data", data),
        EventKind::Recv { data, rtt_us } | EventKind::RecvFrom { data, rtt_us } => {
            payload(o, "data", data);
            o.opt_num("rtt_us", *rtt_us);
        }
        EventKind::Close { by, reason } => {
            o.str("by", by.json_name()).str("reason", reason);
        }
        EventKind::Timeout { op, after_ms } => {
            o.str("op", op).num("after_ms", *after_ms);
        }
        EventKind::Error { op, error: info } => {
            o.str("op", op);
            error(o, info);
        }
        EventKind::Progress { file, bytes, total } => {
            o.str("file", file)
                .num("bytes", *bytes)
                .opt_num("total", *total);
        }
        EventKind::Transfer(r) => {
            o.str("direction", r.direction.json_name())
                .str("file", &r.file)
                .num("bytes", r.bytes)
                .str("sha256", &r.sha256)
                .num("duration_us", r.duration_us)
                .bool("complete", r.complete);
            if let Some(d) = &r.datagrams {
                o.obj("datagrams", &|o| {
                    o.num("expected", d.expected.into())
                        .num("received", d.received.into())
                        .num("missing", d.missing.into())
                        .num("out_of_order", d.out_of_order.into())
                        .num("duplicates", d.duplicates.into());
                });
            }
            o.opt_num("sync_us", r.sync_us);
            if let Some(ended) = r.ended {
                o.str("ended", ended.name());
            }
        }
        EventKind::Relayed { data, members } => {
            payload(o, "data", data);
            o.num("members", (*members).into());
        }
        EventKind::Packet(p) => {
            o.str("proto", &p.proto)
                .str("dir", &p.dir)
                .num("wire_us", p.wire_us)
                .str("src", &p.src)
                .str("dst", &p.dst);
            if !p.flags.is_empty() {
                o.str("flags", &p.flags);
            }
            o.opt_num("tcp_seq", p.tcp_seq.map(u64::from))
                .opt_num("tcp_ack", p.tcp_ack.map(u64::from))
                .opt_num("window", p.window.map(u64::from));
            if !p.options.is_empty() {
                o.str("options", &p.options);
            }
            payload(o, "data", &p.data);
            if !p.detail.is_empty() {
                o.str("detail", &p.detail);
            }
        }
        EventKind::Encrypted { plaintext } | EventKind::Decrypted { plaintext } => {
            payload(o, "plaintext", plaintext)
        }
        EventKind::Impaired { action, bytes } => {
            o.str("action", action).num("bytes", *bytes as u64);
        }
        EventKind::TcpState { state } => {
            o.str("state", state);
        }
        EventKind::TcpCounters(c) => {
            o.num("segs_out", c.segs_out.into())
                .num("segs_in", c.segs_in.into())
                .num("retransmits", c.retransmits.into())
                .num("bytes_acked", c.bytes_acked)
                .num("bytes_received", c.bytes_received)
                .num("window", c.window.into())
                .num("rtt_us", c.rtt_us.into());
        }
        EventKind::Fetch { url, status, bytes } => {
            o.str("url", url)
                .num("status", (*status).into())
                .num("bytes", *bytes as u64);
        }
        EventKind::FetchStep { step, detail } => {
            o.str("step", step).str("detail", detail);
        }
        EventKind::Waiting { op } => {
            o.str("op", op);
        }
        EventKind::Call { op, detail } => {
            o.str("op", op).str("detail", detail);
        }
        EventKind::Output {
            stream,
            data,
            read_us,
        } => {
            o.str("stream", stream);
            payload(o, "data", data);
            o.opt_num("read_us", *read_us);
        }
        EventKind::Exit {
            code,
            signal,
            detail,
        } => {
            o.opt_int("code", *code)
                .opt_int("signal", *signal)
                .str("detail", detail);
        }
        EventKind::Dropped { what, count } => {
            o.str("what", what).num("count", *count);
        }
        EventKind::Auth { ok, detail } => {
            o.bool("ok", *ok).str("detail", detail);
        }
        EventKind::CheckStarted { lab, title, steps } => {
            o.str("lab", lab).str("title", title).strs("steps", steps);
        }
        EventKind::CheckStep {
            index,
            verdict,
            explanation,
        } => {
            o.num("index", (*index).into())
                .str("verdict", verdict)
                .str("explanation", explanation);
        }
    }
}

/// A secret as it is, or [`LEFT_OUT`].
fn secret(text: Option<&str>, secrets: bool) -> Option<&str> {
    text.map(|t| if secrets { t } else { LEFT_OUT })
}

fn behaviour(o: &mut Obj, b: &Behaviour, secrets: bool) {
    o.obj("behaviour", &|o| {
        let kind = match b {
            Behaviour::PrintOnly => "print_only",
            Behaviour::Echo => "echo",
            Behaviour::Uppercase => "uppercase",
            Behaviour::Prefix { .. } => "prefix",
            Behaviour::Fixed { .. } => "fixed",
            Behaviour::Manual => "manual",
            Behaviour::SaveToFile { .. } => "save_to_file",
            Behaviour::Discard => "discard",
            Behaviour::Chat => "chat",
            Behaviour::FernetEcho { .. } => "fernet_echo",
        };
        o.str("kind", kind);
        match b {
            Behaviour::Prefix { prefix } => o.str("prefix", prefix),
            Behaviour::Fixed { reply } => o.str("reply", reply),
            Behaviour::SaveToFile { file } => o.str("file", file),
            Behaviour::FernetEcho { key } => o.str("key", if secrets { key } else { LEFT_OUT }),
            _ => o,
        };
    });
}

fn impair_fields(o: &mut Obj, i: &Impairment) {
    o.num("loss_percent", i.loss_percent.into())
        .num("duplicate_percent", i.duplicate_percent.into())
        .num("reorder_percent", i.reorder_percent.into())
        .num("delay_ms", i.delay_ms.into())
        .num("read_bytes_per_second", i.read_bytes_per_second.into());
}

/// `"impair": {...}` when there is simulated trouble.
fn impair(o: &mut Obj, i: &Option<Impairment>) {
    if let Some(i) = i {
        o.obj("impair", &|o| impair_fields(o, i));
    }
}

fn tcp_server(o: &mut Obj, s: &TcpServerSpec, secrets: bool) {
    o.str("bind", &s.bind)
        .num("port", s.port.into())
        .num("backlog", s.backlog.into());
    behaviour(o, &s.behaviour, secrets);
    o.obj("policy", &|o| match &s.policy {
        ConnectionPolicy::OneShot => {
            o.str("kind", "one_shot");
        }
        ConnectionPolicy::Persistent { quit_word } => {
            o.str("kind", "persistent")
                .null_or_str("quit_word", quit_word.as_deref());
        }
    });
    o.str("concurrency", s.concurrency.json_name())
        .num("recv_buffer", s.recv_buffer as u64)
        .opt_str("log_file", s.log_file.as_deref())
        .opt_str("secret", secret(s.secret.as_deref(), secrets));
    impair(o, &s.impair);
}

fn udp_server(o: &mut Obj, s: &UdpServerSpec) {
    o.str("bind", &s.bind).num("port", s.port.into());
    behaviour(o, &s.behaviour, true);
    o.num("recv_buffer", s.recv_buffer as u64)
        .opt_str("log_file", s.log_file.as_deref());
    impair(o, &s.impair);
}

fn tcp_client(o: &mut Obj, s: &TcpClientSpec, secrets: bool) {
    o.str("host", &s.host)
        .num("port", s.port.into())
        .num("timeout_ms", s.timeout_ms)
        .num("recv_buffer", s.recv_buffer as u64)
        .opt_str("secret", secret(s.secret.as_deref(), secrets))
        .opt_str("fernet_key", secret(s.fernet_key.as_deref(), secrets));
    impair(o, &s.impair);
}

fn udp_client(o: &mut Obj, s: &UdpClientSpec) {
    o.str("host", &s.host)
        .num("port", s.port.into())
        .bool("connect", s.connect)
        .num("recv_timeout_ms", s.recv_timeout_ms)
        .num("recv_buffer", s.recv_buffer as u64);
    impair(o, &s.impair);
}

fn endpoint_spec(o: &mut Obj, spec: &EndpointSpec, secrets: bool) {
    match spec {
        EndpointSpec::TcpServer(s) => tcp_server(o.str("type", "tcp_server"), s, secrets),
        EndpointSpec::UdpServer(s) => udp_server(o.str("type", "udp_server"), s),
        EndpointSpec::TcpClient(s) => tcp_client(o.str("type", "tcp_client"), s, secrets),
        EndpointSpec::UdpClient(s) => udp_client(o.str("type", "udp_client"), s),
        EndpointSpec::Program(p) => {
            o.str("type", "program")
                .strs("argv", &p.argv)
                .str("from", p.from.json_name())
                .num("pid", p.pid.into())
                .opt_str("script", p.script.as_deref());
        }
        EndpointSpec::Traced(t) => {
            o.str("type", "traced")
                .num("program", t.program.into())
                .str("label", &t.label)
                .str("transport", &t.transport)
                .str("family", &t.family)
                .num("pid", t.pid.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{parse, same};
    use crate::{
        ClientMessage, CompareSpec, Concurrency, FetchSendCommand, ProgramFrom, Request,
        SendBulkCommand, SendCommand, SendFileCommand, Target,
    };

    fn check(command: Command) {
        let ours = request(7, &command).expect("the page writes it");
        let theirs =
            serde_json::to_string(&ClientMessage::Request(Request { id: 7, command })).unwrap();
        assert!(
            same(&parse(&ours).unwrap(), &parse(&theirs).unwrap()),
            "ours:   {ours}\nserde: {theirs}"
        );
    }

    #[test]
    fn every_command_the_page_sends_is_written_as_serde_writes_it() {
        let trouble = Some(Impairment {
            loss_percent: 5,
            duplicate_percent: 1,
            reorder_percent: 2,
            delay_ms: 30,
            read_bytes_per_second: 1000,
        });
        let behaviours = [
            Behaviour::PrintOnly,
            Behaviour::Echo,
            Behaviour::Uppercase,
            Behaviour::Prefix {
                prefix: "ACK: ".into(),
            },
            Behaviour::Fixed {
                reply: "Thanks \"for\"\n connecting\u{1}\\".into(),
            },
            Behaviour::Manual,
            Behaviour::SaveToFile {
                file: "received.bin".into(),
            },
            Behaviour::Discard,
            Behaviour::Chat,
            Behaviour::FernetEcho { key: "k=".into() },
        ];
        for behaviour in behaviours {
            check(Command::TcpServerStart(TcpServerSpec {
                behaviour: behaviour.clone(),
                policy: ConnectionPolicy::Persistent {
                    quit_word: Some("exit".into()),
                },
                concurrency: Concurrency::Concurrent,
                log_file: Some("log.txt".into()),
                secret: Some("open sesame".into()),
                impair: trouble.clone(),
                ..TcpServerSpec::default()
            }));
            check(Command::UdpServerStart(UdpServerSpec {
                behaviour,
                ..UdpServerSpec::default()
            }));
        }
        check(Command::TcpServerStart(TcpServerSpec {
            policy: ConnectionPolicy::Persistent { quit_word: None },
            ..TcpServerSpec::default()
        }));
        check(Command::TcpServerStart(TcpServerSpec::default()));
        let client = TcpClientSpec {
            secret: Some("s".into()),
            fernet_key: Some("k".into()),
            impair: trouble.clone(),
            ..TcpClientSpec::to("localhost", 12000)
        };
        check(Command::TcpClientConnect(client.clone()));
        check(Command::TcpClientConnect(TcpClientSpec::to("127.0.0.1", 1)));
        let udp = UdpClientSpec {
            connect: true,
            impair: trouble.clone(),
            ..UdpClientSpec::to("::1", 12002)
        };
        check(Command::UdpClientOpen(udp.clone()));
        for (data, tamper, conn, to) in [
            (DataInput::Text("héllo\t\"x\"".into()), true, Some(3), None),
            (
                DataInput::Hex("68 69".into()),
                false,
                None,
                Some("127.0.0.1:5".into()),
            ),
        ] {
            check(Command::Send(SendCommand {
                endpoint: 2,
                conn,
                to,
                data,
                tamper,
            }));
        }
        for conn in [None, Some(4)] {
            let target = Target { endpoint: 1, conn };
            check(Command::ShutdownWrite(target));
            check(Command::Close(target));
        }
        check(Command::Reset);
        check(Command::ListFiles);
        check(Command::FernetKey);
        check(Command::SendFile(SendFileCommand {
            endpoint: 3,
            file: "a.bin".into(),
            datagram_size: 1000,
        }));
        check(Command::SendBulk(SendBulkCommand {
            endpoint: 3,
            bytes: 100_000_000,
        }));
        check(Command::Compare(CompareSpec {
            count: 10,
            size: 64,
            file_bytes: 1 << 20,
            datagram_size: 1200,
        }));
        for (conn, to) in [(None, None), (Some(2), Some("127.0.0.1:9".to_string()))] {
            check(Command::FetchSend(FetchSendCommand {
                endpoint: 1,
                conn,
                to,
                url: "https://example.org/?a=1&b=\"2\"".into(),
            }));
        }
        check(Command::UploadStart {
            file: "f.txt".into(),
            size: u64::MAX,
        });
        for offset in [None, Some(131072)] {
            check(Command::UploadChunk {
                upload: 1,
                offset,
                base64: "aGk=".into(),
            });
        }
        check(Command::UploadFinish { upload: 1 });
        check(Command::Impair {
            endpoint: 5,
            impairment: trouble.clone().unwrap(),
        });
        let specs = [
            EndpointSpec::TcpServer(TcpServerSpec::default()),
            EndpointSpec::UdpServer(UdpServerSpec::default()),
            EndpointSpec::TcpClient(client),
            EndpointSpec::UdpClient(udp),
            EndpointSpec::Program(crate::ProgramSpec {
                argv: vec!["python3".into(), "server.py".into()],
                from: ProgramFrom::Terminal,
                pid: 42,
                script: Some("server.py".into()),
            }),
            EndpointSpec::Traced(crate::TracedSpec {
                program: 1,
                label: "server.py".into(),
                transport: "tcp".into(),
                family: "ipv4".into(),
                pid: 42,
            }),
        ];
        for spec in specs {
            check(Command::PythonProgram { spec });
        }
        check(Command::ProgramSave {
            file: "p.py".into(),
            source: "print('hi')\n".into(),
        });
        check(Command::FileRead {
            file: "p.py".into(),
        });
        for args in [vec![], vec!["12000".to_string(), "a b".to_string()]] {
            check(Command::CheckList);
            check(Command::CaptureSave {
                endpoint: Some(3),
                conn: None,
            });
            check(Command::CheckRun {
                lab: "kurose-uppercase-server".into(),
                target: Some("127.0.0.1:12000".into()),
                program: None,
                args: Vec::new(),
            });
            check(Command::CheckRun {
                lab: "kurose-uppercase-server".into(),
                target: None,
                program: Some("TCPServer.py".into()),
                args: vec!["12000".into()],
            });
            check(Command::ProgramRun {
                file: "p.py".into(),
                args,
            });
        }
        check(Command::ProgramInput {
            program: 9,
            text: "hello\n".into(),
        });
        check(Command::ProgramSource { program: 9 });
        assert_eq!(
            request(
                1,
                &Command::TraceExit {
                    program: 1,
                    code: None,
                    signal: None
                }
            ),
            None,
            "the terminal's commands are not the page's"
        );
    }

    #[test]
    fn a_recording_can_leave_the_secrets_out() {
        let spec = EndpointSpec::TcpServer(TcpServerSpec {
            secret: Some("open sesame".into()),
            behaviour: Behaviour::FernetEcho {
                key: "the-fernet-key".into(),
            },
            ..TcpServerSpec::default()
        });
        let event = Event {
            seq: 1,
            t_us: 2,
            endpoint: 3,
            conn: None,
            local: None,
            peer: None,
            at: None,
            kind: EventKind::Socket { spec },
        };
        let with = recording(0, std::iter::once(&event), true);
        assert!(
            with.contains("open sesame") && with.contains("the-fernet-key"),
            "{with}"
        );
        let without = recording(0, std::iter::once(&event), false);
        assert!(!without.contains("open sesame") && !without.contains("the-fernet-key"));
        assert_eq!(without.matches(LEFT_OUT).count(), 2, "{without}");
        let back = crate::Recording::parse(&without).expect("still a recording");
        assert_eq!(back.events.len(), 1);
    }

    #[test]
    fn the_hello_is_written_as_serde_writes_it() {
        for (client, watch) in [(Some("page".to_string()), true), (None, false)] {
            let message = Hello {
                protocol: 1,
                token: "tok\"en".into(),
                client,
                watch,
            };
            let theirs = serde_json::to_string(&ClientMessage::Hello(message.clone())).unwrap();
            let ours = hello(&message);
            assert!(
                same(&parse(&ours).unwrap(), &parse(&theirs).unwrap()),
                "{ours} vs {theirs}"
            );
        }
    }
}
