//! Commands a client asks the bridge to carry out, and the specs of the endpoints they create.
//!
//! Every field that has a sensible default has one, chosen to match the labs
//! (`127.0.0.1`, `recv(1024)`, `listen(1)`), so `{"op":"tcp_server_start","port":12000}` is a
//! complete command.

use serde::{Deserialize, Serialize};

use crate::DataInput;

/// Identifies an endpoint (a server or a client) for as long as the bridge runs. Id 0 stands
/// for the bridge itself in events such as a reset.
pub type EndpointId = u32;

/// Identifies one accepted TCP connection of a server, unique across the bridge.
pub type ConnId = u32;

/// Largest recv() buffer a spec may ask for.
pub const MAX_RECV_BUFFER: usize = 64 * 1024;
/// Largest listen() backlog a spec may ask for.
pub const MAX_BACKLOG: u32 = 128;

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
}

/// Longest host name (DNS allows 253 characters), and so any address a command names.
pub const MAX_HOST: usize = 253;
/// Longest text a spec carries (a fixed reply, a prefix, a secret, a key, a quit word).
pub const MAX_SPEC_TEXT: usize = 4096;
/// Longest file name a command may carry (the data directory accepts 128).
pub const MAX_FILE_NAME: usize = 255;
/// Longest URL `fetch_send` takes.
pub const MAX_URL: usize = 2048;

/// Refuses a text over its limit, naming the field.
fn within(field: &str, text: &str, max: usize) -> Result<(), String> {
    if text.len() <= max {
        Ok(())
    } else {
        Err(format!(
            "{field} is {} bytes long; at most {max} are accepted",
            text.len()
        ))
    }
}

fn within_opt(field: &str, text: &Option<String>, max: usize) -> Result<(), String> {
    text.as_deref().map_or(Ok(()), |t| within(field, t, max))
}

impl Behaviour {
    fn check_lengths(&self) -> Result<(), String> {
        match self {
            Behaviour::Prefix { prefix: text } | Behaviour::Fixed { reply: text } => {
                within("the reply text", text, MAX_SPEC_TEXT)
            }
            Behaviour::FernetEcho { key } => within("the Fernet key", key, MAX_SPEC_TEXT),
            Behaviour::SaveToFile { file } => within("the file name", file, MAX_FILE_NAME),
            _ => Ok(()),
        }
    }
}

impl EndpointSpec {
    /// Whether every text in the spec is within its limit (see [`Command::check_lengths`]).
    pub fn check_lengths(&self) -> Result<(), String> {
        match self {
            EndpointSpec::TcpServer(s) => {
                within("bind", &s.bind, MAX_HOST)?;
                s.behaviour.check_lengths()?;
                within_opt("log_file", &s.log_file, MAX_FILE_NAME)?;
                within_opt("secret", &s.secret, MAX_SPEC_TEXT)?;
                match &s.policy {
                    ConnectionPolicy::Persistent { quit_word } => {
                        within_opt("quit_word", quit_word, MAX_SPEC_TEXT)
                    }
                    ConnectionPolicy::OneShot => Ok(()),
                }
            }
            EndpointSpec::UdpServer(s) => {
                within("bind", &s.bind, MAX_HOST)?;
                s.behaviour.check_lengths()?;
                within_opt("log_file", &s.log_file, MAX_FILE_NAME)
            }
            EndpointSpec::TcpClient(c) => {
                within("host", &c.host, MAX_HOST)?;
                within_opt("secret", &c.secret, MAX_SPEC_TEXT)?;
                within_opt("fernet_key", &c.fernet_key, MAX_SPEC_TEXT)
            }
            EndpointSpec::UdpClient(c) => within("host", &c.host, MAX_HOST),
        }
    }
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
            Command::TcpServerStart(s) => EndpointSpec::TcpServer(s.clone()).check_lengths(),
            Command::UdpServerStart(s) => EndpointSpec::UdpServer(s.clone()).check_lengths(),
            Command::TcpClientConnect(c) => EndpointSpec::TcpClient(c.clone()).check_lengths(),
            Command::UdpClientOpen(c) => EndpointSpec::UdpClient(c.clone()).check_lengths(),
            Command::PythonProgram { spec } => spec.check_lengths(),
            Command::Send(send) => within_opt("to", &send.to, address),
            Command::FetchSend(fetch) => {
                within("url", &fetch.url, MAX_URL)?;
                within_opt("to", &fetch.to, address)
            }
            Command::SendFile(send) => within("file", &send.file, MAX_FILE_NAME),
            Command::UploadStart { file, .. } => within("file", file, MAX_FILE_NAME),
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
        }
    }
}

