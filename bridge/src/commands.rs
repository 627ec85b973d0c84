//! Carries out one [`Command`] and produces its one [`Outcome`]. Endpoint creation lives with
//! each endpoint kind; this file routes and handles the commands that act on running ones.

use std::sync::Arc;
use std::time::Duration;

use shared::{
    ClosedBy, Command, ErrorInfo, ErrorKind, FetchSendCommand, Outcome, ReplyData, SendBulkCommand,
    SendCommand, SendFileCommand, Target, TransferReport,
};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::core::control::Control;
use crate::endpoints::{tcp_client, tcp_server, udp_client, udp_server};
use crate::hub::Hub;
use crate::programs;
use crate::security::{resolve, Purpose};

/// How long a send may wait for the socket before the reply says so. The send itself goes on
/// in the socket's task.
const SEND_REPLY_WAIT: Duration = Duration::from_secs(10);
/// How long a close or reset waits for sockets to finish closing.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Runs a command to completion.
pub(crate) async fn execute(hub: &Arc<Hub>, command: Command) -> Outcome {
    if let Err(why) = command.check_lengths() {
        return Outcome::Error(ErrorInfo::new(
            ErrorKind::InvalidRequest,
            format!("The {} command was refused: {why}.", command.name()),
        ));
    }
    let result = match command {
        Command::TcpServerStart(spec) => {
            tcp_server::start(hub, spec).await.map(ReplyData::Endpoint)
        }
        Command::UdpServerStart(spec) => {
            udp_server::start(hub, spec).await.map(ReplyData::Endpoint)
        }
        Command::TcpClientConnect(spec) => tcp_client::connect(hub, spec)
            .await
            .map(ReplyData::Endpoint),
        Command::UdpClientOpen(spec) => udp_client::open(hub, spec).await.map(ReplyData::Endpoint),
        Command::Send(send) => send_data(hub, send).await,
        Command::ShutdownWrite(target) => shutdown_write(hub, target).await,
        Command::Close(target) => close(hub, target).await,
        Command::Reset => Ok(reset(hub).await),
        Command::SendFile(send) => send_file(hub, send).await,
        Command::SendBulk(send) => send_bulk(hub, send).await,
        Command::ListFiles => hub.data.list().map(|files| ReplyData::Files { files }),
        Command::FetchSend(fetch) => fetch_send(hub, fetch).await,
        Command::UploadStart { file, size } => hub
            .uploads
            .start(&hub.data, &file, size)
            .map(|upload| ReplyData::Upload { upload }),
        Command::UploadChunk {
            upload,
            offset,
            base64,
        } => hub
            .uploads
            .chunk(upload, offset, &base64)
            .await
            .map(|bytes| ReplyData::Uploaded {
                bytes,
                sha256: None,
            }),
        Command::UploadFinish { upload } => {
            hub.uploads
                .finish(upload)
                .await
                .map(|(bytes, sha256)| ReplyData::Uploaded {
                    bytes,
                    sha256: Some(sha256),
                })
        }
        Command::Compare(spec) => compare(hub, spec).await,
        Command::Impair {
            endpoint,
            impairment,
        } => hub
            .registry
            .set_impairment(endpoint, impairment)
            .map(|()| ReplyData::Done),
        Command::PythonProgram { spec } => Ok(ReplyData::Program {
            file: crate::python::file_name(&spec).to_string(),
            code: crate::python::program(&spec),
        }),
        Command::FernetKey => Ok(ReplyData::Key {
            key: crate::crypto::new_key(),
        }),
        Command::ProgramSave { file, source } => save_program(hub, &file, &source),
        Command::FileRead { file } => hub
            .data
            .read_text(&file, shared::MAX_PROGRAM_SOURCE)
            .map(|code| ReplyData::Program { file, code }),
        Command::ProgramRun { file, args } => programs::runner::run(hub, file, args, None)
            .await
            .map(ReplyData::Endpoint),
        Command::CheckList => crate::checks::page::list(hub),
        Command::CaptureSave { endpoint, conn } => capture_save(hub, endpoint, conn),
        Command::CheckRun {
            lab,
            target,
            program,
            args,
        } => crate::checks::page::run(hub, lab, target, program, args).await,
        Command::ProgramInput { program, text } => {
            hub.programs.input(program, text).map(|()| ReplyData::Done)
        }
        Command::ProgramSource { program } => hub
            .programs
            .source(program)
            .map(|(file, code)| ReplyData::Program { file, code }),
        Command::TraceAttach {
            argv,
            pid,
            script,
            source,
            channel_port,
        } => {
            programs::attach(hub, argv, pid, script, source, channel_port).map(ReplyData::Endpoint)
        }
        Command::TraceRecords { program, records } => {
            programs::records(hub, program, records).map(|()| ReplyData::Done)
        }
        Command::TraceExit {
            program,
            code,
            signal,
        } => programs::exited(hub, program, code, signal, None).map(|()| ReplyData::Done),
    };
    match result {
        Ok(data) => Outcome::Ok(data),
        Err(error) => Outcome::Error(error),
    }
}

