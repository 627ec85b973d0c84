//! Commands a client asks the bridge to carry out (the specs of the endpoints they create are
//! in `specs`).
//!
//! Every field that has a sensible default has one, chosen to match the labs
//! (`127.0.0.1`, `recv(1024)`, `listen(1)`), so `{"op":"tcp_server_start","port":12000}` is a
//! complete command.

use serde::{Deserialize, Serialize};

use crate::specs::{within, within_opt, MAX_FILE_NAME, MAX_HOST, MAX_SPEC_TEXT, MAX_URL};
use crate::{
    DataInput, EndpointSpec, Impairment, TcpClientSpec, TcpServerSpec, UdpClientSpec, UdpServerSpec,
};
use crate::{MAX_PROGRAM_ARGS, MAX_PROGRAM_INPUT, MAX_PROGRAM_SOURCE, MAX_TRACE_RECORDS};

/// Identifies an endpoint (a server or a client) for as long as the bridge runs. Id 0 stands
/// for the bridge itself in events such as a reset.
pub type EndpointId = u32;

/// Identifies one accepted TCP connection of a server, unique across the bridge.
pub type ConnId = u32;

/// What a client asks the bridge to do. Each one gets exactly one reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// socket(), bind(), listen(), then accept() in a loop.
    TcpServerStart(TcpServerSpec),
    /// socket(), bind(), then recvfrom() in a loop.
    UdpServerStart(UdpServerSpec),
    /// socket(), connect(); replies once the connection is up (or failed).
    TcpClientConnect(TcpClientSpec),
    /// socket(), optionally connect(); sendto() with [`Command::Send`].
    UdpClientOpen(UdpClientSpec),
    /// send() on a client or an accepted connection, sendto() on a UDP endpoint.
    Send(SendCommand),
    /// shutdown(SHUT_WR): tell the peer "no more data from me" but keep receiving.
    ShutdownWrite(Target),
    /// close() a client or one accepted connection; on a server without `conn`, stop it and
    /// close all its connections.
    Close(Target),
    /// Close every endpoint the bridge runs.
    Reset,
    /// Send a file from the data directory over a client: all of it then shutdown(SHUT_WR) on
    /// TCP; numbered datagrams on UDP.
    SendFile(SendFileCommand),
    /// Send generated test data from a TCP client as fast as the connection takes it, then
    /// shutdown(SHUT_WR): how fast TCP goes on this machine, memory to memory (pair it with a
    /// [`Behaviour::Discard`] server).
    SendBulk(SendBulkCommand),
    /// List the files in the bridge's data directory.
    ListFiles,
    /// Make a new random Fernet key (the format of Python's `cryptography` library).
    FernetKey,
    /// Measure TCP against UDP on this machine: request/reply round trips and, optionally, a
    /// file-sized transfer over each.
    Compare(CompareSpec),
    /// Fetch a URL with HTTP GET and send the body from an endpoint (the lab's weather API).
    FetchSend(FetchSendCommand),
    /// Start putting a file from the browser into the data directory, chunk by chunk.
    UploadStart {
        /// File name in the data directory.
        file: String,
        /// Its size in bytes, as the browser knows it.
        size: u64,
    },
    /// The next bytes of an upload, in order: a session's upload commands are carried out in
    /// the order they arrive, and a chunk whose `offset` is not where the upload stands is
    /// refused.
    UploadChunk {
        /// From the reply to `upload_start`.
        upload: u64,
        /// Where in the file this chunk starts (optional): the bytes received so far.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
        /// The bytes, standard base64 (at most 128 KiB of bytes per chunk).
        base64: String,
    },
    /// The last chunk was sent: check the size and keep the file.
    UploadFinish { upload: u64 },
    /// Change an endpoint's simulated network trouble while it runs.
    Impair {
        endpoint: EndpointId,
        impairment: Impairment,
    },
    /// The Python 3 program that does what an endpoint with this spec does.
    PythonProgram {
        /// The endpoint's spec.
        spec: EndpointSpec,
    },
    /// Save a program (the page's editor) as a `.py` file in the data directory.
    ProgramSave {
        /// File name in the data directory, ending in `.py`.
        file: String,
        /// The program's text (at most 256 KiB).
        source: String,
    },
    /// Read a text file of the data directory (at most 256 KiB), such as a program to edit.
    FileRead {
        /// File name in the data directory.
        file: String,
    },
    /// Run a Python program of the data directory, traced: `python3 FILE ARGS...`, in the data
    /// directory, its console shown in the page. Replies with the program endpoint.
    ProgramRun {
        /// The `.py` file in the data directory.
        file: String,
        /// Its arguments (`sys.argv[1:]`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args: Vec<String>,
    },
    /// Text for a running program's stdin, as typed (end it with `\n` for `input()`).
    ProgramInput {
        /// The program endpoint.
        program: EndpointId,
        /// What to write.
        text: String,
    },
    /// The source of a program's script, for the source view: a page program's file, or what
    /// `bridge trace` sent with `trace_attach`.
    ProgramSource {
        /// The program endpoint.
        program: EndpointId,
    },
    /// `bridge trace` runs a program in a terminal and shows it here: replies with the program
    /// endpoint its records then name.
    TraceAttach {
        /// The command line.
        argv: Vec<String>,
        /// The process id.
        pid: u32,
        /// The Python script, as named on the command line.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        script: Option<String>,
        /// The script's text (at most 256 KiB), for the source view.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        /// The port (on 127.0.0.1) where `bridge trace` takes the shim's reports: not the
        /// program's traffic, so the bridge's capture leaves it out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel_port: Option<u16>,
    },
    /// What the shim reported, in order (at most 1024 records a command).
    TraceRecords {
        /// The program endpoint from `trace_attach`.
        program: EndpointId,
        /// The records.
        records: Vec<crate::TraceRecord>,
    },
    /// The checks there are (`bridge check --list`): each lab's scenario, built in or the
    /// course's (`--course DIR`).
    CheckList,
    /// Run a check against a server: one that runs already (`target`, `host:port`), or a
    /// `.py` program of the data directory that the bridge runs traced on the lab's port
    /// (`program`, as `program_run`, stopped after the check). One check at a time; a
    /// `check_started` event, then a `check_step` event per step, and the reply at the end.
    CheckRun {
        /// The check's name, from `check_list`.
        lab: String,
        /// `host:port` of a running server.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        /// A `.py` file in the data directory.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        program: Option<String>,
        /// The program's arguments (`sys.argv[1:]`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args: Vec<String>,
    },
    /// Save the captured packets (of one endpoint, or one connection of a server, if given)
    /// as a pcapng file in the data directory, for Wireshark.
    CaptureSave {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<EndpointId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conn: Option<ConnId>,
    },
    /// A terminal's program ended.
    TraceExit {
        /// The program endpoint from `trace_attach`.
        program: EndpointId,
        /// Its exit status, when it exited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i32>,
        /// The signal that ended it, when one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
    },
}

