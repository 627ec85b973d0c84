//! A UDP client: socket(), an ephemeral bind, optionally connect(), then sendto() on request
//! and recvfrom() all along. After each send it waits the spec's time for a reply and records a
//! timeout if none came: UDP itself never says whether a datagram arrived.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use shared::{
    ClosedBy, EndpointInfo, EndpointSpec, ErrorInfo, ErrorKind, EventKind, Payload, UdpClientSpec,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::core::control::Control;
use crate::core::ctx::Ctx;
use crate::core::impair::UdpTrouble;
use crate::core::registry::Handle;
use crate::explain::{explain, Op, Proto};
use crate::files::datadir::DataDir;
use crate::files::udp_transfer;
use crate::hub::Hub;
use crate::security::{resolve, Purpose};

/// Opens a UDP client; replies once its socket is ready.
pub(crate) async fn open(hub: &Arc<Hub>, spec: UdpClientSpec) -> Result<EndpointInfo, ErrorInfo> {
    super::check_recv_buffer(spec.recv_buffer)?;
    super::check_client_port(spec.port)?;
    super::check_wait("recv_timeout_ms", spec.recv_timeout_ms)?;
    let mut endpoint = hub
        .registry
        .create_endpoint(EndpointSpec::UdpClient(spec.clone()))?;
    let fail = |endpoint: Handle, op: Op, info: ErrorInfo| {
        endpoint.emit(EventKind::Error {
            op: op.name().into(),
            error: info.clone(),
        });
        endpoint.close(ClosedBy::Local, format!("{}() failed", op.name()));
        Err(info)
    };
    let server = match resolve(&spec.host, spec.port, &hub.config.reach(), Purpose::Connect).await {
        Ok(addr) => addr,
        Err(info) => return fail(endpoint, Op::SendTo, info),
    };
    let socket = match UdpSocket::bind(ephemeral_for(server.ip())).await {
        Ok(socket) => socket,
        Err(err) => {
            return fail(
                endpoint,
                Op::Bind,
                explain(&err, Op::Bind, Proto::Udp, "an ephemeral port"),
            )
        }
    };
    let local = match socket.local_addr() {
        Ok(local) => local.to_string(),
        Err(err) => {
            return fail(
                endpoint,
                Op::Bind,
                explain(&err, Op::Bind, Proto::Udp, "an ephemeral port"),
            )
        }
    };
    endpoint.set_addresses(local.clone(), Some(server.to_string()), EventKind::Bind);
    if spec.connect {
        if let Err(err) = socket.connect(server).await {
            return fail(
                endpoint,
                Op::Connect,
                explain(&err, Op::Connect, Proto::Udp, &server.to_string()),
            );
        }
        endpoint.emit(EventKind::Connect);
    }
    let (control, requests) = mpsc::channel(16);
    endpoint.set_control(control);
    let info = endpoint.info();
    hub.tasks.spawn(run(
        endpoint,
        socket,
        requests,
        (server, hub.data.clone()),
        spec,
    ));
    info.ok_or_else(|| ErrorInfo::new(ErrorKind::UnknownEndpoint, "The client closed at once."))
}