/// Writes the captured packets into a pcapng file of the data directory.
fn capture_save(
    hub: &Hub,
    endpoint: Option<shared::EndpointId>,
    conn: Option<shared::ConnId>,
) -> Result<ReplyData, ErrorInfo> {
    let status = hub.capture.status();
    let Some((bytes, packets)) = hub.capture.pcapng(endpoint, conn) else {
        let mut error = ErrorInfo::new(ErrorKind::Unsupported, status.detail);
        if let Some(hint) = status.hint {
            error = error.with_hint(hint);
        }
        return Err(error);
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let file = match (endpoint, conn) {
        (Some(e), Some(c)) => format!("capture-{stamp}-endpoint{e}-conn{c}.pcapng"),
        (Some(e), None) => format!("capture-{stamp}-endpoint{e}.pcapng"),
        _ => format!("capture-{stamp}.pcapng"),
    };
    hub.data.write_whole(&file, &bytes)?;
    let (captured, dropped) = hub.capture.counts();
    Ok(ReplyData::Capture {
        file,
        packets: packets as u64,
        captured,
        dropped,
    })
}

/// Saves the page editor's program as a `.py` file of the data directory.
fn save_program(hub: &Hub, file: &str, source: &str) -> Result<ReplyData, ErrorInfo> {
    if !file.ends_with(".py") {
        return Err(ErrorInfo::new(
            ErrorKind::InvalidRequest,
            format!("'{file}' does not end in .py: programs are saved as Python files."),
        ));
    }
    hub.data.write_whole(file, source.as_bytes())?;
    hub.data.list().map(|files| ReplyData::Files { files })
}

/// Runs a comparison, one at a time, until it ends or a reset stops it.
async fn compare(hub: &Hub, spec: shared::CompareSpec) -> Result<ReplyData, ErrorInfo> {
    let Ok(_one) = hub.comparing.try_acquire() else {
        return Err(ErrorInfo::new(
            ErrorKind::LimitReached,
            "A comparison is already running; wait for its result.",
        ));
    };
    let work = hub.work();
    tokio::select! {
        report = crate::compare::run(spec) => report.map(|r| ReplyData::Compare(Box::new(r))),
        _ = work.cancelled() => Err(ErrorInfo::new(
            ErrorKind::ConnectionAborted,
            "The comparison was stopped: reset closes everything.",
        )),
    }
}

async fn send_data(hub: &Hub, send: SendCommand) -> Result<ReplyData, ErrorInfo> {
    let data = send
        .data
        .to_bytes()
        .map_err(|why| ErrorInfo::new(ErrorKind::InvalidRequest, format!("Cannot send: {why}.")))?;
    let target = Target {
        endpoint: send.endpoint,
        conn: send.conn,
    };
    let bytes = send_bytes(hub, target, send.to.as_deref(), data, send.tamper).await?;
    Ok(ReplyData::Sent { bytes })
}

/// Hands bytes to a socket's task to send (to `to`, for UDP) and waits for the result.
async fn send_bytes(
    hub: &Hub,
    target: Target,
    to: Option<&str>,
    data: Vec<u8>,
    tamper: bool,
) -> Result<usize, ErrorInfo> {
    let to = match to {
        Some(text) => Some(parse_destination(hub, text).await?),
        None => None,
    };
    let control = hub.registry.control(target)?;
    let (done, answer) = oneshot::channel();
    let request = Control::Send {
        data,
        to,
        tamper,
        done,
    };
    ask(control, request, answer).await
}

async fn shutdown_write(hub: &Hub, target: Target) -> Result<ReplyData, ErrorInfo> {
    let control = hub.registry.control(target)?;
    let (done, answer) = oneshot::channel();
    ask(control, Control::ShutdownWrite { done }, answer).await?;
    Ok(ReplyData::Done)
}

/// Replies when the whole file went out (or the transfer broke off), however long that takes.
async fn send_file(hub: &Hub, send: SendFileCommand) -> Result<ReplyData, ErrorInfo> {
    crate::files::datadir::check_name(&send.file)?;
    let (file, datagram_size) = (send.file, send.datagram_size);
    transfer(hub, send.endpoint, |done| Control::SendFile {
        file,
        datagram_size,
        done,
    })
    .await
}

/// Replies when all the bytes went out (or the sending broke off).
async fn send_bulk(hub: &Hub, send: SendBulkCommand) -> Result<ReplyData, ErrorInfo> {
    let bytes = send.bytes;
    transfer(hub, send.endpoint, |done| Control::SendBulk { bytes, done }).await
}

/// Hands a transfer to the endpoint's task and waits for its report.
async fn transfer(
    hub: &Hub,
    endpoint: shared::EndpointId,
    request: impl FnOnce(oneshot::Sender<Result<TransferReport, ErrorInfo>>) -> Control,
) -> Result<ReplyData, ErrorInfo> {
    let control = hub.registry.control(Target {
        endpoint,
        conn: None,
    })?;
    let (done, answer) = oneshot::channel();
    control
        .send(request(done))
        .await
        .map_err(|_| socket_gone())?;
    let report = answer.await.map_err(|_| socket_gone())??;
    Ok(ReplyData::Transfer(report))
}

/// Fetches the URL (each step recorded on the sending endpoint as it happens), records the
/// result, and sends the body like a `send`.
async fn fetch_send(hub: &Hub, fetch: FetchSendCommand) -> Result<ReplyData, ErrorInfo> {
    let target = Target {
        endpoint: fetch.endpoint,
        conn: fetch.conn,
    };
    hub.registry.control(target)?;
    let origin = crate::core::event_log::Origin {
        endpoint: fetch.endpoint,
        conn: fetch.conn,
        ..Default::default()
    };
    let step = |step: &str, detail: String| {
        hub.log.emit(
            &origin,
            shared::EventKind::FetchStep {
                step: step.to_string(),
                detail,
            },
        );
    };
    let (status, body) = hub.fetcher.get(&fetch.url, &step).await?;
    hub.log.emit(
        &origin,
        shared::EventKind::Fetch {
            url: fetch.url.clone(),
            status,
            bytes: body.len(),
        },
    );
    let bytes = send_bytes(hub, target, fetch.to.as_deref(), body.to_vec(), false).await?;
    Ok(ReplyData::Sent { bytes })
}

fn socket_gone() -> ErrorInfo {
    ErrorInfo::new(
        ErrorKind::UnknownEndpoint,
        "The socket closed before it could do this.",
    )
}

/// Hands a request to a socket's task and waits for its answer.
async fn ask<T>(
    control: tokio::sync::mpsc::Sender<Control>,
    request: Control,
    answer: oneshot::Receiver<Result<T, ErrorInfo>>,
) -> Result<T, ErrorInfo> {
    let gone = socket_gone;
    let busy = || {
        ErrorInfo::new(
            ErrorKind::TimedOut,
            "The socket is still busy: the peer is not reading, so earlier data still fills \
             the buffers.",
        )
        .with_hint("Wait for the peer to read, or close the connection.")
    };
    tokio::time::timeout(SEND_REPLY_WAIT, control.send(request))
        .await
        .map_err(|_| busy())?
        .map_err(|_| gone())?;
    tokio::time::timeout(SEND_REPLY_WAIT, answer)
        .await
        .map_err(|_| busy())?
        .map_err(|_| gone())?
}

/// A UDP destination such as `127.0.0.1:12001` or `localhost:12001`, held to the address policy.
async fn parse_destination(hub: &Hub, text: &str) -> Result<std::net::SocketAddr, ErrorInfo> {
    let bad = || {
        ErrorInfo::new(
            ErrorKind::InvalidRequest,
            format!("'{text}' is not an address with a port, such as 127.0.0.1:12001."),
        )
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    resolve(host, port, &hub.config.reach(), Purpose::Connect).await
}

async fn close(hub: &Hub, target: Target) -> Result<ReplyData, ErrorInfo> {
    let reason = match target.conn {
        Some(_) => "closed by you",
        None => "closed (stopped) by you",
    };
    let finished = hub.registry.stop(target, ClosedBy::Local, reason)?;
    wait_all(&[finished]).await;
    Ok(ReplyData::Done)
}

async fn reset(hub: &Hub) -> ReplyData {
    let finished = hub.stop_all(ClosedBy::Bridge, "reset: everything was closed");
    wait_all(&finished).await;
    hub.emit_bridge(shared::EventKind::Reset);
    ReplyData::Reset {
        closed: finished.len(),
    }
}

async fn wait_all(finished: &[CancellationToken]) {
    let all = futures_util::future::join_all(finished.iter().map(|f| f.cancelled()));
    // A socket task that does not finish in time still closes; the reply need not wait.
    let _ = tokio::time::timeout(CLOSE_WAIT, all).await;
}