impl Command {
    /// Whether every text the command carries is within its limit. Everything a command
    /// carries may be kept (in the spec of a `socket` event, in an error's text) and shown to
    /// every page, so none is longer than its purpose needs: a host name is at most 253 bytes.
    /// Data to send is bounded by the message size instead.
    pub fn check_lengths(&self) -> Result<(), String> {
        // "host:port", with brackets around an IPv6 address.
        let address = MAX_HOST + 8;
        match self {
            Command::TcpServerStart(s) => s.check_lengths(),
            Command::UdpServerStart(s) => s.check_lengths(),
            Command::TcpClientConnect(c) => c.check_lengths(),
            Command::UdpClientOpen(c) => c.check_lengths(),
            Command::PythonProgram { spec } => spec.check_lengths(),
            Command::Send(send) => within_opt("to", &send.to, address),
            Command::FetchSend(fetch) => {
                within("url", &fetch.url, MAX_URL)?;
                within_opt("to", &fetch.to, address)
            }
            Command::SendFile(send) => within("file", &send.file, MAX_FILE_NAME),
            Command::UploadStart { file, .. } | Command::FileRead { file } => {
                within("file", file, MAX_FILE_NAME)
            }
            Command::ProgramSave { file, source } => {
                within("file", file, MAX_FILE_NAME)?;
                within("source", source, MAX_PROGRAM_SOURCE)
            }
            Command::ProgramRun { file, args } => {
                within("file", file, MAX_FILE_NAME)?;
                check_args(args)
            }
            Command::CheckRun {
                lab,
                target,
                program,
                args,
            } => {
                within("lab", lab, MAX_FILE_NAME)?;
                within_opt("target", target, address)?;
                within_opt("program", program, MAX_FILE_NAME)?;
                check_args(args)
            }
            Command::ProgramInput { text, .. } => within("text", text, MAX_PROGRAM_INPUT),
            Command::TraceAttach {
                argv,
                script,
                source,
                ..
            } => {
                check_args(argv)?;
                within_opt("script", script, MAX_SPEC_TEXT)?;
                within_opt("source", source, MAX_PROGRAM_SOURCE)
            }
            Command::TraceRecords { records, .. } if records.len() > MAX_TRACE_RECORDS => {
                Err(format!(
                    "{} records; at most {MAX_TRACE_RECORDS} go in one command",
                    records.len()
                ))
            }
            _ => Ok(()),
        }
    }

