//! A TCP client: socket(), connect() with a timeout, then send()/recv() until either side
//! closes. Every recv() chunk is its own event, so a long message visibly arrives in pieces.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shared::{
    ClosedBy, EndpointInfo, EndpointSpec, ErrorInfo, ErrorKind, EventKind, Payload, TcpClientSpec,
};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

use super::tcp_state;
use super::tcp_stream::{carry_out, close_tcp, closed_by, recv_failed, send_all, SendRequest};
use crate::core::control::Control;
use crate::core::registry::Handle;
use crate::crypto;
use crate::explain::{connect_timed_out, explain, Op, Proto};
use crate::files::datadir::DataDir;
use crate::hub::Hub;
use crate::security::{resolve_all, Purpose};

/// Connects; replies once the connection is up, or with the explained failure.
pub(crate) async fn connect(
    hub: &Arc<Hub>,
    spec: TcpClientSpec,
) -> Result<EndpointInfo, ErrorInfo> {
    super::check_recv_buffer(spec.recv_buffer)?;
    super::check_client_port(spec.port)?;
    super::check_wait("timeout_ms", spec.timeout_ms)?;
    if let Some(key) = &spec.fernet_key {
        crypto::cipher(key)?;
    }
    let mut endpoint = hub
        .registry
        .create_endpoint(EndpointSpec::TcpClient(spec.clone()))?;
    let fail = |endpoint: Handle, info: ErrorInfo| {
        endpoint.emit(EventKind::Error {
            op: Op::Connect.name().into(),
            error: info.clone(),
        });
        endpoint.close(ClosedBy::Local, "connect() failed");
        Err(info)
    };
    let addrs =
        match resolve_all(&spec.host, spec.port, &hub.config.reach(), Purpose::Connect).await {
            Ok(addrs) => addrs,
            Err(info) => return fail(endpoint, info),
        };
    // Every address the name has, in turn, as Python's socket.create_connection() does
    // (localhost is ::1 and 127.0.0.1): each try is a connecting event, each failure an error.
    let wait = Duration::from_millis(spec.timeout_ms);
    let mut tried = Vec::new();
    let mut stream = None;
    for addr in &addrs {
        endpoint.ctx.origin.peer = Some(addr.to_string());
        endpoint.emit(EventKind::Connecting);
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|err| explain(&err, Op::Connect, Proto::Tcp, &addr.to_string()));
        // On loopback the port is taken before connect(), so that the packet capture knows
        // the SYN as this client's: it learns the address now, not after the handshake.
        if let Ok(socket) = &socket {
            if addr.ip().is_loopback() && socket.bind(SocketAddr::new(addr.ip(), 0)).is_ok() {
                if let Ok(local) = socket.local_addr() {
                    endpoint.learn_local(local.to_string());
                }
            }
        }
        let attempt = async {
            let socket = socket?;
            match tokio::time::timeout(wait, socket.connect(*addr)).await {
                Ok(Ok(stream)) => Ok(stream),
                Ok(Err(err)) => Err(explain(&err, Op::Connect, Proto::Tcp, &addr.to_string())),
                Err(_) => Err(connect_timed_out(&addr.to_string(), spec.timeout_ms)),
            }
        };
        let result = tokio::select! {
            _ = endpoint.life().stopped() => {
                endpoint.close_stopped();
                return Err(ErrorInfo::new(ErrorKind::ConnectionAborted, "The client was closed while it was connecting."));
            }
            result = attempt => result,
        };
        match result {
            Ok(connected) => {
                stream = Some((connected, *addr));
                break;
            }
            Err(info) => {
                // The last failure is recorded with the close, as the explanation of all.
                if tried.len() + 1 < addrs.len() {
                    endpoint.emit(EventKind::Error {
                        op: Op::Connect.name().into(),
                        error: info.clone(),
                    });
                }
                tried.push((*addr, info));
            }
        }
    }
    let Some((stream, addr)) = stream else {
        return fail(endpoint, every_try_failed(&spec.host, tried));
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
    let round_trips = !hub.registry.chat_room_at(&addr.to_string());
    hub.tasks.spawn(run(
        endpoint,
        stream,
        requests,
        spec,
        hub.data.clone(),
        round_trips,
    ));
    info.ok_or_else(|| ErrorInfo::new(ErrorKind::UnknownEndpoint, "The client closed at once."))
}

