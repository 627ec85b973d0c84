//! The specs of the endpoints a command creates: servers' behaviours, connection policies and
//! concurrency, the four kinds of spec, simulated trouble, and the limits every text in them
//! is held to. Every field that has a sensible default has one, chosen to match the labs.

use serde::Serialize;

/// Largest recv() buffer a spec may ask for.
pub const MAX_RECV_BUFFER: usize = 64 * 1024;
/// Largest listen() backlog a spec may ask for.
pub const MAX_BACKLOG: u32 = 128;

/// Longest host name (DNS allows 253 characters), and so any address a command names.
pub const MAX_HOST: usize = 253;
/// Longest text a spec carries (a fixed reply, a prefix, a secret, a key, a quit word).
pub const MAX_SPEC_TEXT: usize = 4096;
/// Longest file name a command may carry (the data directory accepts 128).
pub const MAX_FILE_NAME: usize = 255;
/// Longest URL `fetch_send` takes.
pub const MAX_URL: usize = 2048;

/// Refuses a text over its limit, naming the field.
pub(crate) fn within(field: &str, text: &str, max: usize) -> Result<(), String> {
    if text.len() <= max {
        Ok(())
    } else {
        Err(format!(
            "{field} is {} bytes long; at most {max} are accepted",
            text.len()
        ))
    }
}

pub(crate) fn within_opt(field: &str, text: &Option<String>, max: usize) -> Result<(), String> {
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
    ///
    /// [`Command::check_lengths`]: crate::Command::check_lengths
    pub fn check_lengths(&self) -> Result<(), String> {
        match self {
            EndpointSpec::TcpServer(s) => s.check_lengths(),
            EndpointSpec::UdpServer(s) => s.check_lengths(),
            EndpointSpec::TcpClient(c) => c.check_lengths(),
            EndpointSpec::UdpClient(c) => c.check_lengths(),
            // Made by the bridge from what it runs, never taken from a command.
            EndpointSpec::Program(_) | EndpointSpec::Traced(_) => Ok(()),
        }
    }
}

impl TcpServerSpec {
    pub(crate) fn check_lengths(&self) -> Result<(), String> {
        within("bind", &self.bind, MAX_HOST)?;
        self.behaviour.check_lengths()?;
        within_opt("log_file", &self.log_file, MAX_FILE_NAME)?;
        within_opt("secret", &self.secret, MAX_SPEC_TEXT)?;
        match &self.policy {
            ConnectionPolicy::Persistent { quit_word } => {
                within_opt("quit_word", quit_word, MAX_SPEC_TEXT)
            }
            ConnectionPolicy::OneShot => Ok(()),
        }
    }
}

impl UdpServerSpec {
    pub(crate) fn check_lengths(&self) -> Result<(), String> {
        within("bind", &self.bind, MAX_HOST)?;
        self.behaviour.check_lengths()?;
        within_opt("log_file", &self.log_file, MAX_FILE_NAME)
    }
}

impl TcpClientSpec {
    pub(crate) fn check_lengths(&self) -> Result<(), String> {
        within("host", &self.host, MAX_HOST)?;
        within_opt("secret", &self.secret, MAX_SPEC_TEXT)?;
        within_opt("fernet_key", &self.fernet_key, MAX_SPEC_TEXT)
    }
}

impl UdpClientSpec {
    pub(crate) fn check_lengths(&self) -> Result<(), String> {
        within("host", &self.host, MAX_HOST)
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
    /// The person's own program (see [`crate::ProgramSpec`]).
    Program(crate::ProgramSpec),
    /// One socket of a traced program (see [`crate::TracedSpec`]).
    Traced(crate::TracedSpec),
}

impl EndpointSpec {
    /// The simulated network trouble it starts with.
    pub fn impairment(&self) -> Option<&Impairment> {
        match self {
            EndpointSpec::TcpServer(s) => s.impair.as_ref(),
            EndpointSpec::UdpServer(s) => s.impair.as_ref(),
            EndpointSpec::TcpClient(c) => c.impair.as_ref(),
            EndpointSpec::UdpClient(c) => c.impair.as_ref(),
            EndpointSpec::Program(_) | EndpointSpec::Traced(_) => None,
        }
    }

    /// Whether it is a program, or a socket of one: not the playground's own.
    pub fn is_programs(&self) -> bool {
        matches!(self, EndpointSpec::Program(_) | EndpointSpec::Traced(_))
    }
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
