//! A TCP server: socket(), bind(), listen(backlog), then accept() in a loop, serving each
//! connection with the spec's behaviour and policy, one at a time or concurrently.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shared::{
    Behaviour, ClosedBy, Concurrency, ConnectionPolicy, EndpointInfo, EndpointSpec, ErrorInfo,
    ErrorKind, EventKind, Payload, TcpServerSpec, MAX_BACKLOG,
};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use super::chat;
use super::tcp_state;
use super::tcp_stream::{
    authenticate, carry_out, close_tcp, closed_by, recv_failed, send_all, SendRequest,
};
use crate::core::control::Control;
use crate::core::registry::Handle;
use crate::crypto;
use crate::explain::{explain, Op, Proto};
use crate::files::datadir::DataDir;
use crate::files::message_log::MessageLog;
use crate::files::tcp_transfer;
use crate::hub::Hub;
use crate::security::{resolve, Purpose};

/// How often a one-at-a-time server looks at its listen backlog while it serves a client.
const BACKLOG_POLL: Duration = Duration::from_millis(100);

/// Starts a TCP server; replies once it listens (or failed to).
pub(crate) async fn start(hub: &Arc<Hub>, spec: TcpServerSpec) -> Result<EndpointInfo, ErrorInfo> {
    super::check_recv_buffer(spec.recv_buffer)?;
    super::check_server_port(hub, spec.port)?;
    super::check_files(&spec.behaviour, spec.log_file.as_deref())?;
    if let Behaviour::FernetEcho { key } = &spec.behaviour {
        crypto::cipher(key)?;
    }
    if !(1..=MAX_BACKLOG).contains(&spec.backlog) {
        return Err(ErrorInfo::new(
            ErrorKind::InvalidRequest,
            format!(
                "A listen() backlog of {} is not possible here: pick 1 to {MAX_BACKLOG}.",
                spec.backlog
            ),
        ));
    }
    let addr = resolve(&spec.bind, spec.port, &hub.config.reach(), Purpose::Bind).await?;
    let mut endpoint = hub
        .registry
        .create_endpoint(EndpointSpec::TcpServer(spec.clone()))?;
    let listener = match bind_and_listen(addr, spec.backlog) {
        Ok(listener) => listener,
        Err((op, err)) => {
            let info = explain(&err, op, Proto::Tcp, &addr.to_string());
            endpoint.emit(EventKind::Error {
                op: op.name().into(),
                error: info.clone(),
            });
            endpoint.close(ClosedBy::Local, format!("{}() failed", op.name()));
            return Err(info);
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    endpoint.set_addresses(local.to_string(), None, EventKind::Bind);
    endpoint.emit(EventKind::Listen {
        backlog: spec.backlog,
    });
    let info = endpoint.info();
    let serving = Serving {
        data: hub.data.clone(),
        tasks: hub.tasks.clone(),
        max_connections: hub.config.max_connections_per_server,
    };
    hub.tasks
        .spawn(accept_loop(endpoint, listener, local, spec, serving));
    info.ok_or_else(|| ErrorInfo::new(ErrorKind::UnknownEndpoint, "The server closed at once."))
}

fn bind_and_listen(addr: SocketAddr, backlog: u32) -> Result<TcpListener, (Op, std::io::Error)> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| (Op::Bind, e))?;
    // Lets a restarted server take its port back while old connections sit in TIME_WAIT, as
    // students restart servers all the time. Two listeners on one port still fail on Linux.
    socket.set_reuseaddr(true).map_err(|e| (Op::Bind, e))?;
    socket.bind(addr).map_err(|e| (Op::Bind, e))?;
    socket.listen(backlog).map_err(|e| (Op::Listen, e))
}

/// What a server's accept loop needs besides its socket.
struct Serving {
    /// Where saved files and logs go.
    data: DataDir,
    /// Where the chat room's fan-out task runs.
    tasks: TaskTracker,
    max_connections: usize,
}

