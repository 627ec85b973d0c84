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
    let mut receiving: Option<(UdpTransfer, Origin)> = None;
    let mut idle_until = Instant::now();
    loop {
        tokio::select! {
            _ = endpoint.life.stopped() => return endpoint.close_stopped(),
            Some(request) = requests.recv() => match request {
                Control::Send { data, to, done, .. } => {
                    let result = match to {
                        Some(to) => send_datagram(&hub, &with_peer(&endpoint, to), &socket, &mut trouble, &data, to, false).await,
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
                // The sender went quiet before every datagram arrived.
                if let Some((transfer, origin)) = receiving.take() {
                    transfer.finish(&hub, &origin);
                }
            }
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, from)) => {
                    let origin = with_peer(&endpoint, from);
                    let chunk = &buf[..n];
                    if let (Some(file), Some((seq, count, size, payload))) = (&save_to, UdpTransfer::parse(chunk)) {
                        idle_until = Instant::now() + transfer::UDP_IDLE;
                        if receiving.is_none() {
                            match UdpTransfer::start(&hub, file, count) {
                                Ok(transfer) => receiving = Some((transfer, origin.clone())),
                                Err(error) => {
                                    hub.log.emit(&origin, EventKind::Error { op: "open".into(), error });
                                    continue;
                                }
                            }
                        }
                        if let Some((transfer, at)) = &mut receiving {
                            if transfer.take(&hub, at, seq, size, payload) {
                                let (transfer, at) = receiving.take().expect("just used");
                                transfer.finish(&hub, &at);
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
                        let _ = send_datagram(&hub, &origin, &socket, &mut trouble, &reply, from, false).await;
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

fn with_peer(endpoint: &EndpointHandle, peer: SocketAddr) -> Origin {
    Origin {
        peer: Some(peer.to_string()),
        ..endpoint.origin.clone()
    }
}
