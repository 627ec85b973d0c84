//! What TCP clients and accepted connections share: sending all of a buffer and shutting down
//! the write side, each recorded as an event before the call so that the timeline never shows
//! the peer's recv() ahead of the send() that caused it.

use shared::{ClosedBy, ErrorInfo, ErrorKind, EventKind, Payload};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;

use crate::events::Origin;
use crate::explain::{explain, Op, Proto};
use crate::hub::{Hub, Lifeline};

/// sendall(): writes every byte, or fails with an explained error. Gives up when the socket is
/// stopped, so a peer that never reads cannot keep it open.
pub(crate) async fn send_all(
    hub: &Hub,
    origin: &Origin,
    life: &Lifeline,
    writer: &mut OwnedWriteHalf,
    data: &[u8],
) -> Result<usize, ErrorInfo> {
    hub.log.emit(
        origin,
        EventKind::Send {
            data: Payload::from_bytes(data),
        },
    );
    let result = tokio::select! {
        result = writer.write_all(data) => result,
        _ = life.stopped() => {
            return Err(ErrorInfo::new(
                ErrorKind::ConnectionAborted,
                "The socket was closed before all the data could be sent.",
            ))
        }
    };
    result.map(|()| data.len()).map_err(|e| {
        let info = explain(&e, Op::Send, Proto::Tcp, peer_name(origin));
        hub.log.emit(
            origin,
            EventKind::Error {
                op: Op::Send.name().into(),
                error: info.clone(),
            },
        );
        info
    })
}

/// shutdown(SHUT_WR): the peer's next recv() returns 0 bytes, and this side can still receive.
pub(crate) async fn shutdown_write(
    hub: &Hub,
    origin: &Origin,
    writer: &mut OwnedWriteHalf,
) -> Result<(), ErrorInfo> {
    hub.log.emit(origin, EventKind::Shutdown);
    writer.shutdown().await.map_err(|e| {
        let info = explain(&e, Op::Shutdown, Proto::Tcp, peer_name(origin));
        hub.log.emit(
            origin,
            EventKind::Error {
                op: Op::Shutdown.name().into(),
                error: info.clone(),
            },
        );
        info
    })
}

/// Records a failed recv() and says who ended the connection: a reset comes from the peer.
pub(crate) fn recv_failed(hub: &Hub, origin: &Origin, err: &std::io::Error) -> ClosedBy {
    let info = explain(err, Op::Recv, Proto::Tcp, peer_name(origin));
    let by = closed_by(&info);
    hub.log.emit(
        origin,
        EventKind::Error {
            op: Op::Recv.name().into(),
            error: info,
        },
    );
    by
}

/// Who is to blame for a connection that failed with this error.
pub(crate) fn closed_by(info: &ErrorInfo) -> ClosedBy {
    match info.kind {
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => ClosedBy::Peer,
        _ => ClosedBy::Local,
    }
}

fn peer_name(origin: &Origin) -> &str {
    origin.peer.as_deref().unwrap_or("the peer")
}
