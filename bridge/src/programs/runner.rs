//! Runs a program for the page (`program_run`): `python3 FILE ARGS...` in the data directory,
//! traced, in a process group of its own, with its console shown (bounded) and its stdin fed
//! from the page. Stopping it (a close, a reset, the bridge shutting down) sends SIGTERM to
//! the group, then SIGKILL after [`KILL_AFTER`]; when it ends, whatever it forked is killed
//! too, and the bridge waits for it, so no process and no zombie is left (`process`: how
//! each system does this; on Windows a job object, ended at once).
//!
//! Python programs run on every system (their shim reports over loopback TCP). Programs in
//! other languages run under Linux's system-call tracer (`run_native`, Unix only; the tracer
//! of other Unix systems says it cannot).

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::{
    EndpointInfo, EndpointSpec, ErrorInfo, ErrorKind, EventKind, ProgramFrom, ProgramSpec,
    MAX_PROGRAM_SOURCE,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::Child;
use tokio::sync::mpsc;

use super::channel::{self, Channel};
use super::merge::{Item, Shared};
use super::process::{self, Group};
use super::tracer::Tracer;
use super::{check_allowed, console_event, describe_exit, Entry, Programs};
use crate::core::ctx::Ctx;
use crate::core::lifeline::Lifeline;
use crate::hub::Hub;

/// How long a stopped program has to end after SIGTERM before SIGKILL.
pub(crate) const KILL_AFTER: Duration = Duration::from_secs(2);
/// Console bytes shown at once before the rate applies.
const CONSOLE_BURST: f64 = 256.0 * 1024.0;
/// Console bytes shown per second after the burst.
const CONSOLE_RATE: f64 = 64.0 * 1024.0;
/// Largest piece of console read (and shown) at once.
const CONSOLE_CHUNK: usize = 4096;
/// Lines of input waiting for a program that does not read them.
const STDIN_QUEUE: usize = 16;
/// How long the console is read after the program ended (what it wrote last).
const LAST_OUTPUT_WAIT: Duration = Duration::from_millis(500);

/// `program_run`: starts the program and replies with its endpoint.
/// `tee`, when given, gets everything the program prints as well (up to its limit, whatever
/// the console's rate shows): a check run from the page reads it (`expect_output`).
pub(crate) async fn run(
    hub: &Arc<Hub>,
    file: String,
    args: Vec<String>,
    tee: Option<crate::checks::run::Output>,
) -> Result<EndpointInfo, ErrorInfo> {
    check_allowed(hub)?;
    if !file.ends_with(".py") {
        return run_native(hub, file, args, tee).await;
    }
    let source = hub.data.read_text(&file, MAX_PROGRAM_SOURCE)?;
    let root = hub.data.root()?.to_path_buf();
    let slot = hub.programs.reserve()?;
    let shim = hub.programs.shim_dir()?;
    let channel = Channel::new()
        .await
        .map_err(|e| spawn_error(&hub.config.python, &e))?;
    let left_out = hub.capture.leave_out(channel.port());
    let mut command = tokio::process::Command::new(&hub.config.python);
    command
        .arg(&file)
        .args(&args)
        .current_dir(&root)
        .env("PYTHONPATH", python_path(&shim))
        .env(channel::VAR, channel.address())
        // The console is shown as it is written, not when a buffer fills.
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    Group::prepare(&mut command);
    let mut child = command
        .spawn()
        .map_err(|e| spawn_error(&hub.config.python, &e))?;
    let group = Group::of(&child);
    let pid = child.id().unwrap_or(0);
    let mut argv = vec![hub.config.python.clone(), file.clone()];
    argv.extend(args);
    let spec = ProgramSpec {
        argv,
        from: ProgramFrom::Page,
        pid,
        script: Some(file.clone()),
    };
    let handle = match hub.registry.create_endpoint(EndpointSpec::Program(spec)) {
        Ok(handle) => handle,
        Err(error) => {
            group.kill();
            let _ = child.wait().await;
            return Err(error);
        }
    };
    let pipes = match (child.stdout.take(), child.stderr.take()) {
        (Some(out), Some(err)) => Pipes::new(Box::pin(out), Box::pin(err)),
        _ => Pipes::closed(),
    };
    let stdin = child.stdin.take();
    let traced = Traced::Shim {
        child: Box::new(child),
        channel,
    };
    let started = Started {
        group,
        pipes,
        traced,
        source: Some((file, source)),
        tee,
        left_out: Some(left_out),
    };
    watch(hub, slot, handle, stdin, started)
}

/// A program just started, for [`watch`].
struct Started {
    group: Group,
    pipes: Pipes,
    traced: Traced,
    /// The script's name and text (a Python program's).
    source: Option<(String, String)>,
    tee: Option<crate::checks::run::Output>,
    /// Its shim's channel's port, left out of the packet capture (a Python program's).
    left_out: Option<crate::wire::LeftOut>,
}

/// Shows a started program: its stdin fed from the page, its tracer made, its place among
/// the running programs filled, and [`supervise`] watching it until it ends. Its endpoint.
fn watch(
    hub: &Arc<Hub>,
    slot: super::Slot,
    handle: crate::core::registry::Handle,
    stdin: Option<impl tokio::io::AsyncWrite + Unpin + Send + 'static>,
    started: Started,
) -> Result<EndpointInfo, ErrorInfo> {
    let info = handle.info().ok_or_else(|| super::not_running(0))?;
    let (stdin_tx, stdin_rx) = mpsc::channel(STDIN_QUEUE);
    if let Some(stdin) = stdin {
        hub.tasks
            .spawn(feed_stdin(stdin, stdin_rx, handle.ctx.clone()));
    }
    let life = handle.life().clone();
    let tracer: Shared = Arc::new(std::sync::Mutex::new(Some(Tracer::new(
        hub.registry.clone(),
        handle,
    ))));
    slot.fill(
        info.id,
        Entry {
            stdin: Some(stdin_tx),
            source: started.source,
            tracer: tracer.clone(),
            terminal: false,
            _left_out: started.left_out,
        },
    );
    hub.programs.merger.register(info.id);
    let shown = Shown {
        programs: hub.programs.clone(),
        id: info.id,
        tracer,
        tee: started.tee,
    };
    let Started {
        group,
        pipes,
        traced,
        ..
    } = started;
    hub.tasks
        .spawn(supervise(traced, group, pipes, life, shown));
    Ok(info)
}

/// `program_run` of any other program (C, Java, Node ...): a program of the data directory
/// (`server`, `./server`) or a command on `PATH` (`java`, `node`, `gcc`), run in the data
/// directory under the system-call tracer (`ptrace`), with its console and stdin as a Python
/// program's. Its output is line-buffered where C's stdio would buffer it by the block on a
/// pipe, by running it through coreutils' `stdbuf -oL -eL` when that is at hand.
#[cfg(unix)]
async fn run_native(
    hub: &Arc<Hub>,
    file: String,
    args: Vec<String>,
    tee: Option<crate::checks::run::Output>,
) -> Result<EndpointInfo, ErrorInfo> {
    use super::ptrace::{Launch, Report};
    let root = hub.data.root()?.to_path_buf();
    let program = resolve(&hub.data, &file)?;
    let slot = hub.programs.reserve()?;
    let io_error = |e: std::io::Error| ErrorInfo {
        os_message: Some(e.to_string()),
        ..ErrorInfo::new(ErrorKind::Other, format!("'{file}' could not be started."))
    };
    let (stdin_child, stdin_ours) = pipe().map_err(io_error)?;
    let (stdout_ours, stdout_child) = pipe().map_err(io_error)?;
    let (stderr_ours, stderr_child) = pipe().map_err(io_error)?;
    let stdin = tokio::net::unix::pipe::Sender::from_owned_fd(stdin_ours).map_err(io_error)?;
    let stdout = tokio::net::unix::pipe::Receiver::from_owned_fd(stdout_ours).map_err(io_error)?;
    let stderr = tokio::net::unix::pipe::Receiver::from_owned_fd(stderr_ours).map_err(io_error)?;
    let mut command = match find_on_path("stdbuf") {
        Some(stdbuf) => vec![stdbuf, "-oL".into(), "-eL".into()],
        None => Vec::new(),
    };
    command.push(program);
    command.extend(args.iter().cloned());
    // Bounded: a tracer ahead of the page waits, and the program with it.
    let (tx, mut reports) = mpsc::channel::<Report>(4096);
    let name = file.clone();
    std::thread::Builder::new()
        .name("ptrace".into())
        .spawn(move || {
            use std::os::fd::AsRawFd as _;
            let mut child_ends = Some([stdin_child, stdout_child, stderr_child]);
            let stdio = child_ends
                .as_ref()
                .map(|fds| fds.each_ref().map(|f| f.as_raw_fd()));
            let launch = Launch {
                argv: &command,
                name: &name,
                dir: &root,
                stdio,
            };
            let failed = tx.clone();
            let result = super::ptrace::run(&launch, |report| {
                if matches!(report, Report::Started(_)) {
                    // The child has its copies: the pipes end when it (and what it forked) does.
                    child_ends = None;
                }
                let _ = tx.blocking_send(report);
            });
            if let Err(e) = result {
                let _ = failed.blocking_send(Report::Failed(e.to_string()));
            }
        })
        .map_err(io_error)?;
    let pid = match reports.recv().await {
        Some(Report::Started(pid)) => pid,
        Some(Report::Failed(why)) => return Err(cannot_trace(&file, &why)),
        _ => return Err(cannot_trace(&file, "the tracer ended")),
    };
    let mut argv = vec![file.clone()];
    argv.extend(args);
    let spec = ProgramSpec {
        argv,
        from: ProgramFrom::Page,
        pid,
        script: None,
    };
    let handle = match hub.registry.create_endpoint(EndpointSpec::Program(spec)) {
        Ok(handle) => handle,
        Err(error) => {
            Group::led_by(pid).kill();
            return Err(error);
        }
    };
    let started = Started {
        group: Group::led_by(pid),
        pipes: Pipes::new(Box::pin(stdout), Box::pin(stderr)),
        traced: Traced::Native { reports },
        source: None,
        tee,
        left_out: None,
    };
    watch(hub, slot, handle, Some(stdin), started)
}

/// `program_run` of a program that is not Python, where there is no system-call tracer
/// (Windows): refused, with what does work.
#[cfg(not(unix))]
async fn run_native(
    _hub: &Arc<Hub>,
    file: String,
    _args: Vec<String>,
    _tee: Option<crate::checks::run::Output>,
) -> Result<EndpointInfo, ErrorInfo> {
    Err(ErrorInfo::new(
        ErrorKind::Unsupported,
        format!("'{file}' is not a Python program: on Windows only Python programs run from the page in this version."),
    )
    .with_hint("Name a .py file, or run the program in a terminal: it talks to the playground's servers and clients as any peer does."))
}

/// The program `program_run` names: a file of the data directory (which must be executable),
/// else a command on `PATH`.
#[cfg(unix)]
fn resolve(data: &crate::files::datadir::DataDir, file: &str) -> Result<String, ErrorInfo> {
    use std::os::unix::fs::PermissionsExt as _;
    let name = file.strip_prefix("./").unwrap_or(file);
    if let Ok(path) = data.path(name) {
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            if !meta.is_file() {
                return Err(ErrorInfo::new(
                    ErrorKind::NotAllowed,
                    format!("'{name}' is not a regular file, so it cannot be run."),
                ));
            }
            if meta.permissions().mode() & 0o111 == 0 {
                return Err(ErrorInfo::new(
                    ErrorKind::InvalidRequest,
                    format!("'{name}' is not executable, so it cannot be run."),
                )
                .with_hint(format!(
                    "Compile it into a program (gcc -o server {name}), make it executable \
                     (chmod +x {name}), or run its interpreter (java, node, bash) with the \
                     file as the first argument."
                )));
            }
            return Ok(path.to_string_lossy().into_owned());
        }
    }
    if file.contains('/') || file.is_empty() {
        return Err(ErrorInfo::new(
            ErrorKind::InvalidRequest,
            format!(
                "'{}' is not a program the page can run.",
                file.escape_debug()
            ),
        )
        .with_hint(
            "Name a .py file or a program of the data directory (server, ./server), or a \
             command on PATH (java, node, gcc).",
        ));
    }
    find_on_path(file).ok_or_else(|| {
        ErrorInfo::new(
            ErrorKind::InvalidRequest,
            format!(
                "'{file}' is neither a file of the data directory nor a command found on PATH."
            ),
        )
        .with_hint("Check the name, or install the program on the machine the bridge runs on.")
    })
}