async fn accept_loop(
    endpoint: Handle,
    listener: TcpListener,
    local: SocketAddr,
    spec: TcpServerSpec,
    serving: Serving,
) {
    let limit = Arc::new(Semaphore::new(serving.max_connections));
    let connections = TaskTracker::new();
    let room = (spec.behaviour == Behaviour::Chat)
        .then(|| chat::Room::open(endpoint.ctx.clone(), &serving.tasks));
    // Clients waiting in the backlog, as last reported (one-at-a-time servers).
    let mut waiting = 0;
    loop {
        let accepted = tokio::select! {
            _ = endpoint.life().stopped() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                endpoint.emit(EventKind::Error {
                    op: Op::Accept.name().into(),
                    error: explain(&err, Op::Accept, Proto::Tcp, &local.to_string()),
                });
                // Out of file descriptors and the like: wait a little rather than spin.
                tokio::select! {
                    _ = endpoint.life().stopped() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        // A full server says so and closes the newcomer, instead of leaving it hanging.
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            let max = serving.max_connections;
            endpoint.emit(EventKind::Error {
                op: Op::Accept.name().into(),
                error: ErrorInfo::new(
                    ErrorKind::LimitReached,
                    format!(
                        "{peer} was turned away: this server already has {max} connections open."
                    ),
                )
                .with_hint(
                    "Close some connections, or start the bridge with a larger --max-connections.",
                ),
            });
            drop(stream);
            continue;
        };
        let (control, requests) = mpsc::channel(16);
        let conn = endpoint.accept(stream.local_addr().unwrap_or(local), peer, control);
        if let Some(room) = &room {
            // A chat room serves everyone at once.
            let chatting = chat::serve(conn, stream, requests, spec.clone(), room.clone());
            connections.spawn(async move {
                chatting.await;
                drop(permit);
            });
            continue;
        }
        let served = serve(
            conn,
            stream,
            requests,
            spec.clone(),
            (permit, serving.data.clone()),
        );
        match spec.concurrency {
            Concurrency::Concurrent => {
                connections.spawn(served);
            }
            Concurrency::OneAtATime => {
                serve_watching_backlog(&endpoint, &listener, served, &mut waiting).await
            }
        }
    }
    // Close the listening socket first, so that new clients are refused while the open
    // connections (stopped with the server's lifeline) finish.
    drop(listener);
    connections.close();
    connections.wait().await;
    endpoint.close_stopped();
}

/// Serves one client while reporting how many others wait in the listen backlog, whenever
/// that changes. `waiting` is the count last reported, kept from one client to the next: the
/// one that waited is accepted now, so a count of 1 must become 0 on screen.
async fn serve_watching_backlog(
    endpoint: &Handle,
    listener: &TcpListener,
    served: impl std::future::Future<Output = ()>,
    waiting: &mut u32,
) {
    tokio::pin!(served);
    let mut poll = tokio::time::interval(BACKLOG_POLL);
    loop {
        tokio::select! {
            _ = &mut served => return,
            _ = poll.tick() => {
                if let Some(now) = backlog_len(listener) {
                    if now != *waiting {
                        *waiting = now;
                        endpoint.emit(EventKind::Backlog { waiting: now });
                    }
                }
            }
        }
    }
}

/// Connections the kernel has completed but the server has not accepted yet: for a listening
/// socket, Linux reports the accept queue length in `tcpi_unacked` (what `ss` shows as Recv-Q).
#[cfg(target_os = "linux")]
fn backlog_len(listener: &TcpListener) -> Option<u32> {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is plain old data, and getsockopt writes at most `len` bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(info.tcpi_unacked)
}

#[cfg(not(target_os = "linux"))]
fn backlog_len(_listener: &TcpListener) -> Option<u32> {
    None
}

/// The encrypted echo: each complete line is a token; its plaintext goes back encrypted again,
/// and a rejected token gets a plain `ERROR` line.
fn fernet_replies(conn: &Handle, cipher: &fernet::Fernet, lines: Vec<String>) -> Vec<Vec<u8>> {
    lines
        .into_iter()
        .filter(|line| !line.trim().is_empty())
        .map(|line| match crypto::decrypt(cipher, &line) {
            Ok(plain) => {
                let plaintext = Payload::from_bytes(&plain);
                conn.emit(EventKind::Decrypted {
                    plaintext: plaintext.clone(),
                });
                conn.emit(EventKind::Encrypted { plaintext });
                format!("{}\n", cipher.encrypt(&plain)).into_bytes()
            }
            Err(error) => {
                conn.emit(EventKind::Error {
                    op: "decrypt".into(),
                    error,
                });
                b"ERROR invalid token\n".to_vec()
            }
        })
        .collect()
}

/// Closes an accepted connection and looks up what the kernel keeps of it afterwards.
fn finish(conn: Handle, by: ClosedBy, reason: impl Into<String>) {
    close_tcp(conn, Some((by, reason.into())));
}

/// One accepted connection, from the first recv() to close().
async fn serve(
    conn: Handle,
    mut stream: TcpStream,
    mut requests: mpsc::Receiver<Control>,
    spec: TcpServerSpec,
    (_permit, data): (OwnedSemaphorePermit, DataDir),
) {
    let ctx = conn.ctx.clone();
    if let Some(secret) = &spec.secret {
        if let Err(why) = authenticate(&ctx, &mut stream, secret).await {
            return finish(conn, ClosedBy::Local, why);
        }
    }
    let (mut reader, mut writer) = stream.into_split();
    let fd = tcp_state::handle(reader.as_ref());
    let mut watch = tcp_state::Watch::default();
    watch.check(&ctx, tcp_state::of_socket(fd));
    let mut poll = tokio::time::interval(tcp_state::POLL);
    let sink = match &spec.behaviour {
        Behaviour::SaveToFile { file } => Some(Some(file.as_str())),
        Behaviour::Discard => Some(None),
        _ => None,
    };
    if let Some(file) = sink {
        let complete = tcp_transfer::receive_tcp(&ctx, &data, &mut reader, file).await;
        return if ctx.life.is_stopped() {
            close_tcp(conn, None)
        } else if complete {
            finish(conn, ClosedBy::Peer, "the client finished sending (EOF)")
        } else {
            finish(
                conn,
                ClosedBy::Local,
                "the file transfer broke off; the file keeps its .part name",
            )
        };
    }
    let mut log = MessageLog::for_spec(&ctx, &data, spec.log_file.as_deref());
    let peer = ctx.origin.peer.clone().unwrap_or_default();
    // Checked when the server started, so a key here is always usable.
    let fernet = match &spec.behaviour {
        Behaviour::FernetEcho { key } => crypto::cipher(key).ok(),
        _ => None,
    };
    let mut lines = crypto::Lines::default();
    let mut buf = vec![0u8; spec.recv_buffer];
    let one_shot = spec.policy == ConnectionPolicy::OneShot;
    let manual = spec.behaviour == Behaviour::Manual;
    // A one-shot server with a person typing the reply stops reading after its one recv().
    let mut reading = true;
    loop {
        let limit = conn.impair.read_limit(buf.len());
        tokio::select! {
            _ = ctx.life.stopped() => return close_tcp(conn, None),
            _ = poll.tick() => watch.check(&ctx, tcp_state::of_socket(fd)),
            Some(request) = requests.recv() => {
                if let Some(SendRequest { data, done, .. }) = carry_out(&ctx, &data, &mut writer, &mut watch, request).await {
                    conn.impair.before_send(&ctx, data.len()).await;
                    let result = send_all(&ctx, &mut writer, &data).await;
                    let failed = result.as_ref().err().map(closed_by);
                    let _ = done.send(result);
                    if let Some(by) = failed {
                        return finish(conn, by, "sending failed");
                    }
                    if one_shot {
                        return finish(conn, ClosedBy::Local, "one-shot server: closed after its reply");
                    }
                }
            },
            received = reader.read(&mut buf[..limit]), if reading => match received {
                Ok(0) => {
                    conn.emit(EventKind::Eof);
                    // The client's FIN arrived and the server has not closed yet: CLOSE_WAIT.
                    watch.check(&ctx, tcp_state::of_socket(fd));
                    return finish(conn, ClosedBy::Peer, "the client closed the connection");
                }
                Ok(n) => {
                    let chunk = &buf[..n];
                    // Logged before it is shown: whatever a page has seen survives a crash.
                    if let Some(log) = &mut log {
                        log.write(&ctx, &peer, chunk);
                    }
                    conn.emit(EventKind::Recv { data: Payload::from_bytes(chunk), rtt_us: None });
                    conn.impair.after_read(&ctx, n).await;
                    if spec.policy.is_quit(chunk) {
                        return finish(conn, ClosedBy::Local, "the quit word arrived");
                    }
                    let replies = match &fernet {
                        Some(cipher) => match lines.push(chunk) {
                            Ok(complete) => fernet_replies(&conn, cipher, complete),
                            Err(crypto::LineTooLong) => {
                                return finish(conn, ClosedBy::Local, crypto::LineTooLong::reason());
                            }
                        },
                        None => spec.behaviour.reply(chunk).into_iter().collect(),
                    };
                    for reply in replies {
                        conn.impair.before_send(&ctx, reply.len()).await;
                        if let Err(err) = send_all(&ctx, &mut writer, &reply).await {
                            return finish(conn, closed_by(&err), "sending the reply failed");
                        }
                    }
                    if one_shot {
                        if !manual {
                            let reason = if spec.behaviour == Behaviour::PrintOnly {
                                "one-shot server: one recv(), printed, no reply (print only), close()"
                            } else {
                                "one-shot server: one recv(), one reply, close()"
                            };
                            return finish(conn, ClosedBy::Local, reason);
                        }
                        reading = false;
                    }
                }
                Err(err) => {
                    let by = recv_failed(&ctx, &err);
                    return finish(conn, by, "receiving failed");
                }
            },
        }
    }
}
