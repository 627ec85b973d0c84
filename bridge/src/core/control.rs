//! Requests to a running socket (send, shut down, send a file or test data), from a command to
//! the socket's own task, each answered through its `done` channel. The task is the only one
//! that touches its socket, so requests never race each other on it.

use std::net::SocketAddr;

use shared::{ErrorInfo, ErrorKind, TransferReport};
use tokio::sync::oneshot;

/// A request to a running socket from a command; the task answers through `done`.
pub(crate) enum Control {
    /// send()/sendall() on TCP; sendto() on UDP, to `to` or the default peer.
    Send {
        data: Vec<u8>,
        to: Option<SocketAddr>,
        /// Fernet clients: spoil the token on purpose.
        tamper: bool,
        done: oneshot::Sender<Result<usize, ErrorInfo>>,
    },
    /// shutdown(SHUT_WR).
    ShutdownWrite {
        done: oneshot::Sender<Result<(), ErrorInfo>>,
    },
    /// Send a file of the data directory (UDP: in datagrams of `datagram_size` bytes).
    SendFile {
        file: String,
        datagram_size: usize,
        done: oneshot::Sender<Result<TransferReport, ErrorInfo>>,
    },
    /// Send this many bytes of generated data (TCP), then shut down the write side.
    SendBulk {
        bytes: u64,
        done: oneshot::Sender<Result<TransferReport, ErrorInfo>>,
    },
}

impl Control {
    /// Answers a request this kind of socket cannot carry out.
    pub(crate) fn refuse(self, why: &str) {
        let error = || ErrorInfo::new(ErrorKind::Unsupported, why);
        match self {
            Control::Send { done, .. } => {
                let _ = done.send(Err(error()));
            }
            Control::ShutdownWrite { done } => {
                let _ = done.send(Err(error()));
            }
            Control::SendFile { done, .. } | Control::SendBulk { done, .. } => {
                let _ = done.send(Err(error()));
            }
        }
    }
}