/// `round_trips`: whether the first recv() after a send() is that send's reply (not in a
/// chat room, where it is what someone else said).
async fn run(
    endpoint: Handle,
    stream: TcpStream,
    mut requests: mpsc::Receiver<Control>,
    spec: TcpClientSpec,
    data: DataDir,
    round_trips: bool,
) {
    let ctx = endpoint.ctx.clone();
    let (mut reader, mut writer) = stream.into_split();
    let fd = tcp_state::handle(reader.as_ref());
    let mut watch = tcp_state::Watch::default();
    watch.check(&ctx, tcp_state::of_socket(fd));
    let mut poll = tokio::time::interval(tcp_state::POLL);
    let mut buf = vec![0u8; spec.recv_buffer];
    // Checked at connect, so a key here is always usable.
    let fernet = spec
        .fernet_key
        .as_deref()
        .and_then(|key| crypto::cipher(key).ok());
    let mut lines = crypto::Lines::default();
    // When the last send() started, until the next recv() measures the round trip.
    let mut sent_at: Option<std::time::Instant> = None;
    loop {
        let limit = endpoint.impair.read_limit(buf.len());
        tokio::select! {
            _ = ctx.life.stopped() => return close_tcp(endpoint, None),
            _ = poll.tick() => watch.check(&ctx, tcp_state::of_socket(fd)),
            Some(request) = requests.recv() => {
                if let Some(SendRequest { data, tamper, done }) = carry_out(&ctx, &data, &mut writer, &mut watch, request).await {
                    // Chat commands (`/nick alice`) go in clear; everything else is encrypted.
                    let wire = match &fernet {
                        Some(cipher) if !data.starts_with(b"/") => {
                            endpoint.emit(EventKind::Encrypted { plaintext: Payload::from_bytes(&data) });
                            let token = cipher.encrypt(&data);
                            let token = if tamper { crypto::tamper(&token) } else { token };
                            format!("{token}\n").into_bytes()
                        }
                        _ => data,
                    };
                    endpoint.impair.before_send(&ctx, wire.len()).await;
                    let started = std::time::Instant::now();
                    let result = send_all(&ctx, &mut writer, &wire).await;
                    sent_at = result.is_ok().then_some(started);
                    let failed = result.as_ref().err().map(closed_by);
                    let _ = done.send(result);
                    if let Some(by) = failed {
                        return close_tcp(endpoint, Some((by, "sending failed".into())));
                    }
                }
            },
            received = reader.read(&mut buf[..limit]) => match received {
                Ok(0) => {
                    endpoint.emit(EventKind::Eof);
                    // The peer's FIN arrived and this side has not closed yet: CLOSE_WAIT.
                    watch.check(&ctx, tcp_state::of_socket(fd));
                    return close_tcp(endpoint, Some((ClosedBy::Peer, "the server closed the connection".into())));
                }
                Ok(n) => {
                    let rtt_us = sent_at
                        .take()
                        .filter(|_| round_trips)
                        .map(|t| t.elapsed().as_micros() as u64);
                    endpoint.emit(EventKind::Recv { data: Payload::from_bytes(&buf[..n]), rtt_us });
                    endpoint.impair.after_read(&ctx, n).await;
                    if fernet.is_none() && spec.secret.is_none() {
                        continue;
                    }
                    let Ok(complete) = lines.push(&buf[..n]) else {
                        return close_tcp(endpoint, Some((ClosedBy::Local, crypto::LineTooLong::reason())));
                    };
                    for line in complete {
                        let answer = understand(&endpoint, &spec, fernet.as_ref(), &line);
                        if let Some(answer) = answer {
                            if let Err(err) = send_all(&ctx, &mut writer, &answer).await {
                                return close_tcp(endpoint, Some((closed_by(&err), "answering the challenge failed".into())));
                            }
                        }
                    }
                }
                Err(err) => {
                    let by = recv_failed(&ctx, &err);
                    return close_tcp(endpoint, Some((by, "receiving failed".into())));
                }
            },
        }
    }
}

/// Why no address of `host` took the connection: the last try's explanation, with every address
/// tried, and where a server does listen on that port on this machine if it is another
/// address (a server on ::1 and a client to 127.0.0.1, say).
fn every_try_failed(host: &str, tried: Vec<(std::net::SocketAddr, ErrorInfo)>) -> ErrorInfo {
    let port = tried.first().map_or(0, |(a, _)| a.port());
    let addrs: Vec<std::net::SocketAddr> = tried.iter().map(|(a, _)| *a).collect();
    let Some((_, mut info)) = tried.into_iter().last() else {
        return ErrorInfo::new(
            ErrorKind::NameResolutionFailed,
            format!("'{host}' has no address."),
        );
    };
    if addrs.len() > 1 {
        let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        info.explanation = format!(
            "{} (every address of {host} was tried: {}.)",
            info.explanation,
            list.join(", ")
        );
    }
    if info.kind == ErrorKind::ConnectionRefused {
        let elsewhere: Vec<String> = super::tcp_state::listening_on(port)
            .into_iter()
            .filter(|l| !addrs.contains(l) && !l.ip().is_unspecified())
            .map(|l| l.to_string())
            .collect();
        if let Some(there) = elsewhere.first() {
            info.hint = Some(format!(
                "A server does listen on port {port} of this machine, at {there}: connect there \
                 (or to localhost, which is both ::1 and 127.0.0.1)."
            ));
        }
    }
    info
}

/// What a client with a secret or a key makes of one received line; returns an answer to send
/// (the response to a challenge).
fn understand(
    endpoint: &Handle,
    spec: &TcpClientSpec,
    fernet: Option<&fernet::Fernet>,
    line: &str,
) -> Option<Vec<u8>> {
    if let Some(secret) = &spec.secret {
        if let Some(nonce) = line.strip_prefix("AUTH ") {
            return Some(format!("{}\n", crypto::proof(secret, nonce.trim())).into_bytes());
        }
        if matches!(line.trim(), "OK" | "DENIED") {
            let ok = line.trim() == "OK";
            let detail = if ok {
                "the server accepted the answer to its challenge"
            } else {
                "the server refused the answer: the secrets differ"
            };
            endpoint.emit(EventKind::Auth {
                ok,
                detail: detail.into(),
            });
            return None;
        }
    }
    let (cipher, token) = (fernet?, crypto::token_in(line)?);
    match crypto::decrypt(cipher, token) {
        Ok(plain) => endpoint.emit(EventKind::Decrypted {
            plaintext: Payload::from_bytes(&plain),
        }),
        Err(error) => endpoint.emit(EventKind::Error {
            op: "decrypt".into(),
            error,
        }),
    }
    None
}