/// What a server does with each chunk it receives (read from JSON by `spec_wire`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Behaviour {
    /// Only print (log) what arrives; never reply.
    PrintOnly,
    /// Send every chunk back unchanged.
    Echo,
    /// Send every chunk back in upper case (the Kurose & Ross lab).
    Uppercase,
    /// Send every chunk back after a prefix such as `"ACK: "`.
    Prefix {
        /// Bytes put before the echoed chunk.
        prefix: String,
    },
    /// Always send the same reply, such as `"Thanks for connecting"`.
    Fixed {
        /// The reply.
        reply: String,
    },
    /// A person types the replies (a [`Command::Send`] naming the connection).
    Manual,
    /// Write everything received into a file of the data directory, until EOF (TCP) or until
    /// the last datagram of a numbered transfer (UDP); then report size and SHA-256.
    SaveToFile {
        /// File name in the data directory.
        file: String,
    },
    /// Read everything and throw it away, like a receiver that writes to `/dev/null` (TCP):
    /// reports progress and, at EOF, bytes and throughput instead of one event per recv().
    Discard,
    /// A chat room (TCP, line by line): each client's first line is its nickname (or
    /// `/nick NAME`), every other line goes to all other clients as `NAME: line`; `/who`
    /// lists who is there, `/quit` leaves; joins and leaves are announced. Serves every
    /// client at once, whatever the concurrency says.
    Chat,
    /// Each line is a Fernet token (Python `cryptography`'s format): decrypt it, and reply with
    /// the plaintext encrypted again under the same key, one token per line.
    FernetEcho {
        /// The shared key: 32 bytes, URL-safe base64.
        key: String,
    },
}

impl Behaviour {
    /// The automatic reply to one received chunk, if this behaviour makes one.
    pub fn reply(&self, chunk: &[u8]) -> Option<Vec<u8>> {
        match self {
            Behaviour::PrintOnly
            | Behaviour::Manual
            | Behaviour::SaveToFile { .. }
            | Behaviour::Discard
            | Behaviour::Chat
            | Behaviour::FernetEcho { .. } => None,
            Behaviour::Echo => Some(chunk.to_vec()),
            Behaviour::Uppercase => Some(chunk.to_ascii_uppercase()),
            Behaviour::Prefix { prefix } => {
                let mut out = prefix.as_bytes().to_vec();
                out.extend_from_slice(chunk);
                Some(out)
            }
            Behaviour::Fixed { reply } => Some(reply.as_bytes().to_vec()),
        }
    }
}

/// How long a TCP server keeps an accepted connection (read from JSON by `spec_wire`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnectionPolicy {
    /// One recv() of the buffer size, the reply, close(): the labs' exact shape. With the
    /// manual behaviour the connection closes after the person's first reply.
    OneShot,
    /// Keep receiving until the peer closes, or until a chunk equal to the quit word (ignoring
    /// surrounding white space) arrives.
    Persistent {
        /// Such as `"exit"`; `None` keeps the connection until the peer closes.
        #[serde(default)]
        quit_word: Option<String>,
    },
}

impl ConnectionPolicy {
    /// Whether `chunk` is the quit word of this policy.
    pub fn is_quit(&self, chunk: &[u8]) -> bool {
        match self {
            ConnectionPolicy::Persistent {
                quit_word: Some(word),
            } => std::str::from_utf8(chunk).is_ok_and(|text| text.trim() == word.trim()),
            _ => false,
        }
    }
}

/// How a TCP server deals with a second client while it serves one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Concurrency {
    /// accept() the next client only after the current one is closed; the others wait in the
    /// listen backlog (the timeline shows how many).
    OneAtATime,
    /// One task per client, as with a thread per client in the labs.
    Concurrent,
}

