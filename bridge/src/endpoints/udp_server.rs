//! A UDP server: socket(), bind(), then recvfrom() in a loop, replying to each sender with the
//! spec's behaviour. There are no connections: every datagram names its sender.

use std::net::SocketAddr;
use std::sync::Arc;

use shared::{
    Behaviour, ClosedBy, EndpointInfo, EndpointSpec, ErrorInfo, ErrorKind, EventKind, Payload,
    UdpServerSpec, MAX_DATAGRAM,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::udp_client::send_datagram;
use crate::events::Origin;
use crate::explain::{explain, Op, Proto};
use crate::hub::{Control, EndpointHandle, Hub};
use crate::impair::UdpTrouble;
use crate::security::{resolve, Purpose};
use crate::transfer::{self, MessageLog, UdpTransfer};

/// Starts a UDP server; replies once it is bound.
pub(crate) async fn start(hub: &Arc<Hub>, spec: UdpServerSpec) -> Result<EndpointInfo, ErrorInfo> {
    super::check_recv_buffer(spec.recv_buffer)?;
    super::check_server_port(hub, spec.port)?;
    super::check_files(&spec.behaviour, spec.log_file.as_deref())?;
    if spec.behaviour == Behaviour::Discard {
        return Err(ErrorInfo::new(
            ErrorKind::Unsupported,
            "Discard counts a TCP stream; a UDP server shows every datagram (use print_only).",
        ));
    }
    let addr = resolve(&spec.bind, spec.port, hub.config.scope, Purpose::Bind).await?;
    let mut endpoint = hub.create_endpoint(EndpointSpec::UdpServer(spec.clone()))?;
    let socket = match UdpSocket::bind(addr).await {
        Ok(socket) => socket,
        Err(err) => {
            let info = explain(&err, Op::Bind, Proto::Udp, &addr.to_string());
            endpoint.emit(EventKind::Error {
                op: Op::Bind.name().into(),
                error: info.clone(),
            });
            endpoint.close(ClosedBy::Local, "bind() failed");
            return Err(info);
        }
    };
    let local = socket.local_addr().unwrap_or(addr);
    endpoint.set_addresses(local.to_string(), None, EventKind::Bind);
    let (control, requests) = mpsc::channel(16);
    endpoint.set_control(control);
    let info = endpoint.info();
    hub.tasks.spawn(run(endpoint, socket, requests, spec));
    info.ok_or_else(|| ErrorInfo::new(ErrorKind::UnknownEndpoint, "The server closed at once."))
}

async fn run(
    endpoint: EndpointHandle,
    socket: UdpSocket,
    mut requests: mpsc::Receiver<Control>,
    spec: UdpServerSpec,
) {
    let hub = endpoint.hub.clone();
    let socket = Arc::new(socket);
    let mut trouble = UdpTrouble::new(endpoint.impair.clone());
    let save_to = match &spec.behaviour {
        Behaviour::SaveToFile { file } => Some(file.clone()),
        _ => None,
    };
    // Saving a file takes whole datagrams, whatever the buffer size asked for.
    let size = if save_to.is_some() {
        MAX_DATAGRAM
    } else {
        spec.recv_buffer
    };
    let mut buf = vec![0u8; size];
    let mut log = MessageLog::for_spec(&hub, &endpoint.origin, spec.log_file.as_deref());
    let mut receiving: Option<UdpTransfer> = None;
    // The transfer that just ended, so that a late duplicate of its datagrams does not start
    // a new one.
    let mut ended: Option<(SocketAddr, transfer::Header, Instant)> = None;
    let mut idle_until = Instant::now();
    loop {
        tokio::select! {
            _ = endpoint.life.stopped() => return endpoint.close_stopped(),
            Some(request) = requests.recv() => match request {
                Control::Send { data, to, done, .. } => {
                    let result = match to {
                        Some(to) => send_datagram(&hub, &with_peer(&endpoint, to), (&socket, &endpoint.life), &mut trouble, &data, to, false).await,
                        None => Err(ErrorInfo::new(
                            ErrorKind::InvalidRequest,
                            "A UDP server has no fixed peer: say which address to send to.",
                        ).with_hint("Give 'to', such as the sender address of a datagram it received.")),
                    };
                    let _ = done.send(result);
                }
                request @ Control::SendBulk { .. } => {
                    request.refuse("Bulk test data goes over TCP; UDP sends file transfers as numbered datagrams.");
                }
                request @ Control::ShutdownWrite { .. } => {
                    request.refuse("UDP has no connection, so there is no write side to shut down.");
                }
                request @ Control::SendFile { .. } => {
                    request.refuse("A UDP server has no fixed peer to send a file to; send files from a UDP client.");
                }
            },
            _ = tokio::time::sleep_until(idle_until), if receiving.is_some() => {
                // The sender went quiet before every datagram arrived: the writer reports.
                if let Some(transfer) = receiving.take() {
                    ended = Some((transfer.from, transfer.header, Instant::now()));
                }
            }
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, from)) => {
                    let origin = with_peer(&endpoint, from);
                    let chunk = &buf[..n];
                    if let Some(file) = &save_to {
                        idle_until = Instant::now() + transfer::UDP_IDLE;
                        match transfer::Header::parse(chunk, hub.data.max_file_bytes) {
                            Ok((header, payload)) => {
                                save_datagram(&hub, &endpoint, file, &mut receiving, &mut ended, from, header, payload).await;
                            }
                            Err(why) => {
                                hub.log.emit(&origin, EventKind::RecvFrom { data: Payload::from_bytes(chunk), rtt_us: None });
                                ignored(&hub, &origin, why);
                            }
                        }
                        continue;
                    }
                    // Logged before it is shown: whatever a page has seen survives a crash.
                    if let Some(log) = &mut log {
                        log.write(&hub, &origin, &from.to_string(), chunk);
                    }
                    hub.log.emit(&origin, EventKind::RecvFrom { data: Payload::from_bytes(chunk), rtt_us: None });
                    if let Some(reply) = spec.behaviour.reply(chunk) {
                        // A failed reply is recorded; the server goes on serving others.
                        let _ = send_datagram(&hub, &origin, (&socket, &endpoint.life), &mut trouble, &reply, from, false).await;
                    }
                }
                Err(err) => {
                    // Errors on an unconnected UDP socket concern one datagram, not the socket.
                    endpoint.emit(EventKind::Error {
                        op: Op::RecvFrom.name().into(),
                        error: explain(&err, Op::RecvFrom, Proto::Udp, endpoint.origin.local.as_deref().unwrap_or("")),
                    });
                }
            },
        }
    }
}