    /// Short name of the command, for logs and error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::TcpServerStart(_) => "tcp_server_start",
            Command::UdpServerStart(_) => "udp_server_start",
            Command::TcpClientConnect(_) => "tcp_client_connect",
            Command::UdpClientOpen(_) => "udp_client_open",
            Command::Send(_) => "send",
            Command::ShutdownWrite(_) => "shutdown_write",
            Command::Close(_) => "close",
            Command::Reset => "reset",
            Command::SendFile(_) => "send_file",
            Command::SendBulk(_) => "send_bulk",
            Command::ListFiles => "list_files",
            Command::FernetKey => "fernet_key",
            Command::Compare(_) => "compare",
            Command::FetchSend(_) => "fetch_send",
            Command::UploadStart { .. } => "upload_start",
            Command::UploadChunk { .. } => "upload_chunk",
            Command::UploadFinish { .. } => "upload_finish",
            Command::PythonProgram { .. } => "python_program",
            Command::Impair { .. } => "impair",
            Command::ProgramSave { .. } => "program_save",
            Command::FileRead { .. } => "file_read",
            Command::ProgramRun { .. } => "program_run",
            Command::ProgramInput { .. } => "program_input",
            Command::ProgramSource { .. } => "program_source",
            Command::TraceAttach { .. } => "trace_attach",
            Command::TraceRecords { .. } => "trace_records",
            Command::TraceExit { .. } => "trace_exit",
            Command::CheckList => "check_list",
            Command::CheckRun { .. } => "check_run",
            Command::CaptureSave { .. } => "capture_save",
        }
    }
}

/// A program's command line: at most [`MAX_PROGRAM_ARGS`] arguments of at most
/// [`MAX_SPEC_TEXT`] bytes.
fn check_args(args: &[String]) -> Result<(), String> {
    if args.len() > MAX_PROGRAM_ARGS {
        return Err(format!(
            "{} arguments; at most {MAX_PROGRAM_ARGS} are accepted",
            args.len()
        ));
    }
    args.iter()
        .try_for_each(|arg| within("an argument", arg, MAX_SPEC_TEXT))
}

/// Names an endpoint, and optionally one accepted connection of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// An accepted connection of that (server) endpoint.
    #[serde(default)]
    pub conn: Option<ConnId>,
}

/// Send data from an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendCommand {
    /// The endpoint, and for a TCP server the accepted connection.
    pub endpoint: EndpointId,
    /// The accepted connection of a TCP server to send on.
    #[serde(default)]
    pub conn: Option<ConnId>,
    /// For UDP: the `host:port` to send to. A UDP client sends to its server by default; a UDP
    /// server needs it (to reply to a peer by hand).
    #[serde(default)]
    pub to: Option<String>,
    /// What to send.
    pub data: DataInput,
    /// With a Fernet client: flip one byte of the token before sending, to see it rejected.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tamper: bool,
}

impl Command {
    /// close() a client or connection, or stop a server.
    pub fn close(endpoint: EndpointId, conn: Option<ConnId>) -> Command {
        Command::Close(Target { endpoint, conn })
    }

    /// Send data from an endpoint (to `to`, for UDP).
    pub fn send(
        endpoint: EndpointId,
        conn: Option<ConnId>,
        to: Option<String>,
        data: DataInput,
    ) -> Command {
        Command::Send(SendCommand {
            endpoint,
            conn,
            to,
            data,
            tamper: false,
        })
    }
}

/// Send a file of the data directory from a client endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendFileCommand {
    /// A TCP or UDP client.
    pub endpoint: EndpointId,
    /// File name in the data directory.
    pub file: String,
    /// UDP: payload bytes per datagram, after a 12-byte header (sequence number, count, datagram size).
    #[serde(default = "default_datagram_size")]
    pub datagram_size: usize,
}

/// Send `bytes` of generated data from a TCP client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendBulkCommand {
    /// A TCP client.
    pub endpoint: EndpointId,
    /// How many bytes, at most [`MAX_BULK`].
    pub bytes: u64,
}

/// Most bytes one `send_bulk` sends (64 GiB: a minute or more even on loopback).
pub const MAX_BULK: u64 = 64 << 30;

