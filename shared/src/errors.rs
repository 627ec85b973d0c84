//! Typed errors: an errno-level kind, what the OS said, and a plain-language explanation with a
//! hint, so a student reads "nothing is listening on 127.0.0.1:12000 - start the server first"
//! rather than "os error 111".

use serde::Serialize;

/// What went wrong, at the level of the socket error numbers a student meets, plus the bridge's
/// own refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// ECONNREFUSED: nothing listens there (TCP), or a UDP datagram got "port unreachable".
    ConnectionRefused,
    /// ECONNRESET: the peer aborted the connection.
    ConnectionReset,
    /// ECONNABORTED: the connection was aborted on this machine.
    ConnectionAborted,
    /// EPIPE: sending on a connection the peer already closed.
    BrokenPipe,
    /// EADDRINUSE: another socket holds the address and port.
    AddressInUse,
    /// EADDRNOTAVAIL: the address does not belong to this machine.
    AddressNotAvailable,
    /// EACCES / EPERM: not allowed by the OS (ports below 1024, broadcast, ...).
    PermissionDenied,
    /// ETIMEDOUT, or no answer within the time given.
    TimedOut,
    /// EHOSTUNREACH.
    HostUnreachable,
    /// ENETUNREACH.
    NetworkUnreachable,
    /// The host name could not be resolved.
    NameResolutionFailed,
    /// EMSGSIZE: a datagram bigger than UDP allows.
    MessageTooLong,
    /// The bridge's safety policy forbids this (a non-loopback address, a privileged port).
    NotAllowed,
    /// A limit of the bridge was reached (endpoints, connections, sessions, sizes).
    LimitReached,
    /// The endpoint or connection named does not exist (any more).
    UnknownEndpoint,
    /// The command does not fit the endpoint (such as a quit word on a UDP server).
    Unsupported,
    /// The message or command is malformed.
    InvalidRequest,
    /// The hello had no token or a wrong one.
    Unauthorized,
    /// The hello named another protocol version.
    VersionMismatch,
    /// Anything else; the OS message says more.
    Other,
}

/// An error as the bridge reports it, in a reply or in an error event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorInfo {
    /// The kind of error.
    pub kind: ErrorKind,
    /// The OS error number, where the OS gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    /// The OS's own message (such as "Connection refused (os error 111)").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_message: Option<String>,
    /// What happened, in plain words.
    pub explanation: String,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl ErrorInfo {
    /// An error that did not come from the OS.
    pub fn new(kind: ErrorKind, explanation: impl Into<String>) -> Self {
        ErrorInfo {
            kind,
            errno: None,
            os_message: None,
            explanation: explanation.into(),
            hint: None,
        }
    }

    /// The bytes its texts take (see `Event::kept_bytes`).
    pub fn kept_bytes(&self) -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        self.explanation.len() + text(&self.hint) + text(&self.os_message)
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl std::fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.explanation)?;
        if let Some(hint) = &self.hint {
            write!(f, " {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ErrorInfo {}
