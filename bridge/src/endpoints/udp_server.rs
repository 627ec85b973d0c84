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
use crate::core::control::Control;
use crate::core::ctx::Ctx;
use crate::core::impair::UdpTrouble;
use crate::core::registry::Handle;
use crate::explain::{explain, Op, Proto};
use crate::files::datadir::DataDir;
use crate::files::message_log::MessageLog;
use crate::files::udp_transfer::{self, UdpTransfer};
use crate::hub::Hub;
use crate::security::{resolve, Purpose};
use tokio_util::task::TaskTracker;

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
    let addr = resolve(&spec.bind, spec.port, &hub.config.reach(), Purpose::Bind).await?;
    let mut endpoint = hub
        .registry
        .create_endpoint(EndpointSpec::UdpServer(spec.clone()))?;
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
    let files = (hub.data.clone(), hub.tasks.clone());
    hub.tasks
        .spawn(run(endpoint, socket, requests, spec, files));
    info.ok_or_else(|| ErrorInfo::new(ErrorKind::UnknownEndpoint, "The server closed at once."))
}

async fn run(
    endpoint: Handle,
    socket: UdpSocket,
    mut requests: mpsc::Receiver<Control>,
    spec: UdpServerSpec,
    (data, tasks): (DataDir, TaskTracker),
) {
    let ctx = endpoint.ctx.clone();
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
    let mut log = MessageLog::for_spec(&ctx, &data, spec.log_file.as_deref());
    let mut receiving: Option<UdpTransfer> = None;
    // The transfer that just ended, so that a late duplicate of its datagrams does not start
    // a new one.
    let mut ended: Option<(SocketAddr, udp_transfer::Header, Instant)> = None;
    let mut idle_until = Instant::now();
    loop {
        tokio::select! {
            _ = ctx.life.stopped() => return endpoint.close_stopped(),
            Some(request) = requests.recv() => match request {
                Control::Send { data, to, done, .. } => {
                    let result = match to {
                        Some(to) => send_datagram(&ctx.with_peer(to), &socket, &mut trouble, &data, to, false).await,
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
                    let at = ctx.with_peer(from);
                    let chunk = &buf[..n];
                    if let Some(file) = &save_to {
                        idle_until = Instant::now() + udp_transfer::UDP_IDLE;
                        match udp_transfer::Header::parse(chunk, data.max_file_bytes) {
                            Ok((header, payload)) => {
                                let saving = Saving { ctx: &at, data: &data, tasks: &tasks, file };
                                save_datagram(saving, &mut receiving, &mut ended, from, header, payload).await;
                            }
                            Err(why) => {
                                at.emit(EventKind::RecvFrom { data: Payload::from_bytes(chunk), rtt_us: None });
                                ignored(&at, why);
                            }
                        }
                        continue;
                    }
                    // Logged before it is shown: whatever a page has seen survives a crash.
                    if let Some(log) = &mut log {
                        log.write(&at, &from.to_string(), chunk);
                    }
                    at.emit(EventKind::RecvFrom { data: Payload::from_bytes(chunk), rtt_us: None });
                    if let Some(reply) = spec.behaviour.reply(chunk) {
                        // A failed reply is recorded; the server goes on serving others.
                        let _ = send_datagram(&at, &socket, &mut trouble, &reply, from, false).await;
                    }
                }
                Err(err) => {
                    // Errors on an unconnected UDP socket concern one datagram, not the socket.
                    endpoint.emit(EventKind::Error {
                        op: Op::RecvFrom.name().into(),
                        error: explain(&err, Op::RecvFrom, Proto::Udp, ctx.origin.local.as_deref().unwrap_or("")),
                    });
                }
            },
        }
    }
}

/// Takes one datagram of a file transfer: the next of the one in progress, the first of a new
/// one, or one to ignore (another sender's, another file's, a late duplicate).
/// What saving a datagram needs: the socket (at the sender), the data directory, where the
/// writer thread runs, and the file's name.
struct Saving<'a> {
    ctx: &'a Ctx,
    data: &'a DataDir,
    tasks: &'a TaskTracker,
    file: &'a str,
}

async fn save_datagram(
    saving: Saving<'_>,
    receiving: &mut Option<UdpTransfer>,
    ended: &mut Option<(SocketAddr, udp_transfer::Header, Instant)>,
    from: SocketAddr,
    header: udp_transfer::Header,
    payload: &[u8],
) {
    let Saving {
        ctx: at,
        data,
        tasks,
        file,
    } = saving;
    if let Some(transfer) = receiving.as_ref() {
        if transfer.from != from {
            return ignored(
                at,
                format!(
                    "a datagram from {from} was ignored: a file from {} is being received, and \
                     two senders never go into one file",
                    transfer.from
                ),
            );
        }
        if !header.same_file(&transfer.header) {
            return ignored(
                at,
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
    if let Some((from_before, last, when)) = ended {
        if *from_before == from && header.same_file(last) && when.elapsed() < udp_transfer::UDP_IDLE
        {
            return; // a late copy of the file just received
        }
    }
    match UdpTransfer::start(at, data, tasks, file, from, header) {
        Ok(transfer) => {
            let ok = transfer.take(header.seq, payload).await;
            *receiving = ok.then_some(transfer);
        }
        Err(error) => {
            at.emit(EventKind::Error {
                op: "open".into(),
                error,
            });
        }
    }
}

/// Records why a datagram sent to a save-to-file server was not saved.
fn ignored(at: &Ctx, why: String) {
    at.emit(EventKind::Error {
        op: "save".into(),
        error: ErrorInfo::new(ErrorKind::InvalidRequest, why),
    });
}
