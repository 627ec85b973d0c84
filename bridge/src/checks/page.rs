//! The checker for the page: `check_list` and `check_run`. A run is the command line's run
//! (`run::run`, the same scenarios and verdicts) with what the page needs besides: the
//! checker's clients are endpoints of the bridge, so their calls appear on the timeline and in
//! the sequence diagram as they happen; a `check_started` event lists the steps and a
//! `check_step` event follows each one, so the page lights them up in turn and knows which
//! events belong to which step; and a program is run the way the page runs programs
//! (`program_run`: traced, in the data directory, its console shown), so a failing step sits
//! beside the student's own calls and lines.
//!
//! Only the built-in checks are offered here, by name: a page never names a scenario file (a
//! path would let a peer with the token make the bridge read files outside the data
//! directory). One check runs at a time, and a reset stops it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shared::{CheckInfo, ErrorInfo, ErrorKind, EventKind, ReplyData, Target};

use super::check_cmd::{listening, resolve};
use super::run::{self, Context, Listen, Output, Printed, Verdict};
use super::scenario::{Check, Role, Transport};
use crate::hub::Hub;

/// How long a program has to start listening on the lab's port.
const START_WAIT: Duration = Duration::from_secs(10);

/// `check_list`: the built-in checks.
pub(crate) fn list(_hub: &Hub) -> Result<ReplyData, ErrorInfo> {
    let checks = super::all(None).map_err(other)?;
    Ok(ReplyData::Checks {
        checks: checks.iter().map(info).collect(),
    })
}

fn info(check: &Check) -> CheckInfo {
    CheckInfo {
        lab: check.lab.clone(),
        title: check.title.clone(),
        about: check.about.clone(),
        program: match check.program {
            Role::Server => "server",
            Role::Client => "client",
        }
        .into(),
        transport: match check.transport {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
        .into(),
        port: check.port,
    }
}

fn other(why: String) -> ErrorInfo {
    ErrorInfo::new(ErrorKind::Other, why)
}

fn invalid(why: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new(ErrorKind::InvalidRequest, why)
}

/// `check_run`: runs the check `lab` against `target` or `program`; replies when it is done.
pub(crate) async fn run(
    hub: &Arc<Hub>,
    lab: String,
    target: Option<String>,
    program: Option<String>,
    args: Vec<String>,
) -> Result<ReplyData, ErrorInfo> {
    let checks = super::all(None).map_err(other)?;
    let names: Vec<&str> = checks.iter().map(|c| c.lab.as_str()).collect();
    let check = checks.iter().find(|c| c.lab == lab).ok_or_else(|| {
        invalid(format!(
            "There is no check called '{lab}'. The checks are: {}.",
            names.join(", ")
        ))
    })?;
    let _one = hub.checking.try_acquire().map_err(|_| {
        ErrorInfo::new(ErrorKind::LimitReached, "A check is running already.")
            .with_hint("Wait for its last step, or Reset to stop it.")
    })?;
    let stop = hub.work();
    tokio::select! {
        result = run_check(hub, check, target, program, args) => result,
        () = stop.cancelled() => Err(ErrorInfo::new(ErrorKind::Other, "The check was stopped by a reset.")),
    }
}

async fn run_check(
    hub: &Arc<Hub>,
    check: &Check,
    target: Option<String>,
    program: Option<String>,
    args: Vec<String>,
) -> Result<ReplyData, ErrorInfo> {
    let mut ctx = Context {
        recorder: run::Recorder::live(hub.registry.clone()),
        ..Context::default()
    };
    let mut started = None;
    let addr: SocketAddr = match (&target, &program) {
        (Some(target), None) => {
            if check.program == Role::Client {
                return Err(invalid(format!(
                    "'{}' checks a client program: give the program, not an address.",
                    check.lab
                )));
            }
            resolve(target).await.map_err(invalid)?
        }
        (None, Some(file)) => {
            let addr: SocketAddr = ([127, 0, 0, 1], check.port).into();
            let tcp = check.transport == Transport::Tcp;
            let server = check.program == Role::Server;
            if server && listening(check.port, tcp) {
                return Err(invalid(format!(
                    "Something listens on port {} already, the lab's port: stop it (or Reset) first.",
                    check.port
                )));
            }
            // A client program finds its server listening when it starts.
            ctx.listen = match (check.program, check.transport) {
                (Role::Server, _) => None,
                (Role::Client, Transport::Tcp) => Some(Listen::Tcp(
                    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                        invalid(format!(
                            "Cannot listen on {addr} as the program's server: {e}."
                        ))
                    })?,
                )),
                (Role::Client, Transport::Udp) => Some(Listen::Udp(Arc::new(
                    tokio::net::UdpSocket::bind(addr).await.map_err(|e| {
                        invalid(format!("Cannot bind {addr} as the program's server: {e}."))
                    })?,
                ))),
            };
            let output: Output = Arc::new(Printed::default());
            let info =
                crate::programs::runner::run(hub, file.clone(), args, Some(output.clone())).await?;
            started = Some(info.id);
            ctx.runs_program = true;
            ctx.output = Some(output.clone());
            ctx.dir = hub.data.root().ok().map(|d| d.to_path_buf());
            let (programs, id) = (hub.programs.clone(), info.id);
            ctx.input = Some(Box::new(move |text: &str| {
                programs
                    .input(id, text.to_string())
                    .map_err(|e| e.explanation)
            }));
            if server {
                if let Err(e) = wait_listening(hub, id, check.port, tcp, &output).await {
                    stop_program(hub, id).await;
                    return Err(e);
                }
            }
            addr
        }
        _ => {
            return Err(invalid(
                "Give either target (host:port of a running server) or program (a .py file).",
            ))
        }
    };
    let log = hub.log.clone();
    log.emit(
        &crate::core::event_log::Origin::endpoint(0),
        EventKind::CheckStarted {
            lab: check.lab.clone(),
            title: check.title.clone(),
            steps: run::plan(check),
        },
    );
    ctx.progress = Some(Box::new(move |index, result| {
        let (verdict, explanation) = match &result.verdict {
            Verdict::Passed => ("passed", String::new()),
            Verdict::Failed(why) => ("failed", why.clone()),
            Verdict::Skipped(why) => ("skipped", why.clone()),
        };
        log.emit(
            &crate::core::event_log::Origin::endpoint(0),
            EventKind::CheckStep {
                index: index as u32,
                verdict: verdict.into(),
                explanation,
            },
        );
    }));
    let results = run::run(check, addr, &mut ctx).await;
    drop(ctx);
    if let Some(id) = started {
        stop_program(hub, id).await;
    }
    let passed = results
        .iter()
        .filter(|r| r.verdict == Verdict::Passed)
        .count() as u32;
    Ok(ReplyData::Check {
        lab: check.lab.clone(),
        passed,
        total: results.len() as u32,
    })
}

