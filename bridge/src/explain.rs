//! Turns OS errors into [`ErrorInfo`]: the errno-level kind, the OS's message, and a sentence a
//! student understands with a hint of what to do next. The words depend on the call that
//! failed and the address involved, so callers say both.

use std::io;

use shared::{ErrorInfo, ErrorKind};

/// The socket call that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Bind,
    Listen,
    Accept,
    Connect,
    Send,
    Recv,
    SendTo,
    RecvFrom,
    Shutdown,
}

impl Op {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Bind => "bind",
            Op::Listen => "listen",
            Op::Accept => "accept",
            Op::Connect => "connect",
            Op::Send => "send",
            Op::Recv => "recv",
            Op::SendTo => "sendto",
            Op::RecvFrom => "recvfrom",
            Op::Shutdown => "shutdown",
        }
    }
}

/// TCP or UDP, for the wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    Tcp,
    Udp,
}

/// Explains `err`, which `op` returned while working with `addr` (the address bound, or the
/// peer's).
pub(crate) fn explain(err: &io::Error, op: Op, proto: Proto, addr: &str) -> ErrorInfo {
    let kind = classify(err);
    let (explanation, hint) = words(kind, op, proto, addr);
    ErrorInfo {
        kind,
        errno: err.raw_os_error(),
        os_message: Some(err.to_string()),
        explanation,
        hint,
    }
}

/// connect() gave up after the bridge's own timeout (the OS had not answered yet).
pub(crate) fn connect_timed_out(addr: &str, after_ms: u64) -> ErrorInfo {
    ErrorInfo::new(
        ErrorKind::TimedOut,
        format!("No answer from {addr} within {after_ms} ms: the connection was never set up."),
    )
    .with_hint(
        "Check the address and port, that the server runs, and that no firewall drops the packets.",
    )
}

/// EMSGSIZE, by the system's own number (Windows' sockets say WSAEMSGSIZE, 10040); the other
/// kinds come through `io::ErrorKind`, which Rust maps from either (WSAECONNREFUSED, 10061, is
/// `ConnectionRefused` as ECONNREFUSED is).
#[cfg(unix)]
const EMSGSIZE: i32 = libc::EMSGSIZE;
#[cfg(windows)]
const EMSGSIZE: i32 = 10040;

fn classify(err: &io::Error) -> ErrorKind {
    if err.raw_os_error() == Some(EMSGSIZE) {
        return ErrorKind::MessageTooLong;
    }
    match err.kind() {
        io::ErrorKind::ConnectionRefused => ErrorKind::ConnectionRefused,
        io::ErrorKind::ConnectionReset => ErrorKind::ConnectionReset,
        io::ErrorKind::ConnectionAborted => ErrorKind::ConnectionAborted,
        io::ErrorKind::BrokenPipe => ErrorKind::BrokenPipe,
        io::ErrorKind::AddrInUse => ErrorKind::AddressInUse,
        io::ErrorKind::AddrNotAvailable => ErrorKind::AddressNotAvailable,
        io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        io::ErrorKind::TimedOut => ErrorKind::TimedOut,
        io::ErrorKind::HostUnreachable => ErrorKind::HostUnreachable,
        io::ErrorKind::NetworkUnreachable => ErrorKind::NetworkUnreachable,
        _ => ErrorKind::Other,
    }
}

fn words(kind: ErrorKind, op: Op, proto: Proto, addr: &str) -> (String, Option<String>) {
    let some = |s: &str| Some(s.to_string());
    match (kind, proto) {
        (ErrorKind::ConnectionRefused, Proto::Tcp) => (
            format!("Connection refused: nothing is listening on {addr}."),
            some("Start the server first, or check the address and port."),
        ),
        (ErrorKind::ConnectionRefused, Proto::Udp) => (
            format!(
                "Nothing is listening on UDP {addr}: the other machine answered the datagram \
                 with 'port unreachable'."
            ),
            some(
                "Start the UDP server first. UDP itself never confirms delivery; this only shows \
                 because the client used connect().",
            ),
        ),
        (ErrorKind::ConnectionReset, _) => (
            format!(
                "Connection reset by {addr}: the other side aborted the connection (for example \
                 it closed while data it had not read was still waiting)."
            ),
            some("The connection is gone; connect again to go on."),
        ),
        (ErrorKind::ConnectionAborted, _) => (
            format!("The connection with {addr} was aborted on this machine."),
            some("Connect again to go on."),
        ),
        (ErrorKind::BrokenPipe, _) => (
            format!("{addr} has already closed the connection, so nothing more can be sent."),
            some("Close this socket; connect again to send more."),
        ),
        (ErrorKind::AddressInUse, _) => (
            format!("Address already in use: another socket is already bound to {addr}."),
            some("Stop the other server, or pick another port (0 picks any free port)."),
        ),
        (ErrorKind::AddressNotAvailable, _) => (
            format!("{addr} is not an address of this machine, so nothing can be bound to it."),
            some("Use 127.0.0.1, or an address this machine really has."),
        ),
        (ErrorKind::PermissionDenied, _) if op == Op::Bind => (
            format!(
                "Permission denied binding {addr}: ports below 1024 are reserved for system \
                 services and need administrator rights."
            ),
            some("Pick a port above 1024, such as 12000."),
        ),
        (ErrorKind::PermissionDenied, _) => (
            format!(
                "The operating system did not allow {} on {addr}.",
                op.name()
            ),
            None,
        ),
        (ErrorKind::TimedOut, _) => (
            format!(
                "{} with {addr} timed out: the other side stopped answering.",
                op.name()
            ),
            some("Check that the other machine is up and reachable."),
        ),
        (ErrorKind::HostUnreachable, _) => (
            format!("No route to the machine at {addr}: it is down or not on this network."),
            some("Check the address, and that the machine is switched on and connected."),
        ),
        (ErrorKind::NetworkUnreachable, _) => (
            format!("The network of {addr} cannot be reached from this machine."),
            some("Check the address and this machine's network connection."),
        ),
        (ErrorKind::MessageTooLong, _) => (
            format!(
                "The datagram for {addr} is bigger than one UDP datagram can be \
                 (65,507 bytes of data over IPv4)."
            ),
            some("Send it in smaller pieces, or use TCP, which splits a stream for you."),
        ),
        _ => (
            format!("{} on {addr} failed.", op.name()),
            some("The operating system's message says more."),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_names_the_address_and_the_fix() {
        let err = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        let info = explain(&err, Op::Connect, Proto::Tcp, "127.0.0.1:12000");
        assert_eq!(info.kind, ErrorKind::ConnectionRefused);
        assert_eq!(info.errno, Some(libc::ECONNREFUSED));
        assert!(info
            .explanation
            .contains("nothing is listening on 127.0.0.1:12000"));
        assert!(info.hint.unwrap().contains("Start the server first"));
    }

    #[test]
    fn privileged_port_and_datagram_size() {
        let err = io::Error::from_raw_os_error(libc::EACCES);
        let info = explain(&err, Op::Bind, Proto::Tcp, "127.0.0.1:80");
        assert_eq!(info.kind, ErrorKind::PermissionDenied);
        assert!(info.hint.unwrap().contains("above 1024"));
        let err = io::Error::from_raw_os_error(libc::EMSGSIZE);
        let info = explain(&err, Op::SendTo, Proto::Udp, "127.0.0.1:9");
        assert_eq!(info.kind, ErrorKind::MessageTooLong);
    }
}
