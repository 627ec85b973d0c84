//! A TCP client: socket(), connect() with a timeout, then send()/recv() until either side
//! closes. Every recv() chunk is its own event, so a long message visibly arrives in pieces.

use std::sync::Arc;
use std::time::Duration;

use shared::{
    ClosedBy, EndpointInfo, EndpointSpec, ErrorInfo, ErrorKind, EventKind, Payload, TcpClientSpec,
};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

use super::tcp_stream::{closed_by, recv_failed, send_all, shutdown_write};
use crate::explain::{connect_timed_out, explain, Op, Proto};
use crate::hub::{Control, EndpointHandle, Hub};
use crate::security::{resolve, Purpose};
use crate::transfer;

/// Connects; replies once the connection is up, or with the explained failure.
pub(crate) async fn connect(
    hub: &Arc<Hub>,
    spec: TcpClientSpec,
) -> Result<EndpointInfo, ErrorInfo> {
    super::check_recv_buffer(spec.recv_buffer)?;
    super::check_client_port(spec.port)?;
    super::check_wait("timeout_ms", spec.timeout_ms)?;
    let mut endpoint = hub.create_endpoint(EndpointSpec::TcpClient(spec.clone()))?;
    let fail = |endpoint: EndpointHandle, info: ErrorInfo| {
        endpoint.emit(EventKind::Error {
            op: Op::Connect.name().into(),
            error: info.clone(),
        });
        endpoint.close(ClosedBy::Local, "connect() failed");
        Err(info)
    };
    let addr = match resolve(&spec.host, spec.port, hub.config.scope, Purpose::Connect).await {
        Ok(addr) => addr,
        Err(info) => return fail(endpoint, info),
    };
    endpoint.origin.peer = Some(addr.to_string());
    endpoint.emit(EventKind::Connecting);
    let socket = match if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    } {
        Ok(socket) => socket,
        Err(err) => {
            return fail(
                endpoint,
                explain(&err, Op::Connect, Proto::Tcp, &addr.to_string()),
            )
        }
    };
    let wait = Duration::from_millis(spec.timeout_ms);
    let stream = tokio::select! {
        _ = endpoint.life.stopped() => {
            endpoint.close_stopped();
            return Err(ErrorInfo::new(ErrorKind::ConnectionAborted, "The client was closed while it was connecting."));
        }
        connected = tokio::time::timeout(wait, socket.connect(addr)) => match connected {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => return fail(endpoint, explain(&err, Op::Connect, Proto::Tcp, &addr.to_string())),
            Err(_) => return fail(endpoint, connect_timed_out(&addr.to_string(), spec.timeout_ms)),
        },
    };
    let local = match stream.local_addr() {
        Ok(local) => local.to_string(),
        Err(err) => {
            return fail(
                endpoint,
                explain(&err, Op::Connect, Proto::Tcp, &addr.to_string()),
            )
        }
    };
    endpoint.set_addresses(local, Some(addr.to_string()), EventKind::Connect);
    let (control, requests) = mpsc::channel(16);
    endpoint.set_control(control);
    let info = endpoint.info();
    hub.tasks
        .spawn(run(endpoint, stream, requests, spec.recv_buffer));
    info.ok_or_else(|| ErrorInfo::new(ErrorKind::UnknownEndpoint, "The client closed at once."))
}

async fn run(
    endpoint: EndpointHandle,
    stream: TcpStream,
    mut requests: mpsc::Receiver<Control>,
    recv_buffer: usize,
) {
    let hub = endpoint.hub.clone();
    let (mut reader, mut writer) = stream.into_split();
    let mut buf = vec![0u8; recv_buffer];
    loop {
        tokio::select! {
            _ = endpoint.life.stopped() => return endpoint.close_stopped(),
            Some(request) = requests.recv() => match request {
                Control::Send { data, done, .. } => {
                    let result = send_all(&hub, &endpoint.origin, &endpoint.life, &mut writer, &data).await;
                    let failed = result.as_ref().err().map(closed_by);
                    let _ = done.send(result);
                    if let Some(by) = failed {
                        return endpoint.close(by, "sending failed");
                    }
                }
                Control::ShutdownWrite { done } => {
                    let _ = done.send(shutdown_write(&hub, &endpoint.origin, &mut writer).await);
                }
                Control::SendFile { file, done, .. } => {
                    let _ = done.send(transfer::send_tcp(&hub, &endpoint.origin, &endpoint.life, &mut writer, &file).await);
                }
            },
            received = reader.read(&mut buf) => match received {
                Ok(0) => {
                    endpoint.emit(EventKind::Eof);
                    return endpoint.close(ClosedBy::Peer, "the server closed the connection");
                }
                Ok(n) => endpoint.emit(EventKind::Recv { data: Payload::from_bytes(&buf[..n]) }),
                Err(err) => {
                    let by = recv_failed(&hub, &endpoint.origin, &err);
                    return endpoint.close(by, "receiving failed");
                }
            },
        }
    }
}