/// A TCP server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TcpServerSpec {
    /// Address to bind: `127.0.0.1` by default.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// Port to bind; 0 asks the OS for any free port (the event says which).
    #[serde(default)]
    pub port: u16,
    /// listen() backlog.
    #[serde(default = "default_backlog")]
    pub backlog: u32,
    /// What to do with each received chunk.
    #[serde(default = "default_behaviour")]
    pub behaviour: Behaviour,
    /// How long to keep each connection.
    #[serde(default = "default_policy")]
    pub policy: ConnectionPolicy,
    /// One client at a time, or many.
    #[serde(default = "default_concurrency")]
    pub concurrency: Concurrency,
    /// Size of each recv() call, in bytes.
    #[serde(default = "default_recv_buffer")]
    pub recv_buffer: usize,
    /// Append every received message, one line each, to this file of the data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_file: Option<String>,
    /// Serve only clients that prove they know this secret: the server sends
    /// `AUTH <nonce>`, the client answers with the hex HMAC-SHA256 of the nonce under the
    /// secret, and gets `OK` or `DENIED`. The secret itself never crosses the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Simulated network trouble on what this endpoint sends (and, for TCP, how fast it reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impair: Option<Impairment>,
}

/// A UDP server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UdpServerSpec {
    /// Address to bind: `127.0.0.1` by default.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// Port to bind; 0 asks the OS for any free port.
    #[serde(default)]
    pub port: u16,
    /// What to do with each datagram.
    #[serde(default = "default_behaviour")]
    pub behaviour: Behaviour,
    /// Size of each recvfrom() buffer; a longer datagram is cut to it (as in the labs).
    #[serde(default = "default_recv_buffer")]
    pub recv_buffer: usize,
    /// Append every received datagram, one line each, to this file of the data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_file: Option<String>,
    /// Simulated network trouble on what this endpoint sends (and, for TCP, how fast it reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impair: Option<Impairment>,
}

/// A TCP client.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TcpClientSpec {
    /// Server host name or address: `127.0.0.1` by default.
    #[serde(default = "default_bind")]
    pub host: String,
    /// Server port.
    pub port: u16,
    /// How long connect() may take.
    #[serde(default = "default_connect_timeout")]
    pub timeout_ms: u64,
    /// Size of each recv() call, in bytes.
    #[serde(default = "default_recv_buffer")]
    pub recv_buffer: usize,
    /// Answer a server's `AUTH <nonce>` challenge with this secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Encrypt what is sent as Fernet tokens (one per line) and decrypt tokens received (also
    /// as the last word of a chat line). Lines starting with `/` (chat commands) go in clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fernet_key: Option<String>,
    /// Simulated network trouble on what this endpoint sends (and, for TCP, how fast it reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impair: Option<Impairment>,
}

/// A UDP client.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UdpClientSpec {
    /// Server host name or address: `127.0.0.1` by default.
    #[serde(default = "default_bind")]
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Whether to connect() the socket to the server. A connected UDP socket hears the OS's
    /// "port unreachable" answer, so a datagram to a closed port shows up as an error.
    #[serde(default)]
    pub connect: bool,
    /// How long to wait for a reply after each send before saying none came.
    #[serde(default = "default_recv_timeout")]
    pub recv_timeout_ms: u64,
    /// Size of each recvfrom() buffer.
    #[serde(default = "default_recv_buffer")]
    pub recv_buffer: usize,
    /// Simulated network trouble on what this endpoint sends (and, for TCP, how fast it reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impair: Option<Impairment>,
}

/// The spec an endpoint was created with (read from JSON by `spec_wire`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EndpointSpec {
    /// See [`TcpServerSpec`].
    TcpServer(TcpServerSpec),
    /// See [`UdpServerSpec`].
    UdpServer(UdpServerSpec),
    /// See [`TcpClientSpec`].
    TcpClient(TcpClientSpec),
    /// See [`UdpClientSpec`].
    UdpClient(UdpClientSpec),
}