/// The client's own address: loopback for a loopback server (nothing else can reach it then),
/// all interfaces otherwise, with any free port.
fn ephemeral_for(server: IpAddr) -> SocketAddr {
    let ip = match (server.is_loopback(), server) {
        (true, IpAddr::V4(_)) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        (true, IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        (false, IpAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (false, IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

async fn run(
    endpoint: Handle,
    socket: UdpSocket,
    mut requests: mpsc::Receiver<Control>,
    (server, data): (SocketAddr, DataDir),
    spec: UdpClientSpec,
) {
    let ctx = endpoint.ctx.clone();
    let socket = Arc::new(socket);
    let mut trouble = UdpTrouble::new(endpoint.impair.clone());
    let mut buf = vec![0u8; spec.recv_buffer];
    let wait = Duration::from_millis(spec.recv_timeout_ms);
    // When the reply to the last send is due, while one is awaited.
    let mut reply_due: Option<Instant> = None;
    // When the last sendto() started, until the next recvfrom() measures the round trip.
    let mut sent_at: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = ctx.life.stopped() => return endpoint.close_stopped(),
            Some(request) = requests.recv() => match request {
                Control::Send { data, to, done, .. } => {
                    let to = to.unwrap_or(server);
                    let started = Instant::now();
                    let result = if spec.connect && to != server {
                        Err(ErrorInfo::new(
                            ErrorKind::Unsupported,
                            format!("This UDP client is connected to {server}, so it can only send there."),
                        ))
                    } else {
                        send_datagram(&ctx.with_peer(to), &socket, &mut trouble, &data, to, spec.connect).await
                    };
                    if result.is_ok() {
                        reply_due = Some(Instant::now() + wait);
                        sent_at = Some(started);
                    }
                    let _ = done.send(result);
                }
                request @ Control::SendBulk { .. } => {
                    request.refuse("Bulk test data goes over TCP; UDP sends file transfers as numbered datagrams.");
                }
                request @ Control::ShutdownWrite { .. } => {
                    request.refuse("UDP has no connection, so there is no write side to shut down.");
                }
                Control::SendFile { file, datagram_size, done } => {
                    let _ = done.send(
                        udp_transfer::send_udp(
                            &ctx.with_peer(server),
                            &data,
                            udp_transfer::UdpLink { socket: &socket, trouble: &mut trouble, to: server },
                            &file,
                            datagram_size,
                        )
                        .await
                    );
                }
            },
            received = socket.recv_from(&mut buf) => {
                reply_due = None;
                match received {
                    Ok((n, from)) => {
                        let rtt_us = sent_at.take().map(|t| t.elapsed().as_micros() as u64);
                        ctx.with_peer(from).emit(EventKind::RecvFrom { data: Payload::from_bytes(&buf[..n]), rtt_us });
                    }
                    Err(err) => endpoint.emit(EventKind::Error {
                        op: Op::RecvFrom.name().into(),
                        error: explain(&err, Op::RecvFrom, Proto::Udp, &server.to_string()),
                    }),
                }
            }
            _ = sleep_until(reply_due), if reply_due.is_some() => {
                reply_due = None;
                endpoint.emit(EventKind::Timeout { op: Op::RecvFrom.name().into(), after_ms: spec.recv_timeout_ms });
            }
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

/// sendto() (or send() on a connected socket), recorded before the call like TCP sends, then
/// put through the endpoint's simulated trouble (which may drop, hold back, duplicate or delay
/// the datagram; the sender is never told, as with a real network).
pub(crate) async fn send_datagram(
    ctx: &Ctx,
    socket: &Arc<UdpSocket>,
    trouble: &mut UdpTrouble,
    data: &[u8],
    to: SocketAddr,
    connected: bool,
) -> Result<usize, ErrorInfo> {
    ctx.emit(EventKind::SendTo {
        data: Payload::from_bytes(data),
    });
    let plan = trouble.plan(ctx, data, to);
    let mut outgoing: Vec<(Vec<u8>, SocketAddr)> = vec![(data.to_vec(), to); plan.copies];
    outgoing.extend(plan.release);
    if plan.delay_ms == 0 {
        for (datagram, to) in outgoing {
            put(ctx, socket, &datagram, to, connected).await?;
        }
    } else {
        let bytes: usize = outgoing.iter().map(|(d, _)| d.len()).sum();
        if !trouble.waiting.try_add(bytes) {
            ctx.emit(crate::core::impair::impaired(
                format!(
                    "dropped: {} datagrams (or {} MiB) already wait out their simulated delay",
                    crate::core::impair::MAX_DELAYED,
                    crate::core::impair::MAX_DELAYED_BYTES >> 20
                ),
                bytes,
            ));
            return Ok(data.len());
        }
        let (ctx, socket, waiting) = (ctx.clone(), socket.clone(), trouble.waiting.clone());
        tokio::spawn(async move {
            let delay = Duration::from_millis(u64::from(plan.delay_ms));
            tokio::select! {
                _ = tokio::time::sleep(delay) => {
                    for (datagram, to) in outgoing {
                        let _ = put(&ctx, &socket, &datagram, to, connected).await;
                    }
                }
                // A closed socket sends nothing more, delayed or not.
                _ = ctx.life.stopped() => {}
            }
            waiting.done(bytes);
        });
    }
    Ok(data.len())
}

/// The real sendto(); a failure is recorded.
pub(crate) async fn put(
    ctx: &Ctx,
    socket: &UdpSocket,
    data: &[u8],
    to: SocketAddr,
    connected: bool,
) -> Result<usize, ErrorInfo> {
    let sent = if connected {
        socket.send(data).await
    } else {
        socket.send_to(data, to).await
    };
    sent.map_err(|err| {
        let info = explain(&err, Op::SendTo, Proto::Udp, &to.to_string());
        ctx.emit(EventKind::Error {
            op: Op::SendTo.name().into(),
            error: info.clone(),
        });
        info
    })
}