/// Where `PATH` finds the executable `name`.
#[cfg(unix)]
fn find_on_path(name: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .map(|p| p.to_string_lossy().into_owned())
}

/// Why a program cannot be run under the tracer, and what would allow it.
#[cfg(unix)]
fn cannot_trace(file: &str, why: &str) -> ErrorInfo {
    let error = ErrorInfo::new(
        ErrorKind::Other,
        format!("'{file}' cannot be run under the tracer: {why}."),
    );
    if why.contains("not permitted") {
        error.with_hint(super::ptrace::NOT_PERMITTED_HINT)
    } else {
        error
    }
}

/// A pipe whose two ends are closed on exec: (read end, write end).
#[cfg(unix)]
fn pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    let (read, write) = std::io::pipe()?;
    Ok((read.into(), write.into()))
}

/// Where a running program's reports and console go: into the one order of every program's.
struct Shown {
    programs: Programs,
    id: shared::EndpointId,
    tracer: Shared,
    tee: Option<crate::checks::run::Output>,
}

impl Shown {
    fn push(&self, item: Item) {
        self.programs.merger.push(self.id, &self.tracer, item);
    }
}

/// PYTHONPATH with the shim first, then what the bridge itself was given (joined with the
/// system's separator: `;` on Windows, `:` elsewhere).
pub(crate) fn python_path(shim: &std::path::Path) -> std::ffi::OsString {
    let mut parts = vec![shim.to_path_buf()];
    if let Some(existing) = std::env::var_os("PYTHONPATH") {
        parts.extend(std::env::split_paths(&existing).filter(|p| !p.as_os_str().is_empty()));
    }
    std::env::join_paths(&parts).unwrap_or_else(|_| shim.as_os_str().to_owned())
}

