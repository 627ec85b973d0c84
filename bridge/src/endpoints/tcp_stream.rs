//! What TCP clients and accepted connections share: sending all of a buffer and shutting down
//! the write side, each recorded as an event before the call so that the timeline never shows
//! the peer's recv() ahead of the send() that caused it; the requests both answer alike; the
//! challenge-response of a server with a secret; and who is to blame for a failed connection.

use std::time::Duration;

use shared::{ClosedBy, ErrorInfo, ErrorKind, EventKind, Payload};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

use crate::crypto;

use super::tcp_state;
use crate::core::control::Control;
use crate::core::ctx::Ctx;
use crate::core::registry::Handle;
use crate::explain::{explain, Op, Proto};
use crate::files::datadir::DataDir;
use crate::files::tcp_transfer;

/// sendall(): writes every byte, or fails with an explained error. Gives up when the socket is
/// stopped, so a peer that never reads cannot keep it open.
pub(crate) async fn send_all(
    ctx: &Ctx,
    writer: &mut (impl AsyncWrite + Unpin),
    data: &[u8],
) -> Result<usize, ErrorInfo> {
    ctx.emit(EventKind::Send {
        data: Payload::from_bytes(data),
    });
    let result = tokio::select! {
        result = writer.write_all(data) => result,
        _ = ctx.life.stopped() => {
            return Err(ErrorInfo::new(
                ErrorKind::ConnectionAborted,
                "The socket was closed before all the data could be sent.",
            ))
        }
    };
    result.map(|()| data.len()).map_err(|e| {
        let info = explain(&e, Op::Send, Proto::Tcp, ctx.peer_name());
        ctx.emit(EventKind::Error {
            op: Op::Send.name().into(),
            error: info.clone(),
        });
        info
    })
}

/// shutdown(SHUT_WR): the peer's next recv() returns 0 bytes, and this side can still receive.
pub(crate) async fn shutdown_write(
    ctx: &Ctx,
    writer: &mut (impl AsyncWrite + Unpin),
) -> Result<(), ErrorInfo> {
    ctx.emit(EventKind::Shutdown);
    writer.shutdown().await.map_err(|e| {
        let info = explain(&e, Op::Shutdown, Proto::Tcp, ctx.peer_name());
        ctx.emit(EventKind::Error {
            op: Op::Shutdown.name().into(),
            error: info.clone(),
        });
        info
    })
}

/// How long a client may take to answer the server's challenge.
const AUTH_WAIT: Duration = Duration::from_secs(30);
/// Longest answer read.
const AUTH_LINE: usize = 512;

/// The server side of the challenge-response: sends `AUTH <nonce>`, reads one line, and
/// answers `OK` or `DENIED`. Returns why the client is not served, if it is not.
pub(crate) async fn authenticate(
    ctx: &Ctx,
    stream: &mut TcpStream,
    secret: &str,
) -> Result<(), &'static str> {
    let nonce = crypto::nonce();
    send_all(ctx, stream, format!("AUTH {nonce}\n").as_bytes())
        .await
        .map_err(|_| "sending the challenge failed")?;
    let mut lines = crypto::Lines::default();
    let mut buf = [0u8; AUTH_LINE];
    let mut line = Vec::new();
    while line.is_empty() {
        let read = tokio::select! {
            _ = ctx.life.stopped() => return Err("stopped while waiting for the answer"),
            read = tokio::time::timeout(AUTH_WAIT, stream.read(&mut buf)) => read,
        };
        match read {
            Err(_) => return Err("no answer to the challenge in time"),
            Ok(Ok(0)) => return Err("the client left before answering the challenge"),
            Ok(Ok(n)) => {
                ctx.emit(EventKind::Recv {
                    data: Payload::from_bytes(&buf[..n]),
                    rtt_us: None,
                });
                match lines.push(&buf[..n]) {
                    Ok(complete) => line = complete,
                    Err(crypto::LineTooLong) => break,
                }
            }
            Ok(Err(err)) => {
                recv_failed(ctx, &err);
                return Err("the connection broke during the challenge");
            }
        }
    }
    let answer = line.into_iter().next().unwrap_or_default();
    let ok = crypto::verify(secret, &nonce, &answer);
    let detail = if ok {
        "the client proved it knows the secret (HMAC-SHA256 of the challenge)"
    } else {
        "wrong answer to the challenge: the client does not know the secret"
    };
    ctx.emit(EventKind::Auth {
        ok,
        detail: detail.into(),
    });
    let verdict: &[u8] = if ok { b"OK\n" } else { b"DENIED\n" };
    let sent = send_all(ctx, stream, verdict).await;
    match (ok, sent) {
        (true, Ok(_)) => Ok(()),
        (true, Err(_)) => Err("the connection broke after the challenge"),
        (false, _) => Err("authentication failed: wrong secret"),
    }
}

/// Records a failed recv() and says who ended the connection: a reset comes from the peer.
pub(crate) fn recv_failed(ctx: &Ctx, err: &std::io::Error) -> ClosedBy {
    let info = explain(err, Op::Recv, Proto::Tcp, ctx.peer_name());
    let by = closed_by(&info);
    ctx.emit(EventKind::Error {
        op: Op::Recv.name().into(),
        error: info,
    });
    by
}

/// Who is to blame for a connection that failed with this error.
pub(crate) fn closed_by(info: &ErrorInfo) -> ClosedBy {
    match info.kind {
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => ClosedBy::Peer,
        _ => ClosedBy::Local,
    }
}

/// What a `send` request asks for, handed back by [`carry_out`].
pub(crate) struct SendRequest {
    pub(crate) data: Vec<u8>,
    pub(crate) tamper: bool,
    pub(crate) done: tokio::sync::oneshot::Sender<Result<usize, ErrorInfo>>,
}

/// Carries out the requests a TCP client and an accepted connection answer alike: shutting
/// down the write side, sending a file, sending test data. A `send` differs between them (a
/// client may encrypt it, a one-shot server closes after it), so it is handed back.
pub(crate) async fn carry_out(
    ctx: &Ctx,
    data: &DataDir,
    writer: &mut OwnedWriteHalf,
    watch: &mut tcp_state::Watch,
    request: Control,
) -> Option<SendRequest> {
    match request {
        Control::ShutdownWrite { done } => {
            let _ = done.send(shutdown_write(ctx, writer).await);
            // The FIN is out: FIN_WAIT1 (or already FIN_WAIT2), shown now, not at the next poll.
            let fd = tcp_state::handle(writer.as_ref());
            watch.check(ctx, tcp_state::of_socket(fd));
        }
        Control::SendFile { file, done, .. } => {
            let source = tcp_transfer::Source::File(&file);
            let _ = done.send(tcp_transfer::send_tcp(ctx, data, writer, source).await);
        }
        Control::SendBulk { bytes, done } => {
            let source = tcp_transfer::Source::Generated(bytes);
            let _ = done.send(tcp_transfer::send_tcp(ctx, data, writer, source).await);
        }
        Control::Send {
            data, tamper, done, ..
        } => return Some(SendRequest { data, tamper, done }),
    }
    None
}

/// Closes a TCP socket's handle (with a reason, or its lifeline's) and looks up what the
/// kernel keeps of the connection afterwards (TIME_WAIT, or gone).
pub(crate) fn close_tcp(handle: Handle, why: Option<(ClosedBy, String)>) {
    let ctx = handle.ctx.clone();
    match why {
        Some((by, reason)) => handle.close(by, reason),
        None => handle.close_stopped(),
    }
    tcp_state::after_close(ctx);
}