/// Largest UDP payload over IPv4.
pub const MAX_DATAGRAM: usize = 65_507;
/// Bytes in front of each datagram of a UDP file transfer: sequence number, datagram count and
/// payload size of each full datagram, big-endian u32 each.
pub const DATAGRAM_HEADER: usize = 12;
/// Most datagrams one UDP file transfer may have (4 GiB in 1 KiB datagrams). A receiver keeps
/// one bit per datagram, so this bounds what a peer's header can make it reserve (512 KiB).
pub const MAX_DATAGRAMS: u32 = 1 << 22;

/// Fetch a URL and send its body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchSendCommand {
    /// Where the body goes, as for [`Command::Send`].
    pub endpoint: EndpointId,
    #[serde(default)]
    pub conn: Option<ConnId>,
    #[serde(default)]
    pub to: Option<String>,
    /// An `http://` URL; its host is held to the same address policy as every socket.
    pub url: String,
}

/// Most bytes in one upload chunk (its base64 stays within one WebSocket frame).
pub const MAX_UPLOAD_CHUNK: usize = 128 * 1024;

/// Largest body a fetch sends on.
pub const MAX_FETCH_BODY: usize = 256 * 1024;

/// What a TCP-versus-UDP comparison measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareSpec {
    /// Request/reply round trips over each protocol.
    #[serde(default = "default_compare_count")]
    pub count: u32,
    /// Bytes per message (at most one UDP datagram).
    #[serde(default = "default_compare_size")]
    pub size: usize,
    /// Also send this many bytes one way over each (0: skip).
    #[serde(default)]
    pub file_bytes: u64,
    /// Payload bytes per datagram for the UDP part of the file.
    #[serde(default = "default_datagram_size")]
    pub datagram_size: usize,
}

/// Most round trips one comparison may make.
pub const MAX_COMPARE_COUNT: u32 = 100_000;
/// Largest file-sized transfer one comparison may make.
pub const MAX_COMPARE_FILE: u64 = 1 << 30;

fn default_compare_count() -> u32 {
    1000
}

fn default_compare_size() -> usize {
    64
}

fn default_datagram_size() -> usize {
    1024
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Behaviour, ConnectionPolicy, MAX_SPEC_TEXT};

    #[test]
    fn minimal_server_command_takes_lab_defaults() {
        let command: Command =
            serde_json::from_str(r#"{"op":"tcp_server_start","port":12000}"#).unwrap();
        let Command::TcpServerStart(spec) = command else {
            panic!("wrong command: {command:?}")
        };
        assert_eq!(spec.bind, "127.0.0.1");
        assert_eq!(spec.backlog, 1);
        assert_eq!(spec.recv_buffer, 1024);
        assert_eq!(spec.policy, ConnectionPolicy::OneShot);
    }

    #[test]
    fn texts_in_commands_are_bounded() {
        let long_host = TcpClientSpec::to(&"h".repeat(MAX_HOST + 1), 80);
        let why = Command::TcpClientConnect(long_host)
            .check_lengths()
            .unwrap_err();
        assert!(why.starts_with("host is 254 bytes"), "{why}");
        assert!(
            Command::TcpClientConnect(TcpClientSpec::to(&"h".repeat(MAX_HOST), 80))
                .check_lengths()
                .is_ok()
        );
        let spec = UdpServerSpec {
            behaviour: Behaviour::Prefix {
                prefix: "p".repeat(MAX_SPEC_TEXT + 1),
            },
            ..UdpServerSpec::default()
        };
        assert!(Command::UdpServerStart(spec).check_lengths().is_err());
    }

    #[test]
    fn behaviours_reply_like_the_labs() {
        assert_eq!(
            Behaviour::Uppercase.reply(b"hello world").unwrap(),
            b"HELLO WORLD"
        );
        let ack = Behaviour::Prefix {
            prefix: "ACK: ".into(),
        };
        assert_eq!(ack.reply(b"hi").unwrap(), b"ACK: hi");
        assert_eq!(Behaviour::PrintOnly.reply(b"hi"), None);
    }

    #[test]
    fn quit_word_ignores_line_endings_only() {
        let policy = ConnectionPolicy::Persistent {
            quit_word: Some("exit".into()),
        };
        assert!(policy.is_quit(b"exit\r\n"));
        assert!(!policy.is_quit(b"exits"));
        assert!(!policy.is_quit(b"EXIT"));
        assert!(!ConnectionPolicy::OneShot.is_quit(b"exit"));
    }
}