fn spawn_error(python: &str, err: &std::io::Error) -> ErrorInfo {
    if err.kind() == std::io::ErrorKind::NotFound {
        return ErrorInfo::new(
            ErrorKind::Other,
            format!("'{python}' was not found, so the program cannot run."),
        )
        .with_hint(
            "Install Python 3 on the machine the bridge runs on, or name yours when starting \
             the bridge (--python py, or the path of python.exe).",
        );
    }
    ErrorInfo {
        os_message: Some(err.to_string()),
        ..ErrorInfo::new(
            ErrorKind::Other,
            format!("'{python}' could not be started."),
        )
    }
}

/// Writes what the page types to the program, and shows it in its console.
async fn feed_stdin(
    mut stdin: impl tokio::io::AsyncWrite + Unpin,
    mut lines: mpsc::Receiver<Vec<u8>>,
    ctx: Ctx,
) {
    while let Some(bytes) = tokio::select! {
        line = lines.recv() => line,
        _ = ctx.life.stopped() => None,
    } {
        // Timed before it is written: the program may read it and send before the event is
        // made, and what it typed comes before what it caused.
        let written_us = ctx.log.now_us();
        if stdin.write_all(&bytes).await.is_err() || stdin.flush().await.is_err() {
            return;
        }
        ctx.emit(console_event("stdin", &bytes, Some(written_us)));
    }
}