/// Waits until the program listens on the lab's port (the kernel's tables: nothing to wait on
/// for a socket another process binds), or ends, or takes too long.
async fn wait_listening(
    hub: &Hub,
    id: u32,
    port: u16,
    tcp: bool,
    output: &Output,
) -> Result<(), ErrorInfo> {
    let deadline = tokio::time::Instant::now() + START_WAIT;
    loop {
        if listening(port, tcp) {
            return Ok(());
        }
        if !hub.registry.alive(id) {
            // What it printed last (a traceback) says why.
            output
                .settle(Duration::from_millis(100), Duration::from_millis(500))
                .await;
            let printed = output.text();
            let last: Vec<&str> = printed.lines().rev().take(6).collect();
            let last: Vec<&str> = last.into_iter().rev().collect();
            return Err(invalid(format!(
                "The program ended before it listened on port {port}. It printed:\n{}",
                last.join("\n")
            )));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(invalid(format!(
                "The program did not listen on port {port}, the lab's port, within {} s.",
                START_WAIT.as_secs()
            ))
            .with_hint("Does it use the handout's port?"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops the program the check ran, as its Stop button does, and waits for it (bounded).
async fn stop_program(hub: &Hub, id: u32) {
    let target = Target {
        endpoint: id,
        conn: None,
    };
    if let Ok(finished) = hub
        .registry
        .stop(target, shared::ClosedBy::Bridge, "the check is over")
    {
        let _ = tokio::time::timeout(Duration::from_secs(5), finished.cancelled()).await;
    }
}