impl EndpointSpec {
    /// The simulated network trouble it starts with.
    pub fn impairment(&self) -> Option<&Impairment> {
        match self {
            EndpointSpec::TcpServer(s) => s.impair.as_ref(),
            EndpointSpec::UdpServer(s) => s.impair.as_ref(),
            EndpointSpec::TcpClient(c) => c.impair.as_ref(),
            EndpointSpec::UdpClient(c) => c.impair.as_ref(),
        }
    }
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

impl Default for TcpServerSpec {
    /// The labs' server: 127.0.0.1, any free port, listen(1), echo, one-shot, one at a time.
    fn default() -> Self {
        TcpServerSpec {
            bind: default_bind(),
            port: 0,
            backlog: default_backlog(),
            behaviour: default_behaviour(),
            policy: default_policy(),
            concurrency: default_concurrency(),
            recv_buffer: default_recv_buffer(),
            log_file: None,
            secret: None,
            impair: None,
        }
    }
}

impl Default for UdpServerSpec {
    /// 127.0.0.1, any free port, echo, recvfrom(1024).
    fn default() -> Self {
        UdpServerSpec {
            bind: default_bind(),
            port: 0,
            behaviour: default_behaviour(),
            recv_buffer: default_recv_buffer(),
            log_file: None,
            impair: None,
        }
    }
}

impl TcpClientSpec {
    /// A client of `host:port` with the labs' defaults.
    pub fn to(host: &str, port: u16) -> Self {
        TcpClientSpec {
            host: host.to_string(),
            port,
            timeout_ms: default_connect_timeout(),
            recv_buffer: default_recv_buffer(),
            secret: None,
            fernet_key: None,
            impair: None,
        }
    }
}

impl UdpClientSpec {
    /// An unconnected client of `host:port` with the labs' defaults.
    pub fn to(host: &str, port: u16) -> Self {
        UdpClientSpec {
            host: host.to_string(),
            port,
            connect: false,
            recv_timeout_ms: default_recv_timeout(),
            recv_buffer: default_recv_buffer(),
            impair: None,
        }
    }
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

/// Simulated network trouble, applied by the bridge at the socket boundary: the real network
/// (loopback) loses nothing, so this is how a class sees what UDP does with a bad one, and how
/// TCP's flow control holds a sender back. Everything it does is marked as simulated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Impairment {
    /// UDP: datagrams sent that silently never leave, in percent.
    #[serde(default)]
    pub loss_percent: u8,
    /// UDP: datagrams sent twice, in percent.
    #[serde(default)]
    pub duplicate_percent: u8,
    /// UDP: datagrams held back and sent after the next one, in percent.
    #[serde(default)]
    pub reorder_percent: u8,
    /// Milliseconds added before each send (UDP and TCP).
    #[serde(default)]
    pub delay_ms: u32,
    /// TCP: read at most this many bytes a second (0: as fast as they come), so the peer's
    /// sends fill the buffers and stall.
    #[serde(default)]
    pub read_bytes_per_second: u32,
}

/// Longest simulated delay: a teaching delay is seconds, and every delayed datagram is held
/// in memory until it goes.
pub const MAX_DELAY_MS: u32 = 10_000;

impl Impairment {
    /// Why this impairment cannot be simulated, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        for (name, percent) in [
            ("loss_percent", self.loss_percent),
            ("duplicate_percent", self.duplicate_percent),
            ("reorder_percent", self.reorder_percent),
        ] {
            if percent > 100 {
                return Err(format!("{name} is a percentage: 0 to 100, not {percent}"));
            }
        }
        if self.delay_ms > MAX_DELAY_MS {
            return Err(format!(
                "delay_ms may be at most {MAX_DELAY_MS} (10 s), not {}",
                self.delay_ms
            ));
        }
        Ok(())
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

pub(crate) fn default_bind() -> String {
    "127.0.0.1".to_string()
}
pub(crate) fn default_backlog() -> u32 {
    1
}
pub(crate) fn default_behaviour() -> Behaviour {
    Behaviour::Echo
}
pub(crate) fn default_policy() -> ConnectionPolicy {
    ConnectionPolicy::OneShot
}
pub(crate) fn default_concurrency() -> Concurrency {
    Concurrency::OneAtATime
}
pub(crate) fn default_recv_buffer() -> usize {
    1024
}
pub(crate) fn default_connect_timeout() -> u64 {
    5_000
}
pub(crate) fn default_recv_timeout() -> u64 {
    2_000
}

#[cfg(test)]
mod tests {
    use super::*;

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