/// Bytes of console shown per second, beyond which they are counted instead.
struct Console {
    tokens: f64,
    refilled: Instant,
    dropped: u64,
}

impl Console {
    fn new() -> Self {
        Console {
            tokens: CONSOLE_BURST,
            refilled: Instant::now(),
            dropped: 0,
        }
    }

    fn show(&mut self, shown: &Shown, stream: &str, bytes: &[u8]) {
        if let Some(tee) = &shown.tee {
            tee.push(&String::from_utf8_lossy(bytes));
        }
        let now = Instant::now();
        self.tokens = (self.tokens
            + now.duration_since(self.refilled).as_secs_f64() * CONSOLE_RATE)
            .min(CONSOLE_BURST);
        self.refilled = now;
        if self.tokens < bytes.len() as f64 {
            self.dropped += bytes.len() as u64;
            return;
        }
        self.tokens -= bytes.len() as f64;
        self.report(shown);
        shown.push(Item::Program(console_event(stream, bytes, None)));
    }

    fn report(&mut self, shown: &Shown) {
        if self.dropped > 0 {
            shown.push(Item::Program(EventKind::Dropped {
                what: "console".into(),
                count: std::mem::take(&mut self.dropped),
            }));
        }
    }
}

/// One of the console's two pipes (a Python program's, or a traced program's), read until
/// it closes.
type Pipe = std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>;

