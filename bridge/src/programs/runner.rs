//! Runs a program for the page (`program_run`): `python3 FILE ARGS...` in the data directory,
//! traced, in a process group of its own, with its console shown (bounded) and its stdin fed
//! from the page. Stopping it (a close, a reset, the bridge shutting down) sends SIGTERM to
//! the group, then SIGKILL after [`KILL_AFTER`]; when it ends, whatever it forked is killed
//! too, and the bridge waits for it, so no process and no zombie is left.

use std::os::unix::process::ExitStatusExt as _;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::{
    EndpointInfo, EndpointSpec, ErrorInfo, ErrorKind, EventKind, ProgramFrom, ProgramSpec,
    MAX_PROGRAM_SOURCE,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, ChildStderr, ChildStdout};
use tokio::sync::mpsc;

use super::channel::{self, Channel};
use super::merge::{Item, Shared};
use super::tracer::Tracer;
use super::{check_allowed, console_event, Entry, Programs};
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
        return Err(ErrorInfo::new(
            ErrorKind::InvalidRequest,
            format!("'{file}' is not a Python program: the page runs .py files."),
        )
        .with_hint("Save your program with a name ending in .py."));
    }
    let source = hub.data.read_text(&file, MAX_PROGRAM_SOURCE)?;
    let root = hub.data.root()?.to_path_buf();
    let slot = hub.programs.reserve()?;
    let shim = hub.programs.shim_dir()?;
    let mut channel = Channel::new().map_err(|e| spawn_error(&hub.config.python, &e))?;
    let fd = channel.program_end();
    let mut command = tokio::process::Command::new(&hub.config.python);
    command
        .arg(&file)
        .args(&args)
        .current_dir(&root)
        .env("PYTHONPATH", python_path(&shim))
        .env(channel::FD_VAR, fd.to_string())
        // The console is shown as it is written, not when a buffer fills.
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: only fcntl runs between fork and exec.
    unsafe {
        command.pre_exec(move || channel::inherit(fd));
    }
    let mut child = command
        .spawn()
        .map_err(|e| spawn_error(&hub.config.python, &e))?;
    channel.spawned();
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
            signal_group(pid, libc::SIGKILL);
            let _ = child.wait().await;
            return Err(error);
        }
    };
    let info = handle.info().ok_or_else(|| super::not_running(0))?;
    let (stdin_tx, stdin_rx) = mpsc::channel(STDIN_QUEUE);
    if let Some(stdin) = child.stdin.take() {
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
            source: Some((file, source)),
            tracer: tracer.clone(),
            terminal: false,
        },
    );
    hub.programs.merger.register(info.id);
    let shown = Shown {
        programs: hub.programs.clone(),
        id: info.id,
        tracer,
        tee,
    };
    hub.tasks.spawn(supervise(child, pid, channel, life, shown));
    Ok(info)
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

/// PYTHONPATH with the shim first, then what the bridge itself was given.
fn python_path(shim: &std::path::Path) -> std::ffi::OsString {
    let mut path = shim.as_os_str().to_owned();
    if let Some(existing) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
        path.push(":");
        path.push(existing);
    }
    path
}

fn spawn_error(python: &str, err: &std::io::Error) -> ErrorInfo {
    if err.kind() == std::io::ErrorKind::NotFound {
        return ErrorInfo::new(
            ErrorKind::Other,
            format!("'{python}' was not found, so the program cannot run."),
        )
        .with_hint("Install Python 3 (python3) on the machine the bridge runs on.");
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
    mut stdin: tokio::process::ChildStdin,
    mut lines: mpsc::Receiver<Vec<u8>>,
    ctx: Ctx,
) {
    while let Some(bytes) = tokio::select! {
        line = lines.recv() => line,
        _ = ctx.life.stopped() => None,
    } {
        if stdin.write_all(&bytes).await.is_err() || stdin.flush().await.is_err() {
            return;
        }
        ctx.emit(console_event("stdin", &bytes));
    }
}

/// Sends `signal` to the program's process group (the program and what it forked).
fn signal_group(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        if pid > 0 {
            // SAFETY: kill only sends a signal; a negative pid names the process group.
            unsafe {
                libc::kill(-pid, signal);
            }
        }
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
        shown.push(Item::Program(console_event(stream, bytes)));
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

/// One of the console's two pipes, read until it closes.
enum Pipe {
    Out(ChildStdout),
    Err(ChildStderr),
}

impl Pipe {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Pipe::Out(p) => p.read(buf).await,
            Pipe::Err(p) => p.read(buf).await,
        }
    }
}

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

/// Watches the program until it ends: its reports, its console, a stop.
async fn supervise(mut child: Child, pid: u32, mut channel: Channel, life: Lifeline, shown: Shown) {
    let mut pipes = Pipes {
        out: child.stdout.take().map(Pipe::Out),
        err: child.stderr.take().map(Pipe::Err),
        out_buf: [0; CONSOLE_CHUNK],
        err_buf: [0; CONSOLE_CHUNK],
        console: Console::new(),
    };
    let mut kill_at: Option<tokio::time::Instant> = None;
    let mut reporting = true;
    let status = loop {
        tokio::select! {
            biased;
            status = child.wait() => break status,
            _ = life.stopped(), if kill_at.is_none() => {
                signal_group(pid, libc::SIGTERM);
                kill_at = Some(tokio::time::Instant::now() + KILL_AFTER);
            }
            _ = tokio::time::sleep_until(kill_at.unwrap_or_else(tokio::time::Instant::now)), if kill_at.is_some() => {
                signal_group(pid, libc::SIGKILL);
                kill_at = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
            }
            records = channel.next(), if reporting => match records {
                Ok(records) => records.into_iter().for_each(|r| shown.push(Item::Record(Box::new(r)))),
                Err(_) => reporting = false,
            },
            () = pipes.show_next(&shown) => {}
        }
    };
    // What it forked goes with it.
    signal_group(pid, libc::SIGKILL);
    for record in channel.drain(10_000) {
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
    let (code, signal) = match &status {
        Ok(status) => (status.code(), status.signal()),
        Err(_) => (None, None),
    };
    let detail = if kill_at.is_some() {
        let (_, reason) = life.reason();
        let why = if reason.starts_with("closed") {
            "you stopped it".to_string()
        } else if reason.starts_with("reset") {
            "a reset stopped it".to_string()
        } else {
            reason
        };
        match signal {
            Some(libc::SIGKILL) => format!(
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

/// How a program ended, in words.
pub(crate) fn describe_exit(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (Some(0), _) => "exited normally (status 0)".into(),
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was stopped by signal {signal} ({})", signal_name(signal)),
        (None, None) => "ended".into(),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGTERM => "SIGTERM",
        libc::SIGKILL => "SIGKILL",
        libc::SIGINT => "SIGINT, Ctrl-C",
        libc::SIGSEGV => "SIGSEGV, a crash",
        libc::SIGABRT => "SIGABRT",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}