/// Takes one datagram of a file transfer: the next of the one in progress, the first of a new
/// one, or one to ignore (another sender's, another file's, a late duplicate).
#[allow(clippy::too_many_arguments)]
async fn save_datagram(
    hub: &Arc<Hub>,
    endpoint: &EndpointHandle,
    file: &str,
    receiving: &mut Option<UdpTransfer>,
    ended: &mut Option<(SocketAddr, transfer::Header, Instant)>,
    from: SocketAddr,
    header: transfer::Header,
    payload: &[u8],
) {
    let origin = with_peer(endpoint, from);
    if let Some(transfer) = receiving.as_ref() {
        if transfer.from != from {
            return ignored(
                hub,
                &origin,
                format!(
                    "a datagram from {from} was ignored: a file from {} is being received, and \
                     two senders never go into one file",
                    transfer.from
                ),
            );
        }
        if !header.same_file(&transfer.header) {
            return ignored(
                hub,
                &origin,
                "a datagram was ignored: its header announces another file than the first \
                 datagram of this transfer did"
                    .into(),
            );
        }
        if transfer.take(header.seq, payload).await {
            return;
        }
        // Every datagram had arrived (or the disk failed): the writer reported.
        *ended = receiving.take().map(|t| (t.from, t.header, Instant::now()));
        return;
    }
    if let Some((at, last, when)) = ended {
        if *at == from && header.same_file(last) && when.elapsed() < transfer::UDP_IDLE {
            return; // a late copy of the file just received
        }
    }
    match UdpTransfer::start(hub, &origin, &endpoint.life, file, from, header) {
        Ok(transfer) => {
            let ok = transfer.take(header.seq, payload).await;
            *receiving = ok.then_some(transfer);
        }
        Err(error) => {
            hub.log.emit(
                &origin,
                EventKind::Error {
                    op: "open".into(),
                    error,
                },
            );
        }
    }
}

/// Records why a datagram sent to a save-to-file server was not saved.
fn ignored(hub: &Hub, origin: &Origin, why: String) {
    hub.log.emit(
        origin,
        EventKind::Error {
            op: "save".into(),
            error: ErrorInfo::new(ErrorKind::InvalidRequest, why),
        },
    );
}

fn with_peer(endpoint: &EndpointHandle, peer: SocketAddr) -> Origin {
    Origin {
        peer: Some(peer.to_string()),
        ..endpoint.origin.clone()
    }
}