/// Reads `pipe` (if open) into `buf`; pending forever once it is closed.
async fn read_pipe(pipe: &mut Option<Pipe>, buf: &mut [u8]) -> Option<usize> {
    match pipe {
        Some(p) => match p.read(buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        },
        None => std::future::pending().await,
    }
}

/// The program's stdout and stderr, read as they are written and shown within the console's
/// rate.
struct Pipes {
    out: Option<Pipe>,
    err: Option<Pipe>,
    out_buf: [u8; CONSOLE_CHUNK],
    err_buf: [u8; CONSOLE_CHUNK],
    console: Console,
}

impl Pipes {
    fn new(out: Pipe, err: Pipe) -> Pipes {
        Pipes {
            out: Some(out),
            err: Some(err),
            out_buf: [0; CONSOLE_CHUNK],
            err_buf: [0; CONSOLE_CHUNK],
            console: Console::new(),
        }
    }

    /// No console to read (pipes that could not be had).
    fn closed() -> Pipes {
        Pipes {
            out: None,
            err: None,
            ..Pipes::new(Box::pin(tokio::io::empty()), Box::pin(tokio::io::empty()))
        }
    }

    fn open(&self) -> bool {
        self.out.is_some() || self.err.is_some()
    }

    /// Shows the next piece either pipe gives (or notes that one closed); pending forever
    /// once both are closed. Cancel-safe.
    async fn show_next(&mut self, shown: &Shown) {
        tokio::select! {
            n = read_pipe(&mut self.out, &mut self.out_buf) => match n {
                Some(n) => self.console.show(shown, "stdout", &self.out_buf[..n]),
                None => self.out = None,
            },
            n = read_pipe(&mut self.err, &mut self.err_buf) => match n {
                Some(n) => self.console.show(shown, "stderr", &self.err_buf[..n]),
                None => self.err = None,
            },
        }
    }
}

/// How a running program's calls are seen: the Python shim's reports (and the child the
/// bridge waits for), or the system-call tracer's.
enum Traced {
    Shim {
        child: Box<Child>,
        channel: Channel,
    },
    #[cfg(unix)]
    Native {
        reports: mpsc::Receiver<super::ptrace::Report>,
    },
}

/// What [`Traced::next`] saw.
enum Step {
    Records(Vec<shared::TraceRecord>),
    /// The program ended: its status or signal, or why the tracer could not go on.
    Ended(Option<i32>, Option<i32>, Option<String>),
    Nothing,
}

impl Traced {
    /// The next calls, or the end. Cancel-safe.
    async fn next(&mut self, reporting: &mut bool) -> Step {
        #[cfg(unix)]
        use super::ptrace::Report;
        match self {
            Traced::Shim { child, channel } => tokio::select! {
                biased;
                status = child.wait() => match status {
                    Ok(status) => {
                        let (code, signal) = process::ended(&status);
                        Step::Ended(code, signal, None)
                    }
                    Err(_) => Step::Ended(None, None, None),
                },
                records = channel.next(), if *reporting => match records {
                    Ok(records) => Step::Records(records),
                    Err(_) => {
                        *reporting = false;
                        Step::Nothing
                    }
                },
            },
            #[cfg(unix)]
            Traced::Native { reports } => match reports.recv().await {
                Some(Report::Call(record)) => Step::Records(vec![*record]),
                Some(Report::Exit { code, signal }) => Step::Ended(code, signal, None),
                Some(Report::Failed(why)) => Step::Ended(None, None, Some(why)),
                Some(Report::Started(_)) => Step::Nothing,
                None => Step::Ended(None, None, None),
            },
        }
    }

    /// The calls reported before the end and not yet shown (what the program's children did
    /// as they were killed), within a bound.
    async fn rest(&mut self) -> Vec<shared::TraceRecord> {
        match self {
            Traced::Shim { channel, .. } => channel.rest(KILL_AFTER, 10_000).await,
            #[cfg(unix)]
            Traced::Native { reports } => {
                let mut rest = Vec::new();
                let deadline = tokio::time::Instant::now() + KILL_AFTER;
                while rest.len() < 10_000 {
                    match tokio::time::timeout_at(deadline, reports.recv()).await {
                        Ok(Some(super::ptrace::Report::Call(record))) => rest.push(*record),
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => break,
                    }
                }
                rest
            }
        }
    }
}

/// Watches the program until it ends: its reports, its console, a stop.
async fn supervise(
    mut traced: Traced,
    group: Group,
    mut pipes: Pipes,
    life: Lifeline,
    shown: Shown,
) {
    let mut kill_at: Option<tokio::time::Instant> = None;
    let mut reporting = true;
    let (code, signal, failure) = loop {
        tokio::select! {
            biased;
            step = traced.next(&mut reporting) => match step {
                Step::Ended(code, signal, failure) => break (code, signal, failure),
                Step::Records(records) => records.into_iter().for_each(|r| shown.push(Item::Record(Box::new(r)))),
                Step::Nothing => {}
            },
            _ = life.stopped(), if kill_at.is_none() => {
                group.stop();
                kill_at = Some(tokio::time::Instant::now() + KILL_AFTER);
            }
            _ = tokio::time::sleep_until(kill_at.unwrap_or_else(tokio::time::Instant::now)), if kill_at.is_some() => {
                group.kill();
                kill_at = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
            }
            () = pipes.show_next(&shown) => {}
        }
    };
    // What it forked goes with it.
    group.kill();
    for record in traced.rest().await {
        shown.push(Item::Record(Box::new(record)));
    }
    // The last of its console, which it wrote just before it ended.
    let deadline = tokio::time::Instant::now() + LAST_OUTPUT_WAIT;
    while pipes.open() {
        tokio::select! {
            () = pipes.show_next(&shown) => {}
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    let console = &mut pipes.console;
    console.report(&shown);
    let detail = if let Some(why) = failure {
        format!("could not be traced: {why}")
    } else if kill_at.is_some() {
        let (_, reason) = life.reason();
        let why = if reason.starts_with("closed") {
            "you stopped it".to_string()
        } else if reason.starts_with("reset") {
            "a reset stopped it".to_string()
        } else {
            reason
        };
        match signal {
            _ if cfg!(windows) => format!("{why}: it was ended"),
            killed if killed == process::KILLED => format!(
                "{why}: it ignored SIGTERM, so it was killed (SIGKILL) {} s later",
                KILL_AFTER.as_secs()
            ),
            _ => format!("{why}: {}", describe_exit(code, signal)),
        }
    } else {
        describe_exit(code, signal)
    };
    shown.push(Item::Finish {
        code,
        signal,
        detail,
    });
    shown.programs.remove(shown.id);
}
